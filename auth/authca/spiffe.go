package authca

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/blockgate/blockgate/tenants"
)

// GatewayID is the SPIFFE ID of the gateway's own TLS listeners:
// spiffe://<trust-domain>/gateway.
func GatewayID(td spiffeid.TrustDomain) spiffeid.ID {
	id, err := spiffeid.FromSegments(td, "gateway")
	if err != nil {
		// Only a zero trust domain gets here, which Config.Validate refuses.
		return spiffeid.ID{}
	}
	return id
}

// AppID is the SPIFFE ID of the app p acts for:
// spiffe://<trust-domain>/tenant/<tenant>/app/<app-id>. p.TokenID plays no
// part. It refuses a zero trust domain and an invalid tenant or app id.
func AppID(td spiffeid.TrustDomain, p tenants.Principal) (spiffeid.ID, error) {
	if td.IsZero() {
		return spiffeid.ID{}, errors.New("app SPIFFE ID: no trust domain")
	}
	if _, err := tenants.ParseID(string(p.Tenant)); err != nil {
		return spiffeid.ID{}, fmt.Errorf("app SPIFFE ID: %w", err)
	}
	if err := tenants.ValidateAppID(p.AppID); err != nil {
		return spiffeid.ID{}, fmt.Errorf("app SPIFFE ID: %w", err)
	}
	// Tenant names and app ids use only characters SPIFFE allows in a path
	// segment, and neither can be "." or "..", so this cannot fail; the
	// error is kept rather than trusted.
	id, err := spiffeid.FromSegments(td, "tenant", string(p.Tenant), "app", p.AppID)
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("app SPIFFE ID: %w", err)
	}
	return id, nil
}

// PrincipalOf is the app that id names, the inverse of AppID. It refuses an
// ID of another trust domain than td, and any path that is not exactly
// /tenant/<tenant>/app/<app-id> with a valid tenant name and app id (the
// gateway's own ID included). The Principal has no TokenID.
func PrincipalOf(id spiffeid.ID, td spiffeid.TrustDomain) (tenants.Principal, error) {
	if id.IsZero() {
		return tenants.Principal{}, errors.New("SPIFFE ID is empty")
	}
	if td.IsZero() || !id.MemberOf(td) {
		return tenants.Principal{}, fmt.Errorf("SPIFFE ID %s is not in trust domain %q", id, td.Name())
	}
	// id.Path() is canonical (spiffeid validated it): no empty, "." or
	// ".." segments and no trailing slash.
	seg := strings.Split(id.Path(), "/")
	if len(seg) != 5 || seg[0] != "" || seg[1] != "tenant" || seg[3] != "app" {
		return tenants.Principal{}, fmt.Errorf("SPIFFE ID %s does not name an app: want %s/tenant/<tenant>/app/<app-id>", id, td.IDString())
	}
	tenant, err := tenants.ParseID(seg[2])
	if err != nil {
		return tenants.Principal{}, fmt.Errorf("SPIFFE ID %s: %w", id, err)
	}
	if err := tenants.ValidateAppID(seg[4]); err != nil {
		return tenants.Principal{}, fmt.Errorf("SPIFFE ID %s: %w", id, err)
	}
	return tenants.Principal{Tenant: tenant, AppID: seg[4]}, nil
}
