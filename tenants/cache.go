package tenants

import (
	"context"
	"sort"
	"time"

	"github.com/blockgate/blockgate/internal/regcache"
)

// ComponentCache keeps each tenant's components in memory for the request
// path. Entries are dropped by Invalidate (the gateway calls it on registry
// notifications) and refreshed after MaxAge as a safety net: past MaxAge an
// entry is still served while a reload runs in the background. When a
// reload fails, the stale entry keeps serving: a registry outage must not
// take down tenants whose configuration the node already knows.
//
// It is safe for concurrent use.
type ComponentCache struct {
	cache *regcache.Cache[ID, map[string]Component]
}

// NewComponentCache returns a cache that reads a tenant's components with
// load and refreshes them at least every maxAge.
func NewComponentCache(load func(ctx context.Context, tenant ID) ([]Component, error), maxAge time.Duration) *ComponentCache {
	return newComponentCache(load, maxAge, time.Now)
}

func newComponentCache(load func(ctx context.Context, tenant ID) ([]Component, error), maxAge time.Duration, now func() time.Time) *ComponentCache {
	return &ComponentCache{cache: regcache.New(regcache.Config[ID, map[string]Component]{
		Load: func(ctx context.Context, tenant ID) (map[string]Component, error) {
			list, err := load(ctx, tenant)
			if err != nil {
				return nil, err
			}
			byName := make(map[string]Component, len(list))
			for _, comp := range list {
				byName[comp.Name] = comp
			}
			return byName, nil
		},
		Refresh: maxAge,
		Now:     now,
	})}
}

// Invalidate drops what is cached for tenant.
func (c *ComponentCache) Invalidate(tenant ID) {
	c.cache.Invalidate(tenant)
}

// InvalidateAll drops everything.
func (c *ComponentCache) InvalidateAll() {
	c.cache.InvalidateAll()
}

// Component returns the tenant's component called name.
func (c *ComponentCache) Component(ctx context.Context, tenant ID, name string) (Component, bool, error) {
	byName, err := c.cache.Get(ctx, tenant)
	if err != nil {
		return Component{}, false, err
	}
	comp, ok := byName[name]
	return comp, ok, nil
}

// HasKind reports whether the tenant has a component of the block kind.
func (c *ComponentCache) HasKind(ctx context.Context, tenant ID, kind string) (bool, error) {
	byName, err := c.cache.Get(ctx, tenant)
	if err != nil {
		return false, err
	}
	for _, comp := range byName {
		if comp.Kind() == kind {
			return true, nil
		}
	}
	return false, nil
}

// Components lists the tenant's components by name.
func (c *ComponentCache) Components(ctx context.Context, tenant ID) ([]Component, error) {
	byName, err := c.cache.Get(ctx, tenant)
	if err != nil {
		return nil, err
	}
	out := make([]Component, 0, len(byName))
	for _, comp := range byName {
		out = append(out, comp)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
