package tenantspg

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/blockgate/blockgate/auth/authpolicy"
	"github.com/blockgate/blockgate/tenants"
)

func accessConfig(name, defaultAction string) []byte {
	return []byte("apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata:\n  name: " + name +
		"\nspec:\n  accessControl:\n    defaultAction: " + defaultAction + "\n")
}

func TestAccessPolicies(t *testing.T) {
	r := newRegistry(t)
	ctx := t.Context()
	if _, err := r.CreateTenant(ctx, "acme"); err != nil {
		t.Fatal(err)
	}

	// Apply as YAML; read back as JSON, with the apps sorted.
	rec, err := r.PutAccessPolicy(ctx, authpolicy.Record{Tenant: "acme", Name: "orders-acl", Apps: []string{"orders", "billing"}, Document: accessConfig("orders-acl", "deny")})
	if err != nil || rec.Revision != 1 {
		t.Fatalf("put: %+v %v", rec, err)
	}
	if _, err := r.PutAccessPolicy(ctx, authpolicy.Record{Tenant: "acme", Name: "default", Document: accessConfig("default", "allow")}); err != nil {
		t.Fatal(err)
	}
	list, err := r.AccessPolicies(ctx, "acme")
	if err != nil || len(list) != 2 {
		t.Fatalf("list: %+v %v", list, err)
	}
	if list[0].Name != "default" || !list[0].Default() || list[0].Apps != nil {
		t.Errorf("default record: %+v", list[0])
	}
	if list[1].Name != "orders-acl" || !slices.Equal(list[1].Apps, []string{"billing", "orders"}) || list[1].Tenant != "acme" {
		t.Errorf("app record: %+v", list[1])
	}
	c, err := authpolicy.Parse(list[1].Document)
	if err != nil || c.AccessControl.DefaultAction != authpolicy.Deny {
		t.Fatalf("stored document: %s (%v)", list[1].Document, err)
	}

	// Re-applying replaces the document and the apps and bumps the revision.
	rec, err = r.PutAccessPolicy(ctx, authpolicy.Record{Tenant: "acme", Name: "orders-acl", Apps: []string{"orders"}, Document: accessConfig("orders-acl", "allow")})
	if err != nil || rec.Revision != 2 {
		t.Fatalf("re-put: %+v %v", rec, err)
	}
	got, err := r.AccessPolicy(ctx, "acme", "orders-acl")
	if err != nil || !slices.Equal(got.Apps, []string{"orders"}) || got.Revision != 2 {
		t.Fatalf("get: %+v %v", got, err)
	}

	// What the cache builds from the registry.
	set, err := authpolicy.NewSet("acme", "td", false, list)
	if err != nil {
		t.Fatal(err)
	}
	if set.For("orders") == nil || set.For("anyone") == nil {
		t.Error("the set lost a configuration")
	}

	// Invalid records never reach the table.
	for name, bad := range map[string]authpolicy.Record{
		"bad document":      {Tenant: "acme", Name: "x", Document: []byte("apiVersion: dapr.io/v1alpha1\nkind: Configuration\nspec: {accessControl: {defaultAction: maybe}}")},
		"name mismatch":     {Tenant: "acme", Name: "x", Document: accessConfig("y", "deny")},
		"bad app id":        {Tenant: "acme", Name: "x", Apps: []string{"no spaces"}, Document: accessConfig("x", "deny")},
		"bad name":          {Tenant: "acme", Name: "X_Y", Document: accessConfig("", "deny")},
		"not YAML nor JSON": {Tenant: "acme", Name: "x", Document: []byte("{{{")},
	} {
		if _, err := r.PutAccessPolicy(ctx, bad); !errors.Is(err, authpolicy.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
	if _, err := r.PutAccessPolicy(ctx, authpolicy.Record{Tenant: "nope", Name: "x", Document: accessConfig("x", "deny")}); !errors.Is(err, tenants.ErrNotFound) {
		t.Errorf("put in a missing tenant: %v", err)
	}

	// Delete.
	if err := r.DeleteAccessPolicy(ctx, "acme", "orders-acl"); err != nil {
		t.Fatal(err)
	}
	if err := r.DeleteAccessPolicy(ctx, "acme", "orders-acl"); !errors.Is(err, tenants.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	if _, err := r.AccessPolicy(ctx, "acme", "orders-acl"); !errors.Is(err, tenants.ErrNotFound) {
		t.Fatalf("get after delete: %v", err)
	}
	var apps int
	err = r.platform(ctx, func(tx pgx.Tx) ([]Change, error) {
		return nil, tx.QueryRow(ctx, "SELECT count(*) FROM access_policy_apps WHERE tenant_id = 'acme'").Scan(&apps)
	})
	if err != nil || apps != 0 {
		t.Fatalf("%d app rows left after delete (%v)", apps, err)
	}

	// Deleting the tenant takes its policies and its switch.
	if err := r.SetDenyByDefault(ctx, "acme", true); err != nil {
		t.Fatal(err)
	}
	if err := r.DeleteTenant(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	for _, table := range []string{"access_policies", "access_policy_apps", "tenant_policy_settings"} {
		var n int
		err = r.platform(ctx, func(tx pgx.Tx) ([]Change, error) {
			return nil, tx.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&n)
		})
		if err != nil || n != 0 {
			t.Errorf("%s: %d rows left after the tenant was deleted (%v)", table, n, err)
		}
	}
}

// TestAccessPolicyOnePerApp: an app has at most one configuration, and a
// tenant at most one default; the same app in two tenants is fine.
func TestAccessPolicyOnePerApp(t *testing.T) {
	r := newRegistry(t)
	ctx := t.Context()
	for _, id := range []tenants.ID{"a", "b"} {
		if _, err := r.CreateTenant(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	put := func(tenant tenants.ID, name string, apps ...string) error {
		_, err := r.PutAccessPolicy(ctx, authpolicy.Record{Tenant: tenant, Name: name, Apps: apps, Document: accessConfig(name, "deny")})
		return err
	}
	if err := put("a", "first", "orders", "web"); err != nil {
		t.Fatal(err)
	}
	err := put("a", "second", "billing", "web")
	if !errors.Is(err, tenants.ErrExists) {
		t.Fatalf("a second configuration for web: %v", err)
	}
	if want := "app web of tenant a already has the access control configuration first"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say %q", err, want)
	}
	if _, err := r.AccessPolicy(ctx, "a", "second"); !errors.Is(err, tenants.ErrNotFound) {
		t.Errorf("the refused configuration was stored: %v", err)
	}
	if err := put("a", "second", "billing"); err != nil {
		t.Fatalf("a configuration for another app: %v", err)
	}
	// Moving an app: re-apply the owner without it, then claim it.
	if err := put("a", "first", "orders"); err != nil {
		t.Fatal(err)
	}
	if err := put("a", "second", "billing", "web"); err != nil {
		t.Fatalf("claiming a released app: %v", err)
	}
	if err := put("b", "other", "orders", "web"); err != nil {
		t.Fatalf("the same apps in another tenant: %v", err)
	}

	if err := put("a", "default-1"); err != nil {
		t.Fatal(err)
	}
	err = put("a", "default-2")
	if !errors.Is(err, tenants.ErrExists) || !strings.Contains(err.Error(), "already has the default access control configuration default-1") {
		t.Fatalf("a second default: %v", err)
	}
	if err := put("a", "default-1"); err != nil {
		t.Fatalf("re-applying the default: %v", err)
	}
	if err := put("b", "default-2"); err != nil {
		t.Fatalf("a default in another tenant: %v", err)
	}
	// A configuration for apps becoming the default while there is one.
	if err := put("a", "first"); !errors.Is(err, tenants.ErrExists) {
		t.Fatalf("turning first into a second default: %v", err)
	}

	// The keys hold even without the friendly check: two defaults raced.
	err = r.platform(ctx, func(tx pgx.Tx) ([]Change, error) {
		_, err := tx.Exec(ctx, `INSERT INTO access_policies (tenant_id, name, tenant_default, spec) VALUES ('a', 'sneaky', true, '{}')`)
		return nil, err
	})
	if !isUniqueViolation(err) {
		t.Fatalf("the table took a second default: %v", err)
	}
	err = r.platform(ctx, func(tx pgx.Tx) ([]Change, error) {
		_, err := tx.Exec(ctx, `INSERT INTO access_policy_apps (tenant_id, app_id, policy) VALUES ('a', 'orders', 'second')`)
		return nil, err
	})
	if !isUniqueViolation(err) {
		t.Fatalf("the table took a second configuration for orders: %v", err)
	}

	// The cache's view agrees.
	list, err := r.AccessPolicies(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := authpolicy.NewSet("a", "td", false, list); err != nil {
		t.Fatalf("the stored records conflict: %v", err)
	}
}

func TestDenyByDefault(t *testing.T) {
	r := newRegistry(t)
	ctx := t.Context()
	if _, err := r.CreateTenant(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	if on, err := r.DenyByDefault(ctx, "acme"); err != nil || on {
		t.Fatalf("a new tenant: %v, %v; want off", on, err)
	}
	for _, want := range []bool{true, true, false, true} {
		if err := r.SetDenyByDefault(ctx, "acme", want); err != nil {
			t.Fatal(err)
		}
		if on, err := r.DenyByDefault(ctx, "acme"); err != nil || on != want {
			t.Fatalf("DenyByDefault = %v, %v; want %v", on, err, want)
		}
	}
	if err := r.SetDenyByDefault(ctx, "nope", true); !errors.Is(err, tenants.ErrNotFound) {
		t.Errorf("set in a missing tenant: %v", err)
	}
	if _, err := r.DenyByDefault(ctx, "nope"); !errors.Is(err, tenants.ErrNotFound) {
		t.Errorf("read in a missing tenant: %v", err)
	}
}

// TestAccessPolicyRowLevelSecurity: one tenant never reads another's
// policies or switch, even when it asks for them, and cannot write them.
func TestAccessPolicyRowLevelSecurity(t *testing.T) {
	r := newRegistry(t)
	ctx := t.Context()
	for _, id := range []tenants.ID{"a", "b"} {
		if _, err := r.CreateTenant(ctx, id); err != nil {
			t.Fatal(err)
		}
		if _, err := r.PutAccessPolicy(ctx, authpolicy.Record{Tenant: id, Name: "cfg", Apps: []string{"orders"}, Document: accessConfig("cfg", "deny")}); err != nil {
			t.Fatal(err)
		}
		if err := r.SetDenyByDefault(ctx, id, true); err != nil {
			t.Fatal(err)
		}
	}
	for _, q := range []string{
		"SELECT count(*) FROM access_policies WHERE tenant_id = 'b'",
		"SELECT count(*) FROM access_policy_apps WHERE tenant_id = 'b'",
		"SELECT count(*) FROM tenant_policy_settings WHERE tenant_id = 'b'",
		"SELECT count(*) FROM access_policies WHERE tenant_id <> 'a'",
	} {
		var n int
		err := r.tenant(ctx, "a", func(tx pgx.Tx) error { return tx.QueryRow(ctx, q).Scan(&n) })
		if err != nil || n != 0 {
			t.Errorf("tenant a: %q = %d (err %v), want 0", q, n, err)
		}
		// No scope at all sees nothing.
		if err := r.pool.QueryRow(ctx, q).Scan(&n); err != nil || n != 0 {
			t.Errorf("unscoped: %q = %d (err %v), want 0", q, n, err)
		}
	}
	var n int
	if err := r.tenant(ctx, "a", func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, "SELECT count(*) FROM access_policies").Scan(&n)
	}); err != nil || n != 1 {
		t.Errorf("tenant a sees %d configurations, want its 1 (err %v)", n, err)
	}
	for _, stmt := range []string{
		"INSERT INTO access_policies (tenant_id, name, tenant_default, spec) VALUES ('b', 'evil', false, '{}')",
		"INSERT INTO access_policy_apps (tenant_id, app_id, policy) VALUES ('b', 'web', 'cfg')",
		"INSERT INTO tenant_policy_settings (tenant_id, deny_by_default) VALUES ('b', false) ON CONFLICT (tenant_id) DO UPDATE SET deny_by_default = false",
	} {
		err := r.tenant(ctx, "a", func(tx pgx.Tx) error { _, err := tx.Exec(ctx, stmt); return err })
		if err == nil {
			t.Errorf("tenant a wrote into tenant b: %s", stmt)
		}
	}
	if on, err := r.DenyByDefault(ctx, "b"); err != nil || !on {
		t.Errorf("tenant b's switch changed: %v %v", on, err)
	}
	list, err := r.AccessPolicies(ctx, "b")
	if err != nil || len(list) != 1 || list[0].Tenant != "b" || !slices.Equal(list[0].Apps, []string{"orders"}) {
		t.Errorf("tenant b's policies: %+v %v", list, err)
	}
}

// TestAccessPolicyChanges: every change notifies Change{Kind: "policy"}.
func TestAccessPolicyChanges(t *testing.T) {
	r := newRegistry(t)
	ctx := t.Context()
	changes := make(chan Change, 64)
	done := make(chan error, 1)
	go func() { done <- r.Listen(ctx, func(c Change) { changes <- c }) }()
	t.Cleanup(func() { <-done })
	next := func(kind string) Change {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for {
			select {
			case c := <-changes:
				if c.Kind == kind {
					return c
				}
			case <-deadline:
				t.Fatalf("no %s notification", kind)
			}
		}
	}
	next(ResyncKind)
	if _, err := r.CreateTenant(ctx, "n"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.PutAccessPolicy(ctx, authpolicy.Record{Tenant: "n", Name: "cfg", Document: accessConfig("cfg", "deny")}); err != nil {
		t.Fatal(err)
	}
	if c := next(PolicyKind); c != (Change{Kind: "policy", Tenant: "n", ID: "cfg"}) {
		t.Errorf("put: %+v", c)
	}
	if err := r.SetDenyByDefault(ctx, "n", true); err != nil {
		t.Fatal(err)
	}
	if c := next(PolicyKind); c != (Change{Kind: "policy", Tenant: "n"}) {
		t.Errorf("switch: %+v", c)
	}
	if err := r.DeleteAccessPolicy(ctx, "n", "cfg"); err != nil {
		t.Fatal(err)
	}
	if c := next(PolicyKind); c != (Change{Kind: "policy", Tenant: "n", ID: "cfg"}) {
		t.Errorf("delete: %+v", c)
	}
}

// TestAccessPolicyCache runs the authpolicy cache on the registry.
func TestAccessPolicyCache(t *testing.T) {
	r := newRegistry(t)
	ctx := t.Context()
	if _, err := r.CreateTenant(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	cache := authpolicy.NewCache(r, "td", time.Hour)
	invoke := func() bool {
		t.Helper()
		s, err := cache.Set(ctx, "acme")
		if err != nil {
			t.Fatal(err)
		}
		return s.Invoke("web", "orders", "/x", "GET", false).Allowed
	}
	if !invoke() {
		t.Fatal("denied without any policy")
	}
	if err := r.SetDenyByDefault(ctx, "acme", true); err != nil {
		t.Fatal(err)
	}
	cache.Invalidate("acme") // what the gateway does on the notification
	if invoke() {
		t.Fatal("allowed under deny-by-default")
	}
	if _, err := r.PutAccessPolicy(ctx, authpolicy.Record{Tenant: "acme", Name: "cfg", Apps: []string{"orders"}, Document: accessConfig("cfg", "allow")}); err != nil {
		t.Fatal(err)
	}
	cache.Invalidate("acme")
	if !invoke() {
		t.Fatal("denied by a configuration that allows")
	}
	if _, err := cache.Set(ctx, "missing"); !errors.Is(err, tenants.ErrNotFound) {
		t.Errorf("a missing tenant: %v", err)
	}
}
