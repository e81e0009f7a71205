package tenantspg

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/blockgate/blockgate/auth/authoidc"
	"github.com/blockgate/blockgate/tenants"
)

func federation(tenant tenants.ID, name, audience string) authoidc.Federation {
	return authoidc.Federation{
		Tenant:     tenant,
		Name:       name,
		Issuer:     "https://kubernetes.default.svc",
		Audience:   audience,
		AppIDClaim: "kubernetes.io.serviceaccount.name",
		Mapping:    map[string]string{"orders-sa": "orders"},
	}
}

func TestFederations(t *testing.T) {
	r := newRegistry(t)
	ctx := t.Context()
	for _, id := range []tenants.ID{"acme", "globex"} {
		if _, err := r.CreateTenant(ctx, id); err != nil {
			t.Fatal(err)
		}
	}

	f, err := r.PutFederation(ctx, federation("acme", "k8s", "acme-gw"))
	if err != nil || f.Revision != 1 {
		t.Fatalf("put: %+v %v", f, err)
	}
	f.Algorithms = []string{"RS256"}
	if f, err = r.PutFederation(ctx, f); err != nil || f.Revision != 2 {
		t.Fatalf("re-put must bump the revision: %+v %v", f, err)
	}
	got, err := r.Federations(ctx, "acme")
	if err != nil || len(got) != 1 || !reflect.DeepEqual(got[0], f) {
		t.Fatalf("federations %+v %v, want [%+v]", got, err, f)
	}

	tests := []struct {
		name string
		f    authoidc.Federation
		want error
	}{
		{"missing tenant", federation("nope", "k8s", "nope-gw"), tenants.ErrNotFound},
		{"invalid federation", authoidc.Federation{Tenant: "acme", Name: "x", Issuer: "http://x", Audience: "a"}, nil},
		{"invalid tenant name", federation("Acme", "k8s", "a"), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := r.PutFederation(ctx, tt.f)
			if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Fatalf("PutFederation: %v, want %v", err, tt.want)
			}
		})
	}

	if _, err := r.PutFederation(ctx, federation("globex", "k8s", "globex-gw")); err != nil {
		t.Fatal(err)
	}
	all, err := r.AllFederations(ctx)
	if err != nil || len(all) != 2 || all[0].Tenant != "acme" || all[1].Tenant != "globex" || all[1].Audience != "globex-gw" {
		t.Fatalf("all federations %+v %v", all, err)
	}

	if err := r.DeleteFederation(ctx, "acme", "k8s"); err != nil {
		t.Fatal(err)
	}
	if err := r.DeleteFederation(ctx, "acme", "k8s"); !errors.Is(err, tenants.ErrNotFound) {
		t.Fatalf("deleting twice: %v", err)
	}
	if got, _ := r.Federations(ctx, "acme"); len(got) != 0 {
		t.Fatalf("deleted federation still listed: %+v", got)
	}
	// A tenant's federations go with it.
	if err := r.DeleteTenant(ctx, "globex"); err != nil {
		t.Fatal(err)
	}
	if all, err := r.AllFederations(ctx); err != nil || len(all) != 0 {
		t.Fatalf("federations outlived their tenant: %+v %v", all, err)
	}
}

// TestFederationIssuerAudienceUnique checks the rule that gives a federated
// token at most one tenant: no two federations anywhere share an issuer
// and an audience.
func TestFederationIssuerAudienceUnique(t *testing.T) {
	r := newRegistry(t)
	ctx := t.Context()
	for _, id := range []tenants.ID{"acme", "evil"} {
		if _, err := r.CreateTenant(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.PutFederation(ctx, federation("acme", "k8s", "blockgate")); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		f    authoidc.Federation
	}{
		{"another tenant claims the same issuer and audience", federation("evil", "steal", "blockgate")},
		{"same tenant, second federation", federation("acme", "k8s-copy", "blockgate")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := r.PutFederation(ctx, tt.f)
			if !errors.Is(err, tenants.ErrExists) {
				t.Fatalf("PutFederation: %v, want ErrExists", err)
			}
			if strings.Contains(err.Error(), "acme") && tt.f.Tenant != "acme" {
				t.Errorf("the refusal names the tenant that holds the pair: %v", err)
			}
		})
	}
	// Moving an existing federation onto a taken pair is refused too.
	if _, err := r.PutFederation(ctx, federation("evil", "k8s", "evil-gw")); err != nil {
		t.Fatal(err)
	}
	if _, err := r.PutFederation(ctx, federation("evil", "k8s", "blockgate")); !errors.Is(err, tenants.ErrExists) {
		t.Fatalf("moving onto a taken pair: %v", err)
	}
	// The same audience at another issuer, and another audience at the same
	// issuer, are fine.
	other := federation("evil", "gh", "blockgate")
	other.Issuer = "https://token.actions.githubusercontent.com"
	if _, err := r.PutFederation(ctx, other); err != nil {
		t.Fatalf("same audience, other issuer: %v", err)
	}
	all, err := r.AllFederations(ctx)
	if err != nil || len(all) != 3 {
		t.Fatalf("all federations %+v %v", all, err)
	}
	// Replacing a federation with itself keeps its pair.
	if _, err := r.PutFederation(ctx, federation("acme", "k8s", "blockgate")); err != nil {
		t.Fatalf("re-put of the holder: %v", err)
	}
}

// TestFederationRowLevelSecurity: a tenant-scoped read never sees another
// tenant's federations, even when it asks for them.
func TestFederationRowLevelSecurity(t *testing.T) {
	r := newRegistry(t)
	ctx := t.Context()
	for _, id := range []tenants.ID{"a", "b"} {
		if _, err := r.CreateTenant(ctx, id); err != nil {
			t.Fatal(err)
		}
		if _, err := r.PutFederation(ctx, federation(id, "k8s", string(id)+"-gw")); err != nil {
			t.Fatal(err)
		}
	}
	var n int
	err := r.tenant(ctx, "a", func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, "SELECT count(*) FROM federated_issuers WHERE tenant_id <> 'a'").Scan(&n)
	})
	if err != nil || n != 0 {
		t.Fatalf("tenant a sees %d of other tenants' federations (err %v)", n, err)
	}
	got, err := r.Federations(ctx, "a")
	if err != nil || len(got) != 1 || got[0].Tenant != "a" {
		t.Fatalf("tenant a's federations %+v %v", got, err)
	}
	if err := r.pool.QueryRow(ctx, "SELECT count(*) FROM federated_issuers").Scan(&n); err != nil || n != 0 {
		t.Fatalf("an unscoped query sees %d federations (err %v)", n, err)
	}
	err = r.tenant(ctx, "a", func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO federated_issuers (tenant_id, name, issuer, audience, spec)
			VALUES ('b', 'x', 'https://x', 'y', '{}')`)
		return err
	})
	if err == nil {
		t.Fatal("tenant a wrote a federation for tenant b")
	}
}

func TestFederationChanges(t *testing.T) {
	r := newRegistry(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	changes := make(chan Change, 16)
	done := make(chan error, 1)
	go func() { done <- r.Listen(ctx, func(c Change) { changes <- c }) }()
	want := func(kind string) Change {
		t.Helper()
		for {
			select {
			case c := <-changes:
				if c.Kind == kind {
					return c
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("no %s notification", kind)
			}
		}
	}
	want(ResyncKind)
	if _, err := r.CreateTenant(ctx, "n"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.PutFederation(ctx, federation("n", "k8s", "n-gw")); err != nil {
		t.Fatal(err)
	}
	if c := want("federation"); c.Tenant != "n" || c.ID != "k8s" {
		t.Fatalf("put: change %+v", c)
	}
	if err := r.DeleteFederation(ctx, "n", "k8s"); err != nil {
		t.Fatal(err)
	}
	if c := want("federation"); c.Tenant != "n" || c.ID != "k8s" {
		t.Fatalf("delete: change %+v", c)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Listen returned %v after cancel", err)
	}
}
