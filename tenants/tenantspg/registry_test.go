package tenantspg

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/blockgate/blockgate/auth/authjwt"
	"github.com/blockgate/blockgate/auth/authjwt/authjwttest"
	"github.com/blockgate/blockgate/internal/pgtest"
	"github.com/blockgate/blockgate/tenants"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func newRegistry(t *testing.T) *Registry {
	t.Helper()
	return New(pgtest.New(t), slog.New(slog.NewTextHandler(io.Discard, nil)))
}

func component(t *testing.T, tenant tenants.ID, name string) tenants.Component {
	t.Helper()
	c, err := tenants.ParseComponent([]byte("apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: " + name +
		"}\nspec: {type: state.postgresql, version: v1, metadata: [{name: keyPrefix, value: name}]}"))
	if err != nil {
		t.Fatal(err)
	}
	c.Tenant = tenant
	return c
}

func TestRegistry(t *testing.T) {
	r := newRegistry(t)
	ctx := t.Context()

	if _, err := r.CreateTenant(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.CreateTenant(ctx, "acme"); !errors.Is(err, tenants.ErrExists) {
		t.Fatalf("duplicate tenant: %v", err)
	}
	if _, err := r.CreateApp(ctx, tenants.App{Tenant: "nope", ID: "a"}); !errors.Is(err, tenants.ErrNotFound) {
		t.Fatalf("app in a missing tenant: %v", err)
	}
	if _, err := r.CreateApp(ctx, tenants.App{Tenant: "acme", ID: "orders", Endpoint: "http://x"}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.CreateApp(ctx, tenants.App{Tenant: "acme", ID: "orders"}); !errors.Is(err, tenants.ErrExists) {
		t.Fatalf("duplicate app: %v", err)
	}
	apps, err := r.Apps(ctx, "acme")
	if err != nil || len(apps) != 1 || apps[0].Endpoint != "http://x" {
		t.Fatalf("apps %+v %v", apps, err)
	}

	c, err := r.PutComponent(ctx, component(t, "acme", "statestore"))
	if err != nil || c.Revision != 1 {
		t.Fatalf("put: %+v %v", c, err)
	}
	c, err = r.PutComponent(ctx, component(t, "acme", "statestore"))
	if err != nil || c.Revision != 2 {
		t.Fatalf("re-put must bump the revision: %+v %v", c, err)
	}
	comps, err := r.Components(ctx, "acme")
	if err != nil || len(comps) != 1 || comps[0].Revision != 2 || comps[0].Tenant != "acme" {
		t.Fatalf("components %+v %v", comps, err)
	}
	if v, _ := comps[0].Meta("keyPrefix"); v != "name" {
		t.Fatalf("metadata lost: %+v", comps[0])
	}

	now := time.Now().Truncate(time.Second)
	tok := tenants.Token{ID: "tok_1", Tenant: "acme", AppID: "orders", IssuedAt: now, ExpiresAt: now.Add(time.Hour)}
	if err := r.CreateToken(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if err := r.CreateToken(ctx, tenants.Token{ID: "tok_2", Tenant: "acme", AppID: "ghost", IssuedAt: now, ExpiresAt: now.Add(time.Hour)}); !errors.Is(err, tenants.ErrNotFound) {
		t.Fatalf("token for a missing app: %v", err)
	}
	if revoked, _ := r.RevokedTokens(ctx); len(revoked) != 0 {
		t.Fatalf("revoked before revoking: %v", revoked)
	}
	if _, err := r.RevokeToken(ctx, "tok_1"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.RevokeToken(ctx, "tok_missing"); !errors.Is(err, tenants.ErrNotFound) {
		t.Fatalf("revoking a missing token: %v", err)
	}
	if revoked, _ := r.RevokedTokens(ctx); len(revoked) != 1 || revoked[0] != "tok_1" {
		t.Fatalf("revoked %v", revoked)
	}

	if err := r.SetAppMetadata(ctx, "acme", "orders", "team", "blue"); err != nil {
		t.Fatal(err)
	}
	if md, err := r.AppMetadata(ctx, "acme", "orders"); err != nil || md["team"] != "blue" {
		t.Fatalf("app metadata %v %v", md, err)
	}

	// Deleting the app revokes its remaining tokens; deleting the tenant
	// removes everything.
	tok.ID = "tok_3"
	if err := r.CreateToken(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if err := r.DeleteApp(ctx, "acme", "orders"); err != nil {
		t.Fatal(err)
	}
	if revoked, _ := r.RevokedTokens(ctx); len(revoked) != 2 {
		t.Fatalf("deleting the app must revoke its tokens: %v", revoked)
	}
	if err := r.DeleteTenant(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	if comps, _ := r.Components(ctx, "acme"); len(comps) != 0 {
		t.Fatalf("components outlived their tenant: %+v", comps)
	}
	if err := r.DeleteTenant(ctx, "acme"); !errors.Is(err, tenants.ErrNotFound) {
		t.Fatalf("deleting twice: %v", err)
	}
}

// TestRowLevelSecurity checks the second wall: a transaction scoped to one
// tenant cannot see another tenant's rows even when it asks for them.
func TestRowLevelSecurity(t *testing.T) {
	r := newRegistry(t)
	ctx := t.Context()
	for _, id := range []tenants.ID{"a", "b"} {
		if _, err := r.CreateTenant(ctx, id); err != nil {
			t.Fatal(err)
		}
		if _, err := r.PutComponent(ctx, component(t, id, "statestore")); err != nil {
			t.Fatal(err)
		}
	}
	var n int
	err := r.tenant(ctx, "a", func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, "SELECT count(*) FROM components WHERE tenant_id = 'b'").Scan(&n)
	})
	if err != nil || n != 0 {
		t.Fatalf("tenant a sees %d of b's components (err %v)", n, err)
	}
	// No scope at all sees nothing.
	if err := r.pool.QueryRow(ctx, "SELECT count(*) FROM components").Scan(&n); err != nil || n != 0 {
		t.Fatalf("an unscoped query sees %d components (err %v)", n, err)
	}
	// And cannot write into another tenant.
	err = r.tenant(ctx, "a", func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "INSERT INTO app_metadata (tenant_id, app_id, key, value) VALUES ('b', 'x', 'k', 'v')")
		return err
	})
	if err == nil {
		t.Fatal("tenant a wrote a row for tenant b")
	}
}

func TestListen(t *testing.T) {
	r := newRegistry(t)
	ctx, cancel := context.WithCancel(t.Context())
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
	if c := want("tenant"); c.Tenant != "n" {
		t.Fatalf("tenant change %+v", c)
	}
	if _, err := r.PutComponent(ctx, component(t, "n", "store")); err != nil {
		t.Fatal(err)
	}
	if c := want("component"); c.Tenant != "n" || c.ID != "store" {
		t.Fatalf("component change %+v", c)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Listen returned %v after cancel", err)
	}
}

func TestKeyStore(t *testing.T) {
	authjwttest.RunKeyStore(t, func(t *testing.T) authjwt.KeyStore { return newRegistry(t) })
}
