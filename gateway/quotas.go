package gateway

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/blockgate/blockgate/blocks"
	"github.com/blockgate/blockgate/tenants"
	"github.com/blockgate/blockgate/tenants/tenantspg"
	"github.com/blockgate/blockgate/tenants/tenantsrate"
)

// quotas admits every authenticated API request by its tenant's limits:
// the request rates of the tenant and of the app (token buckets, each node
// enforcing its share), the tenant's concurrent requests and streams on
// this node, and the size of a request. The transports call Admit once
// per request or stream and release when it ends.
//
// Limits are read from the registry once per tenant and kept until a
// registry notification says they changed (Invalidate): the hot path reads
// a map behind an atomic pointer and takes no lock.
type quotas struct {
	registry *tenantspg.Registry
	defaults tenants.Limits
	rate     *tenantsrate.Limiter
	logger   *slog.Logger

	limits atomic.Pointer[map[tenants.ID]tenants.Limits]
	// stateBytes is each tenant's stored state, as last measured.
	stateBytes atomic.Pointer[map[tenants.ID]int64]
	mu         sync.Mutex // serialises writers of limits
	inflight   sync.Map   // tenants.ID → *atomic.Int64
}

func newQuotas(reg *tenantspg.Registry, defaults tenants.Limits, logger *slog.Logger) (*quotas, error) {
	q := &quotas{registry: reg, defaults: defaults, logger: logger.With("component", "quotas")}
	empty := map[tenants.ID]tenants.Limits{}
	q.limits.Store(&empty)
	rl, err := tenantsrate.New(q.rates, tenantsrate.Config{})
	if err != nil {
		return nil, err
	}
	q.rate = rl
	return q, nil
}

// effective returns the tenant's limits with the gateway's defaults in
// place of zero fields. A tenant whose limits cannot be read gets the
// defaults: an outage of the registry must not stop traffic.
func (q *quotas) effective(ctx context.Context, id tenants.ID) tenants.Limits {
	if l, ok := (*q.limits.Load())[id]; ok {
		return l
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	l := q.defaults
	if t, err := q.registry.Tenant(ctx, id); err != nil {
		// Keep the defaults until the registry's notifications resume: a
		// resync after reconnecting drops them. Asking again on every
		// request would put a timeout on each during an outage.
		q.logger.Warn("reading tenant limits failed; applying the defaults until the registry is back", "tenant", id, "err", err)
	} else {
		l = t.Limits.Or(q.defaults)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	old := *q.limits.Load()
	next := make(map[tenants.ID]tenants.Limits, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	next[id] = l
	q.limits.Store(&next)
	return l
}

// rates feeds the rate limiter from the cached limits; a tenant not cached
// yet is unlimited for the request that loads it.
func (q *quotas) rates(id tenants.ID) tenantsrate.Rates {
	l, ok := (*q.limits.Load())[id]
	if !ok {
		return tenantsrate.Rates{}
	}
	pos := func(v float64) float64 { return max(v, 0) }
	return tenantsrate.Rates{
		TenantRPS: pos(l.RequestsPerSecond), TenantBurst: max(l.RequestBurst, 0),
		AppRPS: pos(l.AppRequestsPerSecond), AppBurst: max(l.AppRequestBurst, 0),
	}
}

// Invalidate drops a tenant's cached limits (all of them for "").
func (q *quotas) Invalidate(id tenants.ID) {
	q.mu.Lock()
	defer q.mu.Unlock()
	next := map[tenants.ID]tenants.Limits{}
	if id != "" {
		for k, v := range *q.limits.Load() {
			if k != id {
				next[k] = v
			}
		}
	}
	q.limits.Store(&next)
}

// Admit checks a request of p against its tenant's limits. size is the
// request's body size when known (-1 otherwise). It returns the largest
// body the tenant may send (0: the gateway's limit applies) and release,
// which the caller must call when the request or stream ends.
func (q *quotas) Admit(ctx context.Context, p tenants.Principal, size int64) (maxBytes int64, release func(), err error) {
	l := q.effective(ctx, p.Tenant)
	if l.MaxRequestBytes > 0 {
		maxBytes = l.MaxRequestBytes
		if size > maxBytes {
			return 0, nil, blocks.ErrBodyTooLarge(maxBytes)
		}
	}
	// A tenant without rate limits never reaches the limiter: no bucket,
	// no lock on its hot path.
	limited := l.RequestsPerSecond > 0 || l.AppRequestsPerSecond > 0
	if limited {
		if ok, wait := q.rate.Allow(p.Tenant, p.AppID, 1); !ok {
			return 0, nil, blocks.ErrTooManyRequests(wait)
		}
	}
	release = func() {}
	if l.MaxConnections > 0 {
		v, _ := q.inflight.LoadOrStore(p.Tenant, new(atomic.Int64))
		n := v.(*atomic.Int64)
		if n.Add(1) > int64(l.MaxConnections) {
			n.Add(-1)
			return 0, nil, blocks.ErrQuotaExceeded("concurrent requests and streams on this node", int64(l.MaxConnections))
		}
		var once sync.Once
		release = func() { once.Do(func() { n.Add(-1) }) }
	}
	return maxBytes, release, nil
}

// SetNodes makes this node enforce its share of the tenants' request
// rates among nodes live gateway nodes (at least 1); the gateway calls it
// when cluster membership changes. See tenantsrate for the tolerance.
func (q *quotas) SetNodes(nodes int) { q.rate.SetShare(nodes) }

// Run sweeps idle rate buckets until ctx is done.
func (q *quotas) Run(ctx context.Context) error { return q.rate.Run(ctx) }

// StateWrite refuses a state write of p's tenant once its stored state has
// reached its quota. Usage is measured every interval by RunStateUsage, so
// a tenant may overshoot by what it writes within one interval.
func (q *quotas) StateWrite(ctx context.Context, p tenants.Principal) error {
	l := q.effective(ctx, p.Tenant)
	if l.StateMaxBytes <= 0 {
		return nil
	}
	used := q.stateBytes.Load()
	if used == nil || (*used)[p.Tenant] < l.StateMaxBytes {
		return nil
	}
	return blocks.ErrQuotaExceeded("bytes of stored state", l.StateMaxBytes)
}

// RunStateUsage measures every tenant's stored state every interval until
// ctx is done.
func (q *quotas) RunStateUsage(ctx context.Context, usage func(context.Context) (map[tenants.ID]int64, error), every time.Duration) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if m, err := usage(ctx); err == nil {
			q.stateBytes.Store(&m)
		} else if ctx.Err() == nil {
			q.logger.Warn("measuring tenants' state usage failed; keeping the last figures", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
