package gateway

import (
	"context"
	"sync"
	"time"

	"github.com/blockgate/blockgate/blocks/invoke/invokeresiliency"
	"github.com/blockgate/blockgate/tenants"
	"github.com/blockgate/blockgate/tenants/tenantspg"
)

// resiliencies keeps each tenant's parsed Resiliency resources for the
// invocation path, and the circuit breakers that outlive single calls.
// Entries are dropped on registry notifications and refreshed after maxAge;
// a failed refresh keeps the last known policies.
type resiliencies struct {
	registry *tenantspg.Registry
	breakers *invokeresiliency.Breakers
	maxAge   time.Duration

	mu      sync.Mutex
	entries map[tenants.ID]resiliencyEntry
}

type resiliencyEntry struct {
	rs       []invokeresiliency.Resiliency
	loadedAt time.Time
}

func newResiliencies(reg *tenantspg.Registry) *resiliencies {
	return &resiliencies{
		registry: reg,
		breakers: invokeresiliency.NewBreakers(nil),
		maxAge:   30 * time.Second,
		entries:  map[tenants.ID]resiliencyEntry{},
	}
}

// Policy implements invoke.Policies.
func (r *resiliencies) Policy(ctx context.Context, caller tenants.Principal, target string) (invokeresiliency.Policy, error) {
	rs, err := r.load(ctx, caller.Tenant)
	if err != nil {
		return invokeresiliency.Policy{}, err
	}
	merged := invokeresiliency.Merge(caller.AppID, rs...)
	merged.Tenant = caller.Tenant
	merged.Breakers = r.breakers
	return merged.ForApp(target), nil
}

func (r *resiliencies) load(ctx context.Context, tenant tenants.ID) ([]invokeresiliency.Resiliency, error) {
	r.mu.Lock()
	e, ok := r.entries[tenant]
	r.mu.Unlock()
	if ok && time.Since(e.loadedAt) < r.maxAge {
		return e.rs, nil
	}
	recs, err := r.registry.Resiliencies(ctx, tenant)
	if err != nil {
		if ok {
			return e.rs, nil
		}
		return nil, err
	}
	rs := make([]invokeresiliency.Resiliency, 0, len(recs))
	for _, rec := range recs {
		parsed, err := invokeresiliency.Parse(rec.Document)
		if err != nil {
			continue // validated when applied; a newer binary may read it differently
		}
		parsed.Tenant = tenant
		rs = append(rs, parsed)
	}
	r.mu.Lock()
	r.entries[tenant] = resiliencyEntry{rs: rs, loadedAt: time.Now()}
	r.mu.Unlock()
	return rs, nil
}

// Invalidate drops a tenant's policies; its breakers restart closed when
// the tenant's policies change.
func (r *resiliencies) Invalidate(tenant tenants.ID) {
	r.mu.Lock()
	delete(r.entries, tenant)
	r.mu.Unlock()
}

// InvalidateAll drops every tenant's policies.
func (r *resiliencies) InvalidateAll() {
	r.mu.Lock()
	clear(r.entries)
	r.mu.Unlock()
}
