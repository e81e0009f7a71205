package e2e

import (
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestPostgresOutage kills the private Postgres under a running gateway:
// state calls answer 503 / Unavailable with a Dapr error, health reports
// not ready, and the node keeps answering what it can without a 500.
func TestPostgresOutage(t *testing.T) {
	g, dir := privateGateway(t)
	tok := g.token()
	if st, _, body := do(t, g, tok, "POST", "/v1.0/state/statestore", strings.NewReader(`[{"key":"k","value":1}]`)); st != 204 {
		t.Fatalf("save before the outage: %d %s", st, body)
	}
	pid := postmasterPID(t, dir)
	if pid <= 0 {
		t.Fatal("no postmaster.pid")
	}
	// Postgres runs in its own process group: take all of it down.
	if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}

	// Signals arrive asynchronously: wait for the first failed read.
	var st int
	var body []byte
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if st, _, body = do(t, g, tok, "GET", "/v1.0/state/statestore/k", nil); st != http.StatusOK {
			break
		}
	}
	if st != http.StatusServiceUnavailable || !strings.Contains(string(body), `"errorCode":"ERR_STATE_GET"`) {
		t.Fatalf("get during the outage: %d %s", st, body)
	}
	st, _, body = do(t, g, tok, "POST", "/v1.0/state/statestore", strings.NewReader(`[{"key":"k","value":2}]`))
	if st != http.StatusServiceUnavailable {
		t.Fatalf("save during the outage: %d %s", st, body)
	}
	_, err := goClient(t, g, tok).GetState(t.Context(), "statestore", "k", nil)
	if code := grpcCode(err); code != "Unavailable" {
		t.Fatalf("gRPC get during the outage: %v", err)
	}
	st, _, body = do(t, g, "", "GET", "/v1.0/healthz", nil)
	if st == http.StatusNoContent || !strings.Contains(string(body), "ERR_HEALTH_NOT_READY") {
		t.Fatalf("healthz during the outage: %d %s", st, body)
	}
	// What needs no database still works: tokens, cached components.
	if st, _, body := do(t, g, tok, "GET", "/v1.0/metadata", nil); st != http.StatusOK {
		t.Fatalf("metadata during the outage: %d %s", st, body)
	}
	if st, _, _ := do(t, g, "", "GET", "/v1.0/healthz/outbound", nil); st != http.StatusNoContent {
		t.Fatalf("outbound health: %d", st)
	}
}
