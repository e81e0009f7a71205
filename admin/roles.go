package admin

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/blockgate/blockgate/tenants"
)

// access is who may call a route. The zero value is platformOnly, so a
// route that does not say is closed to tenant admins.
type access int

const (
	// platformOnly routes are for the platform admin.
	platformOnly access = iota
	// tenantScoped routes act on one tenant, the route's (see
	// route.tenant): the platform admin or that tenant's admin may call.
	tenantScoped
	// anyAdmin routes span tenants; a tenant admin may call them but sees
	// only its own tenant (the handler narrows by principalOf), and a
	// request naming another tenant is refused.
	anyAdmin
	// public routes need no token.
	public
)

func (a access) String() string {
	switch a {
	case tenantScoped:
		return "tenant"
	case anyAdmin:
		return "any admin"
	case public:
		return "public"
	}
	return "platform"
}

// route is one endpoint of the admin API with who may call it.
type route struct {
	method, path string
	access       access
	handle       echo.HandlerFunc
	// tenant says which tenant a request concerns, for the access check and
	// the audit log; nil means the :tenant path parameter. It runs only for
	// authenticated requests.
	tenant func(c echo.Context) (tenants.ID, error)
}

// routeKey identifies a route in handler.routes.
func routeKey(method, path string) string { return method + " " + path }

// add registers rt with echo and in the table authorize checks every
// request against.
func (h *handler) add(e *echo.Echo, rt route) {
	r := rt
	if _, dup := h.routes[routeKey(r.method, r.path)]; dup {
		panic(fmt.Sprintf("admin: route %s %s registered twice", r.method, r.path))
	}
	h.routes[routeKey(r.method, r.path)] = &r
	e.Add(r.method, r.path, r.handle)
}

// request is what the middlewares learn about one request; audit puts it in
// the echo context and authorize fills it in.
type request struct {
	route *route // nil when the request matched no route in the table
	// principal is who the request acts for; zero when it had no valid
	// token (it is set for an expired or revoked tenant admin token).
	principal Principal
	// authenticated is true once the principal's token was accepted.
	authenticated bool
	// targetTenant is the tenant the request concerns, if any.
	targetTenant tenants.ID
	// target names the object acted on, when a handler knows better than
	// the path (see setTarget).
	target string
}

const requestKey = "blockgate.admin.request"

func requestOf(c echo.Context) *request {
	if r, ok := c.Get(requestKey).(*request); ok {
		return r
	}
	r := &request{}
	c.Set(requestKey, r)
	return r
}

// principalOf returns who an authorized request acts for.
func principalOf(c echo.Context) Principal { return requestOf(c).principal }

// setTarget records, for the audit log, the tenant and the object a request
// acts on when they are not in its path (such as a name in the body).
func setTarget(c echo.Context, tenant tenants.ID, target string) {
	r := requestOf(c)
	if tenant != "" {
		r.targetTenant = tenant
	}
	if target != "" {
		r.target = target
	}
}

func forbidden(format string, args ...any) error {
	return &apiError{http.StatusForbidden, "ERR_FORBIDDEN", fmt.Sprintf(format, args...)}
}

func unauthenticated(msg string) error {
	return &apiError{http.StatusUnauthorized, "ERR_UNAUTHENTICATED", msg}
}

// authorize is the one place where admin requests are authenticated and
// checked against their route's access. A route missing from the table
// (registered with echo directly) is treated as platformOnly; a path that
// matches no route at all goes on, once authenticated, to echo's 404 or
// 405.
func (h *handler) authorize(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		req := requestOf(c)
		rt := h.routes[routeKey(c.Request().Method, c.Path())]
		req.route = rt
		if rt != nil && rt.access == public {
			return next(c)
		}
		if id, err := tenants.ParseID(c.Param("tenant")); err == nil {
			req.targetTenant = id
		}
		p, err := h.authenticate(c)
		req.principal = p
		if err != nil {
			return err
		}
		req.authenticated = true
		if rt == nil {
			if !h.routed(c) {
				return next(c)
			}
			rt = &route{access: platformOnly}
		}
		tenant, terr := req.targetTenant, error(nil)
		if rt.tenant != nil {
			tenant, terr = rt.tenant(c)
			if terr == nil {
				req.targetTenant = tenant
			}
		}
		switch {
		case p.Role == RolePlatform:
			// Everything; a tenant that cannot be resolved is the
			// handler's to report.
		case rt.access == platformOnly:
			return forbidden("%s %s is for the platform admin; this admin token is for tenant %s",
				c.Request().Method, c.Path(), p.Tenant)
		case terr != nil:
			return terr
		case rt.access == tenantScoped && tenant == p.Tenant,
			rt.access == anyAdmin && (tenant == "" || tenant == p.Tenant):
		default:
			return forbidden("this admin token is for tenant %s only", p.Tenant)
		}
		return next(c)
	}
}

// authenticate returns who the request's bearer token speaks for.
func (h *handler) authenticate(c echo.Context) (Principal, error) {
	got, ok := strings.CutPrefix(c.Request().Header.Get("Authorization"), "Bearer ")
	got = strings.TrimSpace(got)
	if !ok || got == "" {
		return Principal{}, unauthenticated("missing admin token: send Authorization: Bearer <BLOCKGATE_ADMIN_TOKEN> or a tenant admin token")
	}
	if h.cfg.Token != "" && subtle.ConstantTimeCompare([]byte(got), []byte(h.cfg.Token)) == 1 {
		return platformPrincipal, nil
	}
	if !strings.HasPrefix(got, AdminTokenPrefix) {
		return Principal{}, unauthenticated("wrong admin token: app tokens work only on the Dapr API; use the platform admin token or a tenant admin token")
	}
	p, err := h.svc.AuthenticateAdminToken(c.Request().Context(), got)
	if errors.Is(err, ErrUnauthenticated) {
		return p, unauthenticated(strings.TrimPrefix(err.Error(), ErrUnauthenticated.Error()+": "))
	}
	return p, err
}

// routed reports whether echo has a route for the request's method and
// pattern, as opposed to answering 404 or 405.
func (h *handler) routed(c echo.Context) bool {
	h.echoRoutesOnce.Do(func() {
		h.echoRoutes = map[string]bool{}
		for _, r := range c.Echo().Routes() {
			h.echoRoutes[routeKey(r.Method, r.Path)] = true
		}
	})
	return h.echoRoutes[routeKey(c.Request().Method, c.Path())]
}

// tokenTenant is the route.tenant of app-token routes addressed by token id.
func (h *handler) tokenTenant(c echo.Context) (tenants.ID, error) {
	return h.svc.tokenTenant(c.Request().Context(), c.Param("id"))
}

// adminTokenTenant is the route.tenant of admin-token routes addressed by
// token id.
func (h *handler) adminTokenTenant(c echo.Context) (tenants.ID, error) {
	return h.svc.adminTokenTenant(c.Request().Context(), c.Param("id"))
}

// queryTenant is the route.tenant of anyAdmin routes that take ?tenant=.
func queryTenant(c echo.Context) (tenants.ID, error) {
	t := c.QueryParam("tenant")
	if t == "" {
		return "", nil
	}
	id, err := tenants.ParseID(t)
	if err != nil {
		return "", invalid(err)
	}
	return id, nil
}
