package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/blockgate/blockgate/auth/authca"
	"github.com/blockgate/blockgate/auth/authoidc"
	"github.com/blockgate/blockgate/auth/authpolicy"
	"github.com/blockgate/blockgate/tenants"
)

// SetCA gives the service the gateway's certificate authority, for
// operators' SVIDs and rotation. Call it before serving.
func (s *Service) SetCA(ca *authca.CA) { s.ca = ca }

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

func federationView(f authoidc.Federation) Federation {
	return Federation{Name: f.Name, Issuer: f.Issuer, JWKSURL: f.JWKSURL, Audience: f.Audience,
		AppIDClaim: f.ClaimPath(), Mapping: f.Mapping, Algorithms: f.Algorithms, Revision: f.Revision}
}

// ApplyFederation creates or replaces a tenant's trust in an external
// OIDC issuer from a FederatedIssuer resource (YAML or JSON).
func (s *Service) ApplyFederation(ctx context.Context, tenant string, doc []byte) (authoidc.Federation, error) {
	id, err := tenants.ParseID(tenant)
	if err != nil {
		return authoidc.Federation{}, invalid(err)
	}
	f, err := authoidc.ParseFederation(doc)
	if err != nil {
		return authoidc.Federation{}, invalid(err)
	}
	f.Tenant = id
	if f, err = s.registry.PutFederation(ctx, f); err != nil {
		if errors.Is(err, tenants.ErrExists) {
			return f, fmt.Errorf("another federation already trusts issuer %s with audience %s; give this tenant its own audience: %w", f.Issuer, f.Audience, tenants.ErrExists)
		}
		return f, err
	}
	s.logger.Info("federated issuer applied", "tenant", id, "federation", f.Name, "issuer", f.Issuer)
	return f, nil
}

// Federations lists a tenant's federated issuers.
func (s *Service) Federations(ctx context.Context, tenant string) ([]authoidc.Federation, error) {
	id, err := s.existing(ctx, tenant)
	if err != nil {
		return nil, err
	}
	return s.registry.Federations(ctx, id)
}

// DeleteFederation stops trusting a federated issuer.
func (s *Service) DeleteFederation(ctx context.Context, tenant, name string) error {
	id, err := tenants.ParseID(tenant)
	if err != nil {
		return invalid(err)
	}
	return s.registry.DeleteFederation(ctx, id, name)
}

// AccessPolicy is an access-control configuration as the admin API shows
// it, with what the gateway noticed about it.
type AccessPolicy struct {
	Name     string          `json:"name"`
	Apps     []string        `json:"apps,omitempty"`
	Default  bool            `json:"tenantDefault"`
	Revision int64           `json:"revision"`
	Document json.RawMessage `json:"configuration"`
	Warnings []string        `json:"warnings,omitempty"`
}

func policyView(r authpolicy.Record) AccessPolicy {
	return AccessPolicy{Name: r.Name, Apps: r.Apps, Default: r.Default(), Revision: r.Revision, Document: r.Document}
}

// ApplyAccessPolicy stores a Dapr Configuration's access control for the
// callee apps (none: the tenant's default for apps without their own).
func (s *Service) ApplyAccessPolicy(ctx context.Context, tenant string, doc []byte, apps []string) (AccessPolicy, error) {
	id, err := tenants.ParseID(tenant)
	if err != nil {
		return AccessPolicy{}, invalid(err)
	}
	for _, a := range apps {
		if err := tenants.ValidateAppID(a); err != nil {
			return AccessPolicy{}, invalid(err)
		}
	}
	cfg, err := authpolicy.Parse(doc)
	if err != nil {
		return AccessPolicy{}, invalid(err)
	}
	rec, err := s.registry.PutAccessPolicy(ctx, authpolicy.Record{Tenant: id, Name: cfg.Name, Apps: apps, Document: doc})
	switch {
	case errors.Is(err, authpolicy.ErrInvalid):
		return AccessPolicy{}, invalid(err)
	case err != nil:
		return AccessPolicy{}, err
	}
	v := policyView(rec)
	td := ""
	if s.ca != nil {
		td = s.ca.TrustDomain().Name()
	}
	v.Warnings = cfg.Warnings(id, td)
	s.logger.Info("access policy applied", "tenant", id, "name", rec.Name, "apps", apps)
	return v, nil
}

// AccessPolicies lists a tenant's access-control configurations.
func (s *Service) AccessPolicies(ctx context.Context, tenant string) ([]AccessPolicy, error) {
	id, err := s.existing(ctx, tenant)
	if err != nil {
		return nil, err
	}
	recs, err := s.registry.AccessPolicies(ctx, id)
	if err != nil {
		return nil, err
	}
	out := make([]AccessPolicy, len(recs))
	for i, r := range recs {
		out[i] = policyView(r)
	}
	return out, nil
}

// DeleteAccessPolicy removes an access-control configuration.
func (s *Service) DeleteAccessPolicy(ctx context.Context, tenant, name string) error {
	id, err := tenants.ParseID(tenant)
	if err != nil {
		return invalid(err)
	}
	return s.registry.DeleteAccessPolicy(ctx, id, name)
}

// PolicySettings are a tenant's access-policy switches.
type PolicySettings struct {
	DenyByDefault bool `json:"denyByDefault"`
}

// SetPolicySettings turns the tenant's deny-by-default switch on or off.
func (s *Service) SetPolicySettings(ctx context.Context, tenant string, ps PolicySettings) error {
	id, err := tenants.ParseID(tenant)
	if err != nil {
		return invalid(err)
	}
	if err := s.registry.SetDenyByDefault(ctx, id, ps.DenyByDefault); err != nil {
		return err
	}
	s.logger.Info("access policy settings set", "tenant", id, "deny_by_default", ps.DenyByDefault)
	return nil
}

// PolicySettings returns the tenant's access-policy switches.
func (s *Service) PolicySettings(ctx context.Context, tenant string) (PolicySettings, error) {
	id, err := s.existing(ctx, tenant)
	if err != nil {
		return PolicySettings{}, err
	}
	on, err := s.registry.DenyByDefault(ctx, id)
	return PolicySettings{DenyByDefault: on}, err
}

// IssuedSVID is an SVID as the admin API hands it out.
type IssuedSVID struct {
	SpiffeID         string    `json:"spiffeId"`
	CertificateChain string    `json:"certificateChain"`
	TrustBundle      string    `json:"trustBundle"`
	ExpiresAt        time.Time `json:"expiresAt"`
}

// IssueSVID signs a CSR (PEM or DER) for an existing app, for operators
// who provision certificates themselves; apps get theirs with their app
// token from the Dapr API.
func (s *Service) IssueSVID(ctx context.Context, tenant, appID string, csr []byte, ttl time.Duration) (IssuedSVID, error) {
	if s.ca == nil {
		return IssuedSVID{}, errors.New("this gateway has no certificate authority")
	}
	id, err := tenants.ParseID(tenant)
	if err != nil {
		return IssuedSVID{}, invalid(err)
	}
	if err := tenants.ValidateAppID(appID); err != nil {
		return IssuedSVID{}, invalid(err)
	}
	if _, err := s.registry.App(ctx, id, appID); err != nil {
		return IssuedSVID{}, err
	}
	issued, err := s.ca.IssueForApp(ctx, tenants.Principal{Tenant: id, AppID: appID}, csr, ttl)
	switch {
	case errors.Is(err, authca.ErrBadCSR), errors.Is(err, authca.ErrBadTTL):
		return IssuedSVID{}, invalid(err)
	case err != nil:
		return IssuedSVID{}, err
	}
	s.logger.Info("SVID issued by an admin", "tenant", id, "app_id", appID, "expires_at", issued.NotAfter)
	return IssuedSVID{SpiffeID: issued.ID.String(), CertificateChain: string(issued.ChainPEM),
		TrustBundle: string(issued.BundlePEM), ExpiresAt: issued.NotAfter}, nil
}

// RotateCA starts signing with a new CA generation; certificates of the
// previous one stay valid until they expire.
func (s *Service) RotateCA(ctx context.Context) (string, error) {
	if s.ca == nil {
		return "", errors.New("this gateway has no certificate authority")
	}
	gen, err := s.ca.Rotate(ctx)
	if err == nil {
		s.logger.Info("certificate authority rotated", "generation", gen)
	}
	return gen, err
}

// identityRoutes are the admin API's identity and policy routes.
func (h *handler) identityRoutes() []route {
	return []route{
		{method: http.MethodPut, path: "/v1/tenants/:tenant/federations", access: tenantScoped, handle: h.applyFederation},
		{method: http.MethodGet, path: "/v1/tenants/:tenant/federations", access: tenantScoped, handle: h.listFederations},
		{method: http.MethodDelete, path: "/v1/tenants/:tenant/federations/:name", access: tenantScoped, handle: h.deleteFederation},
		{method: http.MethodPut, path: "/v1/tenants/:tenant/access-policies", access: tenantScoped, handle: h.applyAccessPolicy},
		{method: http.MethodGet, path: "/v1/tenants/:tenant/access-policies", access: tenantScoped, handle: h.listAccessPolicies},
		{method: http.MethodDelete, path: "/v1/tenants/:tenant/access-policies/:name", access: tenantScoped, handle: h.deleteAccessPolicy},
		{method: http.MethodPut, path: "/v1/tenants/:tenant/policy-settings", access: tenantScoped, handle: h.setPolicySettings},
		{method: http.MethodGet, path: "/v1/tenants/:tenant/policy-settings", access: tenantScoped, handle: h.getPolicySettings},
		{method: http.MethodPost, path: "/v1/tenants/:tenant/apps/:app/svid", access: tenantScoped, handle: h.issueSVID},
		{method: http.MethodPost, path: "/v1/ca/rotate", access: platformOnly, handle: h.rotateCA},
		{method: http.MethodGet, path: "/v1/ca/bundle", access: public, handle: h.caBundle},
	}
}

func (h *handler) applyFederation(c echo.Context) error {
	doc, err := h.body(c)
	if err != nil {
		return err
	}
	f, err := h.svc.ApplyFederation(c.Request().Context(), c.Param("tenant"), doc)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, federationView(f))
}

func (h *handler) listFederations(c echo.Context) error {
	fs, err := h.svc.Federations(c.Request().Context(), c.Param("tenant"))
	if err != nil {
		return err
	}
	out := make([]Federation, len(fs))
	for i, f := range fs {
		out[i] = federationView(f)
	}
	return c.JSON(http.StatusOK, out)
}

func (h *handler) deleteFederation(c echo.Context) error {
	if err := h.svc.DeleteFederation(c.Request().Context(), c.Param("tenant"), c.Param("name")); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

func (h *handler) applyAccessPolicy(c echo.Context) error {
	doc, err := h.body(c)
	if err != nil {
		return err
	}
	var apps []string
	for _, a := range c.QueryParams()["app"] {
		for _, one := range strings.Split(a, ",") {
			if one = strings.TrimSpace(one); one != "" {
				apps = append(apps, one)
			}
		}
	}
	p, err := h.svc.ApplyAccessPolicy(c.Request().Context(), c.Param("tenant"), doc, apps)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, p)
}

func (h *handler) listAccessPolicies(c echo.Context) error {
	ps, err := h.svc.AccessPolicies(c.Request().Context(), c.Param("tenant"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, ps)
}

func (h *handler) deleteAccessPolicy(c echo.Context) error {
	if err := h.svc.DeleteAccessPolicy(c.Request().Context(), c.Param("tenant"), c.Param("name")); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

func (h *handler) setPolicySettings(c echo.Context) error {
	var ps PolicySettings
	if err := h.decode(c, &ps); err != nil {
		return err
	}
	if err := h.svc.SetPolicySettings(c.Request().Context(), c.Param("tenant"), ps); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, ps)
}

func (h *handler) getPolicySettings(c echo.Context) error {
	ps, err := h.svc.PolicySettings(c.Request().Context(), c.Param("tenant"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, ps)
}

// issueSVID takes the CSR as the body (PEM or DER), or JSON
// {"csr": "<PEM>", "ttl": "24h"}.
func (h *handler) issueSVID(c echo.Context) error {
	body, err := h.body(c)
	if err != nil {
		return err
	}
	csr, ttl := body, time.Duration(0)
	if trimmed := strings.TrimSpace(string(body)); strings.HasPrefix(trimmed, "{") {
		var req struct {
			CSR string `json:"csr"`
			TTL string `json:"ttl"`
		}
		if err := json.Unmarshal([]byte(trimmed), &req); err != nil {
			return invalid(fmt.Errorf("the body is neither a CSR nor {\"csr\", \"ttl\"}: %w", err))
		}
		csr = []byte(req.CSR)
		if req.TTL != "" {
			if ttl, err = time.ParseDuration(req.TTL); err != nil {
				return invalid(fmt.Errorf("ttl %q: %w", req.TTL, err))
			}
		}
	}
	out, err := h.svc.IssueSVID(c.Request().Context(), c.Param("tenant"), c.Param("app"), csr, ttl)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, out)
}

func (h *handler) rotateCA(c echo.Context) error {
	gen, err := h.svc.RotateCA(c.Request().Context())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]string{"generation": gen})
}

func (h *handler) caBundle(c echo.Context) error {
	if h.svc.ca == nil {
		return &apiError{http.StatusNotFound, "ERR_NOT_FOUND", "this gateway has no certificate authority"}
	}
	return c.Blob(http.StatusOK, "application/x-pem-file", h.svc.ca.BundlePEM())
}
