package statemem_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/blockgate/blockgate/blocks/state"
	"github.com/blockgate/blockgate/blocks/state/statemem"
	"github.com/blockgate/blockgate/blocks/state/statetest"
	"github.com/blockgate/blockgate/tenants"
)

// opener keeps one Store per tenant and component, as the gateway does.
func opener(opts ...statemem.Option) statetest.Opener {
	var mu sync.Mutex
	stores := map[string]*statemem.Store{}
	return func(t *testing.T, tenant tenants.ID, name string) state.Store {
		mu.Lock()
		defer mu.Unlock()
		k := string(tenant) + "/" + name
		s, ok := stores[k]
		if !ok {
			s = statemem.New(opts...)
			stores[k] = s
		}
		return s
	}
}

func TestConformance(t *testing.T) {
	statetest.Run(t, opener())
}

func FuzzStateKey(f *testing.F) {
	statetest.Fuzz(f, opener())
}

// clock is a settable time source.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestSweepWithClock(t *testing.T) {
	ctx := t.Context()
	c := &clock{now: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
	s := statemem.New(statemem.WithClock(c.Now))
	for _, r := range []state.SetRequest{
		{Key: "short", Value: []byte("1"), TTL: time.Second},
		{Key: "long", Value: []byte("2"), TTL: time.Hour},
		{Key: "forever", Value: []byte("3")},
	} {
		if err := s.Set(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	it, ok, _ := s.Get(ctx, "short")
	if !ok || !it.ExpiresAt.Equal(c.Now().Add(time.Second)) {
		t.Fatalf("Get(short) = %+v, %v", it, ok)
	}
	c.Advance(999 * time.Millisecond)
	if _, ok, _ := s.Get(ctx, "short"); !ok {
		t.Fatalf("short expired early")
	}
	if n := s.Sweep(); n != 0 {
		t.Fatalf("Sweep dropped %d live items", n)
	}
	c.Advance(time.Millisecond) // exactly at expiry: gone, as expires_at <= now() in Postgres
	if _, ok, _ := s.Get(ctx, "short"); ok {
		t.Fatalf("short still visible at its expiry")
	}
	if s.Len() != 3 {
		t.Fatalf("Len = %d before Sweep, want 3", s.Len())
	}
	if n := s.Sweep(); n != 1 || s.Len() != 2 {
		t.Fatalf("Sweep = %d, Len = %d; want 1, 2", n, s.Len())
	}
	c.Advance(time.Hour)
	if n := s.Sweep(); n != 1 || s.Len() != 1 {
		t.Fatalf("Sweep = %d, Len = %d; want 1, 1", n, s.Len())
	}
	if _, ok, _ := s.Get(ctx, "forever"); !ok {
		t.Fatalf("item without TTL swept")
	}
}

func TestRunSweepsUntilCanceled(t *testing.T) {
	c := &clock{now: time.Now()}
	s := statemem.New(statemem.WithClock(c.Now), statemem.WithSweepInterval(time.Millisecond))
	if err := s.Set(t.Context(), state.SetRequest{Key: "k", Value: []byte("v"), TTL: time.Second}); err != nil {
		t.Fatal(err)
	}
	c.Advance(time.Minute)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for s.Len() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("Run did not sweep")
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v after cancel, want nil", err)
	}
}
