package e2e

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestInvokeResiliency: a tenant's Resiliency resource times out a slow
// call, retries a failing idempotent one until it succeeds, and opens a
// circuit breaker that then answers at once, and closes again.
func TestInvokeResiliency(t *testing.T) {
	g := sharedGateway(t)
	ctx := t.Context()
	var mu sync.Mutex
	calls := map[string]int{}
	failing := true
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls[r.URL.Path]++
		n, fail := calls[r.URL.Path], failing
		mu.Unlock()
		switch r.URL.Path {
		case "/slow":
			time.Sleep(2 * time.Second)
		case "/flaky":
			if n < 3 {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
		case "/broken":
			if fail {
				w.WriteHeader(http.StatusInternalServerError)
				return
			}
		}
		w.Write([]byte("ok"))
	}))
	defer app.Close()
	a := g.admin()
	a.CreateTenant(ctx, "resil")
	a.CreateApp(ctx, "resil", "backend", app.URL)
	a.CreateApp(ctx, "resil", "frontend", "")
	tok, _ := a.IssueToken(ctx, "resil", "frontend", time.Hour)
	if _, err := a.ApplyResiliency(ctx, "resil", []byte(`
apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata:
  name: backend-policy
spec:
  policies:
    timeouts:
      quick: 300ms
    retries:
      three:
        policy: constant
        duration: 50ms
        maxRetries: 3
    circuitBreakers:
      cb:
        maxRequests: 1
        timeout: 1s
        trip: consecutiveFailures >= 3
  targets:
    apps:
      backend:
        timeout: quick
        retry: three
        circuitBreaker: cb
`)); err != nil {
		t.Fatal(err)
	}

	// Retry: the flaky method fails twice, then answers.
	st, _, body := do(t, g, tok.Text, "GET", "/v1.0/invoke/backend/method/flaky", nil)
	if st != 200 || string(body) != "ok" {
		t.Fatalf("flaky call: %d %s", st, body)
	}
	mu.Lock()
	if calls["/flaky"] != 3 {
		t.Fatalf("flaky was called %d times, want 3 (two retries)", calls["/flaky"])
	}
	mu.Unlock()

	// Timeout: the slow method is cut off with 504.
	st, _, body = do(t, g, tok.Text, "GET", "/v1.0/invoke/backend/method/slow", nil)
	if st != http.StatusGatewayTimeout || !strings.Contains(string(body), "ERR_DIRECT_INVOKE") {
		t.Fatalf("slow call: %d %s", st, body)
	}

	// Circuit breaker: enough failures open it; then calls fail fast
	// without reaching the app.
	var opened bool
	for i := 0; i < 10 && !opened; i++ {
		st, _, body = do(t, g, tok.Text, "GET", "/v1.0/invoke/backend/method/broken", nil)
		opened = st == http.StatusServiceUnavailable && strings.Contains(string(body), "circuit breaker is open")
	}
	if !opened {
		t.Fatalf("the breaker never opened: %d %s", st, body)
	}
	mu.Lock()
	before := calls["/broken"]
	mu.Unlock()
	do(t, g, tok.Text, "GET", "/v1.0/invoke/backend/method/broken", nil)
	mu.Lock()
	if calls["/broken"] != before {
		t.Fatal("a call went through an open breaker")
	}
	failing = false
	mu.Unlock()
	// After the breaker's timeout a probe goes through and closes it.
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, _, body = do(t, g, tok.Text, "GET", "/v1.0/invoke/backend/method/broken", nil)
		if st == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the breaker never closed: %d %s", st, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
