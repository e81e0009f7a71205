package statepg

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/blockgate/blockgate/internal/syncbuf"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/blockgate/blockgate/blocks/state"
	"github.com/blockgate/blockgate/blocks/state/statetest"
	"github.com/blockgate/blockgate/internal/pgtest"
	"github.com/blockgate/blockgate/tenants"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func TestConformance(t *testing.T) {
	b := NewBackend(pgtest.New(t), testLogger(t))
	statetest.Run(t, func(t *testing.T, tenant tenants.ID, name string) state.Store {
		return b.Open(tenant, name)
	})
}

// count runs SELECT count(*) FROM state in a transaction whose only setting
// is the one setup makes, with no filter of its own: what row-level security
// lets through.
// count counts the rows of state visible after setup.
func count(t *testing.T, pool *pgxpool.Pool, setup string, args ...any) int {
	t.Helper()
	return countRows(t, pool, "state", setup, args...)
}

// countRows counts the rows of table visible in a transaction after setup.
func countRows(t *testing.T, pool *pgxpool.Pool, table, setup string, args ...any) int {
	t.Helper()
	ctx := t.Context()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if setup != "" {
		if _, err := tx.Exec(ctx, setup, args...); err != nil {
			t.Fatal(err)
		}
	}
	var n int
	if err := tx.QueryRow(ctx, "SELECT count(*) FROM "+pgx.Identifier{table}.Sanitize()).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// checkVisibility checks what row-level security shows of table, which
// holds two rows of each of the tenants acme and globex.
func checkVisibility(t *testing.T, pool *pgxpool.Pool, table string) {
	t.Helper()
	tests := []struct {
		name  string
		setup string
		args  []any
		want  int
	}{
		{"no setting", "", nil, 0},
		{"tenant acme", setTenantSQL, []any{"acme"}, 2},
		{"tenant globex", setTenantSQL, []any{"globex"}, 2},
		{"unknown tenant", setTenantSQL, []any{"initech"}, 0},
		{"empty tenant", setTenantSQL, []any{""}, 0},
		{"platform scope", setPlatform, nil, 4},
	}
	for _, tc := range tests {
		t.Run(table+"/"+tc.name, func(t *testing.T) {
			if got := countRows(t, pool, table, tc.setup, tc.args...); got != tc.want {
				t.Fatalf("rows visible = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestRowLevelSecurity(t *testing.T) {
	pool := pgtest.New(t)
	b := NewBackend(pool, testLogger(t))
	ctx := t.Context()
	for _, tn := range []tenants.ID{"acme", "globex"} {
		for _, k := range []string{"a", "b"} {
			if err := b.Open(tn, "statestore").Set(ctx, state.SetRequest{Key: k, Value: []byte("v")}); err != nil {
				t.Fatal(err)
			}
		}
	}
	checkVisibility(t, pool, "state")
	t.Run("explicit filter for another tenant sees nothing", func(t *testing.T) {
		tx, err := pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx)
		if _, err := tx.Exec(ctx, setTenantSQL, "acme"); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM state WHERE tenant_id = 'globex'`).Scan(&n); err != nil || n != 0 {
			t.Fatalf("count = %d, %v; want 0", n, err)
		}
		tag, err := tx.Exec(ctx, `UPDATE state SET value = 'x' WHERE tenant_id = 'globex'`)
		if err != nil || tag.RowsAffected() != 0 {
			t.Fatalf("UPDATE of another tenant's rows = %v, %v", tag, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO state (tenant_id, store, key, value, is_json, etag) VALUES ('globex', 's', 'k', '', false, 'e')`); err == nil {
			t.Fatalf("INSERT of another tenant's row succeeded")
		}
	})
	t.Run("a store with no rows of its own sees nothing", func(t *testing.T) {
		s := b.Open("initech", "statestore")
		if _, ok, err := s.Get(ctx, "a"); ok || err != nil {
			t.Fatalf("Get = %v, %v", ok, err)
		}
		res, err := s.Query(ctx, "", state.Query{})
		if err != nil || len(res.Items) != 0 {
			t.Fatalf("Query = %v, %v", res.Items, err)
		}
	})
}

// singleConn returns a pool over pool's database with exactly one
// connection, so that every use gets the connection the last one returned.
func singleConn(t *testing.T, pool *pgxpool.Pool) *pgxpool.Pool {
	t.Helper()
	cfg := pool.Config().Copy()
	cfg.MinConns, cfg.MaxConns = 0, 1
	p, err := pgxpool.NewWithConfig(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// TestBatchIsOneTransaction shows what the design rests on: a batch sent
// without BEGIN runs as one implicit transaction, and a transaction-local
// setting made in it is gone when it ends, even on the same connection.
func TestBatchIsOneTransaction(t *testing.T) {
	pool := singleConn(t, pgtest.New(t))
	ctx := t.Context()
	var b pgx.Batch
	b.Queue(setTenantSQL, "acme")
	b.Queue(`SELECT pg_current_xact_id()::text, current_setting('blockgate.tenant', true), pg_backend_pid()`)
	b.Queue(`SELECT pg_current_xact_id()::text, current_setting('blockgate.tenant', true), pg_backend_pid()`)
	br := pool.SendBatch(ctx, &b)
	if _, err := br.Exec(); err != nil {
		t.Fatal(err)
	}
	var x1, x2, s1, s2 string
	var pid1, pid2, pid3 int
	if err := br.QueryRow().Scan(&x1, &s1, &pid1); err != nil {
		t.Fatal(err)
	}
	if err := br.QueryRow().Scan(&x2, &s2, &pid2); err != nil {
		t.Fatal(err)
	}
	if err := br.Close(); err != nil {
		t.Fatal(err)
	}
	if x1 != x2 || s1 != "acme" || s2 != "acme" {
		t.Fatalf("in the batch: xact %s/%s, tenant %q/%q; want one transaction that sees acme", x1, x2, s1, s2)
	}
	var after *string
	var x3 string
	if err := pool.QueryRow(ctx, `SELECT pg_current_xact_id()::text, current_setting('blockgate.tenant', true), pg_backend_pid()`).Scan(&x3, &after, &pid3); err != nil {
		t.Fatal(err)
	}
	if pid3 != pid1 || pid2 != pid1 {
		t.Fatalf("backend pids %d, %d, %d: the pool did not reuse its one connection", pid1, pid2, pid3)
	}
	if after != nil && *after != "" {
		t.Fatalf("after the batch, blockgate.tenant = %q on the same connection", *after)
	}
	if x3 == x1 {
		t.Fatalf("the next query ran in the batch's transaction")
	}
}

// TestSettingDoesNotLeak runs every kind of operation, successful and not,
// on a one-connection pool, and checks after each that the connection
// carries no tenant and sees no rows.
func TestSettingDoesNotLeak(t *testing.T) {
	pool := singleConn(t, pgtest.New(t))
	ctx := t.Context()
	s := NewBackend(pool, testLogger(t)).Open("acme", "statestore")
	if err := s.Set(ctx, state.SetRequest{Key: "k", Value: []byte(`{"a":1}`)}); err != nil {
		t.Fatal(err)
	}
	it, _, err := s.Get(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	ops := []struct {
		name string
		run  func() error
	}{
		{"get", func() error { _, _, err := s.Get(ctx, "k"); return err }},
		{"bulk get", func() error { _, err := s.BulkGet(ctx, []string{"k", "x"}); return err }},
		{"set", func() error { return s.Set(ctx, state.SetRequest{Key: "k2", Value: []byte("v")}) }},
		{"failed set", func() error {
			err := s.Set(ctx, state.SetRequest{Key: "k", Value: []byte("v"), ETag: ptr("stale")})
			if !errors.Is(err, state.ErrETagMismatch) {
				return fmt.Errorf("want ETag mismatch, got %v", err)
			}
			return nil
		}},
		{"delete", func() error { return s.Delete(ctx, state.DeleteRequest{Key: "k2"}) }},
		{"query", func() error {
			_, err := s.Query(ctx, "", state.Query{Filter: &state.Filter{Op: "EQ", Key: "a", Values: []any{1}}})
			return err
		}},
		{"transaction", func() error {
			return s.Transact(ctx, []state.Operation{{Set: &state.SetRequest{Key: "t", Value: []byte("v")}}, {Delete: &state.DeleteRequest{Key: "t"}}})
		}},
		{"checked transaction", func() error {
			return s.Transact(ctx, []state.Operation{{Set: &state.SetRequest{Key: "k", Value: []byte(`{"a":1}`), ETag: &it.ETag}}})
		}},
		{"rolled back transaction", func() error {
			err := s.Transact(ctx, []state.Operation{{Set: &state.SetRequest{Key: "t", Value: []byte("v")}}, {Delete: &state.DeleteRequest{Key: "k", ETag: ptr("stale")}}})
			if !errors.Is(err, state.ErrETagMismatch) {
				return fmt.Errorf("want ETag mismatch, got %v", err)
			}
			return nil
		}},
		{"statement error", func() error {
			if _, err := s.exec(ctx, `SELECT 1/0`); err == nil {
				return errors.New("1/0 succeeded")
			}
			return nil
		}},
		{"canceled", func() error {
			c, cancel := context.WithCancel(ctx)
			cancel()
			if _, _, err := s.Get(c, "k"); !errors.Is(err, context.Canceled) {
				return fmt.Errorf("Get with a canceled ctx = %v", err)
			}
			return nil
		}},
	}
	for _, op := range ops {
		t.Run(op.name, func(t *testing.T) {
			if err := op.run(); err != nil {
				t.Fatal(err)
			}
			var setting *string
			if err := pool.QueryRow(ctx, `SELECT current_setting('blockgate.tenant', true)`).Scan(&setting); err != nil {
				t.Fatal(err)
			}
			if setting != nil && *setting != "" {
				t.Fatalf("blockgate.tenant = %q after the operation", *setting)
			}
			if n := count(t, pool, ""); n != 0 {
				t.Fatalf("%d rows visible without a tenant after the operation", n)
			}
		})
	}
	if n := count(t, pool, setTenantSQL, "acme"); n != 1 {
		t.Fatalf("acme has %d rows, want 1 (k)", n)
	}
}

// insertExpired writes rows that expired a second ago, under the platform
// scope, as no Store can.
func insertExpired(t *testing.T, pool *pgxpool.Pool, rows ...[3]string) {
	t.Helper()
	ctx := t.Context()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, setPlatform); err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if _, err := tx.Exec(ctx, `INSERT INTO state (tenant_id, store, key, value, is_json, etag, expires_at)
VALUES ($1, $2, $3, 'x', false, 'e', now() - interval '1 second')`, r[0], r[1], r[2]); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestSweep(t *testing.T) {
	pool := pgtest.New(t)
	b := NewBackend(pool, testLogger(t))
	b.sweepBatch = 2
	ctx := t.Context()
	for _, tn := range []tenants.ID{"acme", "globex"} {
		s := b.Open(tn, "statestore")
		for _, r := range []state.SetRequest{
			{Key: "forever", Value: []byte("v")},
			{Key: "later", Value: []byte("v"), TTL: time.Hour},
		} {
			if err := s.Set(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
	}
	insertExpired(t, pool,
		[3]string{"acme", "statestore", "old1"},
		[3]string{"acme", "statestore", "old2"},
		[3]string{"acme", "other", "old1"},
		[3]string{"globex", "statestore", "old1"},
		[3]string{"globex", "statestore", "old3"},
	)
	if n := count(t, pool, setPlatform); n != 9 {
		t.Fatalf("%d rows before the sweep, want 9", n)
	}
	n, err := b.Sweep(ctx)
	if err != nil || n != 5 {
		t.Fatalf("Sweep = %d, %v; want 5 in batches of 2", n, err)
	}
	if n := count(t, pool, setPlatform); n != 4 {
		t.Fatalf("%d rows after the sweep, want the 4 live ones", n)
	}
	for _, tn := range []tenants.ID{"acme", "globex"} {
		items, err := b.Open(tn, "statestore").BulkGet(ctx, []string{"forever", "later"})
		if err != nil || len(items) != 2 {
			t.Fatalf("%s: BulkGet after sweep = %v, %v", tn, items, err)
		}
	}
	if n, err := b.Sweep(ctx); err != nil || n != 0 {
		t.Fatalf("second Sweep = %d, %v; want 0", n, err)
	}
}

func TestRun(t *testing.T) {
	pool := pgtest.New(t)
	t.Run("sweeps until canceled", func(t *testing.T) {
		b := NewBackend(pool, testLogger(t))
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- b.Run(ctx, 10*time.Millisecond) }()
		insertExpired(t, pool, [3]string{"acme", "s", "k1"}, [3]string{"acme", "s", "k2"})
		deadline := time.Now().Add(10 * time.Second)
		for count(t, pool, setPlatform) != 0 {
			if time.Now().After(deadline) {
				t.Fatalf("Run did not sweep")
			}
			time.Sleep(10 * time.Millisecond)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run = %v, want nil after cancel", err)
		}
	})
	t.Run("failures are logged rate-limited", func(t *testing.T) {
		var logs syncbuf.Buffer
		b := NewBackend(pool, slog.New(slog.NewTextHandler(&logs, nil)))
		var calls atomic.Int64
		b.sweep = func(context.Context) (int64, error) {
			if calls.Add(1)%2 == 0 {
				panic("boom")
			}
			return 0, errors.New("database on fire")
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- b.Run(ctx, time.Millisecond) }()
		for calls.Load() < 20 {
			time.Sleep(time.Millisecond)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run = %v, want nil after cancel", err)
		}
		out := logs.String()
		if n := strings.Count(out, "state TTL sweep failed"); n != 1 {
			t.Fatalf("%d failure lines for %d failures, want 1:\n%s", n, calls.Load(), out)
		}
		if !strings.Contains(out, "database on fire") || !strings.Contains(out, "state TTL sweep panicked") {
			t.Fatalf("log lacks the error or the panic:\n%s", out)
		}
	})
	t.Run("bad interval", func(t *testing.T) {
		if err := NewBackend(pool, nil).Run(t.Context(), 0); err == nil {
			t.Fatalf("Run with interval 0 = nil")
		}
	})
}

func TestUnavailable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().(*net.TCPAddr)
	ln.Close() // nothing listens there now
	pool, err := pgxpool.New(t.Context(), fmt.Sprintf("host=127.0.0.1 port=%d user=x dbname=x connect_timeout=5", addr.Port))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	s := NewBackend(pool, nil).Open("acme", "statestore")
	ctx := t.Context()
	errs := map[string]error{}
	_, _, errs["get"] = s.Get(ctx, "k")
	errs["set"] = s.Set(ctx, state.SetRequest{Key: "k", Value: []byte("v")})
	errs["transact"] = s.Transact(ctx, []state.Operation{{Delete: &state.DeleteRequest{Key: "k", ETag: ptr("e")}}})
	_, errs["query"] = s.Query(ctx, "", state.Query{})
	for op, err := range errs {
		if !errors.Is(err, state.ErrUnavailable) {
			t.Errorf("%s: err = %v, want ErrUnavailable", op, err)
		}
	}
}

// roundTrips counts the writes a pool's connections make: pgx flushes once
// per round trip.
type roundTrips struct{ n atomic.Int64 }

type countingConn struct {
	net.Conn
	rt *roundTrips
}

func (c countingConn) Write(p []byte) (int, error) {
	c.rt.n.Add(1)
	return c.Conn.Write(p)
}

// countingPool returns a one-connection pool over a fresh database whose
// writes to the server rt counts.
func countingPool(t *testing.T) (*pgxpool.Pool, *roundTrips) {
	t.Helper()
	cfg := pgtest.New(t).Config().Copy()
	cfg.MinConns, cfg.MaxConns = 0, 1
	rt := &roundTrips{}
	dial := cfg.ConnConfig.DialFunc
	cfg.ConnConfig.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return countingConn{Conn: c, rt: rt}, nil
	}
	pool, err := pgxpool.NewWithConfig(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool, rt
}

func TestRoundTrips(t *testing.T) {
	pool, rt := countingPool(t)
	s := NewBackend(pool, nil).Open("acme", "statestore")
	ctx := t.Context()
	etag := func() *string {
		it, _, err := s.Get(ctx, "k")
		if err != nil {
			t.Fatal(err)
		}
		return &it.ETag
	}
	ops := []struct {
		name string
		want int64
		run  func(etag *string) error
	}{
		{"set", 1, func(*string) error { return s.Set(ctx, state.SetRequest{Key: "k", Value: []byte(`{"a":1}`)}) }},
		{"get", 1, func(*string) error { _, _, err := s.Get(ctx, "k"); return err }},
		{"set with etag", 1, func(etag *string) error {
			return s.Set(ctx, state.SetRequest{Key: "k", Value: []byte(`{"a":1}`), ETag: etag})
		}},
		{"first-write", 1, func(*string) error {
			return s.Set(ctx, state.SetRequest{Key: "k2", Value: []byte("v"), FirstWrite: true})
		}},
		{"delete", 1, func(*string) error { return s.Delete(ctx, state.DeleteRequest{Key: "k2"}) }},
		{"bulk get", 1, func(*string) error { _, err := s.BulkGet(ctx, []string{"k", "k2"}); return err }},
		{"query", 1, func(*string) error {
			_, err := s.Query(ctx, "", state.Query{Filter: &state.Filter{Op: "EQ", Key: "a", Values: []any{1}}, Limit: 5})
			return err
		}},
		{"transaction", 1, func(*string) error {
			return s.Transact(ctx, []state.Operation{{Set: &state.SetRequest{Key: "t", Value: []byte("v")}}, {Delete: &state.DeleteRequest{Key: "t"}}})
		}},
		{"checked transaction", 2, func(etag *string) error {
			return s.Transact(ctx, []state.Operation{{Set: &state.SetRequest{Key: "k", Value: []byte(`{"a":1}`), ETag: etag}}, {Delete: &state.DeleteRequest{Key: "t"}}})
		}},
	}
	for _, op := range ops {
		t.Run(op.name, func(t *testing.T) {
			// The first run prepares the statements; then they are cached.
			for i := range 2 {
				if op.name == "first-write" {
					if err := s.Delete(ctx, state.DeleteRequest{Key: "k2"}); err != nil {
						t.Fatal(err)
					}
				}
				e := etag()
				before := rt.n.Load()
				if err := op.run(e); err != nil {
					t.Fatal(err)
				}
				if got := rt.n.Load() - before; i == 1 && got != op.want {
					t.Fatalf("%d round trips, want %d", got, op.want)
				}
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }
