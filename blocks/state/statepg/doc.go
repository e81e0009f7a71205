// Package statepg implements state.postgresql: every tenant's state
// components in one shared Postgres table.
//
// # One table
//
// All tenants and all of their state.postgresql components live in the table
// state (migrations/002_state.sql), keyed by (tenant_id, store, key). A
// Backend holds the gateway's pool; Open hands out a Store for one tenant's
// component without any I/O, so the gateway can open stores per request.
// Adding a tenant or a component creates nothing in the database.
//
// # Two walls between tenants
//
// Every statement filters on tenant_id and store explicitly: that is the
// first wall, and it is what lets the planner use the primary key. Row-level
// security is the second: the table's policy admits only rows of the tenant
// named by the transaction-local setting blockgate.tenant, so a statement
// that forgot its filter, or ran with the wrong one, still sees nothing of
// another tenant. The gateway connects as a role that does not bypass RLS.
//
// # One round trip per operation
//
// Each operation is a pgx.Batch of two statements: SELECT set_config(
// 'blockgate.tenant', $1, true), then the real statement. A batch sent
// outside a transaction runs as one implicit transaction in the extended
// protocol (one Sync at the end), so the setting is transaction-local to
// exactly this operation and is gone when the connection returns to the pool;
// the tests show both. Statements go through pgx's statement cache, so after
// the first use on a connection a Get, Set or Delete costs one round trip
// and no parse. Sets need no RETURNING and no prior SELECT:
//
//   - with an ETag: UPDATE … WHERE etag = $x (no row → ErrETagMismatch);
//   - first-write without an ETag: INSERT … ON CONFLICT DO UPDATE … WHERE the
//     existing row has expired (no row → ErrETagMismatch);
//   - otherwise an upsert.
//
// A transaction whose operations carry no ETag and no first-write cannot
// fail a check, so it is one batch too: the implicit transaction makes it
// atomic. One with checks is a batch that begins an explicit transaction
// (pgx.Batch.BeginTx), runs set_config and every statement, and then commits,
// or rolls back at the first failed check: two round trips.
//
// # ETags
//
// ETags are generated in Go, 128 random bits (crypto/rand.Text), so a write
// needs nothing back from the server and an ETag is never reused, not even
// after a delete and recreate.
//
// # TTL
//
// A TTL sets expires_at = now() + TTL, on the database's clock, which every
// gateway node shares. Reads ignore rows whose expires_at has passed, and
// every write treats them as absent, so expiry is exact whether or not the
// row is still there. Backend.Sweep deletes expired rows of all tenants under
// the platform scope (blockgate.scope = 'platform'), in batches of bounded
// size locked with SKIP LOCKED, so that several gateway nodes may sweep at
// once; Backend.Run sweeps periodically.
//
// # Transactional outbox
//
// TransactWithOutbox is Transact plus one more statement in the same batch,
// and so in the same transaction: a single INSERT … SELECT FROM unnest(…)
// of all the transaction's messages into the table outbox
// (migrations/004_outbox.sql), followed by pg_notify('blockgate_outbox').
// It costs no extra round trip. A check that fails rolls the outbox rows
// back with everything else, and the notification is only delivered on
// commit. A message id that is already waiting is not inserted again.
//
// Backend.RunRelay drains the table for every tenant (package stateoutbox
// has the loop): in a transaction under the platform scope it locks up to a
// batch of due rows with FOR UPDATE SKIP LOCKED, publishes them to the
// broker, deletes those the broker acknowledged, reschedules the rest
// (attempts + 1, next_attempt_at in the future), and commits. Several nodes
// relay at once without publishing a row twice; a node that dies mid-batch
// only releases its locks, and the rows are published again by someone
// else, which the broker drops as duplicates of the same id. One pooled
// connection per node LISTENs on blockgate_outbox, so a committed message
// is relayed at once; a poll every two seconds covers lost notifications.
//
// # Query
//
// The query API reads JSON values only: is_json records at write time
// whether a value is JSON that Postgres' jsonb accepts. A query compiles its
// filter to SQL over convert_from(value, 'UTF8')::jsonb, with every value,
// path and prefix passed as a parameter: EQ compares jsonb values, IN uses
// = ANY, dot paths become text[] for #>, sorting is by jsonb order then key,
// and a page token is the decimal offset of the next page.
package statepg
