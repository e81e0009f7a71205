package pubsubjs

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/blockgate/blockgate/blocks/pubsub"
	"github.com/blockgate/blockgate/gateway/gatewaynats/gatewaynatstest"
	"github.com/blockgate/blockgate/tenants"
)

// TestReplicasGrow: a stream made with one replica moves to three on its
// next use after SetReplicas(3), and a Broker that would give it fewer
// (a node with a smaller view of the cluster) leaves it at three.
func TestReplicasGrow(t *testing.T) {
	servers := gatewaynatstest.Cluster(t, 3)
	broker := func(i, replicas int) (*Broker, jetstream.JetStream) {
		nc, err := nats.Connect(servers[i].ClientURL())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		b, err := New(nc, Config{Replicas: replicas, Logger: testLogger()})
		if err != nil {
			t.Fatal(err)
		}
		js, _ := jetstream.New(nc)
		return b, js
	}
	replicas := func(js jetstream.JetStream) int {
		t.Helper()
		st, err := js.Stream(t.Context(), streamName("tenant-a"))
		if err != nil {
			t.Fatal(err)
		}
		return st.CachedInfo().Config.Replicas
	}
	msg := pubsub.Message{Tenant: "tenant-a", Pubsub: "ps", Topic: "t", Data: []byte("x")}

	a, js := broker(0, 1)
	msg.ID = "1"
	if err := a.Publish(t.Context(), msg); err != nil {
		t.Fatal(err)
	}
	if r := replicas(js); r != 1 {
		t.Fatalf("replicas %d, want 1", r)
	}
	a.SetReplicas(3)
	a.SetReplicas(2) // never lowers
	msg.ID = "2"
	if err := a.Publish(t.Context(), msg); err != nil {
		t.Fatal(err)
	}
	if r := replicas(js); r != 3 {
		t.Fatalf("after SetReplicas(3) and a publish: replicas %d, want 3", r)
	}

	b, _ := broker(1, 1)
	msg.ID = "3"
	if err := b.Publish(t.Context(), msg); err != nil {
		t.Fatal(err)
	}
	if err := b.ApplyLimits(t.Context(), "tenant-a"); err != nil {
		t.Fatal(err)
	}
	if r := replicas(js); r != 3 {
		t.Fatalf("a Broker with Replicas 1 scaled the stream down to %d", r)
	}
}

// TestConcurrentFirstUse: nodes that use a new tenant at the same moment
// each get its stream without waiting out a timeout (JetStream leaves
// lookups of a stream that has no leader yet unanswered).
func TestConcurrentFirstUse(t *testing.T) {
	servers := gatewaynatstest.Cluster(t, 3)
	brokers := make([]*Broker, len(servers))
	for i, s := range servers {
		nc, err := nats.Connect(s.ClientURL())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		// A timeout well under the stall the lookups would cause.
		if brokers[i], err = New(nc, Config{Replicas: 3, Timeout: 2 * time.Second, Logger: testLogger()}); err != nil {
			t.Fatal(err)
		}
	}
	for round := range 5 {
		tenant := tenants.ID(fmt.Sprintf("tenant-%d", round))
		errs := make(chan error, len(brokers))
		for i, b := range brokers {
			go func() {
				errs <- b.Publish(t.Context(), pubsub.Message{Tenant: tenant, Pubsub: "ps", Topic: "t", ID: strconv.Itoa(i), Data: []byte("x")})
			}()
		}
		for range brokers {
			if err := <-errs; err != nil {
				t.Fatalf("%s: %v", tenant, err)
			}
		}
	}
}

// TestBatchRidesOutLeaderLoss: a batch published right after the server
// leading the tenant's stream dies is stored whole, once per message, when
// the request's time covers the election.
func TestBatchRidesOutLeaderLoss(t *testing.T) {
	servers := gatewaynatstest.Cluster(t, 3)
	const tenant = tenants.ID("tenant-a")
	connect := func(i int) (*Broker, jetstream.JetStream) {
		nc, err := nats.Connect(servers[i].ClientURL(), nats.MaxReconnects(-1))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		b, err := New(nc, Config{Replicas: 3, Logger: testLogger()})
		if err != nil {
			t.Fatal(err)
		}
		js, _ := jetstream.New(nc)
		return b, js
	}
	msg := func(id string) pubsub.Message {
		return pubsub.Message{Tenant: tenant, Pubsub: "ps", Topic: "t", ID: id, Data: []byte(id)}
	}
	first, js := connect(0)
	if err := first.Publish(t.Context(), msg("warm")); err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(t.Context(), streamName(tenant))
	if err != nil {
		t.Fatal(err)
	}
	leader := st.CachedInfo().Cluster.Leader
	var survivor int
	for i, s := range servers {
		if fmt.Sprintf("n%d", i+1) == leader { // gatewaynatstest's names
			s.Close()
		} else {
			survivor = i
		}
	}
	b, js := connect(survivor)

	msgs := make([]pubsub.Message, 50)
	for i := range msgs {
		msgs[i] = msg(strconv.Itoa(i))
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	began := time.Now()
	for i, err := range b.PublishBatch(ctx, msgs) {
		if err != nil {
			t.Fatalf("entry %d after the leader %s died: %v", i, leader, err)
		}
	}
	t.Logf("the batch was stored %s after the leader %s died", time.Since(began).Round(100*time.Millisecond), leader)
	st, err = js.Stream(ctx, streamName(tenant))
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := info.State.Msgs, uint64(len(msgs)+1); got != want {
		t.Fatalf("the stream holds %d messages, want %d: each once", got, want)
	}
}
