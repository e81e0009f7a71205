package tenants

import (
	"context"
	"errors"
	"sync"
	"time"
)

// AppCache keeps apps in memory for the request path (service invocation
// resolves the target on every call). Entries live MaxAge at most and are
// dropped by Invalidate; a failed refresh keeps serving a stale entry, and
// "not found" is cached too, briefly, so that a caller hammering an unknown
// app id does not reach the registry each time.
//
// It is safe for concurrent use.
type AppCache struct {
	load   func(ctx context.Context, tenant ID, appID string) (App, error)
	maxAge time.Duration
	now    func() time.Time

	mu      sync.RWMutex
	entries map[appKey]appEntry
}

type appKey struct {
	tenant ID
	app    string
}

type appEntry struct {
	app      App
	missing  bool
	loadedAt time.Time
}

// missingAge is how long "no such app" is remembered.
const missingAge = 2 * time.Second

// NewAppCache returns a cache over load (the registry's App).
func NewAppCache(load func(ctx context.Context, tenant ID, appID string) (App, error), maxAge time.Duration) *AppCache {
	return &AppCache{load: load, maxAge: maxAge, now: time.Now, entries: map[appKey]appEntry{}}
}

// App returns the tenant's app, or an error wrapping ErrNotFound.
func (c *AppCache) App(ctx context.Context, tenant ID, appID string) (App, error) {
	k := appKey{tenant, appID}
	c.mu.RLock()
	e, ok := c.entries[k]
	c.mu.RUnlock()
	age := c.now().Sub(e.loadedAt)
	if ok && ((e.missing && age < missingAge) || (!e.missing && age < c.maxAge)) {
		if e.missing {
			return App{}, ErrNotFound
		}
		return e.app, nil
	}
	app, err := c.load(ctx, tenant, appID)
	switch {
	case errors.Is(err, ErrNotFound):
		c.store(k, appEntry{missing: true, loadedAt: c.now()})
		return App{}, err
	case err != nil:
		if ok && !e.missing {
			return e.app, nil // stale but known: keep serving
		}
		return App{}, err
	}
	c.store(k, appEntry{app: app, loadedAt: c.now()})
	return app, nil
}

func (c *AppCache) store(k appKey, e appEntry) {
	c.mu.Lock()
	c.entries[k] = e
	c.mu.Unlock()
}

// Invalidate drops a tenant's cached apps.
func (c *AppCache) Invalidate(tenant ID) {
	c.mu.Lock()
	for k := range c.entries {
		if k.tenant == tenant {
			delete(c.entries, k)
		}
	}
	c.mu.Unlock()
}

// InvalidateAll drops everything.
func (c *AppCache) InvalidateAll() {
	c.mu.Lock()
	clear(c.entries)
	c.mu.Unlock()
}
