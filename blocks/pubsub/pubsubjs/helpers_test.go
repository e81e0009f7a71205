package pubsubjs

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/blockgate/blockgate/blocks/pubsub"
	"github.com/blockgate/blockgate/gateway/gatewaynats"
	"github.com/blockgate/blockgate/tenants"
)

// env is an embedded NATS server, a connection to it and a Broker on it.
type env struct {
	srv *gatewaynats.Server
	nc  *nats.Conn
	js  jetstream.JetStream
	b   *Broker
}

func testLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// newEnv starts a server for the test; everything stops when it ends.
func newEnv(tb testing.TB, cfg Config) *env {
	tb.Helper()
	srv, err := gatewaynats.Start(tb.Context(), gatewaynats.Config{Port: 0, StoreDir: tb.TempDir(), Logger: testLogger()})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(srv.Close)
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		tb.Fatal(err)
	}
	if cfg.Logger == nil {
		cfg.Logger = testLogger()
	}
	b, err := New(nc, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return &env{srv: srv, nc: nc, js: js, b: b}
}

// consume runs Consume in the background until stop is called or the test
// ends; stop returns Consume's error.
func consume(t *testing.T, b *Broker, spec pubsub.Spec, handle func(pubsub.Delivery)) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- b.Consume(ctx, spec, handle) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			err = <-done
		})
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

// waitFor polls cond until it holds, failing the test after a while.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitConsuming waits until n Consume calls pull from spec's unkeyed
// consumer, so that messages published next are shared among them.
func waitConsuming(t *testing.T, e *env, spec pubsub.Spec, n int) {
	t.Helper()
	name := consumerName(spec.Pubsub, spec.Topic, spec.Group, "u")
	waitFor(t, fmt.Sprintf("%d pull requests on %s", n, name), func() bool {
		info, err := consumerInfo(t, e, spec.Tenant, name)
		return err == nil && info.NumWaiting >= n
	})
}

func consumerInfo(t *testing.T, e *env, tenant tenants.ID, name string) (*jetstream.ConsumerInfo, error) {
	t.Helper()
	c, err := e.js.Consumer(t.Context(), streamName(tenant), name)
	if err != nil {
		return nil, err
	}
	return c.Info(t.Context())
}

// waitSettled waits until none of spec's consumers has a message pending or
// unsettled: from then on nothing more can be delivered to it.
func waitSettled(t *testing.T, e *env, spec pubsub.Spec) {
	t.Helper()
	parts := e.b.parts(withDefaults(spec))
	waitFor(t, "every message settled", func() bool {
		for _, p := range parts {
			info, err := consumerInfo(t, e, spec.Tenant, consumerName(spec.Pubsub, spec.Topic, spec.Group, p.suffix))
			if err != nil || info.NumPending > 0 || info.NumAckPending > 0 {
				return false
			}
		}
		return true
	})
}

// streamMsgs is how many messages the tenant's stream holds.
func streamMsgs(t *testing.T, e *env, tenant tenants.ID) uint64 {
	t.Helper()
	s, err := e.js.Stream(t.Context(), streamName(tenant))
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// recorder collects deliveries.
type recorder struct {
	mu  sync.Mutex
	got []delivered
}

type delivered struct {
	msg     pubsub.Message
	attempt int
	final   bool
}

func (r *recorder) add(d pubsub.Delivery) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, delivered{msg: d.Message(), attempt: d.Attempt(), final: d.Final()})
}

func (r *recorder) all() []delivered {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]delivered(nil), r.got...)
}

func (r *recorder) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got)
}

// acking records and acks every delivery.
func (r *recorder) acking(t *testing.T) func(pubsub.Delivery) {
	return func(d pubsub.Delivery) {
		r.add(d)
		if err := d.Ack(); err != nil {
			t.Errorf("ack %s: %v", d.Message().ID, err)
		}
	}
}

// publishAll publishes msgs in one batch and fails on any error.
func publishAll(t *testing.T, b *Broker, msgs []pubsub.Message) {
	t.Helper()
	for i, err := range b.PublishBatch(t.Context(), msgs) {
		if err != nil {
			t.Fatalf("message %d (%s): %v", i, msgs[i].ID, err)
		}
	}
}

// numbered returns n messages on a topic with ids <prefix>-<i>.
func numbered(tenant tenants.ID, topic, prefix string, n int) []pubsub.Message {
	msgs := make([]pubsub.Message, n)
	for i := range msgs {
		id := fmt.Sprintf("%s-%d", prefix, i)
		msgs[i] = pubsub.Message{Tenant: tenant, Pubsub: "ps", Topic: topic, ID: id, Data: []byte(id)}
	}
	return msgs
}
