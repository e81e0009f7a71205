package pubsubjs

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Riding out leader elections. When the server that leads a stream or a
// consumer dies, the others elect a new leader, which takes JetStream 4 to
// 9 s (RAFT election timeouts). Meanwhile a publish finds no server to
// answer it, and a request sent to the leader that died, or while there is
// none, is never answered, not even once a new leader is there. So each
// attempt is bounded by attemptTimeout and an unanswered one is sent again,
// until the request's time (ctx's deadline or Config.Timeout) is up.
const (
	// attemptTimeout bounds one attempt: JetStream answers in milliseconds
	// when the stream or consumer has a leader.
	attemptTimeout = 2 * time.Second
	// retryWait is the pause between attempts.
	retryWait = 100 * time.Millisecond
)

// untilAnswered calls op, with a ctx bounded by attemptTimeout, until it
// returns nil or an error other than an unanswered request, or until the
// request's time is up; it returns op's last error. op must be safe to
// repeat: idempotent, or deduplicated as publishes are by their Nats-Msg-Id.
func (b *Broker) untilAnswered(ctx context.Context, op func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, b.timeout(ctx))
	defer cancel()
	for {
		actx, acancel := context.WithTimeout(ctx, attemptTimeout)
		err := op(actx)
		acancel()
		if err == nil || ctx.Err() != nil || !unanswered(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(retryWait):
		}
	}
}

// unanswered reports a request that no server answered (in time), or
// whose answer the connection lost when it dropped (the client reconnects).
func unanswered(err error) bool {
	return errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrDisconnected)
}
