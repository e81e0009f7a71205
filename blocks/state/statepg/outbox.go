package statepg

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/blockgate/blockgate/blocks/pubsub"
	"github.com/blockgate/blockgate/blocks/state"
	"github.com/blockgate/blockgate/blocks/state/stateoutbox"
	"github.com/blockgate/blockgate/internal/lograte"
	"github.com/blockgate/blockgate/tenants"
)

// outboxChannel is the NOTIFY channel a committed outbox insert signals, so
// that relays wake at once instead of at their next poll.
const outboxChannel = "blockgate_outbox"

const (
	// insertOutboxSQL writes a transaction's messages in one statement: $1
	// is the tenant, the rest are arrays with one element per message. A
	// message whose id is already waiting is the same message (the broker
	// would drop it as a duplicate too), hence DO NOTHING.
	insertOutboxSQL = `INSERT INTO outbox (tenant_id, id, pubsub, topic, data, content_type, partition_key, expires_at, metadata)
SELECT $1, m.id, m.pubsub, m.topic, m.data, m.content_type, m.partition_key, m.expires_at, m.metadata::jsonb
FROM unnest($2::text[], $3::text[], $4::text[], $5::bytea[], $6::text[], $7::text[], $8::timestamptz[], $9::text[])
    AS m(id, pubsub, topic, data, content_type, partition_key, expires_at, metadata)
ON CONFLICT (tenant_id, id) DO NOTHING`

	// notifyOutboxSQL is delivered only if the transaction commits, and
	// Postgres folds identical notifications of one transaction into one.
	notifyOutboxSQL = `SELECT pg_notify('` + outboxChannel + `', '')`

	// claimOutboxSQL takes up to $1 due messages of any tenant, skipping
	// those another relay holds. It runs under the platform scope.
	claimOutboxSQL = `SELECT tenant_id, id, pubsub, topic, data, content_type, partition_key, expires_at, metadata, attempts
FROM outbox
WHERE next_attempt_at <= now()
ORDER BY next_attempt_at, seq
LIMIT $1
FOR UPDATE SKIP LOCKED`

	deleteOutboxSQL = `DELETE FROM outbox o
USING unnest($1::text[], $2::text[]) AS d(tenant_id, id)
WHERE o.tenant_id = d.tenant_id AND o.id = d.id`

	retryOutboxSQL = `UPDATE outbox o
SET attempts = o.attempts + 1, next_attempt_at = now() + d.delay_us * interval '1 microsecond'
FROM unnest($1::text[], $2::text[], $3::bigint[]) AS d(tenant_id, id, delay_us)
WHERE o.tenant_id = d.tenant_id AND o.id = d.id`
)

// TransactWithOutbox applies ops atomically and inserts msgs into the outbox
// table in the same transaction, with a NOTIFY for the relays: the messages
// exist if and only if the operations commit. It costs no extra round trip
// over Transact.
func (s *Store) TransactWithOutbox(ctx context.Context, ops []state.Operation, msgs []pubsub.Message) error {
	return s.transact(ctx, ops, msgs)
}

// outboxRows returns the arguments of insertOutboxSQL for msgs.
func (s *Store) outboxRows(msgs []pubsub.Message) ([]any, error) {
	n := len(msgs)
	ids, pubsubs, topics, cts, parts := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	data := make([][]byte, n)
	expires := make([]*time.Time, n)
	metadata := make([]*string, n)
	for i, m := range msgs {
		if m.Tenant != tenants.ID(s.tenant) {
			return nil, fmt.Errorf("statepg: outbox message %d is for tenant %q, not the store's %q", i, m.Tenant, s.tenant)
		}
		for _, v := range []string{m.ID, m.Pubsub, m.Topic, m.ContentType, m.PartitionKey} {
			if !validText(v) {
				return nil, fmt.Errorf("statepg: outbox message %d: fields must be UTF-8 text without NUL characters", i)
			}
		}
		if m.ID == "" {
			return nil, fmt.Errorf("statepg: outbox message %d has no id", i)
		}
		ids[i], pubsubs[i], topics[i], cts[i], parts[i] = m.ID, m.Pubsub, m.Topic, m.ContentType, m.PartitionKey
		data[i] = m.Data
		if data[i] == nil {
			data[i] = []byte{}
		}
		if !m.Expires.IsZero() {
			expires[i] = &m.Expires
		}
		if len(m.Metadata) > 0 {
			b, err := json.Marshal(m.Metadata)
			if err != nil {
				return nil, fmt.Errorf("statepg: outbox message %d metadata: %w", i, err)
			}
			js := string(b)
			metadata[i] = &js
		}
	}
	return []any{s.tenant, ids, pubsubs, topics, data, cts, parts, expires, metadata}, nil
}

// RunRelay publishes the outbox messages of every tenant with publish until
// ctx is done, then returns nil. It wakes on the NOTIFY of each committed
// outbox transaction (holding one connection of the pool for LISTEN, and
// reconnecting with backoff when it is lost) and polls as a safety net.
// Any number of nodes may run it at once: a message is claimed by one relay
// at a time (FOR UPDATE SKIP LOCKED) for the length of its publish, and
// deleted once the broker has it. See package stateoutbox.
func (b *Backend) RunRelay(ctx context.Context, publish stateoutbox.Publish) error {
	if publish == nil {
		return errors.New("statepg: RunRelay needs a publish function")
	}
	ctx, cancel := context.WithCancel(ctx)
	wake := make(chan struct{}, 1)
	var wg sync.WaitGroup
	wg.Go(func() { b.listenOutbox(ctx, wake) })
	defer func() {
		cancel()
		wg.Wait()
	}()
	return stateoutbox.Run(ctx, outboxQueue{b}, wake, publish, b.relay)
}

// listenOutbox signals wake on every outbox notification, and whenever it
// (re)connects, since notifications sent meanwhile are lost.
func (b *Backend) listenOutbox(ctx context.Context, wake chan<- struct{}) {
	signal := func() {
		select {
		case wake <- struct{}{}:
		default:
		}
	}
	backoff := 100 * time.Millisecond
	lim := lograte.Limiter{Every: errLogEvery}
	for {
		err := b.listenOnce(ctx, signal)
		if ctx.Err() != nil {
			return
		}
		if sup, ok := lim.Allow(time.Now()); ok {
			b.logger.Warn("outbox notifications interrupted; polling until reconnected", "err", err, "in", backoff, "suppressedFailures", sup)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

func (b *Backend) listenOnce(ctx context.Context, signal func()) error {
	pooled, err := b.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	// A LISTENing connection must not go back to the pool.
	conn := pooled.Hijack()
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+outboxChannel); err != nil {
		return err
	}
	signal()
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return err
		}
		signal()
	}
}

// outboxQueue is the outbox table as a stateoutbox.Queue.
type outboxQueue struct{ b *Backend }

// Claim begins a platform-scoped transaction and locks up to max due rows
// in it; the claim holds the transaction until it is settled or released.
func (q outboxQueue) Claim(ctx context.Context, max int) (stateoutbox.Claim, error) {
	tx, err := q.b.pool.Begin(ctx)
	if err != nil {
		return nil, wrap("outbox claim", err)
	}
	c := &outboxClaim{tx: tx}
	batch := &pgx.Batch{QueuedQueries: make([]*pgx.QueuedQuery, 0, 2)}
	batch.Queue(setPlatform)
	batch.Queue(claimOutboxSQL, max)
	br := tx.SendBatch(ctx, batch)
	err = func() error {
		if _, err := br.Exec(); err != nil {
			return err
		}
		rows, err := br.Query()
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var m pubsub.Message
			var tenant string
			var expires *time.Time
			var md []byte
			var attempts int
			if err := rows.Scan(&tenant, &m.ID, &m.Pubsub, &m.Topic, &m.Data, &m.ContentType, &m.PartitionKey, &expires, &md, &attempts); err != nil {
				return err
			}
			m.Tenant = tenants.ID(tenant)
			if expires != nil {
				m.Expires = *expires
			}
			if len(md) > 0 {
				if err := json.Unmarshal(md, &m.Metadata); err != nil {
					return fmt.Errorf("outbox message %s metadata: %w", m.ID, err)
				}
			}
			c.msgs = append(c.msgs, m)
			c.attempts = append(c.attempts, attempts)
		}
		return rows.Err()
	}()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		c.Release()
		return nil, wrap("outbox claim", err)
	}
	if len(c.msgs) == 0 {
		c.Release() // nothing to hold: end the transaction now
	}
	return c, nil
}

// outboxClaim is a transaction holding the row locks of its messages.
type outboxClaim struct {
	tx       pgx.Tx
	msgs     []pubsub.Message
	attempts []int
	done     bool
}

func (c *outboxClaim) Messages() []pubsub.Message { return c.msgs }

// Settle deletes the published rows, reschedules the others, and commits.
func (c *outboxClaim) Settle(ctx context.Context, published []bool) error {
	if c.done {
		return errors.New("statepg: outbox claim already ended")
	}
	if len(published) != len(c.msgs) {
		return fmt.Errorf("statepg: settle of %d messages with %d results", len(c.msgs), len(published))
	}
	var delT, delID, retryT, retryID []string
	var retryDelay []int64
	for i, m := range c.msgs {
		if published[i] {
			delT, delID = append(delT, string(m.Tenant)), append(delID, m.ID)
			continue
		}
		retryT, retryID = append(retryT, string(m.Tenant)), append(retryID, m.ID)
		retryDelay = append(retryDelay, stateoutbox.RetryDelay(c.attempts[i]+1).Microseconds())
	}
	batch := &pgx.Batch{}
	if len(delID) > 0 {
		batch.Queue(deleteOutboxSQL, delT, delID)
	}
	if len(retryID) > 0 {
		batch.Queue(retryOutboxSQL, retryT, retryID, retryDelay)
	}
	if err := c.tx.SendBatch(ctx, batch).Close(); err != nil {
		c.Release()
		return wrap("outbox settle", err)
	}
	c.done = true
	if err := c.tx.Commit(ctx); err != nil {
		return wrap("outbox settle commit", err)
	}
	return nil
}

// Release rolls the claim's transaction back, unlocking its rows unchanged.
func (c *outboxClaim) Release() {
	if c.done {
		return
	}
	c.done = true
	// Rollback also returns the connection to the pool, so it runs even
	// when the caller's ctx is done.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = c.tx.Rollback(ctx)
}
