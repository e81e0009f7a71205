// Package regcache keeps registry data in memory for the request path.
//
// A Cache serves what it holds and refreshes it behind the caller's back:
// once an entry is older than the refresh interval, the next Get returns it
// as it is and starts one reload in the background, so that no request waits
// on the registry for data the node already knows, and a registry outage
// leaves the last known data in service. Only a key with nothing cached is
// loaded while the caller waits, once for all the callers that ask for it at
// the same time; the load's error is theirs, so that a caller can fail
// closed.
//
// Invalidation is exact: a load that started before Invalidate neither
// becomes the cached value nor reaches the callers that come after it.
package regcache

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Config says what a Cache loads and how long it trusts what it loaded.
type Config[K comparable, V any] struct {
	// Load reads the value of key from the registry. It runs in a goroutine
	// of its own, with a context that keeps the values of the caller's but
	// not its cancellation, bounded by LoadTimeout; it is never running
	// twice at once for one key. Required.
	Load func(ctx context.Context, key K) (V, error)
	// Refresh is the age past which an entry is reloaded in the background
	// by the next Get. Required.
	Refresh time.Duration
	// IsNotFound reports the errors of Load that say key does not exist.
	// Such an answer is an entry too: Get returns the error again until it
	// is NotFoundAge old, then loads the key again while the caller waits;
	// and a background reload that gets it replaces the stale value. Nil
	// means no error is such an answer.
	IsNotFound func(error) bool
	// NotFoundAge is how long a "not found" answer is remembered. Zero
	// means it is not: the next Get loads the key again.
	NotFoundAge time.Duration
	// LoadTimeout bounds each call of Load. Zero means 10s.
	LoadTimeout time.Duration
	// RetryAfter is the least time between the starts of two background
	// reloads of one key, so that a failing registry is not asked again by
	// every request. Zero means 1s.
	RetryAfter time.Duration
	// OnReloadError, if set, is told of each failed background reload, from
	// the reload's goroutine, after the cache has settled; the stale value
	// is served meanwhile. Nil means failed reloads go unreported.
	OnReloadError func(key K, err error)
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
}

// Cache is a stale-while-revalidate cache of registry data.
//
// It is safe for concurrent use. The values it returns are shared by every
// caller and must not be modified.
type Cache[K comparable, V any] struct {
	cfg Config[K, V]

	mu      sync.RWMutex
	entries map[K]*entry[V]
	// flights holds the load in progress of each key, if any.
	flights map[K]*flight[V]
}

type entry[V any] struct {
	val V
	// err is a remembered "not found"; val is then the zero value.
	err      error
	loadedAt time.Time
	// reloadAt is when the last background reload of the entry started.
	// It is written under Cache.mu held for writing.
	reloadAt time.Time
}

// flight is one call of Load; done is closed once val and err are set.
type flight[V any] struct {
	done chan struct{}
	val  V
	err  error
	// background marks a reload of a stale entry, which no caller awaits.
	background bool
	// dropped is set, under Cache.mu, when an invalidation overtakes the
	// load: its result is then not stored, and the flight is no longer in
	// Cache.flights for later callers to join.
	dropped bool
}

// New returns an empty cache. It panics if cfg.Load is nil or cfg.Refresh
// is not positive.
func New[K comparable, V any](cfg Config[K, V]) *Cache[K, V] {
	if cfg.Load == nil || cfg.Refresh <= 0 {
		panic("regcache: Config needs Load and a positive Refresh")
	}
	if cfg.IsNotFound == nil {
		cfg.IsNotFound = func(error) bool { return false }
	}
	if cfg.LoadTimeout <= 0 {
		cfg.LoadTimeout = 10 * time.Second
	}
	if cfg.RetryAfter <= 0 {
		cfg.RetryAfter = time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Cache[K, V]{cfg: cfg, entries: map[K]*entry[V]{}, flights: map[K]*flight[V]{}}
}

type state uint8

const (
	missing state = iota // nothing usable: load while the caller waits
	fresh                // serve as is
	stale                // serve, and reload in the background
)

func (c *Cache[K, V]) state(e *entry[V], now time.Time) state {
	if e == nil {
		return missing
	}
	switch age := now.Sub(e.loadedAt); {
	case e.err != nil && age < c.cfg.NotFoundAge, e.err == nil && age < c.cfg.Refresh:
		return fresh
	case e.err == nil:
		return stale
	}
	return missing
}

// Get returns the value of key: the cached one if there is one, even past
// its refresh interval (a reload then starts in the background); otherwise
// the result of loading it, which the caller waits for unless ctx ends
// first. A load's error is returned only to the callers that waited for
// it, and is not cached unless it says the key does not exist.
func (c *Cache[K, V]) Get(ctx context.Context, key K) (V, error) {
	now := c.cfg.Now()
	c.mu.RLock()
	e := c.entries[key]
	st := c.state(e, now)
	reload := st == stale && c.flights[key] == nil && now.Sub(e.reloadAt) >= c.cfg.RetryAfter
	c.mu.RUnlock()
	switch st {
	case fresh:
		return e.val, e.err
	case stale:
		if reload {
			c.reload(ctx, key, now)
		}
		return e.val, nil
	}
	return c.wait(ctx, key)
}

// reload starts a background reload of key unless, now that the lock is
// held, one is not due after all.
func (c *Cache[K, V]) reload(ctx context.Context, key K, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entries[key]
	if c.state(e, now) != stale || c.flights[key] != nil || now.Sub(e.reloadAt) < c.cfg.RetryAfter {
		return
	}
	e.reloadAt = now
	c.start(ctx, key, true)
}

// wait joins the load of key in progress, or starts one, and waits for it.
func (c *Cache[K, V]) wait(ctx context.Context, key K) (V, error) {
	c.mu.Lock()
	f := c.flights[key]
	if f == nil {
		// A load may have finished since Get looked.
		if e := c.entries[key]; c.state(e, c.cfg.Now()) != missing {
			c.mu.Unlock()
			return e.val, e.err
		}
		f = c.start(ctx, key, false)
	}
	c.mu.Unlock()
	select {
	case <-f.done:
		return f.val, f.err
	case <-ctx.Done():
		var zero V
		return zero, ctx.Err()
	}
}

// start registers a flight for key and runs it. c.mu must be held for
// writing.
func (c *Cache[K, V]) start(ctx context.Context, key K, background bool) *flight[V] {
	f := &flight[V]{done: make(chan struct{}), background: background}
	c.flights[key] = f
	go c.run(context.WithoutCancel(ctx), key, f)
	return f
}

// run loads key and stores the result unless an invalidation came first.
// The goroutine ends with the load, which LoadTimeout bounds.
func (c *Cache[K, V]) run(ctx context.Context, key K, f *flight[V]) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.LoadTimeout)
	defer cancel()
	f.val, f.err = c.load(ctx, key)
	notFound := f.err != nil && c.cfg.IsNotFound(f.err)

	c.mu.Lock()
	if !f.dropped {
		delete(c.flights, key)
		switch {
		case f.err == nil:
			c.entries[key] = &entry[V]{val: f.val, loadedAt: c.cfg.Now()}
		case notFound:
			c.entries[key] = &entry[V]{err: f.err, loadedAt: c.cfg.Now()}
		}
		// Any other error leaves a stale entry in service; the next Get
		// after RetryAfter tries again.
	}
	c.mu.Unlock()
	close(f.done)

	if f.background && f.err != nil && !notFound && c.cfg.OnReloadError != nil {
		c.cfg.OnReloadError(key, f.err)
	}
}

// load calls Load, turning a panic into an error: the load may run in a
// goroutine that nothing else would recover.
func (c *Cache[K, V]) load(ctx context.Context, key K) (v V, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("regcache: load of %v panicked: %v", key, r)
		}
	}()
	return c.cfg.Load(ctx, key)
}

// Invalidate drops what is cached for key, and the load of key in progress
// if any.
func (c *Cache[K, V]) Invalidate(key K) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.entries, key)
	if f := c.flights[key]; f != nil {
		f.dropped = true
		delete(c.flights, key)
	}
}

// InvalidateFunc drops what is cached for every key that match reports,
// and the loads of those keys in progress. match is called with c's lock
// held and must not call c.
func (c *Cache[K, V]) InvalidateFunc(match func(K) bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.entries {
		if match(k) {
			delete(c.entries, k)
		}
	}
	for k, f := range c.flights {
		if match(k) {
			f.dropped = true
			delete(c.flights, k)
		}
	}
}

// InvalidateAll drops everything, loads in progress included.
func (c *Cache[K, V]) InvalidateAll() {
	c.InvalidateFunc(func(K) bool { return true })
}
