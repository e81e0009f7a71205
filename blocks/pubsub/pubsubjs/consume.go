package pubsubjs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/blockgate/blockgate/blocks/pubsub"
)

// Spec defaults, as pubsub.Spec documents them.
const (
	defaultMaxDeliver  = 5
	defaultAckWait     = 30 * time.Second
	defaultMaxInFlight = 100
)

var defaultBackoff = []time.Duration{time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second}

// Pull requests wait up to pullExpiry for messages, and the server sends an
// idle heartbeat every pullHeartbeat meanwhile. Two missed heartbeats make
// the client pull again: after the node leading a consumer dies, delivery
// resumes from its new leader within about 2×pullHeartbeat rather than the
// 30 s of the client's default (a heartbeat of half the expiry).
const (
	pullExpiry    = 30 * time.Second
	pullHeartbeat = 3 * time.Second
)

// unkeyedMaxAckPending bounds the unsettled unkeyed messages of one group
// across all its Consume calls; each call holds at most about 2×MaxInFlight
// (in its handlers and its pull buffer).
const unkeyedMaxAckPending = 10_000

// maxPullBatch bounds the messages a pull loop buffers ahead of its handlers.
const maxPullBatch = 1000

// withDefaults fills the zero fields of spec.
func withDefaults(spec pubsub.Spec) pubsub.Spec {
	if spec.MaxDeliver <= 0 {
		spec.MaxDeliver = defaultMaxDeliver
	}
	if len(spec.Backoff) == 0 {
		spec.Backoff = defaultBackoff
	}
	if spec.AckWait <= 0 {
		spec.AckWait = defaultAckWait
	}
	if spec.MaxInFlight <= 0 {
		spec.MaxInFlight = defaultMaxInFlight
	}
	return spec
}

// part is one of a subscription's consumers: the unkeyed messages or one
// partition of the keyed ones.
type part struct {
	token         string // <part> of the subjects it filters
	suffix        string // of its consumer name
	maxAckPending int
	pullBatch     int
}

// parts lists the consumers of a subscription.
func (b *Broker) parts(spec pubsub.Spec) []part {
	ps := make([]part, 0, 1+b.cfg.Partitions)
	ps = append(ps, part{token: unkeyedPart, suffix: "u", maxAckPending: unkeyedMaxAckPending, pullBatch: min(spec.MaxInFlight, maxPullBatch)})
	for n := range b.cfg.Partitions {
		// One unsettled message per partition: per-key order.
		ps = append(ps, part{token: partToken(n), suffix: partToken(n), maxAckPending: 1, pullBatch: 1})
	}
	return ps
}

// Consume delivers spec's messages to handle until ctx is done or a
// consumer fails; see pubsub.Broker and the package doc.
func (b *Broker) Consume(ctx context.Context, spec pubsub.Spec, handle func(pubsub.Delivery)) error {
	if handle == nil {
		return errors.New("pubsubjs: nil handler")
	}
	spec = withDefaults(spec)
	if err := b.ensureStream(ctx, spec.Tenant); err != nil {
		return err
	}
	tok, err := topicToken(spec.Topic)
	if err != nil {
		return fmt.Errorf("pubsubjs: %w", err)
	}
	scope := topicScope(spec.Pubsub, tok)
	parts := b.parts(spec)
	consumers, err := b.createConsumers(ctx, spec, scope, parts)
	if err != nil {
		return err
	}
	s := &subscription{
		spec:    spec,
		scope:   scope,
		handle:  handle,
		timeout: b.cfg.Timeout,
		logger:  b.logger.With("tenant", spec.Tenant, "pubsub", spec.Pubsub, "topic", spec.Topic, "group", spec.Group),
		warn:    throttle{interval: warnInterval},
		slots:   make(chan struct{}, spec.MaxInFlight),
	}
	return s.run(ctx, parts, consumers)
}

// DeleteSubscription deletes the durable consumers of spec's subscription
// (Tenant, Pubsub, Topic and Group), with the position and unsettled
// messages they keep; for a subscription that was removed for good. A
// Consume running on it fails. Deleting one that does not exist is no error.
func (b *Broker) DeleteSubscription(ctx context.Context, spec pubsub.Spec) error {
	if err := b.ensureStream(ctx, spec.Tenant); err != nil {
		return err
	}
	for _, p := range b.parts(withDefaults(spec)) {
		name := consumerName(spec.Pubsub, spec.Topic, spec.Group, p.suffix)
		err := b.js.DeleteConsumer(ctx, streamName(spec.Tenant), name)
		if err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return fmt.Errorf("deleting consumer %s: %w", name, b.classify(err))
		}
	}
	return nil
}

// createConsumers creates or updates the consumers of a subscription. A
// stream deleted since this Broker created it is created again.
func (b *Broker) createConsumers(ctx context.Context, spec pubsub.Spec, scope string, parts []part) ([]jetstream.Consumer, error) {
	consumers, err := b.tryCreateConsumers(ctx, spec, scope, parts)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		b.forgetStream(spec.Tenant)
		if err = b.ensureStream(ctx, spec.Tenant); err == nil {
			consumers, err = b.tryCreateConsumers(ctx, spec, scope, parts)
		}
	}
	return consumers, err
}

func (b *Broker) tryCreateConsumers(ctx context.Context, spec pubsub.Spec, scope string, parts []part) ([]jetstream.Consumer, error) {
	consumers := make([]jetstream.Consumer, len(parts))
	for i, p := range parts {
		var err error
		if consumers[i], err = b.createConsumer(ctx, spec, scope, p); err != nil {
			return nil, err
		}
	}
	return consumers, nil
}

// createConsumer creates or updates the durable consumer of one part.
func (b *Broker) createConsumer(ctx context.Context, spec pubsub.Spec, scope string, p part) (jetstream.Consumer, error) {
	filter := subject(spec.Tenant, scope, p.token)
	cfg := jetstream.ConsumerConfig{
		Durable:       consumerName(spec.Pubsub, spec.Topic, spec.Group, p.suffix),
		Description:   "blockgate subscription of group " + spec.Group + " to " + filter,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       spec.AckWait,
		MaxDeliver:    spec.MaxDeliver,
		FilterSubject: filter,
		ReplayPolicy:  jetstream.ReplayInstantPolicy,
		MaxAckPending: p.maxAckPending,
	}
	// Creating is idempotent: it may be sent again while the consumer has
	// no leader.
	var c jetstream.Consumer
	err := b.untilAnswered(ctx, func(ctx context.Context) (err error) {
		c, err = b.js.CreateOrUpdateConsumer(ctx, streamName(spec.Tenant), cfg)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("creating consumer %s: %w", cfg.Durable, b.classify(err))
	}
	return c, nil
}

// subscription is one Consume call.
type subscription struct {
	spec    pubsub.Spec
	scope   string
	handle  func(pubsub.Delivery)
	timeout time.Duration
	logger  *slog.Logger
	warn    throttle // for warnings that may come with every message
	// slots holds a token per unsettled delivery: at most MaxInFlight.
	slots chan struct{}

	ctx    context.Context
	cancel context.CancelCauseFunc

	mu       sync.Mutex
	stopped  bool           // no more handlers may start
	handlers sync.WaitGroup // running handle calls
}

// run pulls from every consumer until ctx is done or one fails for good.
func (s *subscription) run(parent context.Context, parts []part, consumers []jetstream.Consumer) error {
	s.ctx, s.cancel = context.WithCancelCause(parent)
	defer s.cancel(nil)
	ccs := make([]jetstream.ConsumeContext, 0, len(consumers))
	for i, c := range consumers {
		cc, err := c.Consume(s.onMsg,
			jetstream.PullMaxMessages(parts[i].pullBatch),
			jetstream.PullExpiry(pullExpiry), jetstream.PullHeartbeat(pullHeartbeat),
			jetstream.ConsumeErrHandler(s.onErr))
		if err != nil {
			s.cancel(fmt.Errorf("consuming %s: %w", c.CachedInfo().Name, classify(err)))
			break
		}
		ccs = append(ccs, cc)
	}
	s.logger.Debug("consuming", "consumers", len(ccs))
	<-s.ctx.Done()
	s.stop(ccs)
	if err := parent.Err(); err != nil {
		return err
	}
	return context.Cause(s.ctx)
}

// stop ends the pull loops and waits for the running handle calls. Drain,
// rather than Stop, passes the messages already pulled to onMsg, which hands
// them back at once (NAK) instead of leaving them to AckWait.
func (s *subscription) stop(ccs []jetstream.ConsumeContext) {
	for _, cc := range ccs {
		cc.Drain()
	}
	s.mu.Lock()
	s.stopped = true
	s.mu.Unlock()
	s.handlers.Wait()
	// Let the pull loops wind down, but never hang on a dead connection.
	timer := time.NewTimer(s.timeout)
	defer timer.Stop()
	for _, cc := range ccs {
		select {
		case <-cc.Closed():
		case <-timer.C:
			return
		}
	}
}

// onErr handles a pull loop's error: terminal ones end Consume.
func (s *subscription) onErr(_ jetstream.ConsumeContext, err error) {
	switch {
	case errors.Is(err, jetstream.ErrConsumerDeleted),
		errors.Is(err, jetstream.ErrConsumerNotFound),
		errors.Is(err, jetstream.ErrBadRequest),
		errors.Is(err, jetstream.ErrConnectionClosed),
		errors.Is(err, nats.ErrConnectionClosed):
		s.cancel(fmt.Errorf("consuming %s: %w", s.scope, classify(err)))
	case s.ctx.Err() == nil && s.warn.allow(time.Now()):
		s.logger.Warn("pub/sub pull error", "err", err)
	}
}

// onMsg runs on a pull loop's goroutine for each message: it drops expired
// messages, waits for a free slot and starts handle.
func (s *subscription) onMsg(jm jetstream.Msg) {
	if s.ctx.Err() != nil {
		_ = jm.Nak() // stopping: hand it to another consumer now rather than after AckWait
		return
	}
	d, err := s.newDelivery(jm)
	if err != nil {
		if s.warn.allow(time.Now()) {
			s.logger.Error("undecodable JetStream message; redelivering", "subject", jm.Subject(), "err", err)
		}
		_ = jm.Nak()
		return
	}
	if !d.msg.Expires.IsZero() && !time.Now().Before(d.msg.Expires) {
		s.logger.Debug("dropping expired message", "id", d.msg.ID, "expires", d.msg.Expires)
		_ = jm.TermWithReason("expired")
		return
	}
	select {
	case s.slots <- struct{}{}:
	case <-s.ctx.Done():
		_ = jm.Nak()
		return
	}
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		<-s.slots
		_ = jm.Nak()
		return
	}
	s.handlers.Add(1)
	s.mu.Unlock()
	d.hold(func() { <-s.slots })
	go s.dispatch(d)
}

// dispatch calls handle, recovering a panic into a retry.
func (s *subscription) dispatch(d *delivery) {
	defer s.handlers.Done()
	defer func() {
		if r := recover(); r != nil {
			s.logger.Error("pub/sub handler panicked; retrying the message", "id", d.msg.ID, "panic", r)
			_ = d.Retry(0)
		}
	}()
	s.handle(d)
}

// newDelivery decodes a JetStream message.
func (s *subscription) newDelivery(jm jetstream.Msg) (*delivery, error) {
	md, err := jm.Metadata()
	if err != nil {
		return nil, err
	}
	msg := pubsub.Message{
		Tenant: s.spec.Tenant,
		Pubsub: s.spec.Pubsub,
		Topic:  s.spec.Topic,
		Data:   jm.Data(),
	}
	if err := decodeHeaders(jm.Headers(), s.scope, &msg); err != nil && s.warn.allow(time.Now()) {
		// Deliver what could be decoded: the data is intact.
		s.logger.Warn("bad pub/sub message headers", "subject", jm.Subject(), "err", err)
	}
	return &delivery{
		jm:      jm,
		msg:     msg,
		attempt: int(md.NumDelivered),
		spec:    &s.spec,
	}, nil
}

// delivery is a pubsub.Delivery of a JetStream message. Settling it frees
// its slot; so does its AckWait passing (JetStream redelivers the message
// then) unless InProgress extended it.
type delivery struct {
	jm      jetstream.Msg
	msg     pubsub.Message
	attempt int
	spec    *pubsub.Spec

	mu      sync.Mutex
	settled bool
	release func() // frees the slot; idempotent
	guard   *time.Timer
}

// hold ties the delivery to a slot, freed by release.
func (d *delivery) hold(release func()) {
	d.release = sync.OnceFunc(release)
	d.guard = time.AfterFunc(d.spec.AckWait, d.release)
}

func (d *delivery) Message() pubsub.Message { return d.msg }
func (d *delivery) Attempt() int            { return d.attempt }
func (d *delivery) Final() bool             { return d.attempt >= d.spec.MaxDeliver }

// Ack settles the message and waits until the server has the ack.
func (d *delivery) Ack() error {
	return d.settle("acknowledging", func() error {
		// Not the Consume ctx: a handler may settle after Consume ended,
		// and the ack must still reach the server. Without a deadline the
		// JetStream context bounds the wait with Config.Timeout.
		return d.jm.DoubleAck(context.Background())
	})
}

// Retry asks for redelivery after delay, or after the Spec's backoff for
// this attempt when delay is 0.
func (d *delivery) Retry(delay time.Duration) error {
	if delay <= 0 {
		delay = backoff(d.spec.Backoff, d.attempt)
	}
	return d.settle("retrying", func() error {
		if delay <= 0 {
			return d.jm.Nak()
		}
		return d.jm.NakWithDelay(delay)
	})
}

// Drop settles the message for good.
func (d *delivery) Drop() error {
	return d.settle("dropping", d.jm.Term)
}

// InProgress resets the message's AckWait.
func (d *delivery) InProgress() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.settled {
		return errSettled
	}
	if err := d.jm.InProgress(); err != nil {
		return fmt.Errorf("extending message %s: %w", d.msg.ID, classify(err))
	}
	d.guard.Reset(d.spec.AckWait)
	return nil
}

// settle runs the first settlement and frees the slot after it.
func (d *delivery) settle(what string, send func() error) error {
	d.mu.Lock()
	if d.settled {
		d.mu.Unlock()
		return errSettled
	}
	d.settled = true
	d.mu.Unlock()
	defer d.release()
	d.guard.Stop()
	if err := send(); err != nil {
		return fmt.Errorf("%s message %s: %w", what, d.msg.ID, classify(err))
	}
	return nil
}

// backoff is the delay before the redelivery that follows attempt; the last
// value repeats.
func backoff(delays []time.Duration, attempt int) time.Duration {
	i := min(max(attempt-1, 0), len(delays)-1)
	return delays[i]
}
