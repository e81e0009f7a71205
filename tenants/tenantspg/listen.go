package tenantspg

import (
	"context"
	"encoding/json"
	"time"
)

// ResyncKind is delivered to Listen's handler when notifications may have
// been missed (at start and after a lost connection): drop every cache.
const ResyncKind = "resync"

// Listen delivers registry changes to handle until ctx is done, holding one
// pooled connection for LISTEN. When the connection is lost it reconnects
// with backoff and delivers a ResyncKind change, since notifications sent in
// between are gone. handle runs on Listen's goroutine and must not block.
func (r *Registry) Listen(ctx context.Context, handle func(Change)) error {
	backoff := 100 * time.Millisecond
	for {
		err := r.listenOnce(ctx, handle)
		if ctx.Err() != nil {
			return nil
		}
		r.logger.Warn("registry notifications interrupted; reconnecting", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

func (r *Registry) listenOnce(ctx context.Context, handle func(Change)) error {
	pooled, err := r.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	// A LISTENing connection must not go back to the pool.
	conn := pooled.Hijack()
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+Channel); err != nil {
		return err
	}
	handle(Change{Kind: ResyncKind})
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		var c Change
		if err := json.Unmarshal([]byte(n.Payload), &c); err != nil {
			r.logger.Warn("ignoring malformed registry notification", "payload", n.Payload, "err", err)
			continue
		}
		handle(c)
	}
}
