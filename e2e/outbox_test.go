package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	dapr "github.com/dapr/go-sdk/client"
)

// outboxStore is a state.postgresql component with Dapr's transactional
// outbox on: its transactions publish to the topic order-events.
const outboxStore = `
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: orders
spec:
  type: state.postgresql
  version: v1
  metadata:
  - name: outboxPublishPubsub
    value: pubsub
  - name: outboxPublishTopic
    value: order-events
`

// outboxMemStore is the same on an in-memory store, publishing to
// cache-events.
const outboxMemStore = `
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: cache
spec:
  type: state.in-memory
  version: v1
  metadata:
  - name: outboxPublishPubsub
    value: pubsub
  - name: outboxPublishTopic
    value: cache-events
`

// waitListed waits until the metadata API lists a streaming subscription
// to topic, so that nothing published afterwards can be missed.
func waitListed(t *testing.T, c *dapr.GRPCClient, topic string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		md, err := c.GetMetadata(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range md.Subscriptions {
			if s.Topic == topic && s.PubsubName == "pubsub" {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the metadata API does not list the subscription to %s", topic)
		}
	}
}

// TestOutbox: a transaction on a store with the outbox publishes one
// CloudEvent per upsert once it commits, with the value or its projection;
// a transaction that is rolled back publishes nothing.
func TestOutbox(t *testing.T) {
	g := sharedGateway(t)
	tok := newTenant(t, g, "outbox", "shop", outboxStore, outboxMemStore, pubsubComponent)
	c := goClient(t, g, tok)
	ctx := t.Context()
	sub := subscribe(t, c, dapr.SubscriptionOptions{PubsubName: "pubsub", Topic: "order-events"})
	waitListed(t, c, "order-events")

	// gRPC (the Go SDK): an upsert publishes its value; the delete does not.
	if err := c.SaveState(ctx, "orders", "old", []byte("x"), nil); err != nil {
		t.Fatal(err)
	}
	err := c.ExecuteStateTransaction(ctx, "orders", nil, []*dapr.StateOperation{
		{Type: dapr.StateOperationTypeUpsert, Item: &dapr.SetStateItem{Key: "order1", Value: []byte(`{"qty":3}`)}},
		{Type: dapr.StateOperationTypeDelete, Item: &dapr.SetStateItem{Key: "old"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	m := receive(t, sub, 10*time.Second)
	if !strings.HasPrefix(m.ID, "outbox-") || m.Source != "shop" || m.Type != "com.dapr.event.sent" ||
		m.Topic != "order-events" || m.PubsubName != "pubsub" || m.DataContentType != "application/json" ||
		string(m.RawData) != `{"qty":3}` {
		t.Fatalf("outbox event: %+v (data %s)", m.TopicEvent, m.RawData)
	}
	m.Success()

	// HTTP, with a projection: the projected value is published, the
	// state keeps the full value.
	body := `{"operations":[
		{"operation":"upsert","request":{"key":"order2","value":{"id":2,"card":"4111-1111"}}},
		{"operation":"upsert","request":{"key":"order2","value":{"id":2},
			"metadata":{"outbox.projection":"true","outbox.cloudevent.type":"OrderCreated"}}}]}`
	st, _, resp := do(t, g, tok, "POST", "/v1.0/state/orders/transaction", strings.NewReader(body), "Content-Type", "application/json")
	if st != http.StatusNoContent {
		t.Fatalf("transaction: %d %s", st, resp)
	}
	m = receive(t, sub, 10*time.Second)
	if string(m.RawData) != `{"id":2}` || m.Type != "OrderCreated" {
		t.Fatalf("projected event: %+v (data %s)", m.TopicEvent, m.RawData)
	}
	m.Success()
	st, _, resp = do(t, g, tok, "GET", "/v1.0/state/orders/order2", nil)
	var saved map[string]any
	if st != http.StatusOK || json.Unmarshal(resp, &saved) != nil || saved["card"] != "4111-1111" {
		t.Fatalf("the state of order2: %d %s", st, resp)
	}

	// A stale ETag rolls the transaction back: nothing is published. The
	// marker published afterwards is the next event.
	body = `{"operations":[
		{"operation":"upsert","request":{"key":"order3","value":{"id":3}}},
		{"operation":"upsert","request":{"key":"order1","value":{"qty":4},"etag":"stale"}}]}`
	st, _, resp = do(t, g, tok, "POST", "/v1.0/state/orders/transaction", strings.NewReader(body), "Content-Type", "application/json")
	if st != http.StatusConflict {
		t.Fatalf("stale transaction: %d %s", st, resp)
	}
	if err := c.PublishEvent(ctx, "pubsub", "order-events", []byte(`{"marker":true}`), dapr.PublishEventWithContentType("application/json")); err != nil {
		t.Fatal(err)
	}
	m = receive(t, sub, 10*time.Second)
	if string(m.RawData) != `{"marker":true}` {
		t.Fatalf("after a rolled-back transaction got %s, want the marker", m.RawData)
	}
	m.Success()

	// The in-memory store has the outbox too.
	memSub := subscribe(t, c, dapr.SubscriptionOptions{PubsubName: "pubsub", Topic: "cache-events"})
	waitListed(t, c, "cache-events")
	err = c.ExecuteStateTransaction(ctx, "cache", nil, []*dapr.StateOperation{
		{Type: dapr.StateOperationTypeUpsert, Item: &dapr.SetStateItem{Key: "k", Value: []byte("hello")}},
	})
	if err != nil {
		t.Fatal(err)
	}
	m = receive(t, memSub, 10*time.Second)
	if string(m.RawData) != "hello" || m.DataContentType != "text/plain" {
		t.Fatalf("in-memory outbox event: %+v (data %s)", m.TopicEvent, m.RawData)
	}
	m.Success()
}

// TestOutboxComponentValidation: outbox metadata is checked when the
// component is applied.
func TestOutboxComponentValidation(t *testing.T) {
	g := sharedGateway(t)
	newTenant(t, g, "outbox-bad", "shop")
	bad := strings.Replace(outboxStore, "value: order-events", "value: ''", 1)
	if _, err := g.admin().ApplyComponent(t.Context(), "outbox-bad", []byte(bad)); err == nil ||
		!strings.Contains(err.Error(), "outboxPublishTopic") {
		t.Fatalf("applying a store with outboxPublishPubsub but no topic: %v", err)
	}
}
