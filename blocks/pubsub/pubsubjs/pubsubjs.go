package pubsubjs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/blockgate/blockgate/blocks/pubsub"
	"github.com/blockgate/blockgate/tenants"
)

var _ pubsub.Broker = (*Broker)(nil)

// Config configures a Broker. Zero values take the documented defaults.
type Config struct {
	// TenantMaxBytes returns a tenant's JetStream storage limit in bytes
	// (<=0: DefaultMaxBytes). It is called when the tenant's stream is
	// created or updated (first use, ApplyLimits); nil means the default for
	// every tenant.
	TenantMaxBytes func(tenants.ID) int64
	// DefaultMaxBytes is the storage limit of a tenant's stream; default 1 GiB.
	DefaultMaxBytes int64
	// MaxAge is how long a message is kept, consumed or not: an unconsumed
	// message older than this is dropped. Default 24h.
	MaxAge time.Duration
	// Replicas of each tenant's stream; default 1. More needs a JetStream
	// cluster of at least that many servers. SetReplicas raises it later.
	Replicas int
	// DuplicateWindow is how long a Message.ID is remembered for
	// deduplication; default 2m, at most MaxAge.
	DuplicateWindow time.Duration
	// Partitions is the number of partitions of a topic's keyed messages;
	// default 8. Keep it fixed for a deployment (see the package doc).
	Partitions int
	// Timeout bounds a request whose ctx has no deadline (publish acks,
	// acknowledgements, stream and consumer management); default 10s, which
	// covers a JetStream leader election after a server died.
	Timeout time.Duration
	// Logger; nil discards.
	Logger *slog.Logger
}

// Defaults.
const (
	defaultMaxBytes        = 1 << 30
	defaultMaxAge          = 24 * time.Hour
	defaultDuplicateWindow = 2 * time.Minute
	defaultPartitions      = 8
	defaultTimeout         = 10 * time.Second
)

func (c *Config) setDefaults() {
	if c.DefaultMaxBytes <= 0 {
		c.DefaultMaxBytes = defaultMaxBytes
	}
	if c.MaxAge == 0 {
		c.MaxAge = defaultMaxAge
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.DuplicateWindow == 0 {
		c.DuplicateWindow = defaultDuplicateWindow
	}
	if c.Partitions == 0 {
		c.Partitions = defaultPartitions
	}
	if c.Timeout == 0 {
		c.Timeout = defaultTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports a configuration that cannot work; it expects defaults
// to have been applied.
func (c *Config) Validate() error {
	switch {
	case c.MaxAge < 0:
		return fmt.Errorf("pubsubjs: MaxAge %s is negative", c.MaxAge)
	case c.DuplicateWindow < 0 || c.DuplicateWindow > c.MaxAge:
		return fmt.Errorf("pubsubjs: DuplicateWindow %s must be between 0 and MaxAge %s", c.DuplicateWindow, c.MaxAge)
	case c.Replicas < 1 || c.Replicas > 5:
		return fmt.Errorf("pubsubjs: Replicas %d must be between 1 and 5", c.Replicas)
	case c.Partitions < 1 || c.Partitions > 1024:
		return fmt.Errorf("pubsubjs: Partitions %d must be between 1 and 1024", c.Partitions)
	case c.Timeout < 0:
		return fmt.Errorf("pubsubjs: Timeout %s is negative", c.Timeout)
	}
	return nil
}

// Broker is pubsub.Broker over JetStream. All methods may be called
// concurrently. It does not own the connection and needs no Close: Consume
// stops its goroutines when its ctx ends.
type Broker struct {
	js     jetstream.JetStream
	cfg    Config
	logger *slog.Logger
	// replicas is what streams are created or updated with: Config.Replicas,
	// raised by SetReplicas.
	replicas atomic.Int32

	mu      sync.Mutex
	streams map[tenants.ID]*tenantStream
}

// tenantStream remembers that a tenant's stream exists.
type tenantStream struct {
	mu    sync.Mutex // held while creating the stream
	ready atomic.Bool
}

// New returns a Broker publishing and consuming over nc, which the caller
// owns and closes after the last Consume has returned.
func New(nc *nats.Conn, cfg Config) (*Broker, error) {
	if nc == nil {
		return nil, errors.New("pubsubjs: nil NATS connection")
	}
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc,
		jetstream.WithDefaultTimeout(cfg.Timeout),
		jetstream.WithPublishAsyncTimeout(cfg.Timeout),
	)
	if err != nil {
		return nil, fmt.Errorf("pubsubjs: opening JetStream: %w", err)
	}
	b := &Broker{
		js:      js,
		cfg:     cfg,
		logger:  cfg.Logger.With("block", "pubsub", "component", "pubsub.jetstream"),
		streams: make(map[tenants.ID]*tenantStream),
	}
	b.replicas.Store(int32(cfg.Replicas))
	return b, nil
}

// SetReplicas raises the replicas of the tenants' streams to n, at most 5,
// when the JetStream cluster has grown: each stream this node knows is
// updated on its next use here (Publish, Consume, ApplyLimits), and streams
// are created with n from now on. It never lowers them: a smaller n, or a
// node started with a smaller Config.Replicas, leaves streams as they are.
func (b *Broker) SetReplicas(n int) {
	n = min(n, 5)
	for {
		cur := b.replicas.Load()
		if int32(n) <= cur {
			return
		}
		if b.replicas.CompareAndSwap(cur, int32(n)) {
			break
		}
	}
	b.logger.Info("tenant streams move to more replicas on their next use", "replicas", n)
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, ts := range b.streams {
		ts.ready.Store(false)
	}
}

// ensureStream makes sure the tenant's stream exists, creating it on the
// tenant's first use; later calls cost one map lookup.
func (b *Broker) ensureStream(ctx context.Context, tenant tenants.ID) error {
	ts, err := b.tenantStream(tenant)
	if err != nil {
		return err
	}
	if ts.ready.Load() {
		return nil
	}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.ready.Load() {
		return nil
	}
	// Creating is idempotent: it may be sent again while JetStream has no
	// meta leader, after the server that was the leader stopped or died.
	if err := b.untilAnswered(ctx, func(ctx context.Context) error { return b.applyStream(ctx, tenant) }); err != nil {
		return err
	}
	ts.ready.Store(true)
	return nil
}

// tenantStream returns the tenant's entry, refusing invalid tenant ids: a
// tenant id becomes part of subjects and of the stream name.
func (b *Broker) tenantStream(tenant tenants.ID) (*tenantStream, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if ts, ok := b.streams[tenant]; ok {
		return ts, nil
	}
	if _, err := tenants.ParseID(string(tenant)); err != nil {
		return nil, fmt.Errorf("pubsubjs: %w", err)
	}
	ts := &tenantStream{}
	b.streams[tenant] = ts
	return ts, nil
}

// forgetStream makes the next use of the tenant check its stream again,
// after a publish found no stream.
func (b *Broker) forgetStream(tenant tenants.ID) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if ts, ok := b.streams[tenant]; ok {
		ts.ready.Store(false)
	}
}

// ApplyLimits creates or updates the tenant's stream with its current
// limits; call it after the tenant's storage quota changed.
func (b *Broker) ApplyLimits(ctx context.Context, tenant tenants.ID) error {
	ts, err := b.tenantStream(tenant)
	if err != nil {
		return err
	}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if err := b.applyStream(ctx, tenant); err != nil {
		return err
	}
	ts.ready.Store(true)
	return nil
}

// applyStream creates or updates the tenant's stream, keeping its replicas
// if it has more than this Broker would give it.
//
// It creates first: creating is idempotent when the stream exists with the
// same configuration, the common case, and while a stream that another node
// has just created has no leader yet, JetStream leaves the info and update
// requests a lookup first would send unanswered until they time out.
func (b *Broker) applyStream(ctx context.Context, tenant tenants.ID) error {
	cfg := b.streamConfig(tenant)
	_, err := b.js.CreateStream(ctx, cfg)
	if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		// It exists with other limits or replicas.
		var st jetstream.Stream
		if st, err = b.js.Stream(ctx, cfg.Name); err == nil {
			had := st.CachedInfo().Config.Replicas
			cfg.Replicas = max(cfg.Replicas, had)
			if _, err = b.js.UpdateStream(ctx, cfg); err == nil && cfg.Replicas > had {
				err = b.waitLeader(ctx, st)
			}
		}
	}
	if err != nil {
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && apiErr.ErrorCode == jsErrCodeStorageExceeded {
			b.logger.Error("JetStream cannot reserve the tenant's storage: the sum of tenant quotas exceeds the server's JetStream store",
				"tenant", tenant, "max_bytes", cfg.MaxBytes, "err", err)
		}
		return fmt.Errorf("creating stream %s: %w", cfg.Name, b.classify(err))
	}
	b.logger.Info("tenant stream ready", "tenant", tenant, "stream", cfg.Name, "max_bytes", cfg.MaxBytes, "replicas", cfg.Replicas)
	return nil
}

// waitLeader waits until a stream that is moving to more replicas has a
// leader again: until then a publish goes unanswered.
func (b *Broker) waitLeader(ctx context.Context, st jetstream.Stream) error {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	for {
		info, err := st.Info(ctx)
		if err == nil && info.Cluster != nil && info.Cluster.Leader != "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for the stream's leader after adding replicas: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// streamConfig is the configuration of the tenant's stream.
func (b *Broker) streamConfig(tenant tenants.ID) jetstream.StreamConfig {
	maxBytes := int64(0)
	if b.cfg.TenantMaxBytes != nil {
		maxBytes = b.cfg.TenantMaxBytes(tenant)
	}
	if maxBytes <= 0 {
		maxBytes = b.cfg.DefaultMaxBytes
	}
	return jetstream.StreamConfig{
		Name:        streamName(tenant),
		Description: "blockgate pub/sub messages of tenant " + string(tenant),
		Subjects:    streamSubjects(tenant),
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    int(b.replicas.Load()),
		MaxAge:      b.cfg.MaxAge,
		MaxBytes:    maxBytes,
		Discard:     jetstream.DiscardNew,
		Duplicates:  b.cfg.DuplicateWindow,
		AllowMsgTTL: true,
	}
}
