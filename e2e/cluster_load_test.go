package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	dapr "github.com/dapr/go-sdk/client"
)

// load is a steady load on a cluster through its regional endpoint, as
// the clients of a regional deployment make it: publishers over HTTP and
// the Go SDK and state writers over HTTP, each a client of its own whose
// home is one node, spread over the nodes; and one Go SDK subscriber
// streaming the topic. Every client paces itself and, when a request
// fails, tries it again through the endpoint, which connects it to
// another node if its own is gone. Every payload carries a unique id, so
// the test knows exactly what was acknowledged and what arrived.
type load struct {
	c     *cluster
	token string
	topic string
	every time.Duration // each client's pace

	// ctx ends the subscriber, clients the publishers and writers.
	ctx, clients          context.Context
	cancel, cancelClients context.CancelFunc
	wg, clientsWG         sync.WaitGroup
	sub                   *endpoint // the subscriber's

	mu           sync.Mutex
	published    map[string]bool   // acknowledged publishes, by id
	saved        map[string]string // acknowledged state writes: key → value
	received     map[string]int    // deliveries to the subscriber, by id
	resubscribed int               // times the subscriber had to subscribe anew
	failures     []failure
}

// failure is a request that failed.
type failure struct {
	client string
	// node is the node (from 0) that the endpoint connected the client to.
	node int
	// out says the node was out then: killed, stopping or not rejoined.
	out bool
	// answered says a gateway answered with an error; otherwise the
	// client's connection failed.
	answered bool
	err      error
	at       time.Time
}

func (f failure) String() string {
	how := "connection failed"
	if f.answered {
		how = "gateway answered"
	}
	return fmt.Sprintf("%s %s on node %d (out %v, %s): %v", f.at.Format("15:04:05.000"), f.client, f.node+1, f.out, how, f.err)
}

// answeredErr marks an error that a gateway answered.
type answeredErr struct{ error }

// loadConfig shapes a load.
type loadConfig struct {
	// httpPublishers, sdkPublishers and writers are how many clients of
	// each kind run; client k's home is node k mod the cluster's size.
	httpPublishers, sdkPublishers, writers int
	// every is each client's pace.
	every time.Duration
	// subscriberHome is the subscriber's home node (from 0).
	subscriberHome int
}

// startLoad starts the clients and the subscriber, and waits until the
// subscriber receives. The load stops when the test ends, if not before.
func startLoad(t *testing.T, c *cluster, cfg loadConfig) *load {
	t.Helper()
	l := &load{c: c, token: c.node(0).token(), topic: fmt.Sprintf("load-%d", time.Now().UnixNano()), every: cfg.every,
		published: map[string]bool{}, saved: map[string]string{}, received: map[string]int{}}
	l.ctx, l.cancel = context.WithCancel(context.WithoutCancel(t.Context()))
	l.clients, l.cancelClients = context.WithCancel(l.ctx)
	t.Cleanup(l.stop)
	n := len(c.nodes)

	l.sub = c.endpoint(t, cfg.subscriberHome, grpcPort)
	subscriber := l.sub.sdkClient(t, l.token)
	l.wg.Add(1)
	go l.subscribe(subscriber)
	waitUntil(t, "the subscriber's stream is open", func() bool {
		md, err := subscriber.GetMetadata(t.Context())
		return err == nil && slices.ContainsFunc(md.Subscriptions, func(s *dapr.MetadataSubscription) bool { return s.Topic == l.topic })
	})

	k := 0
	home := func() int { k++; return (k - 1) % n }
	for i := range cfg.httpPublishers {
		e := c.endpoint(t, home(), httpPort)
		l.client(fmt.Sprintf("http-pub-%d", i+1), e, l.httpPublish(e))
	}
	for i := range cfg.sdkPublishers {
		e := c.endpoint(t, home(), grpcPort)
		l.client(fmt.Sprintf("sdk-pub-%d", i+1), e, l.sdkPublish(e.sdkClient(t, l.token)))
	}
	for i := range cfg.writers {
		e := c.endpoint(t, home(), httpPort)
		l.client(fmt.Sprintf("writer-%d", i+1), e, l.httpSave(e))
	}
	l.waitProgress(t, "the first deliveries", func(p progress) bool { return p.received > 0 })
	return l
}

// client runs one client: op(ctx, id) until the load stops, each id
// tried again until acknowledged.
func (l *load) client(name string, e *endpoint, op func(ctx context.Context, id string) error) {
	l.clientsWG.Add(1)
	go func() {
		defer l.clientsWG.Done()
		ctx := l.clients
		tick := time.NewTicker(l.every)
		defer tick.Stop()
		for seq := 0; ; seq++ {
			id := fmt.Sprintf("%s-%d", name, seq)
			for {
				before := e.node()
				err := op(ctx, id)
				if ctx.Err() != nil {
					return
				}
				if err == nil {
					break
				}
				l.fail(name, e, before, err)
				select {
				case <-ctx.Done():
					return
				case <-time.After(50 * time.Millisecond):
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
}

// fail records a failed request. A failed connection counts against
// the node it was to, or to which the endpoint moved the client; an answer
// against the node that gave it.
func (l *load) fail(name string, e *endpoint, before int, err error) {
	after := e.node()
	f := failure{client: name, node: after, err: err, at: time.Now()}
	f.answered = errors.As(err, new(answeredErr))
	if after >= 0 {
		_, serving := l.c.serving(after)
		f.out = !serving
	}
	if !f.answered && before >= 0 && before != after {
		if _, ok := l.c.serving(before); !ok {
			f.node, f.out = before, true
		}
	}
	l.mu.Lock()
	l.failures = append(l.failures, f)
	l.mu.Unlock()
}

func (l *load) httpPublish(e *endpoint) func(context.Context, string) error {
	client, base := e.httpClient()
	return func(ctx context.Context, id string) error {
		err := l.httpDo(ctx, client, base+"/v1.0/publish/pubsub/"+l.topic, fmt.Sprintf(`{"id":%q}`, id))
		if err == nil {
			l.mu.Lock()
			l.published[id] = true
			l.mu.Unlock()
		}
		return err
	}
}

func (l *load) httpSave(e *endpoint) func(context.Context, string) error {
	client, base := e.httpClient()
	return func(ctx context.Context, key string) error {
		value := `"v-` + key + `"`
		err := l.httpDo(ctx, client, base+"/v1.0/state/statestore", fmt.Sprintf(`[{"key":%q,"value":%s}]`, key, value))
		if err == nil {
			l.mu.Lock()
			l.saved[key] = value
			l.mu.Unlock()
		}
		return err
	}
}

// httpDo POSTs body to url and expects 204.
func (l *load) httpDo(ctx context.Context, client *http.Client, url, body string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("dapr-api-token", l.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusNoContent {
		return answeredErr{fmt.Errorf("%d %s", resp.StatusCode, b)}
	}
	return nil
}

func (l *load) sdkPublish(c *dapr.GRPCClient) func(context.Context, string) error {
	return func(ctx context.Context, id string) error {
		ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		err := c.PublishEvent(ctx, "pubsub", l.topic, []byte(fmt.Sprintf(`{"id":%q}`, id)),
			dapr.PublishEventWithContentType("application/json"))
		if err != nil {
			if fromGateway(err) {
				return answeredErr{err}
			}
			return err
		}
		l.mu.Lock()
		l.published[id] = true
		l.mu.Unlock()
		return nil
	}
}

// subscribe streams the topic with the Go SDK and records every delivery.
// The SDK re-subscribes by itself, once, when its stream breaks; should
// that fail too, the subscriber subscribes anew, as an app would.
func (l *load) subscribe(c *dapr.GRPCClient) {
	defer l.wg.Done()
	for l.ctx.Err() == nil {
		sub, err := c.Subscribe(l.ctx, dapr.SubscriptionOptions{PubsubName: "pubsub", Topic: l.topic})
		if err != nil {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		for {
			m, err := sub.Receive()
			if err != nil {
				sub.Close()
				if l.ctx.Err() == nil {
					l.mu.Lock()
					l.resubscribed++
					l.mu.Unlock()
				}
				break
			}
			var body struct{ ID string }
			json.Unmarshal(m.RawData, &body)
			l.mu.Lock()
			l.received[body.ID]++
			l.mu.Unlock()
			m.Success() // after a reconnect, the old stream's ack is lost: JetStream redelivers
		}
	}
}

// stopClients stops the publishers and writers and waits for them; the
// subscriber goes on.
func (l *load) stopClients() {
	l.cancelClients()
	l.clientsWG.Wait()
}

// stop stops every client and the subscriber and waits for them.
func (l *load) stop() {
	l.cancel()
	l.clientsWG.Wait()
	l.wg.Wait()
}

// progress counts the acknowledged publishes and writes and the distinct
// ids received.
type progress struct{ published, saved, received int }

func (l *load) progress() progress {
	l.mu.Lock()
	defer l.mu.Unlock()
	return progress{len(l.published), len(l.saved), len(l.received)}
}

// waitProgress waits up to 20 seconds until cond holds of the load's
// progress.
func (l *load) waitProgress(t *testing.T, what string, cond func(progress) bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(l.progress()); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s: %+v", what, l.progress())
		}
	}
}

// advance waits until the load has made more acknowledged publishes and
// writes, n of each.
func (l *load) advance(t *testing.T, what string, n int) {
	t.Helper()
	from := l.progress()
	l.waitProgress(t, what, func(p progress) bool { return p.published >= from.published+n && p.saved >= from.saved+n })
}

// missing returns the acknowledged publishes not received.
func (l *load) missing() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for id := range l.published {
		if l.received[id] == 0 {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// waitDelivered waits up to within until every acknowledged publish has
// been received.
func (l *load) waitDelivered(t *testing.T, within time.Duration) {
	t.Helper()
	start := time.Now()
	for {
		missing := l.missing()
		if len(missing) == 0 {
			t.Logf("every acknowledged publish received %s after the load stopped", time.Since(start).Round(100*time.Millisecond))
			return
		}
		if time.Since(start) > within {
			t.Fatalf("%d acknowledged publishes never received, e.g. %v", len(missing), missing[:min(10, len(missing))])
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// checkSaved reads every acknowledged state write back through g.
func (l *load) checkSaved(t *testing.T, g *gateway) {
	t.Helper()
	l.mu.Lock()
	keys := make([]string, 0, len(l.saved))
	for k := range l.saved {
		keys = append(keys, k)
	}
	saved := l.saved
	l.mu.Unlock()
	c := goClient(t, g, l.token)
	lost := 0
	for chunk := range slices.Chunk(keys, 200) {
		items, err := c.GetBulkState(t.Context(), "statestore", chunk, nil, 4)
		if err != nil || len(items) != len(chunk) {
			t.Fatalf("reading back %d keys of state: %d items, %v", len(chunk), len(items), err)
		}
		for _, it := range items {
			if string(it.Value) != saved[it.Key] {
				if lost++; lost <= 10 {
					t.Errorf("acknowledged write of %s reads back as %q, want %s", it.Key, it.Value, saved[it.Key])
				}
			}
		}
	}
	if lost > 0 {
		t.Errorf("%d of %d acknowledged state writes lost", lost, len(keys))
	}
}

// checkFailures fails the test for every failure on a node that was
// serving, and for a gateway's error answer; it logs the rest.
func (l *load) checkFailures(t *testing.T) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	byNode := map[int]int{}
	for _, f := range l.failures {
		if !f.out || f.answered {
			t.Errorf("failure where the cluster must serve: %s", f)
			continue
		}
		byNode[f.node]++
	}
	for node, n := range byNode {
		t.Logf("%d failed connections to node %d while it was out; the clients moved on", n, node+1)
	}
}
