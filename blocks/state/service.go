package state

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/blockgate/blockgate/blocks"
	"github.com/blockgate/blockgate/tenants"
)

// Components finds a tenant's components. The gateway's registry cache
// implements it; it is called on every request and must be cheap and safe
// for concurrent use.
type Components interface {
	// Component returns the tenant's component called name; ok is false if
	// there is none.
	Component(ctx context.Context, tenant tenants.ID, name string) (c tenants.Component, ok bool, err error)
	// HasKind reports whether the tenant has any component of the block kind
	// ("state"), to tell "no such store" from "no store at all".
	HasKind(ctx context.Context, tenant tenants.ID, kind string) (bool, error)
}

// Opener opens the Store of one component. It must not do I/O that can
// block for long: the first request to a store waits for it.
type Opener func(c tenants.Component) (Store, error)

// Service is the state building block: it resolves the caller's store by
// name, applies Dapr's key prefixing and request rules, and calls the Store.
// It is safe for concurrent use.
type Service struct {
	components Components
	openers    map[string]Opener
	logger     *slog.Logger
	access     tenants.Access
	// writeGuard, when set, may refuse a write for the tenant's quota.
	writeGuard func(ctx context.Context, p tenants.Principal) error

	mu     sync.Mutex
	stores map[storeKey]*openStore
}

type storeKey struct {
	tenant tenants.ID
	name   string
}

type openStore struct {
	revision int64
	store    Store
	prefix   prefixMode
	outbox   *outboxConfig // nil: the outbox is off
}

// NewService returns a state service that opens stores with openers, keyed
// by component type (state.postgresql, state.in-memory).
func NewService(components Components, openers map[string]Opener, logger *slog.Logger) *Service {
	return &Service{
		components: components,
		openers:    openers,
		logger:     logger.With("block", "state"),
		stores:     make(map[storeKey]*openStore),
	}
}

// SetAccess makes the service consult a tenant access policy beyond the
// components' scopes. Call it before serving.
func (s *Service) SetAccess(a tenants.Access) { s.access = a }

// SetWriteGuard makes every write (a save, or a transaction with an
// upsert) ask guard first; a non-nil error refuses it. The gateway uses it
// for the tenant's state storage quota. Call it before serving.
func (s *Service) SetWriteGuard(guard func(ctx context.Context, p tenants.Principal) error) {
	s.writeGuard = guard
}

// Types lists the component types the service can open.
func (s *Service) Types() []string {
	out := make([]string, 0, len(s.openers))
	for t := range s.openers {
		out = append(out, t)
	}
	return out
}

// ValidateComponent checks a state component before it is stored, so that a
// bad one is refused when applied rather than when first used.
func (s *Service) ValidateComponent(c tenants.Component) error {
	if _, ok := s.openers[c.Type]; !ok {
		return fmt.Errorf("component %s: unsupported state store type %q (supported: %s)", c.Name, c.Type, strings.Join(s.Types(), ", "))
	}
	if _, err := parsePrefixMode(c); err != nil {
		return err
	}
	if _, err := parseOutbox(c); err != nil {
		return err
	}
	return nil
}

// Capabilities lists the Dapr features of a state component type, as the
// metadata API reports them.
func (s *Service) Capabilities(c tenants.Component) []string {
	if _, ok := s.openers[c.Type]; !ok {
		return nil
	}
	// Both built-in stores have every optional interface; a store that lacks
	// one would need its capabilities probed from an opened instance.
	return []string{"ETAG", "TRANSACTIONAL", "TTL", "QUERY_API", "ACTOR"}
}

// store resolves name for the caller, opening it on first use and again
// whenever the component's revision changes.
func (s *Service) store(ctx context.Context, p tenants.Principal, name string) (*openStore, error) {
	if name == "" {
		return nil, errMalformed("state store name is empty")
	}
	c, ok, err := s.components.Component(ctx, p.Tenant, name)
	if err != nil {
		return nil, blocks.ErrUnavailable("the component registry", err)
	}
	if ok && c.Kind() == "state" && c.InScope(p.AppID) && s.access != nil {
		if err := s.access.Component(ctx, p, c); err != nil {
			var be *blocks.Error
			if errors.As(err, &be) && be.Kind == blocks.Unavailable {
				return nil, be
			}
			ok = false // refused by policy: as if out of scope
		}
	}
	if !ok || c.Kind() != "state" || !c.InScope(p.AppID) {
		if any, err := s.components.HasKind(ctx, p.Tenant, "state"); err == nil && !any {
			return nil, errStoresNotConfigured()
		}
		return nil, errStoreNotFound(name)
	}
	k := storeKey{p.Tenant, name}
	s.mu.Lock()
	defer s.mu.Unlock()
	if st, ok := s.stores[k]; ok && st.revision == c.Revision {
		return st, nil
	}
	open, ok := s.openers[c.Type]
	if !ok {
		return nil, errStoreNotFound(name).WithCause(fmt.Errorf("no opener for type %s", c.Type))
	}
	mode, err := parsePrefixMode(c)
	if err != nil {
		return nil, errStoreNotFound(name).WithCause(err)
	}
	outbox, err := parseOutbox(c)
	if err != nil {
		return nil, errStoreNotFound(name).WithCause(err)
	}
	impl, err := open(c)
	if err != nil {
		return nil, errStore("open", "ERR_STATE_STORE_NOT_FOUND", name, err)
	}
	st := &openStore{revision: c.Revision, store: impl, prefix: mode, outbox: outbox}
	s.stores[k] = st
	return st, nil
}

// SetItem is one item of a save request, as the transports decode it.
type SetItem struct {
	Key      string
	Value    []byte
	ETag     *string
	Options  Options
	Metadata map[string]string
}

// DeleteItem is one item of a delete request.
type DeleteItem struct {
	Key      string
	ETag     *string
	Options  Options
	Metadata map[string]string
}

// Options are Dapr's per-item state options.
type Options struct {
	Concurrency string // "", first-write, last-write
	Consistency string // "", strong, eventual
}

func (o Options) validate() (firstWrite bool, err error) {
	switch o.Concurrency {
	case "", "last-write":
	case "first-write":
		firstWrite = true
	default:
		return false, errMalformed("invalid concurrency %q: use first-write or last-write", o.Concurrency)
	}
	switch o.Consistency {
	case "", "strong", "eventual":
	default:
		return false, errMalformed("invalid consistency %q: use strong or eventual", o.Consistency)
	}
	return firstWrite, nil
}

// ttl reads metadata.ttlInSeconds: absent, 0 or -1 mean no expiry.
func ttl(md map[string]string) (time.Duration, error) {
	v, ok := md["ttlInSeconds"]
	if !ok || v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < -1 || n > 1<<31 {
		return 0, errMalformed("invalid ttlInSeconds %q: use a whole number of seconds, or -1 for no expiry", v)
	}
	if n <= 0 {
		return 0, nil
	}
	return time.Duration(n) * time.Second, nil
}

func (st *openStore) setRequest(p tenants.Principal, name string, it SetItem) (SetRequest, error) {
	key, err := st.prefix.key(p, name, it.Key)
	if err != nil {
		return SetRequest{}, err
	}
	fw, err := it.Options.validate()
	if err != nil {
		return SetRequest{}, err
	}
	d, err := ttl(it.Metadata)
	if err != nil {
		return SetRequest{}, err
	}
	return SetRequest{Key: key, Value: it.Value, ETag: nonEmpty(it.ETag), FirstWrite: fw, TTL: d}, nil
}

func (st *openStore) deleteRequest(p tenants.Principal, name string, it DeleteItem) (DeleteRequest, error) {
	key, err := st.prefix.key(p, name, it.Key)
	if err != nil {
		return DeleteRequest{}, err
	}
	fw, err := it.Options.validate()
	if err != nil {
		return DeleteRequest{}, err
	}
	return DeleteRequest{Key: key, ETag: nonEmpty(it.ETag), FirstWrite: fw}, nil
}

// nonEmpty treats an empty ETag as none, as Dapr does.
func nonEmpty(etag *string) *string {
	if etag != nil && *etag == "" {
		return nil
	}
	return etag
}

// Save writes items. More than one item is written atomically when the
// store supports transactions.
func (s *Service) Save(ctx context.Context, p tenants.Principal, name string, items []SetItem) error {
	st, err := s.store(ctx, p, name)
	if err != nil {
		return err
	}
	if s.writeGuard != nil && len(items) > 0 {
		if err := s.writeGuard(ctx, p); err != nil {
			return err
		}
	}
	reqs := make([]SetRequest, len(items))
	for i, it := range items {
		if reqs[i], err = st.setRequest(p, name, it); err != nil {
			return err
		}
	}
	switch {
	case len(reqs) == 0:
		return nil
	case len(reqs) == 1:
		err = st.store.Set(ctx, reqs[0])
	default:
		if tx, ok := st.store.(Transactor); ok {
			ops := make([]Operation, len(reqs))
			for i := range reqs {
				ops[i] = Operation{Set: &reqs[i]}
			}
			err = tx.Transact(ctx, ops)
		} else {
			for _, r := range reqs {
				if err = st.store.Set(ctx, r); err != nil {
					break
				}
			}
		}
	}
	if err != nil {
		return errStore("save", "ERR_STATE_SAVE", name, err)
	}
	return nil
}

// GetResult is an item as the API returns it. Found is false for a key with
// no value (HTTP 204, empty gRPC data).
type GetResult struct {
	Key      string
	Found    bool
	Value    []byte
	ETag     string
	Metadata map[string]string
	// Error is set per key in bulk gets.
	Error string
}

func resultOf(key string, it Item) GetResult {
	r := GetResult{Key: key, Found: true, Value: it.Value, ETag: it.ETag}
	if !it.ExpiresAt.IsZero() {
		r.Metadata = map[string]string{"ttlExpireTime": it.ExpiresAt.UTC().Format(time.RFC3339)}
	}
	return r
}

// Get reads one key.
func (s *Service) Get(ctx context.Context, p tenants.Principal, name, key string, opts Options) (GetResult, error) {
	st, err := s.store(ctx, p, name)
	if err != nil {
		return GetResult{}, err
	}
	if _, err := opts.validate(); err != nil {
		return GetResult{}, err
	}
	full, err := st.prefix.key(p, name, key)
	if err != nil {
		return GetResult{}, err
	}
	it, ok, err := st.store.Get(ctx, full)
	if err != nil {
		return GetResult{}, errStore("get", "ERR_STATE_GET", name, err)
	}
	if !ok {
		return GetResult{Key: key}, nil
	}
	return resultOf(key, it), nil
}

// BulkGet reads keys in one call; results keep the order of keys and include
// keys with no value (Found false).
func (s *Service) BulkGet(ctx context.Context, p tenants.Principal, name string, keys []string) ([]GetResult, error) {
	st, err := s.store(ctx, p, name)
	if err != nil {
		return nil, err
	}
	full := make([]string, len(keys))
	for i, k := range keys {
		if full[i], err = st.prefix.key(p, name, k); err != nil {
			return nil, err
		}
	}
	found := make(map[string]Item, len(keys))
	if bg, ok := st.store.(BulkGetter); ok {
		items, err := bg.BulkGet(ctx, full)
		if err != nil {
			return nil, errStore("get", "ERR_STATE_BULK_GET", name, err)
		}
		for _, it := range items {
			found[it.Key] = it
		}
	} else {
		for _, k := range full {
			it, ok, err := st.store.Get(ctx, k)
			if err != nil {
				return nil, errStore("get", "ERR_STATE_BULK_GET", name, err)
			}
			if ok {
				found[k] = it
			}
		}
	}
	out := make([]GetResult, len(keys))
	for i, k := range keys {
		if it, ok := found[full[i]]; ok {
			out[i] = resultOf(k, it)
		} else {
			out[i] = GetResult{Key: k}
		}
	}
	return out, nil
}

// Delete removes items. More than one item is removed atomically when the
// store supports transactions.
func (s *Service) Delete(ctx context.Context, p tenants.Principal, name string, items []DeleteItem) error {
	st, err := s.store(ctx, p, name)
	if err != nil {
		return err
	}
	reqs := make([]DeleteRequest, len(items))
	for i, it := range items {
		if reqs[i], err = st.deleteRequest(p, name, it); err != nil {
			return err
		}
	}
	switch {
	case len(reqs) == 0:
		return nil
	case len(reqs) == 1:
		err = st.store.Delete(ctx, reqs[0])
	default:
		if tx, ok := st.store.(Transactor); ok {
			ops := make([]Operation, len(reqs))
			for i := range reqs {
				ops[i] = Operation{Delete: &reqs[i]}
			}
			err = tx.Transact(ctx, ops)
		} else {
			for _, r := range reqs {
				if err = st.store.Delete(ctx, r); err != nil {
					break
				}
			}
		}
	}
	if err != nil {
		return errStore("delete", "ERR_STATE_DELETE", name, err)
	}
	return nil
}

// TxOperation is one operation of a transaction request: Operation is
// "upsert" or "delete"; Item carries the key, value, ETag, options and
// metadata (the value is ignored for deletes).
type TxOperation struct {
	Operation string
	Item      SetItem
}

// Transact applies ops atomically. On a store whose component configures
// the transactional outbox (outboxPublishPubsub, outboxPublishTopic), every
// upsert also publishes its value, once the transaction commits and only
// then; see outbox.go.
func (s *Service) Transact(ctx context.Context, p tenants.Principal, name string, ops []TxOperation) error {
	st, err := s.store(ctx, p, name)
	if err != nil {
		return err
	}
	if s.writeGuard != nil && slices.ContainsFunc(ops, func(o TxOperation) bool { return o.Operation == "upsert" }) {
		if err := s.writeGuard(ctx, p); err != nil {
			return err
		}
	}
	if st.outbox != nil {
		return s.transactOutbox(ctx, p, name, st, ops)
	}
	tx, ok := st.store.(Transactor)
	if !ok {
		return errNotSupported(name, "transactions")
	}
	reqs := make([]Operation, len(ops))
	for i, op := range ops {
		if reqs[i], err = st.operation(p, name, op); err != nil {
			return err
		}
	}
	if len(reqs) == 0 {
		return nil
	}
	if err := tx.Transact(ctx, reqs); err != nil {
		return errStore("execute the transaction on", "ERR_STATE_TRANSACTION", name, err)
	}
	return nil
}

// operation turns one operation of a transaction request into the store's.
func (st *openStore) operation(p tenants.Principal, name string, op TxOperation) (Operation, error) {
	switch op.Operation {
	case "upsert":
		r, err := st.setRequest(p, name, op.Item)
		if err != nil {
			return Operation{}, err
		}
		return Operation{Set: &r}, nil
	case "delete":
		r, err := st.deleteRequest(p, name, DeleteItem{Key: op.Item.Key, ETag: op.Item.ETag, Options: op.Item.Options, Metadata: op.Item.Metadata})
		if err != nil {
			return Operation{}, err
		}
		return Operation{Delete: &r}, nil
	}
	return Operation{}, errUnsupportedOperation(op.Operation)
}

// QueryResponse is a page of query results, with the caller's own keys.
type QueryResponse struct {
	Results []GetResult
	Token   string
}

// Query runs the alpha query API over the caller's keys. raw is Dapr's JSON
// query document.
func (s *Service) Query(ctx context.Context, p tenants.Principal, name string, raw []byte) (QueryResponse, error) {
	st, err := s.store(ctx, p, name)
	if err != nil {
		return QueryResponse{}, err
	}
	qr, ok := st.store.(Querier)
	if !ok {
		return QueryResponse{}, errNotSupported(name, "the query API")
	}
	q, err := ParseQuery(raw)
	if err != nil {
		return QueryResponse{}, err
	}
	prefix, err := st.prefix.apply(p, name, "")
	if err != nil {
		return QueryResponse{}, err
	}
	res, err := qr.Query(ctx, prefix, q)
	if err != nil {
		return QueryResponse{}, errStore("query", "ERR_STATE_QUERY", name, err)
	}
	out := QueryResponse{Token: res.Token, Results: make([]GetResult, len(res.Items))}
	for i, it := range res.Items {
		out.Results[i] = resultOf(strings.TrimPrefix(it.Key, prefix), it)
	}
	return out, nil
}
