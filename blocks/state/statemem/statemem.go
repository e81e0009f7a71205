// Package statemem implements state.in-memory: one component's state held in
// a mutex-protected map inside the gateway process.
//
// It serves the whole state contract (ETags, first-write, TTLs, bulk get,
// atomic transactions and the alpha query API) with the same semantics as
// statepg, so that both pass the statetest conformance suite. Data lives
// only as long as the Store value: it is meant for development, tests and
// components that the tenant explicitly asks to be ephemeral.
//
// An ETag is a random per-process prefix and a process-wide counter that
// only ever grows, so an ETag is never reused: not after a key is deleted and
// written again, not in another tenant's store, not after a restart. Expired items
// are invisible to every read at once; Sweep (or Run, periodically) frees
// their memory.
//
// It has the transactional outbox too: TransactWithOutbox queues a
// transaction's messages in memory under the store's lock, after its writes
// are applied, and RunRelay publishes them (package stateoutbox). Queued
// messages live as long as the Store, like its data.
package statemem

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/blockgate/blockgate/blocks/pubsub"
	"github.com/blockgate/blockgate/blocks/state"
)

var (
	_ state.Store            = (*Store)(nil)
	_ state.BulkGetter       = (*Store)(nil)
	_ state.Transactor       = (*Store)(nil)
	_ state.OutboxTransactor = (*Store)(nil)
	_ state.Querier          = (*Store)(nil)
)

// DefaultSweepInterval is how often Run drops expired items unless
// WithSweepInterval says otherwise.
const DefaultSweepInterval = 10 * time.Second

// Option configures a Store.
type Option func(*Store)

// WithClock makes the store read the time from now instead of time.Now; tests
// use it to expire items without waiting.
func WithClock(now func() time.Time) Option {
	return func(s *Store) { s.now = now }
}

// WithSweepInterval sets how often Run sweeps; d <= 0 keeps the default.
func WithSweepInterval(d time.Duration) Option {
	return func(s *Store) {
		if d > 0 {
			s.sweepEvery = d
		}
	}
}

// Store is the state of one component of one tenant. All methods may be
// called concurrently. It never retains a caller's slice: values are copied
// in and out.
type Store struct {
	now        func() time.Time
	sweepEvery time.Duration
	logger     *slog.Logger

	mu    sync.RWMutex
	items map[string]*entry

	// outbox holds committed messages until RunRelay publishes them.
	outbox outbox
}

var (
	etagPrefix = strings.ToLower(rand.Text()[:10]) + "-"
	etagSeq    atomic.Uint64
)

func newETag() string {
	return etagPrefix + strconv.FormatUint(etagSeq.Add(1), 10)
}

// entry is immutable once stored: writers replace it, so readers may keep a
// pointer after unlocking.
type entry struct {
	value     []byte
	etag      string
	expiresAt time.Time // zero: never
	isJSON    bool
}

func (e *entry) live(now time.Time) bool {
	return e.expiresAt.IsZero() || now.Before(e.expiresAt)
}

func (e *entry) item(key string) state.Item {
	return state.Item{Key: key, Value: slices.Clone(nonNil(e.value)), ETag: e.etag, ExpiresAt: e.expiresAt}
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// WithLogger sets where RunRelay logs publish failures; the default
// discards them.
func WithLogger(l *slog.Logger) Option {
	return func(s *Store) {
		if l != nil {
			s.logger = l
		}
	}
}

// WithOutboxLimit sets how many messages the outbox may hold before
// transactions that add more fail with state.ErrUnavailable; n <= 0 keeps
// DefaultOutboxLimit.
func WithOutboxLimit(n int) Option {
	return func(s *Store) {
		if n > 0 {
			s.outbox.limit = n
		}
	}
}

// New returns an empty store.
func New(opts ...Option) *Store {
	s := &Store{
		now: time.Now, sweepEvery: DefaultSweepInterval, items: make(map[string]*entry),
		logger: slog.New(slog.DiscardHandler),
	}
	s.outbox.init()
	for _, o := range opts {
		o(s)
	}
	return s
}

// Get returns the live item at key.
func (s *Store) Get(ctx context.Context, key string) (state.Item, bool, error) {
	if err := ctx.Err(); err != nil {
		return state.Item{}, false, err
	}
	now := s.now()
	s.mu.RLock()
	e := s.items[key]
	s.mu.RUnlock()
	if e == nil || !e.live(now) {
		return state.Item{}, false, nil
	}
	return e.item(key), true, nil
}

// BulkGet returns the live items among keys, each at most once, in the order
// of keys.
func (s *Store) BulkGet(ctx context.Context, keys []string) ([]state.Item, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	now := s.now()
	out := make([]state.Item, 0, len(keys))
	seen := make(map[string]bool, len(keys))
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, k := range keys {
		if seen[k] {
			continue
		}
		seen[k] = true
		if e := s.items[k]; e != nil && e.live(now) {
			out = append(out, e.item(k))
		}
	}
	return out, nil
}

// Set writes one item under the rules of state.SetRequest.
func (s *Store) Set(ctx context.Context, req state.SetRequest) error {
	return s.Transact(ctx, []state.Operation{{Set: &req}})
}

// Delete removes one item under the rules of state.DeleteRequest. FirstWrite
// without an ETag is an ordinary delete, as in Dapr.
func (s *Store) Delete(ctx context.Context, req state.DeleteRequest) error {
	return s.Transact(ctx, []state.Operation{{Delete: &req}})
}

// Transact applies ops atomically. Every check runs first, against the state
// as the earlier operations of the same transaction leave it; only when all
// pass are the writes applied.
func (s *Store) Transact(ctx context.Context, ops []state.Operation) error {
	return s.transact(ctx, ops, nil)
}

// transact is Transact that also queues msgs for the relay once the writes
// are applied, under the same lock (see outbox.go).
func (s *Store) transact(ctx context.Context, ops []state.Operation, msgs []pubsub.Message) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	for i, op := range ops {
		if (op.Set == nil) == (op.Delete == nil) {
			return fmt.Errorf("statemem: operation %d must have exactly one of Set and Delete", i)
		}
	}
	// Copy and classify values before taking the lock.
	fresh := make([]*entry, len(ops))
	for i, op := range ops {
		if op.Set != nil {
			fresh[i] = &entry{value: slices.Clone(nonNil(op.Set.Value)), isJSON: state.Queryable(op.Set.Value)}
		}
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()

	// pending holds the transaction's view of the keys it touched: nil for
	// deleted.
	pending := make(map[string]*entry, len(ops))
	current := func(key string) *entry {
		e, ok := pending[key]
		if !ok {
			e = s.items[key]
		}
		if e != nil && !e.live(now) {
			return nil
		}
		return e
	}
	for i, op := range ops {
		if r := op.Set; r != nil {
			cur := current(r.Key)
			if err := check(cur, r.ETag, r.FirstWrite); err != nil {
				return err
			}
			e := fresh[i]
			e.etag = newETag()
			if r.TTL > 0 {
				e.expiresAt = now.Add(r.TTL)
			}
			pending[r.Key] = e
			continue
		}
		r := op.Delete
		if r.ETag != nil {
			if err := check(current(r.Key), r.ETag, false); err != nil {
				return err
			}
		}
		pending[r.Key] = nil
	}
	if err := s.outbox.reserve(msgs); err != nil {
		return err
	}
	for k, e := range pending {
		if e == nil {
			delete(s.items, k)
		} else {
			s.items[k] = e
		}
	}
	s.outbox.enqueue(msgs, now)
	return nil
}

// check applies the concurrency rule to the live entry cur (nil if absent).
func check(cur *entry, etag *string, firstWrite bool) error {
	switch {
	case etag != nil:
		if cur == nil || cur.etag != *etag {
			return state.ErrETagMismatch
		}
	case firstWrite:
		if cur != nil {
			return state.ErrETagMismatch
		}
	}
	return nil
}

// Sweep drops expired items and returns how many it dropped. Reads never see
// expired items anyway; Sweep only frees memory.
func (s *Store) Sweep() int {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for k, e := range s.items {
		if !e.live(now) {
			delete(s.items, k)
			n++
		}
	}
	return n
}

// Run sweeps every sweep interval until ctx is done, then returns nil.
func (s *Store) Run(ctx context.Context) error {
	t := time.NewTicker(s.sweepEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			s.Sweep()
		}
	}
}

// Len returns the number of items held, expired ones included until the
// next Sweep.
func (s *Store) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.items)
}

// Query runs q over the live JSON items whose keys start with prefix.
func (s *Store) Query(ctx context.Context, prefix string, q state.Query) (state.QueryResult, error) {
	if err := ctx.Err(); err != nil {
		return state.QueryResult{}, err
	}
	pred, err := compileFilter(q.Filter, 0)
	if err != nil {
		return state.QueryResult{}, err
	}
	sorts, err := compileSorts(q.Sort)
	if err != nil {
		return state.QueryResult{}, err
	}
	offset, err := parsePage(q.Limit, q.Token)
	if err != nil {
		return state.QueryResult{}, err
	}

	type hit struct {
		key string
		e   *entry
		doc any
	}
	now := s.now()
	var hits []hit
	s.mu.RLock()
	for k, e := range s.items {
		if !e.isJSON || !strings.HasPrefix(k, prefix) || !e.live(now) {
			continue
		}
		hits = append(hits, hit{key: k, e: e})
	}
	s.mu.RUnlock()

	// Entries are immutable, so decoding happens outside the lock.
	matched := hits[:0]
	for _, h := range hits {
		doc, err := decode(h.e.value)
		if err != nil {
			continue // isJSON said yes; cannot happen, but never fail a query on it
		}
		if pred == nil || pred(doc) {
			h.doc = doc
			matched = append(matched, h)
		}
	}
	slices.SortFunc(matched, func(a, b hit) int {
		for _, srt := range sorts {
			av, aok := lookup(a.doc, srt.path)
			bv, bok := lookup(b.doc, srt.path)
			c := compareMissingLast(av, aok, bv, bok)
			if srt.desc {
				c = -c
			}
			if c != 0 {
				return c
			}
		}
		return strings.Compare(a.key, b.key)
	})

	var res state.QueryResult
	if offset >= len(matched) {
		return res, nil
	}
	page := matched[offset:]
	if q.Limit > 0 && len(page) > q.Limit {
		page = page[:q.Limit]
		res.Token = strconv.Itoa(offset + q.Limit)
	}
	res.Items = make([]state.Item, len(page))
	for i, h := range page {
		res.Items[i] = h.e.item(h.key)
	}
	return res, nil
}

func invalidQuery(format string, args ...any) error {
	return fmt.Errorf("%w: %s", state.ErrInvalidQuery, fmt.Sprintf(format, args...))
}

// parsePage validates the page and returns the offset the token stands for.
func parsePage(limit int, token string) (int, error) {
	if limit < 0 {
		return 0, invalidQuery("page limit %d is negative", limit)
	}
	if token == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(token)
	if err != nil || n < 0 || strconv.Itoa(n) != token {
		return 0, invalidQuery("page token %q was not issued by this store", token)
	}
	return n, nil
}
