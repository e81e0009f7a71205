package state

import (
	"context"
	"errors"
	"time"

	"github.com/blockgate/blockgate/blocks/pubsub"
)

// Store is one state component of one tenant: state.postgresql and
// state.in-memory implement it. Keys reach a Store already prefixed (see
// KeyPrefix); a Store never sees another tenant's or component's keys.
//
// All methods may be called concurrently. Returned slices and Items belong to
// the caller.
type Store interface {
	// Get returns the item at key; ok is false when there is none or it has
	// expired.
	Get(ctx context.Context, key string) (item Item, ok bool, err error)
	// Set writes one item under the concurrency rules of SetRequest.
	// A failed ETag check returns ErrETagMismatch and changes nothing.
	Set(ctx context.Context, req SetRequest) error
	// Delete removes one item. Deleting a missing key without an ETag is not
	// an error; with an ETag it is ErrETagMismatch.
	Delete(ctx context.Context, req DeleteRequest) error
}

// BulkGetter is a Store that reads many keys in one round trip. Missing keys
// are absent from the result.
type BulkGetter interface {
	BulkGet(ctx context.Context, keys []string) ([]Item, error)
}

// Transactor is a Store that applies operations atomically: all of them or
// none. An ETag failure in any operation returns ErrETagMismatch and rolls
// the whole transaction back.
type Transactor interface {
	Transact(ctx context.Context, ops []Operation) error
}

// OutboxTransactor is a Store with a transactional outbox: it applies ops
// atomically, as Transactor does, and records msgs for its relay in the
// same transaction, so that the messages are published if and only if the
// operations commit. A failed check (ErrETagMismatch) or any other error
// leaves neither state nor messages behind.
//
// Every message names the store's tenant. A message whose ID is already
// waiting in the outbox is the same message and is recorded once. The
// relay (stateoutbox.Run over the store's queue) publishes the messages
// after the commit, at least once. msgs and their byte slices must not be
// changed by the caller afterwards.
type OutboxTransactor interface {
	TransactWithOutbox(ctx context.Context, ops []Operation, msgs []pubsub.Message) error
}

// Querier is a Store that serves the query API over JSON values whose keys
// start with prefix. Keys in the result keep the prefix.
type Querier interface {
	Query(ctx context.Context, prefix string, q Query) (QueryResult, error)
}

// Errors a Store wraps so that the service can answer with the right status.
var (
	// ErrETagMismatch: an ETag (or first-write) check failed; nothing changed.
	ErrETagMismatch = errors.New("etag mismatch")
	// ErrUnavailable: the backing database cannot be reached right now.
	ErrUnavailable = errors.New("state backend unavailable")
	// ErrInvalidQuery: the query cannot be run as asked (bad page token,
	// unknown operator); the caller must change it.
	ErrInvalidQuery = errors.New("invalid query")
)

// Item is a stored value.
type Item struct {
	Key   string
	Value []byte
	ETag  string
	// ExpiresAt is zero for items without a TTL.
	ExpiresAt time.Time
}

// SetRequest writes Value at Key.
//
// Concurrency follows Dapr: when ETag is set, the write happens only if the
// stored ETag equals it (whatever the concurrency mode); when ETag is nil and
// FirstWrite is set, the write happens only if the key does not exist;
// otherwise the last write wins.
type SetRequest struct {
	Key        string
	Value      []byte
	ETag       *string
	FirstWrite bool
	// TTL is how long the item lives; zero means forever.
	TTL time.Duration
}

// DeleteRequest removes Key, under the same ETag rule as SetRequest.
type DeleteRequest struct {
	Key        string
	ETag       *string
	FirstWrite bool
}

// Operation is one step of a transaction: exactly one of Set and Delete.
type Operation struct {
	Set    *SetRequest
	Delete *DeleteRequest
}

// Query is the alpha state query: a filter tree, a sort order and a page.
type Query struct {
	Filter *Filter
	Sort   []Sort
	// Limit is the page size; zero means no limit.
	Limit int
	// Token continues a previous page; it is opaque to callers.
	Token string
}

// Filter is one node of a query filter. Op is EQ or IN (with Key and
// Values: one value for EQ) or AND or OR (with Children). Key is a dot path
// into the JSON value, such as "person.org".
type Filter struct {
	Op       string
	Key      string
	Values   []any
	Children []Filter
}

// Sort orders query results by the JSON value at Key.
type Sort struct {
	Key  string
	Desc bool
}

// QueryResult is one page of query results; Token is empty on the last page.
type QueryResult struct {
	Items []Item
	Token string
}
