package statepg

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/blockgate/blockgate/blocks/pubsub"
	"github.com/blockgate/blockgate/blocks/state"
	"github.com/blockgate/blockgate/blocks/state/stateoutbox"
	"github.com/blockgate/blockgate/tenants"
)

var (
	_ state.Store            = (*Store)(nil)
	_ state.BulkGetter       = (*Store)(nil)
	_ state.Transactor       = (*Store)(nil)
	_ state.OutboxTransactor = (*Store)(nil)
	_ state.Querier          = (*Store)(nil)
)

// defaultSweepBatch bounds the rows one sweep statement deletes, so that no
// sweep holds many row locks or writes a huge transaction.
const defaultSweepBatch = 1000

// Backend is the state.postgresql implementation of one gateway: the pool
// that all tenants' stores share, and the TTL sweeper. Its methods may be
// called concurrently.
type Backend struct {
	pool   *pgxpool.Pool
	logger *slog.Logger

	sweepBatch int
	// sweep is what Run calls; tests replace it.
	sweep func(context.Context) (int64, error)
	// relay configures RunRelay; tests shorten its intervals.
	relay stateoutbox.Config
}

// NewBackend returns a Backend over pool, which must connect as a role that
// is subject to row-level security and whose database has the state
// migration applied. logger may be nil.
func NewBackend(pool *pgxpool.Pool, logger *slog.Logger) *Backend {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	b := &Backend{
		pool:       pool,
		logger:     logger.With("block", "state", "component", "state.postgresql"),
		sweepBatch: defaultSweepBatch,
	}
	b.relay.Logger = b.logger
	b.sweep = b.Sweep
	return b
}

// Open returns the store of tenant's component named store. It does no I/O
// and allocates one small value, so callers need not cache it.
func (b *Backend) Open(tenant tenants.ID, store string) *Store {
	return &Store{pool: b.pool, tenant: string(tenant), store: store}
}

// Store is one tenant's state.postgresql component. All methods may be
// called concurrently; everything they return belongs to the caller.
type Store struct {
	pool   *pgxpool.Pool
	tenant string
	store  string
}

// SQL. In a Store's statements $1 is the tenant and $2 the store: every
// statement names both, although row-level security would hide other
// tenants' rows anyway (the first wall; the policy is the second).
const (
	setTenantSQL = `SELECT set_config('blockgate.tenant', $1, true)`
	setPlatform  = `SELECT set_config('blockgate.scope', 'platform', true)`

	live = `(expires_at IS NULL OR expires_at > now())`
	// expiry turns a TTL in microseconds, or NULL for none, into expires_at.
	expiry = `now() + $7::bigint * interval '1 microsecond'`

	getSQL = `SELECT value, etag, expires_at FROM state
WHERE tenant_id = $1 AND store = $2 AND key = $3 AND ` + live

	bulkGetSQL = `SELECT key, value, etag, expires_at FROM state
WHERE tenant_id = $1 AND store = $2 AND key = ANY($3::text[]) AND ` + live

	upsertSQL = `INSERT INTO state AS s (tenant_id, store, key, value, is_json, etag, expires_at)
VALUES ($1, $2, $3, $4, $5, $6, ` + expiry + `)
ON CONFLICT (tenant_id, store, key) DO UPDATE
SET value = excluded.value, is_json = excluded.is_json, etag = excluded.etag,
    expires_at = excluded.expires_at, updated_at = now()`

	// firstWriteSQL writes only where no live row exists: an expired row
	// counts as absent.
	firstWriteSQL = upsertSQL + `
WHERE s.expires_at <= now()`

	updateIfSQL = `UPDATE state
SET value = $4, is_json = $5, etag = $6, expires_at = ` + expiry + `, updated_at = now()
WHERE tenant_id = $1 AND store = $2 AND key = $3 AND etag = $8 AND ` + live

	deleteSQL = `DELETE FROM state WHERE tenant_id = $1 AND store = $2 AND key = $3`

	deleteIfSQL = `DELETE FROM state
WHERE tenant_id = $1 AND store = $2 AND key = $3 AND etag = $4 AND ` + live

	// sweepSQL deletes up to $1 expired rows of any tenant. SKIP LOCKED lets
	// several nodes sweep at once without waiting on each other or on writers.
	sweepSQL = `WITH doomed AS (
    SELECT tenant_id, store, key FROM state
    WHERE expires_at <= now()
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
DELETE FROM state s USING doomed d
WHERE s.tenant_id = d.tenant_id AND s.store = d.store AND s.key = d.key AND s.expires_at <= now()`
)

// validText reports whether s can be stored in a Postgres text column: valid
// UTF-8 without NUL. Keys that are not can exist nowhere in the table.
func validText(s string) bool {
	return utf8.ValidString(s) && strings.IndexByte(s, 0) < 0
}

// errInvalidKey is returned for a key the table cannot hold.
var errInvalidKey = errors.New("statepg: a key must be UTF-8 text without NUL characters")

// batch queues set_config for the store's tenant, then the statement.
func (s *Store) batch(sql string, args ...any) *pgx.Batch {
	b := &pgx.Batch{QueuedQueries: make([]*pgx.QueuedQuery, 0, 2)}
	b.Queue(setTenantSQL, s.tenant)
	b.Queue(sql, args...)
	return b
}

// exec runs one statement in the tenant's scope in one round trip.
func (s *Store) exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	br := s.pool.SendBatch(ctx, s.batch(sql, args...))
	_, err := br.Exec()
	var tag pgconn.CommandTag
	if err == nil {
		tag, err = br.Exec()
	}
	return tag, errors.Join(err, br.Close())
}

// query runs one query in the tenant's scope in one round trip, calling row
// for each row.
func (s *Store) query(ctx context.Context, b *pgx.Batch, row func(pgx.Rows) error) error {
	br := s.pool.SendBatch(ctx, b)
	_, err := br.Exec()
	if err == nil {
		var rows pgx.Rows
		if rows, err = br.Query(); err == nil {
			for rows.Next() {
				if err = row(rows); err != nil {
					break
				}
			}
			rows.Close()
			if err == nil {
				err = rows.Err()
			}
		}
	}
	return errors.Join(err, br.Close())
}

// Get returns the live item at key.
func (s *Store) Get(ctx context.Context, key string) (state.Item, bool, error) {
	if !validText(key) {
		return state.Item{}, false, nil
	}
	it := state.Item{Key: key}
	var expires *time.Time
	found := false
	err := s.query(ctx, s.batch(getSQL, s.tenant, s.store, key), func(r pgx.Rows) error {
		found = true
		return r.Scan(&it.Value, &it.ETag, &expires)
	})
	if err != nil {
		return state.Item{}, false, wrap("get", err)
	}
	if !found {
		return state.Item{}, false, nil
	}
	fill(&it, expires)
	return it, true, nil
}

func fill(it *state.Item, expires *time.Time) {
	if it.Value == nil {
		it.Value = []byte{}
	}
	if expires != nil {
		it.ExpiresAt = *expires
	}
}

// BulkGet returns the live items among keys, each once, in no particular
// order.
func (s *Store) BulkGet(ctx context.Context, keys []string) ([]state.Item, error) {
	valid := make([]string, 0, len(keys))
	for _, k := range keys {
		if validText(k) {
			valid = append(valid, k)
		}
	}
	items := make([]state.Item, 0, len(valid))
	if len(valid) == 0 {
		return items, nil
	}
	err := s.query(ctx, s.batch(bulkGetSQL, s.tenant, s.store, valid), func(r pgx.Rows) error {
		var it state.Item
		var expires *time.Time
		if err := r.Scan(&it.Key, &it.Value, &it.ETag, &expires); err != nil {
			return err
		}
		fill(&it, expires)
		items = append(items, it)
		return nil
	})
	if err != nil {
		return nil, wrap("bulk get", err)
	}
	return items, nil
}

// newETag returns 128 random bits as text: never reused in practice.
func newETag() string { return rand.Text() }

// setStatement returns the statement that carries out r, and whether it is
// conditional: affecting no row then means a failed ETag check.
func (s *Store) setStatement(r *state.SetRequest) (sql string, args []any, conditional bool, err error) {
	if !validText(r.Key) {
		return "", nil, false, errInvalidKey
	}
	value := r.Value
	if value == nil {
		value = []byte{}
	}
	var ttl *int64
	if r.TTL > 0 {
		us := r.TTL.Microseconds()
		ttl = &us
	}
	args = []any{s.tenant, s.store, r.Key, value, state.Queryable(value), newETag(), ttl}
	switch {
	case r.ETag != nil:
		return updateIfSQL, append(args, *r.ETag), true, nil
	case r.FirstWrite:
		return firstWriteSQL, args, true, nil
	}
	return upsertSQL, args, false, nil
}

// deleteStatement is setStatement for deletes. ok is false for a delete that
// cannot affect any row (a key the table cannot hold); conditional deletes
// of such keys fail their check.
func (s *Store) deleteStatement(r *state.DeleteRequest) (sql string, args []any, conditional, ok bool) {
	if !validText(r.Key) {
		return "", nil, r.ETag != nil, false
	}
	if r.ETag != nil {
		return deleteIfSQL, []any{s.tenant, s.store, r.Key, *r.ETag}, true, true
	}
	// First-write without an ETag is an ordinary delete, as in Dapr.
	return deleteSQL, []any{s.tenant, s.store, r.Key}, false, true
}

// Set writes one item in one round trip.
func (s *Store) Set(ctx context.Context, req state.SetRequest) error {
	sql, args, conditional, err := s.setStatement(&req)
	if err != nil {
		return err
	}
	tag, err := s.exec(ctx, sql, args...)
	if err != nil {
		return wrap("set", err)
	}
	if conditional && tag.RowsAffected() == 0 {
		return state.ErrETagMismatch
	}
	return nil
}

// Delete removes one item in one round trip.
func (s *Store) Delete(ctx context.Context, req state.DeleteRequest) error {
	sql, args, conditional, ok := s.deleteStatement(&req)
	if !ok {
		if conditional {
			return state.ErrETagMismatch
		}
		return nil
	}
	tag, err := s.exec(ctx, sql, args...)
	if err != nil {
		return wrap("delete", err)
	}
	if conditional && tag.RowsAffected() == 0 {
		return state.ErrETagMismatch
	}
	return nil
}

// Transact applies ops atomically. Without ETag or first-write checks it is
// one round trip (an implicit transaction); with them, an explicit
// transaction that is committed, or rolled back at the first failed check:
// two round trips.
func (s *Store) Transact(ctx context.Context, ops []state.Operation) error {
	return s.transact(ctx, ops, nil)
}

// transact is Transact that also inserts msgs into the outbox, in the same
// batch and so in the same transaction (see outbox.go).
func (s *Store) transact(ctx context.Context, ops []state.Operation, msgs []pubsub.Message) error {
	type statement struct {
		sql   string
		args  []any
		check bool
	}
	stmts := make([]statement, len(ops))
	anyCheck := false
	for i, op := range ops {
		st := &stmts[i]
		switch {
		case (op.Set == nil) == (op.Delete == nil):
			return fmt.Errorf("statepg: operation %d must have exactly one of Set and Delete", i)
		case op.Set != nil:
			var err error
			if st.sql, st.args, st.check, err = s.setStatement(op.Set); err != nil {
				return fmt.Errorf("operation %d: %w", i, err)
			}
		default:
			var ok bool
			if st.sql, st.args, st.check, ok = s.deleteStatement(op.Delete); !ok {
				if st.check {
					return state.ErrETagMismatch
				}
				st.sql, st.args = `SELECT 1`, nil // keeps results aligned with ops
			}
		}
		anyCheck = anyCheck || st.check
	}
	if len(ops) == 0 && len(msgs) == 0 {
		return nil
	}
	var outboxArgs []any
	if len(msgs) > 0 {
		var err error
		if outboxArgs, err = s.outboxRows(msgs); err != nil {
			return err
		}
	}

	b := &pgx.Batch{QueuedQueries: make([]*pgx.QueuedQuery, 0, len(ops)+4)}
	if anyCheck {
		b.BeginTx(pgx.TxOptions{})
	}
	b.Queue(setTenantSQL, s.tenant)
	for _, st := range stmts {
		b.Queue(st.sql, st.args...)
	}
	if outboxArgs != nil {
		b.Queue(insertOutboxSQL, outboxArgs...)
		b.Queue(notifyOutboxSQL)
	}
	br := s.pool.SendBatch(ctx, b)
	err := func() error {
		if anyCheck {
			if _, err := br.Exec(); err != nil { // BEGIN
				return err
			}
		}
		if _, err := br.Exec(); err != nil { // set_config
			return err
		}
		for _, st := range stmts {
			tag, err := br.Exec()
			if err != nil {
				return err
			}
			if st.check && tag.RowsAffected() == 0 {
				return state.ErrETagMismatch
			}
		}
		if outboxArgs != nil {
			if _, err := br.Exec(); err != nil { // insert into outbox
				return err
			}
			if _, err := br.Exec(); err != nil { // pg_notify
				return err
			}
		}
		return nil
	}()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if !anyCheck {
		return wrap("transaction", err)
	}
	tx := br.Tx()
	if err != nil {
		// Rollback also returns the connection to the pool, so it must run
		// even when ctx is already canceled.
		_ = tx.Rollback(context.WithoutCancel(ctx))
		if errors.Is(err, state.ErrETagMismatch) {
			return err
		}
		return wrap("transaction", err)
	}
	return wrap("transaction commit", tx.Commit(ctx))
}

// wrap adds context to a database error and marks it state.ErrUnavailable
// when the database could not be reached, so that callers can tell a client
// to retry.
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	if unavailable(err) {
		return fmt.Errorf("statepg %s: %w: %w", op, state.ErrUnavailable, err)
	}
	return fmt.Errorf("statepg %s: %w", op, err)
}

func unavailable(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case strings.HasPrefix(pgErr.Code, "08"), // connection exception
			pgErr.Code == "53300",                // too_many_connections
			strings.HasPrefix(pgErr.Code, "57P"): // admin shutdown, crash shutdown, cannot connect now
			return true
		}
		return false
	}
	var connErr *pgconn.ConnectError
	var netErr net.Error
	return errors.As(err, &connErr) || errors.As(err, &netErr) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || pgconn.SafeToRetry(err)
}
