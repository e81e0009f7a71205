package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	dapr "github.com/dapr/go-sdk/client"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

const pubsubComponent = `
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: pubsub
spec:
  type: pubsub.jetstream
  version: v1
`

// receive waits for the next message of a streaming subscription.
func receive(t *testing.T, sub *dapr.Subscription, within time.Duration) *dapr.SubscriptionMessage {
	t.Helper()
	type result struct {
		m   *dapr.SubscriptionMessage
		err error
	}
	ch := make(chan result, 1)
	go func() {
		m, err := sub.Receive()
		ch <- result{m, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("receive: %v", r.err)
		}
		return r.m
	case <-time.After(within):
		t.Fatalf("no message within %s", within)
	}
	return nil
}

func subscribe(t *testing.T, c *dapr.GRPCClient, opts dapr.SubscriptionOptions) *dapr.Subscription {
	t.Helper()
	sub, err := c.Subscribe(t.Context(), opts)
	if err != nil {
		t.Fatalf("subscribe %s: %v", opts.Topic, err)
	}
	t.Cleanup(func() { sub.Close() })
	return sub
}

// TestStreamingSubscription: the Go SDK streams a subscription and gets
// what HTTP and the SDK publish, as CloudEvents with every field right;
// RETRY redelivers the same id, DROP does not, and a message that runs out
// of deliveries lands on the dead-letter topic.
func TestStreamingSubscription(t *testing.T) {
	g := sharedGateway(t)
	c := goClient(t, g, g.token())
	topic := fmt.Sprintf("orders-%d", time.Now().UnixNano())
	sub := subscribe(t, c, dapr.SubscriptionOptions{PubsubName: "pubsub", Topic: topic})

	// The metadata API lists the stream once it delivers.
	listed := func() bool {
		md, err := c.GetMetadata(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range md.Subscriptions {
			if s.Topic == topic && s.PubsubName == "pubsub" {
				return true
			}
		}
		return false
	}
	for deadline := time.Now().Add(10 * time.Second); !listed(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the metadata API does not list the streaming subscription")
		}
	}

	st, _, body := do(t, g, g.token(), "POST", "/v1.0/publish/pubsub/"+topic, strings.NewReader(`{"qty":3}`),
		"Content-Type", "application/json", "traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	if st != http.StatusNoContent {
		t.Fatalf("HTTP publish: %d %s", st, body)
	}
	m := receive(t, sub, 10*time.Second)
	if m.ID == "" || m.Source != "app1" || m.Type != "com.dapr.event.sent" || m.SpecVersion != "1.0" ||
		m.DataContentType != "application/json" || m.Topic != topic || m.PubsubName != "pubsub" || string(m.RawData) != `{"qty":3}` {
		t.Fatalf("event fields: %+v (data %s)", m.TopicEvent, m.RawData)
	}
	if err := m.Success(); err != nil {
		t.Fatal(err)
	}

	if err := c.PublishEvent(t.Context(), "pubsub", topic, []byte("plain text"), dapr.PublishEventWithContentType("text/plain")); err != nil {
		t.Fatal(err)
	}
	m = receive(t, sub, 10*time.Second)
	if string(m.RawData) != "plain text" || m.DataContentType != "text/plain" {
		t.Fatalf("SDK-published event: %+v", m.TopicEvent)
	}
	m.Success()

	// RETRY: the same id comes back.
	c.PublishEvent(t.Context(), "pubsub", topic, []byte(`{"n":"retry"}`), dapr.PublishEventWithContentType("application/json"))
	first := receive(t, sub, 10*time.Second)
	first.Retry()
	again := receive(t, sub, 15*time.Second)
	if again.ID != first.ID {
		t.Fatalf("after RETRY got %s, want the same id %s", again.ID, first.ID)
	}
	again.Success()

	// DROP: not redelivered; the next message is the one after it.
	c.PublishEvent(t.Context(), "pubsub", topic, []byte(`{"n":"drop"}`), dapr.PublishEventWithContentType("application/json"))
	dropped := receive(t, sub, 10*time.Second)
	dropped.Drop()
	c.PublishEvent(t.Context(), "pubsub", topic, []byte(`{"n":"after"}`), dapr.PublishEventWithContentType("application/json"))
	next := receive(t, sub, 10*time.Second)
	if next.ID == dropped.ID || string(next.RawData) != `{"n":"after"}` {
		t.Fatalf("after DROP got %s %s", next.ID, next.RawData)
	}
	next.Success()
}

func TestDeadLetter(t *testing.T) {
	g := sharedGateway(t)
	c := goClient(t, g, g.token())
	topic := fmt.Sprintf("dlq-src-%d", time.Now().UnixNano())
	dead := topic + "-dead"
	deadSub := subscribe(t, c, dapr.SubscriptionOptions{PubsubName: "pubsub", Topic: dead})
	sub := subscribe(t, c, dapr.SubscriptionOptions{PubsubName: "pubsub", Topic: topic, DeadLetterTopic: &dead,
		Metadata: map[string]string{"maxDeliver": "2", "backoff": "100ms"}})

	c.PublishEvent(t.Context(), "pubsub", topic, []byte(`{"poison":true}`), dapr.PublishEventWithContentType("application/json"))
	m1 := receive(t, sub, 10*time.Second)
	m1.Retry()
	m2 := receive(t, sub, 10*time.Second)
	if m2.ID != m1.ID {
		t.Fatalf("second delivery is %s, want %s", m2.ID, m1.ID)
	}
	m2.Retry()
	d := receive(t, deadSub, 15*time.Second)
	if d.ID != m1.ID || string(d.RawData) != `{"poison":true}` {
		t.Fatalf("dead letter: %+v %s", d.TopicEvent, d.RawData)
	}
	d.Success()
}

func TestPublishErrors(t *testing.T) {
	g := sharedGateway(t)
	st, _, body := do(t, g, g.token(), "POST", "/v1.0/publish/nope/t", strings.NewReader(`x`))
	if st != http.StatusNotFound || !strings.Contains(string(body), "ERR_PUBSUB_NOT_FOUND") {
		t.Fatalf("unknown pubsub over HTTP: %d %s", st, body)
	}
	err := goClient(t, g, g.token()).PublishEvent(t.Context(), "nope", "t", []byte("x"))
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("unknown pubsub over gRPC: %v", err)
	}
	_, err = goClient(t, g, g.token()).Subscribe(t.Context(), dapr.SubscriptionOptions{PubsubName: "nope", Topic: "t"})
	if err == nil {
		t.Fatal("subscribing to an unknown pubsub succeeded")
	}
}

func TestBulkPublish(t *testing.T) {
	g := sharedGateway(t)
	c := goClient(t, g, g.token())
	topic := fmt.Sprintf("bulk-%d", time.Now().UnixNano())
	sub := subscribe(t, c, dapr.SubscriptionOptions{PubsubName: "pubsub", Topic: topic})
	body := `[{"entryId":"1","event":{"n":1},"contentType":"application/json"},
	          {"entryId":"2","event":"two","contentType":"text/plain"}]`
	if st, _, b := do(t, g, g.token(), "POST", "/v1.0-alpha1/publish/bulk/pubsub/"+topic, strings.NewReader(body)); st != 204 {
		t.Fatalf("bulk publish: %d %s", st, b)
	}
	res := c.PublishEvents(t.Context(), "pubsub", topic, []any{map[string]int{"n": 3}, map[string]int{"n": 4}})
	if res.Error != nil || len(res.FailedEvents) != 0 {
		t.Fatalf("SDK bulk publish: %+v", res)
	}
	got := map[string]bool{}
	for range 4 {
		m := receive(t, sub, 10*time.Second)
		got[string(m.RawData)] = true
		m.Success()
	}
	for _, want := range []string{`{"n":1}`, `two`, `{"n":3}`, `{"n":4}`} {
		if !got[want] {
			t.Fatalf("bulk-published %s not received; got %v", want, got)
		}
	}
	if st, _, b := do(t, g, g.token(), "POST", "/v1.0-alpha1/publish/bulk/pubsub/"+topic, strings.NewReader(`[{"event":1}]`)); st != 400 {
		t.Fatalf("bulk publish without entry ids: %d %s", st, b)
	}
}

// pushApp is an app the test runs: it lists programmatic subscriptions at
// /dapr/subscribe and records what the gateway posts to it.
type pushApp struct {
	srv  *httptest.Server
	subs string
	mu   sync.Mutex
	got  map[string][]map[string]any // route → events
}

func newPushApp(t *testing.T, subscribeAnswer string) *pushApp {
	a := &pushApp{subs: subscribeAnswer, got: map[string][]map[string]any{}}
	a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/dapr/subscribe" {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, a.subs)
			return
		}
		var ev map[string]any
		b, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(b, &ev); err != nil || r.Header.Get("Content-Type") != "application/cloudevents+json" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		a.mu.Lock()
		a.got[r.URL.Path] = append(a.got[r.URL.Path], ev)
		a.mu.Unlock()
		io.WriteString(w, `{"status":"SUCCESS"}`)
	}))
	t.Cleanup(a.srv.Close)
	return a
}

func (a *pushApp) wait(t *testing.T, route string, n int) []map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for {
		a.mu.Lock()
		got := append([]map[string]any(nil), a.got[route]...)
		a.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-ctx.Done():
			t.Fatalf("route %s got %d events, want %d", route, len(got), n)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// TestPushSubscriptions: an app with an endpoint gets events through a
// programmatic subscription (its /dapr/subscribe) and a declarative one
// whose CEL rules pick the route.
func TestPushSubscriptions(t *testing.T) {
	g := sharedGateway(t)
	ctx := t.Context()
	app := newPushApp(t, `[{"pubsubname":"pubsub","topic":"prog","route":"/on-prog"}]`)
	a := g.admin()
	if _, err := a.CreateTenant(ctx, "push"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.ApplyComponent(ctx, "push", []byte(pubsubComponent)); err != nil {
		t.Fatal(err)
	}
	if _, err := a.ApplySubscription(ctx, "push", []byte(`
apiVersion: dapr.io/v2alpha1
kind: Subscription
metadata:
  name: widgets
spec:
  pubsubname: pubsub
  topic: widgets
  routes:
    rules:
    - match: event.data.kind == "gadget"
      path: /gadgets
    default: /widgets
scopes: [shop]
`)); err != nil {
		t.Fatal(err)
	}
	if _, err := a.CreateApp(ctx, "push", "shop", app.srv.URL); err != nil {
		t.Fatal(err)
	}
	if _, err := a.CreateApp(ctx, "push", "publisher", ""); err != nil {
		t.Fatal(err)
	}
	tok, err := a.IssueToken(ctx, "push", "publisher", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pub := func(topic, body string) {
		t.Helper()
		if st, _, b := do(t, g, tok.Text, "POST", "/v1.0/publish/pubsub/"+topic, strings.NewReader(body), "Content-Type", "application/json"); st != 204 {
			t.Fatalf("publish: %d %s", st, b)
		}
	}
	pub("prog", `{"p":1}`)
	pub("widgets", `{"kind":"gadget"}`)
	pub("widgets", `{"kind":"sprocket"}`)

	if ev := app.wait(t, "/on-prog", 1)[0]; ev["topic"] != "prog" || ev["source"] != "publisher" {
		t.Fatalf("programmatic delivery: %v", ev)
	}
	if ev := app.wait(t, "/gadgets", 1)[0]; ev["data"].(map[string]any)["kind"] != "gadget" {
		t.Fatalf("rule route: %v", ev)
	}
	if ev := app.wait(t, "/widgets", 1)[0]; ev["data"].(map[string]any)["kind"] != "sprocket" {
		t.Fatalf("default route: %v", ev)
	}
}

// TestPubsubTenantIsolation: a tenant with the same pubsub name, topic and
// app id sees none of another tenant's messages, whatever the topic name.
func TestPubsubTenantIsolation(t *testing.T) {
	g := sharedGateway(t)
	tokA := newTenant(t, g, "ps-a", "app1", pubsubComponent)
	tokB := newTenant(t, g, "ps-b", "app1", pubsubComponent)
	a, b := goClient(t, g, tokA), goClient(t, g, tokB)
	for _, topic := range []string{"orders", "a.b", "*", ">", "t.ps-b.pubsub.orders", "ünï/code"} {
		subA := subscribe(t, a, dapr.SubscriptionOptions{PubsubName: "pubsub", Topic: topic})
		subB := subscribe(t, b, dapr.SubscriptionOptions{PubsubName: "pubsub", Topic: topic})
		if err := b.PublishEvent(t.Context(), "pubsub", topic, []byte(`"from B"`), dapr.PublishEventWithContentType("application/json")); err != nil {
			t.Fatalf("B publish %q: %v", topic, err)
		}
		if err := a.PublishEvent(t.Context(), "pubsub", topic, []byte(`"from A"`), dapr.PublishEventWithContentType("application/json")); err != nil {
			t.Fatalf("A publish %q: %v", topic, err)
		}
		mA := receive(t, subA, 10*time.Second)
		mB := receive(t, subB, 10*time.Second)
		if string(mA.RawData) != `"from A"` || string(mB.RawData) != `"from B"` {
			t.Fatalf("topic %q: A got %s, B got %s", topic, mA.RawData, mB.RawData)
		}
		mA.Success()
		mB.Success()
	}
}

// TestBulkSubscribe: a declarative subscription with bulkSubscribe gets
// events in batches, in daprd's bulk body, and settles each entry by its
// status.
func TestBulkSubscribe(t *testing.T) {
	g := sharedGateway(t)
	ctx := t.Context()
	var mu sync.Mutex
	requests, entries := 0, map[string]bool{}
	maxBatch := 0
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/bulk" {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		var body struct {
			Entries []struct {
				EntryID string         `json:"entryId"`
				Event   map[string]any `json:"event"`
			} `json:"entries"`
			Topic string `json:"topic"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		type status struct {
			EntryID string `json:"entryId"`
			Status  string `json:"status"`
		}
		var statuses []status
		mu.Lock()
		requests++
		maxBatch = max(maxBatch, len(body.Entries))
		for _, e := range body.Entries {
			entries[fmt.Sprint(e.Event["data"])] = true
			statuses = append(statuses, status{e.EntryID, "SUCCESS"})
		}
		mu.Unlock()
		json.NewEncoder(w).Encode(map[string]any{"statuses": statuses})
	}))
	defer app.Close()
	a := g.admin()
	if _, err := a.CreateTenant(ctx, "bulksub"); err != nil {
		t.Fatal(err)
	}
	a.ApplyComponent(ctx, "bulksub", []byte(pubsubComponent))
	if _, err := a.ApplySubscription(ctx, "bulksub", []byte(`
apiVersion: dapr.io/v2alpha1
kind: Subscription
metadata: {name: batches}
spec:
  pubsubname: pubsub
  topic: batches
  routes: {default: /bulk}
  bulkSubscribe: {enabled: true, maxMessagesCount: 10, maxAwaitDurationMs: 200}
`)); err != nil {
		t.Fatal(err)
	}
	if _, err := a.CreateApp(ctx, "bulksub", "consumer", app.URL); err != nil {
		t.Fatal(err)
	}
	a.CreateApp(ctx, "bulksub", "producer", "")
	tok, _ := a.IssueToken(ctx, "bulksub", "producer", time.Hour)
	var body strings.Builder
	body.WriteString("[")
	for i := range 25 {
		if i > 0 {
			body.WriteString(",")
		}
		fmt.Fprintf(&body, `{"entryId":"%d","event":"m%d","contentType":"text/plain"}`, i, i)
	}
	body.WriteString("]")
	if st, _, b := do(t, g, tok.Text, "POST", "/v1.0-alpha1/publish/bulk/pubsub/batches", strings.NewReader(body.String())); st != 204 {
		t.Fatalf("bulk publish: %d %s", st, b)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		n, reqs, biggest := len(entries), requests, maxBatch
		mu.Unlock()
		if n == 25 {
			if biggest < 2 || reqs >= 25 {
				t.Fatalf("25 events came in %d requests (largest batch %d): not batched", reqs, biggest)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("got %d of 25 events in %d requests", n, reqs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
