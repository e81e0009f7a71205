// Package authcatest helps test code that uses auth/authca: an in-memory
// Store, and the conformance suite that every Store implementation (the
// in-memory one here, the Postgres one in the registry) must pass.
package authcatest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/blockgate/blockgate/auth/authca"
)

// MemStore is an in-memory authca.Store. It can be made to fail.
type MemStore struct {
	mu   sync.Mutex
	gens []authca.Generation
	err  error
}

var _ authca.Store = (*MemStore)(nil)

// NewMemStore returns an empty store.
func NewMemStore() *MemStore { return &MemStore{} }

// CAGenerations implements authca.Store.
func (s *MemStore) CAGenerations(ctx context.Context) ([]authca.Generation, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return nil, s.err
	}
	out := make([]authca.Generation, len(s.gens))
	for i, g := range s.gens {
		out[i] = copyGeneration(g)
	}
	return out, nil
}

// AddCAGeneration implements authca.Store.
func (s *MemStore) AddCAGeneration(ctx context.Context, g authca.Generation, replaces string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	active := -1
	for i, o := range s.gens {
		if o.ID == g.ID {
			return fmt.Errorf("memstore: generation %s: %w", g.ID, authca.ErrConflict)
		}
		if o.RetiredAt == nil {
			active = i
		}
	}
	switch {
	case active < 0 && replaces != "":
		return fmt.Errorf("memstore: no active generation, not %s: %w", replaces, authca.ErrConflict)
	case active >= 0 && s.gens[active].ID != replaces:
		return fmt.Errorf("memstore: active generation is %s, not %q: %w", s.gens[active].ID, replaces, authca.ErrConflict)
	}
	if active >= 0 {
		t := g.CreatedAt
		s.gens[active].RetiredAt = &t
	}
	g = copyGeneration(g)
	g.RetiredAt = nil
	s.gens = append(s.gens, g)
	return nil
}

// SetErr makes every later call fail with err; nil heals the store.
func (s *MemStore) SetErr(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.err = err
}

func copyGeneration(g authca.Generation) authca.Generation {
	g.Root = bytes.Clone(g.Root)
	g.Intermediate = bytes.Clone(g.Intermediate)
	g.IntermediateKey = bytes.Clone(g.IntermediateKey)
	if g.RetiredAt != nil {
		t := *g.RetiredAt
		g.RetiredAt = &t
	}
	return g
}

// RunStore runs the Store conformance suite. newStore returns an empty
// store for each subtest. The generations it stores are random bytes: a
// store keeps what it is given and parses nothing.
func RunStore(t *testing.T, newStore func(t *testing.T) authca.Store) {
	t.Helper()
	base := time.Now().UTC().Truncate(time.Microsecond)
	seq := 0
	newGen := func(age time.Duration) authca.Generation {
		seq++
		return authca.Generation{
			ID:              fmt.Sprintf("gen-%d-%s", seq, rand.Text()),
			Root:            []byte(rand.Text()),
			Intermediate:    []byte(rand.Text()),
			IntermediateKey: []byte{1, 0, 0xff, 2},
			MasterKeyID:     "0123456789abcdef",
			CreatedAt:       base.Add(-age),
		}
	}
	byID := func(t *testing.T, s authca.Store) map[string]authca.Generation {
		t.Helper()
		gens, err := s.CAGenerations(t.Context())
		if err != nil {
			t.Fatalf("CAGenerations: %v", err)
		}
		m := make(map[string]authca.Generation, len(gens))
		for _, g := range gens {
			if _, dup := m[g.ID]; dup {
				t.Fatalf("CAGenerations returned %s twice", g.ID)
			}
			m[g.ID] = g
		}
		return m
	}
	active := func(t *testing.T, s authca.Store) []string {
		t.Helper()
		var ids []string
		for id, g := range byID(t, s) {
			if g.RetiredAt == nil {
				ids = append(ids, id)
			}
		}
		return ids
	}
	add := func(t *testing.T, s authca.Store, g authca.Generation, replaces string) {
		t.Helper()
		if err := s.AddCAGeneration(t.Context(), g, replaces); err != nil {
			t.Fatalf("AddCAGeneration(%s, replaces %q): %v", g.ID, replaces, err)
		}
	}

	t.Run("empty", func(t *testing.T) {
		if got := byID(t, newStore(t)); len(got) != 0 {
			t.Fatalf("new store has %d generations, want 0", len(got))
		}
	})

	t.Run("roundtrip", func(t *testing.T) {
		s := newStore(t)
		want := newGen(0)
		add(t, s, want, "")
		got, ok := byID(t, s)[want.ID]
		switch {
		case !ok:
			t.Fatalf("generation %s not returned", want.ID)
		case !bytes.Equal(got.Root, want.Root), !bytes.Equal(got.Intermediate, want.Intermediate),
			!bytes.Equal(got.IntermediateKey, want.IntermediateKey):
			t.Errorf("certificates or key did not round-trip")
		case got.MasterKeyID != want.MasterKeyID:
			t.Errorf("MasterKeyID = %q, want %q", got.MasterKeyID, want.MasterKeyID)
		case !got.CreatedAt.Equal(want.CreatedAt):
			t.Errorf("CreatedAt = %v, want %v", got.CreatedAt, want.CreatedAt)
		case got.RetiredAt != nil:
			t.Errorf("new generation retired at %v", *got.RetiredAt)
		}
	})

	t.Run("add retires the replaced generation", func(t *testing.T) {
		s := newStore(t)
		g1, g2, g3 := newGen(2*time.Hour), newGen(time.Hour), newGen(0)
		add(t, s, g1, "")
		add(t, s, g2, g1.ID)
		add(t, s, g3, g2.ID)
		got := byID(t, s)
		if len(got) != 3 {
			t.Fatalf("store has %d generations, want 3", len(got))
		}
		for _, c := range []struct{ old, next authca.Generation }{{g1, g2}, {g2, g3}} {
			r := got[c.old.ID].RetiredAt
			if r == nil || !r.Equal(c.next.CreatedAt) {
				t.Errorf("generation %s retired at %v, want %v (its successor's creation)", c.old.ID, r, c.next.CreatedAt)
			}
		}
		if ids := active(t, s); len(ids) != 1 || ids[0] != g3.ID {
			t.Errorf("active generations %v, want [%s]", ids, g3.ID)
		}
	})

	t.Run("conflicts", func(t *testing.T) {
		s := newStore(t)
		g1 := newGen(time.Hour)
		add(t, s, g1, "")
		tests := []struct {
			name     string
			g        authca.Generation
			replaces string
		}{
			{name: "replacing none while one is active", g: newGen(0), replaces: ""},
			{name: "replacing one that is not active", g: newGen(0), replaces: "gen-nonexistent"},
			{name: "the same id again", g: g1, replaces: g1.ID},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				err := s.AddCAGeneration(t.Context(), tt.g, tt.replaces)
				if !errors.Is(err, authca.ErrConflict) {
					t.Fatalf("AddCAGeneration = %v, want ErrConflict", err)
				}
				got := byID(t, s)
				if len(got) != 1 || got[g1.ID].RetiredAt != nil {
					t.Fatalf("a refused add changed the store: %+v", got)
				}
			})
		}
		g2 := newGen(0)
		add(t, s, g2, g1.ID)
		if err := s.AddCAGeneration(t.Context(), newGen(0), g1.ID); !errors.Is(err, authca.ErrConflict) {
			t.Fatalf("replacing a retired generation = %v, want ErrConflict", err)
		}
	})

	t.Run("returned generations belong to the caller", func(t *testing.T) {
		s := newStore(t)
		g := newGen(0)
		add(t, s, g, "")
		gens, err := s.CAGenerations(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		gens[0].Root[0] ^= 0xff
		gens[0].ID = "scribbled"
		if got, ok := byID(t, s)[g.ID]; !ok || !bytes.Equal(got.Root, g.Root) {
			t.Fatal("changing a returned generation changed the store")
		}
	})

	for _, replacing := range []bool{false, true} {
		name := "concurrent adds on an empty store"
		if replacing {
			name = "concurrent adds replacing the same generation"
		}
		t.Run(name, func(t *testing.T) {
			s := newStore(t)
			replaces := ""
			if replacing {
				g := newGen(time.Hour)
				add(t, s, g, "")
				replaces = g.ID
			}
			const n = 8
			errs := make([]error, n)
			var wg sync.WaitGroup
			for i := range n {
				g := newGen(time.Duration(-i) * time.Millisecond)
				wg.Go(func() { errs[i] = s.AddCAGeneration(t.Context(), g, replaces) })
			}
			wg.Wait()
			won := 0
			for _, err := range errs {
				switch {
				case err == nil:
					won++
				case !errors.Is(err, authca.ErrConflict):
					t.Errorf("AddCAGeneration: %v, want nil or ErrConflict", err)
				}
			}
			if won != 1 {
				t.Errorf("%d of %d concurrent adds succeeded, want 1", won, n)
			}
			if ids := active(t, s); len(ids) != 1 {
				t.Errorf("%d active generations after concurrent adds, want 1: %v", len(ids), ids)
			}
		})
	}

	t.Run("canceled context", func(t *testing.T) {
		s := newStore(t)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if err := s.AddCAGeneration(ctx, newGen(0), ""); err == nil {
			t.Error("AddCAGeneration with a canceled context succeeded")
		}
		if got := byID(t, s); len(got) != 0 {
			t.Errorf("a canceled add stored %d generations", len(got))
		}
	})
}
