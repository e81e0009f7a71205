package e2e

import (
	"net/http"
	"strings"
	"testing"

	"github.com/blockgate/blockgate/tenants"
)

// TestTenantQuotas: a tenant's state storage, app count and request size
// quotas refuse what goes past them with 429 or 413 and a Dapr error code,
// while another tenant is unaffected.
func TestTenantQuotas(t *testing.T) {
	g, _ := privateGateway(t, "--state-usage-interval", "200ms")
	ctx := t.Context()
	a := g.admin()
	full := newTenant(t, g, "q-full", "app", stateComponent)
	other := newTenant(t, g, "q-other", "app", stateComponent)
	if _, err := a.SetLimits(ctx, "q-full", tenants.Limits{StateMaxBytes: 16 << 10, MaxApps: 2, MaxRequestBytes: 64 << 10}); err != nil {
		t.Fatal(err)
	}
	value := `"` + strings.Repeat("x", 8<<10) + `"`
	save := func(tok, key string) (int, string) {
		st, _, body := do(t, g, tok, "POST", "/v1.0/state/statestore", strings.NewReader(`[{"key":"`+key+`","value":`+value+`}]`))
		return st, string(body)
	}
	for i := range 3 {
		if st, body := save(full, "k"+string(rune('a'+i))); st != 204 {
			t.Fatalf("save %d under the quota: %d %s", i, st, body)
		}
	}
	waitUntil(t, "the state quota refuses writes", func() bool {
		st, body := save(full, "more")
		if st == http.StatusTooManyRequests && !strings.Contains(body, "ERR_QUOTA_EXCEEDED") {
			t.Fatalf("quota refusal without its code: %s", body)
		}
		return st == http.StatusTooManyRequests
	})
	// Reads and deletes still work, and free the space again.
	if st, _, _ := do(t, g, full, "GET", "/v1.0/state/statestore/ka", nil); st != 200 {
		t.Fatalf("read at the quota: %d", st)
	}
	for _, k := range []string{"ka", "kb", "kc", "more"} {
		if st, _, body := do(t, g, full, "DELETE", "/v1.0/state/statestore/"+k, nil); st != 204 {
			t.Fatalf("delete at the quota: %d %s", st, body)
		}
	}
	waitUntil(t, "writes are accepted again", func() bool { st, _ := save(full, "again"); return st == 204 })
	// Another tenant never noticed.
	if st, body := save(other, "k"); st != 204 {
		t.Fatalf("other tenant: %d %s", st, body)
	}

	// Request size: 413 past the tenant's limit, under the gateway's.
	big := `[{"key":"big","value":"` + strings.Repeat("y", 100<<10) + `"}]`
	if st, _, body := do(t, g, full, "POST", "/v1.0/state/statestore", strings.NewReader(big)); st != http.StatusRequestEntityTooLarge {
		t.Fatalf("request over the tenant's size limit: %d %s", st, body)
	}
	if st, _, body := do(t, g, other, "POST", "/v1.0/state/statestore", strings.NewReader(big)); st != 204 {
		t.Fatalf("the same request from another tenant: %d %s", st, body)
	}

	// Apps: the tenant has one; a second is fine, a third is refused.
	if _, err := a.CreateApp(ctx, "q-full", "second", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := a.CreateApp(ctx, "q-full", "third", ""); err == nil || !strings.Contains(err.Error(), "ERR_QUOTA_EXCEEDED") {
		t.Fatalf("third app: %v", err)
	}
}
