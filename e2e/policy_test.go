package e2e

import (
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/blockgate/blockgate/tenants"
)

// TestAccessPolicies: the callee's Dapr Configuration decides which apps
// may call which operations with which verbs; the tenant's deny-by-default
// switch closes what no policy opens: invocations, components without
// scopes and topics an app is not listed for.
func TestAccessPolicies(t *testing.T) {
	g := sharedGateway(t)
	ctx := t.Context()
	a := g.admin()
	web := newTenant(t, g, "pol", "web")
	orders, plain := echoApp(t, "orders"), echoApp(t, "plain")
	for name, srv := range map[string]string{"orders": orders.URL, "plain": plain.URL} {
		if _, err := a.CreateApp(ctx, "pol", name, srv); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.CreateApp(ctx, "pol", "batch", ""); err != nil {
		t.Fatal(err)
	}
	tok, err := a.IssueToken(ctx, "pol", "batch", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	batch := tok.Text

	p, err := a.ApplyAccessPolicy(ctx, "pol", []byte(`apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata: {name: orders-acl}
spec:
  accessControl:
    defaultAction: deny
    policies:
    - appId: web
      defaultAction: deny
      operations:
      - {name: /items/**, httpVerb: [GET], action: allow}
      - {name: /items/secret, httpVerb: ["*"], action: deny}
`), []string{"orders"})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Apps) != 1 || p.Apps[0] != "orders" {
		t.Fatalf("policy applied to %v", p.Apps)
	}
	call := func(token, method, path string) int {
		st, _, _ := do(t, g, token, method, path, nil)
		return st
	}
	waitUntil(t, "the policy takes effect", func() bool { return call(web, "POST", "/v1.0/invoke/orders/method/items/1") == http.StatusForbidden })
	for _, tc := range []struct {
		name, token, method, path string
		want                      int
	}{
		{"allowed verb and path", web, "GET", "/v1.0/invoke/orders/method/items/1", 200},
		{"deeper path under the wildcard", web, "GET", "/v1.0/invoke/orders/method/items/1/lines", 200},
		{"other verb", web, "POST", "/v1.0/invoke/orders/method/items/1", 403},
		{"the more specific deny", web, "GET", "/v1.0/invoke/orders/method/items/secret", 403},
		{"dot segments out of the allowed prefix", web, "GET", "/v1.0/invoke/orders/method/items/..%2F..%2Fadmin", 403},
		{"other operation", web, "GET", "/v1.0/invoke/orders/method/admin", 403},
		{"another caller", batch, "GET", "/v1.0/invoke/orders/method/items/1", 403},
		{"callee without policy", batch, "GET", "/v1.0/invoke/plain/method/x", 200},
	} {
		if got := call(tc.token, tc.method, tc.path); got != tc.want {
			t.Errorf("%s: %s %s = %d, want %d", tc.name, tc.method, tc.path, got, tc.want)
		}
	}
	st, _, body := do(t, g, web, "POST", "/v1.0/invoke/orders/method/items/1", nil)
	if st != 403 || !strings.Contains(string(body), `"errorCode":"ERR_PERMISSION_DENIED"`) {
		t.Fatalf("refusal body: %d %s", st, body)
	}
	// gRPC: PermissionDenied.
	if _, err := goClient(t, g, web).InvokeMethod(ctx, "orders", "items/1", "post"); err == nil || !strings.Contains(err.Error(), "PermissionDenied") {
		t.Fatalf("gRPC refusal: %v", err)
	}

	// Deny by default: a callee without a policy is closed, and so are a
	// pub/sub component without scopes and topics nobody is listed for.
	if _, err := a.ApplyComponent(ctx, "pol", []byte(pubsubComponent)); err != nil {
		t.Fatal(err)
	}
	if st := call(batch, "POST", "/v1.0/publish/pubsub/jobs"); st != 204 {
		t.Fatalf("publish before the switch: %d", st)
	}
	if err := a.SetDenyByDefault(ctx, "pol", true); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "deny by default takes effect", func() bool { return call(batch, "GET", "/v1.0/invoke/plain/method/x") == 403 })
	if st := call(batch, "POST", "/v1.0/publish/pubsub/jobs"); st != 404 {
		t.Errorf("publish on an unscoped component under deny by default: %d, want 404", st)
	}
	scoped := `apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: pubsub}
spec:
  type: pubsub.jetstream
  version: v1
  metadata:
  - {name: publishingScopes, value: "batch=jobs"}
scopes: [batch]
`
	if _, err := a.ApplyComponent(ctx, "pol", []byte(scoped)); err != nil {
		t.Fatalf("scoped component: %v", err)
	}
	waitUntil(t, "the scoped component", func() bool { return call(batch, "POST", "/v1.0/publish/pubsub/jobs") == 204 })
	if st := call(batch, "POST", "/v1.0/publish/pubsub/other"); st != 403 {
		t.Errorf("publish to a topic the app is not listed for: %d, want 403", st)
	}
	if st := call(web, "POST", "/v1.0/publish/pubsub/jobs"); st != 404 {
		t.Errorf("publish by an app out of the component's scopes: %d, want 404", st)
	}
	if err := a.SetDenyByDefault(ctx, "pol", false); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "deny by default off again", func() bool { return call(batch, "GET", "/v1.0/invoke/plain/method/x") == 200 })
}

// TestNoisyNeighbour: a tenant that sends ten times its rate limit gets
// 429s with Retry-After, while a second tenant's requests in the same run
// all succeed.
func TestNoisyNeighbour(t *testing.T) {
	g := sharedGateway(t)
	ctx := t.Context()
	noisy := newTenant(t, g, "noisy", "flood", stateComponent)
	quiet := newTenant(t, g, "quiet", "calm", stateComponent)
	limits := tenants.Limits{RequestsPerSecond: 50, RequestBurst: 50}
	for _, tenant := range []string{"noisy", "quiet"} {
		if _, err := g.admin().SetLimits(ctx, tenant, limits); err != nil {
			t.Fatal(err)
		}
	}
	// Wait for the limits to reach the node: the noisy tenant gets a 429.
	waitUntil(t, "the noisy tenant is limited", func() bool {
		for range 60 {
			if st, _, _ := do(t, g, noisy, "GET", "/v1.0/state/statestore/k", nil); st == 429 {
				return true
			}
		}
		return false
	})
	time.Sleep(1200 * time.Millisecond) // both buckets full again

	// Two seconds: noisy sends 500/s (10× its limit), quiet 25/s.
	var noisyOK, noisyLimited, quietOK, quietOther atomic.Int64
	var retryAfter atomic.Value
	var wg sync.WaitGroup
	deadline := time.Now().Add(2 * time.Second)
	for range 4 {
		wg.Go(func() {
			tick := time.NewTicker(8 * time.Millisecond)
			defer tick.Stop()
			for time.Now().Before(deadline) {
				<-tick.C
				st, hdr, _ := do(t, g, noisy, "GET", "/v1.0/state/statestore/k", nil)
				switch st {
				case 204:
					noisyOK.Add(1)
				case 429:
					noisyLimited.Add(1)
					retryAfter.Store(hdr.Get("Retry-After"))
				}
			}
		})
	}
	wg.Go(func() {
		tick := time.NewTicker(40 * time.Millisecond)
		defer tick.Stop()
		for time.Now().Before(deadline) {
			<-tick.C
			if st, _, _ := do(t, g, quiet, "GET", "/v1.0/state/statestore/k", nil); st == 204 {
				quietOK.Add(1)
			} else {
				quietOther.Add(1)
			}
		}
	})
	wg.Wait()
	t.Logf("noisy: %d ok, %d limited; quiet: %d ok, %d not", noisyOK.Load(), noisyLimited.Load(), quietOK.Load(), quietOther.Load())
	if quietOther.Load() != 0 || quietOK.Load() < 20 {
		t.Errorf("the quiet tenant got %d failures of %d", quietOther.Load(), quietOK.Load()+quietOther.Load())
	}
	if noisyLimited.Load() == 0 || noisyOK.Load() > 50+2*50+10 {
		t.Errorf("the noisy tenant got %d through and %d limited, want at most burst + 2 s of rate", noisyOK.Load(), noisyLimited.Load())
	}
	if ra, _ := retryAfter.Load().(string); ra == "" {
		t.Error("429 without Retry-After")
	}
	// gRPC: ResourceExhausted.
	c := goClient(t, g, noisy)
	var exhausted bool
	for range 200 {
		if _, err := c.GetState(ctx, "statestore", "k", nil); err != nil && strings.Contains(err.Error(), "ResourceExhausted") {
			exhausted = true
			break
		}
	}
	if !exhausted {
		t.Error("gRPC calls past the limit were not refused with ResourceExhausted")
	}
}
