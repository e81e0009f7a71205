// Package statetest is the conformance suite every state.Store passes:
// statemem and statepg alike run Run against their own stores.
//
// The suite gives each subtest tenants of its own (fresh tenant IDs), so an
// Opener may share one backend, one database or one registry of stores
// across the whole run, and subtests run in parallel. Tenant and component
// isolation are part of the contract, tested like every other rule.
package statetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/blockgate/blockgate/blocks/state"
	"github.com/blockgate/blockgate/tenants"
)

// Opener opens the store of one tenant's component; called many times per
// test with different tenants/names. Opening the same tenant and name twice
// within a run must give views of the same data; a tenant the suite has not
// used before must start empty (the suite never reuses tenant IDs).
type Opener func(t *testing.T, tenant tenants.ID, name string) state.Store

// runID keeps tenant IDs unique across Runs that share a backend.
var (
	runID   = strings.ToLower(rand.Text()[:6])
	tenantN atomic.Int64
)

// h is what each subtest gets: a way to open stores in tenants of its own.
type h struct {
	open Opener
}

// tenant returns a tenant ID no other subtest uses.
func (h *h) tenant() tenants.ID {
	return tenants.ID(fmt.Sprintf("st-%s-%d", runID, tenantN.Add(1)))
}

// store opens the "statestore" component of a fresh tenant.
func (h *h) store(t *testing.T) state.Store {
	t.Helper()
	return h.open(t, h.tenant(), "statestore")
}

// Run runs the conformance suite against the stores open returns.
func Run(t *testing.T, open Opener) {
	tests := []struct {
		name string
		run  func(t *testing.T, h *h)
	}{
		{"SetGetRoundTrip", testSetGetRoundTrip},
		{"GetMissing", testGetMissing},
		{"OverwriteChangesETag", testOverwriteChangesETag},
		{"SetETag", testSetETag},
		{"DeleteETag", testDeleteETag},
		{"FirstWrite", testFirstWrite},
		{"DeleteMissing", testDeleteMissing},
		{"ETagNotReused", testETagNotReused},
		{"TTL", testTTL},
		{"TTLZeroIsForever", testTTLZeroIsForever},
		{"BulkGet", testBulkGet},
		{"Transaction", testTransaction},
		{"TransactionRollback", testTransactionRollback},
		{"Query", testQuery},
		{"QuerySort", testQuerySort},
		{"QueryPaging", testQueryPaging},
		{"QueryScope", testQueryScope},
		{"QueryErrors", testQueryErrors},
		{"QueryOddJSON", testQueryOddJSON},
		{"TenantIsolation", testTenantIsolation},
		{"ComponentIsolation", testComponentIsolation},
		{"ConcurrentIncrement", testConcurrentIncrement},
		{"ConcurrentFirstWrite", testConcurrentFirstWrite},
		{"Keys", testKeys},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, &h{open: open})
		})
	}
}

// Fuzz checks that an arbitrary key and value either round-trip through
// Set, Get, BulkGet and Delete or are refused with an error, and never
// panic. Call it from a FuzzXxx function; it adds its own seed corpus.
func Fuzz(f *testing.F, open Opener) {
	for _, seed := range []struct {
		key   string
		value []byte
	}{
		{"app||key", []byte(`{"a":1}`)},
		{"", nil},
		{"100%_\\'\"||", []byte{0, 1, 2, 0xff}},
		{"ключ🔑", []byte(`"\u0000"`)},
		{"nul\x00key", []byte("x")},
		{"bad\xffutf8", []byte(`[1e999999]`)},
		{strings.Repeat("k", 1000), bytes.Repeat([]byte("["), 2000)},
	} {
		f.Add(seed.key, seed.value)
	}
	h := &h{open: open}
	f.Fuzz(func(t *testing.T, key string, value []byte) {
		ctx := t.Context()
		s := h.store(t)
		if err := s.Set(ctx, state.SetRequest{Key: key, Value: value}); err != nil {
			if errors.Is(err, state.ErrETagMismatch) {
				t.Fatalf("Set without ETag = %v", err)
			}
			return // refused: fine, as long as it did not panic
		}
		it, ok, err := s.Get(ctx, key)
		if err != nil || !ok {
			t.Fatalf("Get after Set = ok %v, %v", ok, err)
		}
		if !bytes.Equal(it.Value, value) || it.Key != key {
			t.Fatalf("Get = %q %q, want %q %q", it.Key, it.Value, key, value)
		}
		if bg, ok := s.(state.BulkGetter); ok {
			items, err := bg.BulkGet(ctx, []string{key})
			if err != nil || len(items) != 1 || !bytes.Equal(items[0].Value, value) {
				t.Fatalf("BulkGet = %v, %v", items, err)
			}
		}
		if q, ok := s.(state.Querier); ok {
			if _, err := q.Query(ctx, key, state.Query{}); err != nil {
				t.Fatalf("Query with the key as prefix: %v", err)
			}
		}
		if err := s.Delete(ctx, state.DeleteRequest{Key: key, ETag: &it.ETag}); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		if _, ok, err := s.Get(ctx, key); ok || err != nil {
			t.Fatalf("Get after Delete = ok %v, %v", ok, err)
		}
	})
}

// ---- helpers ----

func ptr[T any](v T) *T { return &v }

func set(t *testing.T, s state.Store, key, value string) {
	t.Helper()
	if err := s.Set(t.Context(), state.SetRequest{Key: key, Value: []byte(value)}); err != nil {
		t.Fatalf("Set(%q): %v", key, err)
	}
}

func get(t *testing.T, s state.Store, key string) (state.Item, bool) {
	t.Helper()
	it, ok, err := s.Get(t.Context(), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	if ok && it.Key != key {
		t.Fatalf("Get(%q) returned key %q", key, it.Key)
	}
	return it, ok
}

// mustGet reads key, which must exist, and returns its item.
func mustGet(t *testing.T, s state.Store, key string) state.Item {
	t.Helper()
	it, ok := get(t, s, key)
	if !ok {
		t.Fatalf("Get(%q): not found", key)
	}
	if it.ETag == "" {
		t.Fatalf("Get(%q): empty ETag", key)
	}
	return it
}

func wantValue(t *testing.T, s state.Store, key, want string) state.Item {
	t.Helper()
	it := mustGet(t, s, key)
	if string(it.Value) != want {
		t.Fatalf("Get(%q) = %q, want %q", key, it.Value, want)
	}
	return it
}

func wantMissing(t *testing.T, s state.Store, key string) {
	t.Helper()
	if it, ok := get(t, s, key); ok {
		t.Fatalf("Get(%q) = %q, want not found", key, it.Value)
	}
}

func wantMismatch(t *testing.T, err error, what string) {
	t.Helper()
	if !errors.Is(err, state.ErrETagMismatch) {
		t.Fatalf("%s: err = %v, want ErrETagMismatch", what, err)
	}
}

func wantOK(t *testing.T, err error, what string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, within)
		}
		select {
		case <-t.Context().Done():
			t.Fatalf("%s: %v", what, t.Context().Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func bulkGetter(t *testing.T, s state.Store) state.BulkGetter {
	t.Helper()
	bg, ok := s.(state.BulkGetter)
	if !ok {
		t.Skip("store does not implement state.BulkGetter")
	}
	return bg
}

func transactor(t *testing.T, s state.Store) state.Transactor {
	t.Helper()
	tx, ok := s.(state.Transactor)
	if !ok {
		t.Skip("store does not implement state.Transactor")
	}
	return tx
}

func querier(t *testing.T, s state.Store) state.Querier {
	t.Helper()
	q, ok := s.(state.Querier)
	if !ok {
		t.Skip("store does not implement state.Querier")
	}
	return q
}

func bulkKeys(t *testing.T, bg state.BulkGetter, keys ...string) map[string]string {
	t.Helper()
	items, err := bg.BulkGet(t.Context(), keys)
	if err != nil {
		t.Fatalf("BulkGet(%q): %v", keys, err)
	}
	out := make(map[string]string, len(items))
	for _, it := range items {
		if _, dup := out[it.Key]; dup {
			t.Fatalf("BulkGet returned %q twice", it.Key)
		}
		out[it.Key] = string(it.Value)
	}
	return out
}

func queryKeys(t *testing.T, q state.Querier, prefix string, query state.Query) []string {
	t.Helper()
	res, err := q.Query(t.Context(), prefix, query)
	if err != nil {
		t.Fatalf("Query(%q): %v", prefix, err)
	}
	keys := make([]string, len(res.Items))
	for i, it := range res.Items {
		keys[i] = it.Key
	}
	return keys
}

// ---- basic operations ----

func testSetGetRoundTrip(t *testing.T, h *h) {
	s := h.store(t)
	tests := []struct {
		name  string
		value []byte
	}{
		{"json", []byte(`{"a": 1, "b": [true, null]}`)},
		{"json with spacing kept", []byte(" { \"x\" :\t1 }\n")},
		{"string", []byte(`"hello"`)},
		{"text", []byte("plain text")},
		{"binary", []byte{0x00, 0xff, 0xfe, 0x01, '\\', 'x', 0x00}},
		{"empty", []byte{}},
		{"nil", nil},
		{"large", bytes.Repeat([]byte("0123456789abcdef"), 64<<10)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			key := "app||" + tc.name
			wantOK(t, s.Set(t.Context(), state.SetRequest{Key: key, Value: tc.value}), "Set")
			it := mustGet(t, s, key)
			if !bytes.Equal(it.Value, tc.value) {
				t.Fatalf("value = %q, want %q", it.Value, tc.value)
			}
			if !it.ExpiresAt.IsZero() {
				t.Fatalf("ExpiresAt = %v without a TTL", it.ExpiresAt)
			}
		})
	}
	t.Run("caller owns returned value", func(t *testing.T) {
		set(t, s, "app||own", "abc")
		it := mustGet(t, s, "app||own")
		it.Value[0] = 'X'
		wantValue(t, s, "app||own", "abc")
	})
	t.Run("store does not keep caller's slice", func(t *testing.T) {
		v := []byte("abc")
		wantOK(t, s.Set(t.Context(), state.SetRequest{Key: "app||in", Value: v}), "Set")
		v[0] = 'X'
		wantValue(t, s, "app||in", "abc")
	})
}

func testGetMissing(t *testing.T, h *h) {
	s := h.store(t)
	wantMissing(t, s, "app||missing")
	set(t, s, "app||present", "1")
	wantMissing(t, s, "app||present2")
	wantMissing(t, s, "app||presen")
}

func testOverwriteChangesETag(t *testing.T, h *h) {
	s := h.store(t)
	set(t, s, "k", "v1")
	e1 := mustGet(t, s, "k").ETag
	if e := mustGet(t, s, "k").ETag; e != e1 {
		t.Fatalf("ETag changed without a write: %q then %q", e1, e)
	}
	set(t, s, "k", "v1") // same value: still a new version
	e2 := wantValue(t, s, "k", "v1").ETag
	set(t, s, "k", "v2")
	e3 := wantValue(t, s, "k", "v2").ETag
	if e1 == e2 || e2 == e3 || e1 == e3 {
		t.Fatalf("ETags %q, %q, %q: want all different", e1, e2, e3)
	}
}

func testSetETag(t *testing.T, h *h) {
	s := h.store(t)
	ctx := t.Context()
	set(t, s, "k", "v1")
	it := mustGet(t, s, "k")

	tests := []struct {
		name       string
		etag       string
		firstWrite bool
	}{
		{"stale", it.ETag + "0", false},
		{"garbage", "not-an-etag", false},
		{"empty", "", false},
		{"stale with first-write", "x" + it.ETag, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := s.Set(ctx, state.SetRequest{Key: "k", Value: []byte("bad"), ETag: ptr(tc.etag), FirstWrite: tc.firstWrite})
			wantMismatch(t, err, "Set with wrong ETag")
			after := wantValue(t, s, "k", "v1")
			if after.ETag != it.ETag {
				t.Fatalf("ETag changed after a failed Set: %q → %q", it.ETag, after.ETag)
			}
		})
	}
	t.Run("missing key", func(t *testing.T) {
		err := s.Set(ctx, state.SetRequest{Key: "nokey", Value: []byte("v"), ETag: ptr(it.ETag)})
		wantMismatch(t, err, "Set of a missing key with an ETag")
		wantMissing(t, s, "nokey")
	})
	t.Run("match", func(t *testing.T) {
		wantOK(t, s.Set(ctx, state.SetRequest{Key: "k", Value: []byte("v2"), ETag: ptr(it.ETag)}), "Set with current ETag")
		now := wantValue(t, s, "k", "v2")
		if now.ETag == it.ETag {
			t.Fatalf("ETag unchanged after a write")
		}
		err := s.Set(ctx, state.SetRequest{Key: "k", Value: []byte("v3"), ETag: ptr(it.ETag)})
		wantMismatch(t, err, "Set with the ETag just replaced")
		wantValue(t, s, "k", "v2")
	})
}

func testDeleteETag(t *testing.T, h *h) {
	s := h.store(t)
	ctx := t.Context()
	set(t, s, "k", "v1")
	it := mustGet(t, s, "k")

	wantMismatch(t, s.Delete(ctx, state.DeleteRequest{Key: "k", ETag: ptr(it.ETag + "x")}), "Delete with stale ETag")
	wantMismatch(t, s.Delete(ctx, state.DeleteRequest{Key: "k", ETag: ptr("")}), "Delete with empty ETag")
	if got := wantValue(t, s, "k", "v1"); got.ETag != it.ETag {
		t.Fatalf("ETag changed after a failed Delete")
	}
	wantOK(t, s.Delete(ctx, state.DeleteRequest{Key: "k", ETag: ptr(it.ETag)}), "Delete with current ETag")
	wantMissing(t, s, "k")
	wantMismatch(t, s.Delete(ctx, state.DeleteRequest{Key: "k", ETag: ptr(it.ETag)}), "Delete of a deleted key with its old ETag")

	// First-write without an ETag is an ordinary delete, as in Dapr.
	set(t, s, "fw", "v")
	wantOK(t, s.Delete(ctx, state.DeleteRequest{Key: "fw", FirstWrite: true}), "Delete with first-write")
	wantMissing(t, s, "fw")
}

func testFirstWrite(t *testing.T, h *h) {
	s := h.store(t)
	ctx := t.Context()
	wantOK(t, s.Set(ctx, state.SetRequest{Key: "k", Value: []byte("v1"), FirstWrite: true}), "first insert")
	first := wantValue(t, s, "k", "v1")

	wantMismatch(t, s.Set(ctx, state.SetRequest{Key: "k", Value: []byte("v2"), FirstWrite: true}), "second insert without ETag")
	if got := wantValue(t, s, "k", "v1"); got.ETag != first.ETag {
		t.Fatalf("ETag changed after a failed first-write")
	}
	wantMismatch(t, s.Set(ctx, state.SetRequest{Key: "k", Value: []byte("v2"), FirstWrite: true, ETag: ptr("stale")}), "first-write with stale ETag")
	wantOK(t, s.Set(ctx, state.SetRequest{Key: "k", Value: []byte("v3"), FirstWrite: true, ETag: ptr(first.ETag)}), "first-write with current ETag")
	wantValue(t, s, "k", "v3")

	// Once deleted, the key can be first-written again.
	wantOK(t, s.Delete(ctx, state.DeleteRequest{Key: "k"}), "Delete")
	wantOK(t, s.Set(ctx, state.SetRequest{Key: "k", Value: []byte("v4"), FirstWrite: true}), "first-write after delete")
	wantValue(t, s, "k", "v4")
}

func testDeleteMissing(t *testing.T, h *h) {
	s := h.store(t)
	ctx := t.Context()
	wantOK(t, s.Delete(ctx, state.DeleteRequest{Key: "never"}), "Delete of a missing key")
	set(t, s, "k", "v")
	wantOK(t, s.Delete(ctx, state.DeleteRequest{Key: "k"}), "Delete")
	wantOK(t, s.Delete(ctx, state.DeleteRequest{Key: "k"}), "Delete again")
	wantMissing(t, s, "k")
	wantMismatch(t, s.Delete(ctx, state.DeleteRequest{Key: "never", ETag: ptr("1")}), "Delete of a missing key with an ETag")
}

func testETagNotReused(t *testing.T, h *h) {
	s := h.store(t)
	ctx := t.Context()
	seen := map[string]bool{}
	var last string
	for i := range 5 {
		set(t, s, "k", "same")
		e := mustGet(t, s, "k").ETag
		if seen[e] {
			t.Fatalf("round %d: ETag %q reused after delete and recreate", i, e)
		}
		seen[e] = true
		if last != "" {
			wantMismatch(t, s.Set(ctx, state.SetRequest{Key: "k", Value: []byte("x"), ETag: ptr(last)}),
				"Set with the ETag of a deleted incarnation")
		}
		last = e
		wantOK(t, s.Delete(ctx, state.DeleteRequest{Key: "k"}), "Delete")
	}
}

// ---- TTL ----

func testTTL(t *testing.T, h *h) {
	s := h.store(t)
	ctx := t.Context()
	before := time.Now()
	wantOK(t, s.Set(ctx, state.SetRequest{Key: "ttl", Value: []byte("v"), TTL: time.Second}), "Set with TTL")
	set(t, s, "keep", "v")
	it := mustGet(t, s, "ttl")
	if it.ExpiresAt.Before(before.Add(500*time.Millisecond)) || it.ExpiresAt.After(time.Now().Add(2*time.Second)) {
		t.Fatalf("ExpiresAt = %v, want about 1s after %v", it.ExpiresAt, before)
	}

	eventually(t, 10*time.Second, "item with a 1s TTL expires", func() bool {
		_, ok := get(t, s, "ttl")
		return !ok
	})
	wantValue(t, s, "keep", "v")
	if bg, ok := s.(state.BulkGetter); ok {
		if got := bulkKeys(t, bg, "ttl", "keep"); len(got) != 1 || got["keep"] != "v" {
			t.Fatalf("BulkGet after expiry = %v, want only keep", got)
		}
	}
	// An expired item counts as absent for every rule.
	wantMismatch(t, s.Set(ctx, state.SetRequest{Key: "ttl", Value: []byte("x"), ETag: ptr(it.ETag)}), "Set with the ETag of an expired item")
	wantMismatch(t, s.Delete(ctx, state.DeleteRequest{Key: "ttl", ETag: ptr(it.ETag)}), "Delete with the ETag of an expired item")
	wantOK(t, s.Set(ctx, state.SetRequest{Key: "ttl", Value: []byte("new"), FirstWrite: true}), "first-write over an expired item")
	if got := wantValue(t, s, "ttl", "new"); got.ETag == it.ETag || !got.ExpiresAt.IsZero() {
		t.Fatalf("recreated item: ETag %q (old %q), ExpiresAt %v", got.ETag, it.ETag, got.ExpiresAt)
	}

	// Query does not see expired items either.
	if q, ok := s.(state.Querier); ok {
		wantOK(t, s.Set(ctx, state.SetRequest{Key: "q||a", Value: []byte(`{"n":1}`), TTL: time.Second}), "Set")
		set(t, s, "q||b", `{"n":2}`)
		eventually(t, 10*time.Second, "query stops returning an expired item", func() bool {
			return slices.Equal(queryKeys(t, q, "q||", state.Query{}), []string{"q||b"})
		})
	}
}

func testTTLZeroIsForever(t *testing.T, h *h) {
	s := h.store(t)
	ctx := t.Context()
	wantOK(t, s.Set(ctx, state.SetRequest{Key: "k", Value: []byte("v"), TTL: time.Second}), "Set with TTL")
	if mustGet(t, s, "k").ExpiresAt.IsZero() {
		t.Fatalf("ExpiresAt is zero with a TTL")
	}
	// Overwriting without a TTL makes the item permanent.
	wantOK(t, s.Set(ctx, state.SetRequest{Key: "k", Value: []byte("v2")}), "Set without TTL")
	wantOK(t, s.Set(ctx, state.SetRequest{Key: "short", Value: []byte("v"), TTL: time.Second}), "Set with TTL")
	if it := wantValue(t, s, "k", "v2"); !it.ExpiresAt.IsZero() {
		t.Fatalf("ExpiresAt = %v after an overwrite without TTL", it.ExpiresAt)
	}
	eventually(t, 10*time.Second, "the item with a TTL expires", func() bool {
		_, ok := get(t, s, "short")
		return !ok
	})
	wantValue(t, s, "k", "v2")
}

// ---- bulk get ----

func testBulkGet(t *testing.T, h *h) {
	s := h.store(t)
	bg := bulkGetter(t, s)
	set(t, s, "app||a", "1")
	set(t, s, "app||b", "2")
	set(t, s, "app||c", "3")
	tests := []struct {
		name string
		keys []string
		want map[string]string
	}{
		{"none", nil, map[string]string{}},
		{"all present", []string{"app||a", "app||b"}, map[string]string{"app||a": "1", "app||b": "2"}},
		{"missing absent", []string{"app||a", "app||zz", "app||c", "app"}, map[string]string{"app||a": "1", "app||c": "3"}},
		{"only missing", []string{"x", "y"}, map[string]string{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := bulkKeys(t, bg, tc.keys...)
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("BulkGet(%q) = %v, want %v", tc.keys, got, tc.want)
			}
		})
	}
	t.Run("etags match get", func(t *testing.T) {
		items, err := bg.BulkGet(t.Context(), []string{"app||a", "app||b"})
		wantOK(t, err, "BulkGet")
		for _, it := range items {
			if g := mustGet(t, s, it.Key); g.ETag != it.ETag || !bytes.Equal(g.Value, it.Value) {
				t.Fatalf("BulkGet item %+v differs from Get %+v", it, g)
			}
		}
	})
}

// ---- transactions ----

func testTransaction(t *testing.T, h *h) {
	s := h.store(t)
	tx := transactor(t, s)
	ctx := t.Context()
	set(t, s, "k1", "one")
	set(t, s, "k2", "two")
	e2 := mustGet(t, s, "k2").ETag

	wantOK(t, tx.Transact(ctx, nil), "empty transaction")
	wantOK(t, tx.Transact(ctx, []state.Operation{
		{Set: &state.SetRequest{Key: "k3", Value: []byte("three")}},
		{Delete: &state.DeleteRequest{Key: "k1"}},
		{Set: &state.SetRequest{Key: "k2", Value: []byte("two-2"), ETag: ptr(e2)}},
		{Set: &state.SetRequest{Key: "k4", Value: []byte("four"), FirstWrite: true}},
		{Delete: &state.DeleteRequest{Key: "never-there"}},
	}), "Transact")
	wantMissing(t, s, "k1")
	wantValue(t, s, "k2", "two-2")
	wantValue(t, s, "k3", "three")
	wantValue(t, s, "k4", "four")

	// Operations see the effects of earlier ones in the same transaction.
	wantOK(t, tx.Transact(ctx, []state.Operation{
		{Delete: &state.DeleteRequest{Key: "k3"}},
		{Set: &state.SetRequest{Key: "k3", Value: []byte("again"), FirstWrite: true}},
		{Set: &state.SetRequest{Key: "k5", Value: []byte("a")}},
		{Set: &state.SetRequest{Key: "k5", Value: []byte("b")}},
	}), "Transact touching a key twice")
	wantValue(t, s, "k3", "again")
	wantValue(t, s, "k5", "b")

	wantMismatch(t, tx.Transact(ctx, []state.Operation{
		{Set: &state.SetRequest{Key: "k6", Value: []byte("a")}},
		{Set: &state.SetRequest{Key: "k6", Value: []byte("b"), FirstWrite: true}},
	}), "first-write of a key the transaction itself wrote")
	wantMissing(t, s, "k6")

	t.Run("invalid operation", func(t *testing.T) {
		for _, op := range []state.Operation{
			{},
			{Set: &state.SetRequest{Key: "k7"}, Delete: &state.DeleteRequest{Key: "k7"}},
		} {
			err := tx.Transact(ctx, []state.Operation{{Set: &state.SetRequest{Key: "k8", Value: []byte("x")}}, op})
			if err == nil || errors.Is(err, state.ErrETagMismatch) {
				t.Fatalf("Transact with operation %+v: err = %v, want a non-ETag error", op, err)
			}
			wantMissing(t, s, "k8")
		}
	})
}

func testTransactionRollback(t *testing.T, h *h) {
	s := h.store(t)
	tx := transactor(t, s)
	ctx := t.Context()
	set(t, s, "a", "A")
	set(t, s, "b", "B")
	set(t, s, "c", "C")
	ea, eb, ec := mustGet(t, s, "a").ETag, mustGet(t, s, "b").ETag, mustGet(t, s, "c").ETag

	tests := []struct {
		name string
		last state.Operation
	}{
		{"stale etag on set", state.Operation{Set: &state.SetRequest{Key: "c", Value: []byte("x"), ETag: ptr(ec + "0")}}},
		{"stale etag on delete", state.Operation{Delete: &state.DeleteRequest{Key: "c", ETag: ptr(ec + "0")}}},
		{"etag on missing key", state.Operation{Set: &state.SetRequest{Key: "nope", Value: []byte("x"), ETag: ptr(ec)}}},
		{"first-write on existing key", state.Operation{Set: &state.SetRequest{Key: "c", Value: []byte("x"), FirstWrite: true}}},
		// b was rewritten by the second operation, so its ETag is stale by now.
		{"etag made stale by this transaction", state.Operation{Delete: &state.DeleteRequest{Key: "b", ETag: ptr(eb)}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tx.Transact(ctx, []state.Operation{
				{Set: &state.SetRequest{Key: "new", Value: []byte("N")}},
				{Set: &state.SetRequest{Key: "b", Value: []byte("B2"), ETag: ptr(eb)}},
				{Delete: &state.DeleteRequest{Key: "a", ETag: ptr(ea)}},
				{Set: &state.SetRequest{Key: "ttl", Value: []byte("T"), TTL: time.Hour}},
				tc.last,
			})
			wantMismatch(t, err, "Transact")
			wantMissing(t, s, "new")
			wantMissing(t, s, "ttl")
			wantMissing(t, s, "nope")
			for key, want := range map[string]struct{ v, etag string }{"a": {"A", ea}, "b": {"B", eb}, "c": {"C", ec}} {
				if got := wantValue(t, s, key, want.v); got.ETag != want.etag {
					t.Fatalf("%s: ETag changed by a rolled-back transaction", key)
				}
			}
		})
	}
}

// ---- query ----

// queryData is stored under prefix "app||" (plus a few decoys) by fillQuery.
var queryData = []struct{ key, value string }{
	{"app||p1", `{"name": "alice", "age": 30, "person": {"org": "dev", "id": 1}, "active": true, "tags": ["a", "b"]}`},
	{"app||p2", `{"name":"bob","age":25,"person":{"org":"ops","id":2},"active":false}`},
	{"app||p3", `{"name":"carol","age":35.0,"person":{"org":"dev","id":3},"active":true}`},
	{"app||p4", `{"name":"dave","age":25,"person":{"org":"qa","id":4},"active":true,"score":null}`},
	{"app||p5", `{"name":"erin","age":4e1,"person":{"org":"dev","id":5}}`},
	{"app||s", `"dev"`},     // a JSON scalar: no paths inside
	{"app||n", `[1, 2, 3]`}, // a JSON array
}

// queryDecoys must never appear in a query for prefix "app||".
var queryDecoys = []struct{ key, value string }{
	{"app||raw", `{not json`},
	{"app||bin", "\xff\xfe{}"},
	{"app||empty", ``},
	{"app|p1", `{"name":"alice","person":{"org":"dev"}}`},
	{"other||p1", `{"name":"alice","person":{"org":"dev"}}`},
	{"APP||p1", `{"name":"alice","person":{"org":"dev"}}`},
	{"ap", `{"name":"alice"}`},
}

func fillQuery(t *testing.T, s state.Store) {
	t.Helper()
	for _, d := range append(slices.Clone(queryData), queryDecoys...) {
		set(t, s, d.key, d.value)
	}
}

func eq(key string, v any) state.Filter { return state.Filter{Op: "EQ", Key: key, Values: []any{v}} }
func in(key string, v ...any) state.Filter {
	return state.Filter{Op: "IN", Key: key, Values: v}
}
func and(f ...state.Filter) state.Filter { return state.Filter{Op: "AND", Children: f} }
func or(f ...state.Filter) state.Filter  { return state.Filter{Op: "OR", Children: f} }

func testQuery(t *testing.T, h *h) {
	s := h.store(t)
	q := querier(t, s)
	fillQuery(t, s)
	all := []string{"app||n", "app||p1", "app||p2", "app||p3", "app||p4", "app||p5", "app||s"}
	tests := []struct {
		name   string
		filter *state.Filter
		want   []string
	}{
		{"no filter: every JSON value, by key", nil, all},
		{"EQ string", ptr(eq("name", "bob")), []string{"app||p2"}},
		{"EQ nested path", ptr(eq("person.org", "dev")), []string{"app||p1", "app||p3", "app||p5"}},
		{"EQ number", ptr(eq("age", 25)), []string{"app||p2", "app||p4"}},
		{"EQ number compares numerically", ptr(eq("age", 40)), []string{"app||p5"}},
		{"EQ float", ptr(eq("age", 35.0)), []string{"app||p3"}},
		{"EQ number is not a string", ptr(eq("age", "25")), nil},
		{"EQ string is not a number", ptr(eq("person.org", 1)), nil},
		{"EQ bool", ptr(eq("active", true)), []string{"app||p1", "app||p3", "app||p4"}},
		{"EQ false", ptr(eq("active", false)), []string{"app||p2"}},
		{"EQ null", ptr(eq("score", nil)), []string{"app||p4"}},
		{"EQ missing path", ptr(eq("person.nothing", "dev")), nil},
		{"EQ array element", ptr(eq("tags.1", "b")), []string{"app||p1"}},
		{"EQ deeper than document", ptr(eq("name.first", "alice")), nil},
		{"IN", ptr(in("name", "alice", "dave", "zed")), []string{"app||p1", "app||p4"}},
		{"IN numbers", ptr(in("person.id", 2, 5, 9)), []string{"app||p2", "app||p5"}},
		{"IN mixed types", ptr(in("age", "30", 30)), []string{"app||p1"}},
		{"AND", ptr(and(eq("person.org", "dev"), eq("active", true))), []string{"app||p1", "app||p3"}},
		{"OR", ptr(or(eq("name", "bob"), eq("person.id", 5))), []string{"app||p2", "app||p5"}},
		{"nested AND/OR", ptr(and(or(eq("person.org", "dev"), eq("person.org", "qa")), in("age", 25, 35))),
			[]string{"app||p3", "app||p4"}},
		{"OR of ANDs", ptr(or(and(eq("person.org", "dev"), eq("age", 30)), and(eq("person.org", "ops"), eq("active", false)))),
			[]string{"app||p1", "app||p2"}},
		{"AND nothing matches", ptr(and(eq("name", "alice"), eq("name", "bob"))), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := queryKeys(t, q, "app||", state.Query{Filter: tc.filter})
			if !slices.Equal(got, tc.want) {
				t.Fatalf("keys = %q, want %q", got, tc.want)
			}
		})
	}
	t.Run("items are byte-exact with current ETags", func(t *testing.T) {
		res, err := q.Query(t.Context(), "app||", state.Query{})
		wantOK(t, err, "Query")
		for _, it := range res.Items {
			g := mustGet(t, s, it.Key)
			if !bytes.Equal(it.Value, g.Value) || it.ETag != g.ETag {
				t.Fatalf("query item %q = %q/%q, Get = %q/%q", it.Key, it.Value, it.ETag, g.Value, g.ETag)
			}
		}
		if res.Token != "" {
			t.Fatalf("token %q without a limit", res.Token)
		}
	})
}

func testQuerySort(t *testing.T, h *h) {
	s := h.store(t)
	q := querier(t, s)
	fillQuery(t, s)
	people := ptr(in("person.org", "dev", "ops", "qa"))
	tests := []struct {
		name string
		sort []state.Sort
		want []string
	}{
		{"asc, ties by key", []state.Sort{{Key: "age"}}, []string{"app||p2", "app||p4", "app||p1", "app||p3", "app||p5"}},
		{"desc, ties by key", []state.Sort{{Key: "age", Desc: true}}, []string{"app||p5", "app||p3", "app||p1", "app||p2", "app||p4"}},
		{"string asc", []state.Sort{{Key: "name"}}, []string{"app||p1", "app||p2", "app||p3", "app||p4", "app||p5"}},
		{"nested desc", []state.Sort{{Key: "person.id", Desc: true}}, []string{"app||p5", "app||p4", "app||p3", "app||p2", "app||p1"}},
		{"two keys", []state.Sort{{Key: "person.org"}, {Key: "age", Desc: true}}, []string{"app||p5", "app||p3", "app||p1", "app||p2", "app||p4"}},
		{"two keys other way", []state.Sort{{Key: "age"}, {Key: "name", Desc: true}}, []string{"app||p4", "app||p2", "app||p1", "app||p3", "app||p5"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := queryKeys(t, q, "app||", state.Query{Filter: people, Sort: tc.sort})
			if !slices.Equal(got, tc.want) {
				t.Fatalf("keys = %q, want %q", got, tc.want)
			}
		})
	}
}

func testQueryPaging(t *testing.T, h *h) {
	s := h.store(t)
	q := querier(t, s)
	fillQuery(t, s)
	for i := range 23 {
		set(t, s, fmt.Sprintf("app||bulk%02d", i), fmt.Sprintf(`{"n": %d, "group": %d}`, (i*7)%23, i%3))
	}
	tests := []struct {
		name  string
		query state.Query
	}{
		{"by key", state.Query{}},
		{"sorted", state.Query{Sort: []state.Sort{{Key: "group"}, {Key: "n", Desc: true}}}},
		{"filtered and sorted", state.Query{Filter: ptr(in("group", 0, 2)), Sort: []state.Sort{{Key: "n"}}}},
	}
	for _, tc := range tests {
		for _, limit := range []int{1, 2, 3, 5, 10, 100} {
			t.Run(fmt.Sprintf("%s/limit=%d", tc.name, limit), func(t *testing.T) {
				want := queryKeys(t, q, "app||", tc.query)
				if len(want) == 0 {
					t.Fatalf("the unpaged query found nothing")
				}
				var got []string
				query := tc.query
				query.Limit = limit
				pages := 0
				for {
					res, err := q.Query(t.Context(), "app||", query)
					wantOK(t, err, "Query page")
					if pages++; pages > len(want)+1 {
						t.Fatalf("more pages than results")
					}
					if len(res.Items) > limit {
						t.Fatalf("page of %d items with limit %d", len(res.Items), limit)
					}
					if res.Token != "" && len(res.Items) != limit {
						t.Fatalf("short page of %d items with a token", len(res.Items))
					}
					for _, it := range res.Items {
						got = append(got, it.Key)
					}
					if res.Token == "" {
						break
					}
					query.Token = res.Token
				}
				if !slices.Equal(got, want) {
					t.Fatalf("paged keys = %q\nwant %q", got, want)
				}
				if wantPages := (len(want) + limit - 1) / limit; pages != wantPages {
					t.Fatalf("%d pages, want %d: the last page must have no token", pages, wantPages)
				}
			})
		}
	}
}

func testQueryScope(t *testing.T, h *h) {
	s := h.store(t)
	q := querier(t, s)
	// LIKE's wildcards and escape character in a prefix are literal.
	for _, k := range []string{
		"a%b||1", "aXb||1", "aXXb||1",
		"a_b||1", "aZb||1",
		`a\b||1`, `a\\b||1`, "ab||1",
		"a'b||1", `a"b||1`,
	} {
		set(t, s, k, `{"k":1}`)
	}
	tests := []struct {
		prefix string
		want   []string
	}{
		{"a%b||", []string{"a%b||1"}},
		{"a_b||", []string{"a_b||1"}},
		{`a\b||`, []string{`a\b||1`}},
		{`a\\b||`, []string{`a\\b||1`}},
		{"a'b||", []string{"a'b||1"}},
		{`a"b||`, []string{`a"b||1`}},
		{"%", nil},
		{"_", nil},
		{"", []string{`a"b||1`, "a%b||1", "a'b||1", "aXXb||1", "aXb||1", "aZb||1", `a\\b||1`, `a\b||1`, "a_b||1", "ab||1"}},
	}
	for _, tc := range tests {
		t.Run("prefix "+tc.prefix, func(t *testing.T) {
			if got := queryKeys(t, q, tc.prefix, state.Query{}); !slices.Equal(got, tc.want) {
				t.Fatalf("keys = %q, want %q", got, tc.want)
			}
		})
	}
}

func testQueryErrors(t *testing.T, h *h) {
	s := h.store(t)
	q := querier(t, s)
	set(t, s, "app||1", `{"a":1}`)
	tests := []struct {
		name  string
		query state.Query
	}{
		{"token not a number", state.Query{Limit: 1, Token: "abc"}},
		{"negative token", state.Query{Limit: 1, Token: "-1"}},
		{"token with junk", state.Query{Limit: 1, Token: "1; DROP TABLE state"}},
		{"negative limit", state.Query{Limit: -1}},
		{"unknown operator", state.Query{Filter: &state.Filter{Op: "LIKE", Key: "a", Values: []any{"x"}}}},
		{"unknown nested operator", state.Query{Filter: ptr(and(eq("a", 1), state.Filter{Op: "GT", Key: "a", Values: []any{1}}))}},
		{"EQ without value", state.Query{Filter: &state.Filter{Op: "EQ", Key: "a"}}},
		{"EQ with two values", state.Query{Filter: &state.Filter{Op: "EQ", Key: "a", Values: []any{1, 2}}}},
		{"empty filter key", state.Query{Filter: ptr(eq("", 1))}},
		{"empty path segment", state.Query{Filter: ptr(eq("a..b", 1))}},
		{"empty sort key", state.Query{Sort: []state.Sort{{Key: ""}}}},
		{"value not JSON", state.Query{Filter: ptr(eq("a", func() {}))}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := q.Query(t.Context(), "app||", tc.query)
			if !errors.Is(err, state.ErrInvalidQuery) {
				t.Fatalf("err = %v, want ErrInvalidQuery", err)
			}
		})
	}
	t.Run("token past the end", func(t *testing.T) {
		res, err := q.Query(t.Context(), "app||", state.Query{Limit: 1, Token: "50"})
		if err != nil || len(res.Items) != 0 || res.Token != "" {
			t.Fatalf("Query = %+v, %v; want an empty last page", res, err)
		}
	})
	t.Run("hostile values are data", func(t *testing.T) {
		for _, v := range []any{"'); DROP TABLE state; --", `"}`, "$1", "%", `\`} {
			if got := queryKeys(t, q, "app||", state.Query{Filter: ptr(eq("a", v)), Sort: []state.Sort{{Key: "') --"}}}); len(got) != 0 {
				t.Fatalf("EQ %q matched %q", v, got)
			}
			if got := queryKeys(t, q, "app||", state.Query{Filter: ptr(eq(v.(string), 1))}); len(got) != 0 {
				t.Fatalf("path %q matched %q", v, got)
			}
		}
		wantValue(t, s, "app||1", `{"a":1}`)
	})
}

func testQueryOddJSON(t *testing.T, h *h) {
	s := h.store(t)
	q := querier(t, s)
	values := []struct {
		key, value string
		want       string // "yes": returned by queries, "no": not, "": either
	}{
		{"plain", `{"a":"x"}`, "yes"},
		{"escaped unicode", `{"a":"\u00e9\ud83d\ude00"}`, "yes"},
		{"raw unicode", `{"a":"é😀"}`, "yes"},
		{"big number", `{"a":123456789012345678901234567890}`, "yes"},
		{"escaped backslash u0000", `{"a":"\\u0000"}`, ""},
		{"nul escape", `{"a":"\u0000"}`, "no"},
		{"lone high surrogate", `{"a":"\ud800"}`, "no"},
		{"lone low surrogate", `{"a":"\udc00x"}`, "no"},
		{"high surrogate then letter", `{"a":"\ud800\u0041"}`, "no"},
		{"invalid utf-8", "{\"a\":\"\xff\"}", "no"},
		{"deep", strings.Repeat("[", 5000) + strings.Repeat("]", 5000), ""},
		{"huge exponent", `{"a":1e999999999}`, ""},
		{"long number", `{"a":` + strings.Repeat("9", 5000) + `}`, ""},
		{"trailing garbage", `{"a":1} x`, "no"},
		{"two documents", `{"a":1}{"a":2}`, "no"},
	}
	for _, v := range values {
		set(t, s, "odd||"+v.key, v.value)
	}
	res, err := q.Query(t.Context(), "odd||", state.Query{Sort: []state.Sort{{Key: "a"}}})
	wantOK(t, err, "Query over odd values")
	got := map[string]bool{}
	for _, it := range res.Items {
		got[strings.TrimPrefix(it.Key, "odd||")] = true
	}
	for _, v := range values {
		if (v.want == "yes" && !got[v.key]) || (v.want == "no" && got[v.key]) {
			t.Errorf("%s: returned = %v, want %s", v.key, got[v.key], v.want)
		}
	}
	for _, f := range []state.Filter{eq("a", "x"), eq("a", "é😀"), in("a", 1, "x")} {
		if _, err := q.Query(t.Context(), "odd||", state.Query{Filter: &f}); err != nil {
			t.Fatalf("Query %v over odd values: %v", f, err)
		}
	}
	if got := queryKeys(t, q, "odd||", state.Query{Filter: ptr(eq("a", "é😀"))}); !slices.Equal(got, []string{"odd||escaped unicode", "odd||raw unicode"}) {
		t.Fatalf("EQ é😀 = %q: escaped and raw unicode must compare equal", got)
	}
}

// ---- isolation ----

// checkIsolated runs the same checks for two stores that must not see each
// other, a and b, which hold the same keys.
func checkIsolated(t *testing.T, a, b state.Store) {
	ctx := t.Context()
	const key = "app||shared"
	set(t, a, key, `{"owner":"a"}`)
	wantMissing(t, b, key)
	ea := mustGet(t, a, key).ETag

	set(t, b, key, `{"owner":"b"}`)
	wantValue(t, a, key, `{"owner":"a"}`)
	wantValue(t, b, key, `{"owner":"b"}`)

	t.Run("etags", func(t *testing.T) {
		wantMismatch(t, b.Set(ctx, state.SetRequest{Key: key, Value: []byte("x"), ETag: ptr(ea)}), "Set in b with a's ETag")
		wantMismatch(t, b.Delete(ctx, state.DeleteRequest{Key: key, ETag: ptr(ea)}), "Delete in b with a's ETag")
		wantValue(t, a, key, `{"owner":"a"}`)
		wantValue(t, b, key, `{"owner":"b"}`)
	})
	t.Run("first-write", func(t *testing.T) {
		set(t, a, "app||fw", "a")
		wantOK(t, b.Set(ctx, state.SetRequest{Key: "app||fw", Value: []byte("b"), FirstWrite: true}), "first-write in b of a key a has")
		wantValue(t, a, "app||fw", "a")
	})
	t.Run("bulk get", func(t *testing.T) {
		bg := bulkGetter(t, b)
		set(t, a, "app||only-a", "a")
		got := bulkKeys(t, bg, key, "app||only-a")
		if len(got) != 1 || got[key] != `{"owner":"b"}` {
			t.Fatalf("BulkGet in b = %v", got)
		}
	})
	t.Run("query", func(t *testing.T) {
		q := querier(t, b)
		set(t, a, "app||qa", `{"owner":"a"}`)
		res, err := q.Query(ctx, "app||", state.Query{Filter: ptr(eq("owner", "a"))})
		wantOK(t, err, "Query")
		if len(res.Items) != 0 {
			t.Fatalf("b's query found a's items: %+v", res.Items)
		}
		res, err = q.Query(ctx, "", state.Query{})
		wantOK(t, err, "Query")
		for _, it := range res.Items {
			if bytes.Contains(it.Value, []byte(`"a"`)) {
				t.Fatalf("b's query found a's item %q", it.Key)
			}
		}
	})
	t.Run("transaction", func(t *testing.T) {
		tx := transactor(t, b)
		set(t, a, "app||tx", "a")
		etx := mustGet(t, a, "app||tx").ETag
		wantMismatch(t, tx.Transact(ctx, []state.Operation{
			{Delete: &state.DeleteRequest{Key: "app||tx", ETag: ptr(etx)}},
		}), "Transact in b with a's ETag")
		wantOK(t, tx.Transact(ctx, []state.Operation{
			{Set: &state.SetRequest{Key: "app||tx", Value: []byte("b")}},
			{Delete: &state.DeleteRequest{Key: key}},
		}), "Transact in b")
		wantValue(t, a, "app||tx", "a")
		wantValue(t, b, "app||tx", "b")
		wantValue(t, a, key, `{"owner":"a"}`)
		wantMissing(t, b, key)
		set(t, b, key, `{"owner":"b"}`)
	})
	t.Run("delete", func(t *testing.T) {
		wantOK(t, b.Delete(ctx, state.DeleteRequest{Key: key}), "Delete in b")
		wantMissing(t, b, key)
		if got := wantValue(t, a, key, `{"owner":"a"}`); got.ETag != ea {
			t.Fatalf("a's ETag changed")
		}
	})
}

func testTenantIsolation(t *testing.T, h *h) {
	ta, tb := h.tenant(), h.tenant()
	checkIsolated(t, h.open(t, ta, "statestore"), h.open(t, tb, "statestore"))
	// Reopening gives the same data.
	wantValue(t, h.open(t, ta, "statestore"), "app||shared", `{"owner":"a"}`)
}

func testComponentIsolation(t *testing.T, h *h) {
	tn := h.tenant()
	checkIsolated(t, h.open(t, tn, "statestore"), h.open(t, tn, "statestore2"))
	wantValue(t, h.open(t, tn, "statestore"), "app||shared", `{"owner":"a"}`)
}

// ---- concurrency ----

func testConcurrentIncrement(t *testing.T, h *h) {
	s := h.store(t)
	ctx := t.Context()
	const workers, each = 8, 5
	set(t, s, "counter", "0")
	var wg sync.WaitGroup
	var conflicts atomic.Int64
	for range workers {
		wg.Go(func() {
			for range each {
				if err := increment(ctx, s, "counter", &conflicts); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	wantValue(t, s, "counter", strconv.Itoa(workers*each))
	t.Logf("%d increments, %d ETag conflicts retried", workers*each, conflicts.Load())
}

func increment(ctx context.Context, s state.Store, key string, conflicts *atomic.Int64) error {
	for {
		it, ok, err := s.Get(ctx, key)
		if err != nil || !ok {
			return fmt.Errorf("reading the counter: ok %v, %v", ok, err)
		}
		n, err := strconv.Atoi(string(it.Value))
		if err != nil {
			return err
		}
		// Let the others read the same version too: without conflicts the
		// test would prove nothing about a store that is very fast.
		runtime.Gosched()
		err = s.Set(ctx, state.SetRequest{Key: key, Value: []byte(strconv.Itoa(n + 1)), ETag: &it.ETag})
		if !errors.Is(err, state.ErrETagMismatch) {
			return err
		}
		conflicts.Add(1)
	}
}

func testConcurrentFirstWrite(t *testing.T, h *h) {
	s := h.store(t)
	ctx := t.Context()
	const workers = 16
	var wg sync.WaitGroup
	var won atomic.Int64
	for i := range workers {
		wg.Go(func() {
			err := s.Set(ctx, state.SetRequest{Key: "once", Value: []byte(strconv.Itoa(i)), FirstWrite: true})
			switch {
			case err == nil:
				won.Add(1)
			case !errors.Is(err, state.ErrETagMismatch):
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if won.Load() != 1 {
		t.Fatalf("%d first-writes succeeded, want exactly 1", won.Load())
	}
}

// ---- keys ----

func testKeys(t *testing.T, h *h) {
	s := h.store(t)
	ctx := t.Context()
	keys := []struct{ name, key string }{
		{"unicode", "app||ключ-🔑-鍵"},
		{"double pipe", "app||a||b||c"},
		{"percent", "app||100%"},
		{"underscore", "app||snake_case_"},
		{"quotes", `app||it's "quoted"`},
		{"backslash", `app||back\slash\`},
		{"spaces and controls", "app|| tab\there\nnewline "},
		{"sql", "app||'; DELETE FROM state; --"},
		{"long", "app||" + strings.Repeat("x", 1000)},
		{"long unicode", "app||" + strings.Repeat("é", 1000)},
		{"only pipes", "||"},
	}
	for _, tc := range keys {
		t.Run(tc.name, func(t *testing.T) {
			set(t, s, tc.key, tc.name)
			it := wantValue(t, s, tc.key, tc.name)
			if bg, ok := s.(state.BulkGetter); ok {
				if got := bulkKeys(t, bg, tc.key); got[tc.key] != tc.name || len(got) != 1 {
					t.Fatalf("BulkGet = %v", got)
				}
			}
			wantOK(t, s.Delete(ctx, state.DeleteRequest{Key: tc.key, ETag: &it.ETag}), "Delete")
			wantMissing(t, s, tc.key)
			set(t, s, tc.key, tc.name) // keep it, so that the keys coexist below
		})
	}
	t.Run("all coexist", func(t *testing.T) {
		for _, tc := range keys {
			wantValue(t, s, tc.key, tc.name)
		}
	})
}
