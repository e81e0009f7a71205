package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/blockgate/blockgate/tenants"
	dapr "github.com/dapr/go-sdk/client"
	"golang.org/x/sync/errgroup"
)

// TestCompetingConsumers: 1,000 messages from 4 concurrent publishers reach
// 2 competing instances of one app, none missing, and both do work.
func TestCompetingConsumers(t *testing.T) {
	g := sharedGateway(t)
	topic := fmt.Sprintf("work-%d", time.Now().UnixNano())
	const publishers, perPublisher = 4, 250
	var mu sync.Mutex
	seen := map[string]int{} // payload → deliveries acknowledged
	byInstance := [2]int{}
	done := make(chan struct{})
	var once sync.Once
	for i := range 2 {
		sub := subscribe(t, goClient(t, g, g.token()), dapr.SubscriptionOptions{PubsubName: "pubsub", Topic: topic})
		go func() {
			for {
				m, err := sub.Receive()
				if err != nil {
					return
				}
				mu.Lock()
				seen[string(m.RawData)]++
				byInstance[i]++
				if len(seen) == publishers*perPublisher {
					once.Do(func() { close(done) })
				}
				mu.Unlock()
				m.Success()
			}
		}()
	}
	var eg errgroup.Group
	for p := range publishers {
		c := goClient(t, g, g.token())
		eg.Go(func() error {
			for i := range perPublisher {
				if err := c.PublishEvent(t.Context(), "pubsub", topic, []byte(fmt.Sprintf(`"%d-%d"`, p, i)),
					dapr.PublishEventWithContentType("application/json")); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err := eg.Wait(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("received %d of %d distinct messages", len(seen), publishers*perPublisher)
	}
	mu.Lock()
	defer mu.Unlock()
	if byInstance[0] == 0 || byInstance[1] == 0 {
		t.Fatalf("one instance did all the work: %v", byInstance)
	}
}

// TestPartitionKeyOrdering: messages with the same partitionKey arrive in
// publish order, even when the subscriber asks for retries, across two
// competing instances.
func TestPartitionKeyOrdering(t *testing.T) {
	g := sharedGateway(t)
	topic := fmt.Sprintf("ordered-%d", time.Now().UnixNano())
	const keys, perKey = 4, 25
	var mu sync.Mutex
	next := map[string]int{} // key → next expected sequence number
	var failure string
	var retried int
	finished := make(chan struct{})
	var once sync.Once
	for range 2 {
		sub := subscribe(t, goClient(t, g, g.token()), dapr.SubscriptionOptions{PubsubName: "pubsub", Topic: topic,
			Metadata: map[string]string{"backoff": "50ms", "maxDeliver": "20"}})
		go func() {
			for {
				m, err := sub.Receive()
				if err != nil {
					return
				}
				var key string
				var seq int
				fmt.Sscanf(strings.Trim(string(m.RawData), `"`), "%s %d", &key, &seq)
				mu.Lock()
				if seq%7 == 3 && retried < 10 && next[key] == seq {
					retried++
					mu.Unlock()
					m.Retry() // the rest of this key must wait for it
					continue
				}
				if seq != next[key] && failure == "" {
					failure = fmt.Sprintf("key %s: got %d, want %d", key, seq, next[key])
				}
				if seq == next[key] {
					next[key]++
				}
				total := 0
				for _, n := range next {
					total += n
				}
				if total == keys*perKey {
					once.Do(func() { close(finished) })
				}
				mu.Unlock()
				m.Success()
			}
		}()
	}
	c := goClient(t, g, g.token())
	for i := range perKey {
		for k := range keys {
			key := fmt.Sprintf("k%d", k)
			if err := c.PublishEvent(t.Context(), "pubsub", topic, []byte(fmt.Sprintf(`"%s %d"`, key, i)),
				dapr.PublishEventWithContentType("application/json"), dapr.PublishEventWithMetadata(map[string]string{"partitionKey": key})); err != nil {
				t.Fatal(err)
			}
		}
	}
	select {
	case <-finished:
	case <-time.After(90 * time.Second):
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("not all messages arrived in order: %v (%s)", next, failure)
	}
	mu.Lock()
	defer mu.Unlock()
	if failure != "" {
		t.Fatal(failure)
	}
	if retried == 0 {
		t.Fatal("the test never exercised a retry")
	}
}

// TestRawPayloadAndTTL: a raw payload arrives byte for byte; a message whose
// TTL passed before anyone subscribed is never delivered.
func TestRawPayloadAndTTL(t *testing.T) {
	g := sharedGateway(t)
	c := goClient(t, g, g.token())
	topic := fmt.Sprintf("raw-%d", time.Now().UnixNano())
	payload := []byte{0x00, 0xff, 0x10, 'x'}
	if err := c.PublishEvent(t.Context(), "pubsub", topic, []byte(`"expired"`), dapr.PublishEventWithContentType("application/json"),
		dapr.PublishEventWithMetadata(map[string]string{"ttlInSeconds": "1"})); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond) // let the TTL pass before anyone subscribes
	if err := c.PublishEvent(t.Context(), "pubsub", topic, payload, dapr.PublishEventWithContentType("application/octet-stream"),
		dapr.PublishEventWithRawPayload()); err != nil {
		t.Fatal(err)
	}
	sub := subscribe(t, c, dapr.SubscriptionOptions{PubsubName: "pubsub", Topic: topic, Metadata: map[string]string{"rawPayload": "true"}})
	m := receive(t, sub, 10*time.Second)
	if string(m.RawData) != string(payload) {
		t.Fatalf("raw payload arrived as %q; the expired message must not be delivered", m.RawData)
	}
	m.Success()
}

// TestTopicScopes: a pubsub component's publishingScopes refuses a topic the
// app may not use with 403.
func TestTopicScopes(t *testing.T) {
	g := sharedGateway(t)
	tok := newTenant(t, g, "scoped", "app1", `
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: pubsub
spec:
  type: pubsub.jetstream
  version: v1
  metadata:
  - name: publishingScopes
    value: "app1=allowed"
`)
	if st, _, b := do(t, g, tok, "POST", "/v1.0/publish/pubsub/allowed", strings.NewReader("x")); st != 204 {
		t.Fatalf("allowed topic: %d %s", st, b)
	}
	st, _, b := do(t, g, tok, "POST", "/v1.0/publish/pubsub/other", strings.NewReader("x"))
	if st != http.StatusForbidden || !strings.Contains(string(b), "ERR_PUBSUB_FORBIDDEN") {
		t.Fatalf("forbidden topic: %d %s", st, b)
	}
}

// TestPublishSurvivesSIGKILL: messages the gateway acknowledged are
// delivered after the gateway is killed with SIGKILL and started again.
func TestPublishSurvivesSIGKILL(t *testing.T) {
	g, dir := privateGateway(t)
	const n = 200
	c := goClient(t, g, g.token())
	for i := range n {
		if err := c.PublishEvent(t.Context(), "pubsub", "durable", []byte(fmt.Sprintf(`%d`, i)),
			dapr.PublishEventWithContentType("application/json")); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	pid := postmasterPID(t, dir)
	g.cmd.Process.Signal(syscall.SIGKILL)
	<-g.exited
	// The private Postgres notices its parent died and shuts down; wait for it.
	for deadline := time.Now().Add(30 * time.Second); pid > 0 && syscall.Kill(pid, 0) == nil; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the private Postgres outlived the killed gateway")
		}
	}

	g2, err := startGateway(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer g2.stop()
	sub := subscribe(t, goClient(t, g2, g2.token()), dapr.SubscriptionOptions{PubsubName: "pubsub", Topic: "durable"})
	got := map[string]bool{}
	for len(got) < n {
		m := receive(t, sub, 15*time.Second)
		got[string(m.RawData)] = true
		m.Success()
	}
}

// TestTenantPubsubLimit: a tenant's storage limit, set by the platform
// admin, makes publishes fail with 429 once reached, and other tenants
// publish on.
func TestTenantPubsubLimit(t *testing.T) {
	g := sharedGateway(t)
	tok := newTenant(t, g, "quota", "app1", pubsubComponent)
	if _, err := g.admin().SetLimits(t.Context(), "quota", tenants.Limits{PubsubMaxBytes: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	body := strings.Repeat("x", 64<<10)
	var st int
	var b []byte
	for i := 0; i < 40; i++ {
		st, _, b = do(t, g, tok, "POST", "/v1.0/publish/pubsub/big", strings.NewReader(body), "Content-Type", "text/plain")
		if st != http.StatusNoContent {
			break
		}
	}
	if st != http.StatusTooManyRequests || !strings.Contains(string(b), "ERR_PUBSUB_PUBLISH_MESSAGE") {
		t.Fatalf("publishing past a 1 MiB limit: %d %s", st, b)
	}
	if st, _, b := do(t, g, g.token(), "POST", "/v1.0/publish/pubsub/big", strings.NewReader(body), "Content-Type", "text/plain"); st != http.StatusNoContent {
		t.Fatalf("another tenant is affected: %d %s", st, b)
	}
}
