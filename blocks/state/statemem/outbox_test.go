package statemem_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/blockgate/blockgate/blocks/pubsub"
	"github.com/blockgate/blockgate/blocks/state"
	"github.com/blockgate/blockgate/blocks/state/statemem"
	"github.com/blockgate/blockgate/blocks/state/statetest"
	"github.com/blockgate/blockgate/tenants"
)

func TestOutboxConformance(t *testing.T) {
	statetest.RunOutbox(t, opener(), func(t *testing.T, s state.Store, _ tenants.ID) []pubsub.Message {
		return s.(*statemem.Store).Outbox()
	})
}

// broker records what a relay publishes; fail makes publishes fail.
type broker struct {
	mu   sync.Mutex
	got  []pubsub.Message
	fail error
}

func (b *broker) publish(_ context.Context, msgs []pubsub.Message) []error {
	b.mu.Lock()
	defer b.mu.Unlock()
	errs := make([]error, len(msgs))
	for i, m := range msgs {
		if b.fail != nil {
			errs[i] = b.fail
			continue
		}
		b.got = append(b.got, m)
	}
	return errs
}

func (b *broker) setFail(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.fail = err
}

func (b *broker) ids() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, m := range b.got {
		out = append(out, m.ID)
	}
	return out
}

// waitFor polls cond until it holds or 10 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func msg(id string) pubsub.Message {
	return pubsub.Message{Tenant: "acme", Pubsub: "pubsub", Topic: "orders", ID: id, Data: []byte(id)}
}

func TestRelay(t *testing.T) {
	c := &clock{now: time.Now()}
	s := statemem.New(statemem.WithClock(c.Now))
	b := &broker{}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.RunRelay(ctx, b.publish) }()

	set := []state.Operation{{Set: &state.SetRequest{Key: "k", Value: []byte("v")}}}
	if err := s.TransactWithOutbox(ctx, set, []pubsub.Message{msg("m1"), msg("m2")}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "m1 and m2 to be published", func() bool { return len(b.ids()) == 2 })
	if !slices.Equal(b.ids(), []string{"m1", "m2"}) || len(s.Outbox()) != 0 {
		t.Fatalf("published %v, outbox %v", b.ids(), s.Outbox())
	}

	// A failing broker keeps the message; it is retried once its delay
	// has passed on the store's clock.
	b.setFail(pubsub.ErrUnavailable)
	if err := s.TransactWithOutbox(ctx, set, []pubsub.Message{msg("m3")}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "m3 to be back in the outbox after a failed publish", func() bool { return len(s.Outbox()) == 1 })
	b.setFail(nil)
	c.Advance(time.Minute)
	waitFor(t, "m3 to be published", func() bool { return len(b.ids()) == 3 })
	if len(s.Outbox()) != 0 {
		t.Fatalf("outbox after the retry: %v", s.Outbox())
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("RunRelay = %v after cancel, want nil", err)
	}
}

func TestOutboxLimit(t *testing.T) {
	s := statemem.New(statemem.WithOutboxLimit(2))
	ctx := t.Context()
	set := func(v string) []state.Operation {
		return []state.Operation{{Set: &state.SetRequest{Key: "k", Value: []byte(v)}}}
	}
	if err := s.TransactWithOutbox(ctx, set("1"), []pubsub.Message{msg("a"), msg("b")}); err != nil {
		t.Fatal(err)
	}
	err := s.TransactWithOutbox(ctx, set("2"), []pubsub.Message{msg("c")})
	if !errors.Is(err, state.ErrUnavailable) {
		t.Fatalf("a transaction past the limit = %v, want ErrUnavailable", err)
	}
	if it, _, _ := s.Get(ctx, "k"); string(it.Value) != "1" {
		t.Fatalf("the refused transaction wrote %q", it.Value)
	}
	// A message already held takes no room.
	if err := s.TransactWithOutbox(ctx, set("3"), []pubsub.Message{msg("a")}); err != nil {
		t.Fatalf("re-recording a held message: %v", err)
	}
}
