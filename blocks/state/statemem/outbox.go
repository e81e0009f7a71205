package statemem

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/blockgate/blockgate/blocks/pubsub"
	"github.com/blockgate/blockgate/blocks/state"
	"github.com/blockgate/blockgate/blocks/state/stateoutbox"
	"github.com/blockgate/blockgate/tenants"
)

// DefaultOutboxLimit is how many messages a store's outbox holds, waiting
// or being published, unless WithOutboxLimit says otherwise. A broker that
// is down for long fills it; then outbox transactions fail with
// state.ErrUnavailable (503) rather than hold unbounded memory.
const DefaultOutboxLimit = 10_000

// outbox is a store's queue of committed messages. Transactions add to it
// under the store's lock, after their writes are applied, so a message is
// queued if and only if its transaction applied; RunRelay drains it. Like
// the data, it lives as long as the Store: messages not yet published when
// the process stops are lost with the state that produced them.
type outbox struct {
	limit int
	// wake has room for one signal: a new message arrived.
	wake chan struct{}

	mu sync.Mutex
	// waiting holds the messages not claimed by a relay, oldest first.
	waiting []*queued
	// held has every message waiting or claimed, by tenant and id.
	held map[msgKey]bool
}

type msgKey struct {
	tenant tenants.ID
	id     string
}

type queued struct {
	msg      pubsub.Message
	attempts int
	due      time.Time
}

func (o *outbox) init() {
	o.limit = DefaultOutboxLimit
	o.wake = make(chan struct{}, 1)
	o.held = make(map[msgKey]bool)
}

// fresh returns the messages of msgs that are not held yet, each id once.
// o.mu must be held.
func (o *outbox) fresh(msgs []pubsub.Message) []pubsub.Message {
	out := make([]pubsub.Message, 0, len(msgs))
	seen := make(map[msgKey]bool, len(msgs))
	for _, m := range msgs {
		k := msgKey{m.Tenant, m.ID}
		if !o.held[k] && !seen[k] {
			seen[k] = true
			out = append(out, m)
		}
	}
	return out
}

// reserve checks that msgs fit. The caller holds the store's lock, which
// every enqueue needs too, so the room is still there at enqueue.
func (o *outbox) reserve(msgs []pubsub.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	for i, m := range msgs {
		if m.ID == "" {
			return fmt.Errorf("statemem: outbox message %d has no id", i)
		}
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if n := len(o.held) + len(o.fresh(msgs)); n > o.limit {
		return fmt.Errorf("statemem: the outbox would hold %d messages, over its limit of %d: %w", n, o.limit, state.ErrUnavailable)
	}
	return nil
}

// enqueue queues msgs, due at once, and wakes the relay.
func (o *outbox) enqueue(msgs []pubsub.Message, now time.Time) {
	if len(msgs) == 0 {
		return
	}
	o.mu.Lock()
	for _, m := range o.fresh(msgs) {
		o.held[msgKey{m.Tenant, m.ID}] = true
		o.waiting = append(o.waiting, &queued{msg: m, due: now})
	}
	o.mu.Unlock()
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// TransactWithOutbox applies ops atomically and, only if they applied,
// queues msgs for RunRelay, under the same lock: a transaction that fails
// a check queues nothing. A message whose id is already queued is queued
// once. When the outbox is full it fails with state.ErrUnavailable and
// changes nothing.
func (s *Store) TransactWithOutbox(ctx context.Context, ops []state.Operation, msgs []pubsub.Message) error {
	return s.transact(ctx, ops, msgs)
}

// Outbox returns the messages waiting in the outbox, oldest first, without
// those a relay is publishing at the moment: for tests and diagnostics.
func (s *Store) Outbox() []pubsub.Message {
	s.outbox.mu.Lock()
	defer s.outbox.mu.Unlock()
	out := make([]pubsub.Message, len(s.outbox.waiting))
	for i, q := range s.outbox.waiting {
		out[i] = q.msg
	}
	return out
}

// RunRelay publishes the store's outbox messages with publish until ctx is
// done, then returns nil; see package stateoutbox. One relay per store is
// enough; more would share the messages without publishing any twice.
func (s *Store) RunRelay(ctx context.Context, publish stateoutbox.Publish) error {
	return stateoutbox.Run(ctx, memQueue{s}, s.outbox.wake, publish, stateoutbox.Config{Logger: s.logger, Now: s.now})
}

// memQueue is a Store's outbox as a stateoutbox.Queue.
type memQueue struct{ s *Store }

func (q memQueue) Claim(ctx context.Context, max int) (stateoutbox.Claim, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	o := &q.s.outbox
	now := q.s.now()
	o.mu.Lock()
	defer o.mu.Unlock()
	c := &memClaim{s: q.s}
	rest := o.waiting[:0]
	for _, w := range o.waiting {
		if len(c.items) < max && !now.Before(w.due) {
			c.items = append(c.items, w)
			c.msgs = append(c.msgs, w.msg)
		} else {
			rest = append(rest, w)
		}
	}
	clear(o.waiting[len(rest):])
	o.waiting = rest
	return c, nil
}

// memClaim holds messages taken out of the waiting list.
type memClaim struct {
	s     *Store
	items []*queued
	msgs  []pubsub.Message
	done  bool
}

func (c *memClaim) Messages() []pubsub.Message { return c.msgs }

func (c *memClaim) Settle(_ context.Context, published []bool) error {
	if c.done {
		return errors.New("statemem: outbox claim already ended")
	}
	if len(published) != len(c.items) {
		return fmt.Errorf("statemem: settle of %d messages with %d results", len(c.items), len(published))
	}
	c.done = true
	now := c.s.now()
	o := &c.s.outbox
	o.mu.Lock()
	defer o.mu.Unlock()
	var back []*queued
	for i, it := range c.items {
		if published[i] {
			delete(o.held, msgKey{it.msg.Tenant, it.msg.ID})
			continue
		}
		it.attempts++
		it.due = now.Add(stateoutbox.RetryDelay(it.attempts))
		back = append(back, it)
	}
	o.waiting = append(back, o.waiting...)
	return nil
}

// Release puts the messages back at the head of the queue, unchanged.
func (c *memClaim) Release() {
	if c.done {
		return
	}
	c.done = true
	o := &c.s.outbox
	o.mu.Lock()
	defer o.mu.Unlock()
	o.waiting = append(append([]*queued(nil), c.items...), o.waiting...)
}
