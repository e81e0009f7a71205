package gateway

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/blockgate/blockgate/blocks/invoke/invokeresiliency"
	"github.com/blockgate/blockgate/tenants"
	"github.com/blockgate/blockgate/tenants/tenantspg"
)

const defaultsResiliency = `
apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata:
  name: defaults
spec:
  policies:
    timeouts:
      DefaultTimeoutPolicy: 5s
`

const checkoutResiliency = `
apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata:
  name: checkout
scopes: [checkout]
spec:
  policies:
    timeouts:
      short: 1s
    circuitBreakers:
      cb:
        trip: consecutiveFailures >= 3
  targets:
    apps:
      orders:
        timeout: short
        circuitBreaker: cb
`

func TestResiliencies(t *testing.T) {
	var mu sync.Mutex
	docs := []string{defaultsResiliency, checkoutResiliency}
	var loads atomic.Int32
	var clockNS atomic.Int64
	clockNS.Store(time.Unix(1000, 0).UnixNano())
	r := newResiliencyCache(func(_ context.Context, tenant tenants.ID) ([]tenantspg.ResiliencyRecord, error) {
		loads.Add(1)
		mu.Lock()
		defer mu.Unlock()
		var out []tenantspg.ResiliencyRecord
		for _, d := range docs {
			out = append(out, tenantspg.ResiliencyRecord{Tenant: tenant, Document: []byte(d)})
		}
		return out, nil
	}, func() time.Time { return time.Unix(0, clockNS.Load()) })
	setDocs := func(ds ...string) {
		mu.Lock()
		docs = ds
		mu.Unlock()
	}
	ctx := t.Context()
	web := tenants.Principal{Tenant: "acme", AppID: "web"}
	checkout := tenants.Principal{Tenant: "acme", AppID: "checkout"}

	// Scopes apply per caller, and the merge of one caller does not leak
	// into another's.
	for range 2 {
		p, err := r.Policy(ctx, web, "orders")
		if err != nil {
			t.Fatal(err)
		}
		if p.Timeout != 5*time.Second || p.Breaker != nil {
			t.Fatalf("web → orders: %v, want the default timeout and no breaker", p)
		}
		p, err = r.Policy(ctx, checkout, "orders")
		if err != nil {
			t.Fatal(err)
		}
		if p.TimeoutName != "short" || p.Timeout != time.Second || p.Breaker == nil {
			t.Fatalf("checkout → orders: %v, want the short timeout and a breaker", p)
		}
	}
	if n := loads.Load(); n != 1 {
		t.Fatalf("%d loads, want 1 (cached)", n)
	}

	// Breakers outlive the calls, and the cache entries.
	breaker := func() *invokeresiliency.Breaker {
		t.Helper()
		p, err := r.Policy(ctx, checkout, "orders")
		if err != nil {
			t.Fatal(err)
		}
		return p.Breaker
	}
	first := breaker()
	if breaker() != first {
		t.Fatal("two calls got different breakers")
	}
	r.Invalidate("acme")
	if breaker() != first {
		t.Fatal("an unchanged policy got a new breaker after Invalidate")
	}
	if n := loads.Load(); n != 2 {
		t.Fatalf("%d loads after Invalidate, want 2", n)
	}

	// Past max age the stale policies serve until a background reload
	// brings the change.
	setDocs(defaultsResiliency)
	clockNS.Add(int64(2 * resiliencyMaxAge))
	if breaker() == nil {
		t.Fatal("the stale policies were not served during the reload")
	}
	deadline := time.Now().Add(5 * time.Second)
	for breaker() != nil {
		if time.Now().After(deadline) {
			t.Fatal("the removed circuit breaker policy was still applied")
		}
		time.Sleep(time.Millisecond)
	}
	p, err := r.Policy(ctx, checkout, "orders")
	if err != nil {
		t.Fatal(err)
	}
	if p.Timeout != 5*time.Second {
		t.Fatalf("checkout → orders after the change: %v, want the default timeout", p)
	}
}
