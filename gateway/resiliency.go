package gateway

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/blockgate/blockgate/blocks/invoke/invokeresiliency"
	"github.com/blockgate/blockgate/internal/regcache"
	"github.com/blockgate/blockgate/tenants"
	"github.com/blockgate/blockgate/tenants/tenantspg"
)

// resiliencies keeps each tenant's parsed Resiliency resources for the
// invocation path, and the circuit breakers that outlive single calls.
// Entries are dropped on registry notifications and refreshed after maxAge:
// past maxAge an entry is still served while a reload runs in the
// background, and a failed reload keeps the last known policies.
type resiliencies struct {
	breakers *invokeresiliency.Breakers
	cache    *regcache.Cache[tenants.ID, *tenantResiliency]
}

// tenantResiliency is what is cached of one tenant: its resources, and
// their merge for each caller app seen so far.
type tenantResiliency struct {
	tenant   tenants.ID
	rs       []invokeresiliency.Resiliency
	breakers *invokeresiliency.Breakers

	merged  sync.Map // caller app id → invokeresiliency.Resiliency
	nMerged atomic.Int32
}

// maxMergedCallers bounds the merges kept per tenant; callers beyond it are
// merged on each call.
const maxMergedCallers = 1024

// resiliencyMaxAge is how long a tenant's policies are served before a
// background reload.
const resiliencyMaxAge = 30 * time.Second

func newResiliencies(reg *tenantspg.Registry) *resiliencies {
	return newResiliencyCache(reg.Resiliencies, time.Now)
}

func newResiliencyCache(load func(ctx context.Context, tenant tenants.ID) ([]tenantspg.ResiliencyRecord, error), now func() time.Time) *resiliencies {
	r := &resiliencies{breakers: invokeresiliency.NewBreakers(nil)}
	r.cache = regcache.New(regcache.Config[tenants.ID, *tenantResiliency]{
		Load: func(ctx context.Context, tenant tenants.ID) (*tenantResiliency, error) {
			recs, err := load(ctx, tenant)
			if err != nil {
				return nil, err
			}
			t := &tenantResiliency{tenant: tenant, breakers: r.breakers, rs: make([]invokeresiliency.Resiliency, 0, len(recs))}
			for _, rec := range recs {
				parsed, err := invokeresiliency.Parse(rec.Document)
				if err != nil {
					continue // validated when applied; a newer binary may read it differently
				}
				parsed.Tenant = tenant
				t.rs = append(t.rs, parsed)
			}
			return t, nil
		},
		Refresh: resiliencyMaxAge,
		Now:     now,
	})
	return r
}

// Policy implements invoke.Policies.
func (r *resiliencies) Policy(ctx context.Context, caller tenants.Principal, target string) (invokeresiliency.Policy, error) {
	t, err := r.cache.Get(ctx, caller.Tenant)
	if err != nil {
		return invokeresiliency.Policy{}, err
	}
	return t.forCaller(caller.AppID).ForApp(target), nil
}

// forCaller returns the tenant's resources merged for the caller app. The
// result is shared: ForApp only reads it, and the breakers it hands out
// come from the node's Breakers.
func (t *tenantResiliency) forCaller(appID string) invokeresiliency.Resiliency {
	if m, ok := t.merged.Load(appID); ok {
		return m.(invokeresiliency.Resiliency)
	}
	m := invokeresiliency.Merge(appID, t.rs...)
	m.Tenant = t.tenant
	m.Breakers = t.breakers
	if t.nMerged.Add(1) <= maxMergedCallers {
		t.merged.Store(appID, m)
	}
	return m
}

// Invalidate drops a tenant's policies; its breakers restart closed when
// the tenant's policies change.
func (r *resiliencies) Invalidate(tenant tenants.ID) {
	r.cache.Invalidate(tenant)
}

// InvalidateAll drops every tenant's policies.
func (r *resiliencies) InvalidateAll() {
	r.cache.InvalidateAll()
}
