package statepg

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/blockgate/blockgate/internal/syncbuf"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/blockgate/blockgate/blocks/pubsub"
	"github.com/blockgate/blockgate/blocks/state"
	"github.com/blockgate/blockgate/blocks/state/statetest"
	"github.com/blockgate/blockgate/internal/pgtest"
	"github.com/blockgate/blockgate/tenants"
)

// pendingOutbox reads tenant's outbox rows in claim order, under the
// tenant's own scope, as messages.
func pendingOutbox(t *testing.T, pool *pgxpool.Pool, tenant tenants.ID) []pubsub.Message {
	t.Helper()
	ctx := t.Context()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, setTenantSQL, string(tenant)); err != nil {
		t.Fatal(err)
	}
	rows, err := tx.Query(ctx, `SELECT tenant_id, id, pubsub, topic, data, content_type, partition_key, expires_at, metadata
FROM outbox ORDER BY next_attempt_at, seq`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []pubsub.Message
	for rows.Next() {
		var m pubsub.Message
		var tn string
		var expires *time.Time
		if err := rows.Scan(&tn, &m.ID, &m.Pubsub, &m.Topic, &m.Data, &m.ContentType, &m.PartitionKey, &expires, &m.Metadata); err != nil {
			t.Fatal(err)
		}
		m.Tenant = tenants.ID(tn)
		if expires != nil {
			m.Expires = *expires
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestOutboxConformance(t *testing.T) {
	pool := pgtest.New(t)
	b := NewBackend(pool, testLogger(t))
	statetest.RunOutbox(t, func(t *testing.T, tenant tenants.ID, name string) state.Store {
		return b.Open(tenant, name)
	}, func(t *testing.T, _ state.Store, tenant tenants.ID) []pubsub.Message {
		return pendingOutbox(t, pool, tenant)
	})
}

// countOutbox is count for the outbox table.
func outboxMsg(tenant tenants.ID, id string) pubsub.Message {
	return pubsub.Message{Tenant: tenant, Pubsub: "pubsub", Topic: "orders", ID: id, Data: []byte(`{"id":"` + id + `"}`),
		ContentType: pubsub.ContentTypeCloudEvent}
}

// commit writes a key and the messages in one outbox transaction.
func commit(t *testing.T, s *Store, msgs ...pubsub.Message) {
	t.Helper()
	if err := s.TransactWithOutbox(t.Context(), []state.Operation{{Set: &state.SetRequest{Key: "k", Value: []byte("v")}}}, msgs); err != nil {
		t.Fatal(err)
	}
}

func TestOutboxRowLevelSecurity(t *testing.T) {
	pool := pgtest.New(t)
	b := NewBackend(pool, testLogger(t))
	ctx := t.Context()
	for _, tn := range []tenants.ID{"acme", "globex"} {
		commit(t, b.Open(tn, "statestore"), outboxMsg(tn, "m1"), outboxMsg(tn, "m2"))
	}
	checkVisibility(t, pool, "outbox")
	t.Run("a store cannot write another tenant's message", func(t *testing.T) {
		err := b.Open("acme", "statestore").TransactWithOutbox(ctx, nil, []pubsub.Message{outboxMsg("globex", "m3")})
		if err == nil {
			t.Fatal("TransactWithOutbox of globex's message through acme's store succeeded")
		}
		tx, err := pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx)
		if _, err := tx.Exec(ctx, setTenantSQL, "acme"); err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO outbox (tenant_id, id, pubsub, topic, data, content_type) VALUES ('globex', 'x', 'p', 't', '', '')`); err == nil {
			t.Fatal("INSERT of another tenant's outbox row succeeded")
		}
	})
}

// TestOutboxIffCommit shows the rule on the table itself, on both paths of
// Transact: the one-batch implicit transaction and the explicit one.
func TestOutboxIffCommit(t *testing.T) {
	pool := pgtest.New(t)
	s := NewBackend(pool, testLogger(t)).Open("acme", "statestore")
	ctx := t.Context()
	commit(t, s)
	it, _, err := s.Get(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	stale := "stale"
	cases := []struct {
		name    string
		ops     []state.Operation
		msg     string
		wantErr bool
	}{
		{"unchecked commits", []state.Operation{{Set: &state.SetRequest{Key: "a", Value: []byte("1")}}}, "m1", false},
		{"checked commits", []state.Operation{{Set: &state.SetRequest{Key: "k", Value: []byte("2"), ETag: &it.ETag}}}, "m2", false},
		{"stale ETag rolls back", []state.Operation{
			{Set: &state.SetRequest{Key: "b", Value: []byte("1")}},
			{Set: &state.SetRequest{Key: "k", Value: []byte("3"), ETag: &stale}},
		}, "m3", true},
		{"statement error rolls back", []state.Operation{{Set: &state.SetRequest{Key: "c", Value: []byte("1")}}}, "bad\x00id", true},
	}
	want := 0
	for _, c := range cases {
		err := s.TransactWithOutbox(ctx, c.ops, []pubsub.Message{outboxMsg("acme", c.msg)})
		if (err != nil) != c.wantErr {
			t.Fatalf("%s: err = %v", c.name, err)
		}
		if !c.wantErr {
			want++
		}
		if got := countRows(t, pool, "outbox", setPlatform); got != want {
			t.Fatalf("%s: %d outbox rows, want %d", c.name, got, want)
		}
	}
	if _, ok, _ := s.Get(ctx, "b"); ok {
		t.Fatal("the rolled-back transaction wrote b")
	}
}

// fakeBroker records what relays publish. Its publish may be made to fail,
// and can be slowed to widen the window in which relays overlap.
type fakeBroker struct {
	mu        sync.Mutex
	got       []pubsub.Message
	perID     map[string]int
	failNext  int
	delay     time.Duration
	callCount int
}

func (f *fakeBroker) publish(ctx context.Context, msgs []pubsub.Message) []error {
	if f.delay > 0 {
		time.Sleep(f.delay)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.callCount++
	errs := make([]error, len(msgs))
	for i, m := range msgs {
		if f.failNext > 0 {
			f.failNext--
			errs[i] = fmt.Errorf("publishing: %w", pubsub.ErrUnavailable)
			continue
		}
		if f.perID == nil {
			f.perID = map[string]int{}
		}
		f.perID[string(m.Tenant)+"/"+m.ID]++
		f.got = append(f.got, m)
	}
	return errs
}

func (f *fakeBroker) published() []pubsub.Message {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.got)
}

// runRelay runs b's relay until the test ends.
func runRelay(t *testing.T, b *Backend, publish func(context.Context, []pubsub.Message) []error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.RunRelay(ctx, publish) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("RunRelay = %v after cancel, want nil", err)
		}
	})
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func TestRelayPublishesAndDeletes(t *testing.T) {
	pool := pgtest.New(t)
	b := NewBackend(pool, testLogger(t))
	// An hour's poll: after the first round only NOTIFY can wake the relay.
	b.relay.Poll = time.Hour
	f := &fakeBroker{}
	runRelay(t, b, f.publish)

	expires := time.Now().Add(time.Hour).UTC().Truncate(time.Microsecond)
	full := outboxMsg("acme", "full")
	full.PartitionKey, full.Expires, full.Metadata = "order-1", expires, map[string]string{"traceparent": "00-x-y-01"}
	commit(t, b.Open("acme", "statestore"), outboxMsg("acme", "a1"), full)
	commit(t, b.Open("globex", "statestore"), outboxMsg("globex", "g1"))
	waitFor(t, "3 messages", func() bool { return len(f.published()) == 3 })
	waitFor(t, "the outbox to empty", func() bool { return countRows(t, pool, "outbox", setPlatform) == 0 })

	got := f.published()
	if got[0].ID != "a1" || got[1].ID != "full" || got[2].ID != "g1" {
		t.Fatalf("published %v, want a1, full (in transaction order), g1", got)
	}
	g := got[1]
	if g.Tenant != "acme" || g.Pubsub != "pubsub" || g.Topic != "orders" || string(g.Data) != `{"id":"full"}` ||
		g.ContentType != pubsub.ContentTypeCloudEvent || g.PartitionKey != "order-1" || !g.Expires.Equal(expires) ||
		g.Metadata["traceparent"] != "00-x-y-01" {
		t.Fatalf("message did not survive the outbox: %+v", g)
	}
	if got[2].Tenant != "globex" {
		t.Fatalf("g1 published for tenant %q", got[2].Tenant)
	}

	// An expired message is dropped, not published.
	old := outboxMsg("acme", "old")
	old.Expires = time.Now().Add(-time.Second)
	commit(t, b.Open("acme", "statestore"), old, outboxMsg("acme", "after-old"))
	waitFor(t, "after-old", func() bool { return len(f.published()) == 4 })
	waitFor(t, "the outbox to empty", func() bool { return countRows(t, pool, "outbox", setPlatform) == 0 })
	if got := f.published(); got[3].ID != "after-old" {
		t.Fatalf("published %s, want after-old (old had expired)", got[3].ID)
	}
}

func TestRelayRetriesFailingBroker(t *testing.T) {
	pool := pgtest.New(t)
	b := NewBackend(pool, testLogger(t))
	b.relay.Poll = 10 * time.Millisecond
	f := &fakeBroker{failNext: 2}
	commit(t, b.Open("acme", "statestore"), outboxMsg("acme", "m1"), outboxMsg("acme", "m2"))
	runRelay(t, b, f.publish)
	// The first attempt fails both; they are retried after RetryDelay(1).
	waitFor(t, "both messages to fail once", func() bool {
		var attempts int
		tx, err := pool.Begin(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(t.Context())
		tx.Exec(t.Context(), setPlatform)
		tx.QueryRow(t.Context(), `SELECT coalesce(min(attempts), 0) FROM outbox`).Scan(&attempts)
		return attempts >= 1
	})
	waitFor(t, "both messages to be published", func() bool { return len(f.published()) == 2 })
	waitFor(t, "the outbox to empty", func() bool { return countRows(t, pool, "outbox", setPlatform) == 0 })
	if got := f.published(); got[0].ID != "m1" || got[1].ID != "m2" {
		t.Fatalf("published %s, %s; want m1, m2", got[0].ID, got[1].ID)
	}
}

// TestRelaysDoNotDoubleWork runs three relays over one backlog: SKIP
// LOCKED must give each message to exactly one of them.
func TestRelaysDoNotDoubleWork(t *testing.T) {
	pool := pgtest.New(t)
	const n = 600
	setup := NewBackend(pool, testLogger(t))
	for i := 0; i < n; i += 50 {
		msgs := make([]pubsub.Message, 50)
		for j := range msgs {
			msgs[j] = outboxMsg("acme", fmt.Sprintf("m%03d", i+j))
		}
		commit(t, setup.Open("acme", "statestore"), msgs...)
	}
	f := &fakeBroker{delay: 2 * time.Millisecond}
	for range 3 {
		b := NewBackend(pool, testLogger(t))
		b.relay.Batch = 20
		b.relay.Poll = 10 * time.Millisecond
		runRelay(t, b, f.publish)
	}
	waitFor(t, "every message", func() bool { return len(f.published()) >= n })
	waitFor(t, "the outbox to empty", func() bool { return countRows(t, pool, "outbox", setPlatform) == 0 })
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.got) != n || len(f.perID) != n {
		t.Fatalf("%d publishes of %d distinct messages, want %d of %d", len(f.got), len(f.perID), n, n)
	}
	for id, c := range f.perID {
		if c != 1 {
			t.Fatalf("%s published %d times", id, c)
		}
	}
	if f.callCount < 3 {
		t.Fatalf("%d publish calls; the relays did not share the work", f.callCount)
	}
}

// TestRelaySurvivesPanics: a publish that panics is recovered, logged, and
// the message is published by a later round.
func TestRelaySurvivesPanics(t *testing.T) {
	pool := pgtest.New(t)
	var logs syncbuf.Buffer
	b := NewBackend(pool, slog.New(slog.NewTextHandler(&logs, nil)))
	b.relay.Poll = 10 * time.Millisecond
	f := &fakeBroker{}
	var once sync.Once
	runRelay(t, b, func(ctx context.Context, msgs []pubsub.Message) []error {
		once.Do(func() { panic("broker on fire") })
		return f.publish(ctx, msgs)
	})
	commit(t, b.Open("acme", "statestore"), outboxMsg("acme", "m1"))
	waitFor(t, "m1 after the panic", func() bool { return len(f.published()) == 1 })
	if !strings.Contains(logs.String(), "broker on fire") {
		t.Fatalf("the panic was not logged:\n%s", logs.String())
	}
}

func TestOutboxRoundTrips(t *testing.T) {
	pool, rt := countingPool(t)
	s := NewBackend(pool, nil).Open("acme", "statestore")
	ctx := t.Context()
	seq := 0
	msg := func() []pubsub.Message {
		seq++
		return []pubsub.Message{outboxMsg("acme", fmt.Sprintf("a%d", seq)), outboxMsg("acme", fmt.Sprintf("b%d", seq))}
	}
	for _, tc := range []struct {
		name  string
		want  int64
		check bool
	}{
		{"unchecked transaction with messages", 1, false},
		{"checked transaction with messages", 2, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for i := range 2 { // the first run prepares the statements
				op := state.SetRequest{Key: "k", Value: []byte("v")}
				if tc.check {
					it, _, err := s.Get(ctx, "k")
					if err != nil {
						t.Fatal(err)
					}
					if it.ETag != "" {
						op.ETag = &it.ETag
					} else {
						op.FirstWrite = true
					}
				}
				before := rt.n.Load()
				if err := s.TransactWithOutbox(ctx, []state.Operation{{Set: &op}}, msg()); err != nil {
					t.Fatal(err)
				}
				if got := rt.n.Load() - before; i == 1 && got != tc.want {
					t.Fatalf("%d round trips, want %d", got, tc.want)
				}
			}
		})
	}
}

func TestRelayBadArguments(t *testing.T) {
	if err := NewBackend(nil, nil).RunRelay(t.Context(), nil); err == nil || errors.Is(err, context.Canceled) {
		t.Fatalf("RunRelay without publish = %v", err)
	}
}
