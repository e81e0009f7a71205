package adminclient

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"time"
)

// Federation is a federated issuer as the admin API shows it.
type Federation struct {
	Name       string            `json:"name"`
	Issuer     string            `json:"issuer"`
	JWKSURL    string            `json:"jwksURL,omitempty"`
	Audience   string            `json:"audience"`
	AppIDClaim string            `json:"appIDClaim"`
	Mapping    map[string]string `json:"mapping,omitempty"`
	Algorithms []string          `json:"algorithms,omitempty"`
	Revision   int64             `json:"revision"`
}

// ApplyFederation trusts an external OIDC issuer for a tenant, from a
// FederatedIssuer resource in YAML or JSON.
func (c *Client) ApplyFederation(ctx context.Context, tenant string, doc []byte) (Federation, error) {
	var out Federation
	err := c.do(ctx, http.MethodPut, "/v1/tenants/"+esc(tenant)+"/federations", "application/yaml", bytes.NewReader(doc), &out)
	return out, err
}

// Federations lists a tenant's federated issuers.
func (c *Client) Federations(ctx context.Context, tenant string) ([]Federation, error) {
	var out []Federation
	err := c.doJSON(ctx, http.MethodGet, "/v1/tenants/"+esc(tenant)+"/federations", nil, &out)
	return out, err
}

// DeleteFederation stops trusting a federated issuer.
func (c *Client) DeleteFederation(ctx context.Context, tenant, name string) error {
	return c.doJSON(ctx, http.MethodDelete, "/v1/tenants/"+esc(tenant)+"/federations/"+esc(name), nil, nil)
}

// AccessPolicy is an access-control configuration as the admin API shows it.
type AccessPolicy struct {
	Name          string          `json:"name"`
	Apps          []string        `json:"apps,omitempty"`
	TenantDefault bool            `json:"tenantDefault"`
	Revision      int64           `json:"revision"`
	Configuration json.RawMessage `json:"configuration"`
	Warnings      []string        `json:"warnings,omitempty"`
}

// ApplyAccessPolicy stores a Dapr Configuration's access control for the
// callee apps (none: the tenant's default).
func (c *Client) ApplyAccessPolicy(ctx context.Context, tenant string, doc []byte, apps []string) (AccessPolicy, error) {
	var out AccessPolicy
	q := url.Values{"app": apps}.Encode()
	path := "/v1/tenants/" + esc(tenant) + "/access-policies"
	if q != "" {
		path += "?" + q
	}
	err := c.do(ctx, http.MethodPut, path, "application/yaml", bytes.NewReader(doc), &out)
	return out, err
}

// AccessPolicies lists a tenant's access-control configurations.
func (c *Client) AccessPolicies(ctx context.Context, tenant string) ([]AccessPolicy, error) {
	var out []AccessPolicy
	err := c.doJSON(ctx, http.MethodGet, "/v1/tenants/"+esc(tenant)+"/access-policies", nil, &out)
	return out, err
}

// DeleteAccessPolicy removes an access-control configuration.
func (c *Client) DeleteAccessPolicy(ctx context.Context, tenant, name string) error {
	return c.doJSON(ctx, http.MethodDelete, "/v1/tenants/"+esc(tenant)+"/access-policies/"+esc(name), nil, nil)
}

// SetDenyByDefault turns a tenant's deny-by-default switch on or off.
func (c *Client) SetDenyByDefault(ctx context.Context, tenant string, on bool) error {
	return c.doJSON(ctx, http.MethodPut, "/v1/tenants/"+esc(tenant)+"/policy-settings", map[string]bool{"denyByDefault": on}, nil)
}

// SVID is an app certificate as the admin API hands it out.
type SVID struct {
	SpiffeID         string    `json:"spiffeId"`
	CertificateChain string    `json:"certificateChain"`
	TrustBundle      string    `json:"trustBundle"`
	ExpiresAt        time.Time `json:"expiresAt"`
}

// IssueSVID has the gateway's CA sign csrPEM for an app; ttl 0 is the
// gateway's default.
func (c *Client) IssueSVID(ctx context.Context, tenant, app string, csrPEM []byte, ttl time.Duration) (SVID, error) {
	var out SVID
	req := map[string]string{"csr": string(csrPEM)}
	if ttl > 0 {
		req["ttl"] = ttl.String()
	}
	err := c.doJSON(ctx, http.MethodPost, "/v1/tenants/"+esc(tenant)+"/apps/"+esc(app)+"/svid", req, &out)
	return out, err
}

// RotateCA makes the gateway's CA sign with a new generation.
func (c *Client) RotateCA(ctx context.Context) (string, error) {
	var out struct {
		Generation string `json:"generation"`
	}
	err := c.doJSON(ctx, http.MethodPost, "/v1/ca/rotate", nil, &out)
	return out.Generation, err
}
