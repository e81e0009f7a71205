package stateoutbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/blockgate/blockgate/blocks/pubsub"
	"github.com/blockgate/blockgate/internal/lograte"
)

// Publish stores msgs in the broker, pipelined and in order, and returns
// one error per message (nil for each the broker acknowledged), as
// pubsub.Broker.PublishBatch does. Publishing a message whose ID the broker
// has seen within its duplicate window must succeed without storing it
// twice.
type Publish func(ctx context.Context, msgs []pubsub.Message) []error

// Queue is an outbox that a relay drains. Its methods may be called
// concurrently.
type Queue interface {
	// Claim takes up to max messages that are due, for this caller alone
	// until the returned Claim ends; messages claimed elsewhere are skipped,
	// not waited for. With nothing due it returns a Claim without messages.
	Claim(ctx context.Context, max int) (Claim, error)
}

// Claim is a batch of messages held by one relay. It is used by one
// goroutine.
type Claim interface {
	// Messages returns the claimed messages, oldest first. The slice
	// belongs to the Claim.
	Messages() []pubsub.Message
	// Settle ends the claim: messages whose published[i] is true are
	// removed from the queue; the others are kept and become due again
	// after RetryDelay of their attempts so far. On error nothing changes:
	// the messages stay as they were before the claim.
	Settle(ctx context.Context, published []bool) error
	// Release ends the claim without changing anything. After Settle it
	// does nothing, so it can always be deferred.
	Release()
}

// Config tunes Run. The zero value gives the defaults.
type Config struct {
	// Batch is the most messages one claim takes. Default 100.
	Batch int
	// Poll is how often Run looks for due messages without being woken.
	// Default 2s.
	Poll time.Duration
	// PublishTimeout bounds the publishing of one claimed batch; what is
	// not published by then is retried later. Default 30s.
	PublishTimeout time.Duration
	// Logger receives failures (at most one line a minute) and panics;
	// nil discards them.
	Logger *slog.Logger
	// Now is the clock that decides whether a message has expired; nil
	// means time.Now.
	Now func() time.Time
}

const (
	defaultBatch          = 100
	defaultPoll           = 2 * time.Second
	defaultPublishTimeout = 30 * time.Second

	// errLogEvery is the least time between two logged failures of a kind.
	errLogEvery = time.Minute
	// minBackoff and maxBackoff bound the wait after a failing claim or
	// settle (a database that is down).
	minBackoff = 100 * time.Millisecond
	maxBackoff = 5 * time.Second
	// maxRetryDelay caps RetryDelay.
	maxRetryDelay = time.Minute
)

func (c Config) withDefaults() Config {
	if c.Batch <= 0 {
		c.Batch = defaultBatch
	}
	if c.Poll <= 0 {
		c.Poll = defaultPoll
	}
	if c.PublishTimeout <= 0 {
		c.PublishTimeout = defaultPublishTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// RetryDelay is how long a message that failed attempts times waits before
// its next attempt: 1s, 2s, 4s, … up to a minute. It never gives up: the
// outbox holds only committed messages, and they are not lost.
func RetryDelay(attempts int) time.Duration {
	if attempts < 1 {
		attempts = 1
	}
	if attempts > 7 {
		return maxRetryDelay
	}
	return min(time.Second<<(attempts-1), maxRetryDelay)
}

// Run relays q to publish until ctx is done, then returns nil. It claims
// and publishes batches back to back while there is a backlog; otherwise it
// waits for a signal on wake (nil: none) or for Config.Poll to pass.
func Run(ctx context.Context, q Queue, wake <-chan struct{}, publish Publish, cfg Config) error {
	if q == nil || publish == nil {
		return errors.New("stateoutbox: Run needs a queue and a publish function")
	}
	r := &relay{q: q, publish: publish, cfg: cfg.withDefaults(),
		queueLog: lograte.Limiter{Every: errLogEvery}, publishLog: lograte.Limiter{Every: errLogEvery}}
	poll := time.NewTimer(r.cfg.Poll)
	defer poll.Stop()
	backoff := time.Duration(0)
	for {
		res := r.round(ctx)
		if ctx.Err() != nil {
			return nil
		}
		switch {
		case res.err != nil:
			// The queue itself failed: back off without listening to wake,
			// which could otherwise spin against a database that is down.
			backoff = min(max(backoff*2, minBackoff), maxBackoff)
			if sup, ok := r.queueLog.Allow(time.Now()); ok {
				r.cfg.Logger.Error("outbox relay cannot reach its queue; retrying", "err", res.err, "in", backoff, "suppressedFailures", sup)
			}
			if !sleep(ctx, backoff) {
				return nil
			}
			continue
		case res.full:
			backoff = 0
			continue // a backlog: claim the next batch at once
		}
		backoff = 0
		poll.Reset(r.cfg.Poll)
		select {
		case <-ctx.Done():
			return nil
		case <-wake:
		case <-poll.C:
		}
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

type relay struct {
	q       Queue
	publish Publish
	cfg     Config
	// queueLog and publishLog rate-limit the two kinds of failure line;
	// only Run's goroutine uses them.
	queueLog, publishLog lograte.Limiter
}

type roundResult struct {
	// full: the claim was a whole batch and all of it was published, so
	// more may be due.
	full bool
	// err: the queue failed (claim or settle), or the round panicked.
	err error
}

// round claims, publishes and settles one batch.
func (r *relay) round(ctx context.Context) (res roundResult) {
	defer func() {
		if p := recover(); p != nil {
			r.cfg.Logger.Error("outbox relay panicked", "panic", p, "stack", string(debug.Stack()))
			res = roundResult{err: fmt.Errorf("stateoutbox: panic: %v", p)}
		}
	}()
	claim, err := r.q.Claim(ctx, r.cfg.Batch)
	if err != nil {
		return roundResult{err: fmt.Errorf("claiming outbox messages: %w", err)}
	}
	defer claim.Release()
	msgs := claim.Messages()
	if len(msgs) == 0 {
		return roundResult{}
	}
	published, errs := r.publishAll(ctx, msgs)
	// Settle even when ctx is done: what was published should not be
	// published again.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.PublishTimeout)
	defer cancel()
	if err := claim.Settle(sctx, published); err != nil {
		return roundResult{err: fmt.Errorf("settling outbox messages: %w", err)}
	}
	failed, first := 0, -1
	for i, ok := range published {
		if !ok {
			failed++
			if first < 0 {
				first = i
			}
		}
	}
	if failed > 0 && ctx.Err() == nil {
		if sup, ok := r.publishLog.Allow(time.Now()); ok {
			m := msgs[first]
			r.cfg.Logger.Warn("outbox relay could not publish; will retry", "failed", failed, "of", len(msgs),
				"tenant", m.Tenant, "pubsub", m.Pubsub, "topic", m.Topic, "id", m.ID, "err", errs[first],
				"suppressedFailures", sup)
		}
	}
	return roundResult{full: failed == 0 && len(msgs) >= r.cfg.Batch}
}

// publishAll publishes msgs in one batch and reports which were published
// (or dropped as expired), with the error of each that was not.
func (r *relay) publishAll(ctx context.Context, msgs []pubsub.Message) (published []bool, errs []error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.PublishTimeout)
	defer cancel()
	published = make([]bool, len(msgs))
	errs = make([]error, len(msgs))
	now := r.cfg.Now()
	live := make([]pubsub.Message, 0, len(msgs))
	index := make([]int, 0, len(msgs)) // live[j] is msgs[index[j]]
	for i, m := range msgs {
		if !m.Expires.IsZero() && !now.Before(m.Expires) {
			published[i] = true // expired: nobody may receive it any more
			continue
		}
		live = append(live, m)
		index = append(index, i)
	}
	if len(live) == 0 {
		return published, errs
	}
	results := r.publishBatch(ctx, live)
	for j, i := range index {
		switch {
		case j >= len(results):
			errs[i] = errors.New("the broker returned no result")
		case results[j] != nil:
			errs[i] = results[j]
		default:
			published[i] = true
		}
	}
	return published, errs
}

// publishBatch calls publish, turning a panic into an error for every
// message so that one bad batch cannot take the process down.
func (r *relay) publishBatch(ctx context.Context, msgs []pubsub.Message) (errs []error) {
	defer func() {
		if p := recover(); p != nil {
			r.cfg.Logger.Error("outbox publish panicked", "panic", p, "stack", string(debug.Stack()))
			errs = make([]error, len(msgs))
			for i := range errs {
				errs[i] = fmt.Errorf("publish panicked: %v", p)
			}
		}
	}()
	return r.publish(ctx, msgs)
}
