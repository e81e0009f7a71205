// Package gatewaycluster tells every gateway node which nodes of its
// cluster are alive, over JetStream: no consensus of its own.
//
// Each node puts a heartbeat, its Node record, under its name in a
// replicated key-value bucket (default blockgate_nodes) every Interval, and
// watches the bucket. The bucket's TTL drops a heartbeat nobody renewed; a
// node that stops cleanly deletes its own key, so the others see it leave
// at once, and one that dies drops out of their lists TTL after its last
// heartbeat. A node always counts itself, even when JetStream cannot be
// reached, so that it never sees a cluster of zero.
//
// Liveness is judged by when this node last heard of a heartbeat on its own
// clock (for the heartbeats already in the bucket when the watch starts, by
// the time JetStream stored them), so the nodes' clocks need not agree.
// Time during which this node cannot put its own heartbeat does not count
// against the others: it cannot tell their silence from its own outage.
// So when the node that led the bucket dies, the survivors keep counting
// each other through the bucket's leader election instead of each falling
// back to a cluster of one (and enforcing a whole tenant's rate alone).
package gatewaycluster

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
)

// Node is one gateway node as its heartbeat describes it.
type Node struct {
	// Name is the node's name (--node-name), unique in the cluster.
	Name string `json:"name"`
	// HTTP, GRPC and Admin are the addresses of the node's listeners as the
	// node sees them.
	HTTP  string `json:"http"`
	GRPC  string `json:"grpc"`
	Admin string `json:"admin"`
	// Version is the gateway's version.
	Version string `json:"version"`
	// StartedAt is when the node started.
	StartedAt time.Time `json:"startedAt"`
	// LastSeen is when this node last heard the node's heartbeat; not part
	// of the heartbeat itself.
	LastSeen time.Time `json:"lastSeen"`

	// down is the Membership's outage clock at LastSeen.
	down time.Duration
}

// Config configures a Membership. Zero values take the documented defaults.
type Config struct {
	// Self is this node's heartbeat; Self.Name is required and must be a
	// valid key (letters, digits, -, _, =, /, and . not at either end).
	Self Node
	// Bucket is the key-value bucket of the heartbeats; default
	// "blockgate_nodes". Every node of a cluster must use the same.
	Bucket string
	// Replicas of the bucket when this node creates it; default 1. It is
	// raised with SetReplicas and never lowered.
	Replicas int
	// Interval between heartbeats; default 2s.
	Interval time.Duration
	// TTL is how long a heartbeat keeps a node alive; default 10s, at least
	// twice Interval.
	TTL time.Duration
	// OnChange, when set, is called with the live nodes whenever a node
	// joins or leaves, and once when Run has read the bucket. It is called
	// from Run's goroutine, one call at a time, and must not block; the
	// slice is the callee's.
	OnChange func([]Node)
	// Logger; nil discards.
	Logger *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Membership keeps this node's heartbeat in the bucket and the list of live
// nodes. Members and SetReplicas may be called concurrently with Run and
// with each other.
type Membership struct {
	js     jetstream.JetStream
	cfg    Config
	logger *slog.Logger
	warn   lograte.Limiter // used by Run's goroutine only
	// replicas is what the bucket should have (SetReplicas).
	replicas gatewaynats.Replicas

	mu    sync.Mutex
	nodes map[string]Node // other nodes, by name, with LastSeen
	// The outage clock: how long, in all, this node could not put its
	// heartbeat (downTotal, plus now - downSince while it still cannot).
	downTotal time.Duration
	downSince time.Time // zero while the bucket takes heartbeats
	lastPut   time.Time // when a heartbeat was last put
}

// New returns a Membership over js; Run starts it.
func New(js jetstream.JetStream, cfg Config) (*Membership, error) {
	if js == nil {
		return nil, errors.New("gatewaycluster: nil JetStream")
	}
	if !validKey(cfg.Self.Name) {
		return nil, fmt.Errorf("gatewaycluster: node name %q: use letters, digits, -, _ and inner dots", cfg.Self.Name)
	}
	if cfg.Bucket == "" {
		cfg.Bucket = "blockgate_nodes"
	}
	if cfg.Replicas <= 0 {
		cfg.Replicas = 1
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 2 * time.Second
	}
	if cfg.TTL <= 0 {
		cfg.TTL = 10 * time.Second
	}
	if cfg.TTL < 2*cfg.Interval {
		return nil, fmt.Errorf("gatewaycluster: TTL %s is less than twice Interval %s", cfg.TTL, cfg.Interval)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	m := &Membership{js: js, cfg: cfg, logger: cfg.Logger.With("component", "cluster"), nodes: map[string]Node{}}
	m.warn.Every = 30 * time.Second
	m.replicas.Raise(cfg.Replicas)
	return m, nil
}

// validKey reports whether name can be a key of the bucket.
func validKey(name string) bool {
	if name == "" || len(name) > 255 || strings.HasPrefix(name, ".") || strings.HasSuffix(name, ".") {
		return false
	}
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', strings.ContainsRune("-_=/.", r):
		default:
			return false
		}
	}
	return true
}

// Members returns the live nodes, this one included, sorted by name. The
// slice is the caller's.
func (m *Membership) Members() []Node {
	now := m.cfg.Now()
	self := m.cfg.Self
	self.LastSeen = now
	out := []Node{self}
	m.mu.Lock()
	down := m.downAt(now)
	for _, n := range m.nodes {
		if now.Sub(n.LastSeen)-(down-n.down) <= m.cfg.TTL {
			out = append(out, n)
		}
	}
	m.mu.Unlock()
	slices.SortFunc(out, func(a, b Node) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// downAt reads the outage clock at now; m.mu must be held.
func (m *Membership) downAt(now time.Time) time.Duration {
	if m.downSince.IsZero() {
		return m.downTotal
	}
	return m.downTotal + max(0, now.Sub(m.downSince))
}

// heartbeatFailed starts the outage clock, from the last heartbeat that
// was put: the outage may have begun any time after it.
func (m *Membership) heartbeatFailed() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.downSince.IsZero() {
		m.downSince = m.lastPut
		if m.downSince.IsZero() {
			m.downSince = m.cfg.Now()
		}
	}
}

// heartbeatPut stops the outage clock.
func (m *Membership) heartbeatPut() {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.cfg.Now()
	m.downTotal = m.downAt(now)
	m.downSince = time.Time{}
	m.lastPut = now
}

// SetReplicas raises the bucket's replicas to n (at most 5) at the next
// heartbeat; a smaller n is ignored.
func (m *Membership) SetReplicas(n int) { m.replicas.Raise(n) }

// Run heartbeats and watches the bucket until ctx is done, then deletes
// this node's heartbeat. JetStream being unavailable is no error: Run
// keeps trying, and meanwhile the node counts only itself and the nodes it
// heard from within the TTL.
func (m *Membership) Run(ctx context.Context) (err error) {
	defer func() {
		if r := recover(); r != nil {
			m.logger.Error("cluster membership loop panicked", "panic", r)
			err = fmt.Errorf("cluster membership loop panicked: %v", r)
		}
	}()
	tick := time.NewTicker(m.cfg.Interval)
	defer tick.Stop()
	var (
		kv       jetstream.KeyValue
		replicas int
		watch    jetstream.KeyWatcher
		updates  <-chan jetstream.KeyValueEntry
		replayed bool   // the watch has delivered the bucket's contents
		live     string // names of the live nodes when OnChange was last called
	)
	stopWatch := func() {
		if watch != nil {
			_ = watch.Stop()
		}
		watch, updates, replayed = nil, nil, false
	}
	defer stopWatch()
	notify := func() {
		members := m.Members()
		names := make([]string, len(members))
		for i, n := range members {
			names[i] = n.Name
		}
		if key := strings.Join(names, "\n"); key != live {
			live = key
			m.logger.Info("cluster members", "nodes", names)
			if m.cfg.OnChange != nil {
				m.cfg.OnChange(members)
			}
		}
	}
	beat := func() {
		if want := m.replicas.Get(); kv == nil || want > replicas {
			var err error
			if kv, replicas, err = m.ensureBucket(ctx); err != nil {
				kv = nil
				m.heartbeatFailed()
				m.warnf("the cluster's membership bucket is unavailable; retrying", err)
				return
			}
		}
		if watch == nil {
			w, err := kv.WatchAll(ctx)
			if err != nil {
				m.heartbeatFailed()
				m.warnf("watching the cluster's membership bucket failed; retrying", err)
				return
			}
			watch, updates = w, w.Updates()
		}
		self := m.cfg.Self
		self.LastSeen = time.Time{}
		b, _ := json.Marshal(self)
		pctx, cancel := context.WithTimeout(ctx, m.cfg.Interval)
		defer cancel()
		if _, err := kv.Put(pctx, self.Name, b); err != nil {
			if ctx.Err() == nil {
				m.heartbeatFailed()
				m.warnf("putting this node's heartbeat failed", err)
			}
			return
		}
		m.heartbeatPut()
	}

	beat()
	for {
		select {
		case <-ctx.Done():
			m.leave(kv)
			return nil
		case <-tick.C:
			beat()
			if replayed {
				notify() // nodes may have timed out
			}
		case e, ok := <-updates:
			if !ok {
				stopWatch() // restarted at the next beat
				continue
			}
			if e == nil {
				replayed = true
				notify()
				continue
			}
			m.apply(e, replayed)
			if replayed {
				notify()
			}
		}
	}
}

// apply records a heartbeat or a node's leaving. Heartbeats replayed when
// the watch starts count from when JetStream stored them.
func (m *Membership) apply(e jetstream.KeyValueEntry, live bool) {
	name := e.Key()
	if name == m.cfg.Self.Name {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if e.Operation() != jetstream.KeyValuePut {
		delete(m.nodes, name)
		return
	}
	var n Node
	if err := json.Unmarshal(e.Value(), &n); err != nil || n.Name != name {
		m.logger.Warn("ignoring a malformed heartbeat", "key", name, "err", err)
		return
	}
	n.LastSeen = m.cfg.Now()
	if !live && e.Created().Before(n.LastSeen) {
		n.LastSeen = e.Created()
	}
	n.down = m.downAt(n.LastSeen)
	m.nodes[name] = n
}

// ensureBucket creates the bucket or raises its replicas to what
// SetReplicas asked, never lowering them. It creates first, as pubsubjs
// does: creating is idempotent for the same configuration, and a lookup of
// a bucket another node has just created goes unanswered until its stream
// has a leader.
//
// Each attempt is bounded by Interval: until the cluster has a meta
// leader, JetStream leaves requests unanswered, and the next heartbeat
// tries again.
func (m *Membership) ensureBucket(ctx context.Context) (jetstream.KeyValue, int, error) {
	ctx, cancel := context.WithTimeout(ctx, m.cfg.Interval)
	defer cancel()
	cfg := jetstream.KeyValueConfig{
		Bucket:      m.cfg.Bucket,
		Description: "blockgate: heartbeats of the live gateway nodes",
		History:     1,
		TTL:         m.cfg.TTL,
		// Heartbeats are worthless after a restart of the whole cluster.
		Storage:  jetstream.MemoryStorage,
		Replicas: m.replicas.Get(),
	}
	return gatewaynats.EnsureKV(ctx, m.js, cfg, m.logger)
}

// leave deletes this node's heartbeat so that the others see it go now.
func (m *Membership) leave(kv jetstream.KeyValue) {
	if kv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := kv.Delete(ctx, m.cfg.Self.Name); err != nil {
		m.logger.Warn("deleting this node's heartbeat failed; the others drop it after the TTL", "err", err)
	}
}

func (m *Membership) warnf(msg string, err error) {
	if suppressed, ok := m.warn.Allow(m.cfg.Now()); ok {
		m.logger.Warn(msg, "err", err, "suppressed", suppressed)
	}
}
