package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	dapr "github.com/dapr/go-sdk/client"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestClusterSDKReconnect shows what a Go SDK client does by itself when
// its node dies, and how a client behind the regional endpoint carries on.
//
// The SDK keeps the one address it was given. Its gRPC connection
// reconnects to that address, with backoff, for as long as the client
// lives; it retries no call, so a call fails with Unavailable while
// nothing answers there. A streaming subscription whose stream breaks
// with Unavailable (or Unknown) subscribes again by itself, on the same
// connection; if that fails, Receive returns an error and the app has to
// subscribe again.
//
// So a client pointed at one node is stuck when that node dies, and the
// app must make a new client to another node. A client pointed at a load
// balancer (here a TCP one, endpoint) gets its new connection from the
// balancer on a live node: at most the calls in flight when the node died
// fail, the next go through, and its subscription resumes on another node
// without the app doing anything.
func TestClusterSDKReconnect(t *testing.T) {
	c := startCluster(t, 3)
	n1, n2, n3 := c.nodes[0], c.nodes[1], c.nodes[2]
	tok := n1.token()
	stamp := time.Now().UnixNano()
	directTopic, balancedTopic := fmt.Sprintf("direct-%d", stamp), fmt.Sprintf("balanced-%d", stamp)

	direct := goClient(t, n2, tok) // at node 2's own address
	e := c.endpoint(t, 1, grpcPort)
	balanced := e.sdkClient(t, tok) // at the endpoint, which sends it to node 2
	directSub := subscribe(t, direct, dapr.SubscriptionOptions{PubsubName: "pubsub", Topic: directTopic})
	balancedSub := subscribe(t, balanced, dapr.SubscriptionOptions{PubsubName: "pubsub", Topic: balancedTopic})
	publish := func(topic, body string) {
		t.Helper()
		if st, _, b := do(t, n1, tok, "POST", "/v1.0/publish/pubsub/"+topic, strings.NewReader(body),
			"Content-Type", "application/json"); st != http.StatusNoContent {
			t.Fatalf("publish on node 1: %d %s", st, b)
		}
	}
	for _, s := range []struct {
		sub   *dapr.Subscription
		topic string
	}{{directSub, directTopic}, {balancedSub, balancedTopic}} {
		publish(s.topic, `"before"`)
		m := receive(t, s.sub, 10*time.Second)
		if string(m.RawData) != `"before"` {
			t.Fatalf("%s: received %s", s.topic, m.RawData)
		}
		m.Success()
	}
	if e.node() != 1 {
		t.Fatalf("the endpoint sent the client to node %d, want node 2", e.node()+1)
	}

	c.kill(t, 1)

	t.Run("a client at the dead node's address fails and stays there", func(t *testing.T) {
		for range 3 {
			err := direct.PublishEvent(t.Context(), "pubsub", directTopic, []byte(`"after"`), dapr.PublishEventWithContentType("application/json"))
			if status.Code(err) != codes.Unavailable {
				t.Fatalf("publish through the dead node: %v, want Unavailable", err)
			}
			time.Sleep(200 * time.Millisecond)
		}
		errs := make(chan error, 1)
		go func() {
			_, err := directSub.Receive()
			errs <- err
		}()
		select {
		case err := <-errs:
			if err == nil {
				t.Fatal("the subscription at the dead node received a message")
			}
			t.Logf("the subscription at the dead node gave up: %v", err)
		case <-time.After(15 * time.Second):
			t.Fatal("the subscription at the dead node neither failed nor received within 15s")
		}
		// The app's way out: a new client at another node's address.
		if err := goClient(t, n3, tok).PublishEvent(t.Context(), "pubsub", directTopic, []byte(`"after"`),
			dapr.PublishEventWithContentType("application/json")); err != nil {
			t.Fatalf("publish through a new client at node 3: %v", err)
		}
	})

	t.Run("a client at the endpoint goes on through another node", func(t *testing.T) {
		var err error
		for attempt := 1; ; attempt++ {
			err = balanced.PublishEvent(t.Context(), "pubsub", balancedTopic, []byte(`"after"`), dapr.PublishEventWithContentType("application/json"))
			if err == nil {
				t.Logf("publish %d through the endpoint succeeded, on node %d", attempt, e.node()+1)
				break
			}
			if status.Code(err) != codes.Unavailable || attempt == 3 {
				t.Fatalf("publish %d through the endpoint: %v", attempt, err)
			}
			t.Logf("publish %d through the endpoint was cut: %v", attempt, err)
		}
		if e.node() == 1 {
			t.Fatal("the endpoint still sends the client to node 2")
		}
		// The SDK subscribes again by itself; the stream resumes on a live
		// node once JetStream has elected leaders for what node 2 led.
		for {
			m := receive(t, balancedSub, 30*time.Second)
			m.Success()
			if string(m.RawData) == `"after"` {
				break
			}
		}
	})
}
