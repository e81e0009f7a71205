package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/blockgate/blockgate/internal/lograte"
	"github.com/blockgate/blockgate/tenants"
)

// HandlerConfig configures the REST API.
type HandlerConfig struct {
	// Token is the platform admin token. Tenant admin tokens are issued
	// through the API and checked against the registry.
	Token string
	// JWKS serves the app-token signing keys.
	JWKS func() []byte
	// MaxBodyBytes limits request bodies; default 1 MiB.
	MaxBodyBytes int64
	// AuditFailures, when set, counts audit entries that could not be
	// written (the actions themselves stand); alert on it.
	AuditFailures prometheus.Counter
	// Ready, when set, says whether the node can serve, for GET /readyz: an
	// error's message is shown to anyone who asks, so keep detail out.
	Ready  func(ctx context.Context) error
	Logger *slog.Logger
}

// Handler returns the admin REST API. Every request but the public ones
// bears a token, Authorization: Bearer <token>, of one of two roles:
//
//   - the platform admin (the gateway's BLOCKGATE_ADMIN_TOKEN): everything;
//   - a tenant admin (a token from POST /v1/tenants/{tenant}/admin-tokens):
//     the routes marked tenant below, for its own tenant only, and the
//     routes marked any, narrowed to its own tenant. Anything else, and any
//     other tenant, is 403 ERR_FORBIDDEN.
//
// Tenant admins may not change limits, delete their tenant, rotate signing
// keys or manage admin tokens: those decide what a tenant may consume and
// who administers it, so they stay with the platform.
//
//	POST   /v1/tenants                               platform  {"name"}
//	GET    /v1/tenants                               any       (a tenant admin sees its own)
//	GET    /v1/tenants/{tenant}                      tenant
//	DELETE /v1/tenants/{tenant}                      platform
//	PUT    /v1/tenants/{tenant}/limits               platform  tenants.Limits: {"pubsubMaxBytes", "requestsPerSecond", ...}
//	POST   /v1/tenants/{tenant}/apps                 tenant    {"appId", "endpoint", "appToken"}
//	PUT    /v1/tenants/{tenant}/apps                 tenant    App or HTTPEndpoint resource, YAML or JSON
//	GET    /v1/tenants/{tenant}/apps                 tenant
//	DELETE /v1/tenants/{tenant}/apps/{app}           tenant
//	PUT    /v1/tenants/{tenant}/apps/{app}/instances/{id}  tenant  {"endpoint"}
//	DELETE /v1/tenants/{tenant}/apps/{app}/instances/{id}  tenant
//	PUT    /v1/tenants/{tenant}/apps/{app}/health    tenant    {"path", "interval": "5s", "threshold": 3}
//	POST   /v1/tenants/{tenant}/tokens               tenant    {"appId", "ttl": "24h"}
//	GET    /v1/tenants/{tenant}/tokens               tenant
//	POST   /v1/tokens/{id}/revoke                    tenant    (the token's tenant)
//	PUT    /v1/tenants/{tenant}/components           tenant    Dapr Component YAML or JSON
//	GET    /v1/tenants/{tenant}/components           tenant
//	DELETE /v1/tenants/{tenant}/components/{name}    tenant
//	PUT    /v1/tenants/{tenant}/subscriptions        tenant    Dapr Subscription YAML or JSON
//	GET    /v1/tenants/{tenant}/subscriptions        tenant
//	DELETE /v1/tenants/{tenant}/subscriptions/{name} tenant
//	PUT    /v1/tenants/{tenant}/resiliencies         tenant    Dapr Resiliency YAML or JSON
//	GET    /v1/tenants/{tenant}/resiliencies         tenant
//	DELETE /v1/tenants/{tenant}/resiliencies/{name}  tenant
//	POST   /v1/tenants/{tenant}/admin-tokens         platform  {"name", "ttl": "720h"} → {"id", "token", "expiresAt", ...}
//	GET    /v1/tenants/{tenant}/admin-tokens         platform
//	POST   /v1/admin-tokens/{id}/revoke              platform
//	GET    /v1/audit?tenant=&limit=100&before=       any       (a tenant admin reads its own tenant's log)
//	POST   /v1/signing-keys/rotate                   platform
//	PUT    /v1/tenants/{tenant}/federations          tenant    FederatedIssuer YAML or JSON
//	GET    /v1/tenants/{tenant}/federations          tenant
//	DELETE /v1/tenants/{tenant}/federations/{name}   tenant
//	PUT    /v1/tenants/{tenant}/access-policies?app= tenant    Dapr Configuration (accessControl)
//	GET    /v1/tenants/{tenant}/access-policies      tenant
//	DELETE /v1/tenants/{tenant}/access-policies/{n}  tenant
//	PUT    /v1/tenants/{tenant}/policy-settings      tenant    {"denyByDefault": true}
//	GET    /v1/tenants/{tenant}/policy-settings      tenant
//	POST   /v1/tenants/{tenant}/apps/{app}/svid      tenant    CSR (PEM) or {"csr", "ttl"}
//	POST   /v1/ca/rotate                             platform
//	GET    /v1/ca/bundle                             public    the trust bundle, PEM
//	POST   /v1/tenants/{tenant}/apps/{app}/join-tokens      tenant  {"ttl": "720h"}: a sidecar's join token
//	GET    /v1/tenants/{tenant}/join-tokens                 tenant
//	POST   /v1/tenants/{tenant}/join-tokens/{id}/revoke     tenant  ends the streams it opened
//	POST   /v1/tenants/{tenant}/apps/{app}/envoy-bootstrap  tenant  {"instance", "appPort", "ttl"} → Envoy bootstrap YAML
//	GET    /v1/tenants/{tenant}/sidecars                    tenant  sidecars connected to this node, acked versions, NACKs
//	GET    /v1/sidecars                                     platform
//	GET    /v1/cluster/nodes                         platform  the live gateway nodes
//	GET    /healthz, /.well-known/jwks.json          public    /healthz: the process answers
//	GET    /readyz                                   public    200 when the node can serve, else 503
//
// Every POST, PUT and DELETE, refused ones included, is written to the
// audit log (see audit).
//
// Routes are registered through handler.add with their access; authorize
// checks every request against that table in one place, and treats a route
// registered any other way as platform-only.
func Handler(svc *Service, cfg HandlerConfig) http.Handler {
	_, e := newHandler(svc, cfg)
	return e
}

func newHandler(svc *Service, cfg HandlerConfig) (*handler, *echo.Echo) {
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 1 << 20
	}
	h := &handler{svc: svc, cfg: cfg, logger: cfg.Logger.With("transport", "admin"), routes: map[string]*route{}}
	h.auditLogLimit.Every = 10 * time.Second
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = h.handleError
	// The audit log records the peer the gateway sees, not what a client
	// claims in X-Forwarded-For.
	e.IPExtractor = echo.ExtractIPDirect()
	e.Use(h.audit, h.authorize)

	for _, rt := range []route{
		{method: http.MethodGet, path: "/healthz", access: public, handle: func(c echo.Context) error { return c.NoContent(http.StatusNoContent) }},
		{method: http.MethodGet, path: "/readyz", access: public, handle: h.readyz},
		{method: http.MethodGet, path: "/.well-known/jwks.json", access: public, handle: func(c echo.Context) error {
			return c.Blob(http.StatusOK, "application/jwk-set+json", cfg.JWKS())
		}},

		{method: http.MethodPost, path: "/v1/tenants", access: platformOnly, handle: h.createTenant},
		{method: http.MethodGet, path: "/v1/tenants", access: anyAdmin, handle: h.listTenants},
		{method: http.MethodGet, path: "/v1/tenants/:tenant", access: tenantScoped, handle: h.getTenant},
		{method: http.MethodDelete, path: "/v1/tenants/:tenant", access: platformOnly, handle: h.deleteTenant},
		{method: http.MethodPut, path: "/v1/tenants/:tenant/limits", access: platformOnly, handle: h.setLimits},
		{method: http.MethodPost, path: "/v1/tenants/:tenant/apps", access: tenantScoped, handle: h.createApp},
		{method: http.MethodPut, path: "/v1/tenants/:tenant/apps", access: tenantScoped, handle: h.applyApp},
		{method: http.MethodGet, path: "/v1/tenants/:tenant/apps", access: tenantScoped, handle: h.listApps},
		{method: http.MethodDelete, path: "/v1/tenants/:tenant/apps/:app", access: tenantScoped, handle: h.deleteApp},
		{method: http.MethodPut, path: "/v1/tenants/:tenant/apps/:app/instances/:id", access: tenantScoped, handle: h.addInstance},
		{method: http.MethodDelete, path: "/v1/tenants/:tenant/apps/:app/instances/:id", access: tenantScoped, handle: h.removeInstance},
		{method: http.MethodPut, path: "/v1/tenants/:tenant/apps/:app/health", access: tenantScoped, handle: h.setHealth},
		{method: http.MethodPost, path: "/v1/tenants/:tenant/tokens", access: tenantScoped, handle: h.issueToken},
		{method: http.MethodGet, path: "/v1/tenants/:tenant/tokens", access: tenantScoped, handle: h.listTokens},
		{method: http.MethodPost, path: "/v1/tokens/:id/revoke", access: tenantScoped, handle: h.revokeToken, tenant: h.tokenTenant},
		{method: http.MethodPut, path: "/v1/tenants/:tenant/components", access: tenantScoped, handle: h.applyComponent},
		{method: http.MethodGet, path: "/v1/tenants/:tenant/components", access: tenantScoped, handle: h.listComponents},
		{method: http.MethodDelete, path: "/v1/tenants/:tenant/components/:name", access: tenantScoped, handle: h.deleteComponent},
		{method: http.MethodPut, path: "/v1/tenants/:tenant/subscriptions", access: tenantScoped, handle: h.applySubscription},
		{method: http.MethodGet, path: "/v1/tenants/:tenant/subscriptions", access: tenantScoped, handle: h.listSubscriptions},
		{method: http.MethodDelete, path: "/v1/tenants/:tenant/subscriptions/:name", access: tenantScoped, handle: h.deleteSubscription},
		{method: http.MethodPut, path: "/v1/tenants/:tenant/resiliencies", access: tenantScoped, handle: h.applyResiliency},
		{method: http.MethodGet, path: "/v1/tenants/:tenant/resiliencies", access: tenantScoped, handle: h.listResiliencies},
		{method: http.MethodDelete, path: "/v1/tenants/:tenant/resiliencies/:name", access: tenantScoped, handle: h.deleteResiliency},
		{method: http.MethodPost, path: "/v1/tenants/:tenant/admin-tokens", access: platformOnly, handle: h.issueAdminToken},
		{method: http.MethodGet, path: "/v1/tenants/:tenant/admin-tokens", access: platformOnly, handle: h.listAdminTokens},
		{method: http.MethodPost, path: "/v1/admin-tokens/:id/revoke", access: platformOnly, handle: h.revokeAdminToken, tenant: h.adminTokenTenant},
		{method: http.MethodGet, path: "/v1/audit", access: anyAdmin, handle: h.listAudit, tenant: queryTenant},
		{method: http.MethodPost, path: "/v1/signing-keys/rotate", access: platformOnly, handle: h.rotateKey},
		{method: http.MethodGet, path: "/v1/cluster/nodes", access: platformOnly, handle: h.clusterNodes},
	} {
		h.add(e, rt)
	}
	for _, rt := range append(h.identityRoutes(), h.sidecarRoutes()...) {
		h.add(e, rt)
	}
	return h, e
}

type handler struct {
	svc    *Service
	cfg    HandlerConfig
	logger *slog.Logger
	// routes is the access table authorize checks, by routeKey.
	routes map[string]*route
	// echoRoutes is every route echo has, filled on the first request
	// (see routed).
	echoRoutesOnce sync.Once
	echoRoutes     map[string]bool
	// auditLogLimit rate-limits the log lines of failed audit writes.
	auditLogMu    sync.Mutex
	auditLogLimit lograte.Limiter
}

// apiError is an error with the status and code the API answers with.
type apiError struct {
	status int
	code   string
	msg    string
}

func (e *apiError) Error() string { return e.msg }

// handleError is the one place where admin errors become responses.
func (h *handler) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	var ae *apiError
	var he *echo.HTTPError
	switch {
	case errors.As(err, &ae):
	case errors.As(err, &he):
		ae = &apiError{he.Code, "ERR_NOT_FOUND", fmt.Sprint(he.Message)}
	case errors.Is(err, ErrInvalid):
		ae = &apiError{http.StatusBadRequest, "ERR_INVALID_REQUEST", strings.TrimPrefix(err.Error(), ErrInvalid.Error()+": ")}
	case errors.Is(err, tenants.ErrNotFound):
		ae = &apiError{http.StatusNotFound, "ERR_NOT_FOUND", err.Error()}
	case errors.Is(err, tenants.ErrExists):
		ae = &apiError{http.StatusConflict, "ERR_ALREADY_EXISTS", err.Error()}
	case errors.Is(err, ErrUnauthenticated):
		ae = &apiError{http.StatusUnauthorized, "ERR_UNAUTHENTICATED", err.Error()}
	default:
		h.logger.Error("admin request failed", "method", c.Request().Method, "path", c.Request().URL.Path, "err", err)
		ae = &apiError{http.StatusServiceUnavailable, "ERR_UNAVAILABLE", "the registry is unavailable; retry later"}
	}
	_ = c.JSON(ae.status, map[string]string{"errorCode": ae.code, "message": ae.msg})
}

func (h *handler) body(c echo.Context) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(c.Request().Body, h.cfg.MaxBodyBytes+1))
	if err != nil {
		return nil, invalid(fmt.Errorf("reading the request body: %w", err))
	}
	if int64(len(b)) > h.cfg.MaxBodyBytes {
		return nil, &apiError{http.StatusRequestEntityTooLarge, "ERR_BODY_TOO_LARGE",
			fmt.Sprintf("request body exceeds %d bytes", h.cfg.MaxBodyBytes)}
	}
	return b, nil
}

// decodeOptional is decode for a body that may be empty (all defaults).
func (h *handler) decodeOptional(c echo.Context, v any) error {
	b, err := h.body(c)
	if err != nil || len(bytes.TrimSpace(b)) == 0 {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return invalid(fmt.Errorf("the request body is not the expected JSON: %w", err))
	}
	return nil
}

func (h *handler) decode(c echo.Context, v any) error {
	b, err := h.body(c)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return invalid(fmt.Errorf("the request body is not the expected JSON: %w", err))
	}
	return nil
}

func (h *handler) createTenant(c echo.Context) error {
	var req struct {
		Name string `json:"name"`
	}
	if err := h.decode(c, &req); err != nil {
		return err
	}
	if id, err := tenants.ParseID(req.Name); err == nil {
		setTarget(c, id, string(id))
	}
	t, err := h.svc.CreateTenant(c.Request().Context(), req.Name)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, t)
}

func (h *handler) listTenants(c echo.Context) error {
	if p := principalOf(c); p.Role != RolePlatform {
		t, err := h.svc.Tenant(c.Request().Context(), string(p.Tenant))
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, []tenants.Tenant{t})
	}
	ts, err := h.svc.Tenants(c.Request().Context())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, nonNil(ts))
}

func (h *handler) getTenant(c echo.Context) error {
	t, err := h.svc.Tenant(c.Request().Context(), c.Param("tenant"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, t)
}

func (h *handler) deleteTenant(c echo.Context) error {
	if err := h.svc.DeleteTenant(c.Request().Context(), c.Param("tenant")); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

func (h *handler) createApp(c echo.Context) error {
	var req struct {
		AppID    string `json:"appId"`
		Endpoint string `json:"endpoint"`
		AppToken string `json:"appToken"`
	}
	if err := h.decode(c, &req); err != nil {
		return err
	}
	setTarget(c, "", req.AppID)
	a, err := h.svc.CreateApp(c.Request().Context(), c.Param("tenant"), req.AppID, req.Endpoint, req.AppToken)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, a)
}

func (h *handler) listApps(c echo.Context) error {
	as, err := h.svc.Apps(c.Request().Context(), c.Param("tenant"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, nonNil(as))
}

func (h *handler) deleteApp(c echo.Context) error {
	if err := h.svc.DeleteApp(c.Request().Context(), c.Param("tenant"), c.Param("app")); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

func (h *handler) issueToken(c echo.Context) error {
	var req struct {
		AppID string `json:"appId"`
		TTL   string `json:"ttl"`
	}
	if err := h.decode(c, &req); err != nil {
		return err
	}
	var ttl time.Duration
	if req.TTL != "" {
		d, err := time.ParseDuration(req.TTL)
		if err != nil {
			return invalid(fmt.Errorf("ttl %q is not a duration like 24h or 90m", req.TTL))
		}
		ttl = d
	}
	setTarget(c, "", req.AppID)
	t, err := h.svc.IssueToken(c.Request().Context(), c.Param("tenant"), req.AppID, ttl)
	if err != nil {
		return err
	}
	setTarget(c, "", req.AppID+"/"+t.ID)
	return c.JSON(http.StatusCreated, t)
}

func (h *handler) listTokens(c echo.Context) error {
	ts, err := h.svc.Tokens(c.Request().Context(), c.Param("tenant"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, nonNil(ts))
}

func (h *handler) revokeToken(c echo.Context) error {
	t, err := h.svc.RevokeToken(c.Request().Context(), c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, t)
}

// componentView is how the API shows a component: its document plus the
// registry's revision.
type componentView struct {
	Name      string          `json:"name"`
	Type      string          `json:"type"`
	Version   string          `json:"version"`
	Revision  int64           `json:"revision"`
	Component json.RawMessage `json:"component"`
}

func viewOf(comp tenants.Component) componentView {
	return componentView{Name: comp.Name, Type: comp.Type, Version: comp.Version, Revision: comp.Revision, Component: comp.Document()}
}

func (h *handler) applyApp(c echo.Context) error {
	doc, err := h.body(c)
	if err != nil {
		return err
	}
	a, err := h.svc.ApplyApp(c.Request().Context(), c.Param("tenant"), doc)
	if err != nil {
		return err
	}
	setTarget(c, "", a.App.ID)
	status := http.StatusOK
	if a.Created {
		status = http.StatusCreated
	}
	return c.JSON(status, a)
}

func (h *handler) applyComponent(c echo.Context) error {
	doc, err := h.body(c)
	if err != nil {
		return err
	}
	comp, err := h.svc.ApplyComponent(c.Request().Context(), c.Param("tenant"), doc)
	if err != nil {
		return err
	}
	setTarget(c, "", comp.Name)
	return c.JSON(http.StatusOK, viewOf(comp))
}

func (h *handler) listComponents(c echo.Context) error {
	cs, err := h.svc.Components(c.Request().Context(), c.Param("tenant"))
	if err != nil {
		return err
	}
	out := make([]componentView, len(cs))
	for i, comp := range cs {
		out[i] = viewOf(comp)
	}
	return c.JSON(http.StatusOK, out)
}

func (h *handler) deleteComponent(c echo.Context) error {
	if err := h.svc.DeleteComponent(c.Request().Context(), c.Param("tenant"), c.Param("name")); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

func (h *handler) rotateKey(c echo.Context) error {
	kid, err := h.svc.RotateSigningKey(c.Request().Context())
	if err != nil {
		return err
	}
	setTarget(c, "", kid)
	return c.JSON(http.StatusOK, map[string]string{"kid": kid})
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func validateEndpoint(endpoint string) error {
	if endpoint == "" {
		return nil
	}
	return tenants.ValidateEndpoint(endpoint)
}

func (h *handler) applySubscription(c echo.Context) error {
	doc, err := h.body(c)
	if err != nil {
		return err
	}
	sub, err := h.svc.ApplySubscription(c.Request().Context(), c.Param("tenant"), doc)
	if err != nil {
		return err
	}
	setTarget(c, "", sub.Name)
	return c.JSON(http.StatusOK, sub)
}

func (h *handler) listSubscriptions(c echo.Context) error {
	subs, err := h.svc.Subscriptions(c.Request().Context(), c.Param("tenant"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, nonNil(subs))
}

func (h *handler) deleteSubscription(c echo.Context) error {
	if err := h.svc.DeleteSubscription(c.Request().Context(), c.Param("tenant"), c.Param("name")); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

func (h *handler) setLimits(c echo.Context) error {
	var l tenants.Limits
	if err := h.decode(c, &l); err != nil {
		return err
	}
	if err := h.svc.SetLimits(c.Request().Context(), c.Param("tenant"), l); err != nil {
		return err
	}
	t, err := h.svc.Tenant(c.Request().Context(), c.Param("tenant"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, t)
}

func (h *handler) applyResiliency(c echo.Context) error {
	doc, err := h.body(c)
	if err != nil {
		return err
	}
	r, err := h.svc.ApplyResiliency(c.Request().Context(), c.Param("tenant"), doc)
	if err != nil {
		return err
	}
	setTarget(c, "", r.Name)
	return c.JSON(http.StatusOK, r)
}

func (h *handler) listResiliencies(c echo.Context) error {
	rs, err := h.svc.Resiliencies(c.Request().Context(), c.Param("tenant"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, nonNil(rs))
}

func (h *handler) deleteResiliency(c echo.Context) error {
	if err := h.svc.DeleteResiliency(c.Request().Context(), c.Param("tenant"), c.Param("name")); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

func (h *handler) addInstance(c echo.Context) error {
	var req struct {
		Endpoint string `json:"endpoint"`
	}
	if err := h.decode(c, &req); err != nil {
		return err
	}
	if err := h.svc.AddInstance(c.Request().Context(), c.Param("tenant"), c.Param("app"), c.Param("id"), req.Endpoint); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

func (h *handler) removeInstance(c echo.Context) error {
	if err := h.svc.RemoveInstance(c.Request().Context(), c.Param("tenant"), c.Param("app"), c.Param("id")); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

func (h *handler) setHealth(c echo.Context) error {
	var req struct {
		Path      string `json:"path"`
		Interval  string `json:"interval"`
		Threshold int    `json:"threshold"`
	}
	if err := h.decode(c, &req); err != nil {
		return err
	}
	var interval time.Duration
	if req.Interval != "" {
		d, err := time.ParseDuration(req.Interval)
		if err != nil {
			return invalid(fmt.Errorf("interval %q is not a duration like 5s", req.Interval))
		}
		interval = d
	}
	hc := tenants.HealthCheck{Path: req.Path, Interval: interval, Threshold: req.Threshold}
	if err := h.svc.SetHealth(c.Request().Context(), c.Param("tenant"), c.Param("app"), hc); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}
