package pubsubjs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/blockgate/blockgate/blocks/pubsub"
	"github.com/blockgate/blockgate/tenants"
)

// Publish stores msg in its tenant's stream and waits for the PubAck,
// riding out an election of the stream's leader (untilAnswered): the
// message's Nats-Msg-Id has JetStream store it once however often it is
// sent. A stream that no server answers for may also be gone, deleted
// behind the Broker's back, so the first such answer also creates it again.
func (b *Broker) Publish(ctx context.Context, msg pubsub.Message) error {
	if err := b.ensureStream(ctx, msg.Tenant); err != nil {
		return err
	}
	m, err := b.natsMsg(msg)
	if err != nil {
		return err
	}
	recreated := false
	err = b.untilAnswered(ctx, func(ctx context.Context) error {
		_, err := b.js.PublishMsg(ctx, m)
		if errors.Is(err, jetstream.ErrNoStreamResponse) && !recreated {
			recreated = true
			b.recreateStream(ctx, msg.Tenant)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("publishing to %s: %w", m.Subject, b.classify(err))
	}
	return nil
}

// recreateStream creates the tenant's stream again in case it is gone. The
// stream most likely exists and has no leader, and the request goes
// unanswered while JetStream has no meta leader: a failure is no error.
func (b *Broker) recreateStream(ctx context.Context, tenant tenants.ID) {
	ts, err := b.tenantStream(tenant)
	if err != nil {
		return
	}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if err := b.applyStream(ctx, tenant); err != nil {
		b.logger.Debug("creating a stream no server answered for failed", "tenant", tenant, "err", err)
	}
}

// PublishBatch publishes msgs asynchronously on the connection, so they are
// stored in order, then waits for every PubAck. Entries that no server
// answered within attemptTimeout, as during an election of the stream's
// leader, are sent again one by one as Publish sends a message (their
// Nats-Msg-Id has JetStream store each once) for the rest of the request's
// time; only those may end up stored out of order.
func (b *Broker) PublishBatch(ctx context.Context, msgs []pubsub.Message) []error {
	errs := make([]error, len(msgs))
	futures := make([]jetstream.PubAckFuture, len(msgs))
	stall := jetstream.WithStallWait(b.timeout(ctx))
	streamErrs := map[tenants.ID]error{} // checked once per tenant
	for i, msg := range msgs {
		err, ok := streamErrs[msg.Tenant]
		if !ok {
			err = b.ensureStream(ctx, msg.Tenant)
			streamErrs[msg.Tenant] = err
		}
		if err != nil {
			errs[i] = err
			continue
		}
		m, err := b.natsMsg(msg)
		if err != nil {
			errs[i] = err
			continue
		}
		f, err := b.js.PublishMsgAsync(m, stall)
		if err != nil {
			errs[i] = fmt.Errorf("publishing to %s: %w", m.Subject, b.classify(err))
			continue
		}
		futures[i] = f
	}
	acks, cancel := context.WithTimeout(ctx, attemptTimeout)
	defer cancel()
	for i, f := range futures {
		if f != nil {
			errs[i] = b.awaitAck(acks, msgs[i], f)
		}
	}
	for i, err := range errs {
		if futures[i] != nil && err != nil && unanswered(err) && ctx.Err() == nil {
			errs[i] = b.Publish(ctx, msgs[i])
		}
	}
	return errs
}

// awaitAck waits for the PubAck of one asynchronous publish.
func (b *Broker) awaitAck(ctx context.Context, msg pubsub.Message, f jetstream.PubAckFuture) error {
	var err error
	select {
	case <-f.Ok():
		return nil
	case err = <-f.Err():
	case <-ctx.Done():
		err = ctx.Err()
	}
	if errors.Is(err, jetstream.ErrNoStreamResponse) {
		b.forgetStream(msg.Tenant)
	}
	return fmt.Errorf("publishing to %s: %w", f.Msg().Subject, b.classify(err))
}

// timeout is how long ctx leaves for a request: until its deadline, or
// Config.Timeout.
func (b *Broker) timeout(ctx context.Context) time.Duration {
	if dl, ok := ctx.Deadline(); ok {
		return max(time.Until(dl), time.Millisecond)
	}
	return b.cfg.Timeout
}

// natsMsg builds the NATS message for msg.
func (b *Broker) natsMsg(msg pubsub.Message) (*nats.Msg, error) {
	tok, err := topicToken(msg.Topic)
	if err != nil {
		return nil, fmt.Errorf("pubsubjs: %w", err)
	}
	scope := topicScope(msg.Pubsub, tok)
	return &nats.Msg{
		Subject: subject(msg.Tenant, scope, partition(msg.PartitionKey, b.cfg.Partitions)),
		Header:  encodeHeaders(msg, scope, time.Now()),
		Data:    msg.Data,
	}, nil
}
