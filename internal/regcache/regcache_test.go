package regcache

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/blockgate/blockgate/internal/regcache/regcachetest"
)

var errNotFound = errors.New("not found")

// source is a registry in memory. A load reads the value when it starts,
// then waits for the gate, if one is set, before answering.
type source struct {
	mu     sync.Mutex
	values map[string]string
	err    error
	gate   chan struct{}
	loads  atomic.Int32
	// done counts the loads that have returned.
	done atomic.Int32
}

func newSource() *source { return &source{values: map[string]string{}} }

func (s *source) load(ctx context.Context, key string) (string, error) {
	s.loads.Add(1)
	defer s.done.Add(1)
	s.mu.Lock()
	v, ok := s.values[key]
	err, gate := s.err, s.gate
	s.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	if err != nil {
		return "", err
	}
	if !ok {
		return "", errNotFound
	}
	return v, nil
}

func (s *source) set(key, v string) {
	s.mu.Lock()
	s.values[key] = v
	s.mu.Unlock()
}

func (s *source) fail(err error) {
	s.mu.Lock()
	s.err = err
	s.mu.Unlock()
}

// hold makes the loads that start from now on wait; the returned func lets
// them go.
func (s *source) hold() (release func()) {
	gate := make(chan struct{})
	s.mu.Lock()
	s.gate = gate
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		s.gate = nil
		s.mu.Unlock()
		close(gate)
	}
}

const refresh = 30 * time.Second

func newTestCache(t *testing.T, src *source, clk *regcachetest.Clock, opts ...func(*Config[string, string])) *Cache[string, string] {
	t.Helper()
	cfg := Config[string, string]{Load: src.load, Refresh: refresh, Now: clk.Now}
	for _, o := range opts {
		o(&cfg)
	}
	return New(cfg)
}

func mustGet(t *testing.T, c *Cache[string, string], key string) string {
	t.Helper()
	v, err := c.Get(t.Context(), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	return v
}

func TestFreshHit(t *testing.T) {
	src, clk := newSource(), regcachetest.NewClock()
	src.set("a", "v1")
	c := newTestCache(t, src, clk)

	for range 3 {
		if v := mustGet(t, c, "a"); v != "v1" {
			t.Fatalf("got %q, want v1", v)
		}
		clk.Add(refresh / 4)
	}
	if n := src.loads.Load(); n != 1 {
		t.Fatalf("%d loads, want 1", n)
	}
}

func TestStaleServedWhileReloading(t *testing.T) {
	src, clk := newSource(), regcachetest.NewClock()
	src.set("a", "v1")
	c := newTestCache(t, src, clk)
	mustGet(t, c, "a")

	src.set("a", "v2")
	clk.Add(refresh)
	release := src.hold()
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			if v, err := c.Get(t.Context(), "a"); v != "v1" || err != nil {
				t.Errorf("while reloading: got %q, %v; want the stale v1", v, err)
			}
		})
	}
	wg.Wait() // the reload is held: every Get above returned without it
	if n := src.loads.Load(); n != 2 {
		t.Fatalf("%d loads, want 2: the first and one reload", n)
	}

	release()
	regcachetest.Eventually(t, "the reloaded value", func() bool { return mustGet(t, c, "a") == "v2" })
	if n := src.loads.Load(); n != 2 {
		t.Fatalf("%d loads after the reload, want 2", n)
	}
}

func TestReloadFailureKeepsStale(t *testing.T) {
	src, clk := newSource(), regcachetest.NewClock()
	src.set("a", "v1")
	var failures atomic.Int32
	c := newTestCache(t, src, clk, func(cfg *Config[string, string]) {
		cfg.OnReloadError = func(key string, err error) {
			if key != "a" || err == nil {
				t.Errorf("OnReloadError(%q, %v)", key, err)
			}
			failures.Add(1)
		}
	})
	mustGet(t, c, "a")

	src.fail(errors.New("registry down"))
	clk.Add(refresh)
	if v := mustGet(t, c, "a"); v != "v1" {
		t.Fatalf("got %q, want the stale v1", v)
	}
	regcachetest.Eventually(t, "the failed reload", func() bool { return failures.Load() == 1 })

	// The failure is not retried by every request, only after RetryAfter.
	for range 10 {
		if v := mustGet(t, c, "a"); v != "v1" {
			t.Fatalf("got %q after a failed reload, want the stale v1", v)
		}
	}
	if n := src.loads.Load(); n != 2 {
		t.Fatalf("%d loads before RetryAfter, want 2", n)
	}
	clk.Add(time.Second)
	mustGet(t, c, "a")
	regcachetest.Eventually(t, "the second failed reload", func() bool { return failures.Load() == 2 })

	// Once the registry is back, a later retry refreshes the entry.
	src.fail(nil)
	src.set("a", "v2")
	clk.Add(time.Second)
	regcachetest.Eventually(t, "the recovered value", func() bool { return mustGet(t, c, "a") == "v2" })
	if n := failures.Load(); n != 2 {
		t.Fatalf("%d failures reported, want 2", n)
	}
}

func TestFirstLoadShared(t *testing.T) {
	src, clk := newSource(), regcachetest.NewClock()
	src.set("a", "v1")
	c := newTestCache(t, src, clk)

	release := src.hold()
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			if v, err := c.Get(t.Context(), "a"); v != "v1" || err != nil {
				t.Errorf("got %q, %v; want v1", v, err)
			}
		})
	}
	regcachetest.Eventually(t, "the load to start", func() bool { return src.loads.Load() == 1 })
	release()
	wg.Wait()
	if n := src.loads.Load(); n != 1 {
		t.Fatalf("%d loads for concurrent first Gets, want 1", n)
	}
}

func TestFirstLoadError(t *testing.T) {
	src, clk := newSource(), regcachetest.NewClock()
	src.set("a", "v1")
	boom := errors.New("registry down")
	src.fail(boom)
	c := newTestCache(t, src, clk)

	if _, err := c.Get(t.Context(), "a"); !errors.Is(err, boom) {
		t.Fatalf("got %v, want the load's error", err)
	}
	// The error is not cached: the next Get loads again.
	src.fail(nil)
	if v := mustGet(t, c, "a"); v != "v1" {
		t.Fatalf("got %q, want v1", v)
	}
	if n := src.loads.Load(); n != 2 {
		t.Fatalf("%d loads, want 2", n)
	}
}

func TestGetCanceled(t *testing.T) {
	src, clk := newSource(), regcachetest.NewClock()
	src.set("a", "v1")
	c := newTestCache(t, src, clk)

	release := src.hold()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := c.Get(ctx, "a"); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	// The load goes on without the caller and its result is kept.
	release()
	regcachetest.Eventually(t, "the abandoned load to be stored", func() bool {
		v, err := c.Get(t.Context(), "a")
		return v == "v1" && err == nil
	})
	if n := src.loads.Load(); n != 1 {
		t.Fatalf("%d loads, want 1", n)
	}
}

func TestLoadPanic(t *testing.T) {
	clk := regcachetest.NewClock()
	c := New(Config[string, string]{
		Load:    func(context.Context, string) (string, error) { panic("bug") },
		Refresh: refresh,
		Now:     clk.Now,
	})
	if _, err := c.Get(t.Context(), "a"); err == nil {
		t.Fatal("a panicking load returned no error")
	}
}

// TestInvalidateDuringLoad: a load that started before an invalidation is
// neither stored nor handed to callers that come after the invalidation.
func TestInvalidateDuringLoad(t *testing.T) {
	tests := []struct {
		name       string
		invalidate func(c *Cache[string, string])
	}{
		{"Invalidate", func(c *Cache[string, string]) { c.Invalidate("a") }},
		{"InvalidateFunc", func(c *Cache[string, string]) { c.InvalidateFunc(func(k string) bool { return k == "a" }) }},
		{"InvalidateAll", func(c *Cache[string, string]) { c.InvalidateAll() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, clk := newSource(), regcachetest.NewClock()
			src.set("a", "v1")
			c := newTestCache(t, src, clk)

			release := src.hold()
			before := make(chan string, 1)
			go func() {
				v, _ := c.Get(t.Context(), "a")
				before <- v
			}()
			regcachetest.Eventually(t, "the first load to start", func() bool { return src.loads.Load() == 1 })
			src.set("a", "v2") // a change lands while the load is in flight...
			tt.invalidate(c)   // ...and its notification arrives

			after := make(chan string, 1)
			go func() {
				v, _ := c.Get(t.Context(), "a")
				after <- v
			}()
			regcachetest.Eventually(t, "a second load to start", func() bool { return src.loads.Load() == 2 })
			release()
			if v := <-before; v != "v1" {
				t.Errorf("the caller from before the invalidation got %q, want v1", v)
			}
			if v := <-after; v != "v2" {
				t.Errorf("the caller from after the invalidation got %q, want v2", v)
			}
			if v := mustGet(t, c, "a"); v != "v2" {
				t.Errorf("cached %q, want v2", v)
			}
			if n := src.loads.Load(); n != 2 {
				t.Errorf("%d loads, want 2", n)
			}
		})
	}
}

// TestInvalidateDuringReload: a background reload overtaken by an
// invalidation is not stored either.
func TestInvalidateDuringReload(t *testing.T) {
	src, clk := newSource(), regcachetest.NewClock()
	src.set("a", "v1")
	c := newTestCache(t, src, clk)
	mustGet(t, c, "a")

	clk.Add(refresh)
	release := src.hold()
	if v := mustGet(t, c, "a"); v != "v1" {
		t.Fatalf("got %q, want the stale v1", v)
	}
	regcachetest.Eventually(t, "the reload to start", func() bool { return src.loads.Load() == 2 })
	src.set("a", "v2")
	c.Invalidate("a")
	release()

	if v := mustGet(t, c, "a"); v != "v2" {
		t.Fatalf("got %q after Invalidate, want v2", v)
	}
	regcachetest.Eventually(t, "the overtaken reload to end", func() bool { return src.done.Load() == src.loads.Load() })
	if v := mustGet(t, c, "a"); v != "v2" {
		t.Fatalf("cached %q, want v2: the overtaken reload was stored", v)
	}
}

func TestInvalidateFunc(t *testing.T) {
	type key struct{ tenant, app string }
	var mu sync.Mutex
	loads := map[key]int{}
	clk := regcachetest.NewClock()
	c := New(Config[key, string]{
		Load: func(_ context.Context, k key) (string, error) {
			mu.Lock()
			defer mu.Unlock()
			loads[k]++
			return k.tenant + "/" + k.app, nil
		},
		Refresh: refresh,
		Now:     clk.Now,
	})
	keys := []key{{"a", "x"}, {"a", "y"}, {"b", "x"}}
	getAll := func() {
		for _, k := range keys {
			if v, err := c.Get(t.Context(), k); err != nil || v != k.tenant+"/"+k.app {
				t.Fatalf("Get(%v) = %q, %v", k, v, err)
			}
		}
	}
	getAll()
	c.InvalidateFunc(func(k key) bool { return k.tenant == "a" })
	getAll()
	want := map[key]int{{"a", "x"}: 2, {"a", "y"}: 2, {"b", "x"}: 1}
	mu.Lock()
	defer mu.Unlock()
	for k, n := range want {
		if loads[k] != n {
			t.Errorf("%v loaded %d times, want %d", k, loads[k], n)
		}
	}
}

func TestNotFound(t *testing.T) {
	notFound := func(cfg *Config[string, string]) {
		cfg.IsNotFound = func(err error) bool { return errors.Is(err, errNotFound) }
		cfg.NotFoundAge = 2 * time.Second
	}

	t.Run("remembered", func(t *testing.T) {
		src, clk := newSource(), regcachetest.NewClock()
		c := newTestCache(t, src, clk, notFound)
		for range 5 {
			if _, err := c.Get(t.Context(), "a"); !errors.Is(err, errNotFound) {
				t.Fatalf("got %v, want not found", err)
			}
		}
		if n := src.loads.Load(); n != 1 {
			t.Fatalf("%d loads, want 1: not found is remembered", n)
		}
		// Past NotFoundAge the key is loaded again while the caller waits.
		src.set("a", "v1")
		clk.Add(2 * time.Second)
		if v := mustGet(t, c, "a"); v != "v1" {
			t.Fatalf("got %q, want v1", v)
		}
		if n := src.loads.Load(); n != 2 {
			t.Fatalf("%d loads, want 2", n)
		}
	})

	t.Run("not remembered without IsNotFound", func(t *testing.T) {
		src, clk := newSource(), regcachetest.NewClock()
		c := newTestCache(t, src, clk)
		for range 3 {
			if _, err := c.Get(t.Context(), "a"); !errors.Is(err, errNotFound) {
				t.Fatalf("got %v, want not found", err)
			}
		}
		if n := src.loads.Load(); n != 3 {
			t.Fatalf("%d loads, want 3", n)
		}
	})

	t.Run("dropped by Invalidate", func(t *testing.T) {
		src, clk := newSource(), regcachetest.NewClock()
		c := newTestCache(t, src, clk, notFound)
		c.Get(t.Context(), "a")
		src.set("a", "v1")
		c.Invalidate("a")
		if v := mustGet(t, c, "a"); v != "v1" {
			t.Fatalf("got %q, want v1", v)
		}
	})

	t.Run("replaces a stale value", func(t *testing.T) {
		src, clk := newSource(), regcachetest.NewClock()
		src.set("a", "v1")
		c := newTestCache(t, src, clk, notFound)
		mustGet(t, c, "a")
		src.mu.Lock()
		delete(src.values, "a")
		src.mu.Unlock()
		clk.Add(refresh)
		if v := mustGet(t, c, "a"); v != "v1" {
			t.Fatalf("got %q, want the stale v1", v)
		}
		regcachetest.Eventually(t, "the deletion to be seen", func() bool {
			_, err := c.Get(t.Context(), "a")
			return errors.Is(err, errNotFound)
		})
	})
}

func TestConcurrent(t *testing.T) {
	src, clk := newSource(), regcachetest.NewClock()
	for _, k := range []string{"a", "b", "c"} {
		src.set(k, k)
	}
	c := newTestCache(t, src, clk)
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			for j := range 200 {
				k := []string{"a", "b", "c"}[j%3]
				switch {
				case i%8 == 0 && j%10 == 0:
					c.Invalidate(k)
				case i%8 == 1 && j%50 == 0:
					c.InvalidateAll()
				case i%8 == 2 && j%20 == 0:
					clk.Add(refresh)
				}
				if v, err := c.Get(t.Context(), k); v != k || err != nil {
					t.Errorf("Get(%q) = %q, %v", k, v, err)
					return
				}
			}
		})
	}
	wg.Wait()
}
