package tenants

import (
	"context"
	"errors"
	"time"

	"github.com/blockgate/blockgate/internal/regcache"
)

// AppCache keeps apps in memory for the request path (service invocation
// resolves the target on every call). Entries are dropped by Invalidate;
// past MaxAge an entry is still served while a reload runs in the
// background, and a failed reload keeps serving it. "Not found" is cached
// too, briefly, so that a caller hammering an unknown app id does not reach
// the registry each time.
//
// It is safe for concurrent use.
type AppCache struct {
	cache *regcache.Cache[appKey, App]
}

type appKey struct {
	tenant ID
	app    string
}

// missingAge is how long "no such app" is remembered.
const missingAge = 2 * time.Second

// NewAppCache returns a cache over load (the registry's App).
func NewAppCache(load func(ctx context.Context, tenant ID, appID string) (App, error), maxAge time.Duration) *AppCache {
	return newAppCache(load, maxAge, time.Now)
}

func newAppCache(load func(ctx context.Context, tenant ID, appID string) (App, error), maxAge time.Duration, now func() time.Time) *AppCache {
	return &AppCache{cache: regcache.New(regcache.Config[appKey, App]{
		Load: func(ctx context.Context, k appKey) (App, error) {
			return load(ctx, k.tenant, k.app)
		},
		Refresh:     maxAge,
		IsNotFound:  func(err error) bool { return errors.Is(err, ErrNotFound) },
		NotFoundAge: missingAge,
		Now:         now,
	})}
}

// App returns the tenant's app, or an error wrapping ErrNotFound.
func (c *AppCache) App(ctx context.Context, tenant ID, appID string) (App, error) {
	return c.cache.Get(ctx, appKey{tenant, appID})
}

// Invalidate drops a tenant's cached apps.
func (c *AppCache) Invalidate(tenant ID) {
	c.cache.InvalidateFunc(func(k appKey) bool { return k.tenant == tenant })
}

// InvalidateAll drops everything.
func (c *AppCache) InvalidateAll() {
	c.cache.InvalidateAll()
}
