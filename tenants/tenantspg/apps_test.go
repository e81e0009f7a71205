package tenantspg

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/blockgate/blockgate/tenants"
)

func TestApplyApp(t *testing.T) {
	r := newRegistry(t)
	ctx := t.Context()
	if _, err := r.CreateTenant(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	a, err := tenants.ParseApp([]byte(`apiVersion: blockgate.io/v1alpha1
kind: App
metadata: {name: orders}
spec:
  instances: [{id: a, endpoint: "http://a:1"}, {id: b, endpoint: "http://b:1"}]
  healthCheck: {path: /healthz}
  headers: [{name: X-Env, value: prod}]
  appToken: {value: tok1}`))
	if err != nil {
		t.Fatal(err)
	}
	a.Tenant = "acme"
	if created, err := r.ApplyApp(ctx, a); err != nil || !created {
		t.Fatalf("first apply: created %v, err %v", created, err)
	}
	got, err := r.App(ctx, "acme", "orders")
	if err != nil {
		t.Fatal(err)
	}
	if got.Endpoint != "http://a:1" || got.AppToken != "tok1" || !reflect.DeepEqual(got.Headers, map[string]string{"X-Env": "prod"}) ||
		len(got.Instances) != 1 || got.Instances[0].Endpoint != "http://b:1" || got.Health.Interval != 5*time.Second {
		t.Fatalf("after apply: %+v", got)
	}

	// Applying again replaces everything but an unset token.
	b := tenants.App{Tenant: "acme", ID: "orders", Endpoint: "http://c:1"}
	if created, err := r.ApplyApp(ctx, b); err != nil || created {
		t.Fatalf("second apply: created %v, err %v", created, err)
	}
	got, err = r.App(ctx, "acme", "orders")
	if err != nil {
		t.Fatal(err)
	}
	if got.Endpoint != "http://c:1" || got.AppToken != "tok1" || len(got.Headers) != 0 || len(got.Instances) != 0 || got.Health.Path != "" {
		t.Fatalf("after re-apply: %+v", got)
	}

	if _, err := r.ApplyApp(ctx, tenants.App{Tenant: "nobody", ID: "x", Endpoint: "http://x"}); !errors.Is(err, tenants.ErrNotFound) {
		t.Fatalf("apply in a missing tenant: %v", err)
	}
	all, err := r.AppsWithEndpoints(ctx)
	if err != nil || len(all) != 1 || all[0].Headers == nil {
		t.Fatalf("AppsWithEndpoints: %+v, %v", all, err)
	}
}
