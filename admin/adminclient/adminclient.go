// Package adminclient is a Go client of blockgate's admin REST API, used by
// the blockgate CLI.
package adminclient

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/blockgate/blockgate/tenants"
)

// Client calls one gateway's admin API.
type Client struct {
	base  string
	token string
	http  *http.Client
}

// New returns a client of the admin API at baseURL (such as
// http://127.0.0.1:8080) that authenticates with token: the platform admin
// token or a tenant admin token.
func New(baseURL, token string) *Client {
	return &Client{base: strings.TrimRight(baseURL, "/"), token: token, http: &http.Client{Timeout: 30 * time.Second}}
}

// Error is an error answer of the admin API.
type Error struct {
	Status  int
	Code    string `json:"errorCode"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return fmt.Sprintf("%s (%d %s)", e.Message, e.Status, e.Code) }

func (c *Client) do(ctx context.Context, method, path, contentType string, body io.Reader, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach the admin API at %s: %w (is the gateway running? set BLOCKGATE_ADMIN_URL)", c.base, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		e := &Error{Status: resp.StatusCode}
		if json.Unmarshal(data, e) != nil || e.Message == "" {
			e.Message = strings.TrimSpace(string(data))
		}
		return e
	}
	if raw, ok := out.(*[]byte); ok {
		*raw = data // a body that is not JSON, kept as it is
		return nil
	}
	if out != nil && len(data) > 0 {
		return json.Unmarshal(data, out)
	}
	return nil
}

func (c *Client) doJSON(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	return c.do(ctx, method, path, "application/json", body, out)
}

func esc(s string) string { return url.PathEscape(s) }

// CreateTenant creates a tenant.
func (c *Client) CreateTenant(ctx context.Context, name string) (tenants.Tenant, error) {
	var t tenants.Tenant
	err := c.doJSON(ctx, http.MethodPost, "/v1/tenants", map[string]string{"name": name}, &t)
	return t, err
}

// Tenants lists tenants.
func (c *Client) Tenants(ctx context.Context) ([]tenants.Tenant, error) {
	var ts []tenants.Tenant
	err := c.doJSON(ctx, http.MethodGet, "/v1/tenants", nil, &ts)
	return ts, err
}

// SetLimits replaces a tenant's limits and returns the tenant.
func (c *Client) SetLimits(ctx context.Context, name string, l tenants.Limits) (tenants.Tenant, error) {
	var t tenants.Tenant
	err := c.doJSON(ctx, http.MethodPut, "/v1/tenants/"+esc(name)+"/limits", l, &t)
	return t, err
}

// Tenant returns one tenant with its limits.
func (c *Client) Tenant(ctx context.Context, name string) (tenants.Tenant, error) {
	var t tenants.Tenant
	err := c.doJSON(ctx, http.MethodGet, "/v1/tenants/"+esc(name), nil, &t)
	return t, err
}

// DeleteTenant deletes a tenant with everything in it.
func (c *Client) DeleteTenant(ctx context.Context, name string) error {
	return c.doJSON(ctx, http.MethodDelete, "/v1/tenants/"+esc(name), nil, nil)
}

// CreateApp registers an app; appToken (optional) is sent to its endpoint.
func (c *Client) CreateApp(ctx context.Context, tenant, appID, endpoint string, appToken ...string) (tenants.App, error) {
	req := map[string]string{"appId": appID, "endpoint": endpoint}
	if len(appToken) > 0 {
		req["appToken"] = appToken[0]
	}
	var a tenants.App
	err := c.doJSON(ctx, http.MethodPost, "/v1/tenants/"+esc(tenant)+"/apps", req, &a)
	return a, err
}

// Apps lists a tenant's apps.
func (c *Client) Apps(ctx context.Context, tenant string) ([]tenants.App, error) {
	var as []tenants.App
	err := c.doJSON(ctx, http.MethodGet, "/v1/tenants/"+esc(tenant)+"/apps", nil, &as)
	return as, err
}

// DeleteApp deletes an app and revokes its tokens.
func (c *Client) DeleteApp(ctx context.Context, tenant, appID string) error {
	return c.doJSON(ctx, http.MethodDelete, "/v1/tenants/"+esc(tenant)+"/apps/"+esc(appID), nil, nil)
}

// IssuedToken is a newly issued token with its text.
type IssuedToken struct {
	tenants.Token
	Text string `json:"token"`
}

// IssueToken issues an app token; ttl 0 means the server's default.
func (c *Client) IssueToken(ctx context.Context, tenant, appID string, ttl time.Duration) (IssuedToken, error) {
	req := map[string]string{"appId": appID}
	if ttl > 0 {
		req["ttl"] = ttl.String()
	}
	var t IssuedToken
	err := c.doJSON(ctx, http.MethodPost, "/v1/tenants/"+esc(tenant)+"/tokens", req, &t)
	return t, err
}

// Tokens lists a tenant's tokens.
func (c *Client) Tokens(ctx context.Context, tenant string) ([]tenants.Token, error) {
	var ts []tenants.Token
	err := c.doJSON(ctx, http.MethodGet, "/v1/tenants/"+esc(tenant)+"/tokens", nil, &ts)
	return ts, err
}

// RevokeToken revokes a token by id.
func (c *Client) RevokeToken(ctx context.Context, id string) (tenants.Token, error) {
	var t tenants.Token
	err := c.doJSON(ctx, http.MethodPost, "/v1/tokens/"+esc(id)+"/revoke", nil, &t)
	return t, err
}

// AppliedApp is the answer to ApplyApp.
type AppliedApp struct {
	App     tenants.App `json:"app"`
	Created bool        `json:"created"`
}

// ApplyApp registers an app from a declarative resource (blockgate's App
// or Dapr's HTTPEndpoint) in YAML or JSON.
func (c *Client) ApplyApp(ctx context.Context, tenant string, doc []byte) (AppliedApp, error) {
	var out AppliedApp
	err := c.do(ctx, http.MethodPut, "/v1/tenants/"+esc(tenant)+"/apps", "application/yaml", bytes.NewReader(doc), &out)
	return out, err
}

// Component is a component as the admin API shows it.
type Component struct {
	Name      string          `json:"name"`
	Type      string          `json:"type"`
	Version   string          `json:"version"`
	Revision  int64           `json:"revision"`
	Component json.RawMessage `json:"component"`
}

// ApplyComponent creates or replaces a component from a Dapr Component
// document in YAML or JSON.
func (c *Client) ApplyComponent(ctx context.Context, tenant string, doc []byte) (Component, error) {
	var out Component
	err := c.do(ctx, http.MethodPut, "/v1/tenants/"+esc(tenant)+"/components", "application/yaml", bytes.NewReader(doc), &out)
	return out, err
}

// Components lists a tenant's components.
func (c *Client) Components(ctx context.Context, tenant string) ([]Component, error) {
	var out []Component
	err := c.doJSON(ctx, http.MethodGet, "/v1/tenants/"+esc(tenant)+"/components", nil, &out)
	return out, err
}

// DeleteComponent deletes a component.
func (c *Client) DeleteComponent(ctx context.Context, tenant, name string) error {
	return c.doJSON(ctx, http.MethodDelete, "/v1/tenants/"+esc(tenant)+"/components/"+esc(name), nil, nil)
}

// RotateSigningKey starts signing tokens with a new key.
func (c *Client) RotateSigningKey(ctx context.Context) (string, error) {
	var out struct {
		KID string `json:"kid"`
	}
	err := c.doJSON(ctx, http.MethodPost, "/v1/signing-keys/rotate", nil, &out)
	return out.KID, err
}

// Subscription is a declarative subscription as the admin API shows it.
type Subscription struct {
	Name     string          `json:"name"`
	Pubsub   string          `json:"pubsubname"`
	Topic    string          `json:"topic"`
	Revision int64           `json:"revision"`
	Document json.RawMessage `json:"subscription"`
}

// ApplySubscription creates or replaces a declarative subscription from a
// Dapr Subscription resource in YAML or JSON.
func (c *Client) ApplySubscription(ctx context.Context, tenant string, doc []byte) (Subscription, error) {
	var out Subscription
	err := c.do(ctx, http.MethodPut, "/v1/tenants/"+esc(tenant)+"/subscriptions", "application/yaml", bytes.NewReader(doc), &out)
	return out, err
}

// Subscriptions lists a tenant's declarative subscriptions.
func (c *Client) Subscriptions(ctx context.Context, tenant string) ([]Subscription, error) {
	var out []Subscription
	err := c.doJSON(ctx, http.MethodGet, "/v1/tenants/"+esc(tenant)+"/subscriptions", nil, &out)
	return out, err
}

// DeleteSubscription deletes a declarative subscription.
func (c *Client) DeleteSubscription(ctx context.Context, tenant, name string) error {
	return c.doJSON(ctx, http.MethodDelete, "/v1/tenants/"+esc(tenant)+"/subscriptions/"+esc(name), nil, nil)
}

// Resiliency is a Resiliency resource as the admin API shows it.
type Resiliency struct {
	Name     string          `json:"name"`
	Revision int64           `json:"revision"`
	Document json.RawMessage `json:"resiliency"`
}

// ApplyResiliency creates or replaces a tenant's Dapr Resiliency resource.
func (c *Client) ApplyResiliency(ctx context.Context, tenant string, doc []byte) (Resiliency, error) {
	var out Resiliency
	err := c.do(ctx, http.MethodPut, "/v1/tenants/"+esc(tenant)+"/resiliencies", "application/yaml", bytes.NewReader(doc), &out)
	return out, err
}

// Resiliencies lists a tenant's Resiliency resources.
func (c *Client) Resiliencies(ctx context.Context, tenant string) ([]Resiliency, error) {
	var out []Resiliency
	err := c.doJSON(ctx, http.MethodGet, "/v1/tenants/"+esc(tenant)+"/resiliencies", nil, &out)
	return out, err
}

// DeleteResiliency deletes a tenant's Resiliency resource.
func (c *Client) DeleteResiliency(ctx context.Context, tenant, name string) error {
	return c.doJSON(ctx, http.MethodDelete, "/v1/tenants/"+esc(tenant)+"/resiliencies/"+esc(name), nil, nil)
}

// AddInstance registers a further instance of an app.
func (c *Client) AddInstance(ctx context.Context, tenant, appID, id, endpoint string) error {
	return c.doJSON(ctx, http.MethodPut, "/v1/tenants/"+esc(tenant)+"/apps/"+esc(appID)+"/instances/"+esc(id),
		map[string]string{"endpoint": endpoint}, nil)
}

// RemoveInstance removes an instance of an app.
func (c *Client) RemoveInstance(ctx context.Context, tenant, appID, id string) error {
	return c.doJSON(ctx, http.MethodDelete, "/v1/tenants/"+esc(tenant)+"/apps/"+esc(appID)+"/instances/"+esc(id), nil, nil)
}

// SetHealth sets an app's health check; interval 0 and threshold 0 take the
// defaults (5s, 3).
func (c *Client) SetHealth(ctx context.Context, tenant, appID, path string, interval time.Duration, threshold int) error {
	req := map[string]any{"path": path, "threshold": threshold}
	if interval > 0 {
		req["interval"] = interval.String()
	}
	return c.doJSON(ctx, http.MethodPut, "/v1/tenants/"+esc(tenant)+"/apps/"+esc(appID)+"/health", req, nil)
}
