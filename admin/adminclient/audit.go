package adminclient

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/blockgate/blockgate/tenants"
)

// AdminToken describes a tenant admin token (never its text).
type AdminToken struct {
	ID        string     `json:"id"`
	Tenant    tenants.ID `json:"tenant"`
	Name      string     `json:"name,omitempty"`
	IssuedAt  time.Time  `json:"issuedAt"`
	ExpiresAt time.Time  `json:"expiresAt"`
	RevokedAt *time.Time `json:"revokedAt,omitempty"`
}

// IssuedAdminToken is a new tenant admin token with its text, shown only
// once.
type IssuedAdminToken struct {
	AdminToken
	Text string `json:"token"`
}

// IssueAdminToken issues a token for an admin of one tenant; ttl 0 means
// the server's default (720h). Only the platform admin may.
func (c *Client) IssueAdminToken(ctx context.Context, tenant, name string, ttl time.Duration) (IssuedAdminToken, error) {
	req := map[string]string{"name": name}
	if ttl > 0 {
		req["ttl"] = ttl.String()
	}
	var t IssuedAdminToken
	err := c.doJSON(ctx, http.MethodPost, "/v1/tenants/"+esc(tenant)+"/admin-tokens", req, &t)
	return t, err
}

// AdminTokens lists a tenant's admin tokens.
func (c *Client) AdminTokens(ctx context.Context, tenant string) ([]AdminToken, error) {
	var ts []AdminToken
	err := c.doJSON(ctx, http.MethodGet, "/v1/tenants/"+esc(tenant)+"/admin-tokens", nil, &ts)
	return ts, err
}

// RevokeAdminToken revokes a tenant admin token by id.
func (c *Client) RevokeAdminToken(ctx context.Context, id string) (AdminToken, error) {
	var t AdminToken
	err := c.doJSON(ctx, http.MethodPost, "/v1/admin-tokens/"+esc(id)+"/revoke", nil, &t)
	return t, err
}

// AuditEntry is one admin request in the audit log.
type AuditEntry struct {
	ID           int64      `json:"id"`
	At           time.Time  `json:"at"`
	Tenant       tenants.ID `json:"tenant,omitempty"`
	ActorRole    string     `json:"actorRole"`
	ActorID      string     `json:"actorId,omitempty"`
	ActorName    string     `json:"actorName,omitempty"`
	Method       string     `json:"method"`
	Route        string     `json:"route"`
	Path         string     `json:"path"`
	TargetTenant tenants.ID `json:"targetTenant,omitempty"`
	Target       string     `json:"target,omitempty"`
	Status       int        `json:"status"`
	ClientAddr   string     `json:"clientAddr,omitempty"`
}

// AuditQuery selects audit entries; zero fields take the server's defaults
// (every tenant the caller may see, 100 entries, the newest).
type AuditQuery struct {
	Tenant string
	Limit  int
	Before time.Time
}

// Audit reads the audit log, newest first. A tenant admin reads only its
// own tenant's entries.
func (c *Client) Audit(ctx context.Context, q AuditQuery) ([]AuditEntry, error) {
	v := url.Values{}
	if q.Tenant != "" {
		v.Set("tenant", q.Tenant)
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	if !q.Before.IsZero() {
		v.Set("before", q.Before.Format(time.RFC3339Nano))
	}
	path := "/v1/audit"
	if len(v) > 0 {
		path += "?" + v.Encode()
	}
	var out []AuditEntry
	err := c.doJSON(ctx, http.MethodGet, path, nil, &out)
	return out, err
}
