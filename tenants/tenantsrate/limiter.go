package tenantsrate

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/blockgate/blockgate/tenants"
)

// Config tunes a Limiter. The zero value is ready to use.
type Config struct {
	// MaxAppsPerTenant bounds the app buckets a node keeps for one tenant;
	// default 1024. Requests from further apps share one overflow bucket,
	// limited like one app, until Sweep or a full bucket makes room.
	MaxAppsPerTenant int
	// IdleAfter is how long a bucket must have stood full (and a tenant
	// unused) before Sweep drops it; default 1 minute.
	IdleAfter time.Duration
	// SweepEvery is how often Run calls Sweep; default IdleAfter.
	SweepEvery time.Duration
	// Now is the clock; default time.Now. Tests inject a fake one. Only
	// differences between its readings matter.
	Now func() time.Time
}

// Validate reports negative settings.
func (c Config) Validate() error {
	var errs []error
	if c.MaxAppsPerTenant < 0 {
		errs = append(errs, fmt.Errorf("MaxAppsPerTenant %d: must not be negative", c.MaxAppsPerTenant))
	}
	if c.IdleAfter < 0 {
		errs = append(errs, fmt.Errorf("IdleAfter %v: must not be negative", c.IdleAfter))
	}
	if c.SweepEvery < 0 {
		errs = append(errs, fmt.Errorf("SweepEvery %v: must not be negative", c.SweepEvery))
	}
	return errors.Join(errs...)
}

// Counts are one tenant's decisions on this node since the node started
// (or since Forget).
type Counts struct {
	// Allowed counts admitted requests.
	Allowed uint64
	// RefusedTenant counts requests refused because the tenant's bucket
	// was short, whether or not the app's was too.
	RefusedTenant uint64
	// RefusedApp counts requests refused by the app's bucket alone.
	RefusedApp uint64
	// Overflowed counts requests, admitted or not, from apps beyond
	// MaxAppsPerTenant that were limited by the shared overflow bucket.
	Overflowed uint64
}

const numShards = 64

// maxNodes bounds SetShare, which keeps the arithmetic of nodeParams in
// range; no gateway cluster is anywhere near it.
const maxNodes = 1 << 20

// Limiter decides whether a tenant's app may make a request now. It keeps a
// token bucket per tenant and per app of the tenant, created on first use
// and dropped by Sweep once idle. It is safe for concurrent use.
type Limiter struct {
	rates      func(tenants.ID) Rates
	now        func() time.Time
	epoch      time.Time
	maxApps    int
	idleAfter  int64
	sweepEvery time.Duration
	seed       maphash.Seed
	nodes      atomic.Int64
	shards     [numShards]shard
}

// shard is one part of the tenant map. Requests read it without a lock:
// entries is an immutable map, replaced (copied) under mu when a tenant is
// added or evicted, which is rare next to lookups, and costs a copy of one
// shard, 1/64 of the tenants. An RWMutex would make every lookup write its
// shared reader count, a cache line that bounces between cores.
type shard struct {
	entries atomic.Pointer[map[tenants.ID]*entry]
	// mu serialises the writers of entries, and guards retired.
	mu sync.Mutex
	// retired keeps the counts of evicted tenants, so that Stats stays
	// monotonic; a tenant's counts move back into its entry when it
	// returns. It holds one small value per tenant the node has served.
	retired map[tenants.ID]Counts
	_       [64]byte // keep shards on separate cache lines
}

// load returns the current map; the caller must not modify it.
func (s *shard) load() map[tenants.ID]*entry { return *s.entries.Load() }

// replace publishes a copy of the map with put added (unless nil) and the
// entries in drop removed. Called under s.mu.
func (s *shard) replace(put *entry, putID tenants.ID, drop map[tenants.ID]bool) {
	old := s.load()
	m := make(map[tenants.ID]*entry, len(old)+1)
	for id, e := range old {
		if !drop[id] {
			m[id] = e
		}
	}
	if put != nil {
		m[putID] = put
	}
	s.entries.Store(&m)
}

// entry is a tenant's state on this node. mu guards every field: both of a
// request's buckets are checked and spent under it, which is what makes
// "both or neither" exact.
type entry struct {
	mu sync.Mutex
	// dead is set when Sweep or Forget has removed the entry from its
	// shard; a request that finds it dead looks the tenant up again.
	dead bool

	// rates and nodes are what tp and ap were derived from.
	rates  Rates
	nodes  int64
	tp, ap params

	tenant   bucket
	overflow bucket
	apps     map[string]*bucket
	// appsPeak is the most apps held since the map was made, so that Sweep
	// can rebuild a map that has shrunk a lot (Go maps do not shrink).
	appsPeak int
	// nextScan is the earliest time a full app map is scanned again for
	// full buckets to make room.
	nextScan int64
	lastSeen int64
	counts   Counts
}

// New returns a Limiter that reads each tenant's limits from rates on every
// request, so that a changed limit applies at once. rates is called
// concurrently, outside any lock of the limiter, and must be cheap: read a
// snapshot, never the database. The Limiter starts with a share of one node.
func New(rates func(tenants.ID) Rates, cfg Config) (*Limiter, error) {
	if rates == nil {
		return nil, errors.New("tenantsrate: nil rates function")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("tenantsrate config: %w", err)
	}
	if cfg.MaxAppsPerTenant == 0 {
		cfg.MaxAppsPerTenant = 1024
	}
	if cfg.IdleAfter == 0 {
		cfg.IdleAfter = time.Minute
	}
	if cfg.SweepEvery == 0 {
		cfg.SweepEvery = cfg.IdleAfter
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	l := &Limiter{
		rates:      rates,
		now:        cfg.Now,
		epoch:      cfg.Now(),
		maxApps:    cfg.MaxAppsPerTenant,
		idleAfter:  int64(cfg.IdleAfter),
		sweepEvery: cfg.SweepEvery,
		seed:       maphash.MakeSeed(),
	}
	l.nodes.Store(1)
	for i := range l.shards {
		empty := make(map[tenants.ID]*entry)
		l.shards[i].entries.Store(&empty)
		l.shards[i].retired = make(map[tenants.ID]Counts)
	}
	return l, nil
}

// SetShare makes this node enforce 1/nodes of every limit, rate and burst
// alike, for a cluster of nodes gateway nodes behind a balancer; values below
// 1 mean 1. It takes effect on each bucket's next request, rescaling it
// without a fresh burst. Safe to call at any time, from any goroutine.
func (l *Limiter) SetShare(nodes int) {
	l.nodes.Store(int64(min(max(nodes, 1), maxNodes)))
}

// Share returns the number of nodes the limits are currently divided by.
func (l *Limiter) Share() int { return int(l.nodes.Load()) }

// Allow reports whether tenant's app may make a request costing cost units
// now (a cost below 1 counts as 1), and spends them if so. A request must
// pass both the tenant's and the app's bucket; when either refuses, neither
// is spent, and retryAfter is how long until both hold enough tokens, if
// nothing else spends them first. Use RetryAfterSeconds for a header.
//
// Allow does not allocate once the tenant's and the app's buckets exist.
func (l *Limiter) Allow(tenant tenants.ID, app string, cost int) (ok bool, retryAfter time.Duration) {
	r := l.rates(tenant)
	nodes := l.nodes.Load()
	now := int64(l.now().Sub(l.epoch))
	c := max(int64(cost), 1)
	for {
		e := l.entry(tenant)
		e.mu.Lock()
		if e.dead {
			e.mu.Unlock()
			continue
		}
		ok, wait := l.allow(e, r, nodes, app, c, now)
		e.mu.Unlock()
		return ok, time.Duration(wait)
	}
}

// allow decides under e.mu.
func (l *Limiter) allow(e *entry, r Rates, nodes int64, app string, cost, now int64) (bool, int64) {
	if e.rates != r || e.nodes != nodes {
		e.rates, e.nodes = r, nodes
		e.tp = nodeParams(r.TenantRPS, r.TenantBurst, nodes)
		e.ap = nodeParams(r.AppRPS, r.AppBurst, nodes)
	}
	e.lastSeen = now
	tw := e.tenant.wait(e.tp, now, cost)
	var ab *bucket
	var aw int64
	if !e.ap.unlimited() {
		ab = l.appBucket(e, app, now)
		aw = ab.wait(e.ap, now, cost)
	}
	switch {
	case tw > 0:
		e.counts.RefusedTenant++
		return false, max(tw, aw)
	case aw > 0:
		e.counts.RefusedApp++
		return false, aw
	}
	e.tenant.take(now, cost)
	if ab != nil {
		ab.take(now, cost)
	}
	e.counts.Allowed++
	return true, 0
}

// appBucket returns app's bucket, making it if there is room, or else the
// tenant's overflow bucket. Called under e.mu.
func (l *Limiter) appBucket(e *entry, app string, now int64) *bucket {
	if b := e.apps[app]; b != nil {
		return b
	}
	if len(e.apps) >= l.maxApps && now >= e.nextScan {
		// Full buckets are as good as absent: drop them to make room. A
		// scan costs O(MaxAppsPerTenant), so a tenant cycling through app
		// ids gets at most one a second, or fewer if no bucket can be
		// full before then.
		soonest := int64(maxSpan)
		for k, b := range e.apps {
			if b.full(now) {
				delete(e.apps, k)
			} else {
				soonest = min(soonest, b.tat)
			}
		}
		e.nextScan = max(soonest, now+int64(time.Second))
	}
	if len(e.apps) >= l.maxApps {
		e.counts.Overflowed++
		return &e.overflow
	}
	if e.apps == nil {
		e.apps = make(map[string]*bucket)
	}
	b := new(bucket)
	*b = newBucket(e.ap, now)
	// Clone: the caller's string may point into a request buffer.
	e.apps[strings.Clone(app)] = b
	e.appsPeak = max(e.appsPeak, len(e.apps))
	return b
}

func (l *Limiter) shard(tenant tenants.ID) *shard {
	return &l.shards[maphash.String(l.seed, string(tenant))%numShards]
}

// entry returns tenant's entry, making it if needed. The caller locks it and
// checks dead.
func (l *Limiter) entry(tenant tenants.ID) *entry {
	s := l.shard(tenant)
	if e := s.load()[tenant]; e != nil {
		return e
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.load()[tenant]; e != nil {
		return e
	}
	e := &entry{counts: s.retired[tenant]}
	delete(s.retired, tenant)
	s.replace(e, tenants.ID(strings.Clone(string(tenant))), nil)
	return e
}

// Sweep drops the buckets that have stood full for IdleAfter, and the
// entries of tenants unused for IdleAfter whose buckets are all gone or full;
// it returns how many buckets and entries it dropped. A dropped bucket comes
// back full on the next request, which is what it was, so sweeping never
// forgives a debt. Run calls Sweep; tests call it directly.
func (l *Limiter) Sweep() int {
	now := int64(l.now().Sub(l.epoch))
	before := now - l.idleAfter
	n := 0
	var drop map[tenants.ID]bool
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		clear(drop)
		for id, e := range s.load() {
			e.mu.Lock()
			n += e.sweepApps(before)
			if len(e.apps) == 0 && e.lastSeen <= before && e.tenant.full(before) && e.overflow.full(before) {
				e.dead = true
				s.retired[id] = e.counts
				if drop == nil {
					drop = make(map[tenants.ID]bool)
				}
				drop[id] = true
				n++
			}
			e.mu.Unlock()
		}
		if len(drop) > 0 {
			s.replace(nil, "", drop)
		}
		s.mu.Unlock()
	}
	return n
}

// sweepApps drops e's app buckets full since before. Called under e.mu.
func (e *entry) sweepApps(before int64) int {
	n := 0
	for k, b := range e.apps {
		if b.full(before) {
			delete(e.apps, k)
			n++
		}
	}
	switch {
	case len(e.apps) == 0:
		e.apps, e.appsPeak = nil, 0
	case e.appsPeak >= 64 && len(e.apps) <= e.appsPeak/4:
		m := make(map[string]*bucket, len(e.apps))
		for k, b := range e.apps {
			m[k] = b
		}
		e.apps, e.appsPeak = m, len(m)
	}
	return n
}

// Run calls Sweep every SweepEvery until ctx is done, then returns nil.
func (l *Limiter) Run(ctx context.Context) error {
	t := time.NewTicker(l.sweepEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			l.Sweep()
		}
	}
}

// Forget drops everything kept for tenant, counts included: for a deleted
// tenant. A later request starts it afresh.
func (l *Limiter) Forget(tenant tenants.ID) {
	s := l.shard(tenant)
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.load()[tenant]; e != nil {
		e.mu.Lock()
		e.dead = true
		e.mu.Unlock()
		s.replace(nil, "", map[tenants.ID]bool{tenant: true})
	}
	delete(s.retired, tenant)
}

// Stats returns a snapshot of every tenant's counts on this node, for the
// metrics endpoint. The caller owns the map.
func (l *Limiter) Stats() map[tenants.ID]Counts {
	out := make(map[tenants.ID]Counts)
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		for id, c := range s.retired {
			out[id] = c
		}
		for id, e := range s.load() {
			e.mu.Lock()
			out[id] = e.counts
			e.mu.Unlock()
		}
		s.mu.Unlock()
	}
	return out
}
