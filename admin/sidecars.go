package admin

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/blockgate/blockgate/tenants"
	"github.com/blockgate/blockgate/tenants/tenantspg"
	"github.com/blockgate/blockgate/xds"
)

// Sidecars is the gateway's xDS control plane as the admin API needs it.
type Sidecars interface {
	// Status lists the sidecars connected to this node: one tenant's, or
	// every tenant's for "".
	Status(tenant tenants.ID) []xds.NodeStatus
	// Bootstrap is the Envoy bootstrap of an app's sidecar with joinToken.
	Bootstrap(ctx context.Context, tenant tenants.ID, app, instance string, appPort int, joinToken string) ([]byte, error)
}

// SetSidecars gives the service the xDS control plane. Call it before
// serving; without it the sidecar routes answer 404.
func (s *Service) SetSidecars(sc Sidecars) { s.sidecars = sc }

// IssuedJoinToken is a join token with its text, shown once.
type IssuedJoinToken struct {
	tenantspg.JoinToken
	Text string `json:"token"`
}

// defaultJoinTokenTTL is how long a join token lives unless asked.
const defaultJoinTokenTTL = 30 * 24 * time.Hour

// IssueJoinToken makes a join token with which a sidecar of app joins the
// xDS control plane.
func (s *Service) IssueJoinToken(ctx context.Context, tenant, app string, ttl time.Duration) (IssuedJoinToken, error) {
	id, err := tenants.ParseID(tenant)
	if err != nil {
		return IssuedJoinToken{}, invalid(err)
	}
	if err := tenants.ValidateAppID(app); err != nil {
		return IssuedJoinToken{}, invalid(err)
	}
	if ttl == 0 {
		ttl = defaultJoinTokenTTL
	}
	if ttl < time.Minute || ttl > tenantspg.MaxJoinTokenTTL {
		return IssuedJoinToken{}, invalid(fmt.Errorf("a join token lives from 1m to %s, not %s", tenantspg.MaxJoinTokenTTL, ttl))
	}
	t, text, err := s.registry.IssueJoinToken(ctx, id, app, ttl)
	if err != nil {
		return IssuedJoinToken{}, err
	}
	s.logger.Info("join token issued", "tenant", id, "app_id", app, "join_token_id", t.ID, "expires_at", t.ExpiresAt)
	return IssuedJoinToken{JoinToken: t, Text: text}, nil
}

// JoinTokens lists a tenant's join tokens (never their texts).
func (s *Service) JoinTokens(ctx context.Context, tenant string) ([]tenantspg.JoinToken, error) {
	id, err := s.existing(ctx, tenant)
	if err != nil {
		return nil, err
	}
	return s.registry.JoinTokens(ctx, id)
}

// RevokeJoinToken revokes a join token; the streams it opened end on every
// node.
func (s *Service) RevokeJoinToken(ctx context.Context, tenant, tokenID string) (tenantspg.JoinToken, error) {
	id, err := tenants.ParseID(tenant)
	if err != nil {
		return tenantspg.JoinToken{}, invalid(err)
	}
	t, err := s.registry.RevokeJoinToken(ctx, id, tokenID)
	if err == nil {
		s.logger.Info("join token revoked", "tenant", id, "join_token_id", tokenID)
	}
	return t, err
}

// EnvoyBootstrap issues a join token for an app's sidecar and returns the
// Envoy bootstrap (YAML) that uses it.
func (s *Service) EnvoyBootstrap(ctx context.Context, tenant, app, instance string, appPort int, ttl time.Duration) ([]byte, error) {
	if s.sidecars == nil {
		return nil, fmt.Errorf("this gateway runs no xDS server: %w", tenants.ErrNotFound)
	}
	if instance == "" || strings.ContainsAny(instance, "/ \t\r\n") || len(instance) > 128 {
		return nil, invalid(fmt.Errorf("instance %q: name the sidecar's host or pod, without '/' or spaces", instance))
	}
	if appPort < 0 || appPort > 65535 {
		return nil, invalid(fmt.Errorf("app port %d is not a port number", appPort))
	}
	t, err := s.IssueJoinToken(ctx, tenant, app, ttl)
	if err != nil {
		return nil, err
	}
	return s.sidecars.Bootstrap(ctx, t.Tenant, app, instance, appPort, t.Text)
}

// SidecarStatus lists the sidecars connected to this node.
func (s *Service) SidecarStatus(tenant tenants.ID) []xds.NodeStatus {
	if s.sidecars == nil {
		return nil
	}
	return s.sidecars.Status(tenant)
}

// sidecarRoutes are the admin API's routes for Envoy sidecars.
func (h *handler) sidecarRoutes() []route {
	return []route{
		{method: http.MethodPost, path: "/v1/tenants/:tenant/apps/:app/join-tokens", access: tenantScoped, handle: h.issueJoinToken},
		{method: http.MethodGet, path: "/v1/tenants/:tenant/join-tokens", access: tenantScoped, handle: h.listJoinTokens},
		{method: http.MethodPost, path: "/v1/tenants/:tenant/join-tokens/:id/revoke", access: tenantScoped, handle: h.revokeJoinToken},
		{method: http.MethodPost, path: "/v1/tenants/:tenant/apps/:app/envoy-bootstrap", access: tenantScoped, handle: h.envoyBootstrap},
		{method: http.MethodGet, path: "/v1/tenants/:tenant/sidecars", access: tenantScoped, handle: h.tenantSidecars},
		{method: http.MethodGet, path: "/v1/sidecars", access: platformOnly, handle: h.allSidecars},
	}
}

func (h *handler) issueJoinToken(c echo.Context) error {
	var req struct {
		TTL string `json:"ttl"`
	}
	if err := h.decodeOptional(c, &req); err != nil {
		return err
	}
	ttl, err := parseOptionalDuration(req.TTL)
	if err != nil {
		return err
	}
	t, err := h.svc.IssueJoinToken(c.Request().Context(), c.Param("tenant"), c.Param("app"), ttl)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, t)
}

func (h *handler) listJoinTokens(c echo.Context) error {
	ts, err := h.svc.JoinTokens(c.Request().Context(), c.Param("tenant"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, nonNil(ts))
}

func (h *handler) revokeJoinToken(c echo.Context) error {
	t, err := h.svc.RevokeJoinToken(c.Request().Context(), c.Param("tenant"), c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, t)
}

// envoyBootstrap answers the bootstrap YAML for {"instance", "appPort",
// "ttl"}; it holds a fresh join token.
func (h *handler) envoyBootstrap(c echo.Context) error {
	var req struct {
		Instance string `json:"instance"`
		AppPort  int    `json:"appPort"`
		TTL      string `json:"ttl"`
	}
	if err := h.decode(c, &req); err != nil {
		return err
	}
	ttl, err := parseOptionalDuration(req.TTL)
	if err != nil {
		return err
	}
	y, err := h.svc.EnvoyBootstrap(c.Request().Context(), c.Param("tenant"), c.Param("app"), req.Instance, req.AppPort, ttl)
	if err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.Blob(http.StatusOK, "application/yaml", y)
}

func (h *handler) tenantSidecars(c echo.Context) error {
	id, err := tenants.ParseID(c.Param("tenant"))
	if err != nil {
		return invalid(err)
	}
	return c.JSON(http.StatusOK, nonNil(h.svc.SidecarStatus(id)))
}

func (h *handler) allSidecars(c echo.Context) error {
	return c.JSON(http.StatusOK, nonNil(h.svc.SidecarStatus("")))
}

func parseOptionalDuration(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, invalid(fmt.Errorf("ttl %q: %w", s, err))
	}
	return d, nil
}
