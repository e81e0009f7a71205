// Package authjwttest helps test code that uses auth/authjwt: an in-memory
// KeyStore, and the conformance suite that every KeyStore implementation (the
// in-memory one here, the Postgres one in the registry) must pass.
package authjwttest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/blockgate/blockgate/auth/authjwt"
)

// MemKeyStore is an in-memory authjwt.KeyStore. It counts the calls to
// SigningKeys, and can be made to fail.
type MemKeyStore struct {
	now func() time.Time

	mu    sync.Mutex
	keys  []authjwt.Key
	loads int
	err   error
}

var _ authjwt.KeyStore = (*MemKeyStore)(nil)

// NewMemKeyStore returns an empty store that stamps retirements with now
// (time.Now if nil).
func NewMemKeyStore(now func() time.Time) *MemKeyStore {
	if now == nil {
		now = time.Now
	}
	return &MemKeyStore{now: now}
}

// SigningKeys implements authjwt.KeyStore.
func (s *MemKeyStore) SigningKeys(ctx context.Context) ([]authjwt.Key, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.loads++
	if s.err != nil {
		return nil, s.err
	}
	out := make([]authjwt.Key, len(s.keys))
	for i, k := range s.keys {
		out[i] = copyKey(k)
	}
	return out, nil
}

// AddSigningKey implements authjwt.KeyStore.
func (s *MemKeyStore) AddSigningKey(ctx context.Context, k authjwt.Key) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	for _, o := range s.keys {
		if o.ID == k.ID {
			return errors.New("memkeystore: duplicate kid " + k.ID)
		}
	}
	now := s.now()
	for i := range s.keys {
		if s.keys[i].RetiredAt == nil && !s.keys[i].CreatedAt.After(k.CreatedAt) {
			s.keys[i].RetiredAt = &now
		}
	}
	s.keys = append(s.keys, copyKey(k))
	return nil
}

// Loads reports how many times SigningKeys has been called.
func (s *MemKeyStore) Loads() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.loads
}

// SetErr makes every later call fail with err; nil heals the store.
func (s *MemKeyStore) SetErr(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.err = err
}

// Put stores k as it is, retiring nothing: for tests that need a store in a
// particular state.
func (s *MemKeyStore) Put(k authjwt.Key) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys = append(s.keys, copyKey(k))
}

func copyKey(k authjwt.Key) authjwt.Key {
	if k.RetiredAt != nil {
		t := *k.RetiredAt
		k.RetiredAt = &t
	}
	return k
}

// RunKeyStore runs the KeyStore conformance suite. newStore returns an
// empty store for each subtest.
func RunKeyStore(t *testing.T, newStore func(t *testing.T) authjwt.KeyStore) {
	t.Helper()
	base := time.Now().UTC().Truncate(time.Microsecond)
	newKey := func(t *testing.T, age time.Duration) authjwt.Key {
		t.Helper()
		k, err := authjwt.NewKey(base.Add(-age))
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	byID := func(t *testing.T, s authjwt.KeyStore) map[string]authjwt.Key {
		t.Helper()
		keys, err := s.SigningKeys(t.Context())
		if err != nil {
			t.Fatalf("SigningKeys: %v", err)
		}
		m := make(map[string]authjwt.Key, len(keys))
		for _, k := range keys {
			if _, dup := m[k.ID]; dup {
				t.Fatalf("SigningKeys returned %s twice", k.ID)
			}
			m[k.ID] = k
		}
		return m
	}

	t.Run("empty", func(t *testing.T) {
		if got := byID(t, newStore(t)); len(got) != 0 {
			t.Fatalf("new store has %d keys, want 0", len(got))
		}
	})

	t.Run("roundtrip", func(t *testing.T) {
		s := newStore(t)
		want := newKey(t, 0)
		if err := s.AddSigningKey(t.Context(), want); err != nil {
			t.Fatalf("AddSigningKey: %v", err)
		}
		got, ok := byID(t, s)[want.ID]
		switch {
		case !ok:
			t.Fatalf("key %s not returned", want.ID)
		case got.Private == nil || !got.Private.Equal(want.Private):
			t.Errorf("private key did not round-trip")
		case !got.CreatedAt.Equal(want.CreatedAt):
			t.Errorf("CreatedAt = %v, want %v", got.CreatedAt, want.CreatedAt)
		case got.RetiredAt != nil:
			t.Errorf("new key retired at %v", *got.RetiredAt)
		}
	})

	t.Run("add retires older keys", func(t *testing.T) {
		s := newStore(t)
		k1, k2, k3 := newKey(t, 2*time.Hour), newKey(t, time.Hour), newKey(t, 0)
		for _, k := range []authjwt.Key{k1, k2, k3} {
			if err := s.AddSigningKey(t.Context(), k); err != nil {
				t.Fatalf("AddSigningKey(%s): %v", k.ID, err)
			}
		}
		got := byID(t, s)
		if len(got) != 3 {
			t.Fatalf("store has %d keys, want 3", len(got))
		}
		for _, k := range []authjwt.Key{k1, k2} {
			if got[k.ID].RetiredAt == nil {
				t.Errorf("older key %s not retired", k.ID)
			} else if got[k.ID].RetiredAt.Before(k.CreatedAt) {
				t.Errorf("key %s retired at %v, before it was created at %v", k.ID, *got[k.ID].RetiredAt, k.CreatedAt)
			}
		}
		if got[k3.ID].RetiredAt != nil {
			t.Errorf("newest key %s retired", k3.ID)
		}
		// A retirement is not moved by later additions.
		first := *got[k1.ID].RetiredAt
		if err := s.AddSigningKey(t.Context(), newKey(t, -time.Hour)); err != nil {
			t.Fatal(err)
		}
		if again := byID(t, s)[k1.ID].RetiredAt; again == nil || !again.Equal(first) {
			t.Errorf("retirement of %s moved from %v to %v", k1.ID, first, again)
		}
	})

	t.Run("returned keys belong to the caller", func(t *testing.T) {
		s := newStore(t)
		k := newKey(t, 0)
		if err := s.AddSigningKey(t.Context(), k); err != nil {
			t.Fatal(err)
		}
		keys, err := s.SigningKeys(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		keys[0].ID = "scribbled"
		if _, ok := byID(t, s)[k.ID]; !ok {
			t.Fatal("changing a returned key changed the store")
		}
	})

	t.Run("concurrent adds", func(t *testing.T) {
		s := newStore(t)
		const n = 8
		keys := make([]authjwt.Key, n)
		for i := range keys {
			keys[i] = newKey(t, time.Duration(n-i)*time.Minute)
		}
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i, k := range keys {
			wg.Go(func() { errs[i] = s.AddSigningKey(t.Context(), k) })
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatalf("AddSigningKey: %v", err)
		}
		got := byID(t, s)
		if len(got) != n {
			t.Fatalf("store has %d keys, want %d", len(got), n)
		}
		// Concurrent transactions may each miss the other's insert, so more
		// than one key may stay unretired; at least the newest must.
		newest := keys[n-1]
		if got[newest.ID].RetiredAt != nil {
			t.Errorf("newest key %s retired", newest.ID)
		}
	})

	t.Run("canceled context", func(t *testing.T) {
		s := newStore(t)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if err := s.AddSigningKey(ctx, newKey(t, 0)); err == nil {
			t.Error("AddSigningKey with a canceled context succeeded")
		}
		if got := byID(t, s); len(got) != 0 {
			t.Errorf("a canceled add stored %d keys", len(got))
		}
	})
}
