package adminclient

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"time"
)

// JoinToken is a sidecar's join token as the admin API shows it; Text is
// set only when it is issued.
type JoinToken struct {
	ID        string     `json:"id"`
	Tenant    string     `json:"tenant"`
	AppID     string     `json:"appId"`
	IssuedAt  time.Time  `json:"issuedAt"`
	ExpiresAt time.Time  `json:"expiresAt"`
	RevokedAt *time.Time `json:"revokedAt,omitempty"`
	Text      string     `json:"token,omitempty"`
}

// IssueJoinToken makes a join token for an app's sidecar; ttl 0 is the
// gateway's default.
func (c *Client) IssueJoinToken(ctx context.Context, tenant, app string, ttl time.Duration) (JoinToken, error) {
	var out JoinToken
	req := map[string]string{}
	if ttl > 0 {
		req["ttl"] = ttl.String()
	}
	err := c.doJSON(ctx, http.MethodPost, "/v1/tenants/"+esc(tenant)+"/apps/"+esc(app)+"/join-tokens", req, &out)
	return out, err
}

// JoinTokens lists a tenant's join tokens.
func (c *Client) JoinTokens(ctx context.Context, tenant string) ([]JoinToken, error) {
	var out []JoinToken
	err := c.doJSON(ctx, http.MethodGet, "/v1/tenants/"+esc(tenant)+"/join-tokens", nil, &out)
	return out, err
}

// RevokeJoinToken revokes a join token; its sidecars' streams end.
func (c *Client) RevokeJoinToken(ctx context.Context, tenant, id string) (JoinToken, error) {
	var out JoinToken
	err := c.doJSON(ctx, http.MethodPost, "/v1/tenants/"+esc(tenant)+"/join-tokens/"+esc(id)+"/revoke", nil, &out)
	return out, err
}

// EnvoyBootstrap returns the Envoy bootstrap (YAML) of an app's sidecar,
// holding a new join token.
func (c *Client) EnvoyBootstrap(ctx context.Context, tenant, app, instance string, appPort int, ttl time.Duration) ([]byte, error) {
	req := map[string]any{"instance": instance, "appPort": appPort}
	if ttl > 0 {
		req["ttl"] = ttl.String()
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	var out []byte
	err = c.do(ctx, http.MethodPost, "/v1/tenants/"+esc(tenant)+"/apps/"+esc(app)+"/envoy-bootstrap", "application/json", bytes.NewReader(body), &out)
	return out, err
}

// Sidecar is a connected sidecar as the admin API shows it.
type Sidecar struct {
	ID          string            `json:"id"`
	Tenant      string            `json:"tenant"`
	AppID       string            `json:"appId"`
	Instance    string            `json:"instance"`
	Proxyless   bool              `json:"proxyless"`
	Credential  string            `json:"credential"`
	ConnectedAt time.Time         `json:"connectedAt"`
	Version     string            `json:"version"`
	Acked       map[string]string `json:"acked"`
	NACKs       []struct {
		Type    string    `json:"type"`
		Version string    `json:"version"`
		Error   string    `json:"error"`
		At      time.Time `json:"at"`
	} `json:"nacks,omitempty"`
}

// Sidecars lists the sidecars connected to the node, one tenant's or (for
// tenant "") all.
func (c *Client) Sidecars(ctx context.Context, tenant string) ([]Sidecar, error) {
	var out []Sidecar
	path := "/v1/sidecars"
	if tenant != "" {
		path = "/v1/tenants/" + esc(tenant) + "/sidecars"
	}
	err := c.doJSON(ctx, http.MethodGet, path, nil, &out)
	return out, err
}
