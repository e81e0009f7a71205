package tenants

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/blockgate/blockgate/internal/regcache/regcachetest"
)

func TestAppCache(t *testing.T) {
	var mu sync.Mutex
	apps := map[appKey]App{}
	loads := map[appKey]int{}
	fail := false
	put := func(tenant ID, id, endpoint string) {
		mu.Lock()
		apps[appKey{tenant, id}] = App{Tenant: tenant, ID: id, Endpoint: endpoint}
		mu.Unlock()
	}
	loadsOf := func(tenant ID, id string) int {
		mu.Lock()
		defer mu.Unlock()
		return loads[appKey{tenant, id}]
	}
	clk := regcachetest.NewClock()
	cache := newAppCache(func(_ context.Context, tenant ID, id string) (App, error) {
		mu.Lock()
		defer mu.Unlock()
		k := appKey{tenant, id}
		loads[k]++
		if fail {
			return App{}, errors.New("registry down")
		}
		app, ok := apps[k]
		if !ok {
			return App{}, fmt.Errorf("app %s in tenant %s: %w", id, tenant, ErrNotFound)
		}
		return app, nil
	}, 30*time.Second, clk.Now)
	ctx := t.Context()
	endpoint := func(tenant ID, id string) string {
		t.Helper()
		app, err := cache.App(ctx, tenant, id)
		if err != nil {
			t.Fatalf("App(%s, %s): %v", tenant, id, err)
		}
		return app.Endpoint
	}

	put("a", "web", "http://h:80")
	put("a", "api", "http://h:81")
	put("b", "web", "http://h:90")
	endpoint("a", "web")
	endpoint("a", "api")
	endpoint("b", "web")
	endpoint("a", "web")
	if n := loadsOf("a", "web"); n != 1 {
		t.Fatalf("%d loads of a/web, want 1 (cached)", n)
	}

	// "Not found" is remembered for missingAge, then asked again.
	for range 3 {
		if _, err := cache.App(ctx, "a", "ghost"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("unknown app: %v, want ErrNotFound", err)
		}
	}
	if n := loadsOf("a", "ghost"); n != 1 {
		t.Fatalf("%d loads of an unknown app, want 1 (remembered)", n)
	}
	clk.Add(missingAge)
	put("a", "ghost", "http://h:82")
	if p := endpoint("a", "ghost"); p != "http://h:82" {
		t.Fatalf("endpoint %s after the app appeared, want :82", p)
	}

	// Invalidate drops that tenant's apps only.
	put("a", "web", "http://h:8080")
	put("b", "web", "http://h:9090")
	cache.Invalidate("a")
	if p := endpoint("a", "web"); p != "http://h:8080" {
		t.Fatalf("a/web endpoint %s after Invalidate, want :8080", p)
	}
	if p := endpoint("b", "web"); p != "http://h:90" {
		t.Fatalf("b/web endpoint %s, want the cached :90", p)
	}

	// Past max age the stale app is served, during an outage too, and the
	// new one shows once a background reload succeeds.
	mu.Lock()
	fail = true
	mu.Unlock()
	clk.Add(time.Minute)
	if p := endpoint("b", "web"); p != "http://h:90" {
		t.Fatalf("b/web endpoint %s during an outage, want the stale :90", p)
	}
	mu.Lock()
	fail = false
	mu.Unlock()
	clk.Add(time.Second)
	regcachetest.Eventually(t, "the reloaded app", func() bool { return endpoint("b", "web") == "http://h:9090" })

	cache.InvalidateAll()
	before := loadsOf("a", "api")
	endpoint("a", "api")
	if n := loadsOf("a", "api"); n != before+1 {
		t.Fatalf("%d loads of a/api after InvalidateAll, want %d", n, before+1)
	}
}
