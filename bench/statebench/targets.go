package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log"
	"time"

	commonv1 "github.com/dapr/dapr/pkg/proto/common/v1"
	runtimev1 "github.com/dapr/dapr/pkg/proto/runtime/v1"
	dapr "github.com/dapr/go-sdk/client"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
)

// What dev mode creates, and how the state service prefixes keys by
// default (Dapr's keyPrefix appid: "<app-id>||<key>").
const (
	devTenant  = "default"
	devApp     = "app1"
	storeName  = "statestore"
	rawSchema  = "statebench"
	keyPrefix  = devApp + "||"
	poolMaxMin = 32 // gateway.go raises the pool's MaxConns to at least this
)

// The baseline's statements are the gateway's (blocks/state/statepg) with
// the table swapped: one upsert, one select by primary key.
const (
	rawUpsertSQL = `INSERT INTO ` + rawSchema + `.state AS s (tenant_id, store, key, value, is_json, etag, expires_at)
VALUES ($1, $2, $3, $4, $5, $6, now() + $7::bigint * interval '1 microsecond')
ON CONFLICT (tenant_id, store, key) DO UPDATE
SET value = excluded.value, is_json = excluded.is_json, etag = excluded.etag,
    expires_at = excluded.expires_at, updated_at = now()`

	rawGetSQL = `SELECT value, etag, expires_at FROM ` + rawSchema + `.state
WHERE tenant_id = $1 AND store = $2 AND key = $3 AND (expires_at IS NULL OR expires_at > now())`
)

// target is one side of the comparison. save and get may be called
// concurrently; worker is the caller's index in [0, clients) and key an
// index into the keyspace. get fails unless it finds the full value.
type target interface {
	save(ctx context.Context, worker, key int) error
	get(ctx context.Context, worker, key int) error
	close() error
}

// keyNames returns the keyspace's names with prefix.
func keyNames(n int, prefix string) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("%sk-%06d", prefix, i)
	}
	return keys
}

// rawTarget is the baseline: the gateway's statements sent by pgx to a copy
// of the state table without row-level security.
type rawTarget struct {
	pool  *pgxpool.Pool
	keys  []string
	value []byte
}

// newRawTarget creates the baseline table next to the gateway's (which the
// gateway has migrated by now) and a pool like the gateway's.
func newRawTarget(ctx context.Context, pgURL string, keys int, value []byte) (*rawTarget, error) {
	cfg, err := pgxpool.ParseConfig(pgURL)
	if err != nil {
		return nil, err
	}
	cfg.MaxConns = max(cfg.MaxConns, poolMaxMin)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connecting to Postgres: %w", err)
	}
	// LIKE ... INCLUDING ALL copies columns, defaults, the primary key and
	// the expiry index, but not row-level security or its policy.
	ddl := `CREATE SCHEMA ` + rawSchema + `;
CREATE TABLE ` + rawSchema + `.state (LIKE public.state INCLUDING ALL)`
	if _, err := pool.Exec(ctx, ddl); err != nil {
		pool.Close()
		return nil, fmt.Errorf("creating the baseline table: %w", err)
	}
	var gwRLS, rawRLS bool
	if err := pool.QueryRow(ctx, `SELECT
  (SELECT relrowsecurity AND relforcerowsecurity FROM pg_class WHERE oid = 'public.state'::regclass),
  (SELECT relrowsecurity FROM pg_class WHERE oid = '`+rawSchema+`.state'::regclass)`).Scan(&gwRLS, &rawRLS); err != nil {
		pool.Close()
		return nil, err
	}
	if !gwRLS || rawRLS {
		pool.Close()
		return nil, fmt.Errorf("expected row-level security on public.state only; got public.state %v, %s.state %v", gwRLS, rawSchema, rawRLS)
	}
	return &rawTarget{pool: pool, keys: keyNames(keys, keyPrefix), value: value}, nil
}

func (t *rawTarget) save(ctx context.Context, _, key int) error {
	// A new etag per write, as the gateway makes one (statepg newETag).
	_, err := t.pool.Exec(ctx, rawUpsertSQL, devTenant, storeName, t.keys[key], t.value, true, rand.Text(), nil)
	return err
}

func (t *rawTarget) get(ctx context.Context, _, key int) error {
	var value []byte
	var etag string
	var expires *time.Time
	if err := t.pool.QueryRow(ctx, rawGetSQL, devTenant, storeName, t.keys[key]).Scan(&value, &etag, &expires); err != nil {
		return err
	}
	return checkValue(t.keys[key], value, len(t.value))
}

func (t *rawTarget) close() error {
	t.pool.Close()
	return nil
}

func checkValue(key string, got []byte, want int) error {
	if len(got) != want {
		return fmt.Errorf("get %s: %d bytes, want %d", key, len(got), want)
	}
	return nil
}

// sdkTarget calls the gateway through the official Go SDK.
type sdkTarget struct {
	clients []*dapr.GRPCClient // one per worker, or one shared
	keys    []string
	value   []byte
}

func newSDKTarget(ctx context.Context, addr, token string, n, keys int, value []byte) (*sdkTarget, error) {
	// The SDK logs every client it makes to stdout, which holds the table.
	dapr.SetLogger(log.New(io.Discard, "", 0))
	t := &sdkTarget{keys: keyNames(keys, ""), value: value}
	for range n {
		c, err := dapr.NewClientWithAddressContext(ctx, addr)
		if err != nil {
			t.close()
			return nil, fmt.Errorf("connecting the Go SDK to %s: %w", addr, err)
		}
		gc := c.(*dapr.GRPCClient)
		gc.WithAuthToken(token)
		t.clients = append(t.clients, gc)
	}
	return t, nil
}

func (t *sdkTarget) save(ctx context.Context, worker, key int) error {
	return t.clients[worker%len(t.clients)].SaveState(ctx, storeName, t.keys[key], t.value, nil)
}

func (t *sdkTarget) get(ctx context.Context, worker, key int) error {
	it, err := t.clients[worker%len(t.clients)].GetState(ctx, storeName, t.keys[key], nil)
	if err != nil {
		return err
	}
	return checkValue(t.keys[key], it.Value, len(t.value))
}

func (t *sdkTarget) close() error {
	for _, c := range t.clients {
		c.Close()
	}
	return nil
}

// grpcTarget calls the gateway through the generated client, with the app
// token as dapr-api-token metadata: the SDK minus its own work.
type grpcTarget struct {
	conns   []*grpc.ClientConn
	clients []runtimev1.DaprClient
	token   string
	keys    []string
	value   []byte
}

func newGRPCTarget(addr, token string, n, keys int, value []byte) (*grpcTarget, error) {
	t := &grpcTarget{token: token, keys: keyNames(keys, ""), value: value}
	for range n {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.close()
			return nil, fmt.Errorf("connecting to %s: %w", addr, err)
		}
		t.conns = append(t.conns, conn)
		t.clients = append(t.clients, runtimev1.NewDaprClient(conn))
	}
	return t, nil
}

func (t *grpcTarget) save(ctx context.Context, worker, key int) error {
	ctx = metadata.AppendToOutgoingContext(ctx, "dapr-api-token", t.token)
	_, err := t.clients[worker%len(t.clients)].SaveState(ctx, &runtimev1.SaveStateRequest{
		StoreName: storeName,
		States:    []*commonv1.StateItem{{Key: t.keys[key], Value: t.value}},
	})
	return err
}

func (t *grpcTarget) get(ctx context.Context, worker, key int) error {
	ctx = metadata.AppendToOutgoingContext(ctx, "dapr-api-token", t.token)
	res, err := t.clients[worker%len(t.clients)].GetState(ctx, &runtimev1.GetStateRequest{StoreName: storeName, Key: t.keys[key]})
	if err != nil {
		return err
	}
	return checkValue(t.keys[key], res.GetData(), len(t.value))
}

func (t *grpcTarget) close() error {
	var errs []error
	for _, c := range t.conns {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}
