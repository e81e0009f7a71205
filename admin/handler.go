package admin

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/blockgate/blockgate/tenants"
)

// HandlerConfig configures the REST API.
type HandlerConfig struct {
	// Token is the platform admin token every request must bear.
	Token string
	// JWKS serves the app-token signing keys.
	JWKS func() []byte
	// MaxBodyBytes limits request bodies; default 1 MiB.
	MaxBodyBytes int64
	Logger       *slog.Logger
}

// Handler returns the admin REST API:
//
//	POST   /v1/tenants                               {"name"}
//	GET    /v1/tenants
//	GET    /v1/tenants/{tenant}
//	DELETE /v1/tenants/{tenant}
//	PUT    /v1/tenants/{tenant}/limits               tenants.Limits: {"pubsubMaxBytes", "requestsPerSecond", ...}
//	POST   /v1/tenants/{tenant}/apps                 {"appId", "endpoint", "appToken"}
//	PUT    /v1/tenants/{tenant}/apps                 App or HTTPEndpoint resource, YAML or JSON
//	GET    /v1/tenants/{tenant}/apps
//	DELETE /v1/tenants/{tenant}/apps/{app}
//	PUT    /v1/tenants/{tenant}/apps/{app}/instances/{id}  {"endpoint"}
//	DELETE /v1/tenants/{tenant}/apps/{app}/instances/{id}
//	PUT    /v1/tenants/{tenant}/apps/{app}/health    {"path", "interval": "5s", "threshold": 3}
//	POST   /v1/tenants/{tenant}/tokens               {"appId", "ttl": "24h"}
//	GET    /v1/tenants/{tenant}/tokens
//	POST   /v1/tokens/{id}/revoke
//	PUT    /v1/tenants/{tenant}/components           Dapr Component YAML or JSON
//	GET    /v1/tenants/{tenant}/components
//	DELETE /v1/tenants/{tenant}/components/{name}
//	PUT    /v1/tenants/{tenant}/subscriptions        Dapr Subscription YAML or JSON
//	GET    /v1/tenants/{tenant}/subscriptions
//	DELETE /v1/tenants/{tenant}/subscriptions/{name}
//	PUT    /v1/tenants/{tenant}/resiliencies         Dapr Resiliency YAML or JSON
//	GET    /v1/tenants/{tenant}/resiliencies
//	DELETE /v1/tenants/{tenant}/resiliencies/{name}
//	POST   /v1/signing-keys/rotate
//	GET    /healthz, /.well-known/jwks.json          (no token)
func Handler(svc *Service, cfg HandlerConfig) http.Handler {
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 1 << 20
	}
	h := &handler{svc: svc, cfg: cfg, logger: cfg.Logger.With("transport", "admin")}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = h.handleError
	e.Use(h.authenticate)

	e.GET("/healthz", func(c echo.Context) error { return c.NoContent(http.StatusNoContent) })
	e.GET("/.well-known/jwks.json", func(c echo.Context) error {
		return c.Blob(http.StatusOK, "application/jwk-set+json", cfg.JWKS())
	})

	e.POST("/v1/tenants", h.createTenant)
	e.GET("/v1/tenants", h.listTenants)
	e.GET("/v1/tenants/:tenant", h.getTenant)
	e.DELETE("/v1/tenants/:tenant", h.deleteTenant)
	e.PUT("/v1/tenants/:tenant/limits", h.setLimits)
	e.POST("/v1/tenants/:tenant/apps", h.createApp)
	e.PUT("/v1/tenants/:tenant/apps", h.applyApp)
	e.GET("/v1/tenants/:tenant/apps", h.listApps)
	e.DELETE("/v1/tenants/:tenant/apps/:app", h.deleteApp)
	e.PUT("/v1/tenants/:tenant/apps/:app/instances/:id", h.addInstance)
	e.DELETE("/v1/tenants/:tenant/apps/:app/instances/:id", h.removeInstance)
	e.PUT("/v1/tenants/:tenant/apps/:app/health", h.setHealth)
	e.POST("/v1/tenants/:tenant/tokens", h.issueToken)
	e.GET("/v1/tenants/:tenant/tokens", h.listTokens)
	e.POST("/v1/tokens/:id/revoke", h.revokeToken)
	e.PUT("/v1/tenants/:tenant/components", h.applyComponent)
	e.GET("/v1/tenants/:tenant/components", h.listComponents)
	e.DELETE("/v1/tenants/:tenant/components/:name", h.deleteComponent)
	e.PUT("/v1/tenants/:tenant/subscriptions", h.applySubscription)
	e.GET("/v1/tenants/:tenant/subscriptions", h.listSubscriptions)
	e.DELETE("/v1/tenants/:tenant/subscriptions/:name", h.deleteSubscription)
	e.PUT("/v1/tenants/:tenant/resiliencies", h.applyResiliency)
	e.GET("/v1/tenants/:tenant/resiliencies", h.listResiliencies)
	e.DELETE("/v1/tenants/:tenant/resiliencies/:name", h.deleteResiliency)
	e.POST("/v1/signing-keys/rotate", h.rotateKey)
	return e
}

type handler struct {
	svc    *Service
	cfg    HandlerConfig
	logger *slog.Logger
}

// apiError is an error with the status and code the API answers with.
type apiError struct {
	status int
	code   string
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func (h *handler) authenticate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		p := c.Request().URL.Path
		if p == "/healthz" || p == "/.well-known/jwks.json" {
			return next(c)
		}
		got, ok := strings.CutPrefix(c.Request().Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(h.cfg.Token)) != 1 {
			return &apiError{http.StatusUnauthorized, "ERR_UNAUTHENTICATED",
				"missing or wrong admin token: send Authorization: Bearer <BLOCKGATE_ADMIN_TOKEN>"}
		}
		return next(c)
	}
}

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
	t, err := h.svc.CreateTenant(c.Request().Context(), req.Name)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, t)
}

func (h *handler) listTenants(c echo.Context) error {
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
	t, err := h.svc.IssueToken(c.Request().Context(), c.Param("tenant"), req.AppID, ttl)
	if err != nil {
		return err
	}
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
