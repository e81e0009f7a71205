package authpolicy

import (
	"context"
	"fmt"
	"time"

	"github.com/blockgate/blockgate/internal/regcache"
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
// resync) and reloaded after maxAge as a safety net: past maxAge the Set is
// still served while a reload runs in the background. When a reload fails
// the stale Set keeps serving, as the component cache does; when there is
// no Set at all the error is returned and the caller must refuse the
// request (fail closed).
//
// It is safe for concurrent use.
type Cache struct {
	store       Store
	trustDomain string
	cache       *regcache.Cache[tenants.ID, *Set]
}

// NewCache returns a cache over store for a gateway whose SPIFFE trust
// domain is trustDomain; a Set is reloaded at least every maxAge.
func NewCache(store Store, trustDomain string, maxAge time.Duration) *Cache {
	return newCache(store, trustDomain, maxAge, time.Now)
}

func newCache(store Store, trustDomain string, maxAge time.Duration, now func() time.Time) *Cache {
	c := &Cache{store: store, trustDomain: trustDomain}
	c.cache = regcache.New(regcache.Config[tenants.ID, *Set]{Load: c.load, Refresh: maxAge, Now: now})
	return c
}

// Set returns the tenant's current Set. The Set is shared and immutable.
func (c *Cache) Set(ctx context.Context, tenant tenants.ID) (*Set, error) {
	return c.cache.Get(ctx, tenant)
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
	c.cache.Invalidate(tenant)
}

// InvalidateAll drops everything.
func (c *Cache) InvalidateAll() {
	c.cache.InvalidateAll()
}
