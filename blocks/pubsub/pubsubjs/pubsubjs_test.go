package pubsubjs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/blockgate/blockgate/blocks/pubsub"
	"github.com/blockgate/blockgate/tenants"
)

func TestRoundtrip(t *testing.T) {
	e := newEnv(t, Config{})
	allBytes := make([]byte, 256)
	for i := range allBytes {
		allBytes[i] = byte(i)
	}
	expires := time.Now().Add(time.Hour).Round(0)
	tests := []struct {
		name string
		msg  pubsub.Message
	}{
		{"cloudevent", pubsub.Message{ID: "ce-1", Data: []byte(`{"specversion":"1.0","id":"ce-1","data":{"a":1}}`),
			ContentType: "application/cloudevents+json"}},
		{"raw bytes", pubsub.Message{ID: "raw-1", Data: allBytes, ContentType: "application/octet-stream",
			Metadata: map[string]string{"rawPayload": "true"}}},
		{"empty data", pubsub.Message{ID: "empty-1"}},
		{"large data", pubsub.Message{ID: "large-1", Data: bytes.Repeat([]byte("0123456789abcdef"), 50_000)}},
		{"partition key and expiry", pubsub.Message{ID: "keyed-1", Data: []byte("k"), PartitionKey: "order 42\n",
			Expires: expires}},
		{"hostile metadata", pubsub.Message{ID: " id with spaces\r\n", Data: []byte("m"), Metadata: map[string]string{
			"cloudevent.id": "x", "traceparent": "00-abc-def-01", "": "empty key", "Nats-Msg-Id": "not a dedupe id",
			"spaces ": " lead and trail ", "newline": "a\r\nNats-Msg-Id: injected", "b64:": "b64:AAAA", "unicode-é": "日本",
			"bad-utf8": "\xff\xfe", "empty": "",
		}}},
		{"hostile topic", pubsub.Message{ID: "h-1", Data: []byte("h"), Topic: "t.other.*.>"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := tt.msg
			want.Tenant, want.Pubsub = "tenant-a", "ps"
			if want.Topic == "" {
				want.Topic = "roundtrip " + tt.name
			}
			if err := e.b.Publish(t.Context(), want); err != nil {
				t.Fatal(err)
			}
			var r recorder
			stop := consume(t, e.b, pubsub.Spec{Tenant: want.Tenant, Pubsub: want.Pubsub, Topic: want.Topic, Group: "app"}, r.acking(t))
			waitFor(t, "the message", func() bool { return r.len() >= 1 })
			if err := stop(); !errors.Is(err, context.Canceled) {
				t.Errorf("Consume returned %v, want context.Canceled", err)
			}
			got := r.all()
			if len(got) != 1 {
				t.Fatalf("%d deliveries, want 1", len(got))
			}
			checkMessage(t, got[0].msg, want)
			if got[0].attempt != 1 || got[0].final {
				t.Errorf("attempt %d final %v, want 1 false", got[0].attempt, got[0].final)
			}
		})
	}
}

func checkMessage(t *testing.T, got, want pubsub.Message) {
	t.Helper()
	if got.Tenant != want.Tenant || got.Pubsub != want.Pubsub || got.Topic != want.Topic {
		t.Errorf("delivered on %s/%s/%q, want %s/%s/%q", got.Tenant, got.Pubsub, got.Topic, want.Tenant, want.Pubsub, want.Topic)
	}
	if got.ID != want.ID {
		t.Errorf("ID %q, want %q", got.ID, want.ID)
	}
	if !bytes.Equal(got.Data, want.Data) {
		t.Errorf("data differs: %d bytes, want %d", len(got.Data), len(want.Data))
	}
	if got.ContentType != want.ContentType || got.PartitionKey != want.PartitionKey {
		t.Errorf("content type %q key %q, want %q %q", got.ContentType, got.PartitionKey, want.ContentType, want.PartitionKey)
	}
	if !got.Expires.Equal(want.Expires) {
		t.Errorf("expires %v, want %v", got.Expires, want.Expires)
	}
	if len(got.Metadata)+len(want.Metadata) > 0 && !maps.Equal(got.Metadata, want.Metadata) {
		t.Errorf("metadata %q, want %q", got.Metadata, want.Metadata)
	}
}

func TestDedupe(t *testing.T) {
	e := newEnv(t, Config{})
	const tenant = "tenant-a"
	msg := pubsub.Message{Tenant: tenant, Pubsub: "ps", Topic: "orders", ID: "dup", Data: []byte("1"), PartitionKey: "k"}
	for i := range 2 {
		if err := e.b.Publish(t.Context(), msg); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	// The same ID on another topic is another message.
	other := msg
	other.Topic = "invoices"
	if err := e.b.Publish(t.Context(), other); err != nil {
		t.Fatal(err)
	}
	// So is a batch repeating it.
	for i, err := range e.b.PublishBatch(t.Context(), []pubsub.Message{msg, msg}) {
		if err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
	}
	last := msg
	last.ID = "last"
	if err := e.b.Publish(t.Context(), last); err != nil {
		t.Fatal(err)
	}
	if n := streamMsgs(t, e, tenant); n != 3 {
		t.Errorf("stream holds %d messages, want 3", n)
	}
	var r recorder
	consume(t, e.b, pubsub.Spec{Tenant: tenant, Pubsub: "ps", Topic: "orders", Group: "app"}, r.acking(t))
	// Same key: once "last" is in, everything before it was delivered.
	waitFor(t, "the last message", func() bool { return r.len() >= 2 })
	var ids []string
	for _, d := range r.all() {
		ids = append(ids, d.msg.ID)
	}
	if strings.Join(ids, ",") != "dup,last" {
		t.Errorf("delivered %v, want [dup last]", ids)
	}
}

func TestPublishBatch(t *testing.T) {
	e := newEnv(t, Config{})
	const n = 1000
	msgs := numbered("tenant-a", "bulk", "m", n)
	publishAll(t, e.b, msgs)
	if got := streamMsgs(t, e, "tenant-a"); got != n {
		t.Fatalf("stream holds %d messages, want %d", got, n)
	}
	var r recorder
	consume(t, e.b, pubsub.Spec{Tenant: "tenant-a", Pubsub: "ps", Topic: "bulk", Group: "app"}, r.acking(t))
	waitFor(t, "all messages", func() bool { return r.len() >= n })
	checkOnce(t, r.all(), msgs)
}

// checkOnce checks that every message was delivered exactly once.
func checkOnce(t *testing.T, got []delivered, want []pubsub.Message) {
	t.Helper()
	seen := map[string]int{}
	for _, d := range got {
		seen[d.msg.ID]++
	}
	for _, m := range want {
		if seen[m.ID] != 1 {
			t.Errorf("%s delivered %d times", m.ID, seen[m.ID])
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d deliveries of %d messages", len(got), len(want))
	}
}

func TestCompetingConsumers(t *testing.T) {
	tests := []struct {
		name   string
		groups []string
		shared bool // the calls split the messages, rather than each getting all
	}{
		{"same group splits", []string{"app", "app"}, true},
		{"different groups each get all", []string{"app-1", "app-2"}, false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, Config{})
			topic := fmt.Sprintf("topic-%d", i)
			recs := make([]*recorder, len(tt.groups))
			for j, g := range tt.groups {
				recs[j] = &recorder{}
				spec := pubsub.Spec{Tenant: "tenant-a", Pubsub: "ps", Topic: topic, Group: g, MaxInFlight: 20}
				consume(t, e.b, spec, recs[j].acking(t))
			}
			calls := map[string]int{} // group → its Consume calls
			for _, g := range tt.groups {
				calls[g]++
			}
			for g, n := range calls {
				waitConsuming(t, e, pubsub.Spec{Tenant: "tenant-a", Pubsub: "ps", Topic: topic, Group: g}, n)
			}
			const n = 500
			msgs := numbered("tenant-a", topic, "m", n)
			publishAll(t, e.b, msgs)
			if tt.shared {
				var all []delivered
				waitFor(t, "all messages", func() bool { return recs[0].len()+recs[1].len() >= n })
				for j, r := range recs {
					got := r.all()
					if len(got) == 0 {
						t.Errorf("Consume call %d got nothing", j)
					}
					all = append(all, got...)
				}
				checkOnce(t, all, msgs)
				return
			}
			for j, r := range recs {
				waitFor(t, "all messages", func() bool { return r.len() >= n })
				t.Run(tt.groups[j], func(t *testing.T) { checkOnce(t, r.all(), msgs) })
			}
		})
	}
}

func TestSettlement(t *testing.T) {
	tests := []struct {
		name string
		// settle settles a delivery.
		settle func(d pubsub.Delivery) error
		// want is the attempts and finals of the deliveries, in order.
		want []delivered
	}{
		{
			name: "retry redelivers",
			settle: func(d pubsub.Delivery) error {
				if d.Attempt() == 1 {
					return d.Retry(0)
				}
				return d.Ack()
			},
			want: []delivered{{attempt: 1}, {attempt: 2}},
		},
		{
			name:   "retry with delay",
			settle: func(d pubsub.Delivery) error { return retryOnce(d, 20*time.Millisecond) },
			want:   []delivered{{attempt: 1}, {attempt: 2}},
		},
		{
			name:   "drop is final",
			settle: func(d pubsub.Delivery) error { return d.Drop() },
			want:   []delivered{{attempt: 1}},
		},
		{
			name:   "max deliver",
			settle: func(d pubsub.Delivery) error { return d.Retry(0) },
			want:   []delivered{{attempt: 1}, {attempt: 2}, {attempt: 3, final: true}},
		},
		{
			name: "a panicking handler retries",
			settle: func(d pubsub.Delivery) error {
				if d.Attempt() == 1 {
					panic("handler bug")
				}
				return d.Ack()
			},
			want: []delivered{{attempt: 1}, {attempt: 2}},
		},
		{
			name: "in progress then ack",
			settle: func(d pubsub.Delivery) error {
				if err := d.InProgress(); err != nil {
					return err
				}
				return d.Ack()
			},
			want: []delivered{{attempt: 1}},
		},
	}
	e := newEnv(t, Config{})
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := pubsub.Spec{Tenant: "tenant-a", Pubsub: "ps", Topic: fmt.Sprintf("settle-%d", i), Group: "app",
				MaxDeliver: 3, Backoff: []time.Duration{10 * time.Millisecond}}
			msg := pubsub.Message{Tenant: spec.Tenant, Pubsub: spec.Pubsub, Topic: spec.Topic, ID: "id-1", Data: []byte("x")}
			if err := e.b.Publish(t.Context(), msg); err != nil {
				t.Fatal(err)
			}
			var r recorder
			consume(t, e.b, spec, func(d pubsub.Delivery) {
				r.add(d)
				if err := tt.settle(d); err != nil {
					t.Errorf("settling: %v", err)
				}
				if err := d.Ack(); !errors.Is(err, errSettled) {
					t.Errorf("second settlement: %v, want errSettled", err)
				}
			})
			waitFor(t, "deliveries", func() bool { return r.len() >= len(tt.want) })
			waitSettled(t, e, spec)
			got := r.all()
			if len(got) != len(tt.want) {
				t.Fatalf("%d deliveries, want %d", len(got), len(tt.want))
			}
			for j, d := range got {
				if d.msg.ID != msg.ID || d.attempt != tt.want[j].attempt || d.final != tt.want[j].final {
					t.Errorf("delivery %d: id %q attempt %d final %v, want %q %d %v",
						j, d.msg.ID, d.attempt, d.final, msg.ID, tt.want[j].attempt, tt.want[j].final)
				}
			}
		})
	}
}

// TestMaxInFlight: deliveries settled after handle returns still count
// against MaxInFlight until they are settled.
func TestMaxInFlight(t *testing.T) {
	e := newEnv(t, Config{})
	const maxInFlight, n = 3, 60
	spec := pubsub.Spec{Tenant: "tenant-a", Pubsub: "ps", Topic: "t", Group: "app", MaxInFlight: maxInFlight}
	msgs := numbered(spec.Tenant, spec.Topic, "m", n)
	for i := range msgs {
		if i%2 == 0 {
			msgs[i].PartitionKey = fmt.Sprint(i % 10) // keyed and unkeyed share the bound
		}
	}
	publishAll(t, e.b, msgs)
	var (
		mu                    sync.Mutex
		unsettled, most, done int
	)
	settle := make(chan pubsub.Delivery, n)
	go func() {
		for d := range settle {
			time.Sleep(time.Millisecond) // let others pile up
			mu.Lock()
			unsettled--
			done++
			mu.Unlock()
			if err := d.Ack(); err != nil {
				t.Error(err)
			}
		}
	}()
	defer close(settle)
	consume(t, e.b, spec, func(d pubsub.Delivery) {
		mu.Lock()
		unsettled++
		most = max(most, unsettled)
		mu.Unlock()
		settle <- d // settled later, on another goroutine
	})
	waitFor(t, "all messages", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return done >= n
	})
	mu.Lock()
	defer mu.Unlock()
	if most > maxInFlight {
		t.Errorf("%d deliveries unsettled at once, MaxInFlight is %d", most, maxInFlight)
	}
}

func retryOnce(d pubsub.Delivery, delay time.Duration) error {
	if d.Attempt() == 1 {
		return d.Retry(delay)
	}
	return d.Ack()
}

// TestPartitionOrder: two competing Consume calls whose handlers retry some
// first attempts still process each key's messages in publish order.
func TestPartitionOrder(t *testing.T) {
	e := newEnv(t, Config{})
	const (
		n    = 200
		keys = 5
	)
	spec := pubsub.Spec{Tenant: "tenant-a", Pubsub: "ps", Topic: "ordered", Group: "app",
		Backoff: []time.Duration{5 * time.Millisecond}, MaxInFlight: 4}
	msgs := make([]pubsub.Message, n)
	for i := range msgs {
		key := fmt.Sprintf("key-%d", i%keys)
		msgs[i] = pubsub.Message{Tenant: spec.Tenant, Pubsub: spec.Pubsub, Topic: spec.Topic,
			ID: fmt.Sprintf("%s/%03d", key, i), PartitionKey: key, Data: []byte(key)}
	}
	var (
		mu      sync.Mutex
		order   = map[string][]string{} // key → ids in the order they were acked
		retries int
	)
	handle := func(d pubsub.Delivery) {
		m := d.Message()
		if d.Attempt() == 1 && fnv1a(m.ID)%4 == 0 {
			mu.Lock()
			retries++
			mu.Unlock()
			if err := d.Retry(0); err != nil {
				t.Error(err)
			}
			return
		}
		mu.Lock()
		order[m.PartitionKey] = append(order[m.PartitionKey], m.ID)
		mu.Unlock()
		if err := d.Ack(); err != nil {
			t.Error(err)
		}
	}
	consume(t, e.b, spec, handle)
	consume(t, e.b, spec, handle)
	publishAll(t, e.b, msgs)
	waitFor(t, "all messages", func() bool {
		mu.Lock()
		defer mu.Unlock()
		total := 0
		for _, ids := range order {
			total += len(ids)
		}
		return total >= n
	})
	mu.Lock()
	defer mu.Unlock()
	if retries == 0 {
		t.Fatal("no message was retried: the test proves nothing")
	}
	for k := range keys {
		key := fmt.Sprintf("key-%d", k)
		var want []string
		for _, m := range msgs {
			if m.PartitionKey == key {
				want = append(want, m.ID)
			}
		}
		if got := order[key]; strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("%s processed in order\n%v\nwant\n%v", key, got, want)
		}
	}
}

func TestExpiry(t *testing.T) {
	tests := []struct {
		name    string
		expires time.Duration // from publishing
		// waitTTL waits for JetStream to remove the message before consuming.
		waitTTL bool
	}{
		{"expired before publishing: the consumer drops it", -time.Second, false},
		{"expired on the server: JetStream removes it", time.Second, true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, Config{})
			tenant := tenants.ID(fmt.Sprintf("tenant-%d", i))
			spec := pubsub.Spec{Tenant: tenant, Pubsub: "ps", Topic: "expiring", Group: "app"}
			base := pubsub.Message{Tenant: tenant, Pubsub: "ps", Topic: spec.Topic, PartitionKey: "k"}
			expired, control := base, base
			expired.ID, expired.Expires = "expired", time.Now().Add(tt.expires)
			control.ID = "control"
			publishAll(t, e.b, []pubsub.Message{expired, control})
			if tt.waitTTL {
				waitFor(t, "JetStream to remove the expired message", func() bool { return streamMsgs(t, e, tenant) == 1 })
			}
			var r recorder
			consume(t, e.b, spec, r.acking(t))
			// Same key: when control arrives, the expired message is behind us.
			waitFor(t, "the control message", func() bool { return r.len() >= 1 })
			waitSettled(t, e, spec)
			for _, d := range r.all() {
				if d.msg.ID != "control" {
					t.Errorf("delivered %q", d.msg.ID)
				}
			}
		})
	}
}

func TestTenantIsolation(t *testing.T) {
	// Two partitions: the test runs 2 × 37 subscriptions of 1 + Partitions
	// consumers each.
	e := newEnv(t, Config{Partitions: 2})
	const a, b = tenants.ID("tenant-a"), tenants.ID("tenant-b")
	topics := hostileTopics
	recsA := map[string]*recorder{}
	recsB := map[string]*recorder{}
	for _, topic := range topics {
		recsA[topic], recsB[topic] = &recorder{}, &recorder{}
		consume(t, e.b, pubsub.Spec{Tenant: a, Pubsub: "ps", Topic: topic, Group: "app"}, recsA[topic].acking(t))
		consume(t, e.b, pubsub.Spec{Tenant: b, Pubsub: "ps", Topic: topic, Group: "app"}, recsB[topic].acking(t))
	}
	var msgs []pubsub.Message
	for _, topic := range topics {
		msgs = append(msgs, pubsub.Message{Tenant: a, Pubsub: "ps", Topic: topic, ID: "a:" + topic, Data: []byte(topic)})
	}
	publishAll(t, e.b, msgs)
	for _, topic := range topics {
		r := recsA[topic]
		waitFor(t, fmt.Sprintf("tenant A's message on %q", topic), func() bool { return r.len() >= 1 })
		waitSettled(t, e, pubsub.Spec{Tenant: a, Pubsub: "ps", Topic: topic, Group: "app"})
		if got := r.all(); len(got) != 1 || got[0].msg.ID != "a:"+topic || got[0].msg.Tenant != a {
			t.Errorf("tenant A on %q got %v, want its own message only", topic, got)
		}
	}
	if n := streamMsgs(t, e, b); n != 0 {
		t.Errorf("tenant B's stream holds %d messages", n)
	}
	for _, topic := range topics {
		waitSettled(t, e, pubsub.Spec{Tenant: b, Pubsub: "ps", Topic: topic, Group: "app"})
		if got := recsB[topic].len(); got != 0 {
			t.Errorf("tenant B on %q got %d of tenant A's messages", topic, got)
		}
	}
	// Tenant ids are never escaped, so invalid ones are refused.
	for _, bad := range []tenants.ID{"", "t.b", "*", ">", "A"} {
		if err := e.b.Publish(t.Context(), pubsub.Message{Tenant: bad, Pubsub: "ps", Topic: "x"}); err == nil {
			t.Errorf("published for tenant %q", bad)
		}
	}
}

func TestQuota(t *testing.T) {
	var (
		mu    sync.Mutex
		limit = int64(64 << 10)
	)
	e := newEnv(t, Config{TenantMaxBytes: func(id tenants.ID) int64 {
		mu.Lock()
		defer mu.Unlock()
		if id == "small" {
			return limit
		}
		return 0
	}})
	msg := func(tenant tenants.ID, i int) pubsub.Message {
		return pubsub.Message{Tenant: tenant, Pubsub: "ps", Topic: "t", ID: fmt.Sprint(i), Data: make([]byte, 4<<10)}
	}
	var err error
	for i := 0; i < 100 && err == nil; i++ {
		err = e.b.Publish(t.Context(), msg("small", i))
	}
	if !errors.Is(err, pubsub.ErrQuotaExceeded) {
		t.Fatalf("publishing past the limit: %v, want ErrQuotaExceeded", err)
	}
	errs := e.b.PublishBatch(t.Context(), []pubsub.Message{msg("small", 1000), msg("big", 1000)})
	if !errors.Is(errs[0], pubsub.ErrQuotaExceeded) || errs[1] != nil {
		t.Errorf("batch: %v, want [ErrQuotaExceeded, nil]", errs)
	}
	mu.Lock()
	limit = 1 << 20
	mu.Unlock()
	if err := e.b.ApplyLimits(t.Context(), "small"); err != nil {
		t.Fatal(err)
	}
	if err := e.b.Publish(t.Context(), msg("small", 2000)); err != nil {
		t.Errorf("publish after raising the limit: %v", err)
	}
}

func TestUnavailable(t *testing.T) {
	tests := []struct {
		name string
		cut  func(e *env)
	}{
		{"server shut down", func(e *env) { e.srv.Close() }},
		{"connection closed", func(e *env) { e.nc.Close() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, Config{Timeout: 500 * time.Millisecond})
			msg := pubsub.Message{Tenant: "tenant-a", Pubsub: "ps", Topic: "t", ID: "1"}
			if err := e.b.Publish(t.Context(), msg); err != nil {
				t.Fatal(err)
			}
			tt.cut(e)
			// No deadline in ctx: Config.Timeout bounds every call.
			ctx := t.Context()
			msg.ID = "2"
			if err := e.b.Publish(ctx, msg); !errors.Is(err, pubsub.ErrUnavailable) {
				t.Errorf("Publish: %v, want ErrUnavailable", err)
			}
			for i, err := range e.b.PublishBatch(ctx, []pubsub.Message{msg, msg}) {
				if !errors.Is(err, pubsub.ErrUnavailable) {
					t.Errorf("PublishBatch %d: %v, want ErrUnavailable", i, err)
				}
			}
			fresh := msg
			fresh.Tenant = "tenant-new" // its stream must be created first
			if err := e.b.Publish(ctx, fresh); !errors.Is(err, pubsub.ErrUnavailable) {
				t.Errorf("Publish for a new tenant: %v, want ErrUnavailable", err)
			}
			spec := pubsub.Spec{Tenant: "tenant-a", Pubsub: "ps", Topic: "t", Group: "app"}
			if err := e.b.Consume(ctx, spec, func(pubsub.Delivery) {}); !errors.Is(err, pubsub.ErrUnavailable) {
				t.Errorf("Consume: %v, want ErrUnavailable", err)
			}
		})
	}
}

// TestConsumerDeleted: Consume reports a consumer deleted under it.
func TestConsumerDeleted(t *testing.T) {
	e := newEnv(t, Config{})
	spec := pubsub.Spec{Tenant: "tenant-a", Pubsub: "ps", Topic: "t", Group: "app"}
	done := make(chan error, 1)
	go func() { done <- e.b.Consume(t.Context(), spec, func(d pubsub.Delivery) { _ = d.Ack() }) }()
	waitConsuming(t, e, spec, 1)
	if err := e.js.DeleteConsumer(t.Context(), streamName(spec.Tenant), consumerName("ps", "t", "app", "u")); err != nil {
		t.Fatal(err)
	}
	err := <-done
	t.Logf("Consume: %v", err)
	if err == nil || errors.Is(err, context.Canceled) {
		t.Errorf("Consume returned %v, want the consumer's failure", err)
	}
}

// TestStreamDeleted: a tenant stream deleted behind the Broker's back is
// created again by the next Publish or Consume.
func TestStreamDeleted(t *testing.T) {
	tests := []struct {
		name  string
		first func(e *env, spec pubsub.Spec) error // after the stream is deleted
	}{
		{"publish", func(e *env, spec pubsub.Spec) error {
			return e.b.Publish(t.Context(), pubsub.Message{Tenant: spec.Tenant, Pubsub: spec.Pubsub, Topic: spec.Topic, ID: "after"})
		}},
		{"consume", func(e *env, spec pubsub.Spec) error {
			// Consume creates its consumers, then runs until ctx ends.
			ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
			defer cancel()
			if err := e.b.Consume(ctx, spec, func(d pubsub.Delivery) { _ = d.Ack() }); !errors.Is(err, context.DeadlineExceeded) {
				return err
			}
			return nil
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, Config{})
			spec := pubsub.Spec{Tenant: "tenant-a", Pubsub: "ps", Topic: "t", Group: "app"}
			if err := e.b.Publish(t.Context(), pubsub.Message{Tenant: spec.Tenant, Pubsub: "ps", Topic: "t", ID: "before"}); err != nil {
				t.Fatal(err)
			}
			if err := e.js.DeleteStream(t.Context(), streamName(spec.Tenant)); err != nil {
				t.Fatal(err)
			}
			if err := tt.first(e, spec); err != nil {
				t.Fatalf("first use after the stream was deleted: %v", err)
			}
			if _, err := e.js.Stream(t.Context(), streamName(spec.Tenant)); err != nil {
				t.Errorf("stream not recreated: %v", err)
			}
		})
	}
}

func TestDeleteSubscription(t *testing.T) {
	e := newEnv(t, Config{})
	spec := pubsub.Spec{Tenant: "tenant-a", Pubsub: "ps", Topic: "t", Group: "app"}
	stop := consume(t, e.b, spec, func(d pubsub.Delivery) { _ = d.Ack() })
	waitConsuming(t, e, spec, 1)
	if err := stop(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Consume: %v", err)
	}
	for i := range 2 { // the second time there is nothing to delete
		if err := e.b.DeleteSubscription(t.Context(), spec); err != nil {
			t.Fatalf("DeleteSubscription %d: %v", i, err)
		}
	}
	for _, p := range e.b.parts(withDefaults(spec)) {
		if _, err := consumerInfo(t, e, spec.Tenant, consumerName("ps", "t", "app", p.suffix)); err == nil {
			t.Errorf("consumer %s still exists", p.suffix)
		}
	}
}

// TestConsumeLeavesNoGoroutines: when Consume returns, its pull loops and
// handlers are gone.
func TestConsumeLeavesNoGoroutines(t *testing.T) {
	e := newEnv(t, Config{})
	msgs := numbered("tenant-a", "t", "m", 50)
	for _, m := range msgs {
		if err := e.b.Publish(t.Context(), m); err != nil {
			t.Fatal(err)
		}
	}
	// The server runs goroutines for each consumer: create them first.
	spec := withDefaults(pubsub.Spec{Tenant: "tenant-a", Pubsub: "ps", Topic: "t", Group: "app"})
	for _, p := range e.b.parts(spec) {
		if _, err := e.b.createConsumer(t.Context(), spec, topicScope("ps", "t"), p); err != nil {
			t.Fatal(err)
		}
	}
	before := goleak.IgnoreCurrent()
	var r recorder
	stop := consume(t, e.b, spec, r.acking(t))
	waitFor(t, "all messages", func() bool { return r.len() >= len(msgs) })
	if err := stop(); !errors.Is(err, context.Canceled) {
		t.Errorf("Consume: %v", err)
	}
	goleak.VerifyNone(t, before)
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"defaults", Config{}, true},
		{"dedupe window longer than max age", Config{MaxAge: time.Minute, DuplicateWindow: time.Hour}, false},
		{"negative replicas", Config{Replicas: -1}, false},
		{"too many partitions", Config{Partitions: 5000}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.setDefaults()
			if err := tt.cfg.Validate(); (err == nil) != tt.ok {
				t.Errorf("Validate: %v, want ok %v", err, tt.ok)
			}
		})
	}
}
