package authca_test

import (
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/blockgate/blockgate/auth/authca"
	"github.com/blockgate/blockgate/tenants"
)

func TestAppID(t *testing.T) {
	tests := []struct {
		name string
		td   spiffeid.TrustDomain
		p    tenants.Principal
		want string // "" for an error
	}{
		{name: "app", td: td, p: tenants.Principal{Tenant: "acme", AppID: "orders"}, want: "spiffe://example.org/tenant/acme/app/orders"},
		{name: "token id ignored", td: td, p: tenants.Principal{Tenant: "acme", AppID: "Orders.v2_x-1", TokenID: "tok"}, want: "spiffe://example.org/tenant/acme/app/Orders.v2_x-1"},
		{name: "no trust domain", p: tenants.Principal{Tenant: "acme", AppID: "orders"}},
		{name: "bad tenant", td: td, p: tenants.Principal{Tenant: "Acme", AppID: "orders"}},
		{name: "no tenant", td: td, p: tenants.Principal{AppID: "orders"}},
		{name: "bad app id", td: td, p: tenants.Principal{Tenant: "acme", AppID: "a/b"}},
		{name: "no app id", td: td, p: tenants.Principal{Tenant: "acme"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := authca.AppID(tt.td, tt.p)
			if tt.want == "" {
				if err == nil {
					t.Fatalf("AppID = %v, want an error", id)
				}
				return
			}
			if err != nil || id.String() != tt.want {
				t.Fatalf("AppID = %v, %v; want %s", id, err, tt.want)
			}
			p, err := authca.PrincipalOf(id, tt.td)
			if err != nil || p.Tenant != tt.p.Tenant || p.AppID != tt.p.AppID || p.TokenID != "" {
				t.Fatalf("PrincipalOf(AppID(p)) = %+v, %v; want %+v without token", p, err, tt.p)
			}
		})
	}
}

func TestPrincipalOf(t *testing.T) {
	tests := []struct {
		name string
		id   string
		ok   bool
	}{
		{name: "app", id: "spiffe://example.org/tenant/acme/app/orders", ok: true},
		{name: "other trust domain", id: "spiffe://other.example/tenant/acme/app/orders"},
		{name: "gateway", id: "spiffe://example.org/gateway"},
		{name: "trust domain only", id: "spiffe://example.org"},
		{name: "tenant only", id: "spiffe://example.org/tenant/acme"},
		{name: "no app id", id: "spiffe://example.org/tenant/acme/app"},
		{name: "extra segment", id: "spiffe://example.org/tenant/acme/app/orders/x"},
		{name: "wrong first segment", id: "spiffe://example.org/tenants/acme/app/orders"},
		{name: "wrong third segment", id: "spiffe://example.org/tenant/acme/apps/orders"},
		{name: "invalid tenant", id: "spiffe://example.org/tenant/Acme/app/orders"},
		{name: "invalid app id", id: "spiffe://example.org/tenant/acme/app/-orders"},
		{name: "prefixed", id: "spiffe://example.org/x/tenant/acme/app/orders"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := spiffeid.RequireFromString(tt.id)
			p, err := authca.PrincipalOf(id, td)
			if tt.ok != (err == nil) {
				t.Fatalf("PrincipalOf(%s) = %+v, %v; want ok=%v", tt.id, p, err, tt.ok)
			}
		})
	}
	if _, err := authca.PrincipalOf(spiffeid.ID{}, td); err == nil {
		t.Error("PrincipalOf of a zero ID succeeded")
	}
}
