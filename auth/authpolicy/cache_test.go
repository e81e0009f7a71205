package authpolicy

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/blockgate/blockgate/internal/regcache/regcachetest"
	"github.com/blockgate/blockgate/tenants"
)

// fakeStore is a Store in memory that counts its loads.
type fakeStore struct {
	mu      sync.Mutex
	records map[tenants.ID][]Record
	deny    map[tenants.ID]bool
	fail    error
	loads   atomic.Int64
	// gate, when set, holds AccessPolicies until it is closed.
	gate chan struct{}
}

func (f *fakeStore) AccessPolicies(ctx context.Context, tenant tenants.ID) ([]Record, error) {
	f.loads.Add(1)
	if f.gate != nil {
		<-f.gate
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return nil, f.fail
	}
	return append([]Record(nil), f.records[tenant]...), nil
}

func (f *fakeStore) DenyByDefault(ctx context.Context, tenant tenants.ID) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.deny[tenant], f.fail
}

func (f *fakeStore) set(tenant tenants.ID, deny bool, records ...Record) {
	f.mu.Lock()
	f.records[tenant] = records
	f.deny[tenant] = deny
	f.mu.Unlock()
}

func newFakeStore() *fakeStore {
	return &fakeStore{records: map[tenants.ID][]Record{}, deny: map[tenants.ID]bool{}}
}

func TestCache(t *testing.T) {
	store := newFakeStore()
	denyAll := Record{Name: "deny-all", Document: config("deny-all", "defaultAction: deny")}
	store.set("a", false, denyAll)
	store.set("b", false)
	clk := regcachetest.NewClock()
	c := newCache(store, testTD, time.Hour, clk.Now)
	ctx := t.Context()

	allowed := func(tenant tenants.ID) bool {
		t.Helper()
		s, err := c.Set(ctx, tenant)
		if err != nil {
			t.Fatal(err)
		}
		return s.Invoke("web", "orders", "x", "GET", false).Allowed
	}
	if allowed("a") || !allowed("b") {
		t.Fatal("wrong first answers")
	}
	allowed("a")
	if n := store.loads.Load(); n != 2 {
		t.Fatalf("%d loads for two tenants, want 2", n)
	}

	// A change is seen once the tenant is invalidated, and only then.
	store.set("b", true)
	if !allowed("b") {
		t.Fatal("the cached Set was not kept")
	}
	c.Invalidate("b")
	if allowed("b") {
		t.Fatal("the switch was not seen after Invalidate")
	}
	store.set("a", false)
	c.InvalidateAll()
	if !allowed("a") {
		t.Fatal("the removal was not seen after InvalidateAll")
	}

	// After maxAge the stale Set is served while a reload runs in the
	// background; the change shows once the reload is done.
	if allowed("b") {
		t.Fatal("the switch was lost after InvalidateAll")
	}
	store.set("b", false)
	clk.Add(2 * time.Hour)
	if allowed("b") {
		t.Fatal("the stale Set was not served during the reload")
	}
	regcachetest.Eventually(t, "the reloaded Set", func() bool { return allowed("b") })

	// After maxAge a failed reload keeps serving the stale Set.
	store.mu.Lock()
	store.fail = errors.New("registry down")
	store.mu.Unlock()
	clk.Add(2 * time.Hour)
	if !allowed("a") {
		t.Fatal("the stale Set was not served")
	}
	// With nothing cached the error comes back: the caller fails closed.
	c.Invalidate("a")
	if _, err := c.Set(ctx, "a"); err == nil {
		t.Fatal("no error without a Set")
	}

	// A record that does not parse is an error, not an empty policy.
	store.mu.Lock()
	store.fail = nil
	store.mu.Unlock()
	store.set("c", false, Record{Name: "bad", Document: []byte("kind: nope")})
	if _, err := c.Set(ctx, "c"); err == nil {
		t.Fatal("a bad record made a Set")
	}
}

// TestCacheInvalidateDuringLoad: a load that started before an
// invalidation must not be cached as fresh, nor handed to callers that come
// after the invalidation.
func TestCacheInvalidateDuringLoad(t *testing.T) {
	store := newFakeStore()
	store.set("a", false)
	store.gate = make(chan struct{})
	c := NewCache(store, testTD, time.Hour)
	ctx := t.Context()

	first := make(chan *Set, 1)
	go func() {
		s, _ := c.Set(ctx, "a")
		first <- s
	}()
	for store.loads.Load() == 0 {
		time.Sleep(time.Millisecond) // wait for the load to start
	}
	store.set("a", true) // a change lands while the load is in flight...
	c.Invalidate("a")    // ...and its notification arrives
	close(store.gate)
	<-first

	s, err := c.Set(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if !s.DenyByDefault() {
		t.Fatal("the Set loaded before the invalidation was kept")
	}
}

func TestCacheConcurrent(t *testing.T) {
	store := newFakeStore()
	store.set("a", false)
	c := NewCache(store, testTD, time.Hour)
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			for range 100 {
				if i%4 == 0 {
					c.Invalidate("a")
				}
				if _, err := c.Set(t.Context(), "a"); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}
