// Package gatewaysidecars tells every gateway node which apps run Envoy
// sidecars anywhere in the cluster, over JetStream, so that every node
// builds the same xDS snapshots with the same versions: an app gets direct
// sidecar-to-sidecar routes from its callers when it has a sidecar
// connected to any node, not just to the caller's.
//
// # The bucket
//
// The node that holds a sidecar's ADS stream puts a key for it,
// "<tenant>.<app>.<node>.<instance>" (Sidecar.Key escapes each part), in a
// replicated key-value bucket (default blockgate_sidecars), renews it every
// TTL/3 while the sidecar stays connected, and deletes it when the sidecar
// leaves (xds.Presence, which the xDS server calls). Every node watches
// the whole bucket: an app runs sidecars in a tenant while it has at least
// one live key. When a tenant's list of such apps changes, OnChange is
// called for it, once for the changes that come within Debounce of the
// first; the gateway refreshes the tenant's snapshots there, and Source
// fills xds.TenantConfig.Sidecars from the same view.
//
// As in gatewaycluster, a key is live for TTL after this node last heard
// of it, on its own clock (for the keys already in the bucket when the
// watch starts, after JetStream stored them), and the bucket's TTL drops
// the keys nobody renews; the nodes' clocks need not agree. This node's
// own keys count only once they come back through the watch, like
// everybody else's, so that all nodes judge from the same data.
//
// # Windows and limits
//
//   - A sidecar that connects or leaves is seen by every node within the
//     round trip of a put and Debounce (100 ms by default), then the
//     rebuild.
//   - A node that dies cannot delete its keys. The others keep counting
//     them until TTL after their last renewal, which came at most TTL/3
//     before the death: between 2/3 TTL and TTL (plus up to a second, the
//     sweep) after it, 20 to 31 s by default. Its sidecars reconnect
//     through another node, which puts keys of its own, so this matters
//     only for a sidecar that went away while its node was dead: its
//     callers keep routing to it directly, and fail, for that long. A node
//     that restarts under the same name deletes the keys of its previous
//     life as soon as it has read the bucket.
//   - A node cut off from JetStream cannot renew its keys: the others drop
//     its sidecars after TTL, and so does it, its own view ageing the same
//     way. Calls to those apps then go through the gateway, which still
//     reaches them; the keys come back at the first renewal after the
//     connection does.
//   - A node that stops cleanly deletes its keys on the way out, within two
//     seconds; those it could not delete expire as above.
package gatewaysidecars

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/blockgate/blockgate/gateway/gatewaynats"
	"github.com/blockgate/blockgate/internal/lograte"
	"github.com/blockgate/blockgate/tenants"
	"github.com/blockgate/blockgate/xds"
)

// Defaults.
const (
	DefaultBucket   = "blockgate_sidecars"
	DefaultTTL      = 30 * time.Second
	DefaultDebounce = 100 * time.Millisecond
	// minTTL keeps the renewals (TTL/3) and JetStream's expiry sensible.
	minTTL = 300 * time.Millisecond
	// maxSweep bounds the time between two checks for expired keys, and
	// between two attempts to reach the bucket while it cannot be.
	maxSweep = time.Second
	// maxOpTimeout bounds each request to JetStream, so that one that goes
	// unanswered (no meta leader yet) holds the loop only so long.
	maxOpTimeout = 2 * time.Second
	// leaveTimeout bounds the deletion of this node's keys when Run ends.
	leaveTimeout = 2 * time.Second
)

// Config configures a Presence. Zero values take the documented defaults.
type Config struct {
	// Node is this gateway node's name (--node-name), unique in the
	// cluster. Required.
	Node string
	// Bucket is the key-value bucket of the sidecars; default
	// "blockgate_sidecars". Every node of a cluster must use the same.
	Bucket string
	// Replicas of the bucket when this node creates it; default 1, at most
	// 5. It is raised with SetReplicas and never lowered.
	Replicas int
	// TTL is how long a key counts after it was last renewed; default 30s,
	// at least 300ms. Keys are renewed every TTL/3. Every node of a
	// cluster should use the same.
	TTL time.Duration
	// Debounce is how long changes are gathered before OnChange is called;
	// default 100ms.
	Debounce time.Duration
	// OnChange, when set, is called with a tenant whose list of apps with
	// sidecars (Apps) has changed, including when Run has first read the
	// bucket. It is called from Run's goroutine, one call at a time, and
	// must not block: the gateway's calls xds.Server.Refresh.
	OnChange func(tenant tenants.ID)
	// Logger; nil discards.
	Logger *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Presence keeps this node's sidecars in the bucket and the cluster's view
// of them. SetSidecar, Apps, Source's TenantConfig and SetReplicas may be
// called concurrently with Run and with each other.
type Presence struct {
	js       jetstream.JetStream
	cfg      Config
	logger   *slog.Logger
	replicas gatewaynats.Replicas
	wake     chan struct{}

	mu sync.Mutex
	// local are the keys of the sidecars connected to this node, with
	// their values; pending the puts (true) and deletes (false) Run has
	// still to make, latest wins.
	local   map[string][]byte
	pending map[string]bool
	// seen is the bucket's view: per tenant, the live keys with when this
	// node last heard of each.
	seen map[tenants.ID]map[string]entry
}

// entry is a key of the bucket as this node knows it.
type entry struct {
	Sidecar
	at time.Time
}

var _ xds.Presence = (*Presence)(nil)

// New returns a Presence over js; Run starts it.
func New(js jetstream.JetStream, cfg Config) (*Presence, error) {
	if js == nil {
		return nil, errors.New("gatewaysidecars: nil JetStream")
	}
	if cfg.Node == "" {
		return nil, errors.New("gatewaysidecars: the node's name is required")
	}
	if cfg.Bucket == "" {
		cfg.Bucket = DefaultBucket
	}
	if cfg.Replicas <= 0 {
		cfg.Replicas = 1
	}
	if cfg.TTL == 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.TTL < minTTL {
		return nil, fmt.Errorf("gatewaysidecars: TTL %s is under %s", cfg.TTL, minTTL)
	}
	if cfg.Debounce <= 0 {
		cfg.Debounce = DefaultDebounce
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	p := &Presence{
		js: js, cfg: cfg, logger: cfg.Logger.With("component", "sidecars"),
		wake:  make(chan struct{}, 1),
		local: map[string][]byte{}, pending: map[string]bool{}, seen: map[tenants.ID]map[string]entry{},
	}
	p.replicas.Raise(cfg.Replicas)
	return p, nil
}

// SetSidecar implements xds.Presence: it records that the sidecar is
// connected to this node or not, for Run to put or delete its key. It
// does not block.
func (p *Presence) SetSidecar(tenant tenants.ID, app, instance string, connected bool) {
	sc := Sidecar{Tenant: tenant, App: app, Node: p.cfg.Node, Instance: instance}
	key, err := sc.Key()
	if err != nil {
		// The xDS server admits only valid node ids; this is a bug.
		p.logger.Error("a sidecar that cannot be a key", "err", err)
		return
	}
	p.mu.Lock()
	if connected {
		v, _ := json.Marshal(value{Sidecar: sc, ConnectedAt: p.cfg.Now().UTC()})
		p.local[key] = v
	} else {
		delete(p.local, key)
	}
	p.pending[key] = connected
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// value is what a key holds, for people reading the bucket; the key alone
// is what counts.
type value struct {
	Sidecar
	ConnectedAt time.Time `json:"connectedAt"`
}

// Apps returns the apps of tenant with at least one live sidecar anywhere
// in the cluster, sorted. The slice is the caller's.
func (p *Presence) Apps(tenant tenants.ID) []string {
	now := p.cfg.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, e := range p.seen[tenant] {
		if p.live(e, now) && !slices.Contains(out, e.App) {
			out = append(out, e.App)
		}
	}
	slices.Sort(out)
	return out
}

// opTimeout bounds one request to JetStream: the renewal interval, at
// most maxOpTimeout.
func (p *Presence) opTimeout() time.Duration { return min(p.cfg.TTL/3, maxOpTimeout) }

func (p *Presence) live(e entry, now time.Time) bool { return now.Sub(e.at) <= p.cfg.TTL }

// Source wraps inner so that TenantConfig.Sidecars also lists Apps: the
// Source of an xds.Server whose Config.Presence is p.
func (p *Presence) Source(inner xds.Source) xds.Source {
	return xds.SourceFunc(func(ctx context.Context, tenant tenants.ID) (xds.TenantConfig, error) {
		cfg, err := inner.TenantConfig(ctx, tenant)
		if err != nil {
			return cfg, err
		}
		apps := p.Apps(tenant)
		if len(cfg.Sidecars) > 0 {
			apps = append(apps, cfg.Sidecars...)
			slices.Sort(apps)
			apps = slices.Compact(apps)
		}
		cfg.Sidecars = apps
		return cfg, nil
	})
}

// SetReplicas raises the bucket's replicas to n (at most 5) at the next
// renewal; a smaller n is ignored.
func (p *Presence) SetReplicas(n int) { p.replicas.Raise(n) }

// Run keeps this node's keys in the bucket and watches it until ctx is
// done, then deletes this node's keys. JetStream being unavailable is no
// error: Run keeps trying every second.
func (p *Presence) Run(ctx context.Context) (err error) {
	defer func() {
		if r := recover(); r != nil {
			p.logger.Error("sidecar presence loop panicked", "panic", r)
			err = fmt.Errorf("sidecar presence loop panicked: %v", r)
		}
	}()
	l := &loop{p: p, dirty: map[tenants.ID]bool{}, notified: map[tenants.ID]string{}}
	l.warn.Every = 30 * time.Second
	defer l.stopWatch()
	renew := time.NewTicker(p.cfg.TTL / 3)
	defer renew.Stop()
	sweep := time.NewTicker(min(p.cfg.TTL/3, maxSweep))
	defer sweep.Stop()

	l.connect(ctx)
	l.sync(ctx, true)
	for {
		select {
		case <-ctx.Done():
			l.leave()
			return nil
		case <-p.wake:
			l.sync(ctx, false)
		case <-renew.C:
			l.connect(ctx)
			l.sync(ctx, true)
		case <-sweep.C:
			l.expire()
			if l.kv == nil || l.watch == nil {
				// Back after JetStream was out of reach: renew at once,
				// the keys may have expired.
				lost := l.kv == nil
				l.connect(ctx)
				l.sync(ctx, lost && l.kv != nil)
			}
		case e, ok := <-l.updates:
			if !ok {
				l.stopWatch() // restarted at the next sweep
				continue
			}
			l.apply(e)
		case <-l.debounceC:
			l.debounceC = nil
			l.flush()
		}
	}
}

// loop is the state of Run's goroutine.
type loop struct {
	p        *Presence
	warn     lograte.Limiter
	kv       jetstream.KeyValue
	replicas int
	watch    jetstream.KeyWatcher
	updates  <-chan jetstream.KeyValueEntry
	// replay gathers the keys the watch delivers before its end-of-replay
	// marker; nil once it came. It then replaces the view whole, so that
	// keys deleted while the watch was down do not linger.
	replay map[string]entry
	// dirty are the tenants whose keys changed since the last flush, which
	// debounceC will trigger; notified the list of apps last reported per
	// tenant.
	dirty     map[tenants.ID]bool
	debounceC <-chan time.Time
	notified  map[tenants.ID]string
}

func (l *loop) stopWatch() {
	if l.watch != nil {
		_ = l.watch.Stop()
	}
	l.watch, l.updates, l.replay = nil, nil, nil
}

// connect makes sure the bucket exists with the replicas wanted, and is
// watched.
func (l *loop) connect(ctx context.Context) {
	if want := l.p.replicas.Get(); l.kv == nil || want > l.replicas {
		kv, replicas, err := l.p.ensureBucket(ctx)
		if err != nil {
			l.warnf("the sidecars' bucket is unavailable; retrying", err)
			return
		}
		l.kv, l.replicas = kv, replicas
	}
	if l.watch == nil {
		w, err := l.kv.WatchAll(ctx)
		if err != nil {
			l.warnf("watching the sidecars' bucket failed; retrying", err)
			return
		}
		l.watch, l.updates, l.replay = w, w.Updates(), map[string]entry{}
	}
}

// sync makes the pending puts and deletes, and with all renews every key
// of this node. After a failure it tries no more: what it did not do is
// tried again at the next wake-up, unless a later change of the same key
// came meanwhile.
func (l *loop) sync(ctx context.Context, all bool) {
	p := l.p
	p.mu.Lock()
	ops := p.pending
	p.pending = map[string]bool{}
	values := make(map[string][]byte, len(p.local))
	for k, v := range p.local {
		values[k] = v
	}
	p.mu.Unlock()
	if all {
		for k := range values {
			if _, ok := ops[k]; !ok {
				ops[k] = true
			}
		}
	}
	if len(ops) == 0 {
		return
	}
	var failed map[string]bool
	var lastErr error
	for k, put := range ops {
		switch {
		case lastErr != nil: // given up: kept for later
		case l.kv == nil:
			lastErr = errors.New("no bucket")
		case ctx.Err() != nil:
			lastErr = ctx.Err()
		default:
			lastErr = l.do(ctx, k, put, values[k])
		}
		if lastErr != nil {
			if failed == nil {
				failed = map[string]bool{}
			}
			failed[k] = put
		}
	}
	if failed == nil {
		return
	}
	p.mu.Lock()
	for k, put := range failed {
		if _, later := p.pending[k]; !later {
			p.pending[k] = put
		}
	}
	p.mu.Unlock()
	if l.kv != nil && ctx.Err() == nil {
		l.warnf(fmt.Sprintf("updating %d sidecar keys failed; retrying", len(failed)), lastErr)
	}
}

// do puts or deletes one key.
func (l *loop) do(ctx context.Context, key string, put bool, v []byte) error {
	ctx, cancel := context.WithTimeout(ctx, l.p.opTimeout())
	defer cancel()
	if put {
		if v == nil { // deleted since; the delete is pending
			return nil
		}
		_, err := l.kv.Put(ctx, key, v)
		return err
	}
	return l.kv.Delete(ctx, key)
}

// apply records a key's put or deletion from the watch, or the end of its
// replay.
func (l *loop) apply(e jetstream.KeyValueEntry) {
	p := l.p
	now := p.cfg.Now()
	if e == nil {
		l.endReplay()
		return
	}
	sc, err := ParseKey(e.Key())
	if err != nil {
		l.warnf("ignoring a malformed key in the sidecars' bucket", err)
		return
	}
	put := e.Operation() == jetstream.KeyValuePut
	if l.replay != nil {
		if put {
			at := now
			if c := e.Created(); c.Before(now) {
				at = c
			}
			l.replay[e.Key()] = entry{Sidecar: sc, at: at}
		} else {
			delete(l.replay, e.Key())
		}
		return
	}
	p.mu.Lock()
	keys := p.seen[sc.Tenant]
	old, had := keys[e.Key()]
	switch {
	case put:
		if keys == nil {
			keys = map[string]entry{}
			p.seen[sc.Tenant] = keys
		}
		keys[e.Key()] = entry{Sidecar: sc, at: now}
	case had:
		delete(keys, e.Key())
		if len(keys) == 0 {
			delete(p.seen, sc.Tenant)
		}
	}
	p.mu.Unlock()
	// A renewal of a live key changes nothing.
	if put && !(had && p.live(old, now)) || !put && had {
		l.markDirty(sc.Tenant)
	}
}

// endReplay replaces the view with what the watch replayed, and deletes
// the keys of this node that it does not hold: left by its previous life.
func (l *loop) endReplay() {
	p := l.p
	view := map[tenants.ID]map[string]entry{}
	for k, e := range l.replay {
		if view[e.Tenant] == nil {
			view[e.Tenant] = map[string]entry{}
		}
		view[e.Tenant][k] = e
	}
	l.replay = nil
	stale := 0
	p.mu.Lock()
	for t := range p.seen {
		l.markDirty(t)
	}
	for t, keys := range view {
		l.markDirty(t)
		for k, e := range keys {
			if _, held := p.local[k]; e.Node == p.cfg.Node && !held {
				if _, queued := p.pending[k]; !queued {
					p.pending[k] = false
					stale++
				}
			}
		}
	}
	p.seen = view
	p.mu.Unlock()
	if stale > 0 {
		p.logger.Info("deleting the sidecar keys this node left before it restarted", "keys", stale)
		select {
		case p.wake <- struct{}{}:
		default:
		}
	}
}

// expire forgets the keys nobody renewed within the TTL.
func (l *loop) expire() {
	p := l.p
	now := p.cfg.Now()
	p.mu.Lock()
	for t, keys := range p.seen {
		for k, e := range keys {
			if !p.live(e, now) {
				delete(keys, k)
				l.markDirty(t)
			}
		}
		if len(keys) == 0 {
			delete(p.seen, t)
		}
	}
	p.mu.Unlock()
}

func (l *loop) markDirty(t tenants.ID) {
	l.dirty[t] = true
	if l.debounceC == nil {
		l.debounceC = time.After(l.p.cfg.Debounce)
	}
}

// flush calls OnChange for each dirty tenant whose list of apps changed.
func (l *loop) flush() {
	dirty := l.dirty
	l.dirty = map[tenants.ID]bool{}
	for t := range dirty {
		apps := strings.Join(l.p.Apps(t), "\n")
		if apps == l.notified[t] {
			continue
		}
		if apps == "" {
			delete(l.notified, t)
		} else {
			l.notified[t] = apps
		}
		l.p.logger.Debug("apps with sidecars changed", "tenant", t, "apps", apps)
		if l.p.cfg.OnChange != nil {
			l.p.cfg.OnChange(t)
		}
	}
}

// leave deletes this node's keys, pending puts included, so that the others
// see its sidecars go now.
func (l *loop) leave() {
	if l.kv == nil {
		return
	}
	p := l.p
	p.mu.Lock()
	keys := make([]string, 0, len(p.local)+len(p.pending))
	for k := range p.local {
		keys = append(keys, k)
	}
	for k := range p.pending {
		if _, ok := p.local[k]; !ok {
			keys = append(keys, k)
		}
	}
	p.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), leaveTimeout)
	defer cancel()
	for _, k := range keys {
		if err := l.kv.Delete(ctx, k); err != nil {
			p.logger.Warn("deleting this node's sidecar keys failed; the others drop them after the TTL", "err", err)
			return
		}
	}
}

func (l *loop) warnf(msg string, err error) {
	if suppressed, ok := l.warn.Allow(l.p.cfg.Now()); ok {
		l.p.logger.Warn(msg, "err", err, "suppressed", suppressed)
	}
}

// ensureBucket creates the bucket or raises its replicas to what
// SetReplicas asked, never lowering them, as gatewaycluster does for its
// own. Each attempt is bounded by opTimeout.
func (p *Presence) ensureBucket(ctx context.Context) (jetstream.KeyValue, int, error) {
	ctx, cancel := context.WithTimeout(ctx, p.opTimeout())
	defer cancel()
	cfg := jetstream.KeyValueConfig{
		Bucket:      p.cfg.Bucket,
		Description: "blockgate: Envoy sidecars connected to each gateway node",
		History:     1,
		TTL:         p.cfg.TTL,
		// Presence is worthless after a restart of the whole cluster.
		Storage:  jetstream.MemoryStorage,
		Replicas: p.replicas.Get(),
	}
	return gatewaynats.EnsureKV(ctx, p.js, cfg, p.logger)
}
