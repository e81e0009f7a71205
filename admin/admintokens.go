package admin

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode"

	"github.com/labstack/echo/v4"

	"github.com/blockgate/blockgate/tenants"
	"github.com/blockgate/blockgate/tenants/tenantspg"
)

// AdminTokenPrefix starts every tenant admin token, so that one is
// recognisable in a leak scan and never confused with the platform token.
//
// Tenant admin tokens are opaque random strings, AdminTokenPrefix followed
// by 32 random bytes in hex; the registry keeps only their SHA-256 and
// every admin request looks the hash up. They are deliberately not JWTs
// signed by the app-token authority (auth/authjwt):
//
//   - They cannot be mistaken for app tokens, in either direction, by
//     construction rather than by an audience check that every verifier
//     must remember: authjwt.Verify (and the federated verifier) cannot
//     parse one, and the admin API never calls a JWT verifier, so an app
//     token is just a wrong admin token there.
//   - Revocation and expiry hold on every node the moment the registry
//     commits, with no revocation list, cache or notification to get right:
//     the admin API is low-volume, so one indexed Postgres read per request
//     is cheap.
//   - Rotating or retiring an app-token signing key, which is routine,
//     never touches admin sessions, and a leaked signing key mints app
//     tokens only.
//
// A plain SHA-256 suffices because the token is 256 random bits, not a
// password: a dump of the table yields no usable token and nothing that
// can be guessed from.
const AdminTokenPrefix = "bgtadm_"

// Admin token lifetimes.
const (
	DefaultAdminTokenTTL = 30 * 24 * time.Hour
	MaxAdminTokenTTL     = 365 * 24 * time.Hour
)

// maxAdminTokenName bounds the name given to an admin token.
const maxAdminTokenName = 64

// Role is what an admin principal may do.
type Role string

// The admin roles.
const (
	// RolePlatform is the platform admin: every tenant and the
	// platform-wide endpoints. Its credential is the admin token the
	// gateway is configured with.
	RolePlatform Role = "platform"
	// RoleTenant is the admin of one tenant, with a token a platform admin
	// issued for it.
	RoleTenant Role = "tenant"
)

// Principal is who an admin request acts for.
type Principal struct {
	Role Role
	// Tenant is the tenant of a tenant admin; empty for the platform.
	Tenant tenants.ID
	// TokenID is "platform" for the platform admin, else the id of the
	// tenant admin's token.
	TokenID string
	// Name is the name the admin token was issued with.
	Name string
}

var platformPrincipal = Principal{Role: RolePlatform, TokenID: "platform"}

// IssuedAdminToken is a new tenant admin token: the only time its text is
// shown.
type IssuedAdminToken struct {
	tenantspg.AdminToken
	Text string `json:"token"`
}

// IssueAdminToken makes a token for an admin of one existing tenant; ttl 0
// means DefaultAdminTokenTTL.
func (s *Service) IssueAdminToken(ctx context.Context, tenant, name string, ttl time.Duration) (IssuedAdminToken, error) {
	id, err := tenants.ParseID(tenant)
	if err != nil {
		return IssuedAdminToken{}, invalid(err)
	}
	if err := validateTokenName(name); err != nil {
		return IssuedAdminToken{}, invalid(err)
	}
	if ttl == 0 {
		ttl = DefaultAdminTokenTTL
	}
	if ttl < time.Minute || ttl > MaxAdminTokenTTL {
		return IssuedAdminToken{}, invalid(fmt.Errorf("admin token ttl %s is out of range: use 1m to %s", ttl, MaxAdminTokenTTL))
	}
	var secret [32]byte
	if _, err := rand.Read(secret[:]); err != nil {
		return IssuedAdminToken{}, err
	}
	text := AdminTokenPrefix + hex.EncodeToString(secret[:])
	now := s.now().Truncate(time.Second)
	t := tenantspg.AdminToken{ID: newID("adm_"), Tenant: id, Name: name, IssuedAt: now, ExpiresAt: now.Add(ttl)}
	if err := s.registry.CreateAdminToken(ctx, t, sha256.Sum256([]byte(text))); err != nil {
		return IssuedAdminToken{}, err
	}
	s.logger.Info("admin token issued", "tenant", id, "admin_token_id", t.ID, "name", name, "expires_at", t.ExpiresAt)
	return IssuedAdminToken{AdminToken: t, Text: text}, nil
}

func validateTokenName(name string) error {
	if len(name) > maxAdminTokenName {
		return fmt.Errorf("the name must be at most %d bytes", maxAdminTokenName)
	}
	for _, r := range name {
		if !unicode.IsPrint(r) {
			return fmt.Errorf("the name must be printable text")
		}
	}
	return nil
}

// AdminTokens lists a tenant's admin tokens (never their text).
func (s *Service) AdminTokens(ctx context.Context, tenant string) ([]tenantspg.AdminToken, error) {
	id, err := s.existing(ctx, tenant)
	if err != nil {
		return nil, err
	}
	return s.registry.AdminTokens(ctx, id)
}

// RevokeAdminToken revokes a tenant admin token by id, on every node at
// once.
func (s *Service) RevokeAdminToken(ctx context.Context, id string) (tenantspg.AdminToken, error) {
	t, err := s.registry.RevokeAdminToken(ctx, id)
	if err == nil {
		s.logger.Info("admin token revoked", "tenant", t.Tenant, "admin_token_id", id)
	}
	return t, err
}

// ErrUnauthenticated is returned (wrapped) for a missing, unknown, expired
// or revoked admin token.
var ErrUnauthenticated = errors.New("unauthenticated")

// AuthenticateAdminToken returns the tenant admin that token text speaks
// for. A token that the registry knows but that expired or was revoked
// yields its principal (for the audit log) together with an error matching
// ErrUnauthenticated; an unknown one, a zero Principal and such an error.
func (s *Service) AuthenticateAdminToken(ctx context.Context, text string) (Principal, error) {
	if !strings.HasPrefix(text, AdminTokenPrefix) {
		return Principal{}, fmt.Errorf("%w: not an admin token", ErrUnauthenticated)
	}
	t, err := s.registry.AdminTokenByHash(ctx, sha256.Sum256([]byte(text)))
	if errors.Is(err, tenants.ErrNotFound) {
		return Principal{}, fmt.Errorf("%w: unknown admin token", ErrUnauthenticated)
	}
	if err != nil {
		return Principal{}, err
	}
	p := Principal{Role: RoleTenant, Tenant: t.Tenant, TokenID: t.ID, Name: t.Name}
	switch {
	case t.RevokedAt != nil:
		return p, fmt.Errorf("%w: admin token %s was revoked", ErrUnauthenticated, t.ID)
	case !s.now().Before(t.ExpiresAt):
		return p, fmt.Errorf("%w: admin token %s expired at %s", ErrUnauthenticated, t.ID, t.ExpiresAt.Format(time.RFC3339))
	}
	return p, nil
}

// tokenTenant returns the tenant of an app token.
func (s *Service) tokenTenant(ctx context.Context, id string) (tenants.ID, error) {
	t, err := s.registry.Token(ctx, id)
	return t.Tenant, err
}

// adminTokenTenant returns the tenant of an admin token.
func (s *Service) adminTokenTenant(ctx context.Context, id string) (tenants.ID, error) {
	t, err := s.registry.AdminToken(ctx, id)
	return t.Tenant, err
}

// AuditLog reads the audit log, newest first.
func (s *Service) AuditLog(ctx context.Context, q tenantspg.AuditQuery) ([]tenantspg.AuditEntry, error) {
	return s.registry.AuditLog(ctx, q)
}

// newID returns prefix and 12 random bytes in hex.
func newID(prefix string) string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

func (h *handler) issueAdminToken(c echo.Context) error {
	var req struct {
		Name string `json:"name"`
		TTL  string `json:"ttl"`
	}
	if err := h.decode(c, &req); err != nil {
		return err
	}
	var ttl time.Duration
	if req.TTL != "" {
		d, err := time.ParseDuration(req.TTL)
		if err != nil {
			return invalid(fmt.Errorf("ttl %q is not a duration like 720h", req.TTL))
		}
		ttl = d
	}
	t, err := h.svc.IssueAdminToken(c.Request().Context(), c.Param("tenant"), req.Name, ttl)
	if err != nil {
		return err
	}
	setTarget(c, "", t.ID)
	return c.JSON(http.StatusCreated, t)
}

func (h *handler) listAdminTokens(c echo.Context) error {
	ts, err := h.svc.AdminTokens(c.Request().Context(), c.Param("tenant"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, nonNil(ts))
}

func (h *handler) revokeAdminToken(c echo.Context) error {
	t, err := h.svc.RevokeAdminToken(c.Request().Context(), c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, t)
}
