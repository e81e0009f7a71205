package statetest

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/blockgate/blockgate/blocks/pubsub"
	"github.com/blockgate/blockgate/blocks/state"
	"github.com/blockgate/blockgate/tenants"
)

// Pending returns the outbox messages of tenant that store s holds and no
// relay has published yet, oldest first. The suite runs no relay, so every
// message a committed transaction recorded is pending.
type Pending func(t *testing.T, s state.Store, tenant tenants.ID) []pubsub.Message

// RunOutbox runs the conformance suite of state.OutboxTransactor against
// the stores open returns, which must implement it: messages are recorded
// if and only if their transaction commits.
func RunOutbox(t *testing.T, open Opener, pending Pending) {
	tests := []struct {
		name string
		run  func(t *testing.T, o *outboxH)
	}{
		{"CommitRecords", testOutboxCommit},
		{"FailedCheckRecordsNothing", testOutboxFailedCheck},
		{"WithoutMessages", testOutboxWithoutMessages},
		{"DuplicateID", testOutboxDuplicateID},
		{"TenantIsolation", testOutboxTenantIsolation},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, &outboxH{h: h{open: open}, pending: pending})
		})
	}
}

type outboxH struct {
	h
	pending Pending
}

// store opens a fresh tenant's store as an OutboxTransactor.
func (o *outboxH) store(t *testing.T) (tenants.ID, state.Store, state.OutboxTransactor) {
	t.Helper()
	tn := o.tenant()
	s := o.open(t, tn, "statestore")
	otx, ok := s.(state.OutboxTransactor)
	if !ok {
		t.Fatalf("%T does not implement state.OutboxTransactor", s)
	}
	return tn, s, otx
}

func message(tenant tenants.ID, id, data string) pubsub.Message {
	return pubsub.Message{
		Tenant: tenant, Pubsub: "pubsub", Topic: "orders", ID: id, Data: []byte(data),
		ContentType: pubsub.ContentTypeCloudEvent,
	}
}

// sameMessages compares what matters of two message lists, in order.
func sameMessages(got, want []pubsub.Message) error {
	if len(got) != len(want) {
		return fmt.Errorf("%d messages, want %d", len(got), len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.Tenant != w.Tenant || g.Pubsub != w.Pubsub || g.Topic != w.Topic || g.ID != w.ID ||
			!bytes.Equal(g.Data, w.Data) || g.ContentType != w.ContentType || g.PartitionKey != w.PartitionKey ||
			!g.Expires.Equal(w.Expires) || !maps.Equal(g.Metadata, w.Metadata) {
			return fmt.Errorf("message %d = %+v, want %+v", i, g, w)
		}
	}
	return nil
}

func ids(msgs []pubsub.Message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.ID
	}
	return out
}

func testOutboxCommit(t *testing.T, o *outboxH) {
	ctx := t.Context()
	tn, s, otx := o.store(t)
	if err := s.Set(ctx, state.SetRequest{Key: "gone", Value: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	first := message(tn, "m1", `{"n":1}`)
	second := message(tn, "m2", "\x00\xffbinary")
	second.ContentType = "application/octet-stream"
	second.PartitionKey = "order-7"
	second.Expires = time.Now().Add(time.Hour).UTC().Truncate(time.Millisecond)
	second.Metadata = map[string]string{"traceparent": "00-abc-def-01"}
	msgs := []pubsub.Message{first, second}
	err := otx.TransactWithOutbox(ctx, []state.Operation{
		{Set: &state.SetRequest{Key: "a", Value: []byte(`{"n":1}`)}},
		{Set: &state.SetRequest{Key: "b", Value: []byte("2")}},
		{Delete: &state.DeleteRequest{Key: "gone"}},
	}, msgs)
	if err != nil {
		t.Fatal(err)
	}
	if it, ok, err := s.Get(ctx, "a"); err != nil || !ok || string(it.Value) != `{"n":1}` {
		t.Fatalf("Get(a) = %+v, %v, %v", it, ok, err)
	}
	if _, ok, _ := s.Get(ctx, "gone"); ok {
		t.Fatal("the transaction's delete did not apply")
	}
	if err := sameMessages(o.pending(t, s, tn), msgs); err != nil {
		t.Fatalf("pending after commit: %v", err)
	}
}

func testOutboxFailedCheck(t *testing.T, o *outboxH) {
	ctx := t.Context()
	tn, s, otx := o.store(t)
	if err := s.Set(ctx, state.SetRequest{Key: "k", Value: []byte("v1")}); err != nil {
		t.Fatal(err)
	}
	it, _, err := s.Get(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	stale := "stale-" + it.ETag
	cases := []struct {
		name string
		ops  []state.Operation
	}{
		{"stale ETag on a set", []state.Operation{
			{Set: &state.SetRequest{Key: "other", Value: []byte("x")}},
			{Set: &state.SetRequest{Key: "k", Value: []byte("v2"), ETag: &stale}},
		}},
		{"stale ETag on a delete", []state.Operation{
			{Set: &state.SetRequest{Key: "other", Value: []byte("x")}},
			{Delete: &state.DeleteRequest{Key: "k", ETag: &stale}},
		}},
		{"first-write on an existing key", []state.Operation{
			{Set: &state.SetRequest{Key: "other", Value: []byte("x")}},
			{Set: &state.SetRequest{Key: "k", Value: []byte("v2"), FirstWrite: true}},
		}},
	}
	for i, c := range cases {
		err := otx.TransactWithOutbox(ctx, c.ops, []pubsub.Message{message(tn, fmt.Sprintf("m%d", i), "x")})
		if !errors.Is(err, state.ErrETagMismatch) {
			t.Fatalf("%s: err = %v, want ErrETagMismatch", c.name, err)
		}
		if got := o.pending(t, s, tn); len(got) != 0 {
			t.Fatalf("%s: rolled back, yet pending %v", c.name, ids(got))
		}
		if _, ok, _ := s.Get(ctx, "other"); ok {
			t.Fatalf("%s: rolled back, yet the other write applied", c.name)
		}
		if got, _, _ := s.Get(ctx, "k"); string(got.Value) != "v1" || got.ETag != it.ETag {
			t.Fatalf("%s: k = %+v after the rollback", c.name, got)
		}
	}
	// With the right ETag the same transaction commits with its message.
	err = otx.TransactWithOutbox(ctx, []state.Operation{{Set: &state.SetRequest{Key: "k", Value: []byte("v2"), ETag: &it.ETag}}},
		[]pubsub.Message{message(tn, "ok", "v2")})
	if err != nil {
		t.Fatal(err)
	}
	if got := o.pending(t, s, tn); !slices.Equal(ids(got), []string{"ok"}) {
		t.Fatalf("pending = %v, want [ok]", ids(got))
	}
}

func testOutboxWithoutMessages(t *testing.T, o *outboxH) {
	ctx := t.Context()
	tn, s, otx := o.store(t)
	if err := otx.TransactWithOutbox(ctx, []state.Operation{{Set: &state.SetRequest{Key: "k", Value: []byte("v")}}}, nil); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.Get(ctx, "k"); !ok {
		t.Fatal("the write did not apply")
	}
	if err := otx.TransactWithOutbox(ctx, nil, nil); err != nil {
		t.Fatalf("empty transaction: %v", err)
	}
	if got := o.pending(t, s, tn); len(got) != 0 {
		t.Fatalf("pending %v without messages", ids(got))
	}
}

func testOutboxDuplicateID(t *testing.T, o *outboxH) {
	ctx := t.Context()
	tn, s, otx := o.store(t)
	set := []state.Operation{{Set: &state.SetRequest{Key: "k", Value: []byte("v")}}}
	m := message(tn, "same", "first")
	if err := otx.TransactWithOutbox(ctx, set, []pubsub.Message{m, m}); err != nil {
		t.Fatal(err)
	}
	again := message(tn, "same", "second")
	if err := otx.TransactWithOutbox(ctx, set, []pubsub.Message{again, message(tn, "new", "x")}); err != nil {
		t.Fatal(err)
	}
	got := o.pending(t, s, tn)
	if !slices.Equal(ids(got), []string{"same", "new"}) || string(got[0].Data) != "first" {
		t.Fatalf("pending = %v, want the first 'same' once, then 'new'", ids(got))
	}
}

func testOutboxTenantIsolation(t *testing.T, o *outboxH) {
	ctx := t.Context()
	ta, sa, a := o.store(t)
	tb, sb, _ := o.store(t)
	set := []state.Operation{{Set: &state.SetRequest{Key: "k", Value: []byte("v")}}}
	if err := a.TransactWithOutbox(ctx, set, []pubsub.Message{message(ta, "m", "A's")}); err != nil {
		t.Fatal(err)
	}
	if got := o.pending(t, sb, tb); len(got) != 0 {
		t.Fatalf("tenant %s sees tenant %s's messages %v", tb, ta, ids(got))
	}
	if got := o.pending(t, sa, ta); len(got) != 1 || got[0].Tenant != ta {
		t.Fatalf("tenant %s pending = %+v", ta, got)
	}
}
