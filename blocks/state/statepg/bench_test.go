package statepg

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/blockgate/blockgate/blocks/state"
	"github.com/blockgate/blockgate/internal/pgtest"
)

// The benchmarks compare a Store with the same statement sent by raw pgx,
// one statement per call, to a copy of the table without row-level
// security: what the tenant wall (set_config in the batch, the policy) and
// the Store's own work cost.
//
//	go test -run '^$' -bench . -benchtime 5s ./blocks/state/statepg

const benchKeys = 1000

var benchValue = []byte(`{"user":"alice","cart":[{"sku":"A-1","qty":2},{"sku":"B-7","qty":1}],"total":42.5}`)

func benchSetup(b *testing.B) (*pgxpool.Pool, *Store) {
	b.Helper()
	pool := pgtest.New(b)
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `CREATE TABLE state_raw (LIKE state INCLUDING ALL)`); err != nil {
		b.Fatal(err)
	}
	s := NewBackend(pool, nil).Open("acme", "statestore")
	for i := range benchKeys {
		key := fmt.Sprintf("app||key-%d", i)
		if err := s.Set(ctx, state.SetRequest{Key: key, Value: benchValue}); err != nil {
			b.Fatal(err)
		}
		if _, err := pool.Exec(ctx, `INSERT INTO state_raw (tenant_id, store, key, value, is_json, etag) VALUES ($1, $2, $3, $4, true, $5)`,
			"acme", "statestore", key, benchValue, rand.Text()); err != nil {
			b.Fatal(err)
		}
	}
	return pool, s
}

// parallel runs op from many goroutines, each over the keys in turn.
func parallel(b *testing.B, op func(ctx context.Context, key string) error) {
	var n atomic.Int64
	ctx := context.Background()
	b.SetParallelism(4)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			key := fmt.Sprintf("app||key-%d", n.Add(1)%benchKeys)
			if err := op(ctx, key); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkSet(b *testing.B) {
	pool, s := benchSetup(b)
	b.Run("raw", func(b *testing.B) {
		const upsert = `INSERT INTO state_raw AS s (tenant_id, store, key, value, is_json, etag, expires_at)
VALUES ($1, $2, $3, $4, $5, $6, now() + $7::bigint * interval '1 microsecond')
ON CONFLICT (tenant_id, store, key) DO UPDATE
SET value = excluded.value, is_json = excluded.is_json, etag = excluded.etag,
    expires_at = excluded.expires_at, updated_at = now()`
		parallel(b, func(ctx context.Context, key string) error {
			_, err := pool.Exec(ctx, upsert, "acme", "statestore", key, benchValue, true, rand.Text(), nil)
			return err
		})
	})
	b.Run("store", func(b *testing.B) {
		parallel(b, func(ctx context.Context, key string) error {
			return s.Set(ctx, state.SetRequest{Key: key, Value: benchValue})
		})
	})
}

func BenchmarkGet(b *testing.B) {
	pool, s := benchSetup(b)
	b.Run("raw", func(b *testing.B) {
		const get = `SELECT value, etag, expires_at FROM state_raw
WHERE tenant_id = $1 AND store = $2 AND key = $3 AND (expires_at IS NULL OR expires_at > now())`
		parallel(b, func(ctx context.Context, key string) error {
			var it state.Item
			var exp *any
			return pool.QueryRow(ctx, get, "acme", "statestore", key).Scan(&it.Value, &it.ETag, &exp)
		})
	})
	b.Run("store", func(b *testing.B) {
		parallel(b, func(ctx context.Context, key string) error {
			_, ok, err := s.Get(ctx, key)
			if err == nil && !ok {
				err = fmt.Errorf("%s not found", key)
			}
			return err
		})
	})
}

func BenchmarkSetWithETag(b *testing.B) {
	_, s := benchSetup(b)
	parallel(b, func(ctx context.Context, key string) error {
		// A read-modify-write as an SDK does it: two round trips, and a
		// retry when another goroutine got there first.
		for {
			it, _, err := s.Get(ctx, key)
			if err != nil {
				return err
			}
			err = s.Set(ctx, state.SetRequest{Key: key, Value: benchValue, ETag: &it.ETag})
			if !errors.Is(err, state.ErrETagMismatch) {
				return err
			}
		}
	})
}
