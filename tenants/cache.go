package tenants

import (
	"context"
	"sort"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// ComponentCache keeps each tenant's components in memory for the request
// path. Entries are dropped by Invalidate (the gateway calls it on registry
// notifications) and refreshed after MaxAge as a safety net. When a refresh
// fails, the stale entry keeps serving: a registry outage must not take down
// tenants whose configuration the node already knows.
//
// It is safe for concurrent use.
type ComponentCache struct {
	load   func(ctx context.Context, tenant ID) ([]Component, error)
	maxAge time.Duration
	now    func() time.Time

	mu      sync.RWMutex
	entries map[ID]*cacheEntry
	// gen counts invalidations per tenant, so that a load that raced with an
	// invalidation is not stored as fresh.
	gen     map[ID]uint64
	flights singleflight.Group
}

type cacheEntry struct {
	byName   map[string]Component
	loadedAt time.Time
	gen      uint64
}

// NewComponentCache returns a cache that reads a tenant's components with
// load and refreshes them at least every maxAge.
func NewComponentCache(load func(ctx context.Context, tenant ID) ([]Component, error), maxAge time.Duration) *ComponentCache {
	return &ComponentCache{
		load:    load,
		maxAge:  maxAge,
		now:     time.Now,
		entries: make(map[ID]*cacheEntry),
		gen:     make(map[ID]uint64),
	}
}

// Invalidate drops what is cached for tenant.
func (c *ComponentCache) Invalidate(tenant ID) {
	c.mu.Lock()
	delete(c.entries, tenant)
	c.gen[tenant]++
	c.mu.Unlock()
}

// InvalidateAll drops everything.
func (c *ComponentCache) InvalidateAll() {
	c.mu.Lock()
	for t := range c.entries {
		c.gen[t]++
	}
	clear(c.entries)
	c.mu.Unlock()
}

func (c *ComponentCache) entry(ctx context.Context, tenant ID) (*cacheEntry, error) {
	c.mu.RLock()
	e := c.entries[tenant]
	gen := c.gen[tenant]
	c.mu.RUnlock()
	if e != nil && c.now().Sub(e.loadedAt) < c.maxAge {
		return e, nil
	}
	v, err, _ := c.flights.Do(string(tenant), func() (any, error) {
		list, err := c.load(context.WithoutCancel(ctx), tenant)
		if err != nil {
			return nil, err
		}
		fresh := &cacheEntry{byName: make(map[string]Component, len(list)), loadedAt: c.now(), gen: gen}
		for _, comp := range list {
			fresh.byName[comp.Name] = comp
		}
		c.mu.Lock()
		if c.gen[tenant] == gen {
			c.entries[tenant] = fresh
		}
		c.mu.Unlock()
		return fresh, nil
	})
	if err != nil {
		if e != nil {
			return e, nil // stale but known: keep serving
		}
		return nil, err
	}
	return v.(*cacheEntry), nil
}

// Component returns the tenant's component called name.
func (c *ComponentCache) Component(ctx context.Context, tenant ID, name string) (Component, bool, error) {
	e, err := c.entry(ctx, tenant)
	if err != nil {
		return Component{}, false, err
	}
	comp, ok := e.byName[name]
	return comp, ok, nil
}

// HasKind reports whether the tenant has a component of the block kind.
func (c *ComponentCache) HasKind(ctx context.Context, tenant ID, kind string) (bool, error) {
	e, err := c.entry(ctx, tenant)
	if err != nil {
		return false, err
	}
	for _, comp := range e.byName {
		if comp.Kind() == kind {
			return true, nil
		}
	}
	return false, nil
}

// Components lists the tenant's components by name.
func (c *ComponentCache) Components(ctx context.Context, tenant ID) ([]Component, error) {
	e, err := c.entry(ctx, tenant)
	if err != nil {
		return nil, err
	}
	out := make([]Component, 0, len(e.byName))
	for _, comp := range e.byName {
		out = append(out, comp)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
