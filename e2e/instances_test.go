package e2e

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// TestInstancesAndHealth: calls spread over an app's instances, an instance
// failing its health check gets none, and it gets calls again once healthy.
func TestInstancesAndHealth(t *testing.T) {
	g := sharedGateway(t)
	ctx := t.Context()
	var hitsA, hitsB atomic.Int64
	var bHealthy atomic.Bool
	bHealthy.Store(true)
	instA := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			hitsA.Add(1)
		}
	}))
	defer instA.Close()
	instB := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			if !bHealthy.Load() {
				w.WriteHeader(http.StatusServiceUnavailable)
			}
			return
		}
		hitsB.Add(1)
	}))
	defer instB.Close()
	a := g.admin()
	a.CreateTenant(ctx, "inst")
	a.CreateApp(ctx, "inst", "svc", instA.URL)
	if err := a.AddInstance(ctx, "inst", "svc", "b", instB.URL); err != nil {
		t.Fatal(err)
	}
	if err := a.SetHealth(ctx, "inst", "svc", "/healthz", 100*time.Millisecond, 1); err != nil {
		t.Fatal(err)
	}
	a.CreateApp(ctx, "inst", "caller", "")
	tok, _ := a.IssueToken(ctx, "inst", "caller", time.Hour)
	call := func() int {
		st, _, _ := do(t, g, tok.Text, "GET", "/v1.0/invoke/svc/method/work", nil)
		return st
	}
	// Both healthy: both get calls.
	for deadline := time.Now().Add(10 * time.Second); hitsA.Load() == 0 || hitsB.Load() == 0; {
		if st := call(); st != 200 {
			t.Fatalf("call: %d", st)
		}
		if time.Now().After(deadline) {
			t.Fatalf("calls did not spread: A %d, B %d", hitsA.Load(), hitsB.Load())
		}
	}
	// B fails its check: once the gateway notices, B gets nothing.
	bHealthy.Store(false)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		before := hitsB.Load()
		for range 10 {
			call()
		}
		if hitsB.Load() == before {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the unhealthy instance kept getting calls")
		}
	}
	before := hitsB.Load()
	for range 20 {
		if st := call(); st != 200 {
			t.Fatalf("call with one healthy instance: %d", st)
		}
	}
	if hitsB.Load() != before {
		t.Fatalf("the unhealthy instance got %d calls", hitsB.Load()-before)
	}
	// B recovers and gets calls again.
	bHealthy.Store(true)
	for deadline := time.Now().Add(10 * time.Second); hitsB.Load() == before; time.Sleep(50 * time.Millisecond) {
		call()
		if time.Now().After(deadline) {
			t.Fatal("the recovered instance got no calls")
		}
	}
}
