package statepg

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/blockgate/blockgate/internal/lograte"
	"github.com/jackc/pgx/v5"
)

// errLogEvery is the least time between two logged sweep failures: a
// database that is down for an hour logs sixty lines, not one per sweep.
const errLogEvery = time.Minute

// Sweep deletes the expired rows of every tenant and returns how many it
// deleted. It works in batches of bounded size, each its own short
// transaction under the platform scope, until a batch comes back short or
// ctx is done. Reads never return expired rows, so Sweep only reclaims
// space; it may run on several nodes at once.
func (b *Backend) Sweep(ctx context.Context) (int64, error) {
	var total int64
	for {
		batch := &pgx.Batch{QueuedQueries: make([]*pgx.QueuedQuery, 0, 2)}
		batch.Queue(setPlatform)
		batch.Queue(sweepSQL, b.sweepBatch)
		br := b.pool.SendBatch(ctx, batch)
		_, err := br.Exec()
		var n int64
		if err == nil {
			tag, e := br.Exec()
			n, err = tag.RowsAffected(), e
		}
		if err = errors.Join(err, br.Close()); err != nil {
			return total, wrap("sweep", err)
		}
		total += n
		if n < int64(b.sweepBatch) {
			return total, nil
		}
		if err := ctx.Err(); err != nil {
			return total, err
		}
	}
}

// Run sweeps expired rows now and then every interval until ctx is done,
// and returns nil then. A failing or panicking sweep is logged (at most one
// failure line per minute) and retried at the next tick; it never stops Run.
func (b *Backend) Run(ctx context.Context, every time.Duration) error {
	if every <= 0 {
		return fmt.Errorf("statepg: sweep interval must be positive, got %v", every)
	}
	t := time.NewTicker(every)
	defer t.Stop()
	lim := lograte.Limiter{Every: errLogEvery}
	for {
		b.sweepOnce(ctx, &lim)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (b *Backend) sweepOnce(ctx context.Context, lim *lograte.Limiter) {
	defer func() {
		if r := recover(); r != nil {
			b.logger.Error("state TTL sweep panicked", "panic", r, "stack", string(debug.Stack()))
		}
	}()
	start := time.Now()
	n, err := b.sweep(ctx)
	switch {
	case err != nil && ctx.Err() != nil:
		// Shutting down: not a failure.
	case err != nil:
		if suppressed, ok := lim.Allow(time.Now()); ok {
			b.logger.Error("state TTL sweep failed", "err", err, "deleted", n, "suppressedFailures", suppressed)
		}
	case n > 0:
		b.logger.Debug("state TTL sweep", "deleted", n, "took", time.Since(start))
	}
}
