package gatewaynats

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"

	"github.com/nats-io/nats.go/jetstream"
)

// EnsureKV creates the key-value bucket cfg describes, or, when it exists,
// raises its replicas to cfg.Replicas — never lowering them — and applies
// the rest of cfg. It returns the bucket and the replicas it has. Nodes of a
// cluster call it concurrently; a bucket another node has just created may
// leave requests unanswered until its stream has a leader, so callers bound
// ctx and try again later.
func EnsureKV(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig, logger *slog.Logger) (jetstream.KeyValue, int, error) {
	kv, err := js.CreateKeyValue(ctx, cfg)
	if err == nil {
		return kv, cfg.Replicas, nil
	}
	if !errors.Is(err, jetstream.ErrBucketExists) {
		return nil, 0, err
	}
	// It exists with other replicas (or another TTL).
	if kv, err = js.KeyValue(ctx, cfg.Bucket); err != nil {
		return nil, 0, err
	}
	st, err := kv.Status(ctx)
	if err != nil {
		return nil, 0, err
	}
	if have := st.Config().Replicas; have > cfg.Replicas {
		cfg.Replicas = have
	} else if have < cfg.Replicas {
		logger.Info("moving a key-value bucket to more replicas", "bucket", cfg.Bucket, "replicas", cfg.Replicas)
	}
	if kv, err = js.UpdateKeyValue(ctx, cfg); err != nil {
		return nil, 0, err
	}
	return kv, cfg.Replicas, nil
}

// MaxReplicas is the most replicas JetStream gives a stream or bucket.
const MaxReplicas = 5

// Replicas is the replica count a bucket should have: it only grows, as
// the cluster does, and never past MaxReplicas. Safe for concurrent use.
type Replicas struct{ n atomic.Int32 }

// Raise sets the count to n if that is more, capped at MaxReplicas.
func (r *Replicas) Raise(n int) {
	v := int32(min(n, MaxReplicas))
	for {
		cur := r.n.Load()
		if v <= cur || r.n.CompareAndSwap(cur, v) {
			return
		}
	}
}

// Get returns the count.
func (r *Replicas) Get() int { return int(r.n.Load()) }
