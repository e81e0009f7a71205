package authpolicy

import (
	"context"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/blockgate/blockgate/tenants"
)

// Store reads a tenant's access policy; the registry
// (tenants/tenantspg.Registry) implements it. Both methods may be called
// concurrently; the records returned belong to the caller.
type Store interface {
	// AccessPolicies lists the tenant's configurations.
	AccessPolicies(ctx context.Context, tenant tenants.ID) ([]Record, error)
	// DenyByDefault reports the tenant's switch.
	DenyByDefault(ctx context.Context, tenant tenants.ID) (bool, error)
}

// Cache keeps each tenant's Set in memory for the request path. A Set is
// loaded on first use, dropped by Invalidate (the gateway calls it on the
// registry's "policy" and "tenant" notifications, and InvalidateAll on a
// resync) and reloaded after maxAge as a safety net. When a reload fails
// the stale Set keeps serving, as the component cache does; when there is
// no Set at all the error is returned and the caller must refuse the
// request (fail closed).
//
// It is safe for concurrent use.
type Cache struct {
	store       Store
	trustDomain string
	maxAge      time.Duration
	now         func() time.Time

	mu      sync.RWMutex
	entries map[tenants.ID]*cachedSet
	// gen counts invalidations per tenant, so that a load that raced with
	// an invalidation is not kept as fresh.
	gen map[tenants.ID]uint64
	// epoch counts InvalidateAll calls, for loads of tenants that had no
	// entry yet.
	epoch   uint64
	flights singleflight.Group
}

type cachedSet struct {
	set      *Set
	loadedAt time.Time
}

// NewCache returns a cache over store for a gateway whose SPIFFE trust
// domain is trustDomain; a Set is reloaded at least every maxAge.
func NewCache(store Store, trustDomain string, maxAge time.Duration) *Cache {
	return &Cache{
		store:       store,
		trustDomain: trustDomain,
		maxAge:      maxAge,
		now:         time.Now,
		entries:     map[tenants.ID]*cachedSet{},
		gen:         map[tenants.ID]uint64{},
	}
}

// Set returns the tenant's current Set. The Set is shared and immutable.
func (c *Cache) Set(ctx context.Context, tenant tenants.ID) (*Set, error) {
	c.mu.RLock()
	e := c.entries[tenant]
	gen, epoch := c.gen[tenant], c.epoch
	c.mu.RUnlock()
	if e != nil && c.now().Sub(e.loadedAt) < c.maxAge {
		return e.set, nil
	}
	// A load started before an invalidation is not shared with callers
	// that come after it: they start their own.
	key := fmt.Sprintf("%s/%d/%d", tenant, gen, epoch)
	v, err, _ := c.flights.Do(key, func() (any, error) {
		set, err := c.load(context.WithoutCancel(ctx), tenant)
		if err != nil {
			return nil, err
		}
		c.mu.Lock()
		if c.gen[tenant] == gen && c.epoch == epoch {
			c.entries[tenant] = &cachedSet{set: set, loadedAt: c.now()}
		}
		c.mu.Unlock()
		return set, nil
	})
	if err != nil {
		if e != nil {
			return e.set, nil // stale but known: keep serving
		}
		return nil, err
	}
	return v.(*Set), nil
}

func (c *Cache) load(ctx context.Context, tenant tenants.ID) (*Set, error) {
	records, err := c.store.AccessPolicies(ctx, tenant)
	if err != nil {
		return nil, fmt.Errorf("loading access policies of tenant %s: %w", tenant, err)
	}
	deny, err := c.store.DenyByDefault(ctx, tenant)
	if err != nil {
		return nil, fmt.Errorf("loading deny-by-default of tenant %s: %w", tenant, err)
	}
	return NewSet(tenant, c.trustDomain, deny, records)
}

// Invalidate drops what is cached for tenant.
func (c *Cache) Invalidate(tenant tenants.ID) {
	c.mu.Lock()
	delete(c.entries, tenant)
	c.gen[tenant]++
	c.mu.Unlock()
}

// InvalidateAll drops everything.
func (c *Cache) InvalidateAll() {
	c.mu.Lock()
	for t := range c.entries {
		c.gen[t]++
	}
	clear(c.entries)
	c.epoch++
	c.mu.Unlock()
}
