package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"time"

	dapr "github.com/dapr/go-sdk/client"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// What dev mode creates, and where the gateway keeps the dev tenant's
// messages (blocks/pubsub/pubsubjs: one stream per tenant, T_<tenant>).
const (
	devTenant     = "default"
	pubsubName    = "pubsub"
	gatewayStream = "T_" + devTenant
	contentType   = "application/json"
)

// The baseline's stream and the prefix of its subjects.
const (
	baselineStream   = "PUBSUBBENCH"
	baselineSubjects = "pubsubbench.>"
)

// Consumer settings of the gateway's consumers for unkeyed messages
// (blocks/pubsub/pubsubjs consume.go), which the baseline's consumer copies.
const (
	consumerAckWait       = 30 * time.Second
	consumerMaxDeliver    = 5
	consumerMaxAckPending = 10_000
	consumerPullBatch     = 100
)

// publisher publishes one message and returns once it is stored. worker
// is the caller's index in [0, publishers); calls with different workers
// may run concurrently.
type publisher interface {
	publish(ctx context.Context, worker int, topic string, payload []byte) error
}

// batchPublisher publishes a batch and returns once every message is
// stored, failing if any one is not.
type batchPublisher interface {
	publishBatch(ctx context.Context, worker int, topic string, payloads [][]byte) error
}

// subscriber subscribes to topic, calling got with each message's payload
// from one goroutine at a time, until stop is called. The subscription is
// ready when subscribe returns.
type subscriber interface {
	subscribe(ctx context.Context, topic string, got func(payload []byte)) (stop func() error, err error)
}

// jsTarget is the baseline: nats.go's JetStream client in this process,
// on the gateway's embedded server.
type jsTarget struct {
	admin jetstream.JetStream // stream and consumer management
	conns []*nats.Conn
	js    []jetstream.JetStream // one per publisher, or one shared
	nc    *nats.Conn            // of admin
}

// newJSTarget connects to url and creates the baseline stream with the
// configuration of the gateway's stream, which must exist by now.
func newJSTarget(ctx context.Context, url string, publishers int, shared bool) (*jsTarget, error) {
	t := &jsTarget{}
	var err error
	if t.nc, err = nats.Connect(url, nats.Name("pubsubbench-admin")); err != nil {
		return nil, fmt.Errorf("connecting to the gateway's NATS at %s: %w", url, err)
	}
	if t.admin, err = jetstream.New(t.nc); err != nil {
		t.close()
		return nil, err
	}
	conns := publishers
	if shared {
		conns = 1
	}
	for range conns {
		nc, err := nats.Connect(url, nats.Name("pubsubbench"))
		if err != nil {
			t.close()
			return nil, fmt.Errorf("connecting to the gateway's NATS at %s: %w", url, err)
		}
		t.conns = append(t.conns, nc)
		js, err := jetstream.New(nc)
		if err != nil {
			t.close()
			return nil, err
		}
		t.js = append(t.js, js)
	}
	gw, err := t.admin.Stream(ctx, gatewayStream)
	if err != nil {
		t.close()
		return nil, fmt.Errorf("reading the gateway's stream %s: %w", gatewayStream, err)
	}
	cfg := gw.CachedInfo().Config
	cfg.Name, cfg.Subjects, cfg.Description = baselineStream, []string{baselineSubjects}, "pubsubbench baseline"
	cfg.Metadata = nil // the server's own keys
	if _, err := t.admin.CreateStream(ctx, cfg); err != nil {
		t.close()
		return nil, fmt.Errorf("creating the baseline stream: %w", err)
	}
	return t, nil
}

// subject is where the baseline stores a topic's messages: the shape of
// the gateway's subjects (t.<tenant>.<pubsub>.<topic>.<part>), unkeyed.
func baselineSubject(topic string) string { return "pubsubbench." + pubsubName + "." + topic + "._" }

// msg is a baseline message with a Nats-Msg-Id shaped like the gateway's:
// <pubsub>.<topic>/<CloudEvent id, a UUID>.
func baselineMsg(topic string, payload []byte) *nats.Msg {
	m := nats.NewMsg(baselineSubject(topic))
	m.Header.Set(jetstream.MsgIDHeader, pubsubName+"."+topic+"/"+uuid.NewString())
	m.Data = payload
	return m
}

func (t *jsTarget) publish(ctx context.Context, worker int, topic string, payload []byte) error {
	_, err := t.js[worker%len(t.js)].PublishMsg(ctx, baselineMsg(topic, payload))
	return err
}

// publishBatch publishes asynchronously, then waits for every ack, as the
// gateway's PublishBatch does.
func (t *jsTarget) publishBatch(ctx context.Context, worker int, topic string, payloads [][]byte) error {
	js := t.js[worker%len(t.js)]
	futures := make([]jetstream.PubAckFuture, len(payloads))
	for i, p := range payloads {
		f, err := js.PublishMsgAsync(baselineMsg(topic, p), jetstream.WithStallWait(5*time.Second))
		if err != nil {
			return err
		}
		futures[i] = f
	}
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// subscribe creates a durable pull consumer like the gateway's for
// unkeyed messages and consumes it, acking each message with a plain Ack,
// as an app on JetStream would. (The gateway uses DoubleAck, one more
// round trip, which happens after the subscriber has the message.)
func (t *jsTarget) subscribe(ctx context.Context, topic string, got func([]byte)) (func() error, error) {
	name := "pubsubbench-" + topic
	c, err := t.admin.CreateOrUpdateConsumer(ctx, baselineStream, jetstream.ConsumerConfig{
		Durable:       name,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       consumerAckWait,
		MaxDeliver:    consumerMaxDeliver,
		FilterSubject: baselineSubject(topic),
		ReplayPolicy:  jetstream.ReplayInstantPolicy,
		MaxAckPending: consumerMaxAckPending,
	})
	if err != nil {
		return nil, fmt.Errorf("creating the baseline consumer: %w", err)
	}
	cc, err := c.Consume(func(m jetstream.Msg) {
		got(m.Data())
		_ = m.Ack()
	}, jetstream.PullMaxMessages(consumerPullBatch))
	if err != nil {
		return nil, err
	}
	return func() error {
		cc.Stop()
		<-cc.Closed()
		return t.admin.DeleteConsumer(context.WithoutCancel(ctx), baselineStream, name)
	}, nil
}

// purge empties a stream and returns what it held.
func (t *jsTarget) purge(ctx context.Context, stream string) (msgs, bytes uint64, err error) {
	s, err := t.admin.Stream(ctx, stream)
	if err != nil {
		return 0, 0, err
	}
	st := s.CachedInfo().State
	if err := s.Purge(ctx); err != nil {
		return 0, 0, fmt.Errorf("purging %s: %w", stream, err)
	}
	return st.Msgs, st.Bytes, nil
}

// janitorEvery is how often a janitor looks at its stream.
const janitorEvery = 250 * time.Millisecond

// janitor keeps a stream below 3/4 of its MaxBytes while a phase fills it,
// purging it whenever it is above: the streams have the tenant quota's
// DiscardNew, so a long phase would otherwise fail with "maximum bytes
// exceeded". A phase of the default length never gets there.
type janitor struct {
	t      *jsTarget
	stream string
	cancel context.CancelFunc
	done   chan struct{}

	// Set by run, read after done is closed.
	msgs, bytes uint64
	purges      int
	err         error
}

func (t *jsTarget) startJanitor(ctx context.Context, stream string) *janitor {
	ctx, cancel := context.WithCancel(ctx)
	j := &janitor{t: t, stream: stream, cancel: cancel, done: make(chan struct{})}
	go j.run(ctx)
	return j
}

func (j *janitor) run(ctx context.Context) {
	defer close(j.done)
	tick := time.NewTicker(janitorEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		s, err := j.t.admin.Stream(ctx, j.stream)
		if err != nil {
			if ctx.Err() == nil {
				j.err = err
			}
			return
		}
		info := s.CachedInfo()
		if info.Config.MaxBytes <= 0 || info.State.Bytes <= uint64(info.Config.MaxBytes)/4*3 {
			continue
		}
		msgs, bytes, err := j.t.purge(ctx, j.stream)
		if err != nil {
			if ctx.Err() == nil {
				j.err = err
			}
			return
		}
		j.msgs, j.bytes, j.purges = j.msgs+msgs, j.bytes+bytes, j.purges+1
	}
}

// finish stops the janitor and empties the stream. It returns how many
// messages and bytes the stream took in all, and how often the janitor
// had to purge it during the phase.
func (j *janitor) finish(ctx context.Context) (msgs, bytes uint64, purges int, err error) {
	j.cancel()
	<-j.done
	if j.err != nil {
		return 0, 0, 0, fmt.Errorf("watching %s: %w", j.stream, j.err)
	}
	msgs, bytes, err = j.t.purge(ctx, j.stream)
	return j.msgs + msgs, j.bytes + bytes, j.purges, err
}

func (t *jsTarget) close() {
	for _, nc := range t.conns {
		nc.Close()
	}
	if t.nc != nil {
		t.nc.Close()
	}
}

// sdkTarget calls the gateway through the official Go SDK over gRPC.
type sdkTarget struct {
	clients []*dapr.GRPCClient // one per publisher
	sub     *dapr.GRPCClient   // the subscriber's own
}

func newSDKTarget(ctx context.Context, addr, token string, publishers int) (*sdkTarget, error) {
	// The SDK logs every client it makes to stdout, which holds the tables.
	dapr.SetLogger(log.New(io.Discard, "", 0))
	t := &sdkTarget{}
	for i := range publishers + 1 {
		c, err := dapr.NewClientWithAddressContext(ctx, addr)
		if err != nil {
			t.close()
			return nil, fmt.Errorf("connecting the Go SDK to %s: %w", addr, err)
		}
		gc := c.(*dapr.GRPCClient)
		gc.WithAuthToken(token)
		if i == publishers {
			t.sub = gc
		} else {
			t.clients = append(t.clients, gc)
		}
	}
	return t, nil
}

func (t *sdkTarget) publish(ctx context.Context, worker int, topic string, payload []byte) error {
	return t.clients[worker%len(t.clients)].PublishEvent(ctx, pubsubName, topic, payload,
		dapr.PublishEventWithContentType(contentType))
}

func (t *sdkTarget) publishBatch(ctx context.Context, worker int, topic string, payloads [][]byte) error {
	events := make([]any, len(payloads))
	for i, p := range payloads {
		events[i] = dapr.PublishEventsEvent{EntryID: entryIDs[i%len(entryIDs)], Data: p, ContentType: contentType}
	}
	res := t.clients[worker%len(t.clients)].PublishEvents(ctx, pubsubName, topic, events)
	if res.Error != nil {
		return fmt.Errorf("%d of %d events failed: %w", len(res.FailedEvents), len(events), res.Error)
	}
	return nil
}

// entryIDs are the entry ids of a bulk publish, unique within a request
// (which is all the API asks), made once.
var entryIDs = func() []string {
	ids := make([]string, maxBatch)
	for i := range ids {
		ids[i] = fmt.Sprint(i)
	}
	return ids
}()

// maxBatch bounds -batch: the gateway takes at most 10,000 entries a call.
const maxBatch = 10_000

// subscribe opens a streaming subscription (SubscribeTopicEventsAlpha1) on
// the subscriber's own connection and settles every event with SUCCESS.
func (t *sdkTarget) subscribe(ctx context.Context, topic string, got func([]byte)) (func() error, error) {
	ctx, cancel := context.WithCancel(ctx)
	sub, err := t.sub.Subscribe(ctx, dapr.SubscriptionOptions{PubsubName: pubsubName, Topic: topic})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("subscribing to %s: %w", topic, err)
	}
	done := make(chan error, 1)
	go func() {
		for {
			msg, err := sub.Receive()
			if err != nil {
				done <- err
				return
			}
			got(msg.RawData)
			if err := msg.Success(); err != nil {
				done <- fmt.Errorf("acknowledging: %w", err)
				return
			}
		}
	}()
	return func() error {
		err := sub.Close()
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			return errors.Join(err, errors.New("the subscription did not end within 5s of closing it"))
		}
		return err
	}, nil
}

func (t *sdkTarget) close() {
	for _, c := range t.clients {
		c.Close()
	}
	if t.sub != nil {
		t.sub.Close()
	}
}

// httpTarget publishes with POST /v1.0/publish/<pubsub>/<topic>, each
// publisher on its own keep-alive connection.
type httpTarget struct {
	base    string
	token   string
	clients []*http.Client
}

func newHTTPTarget(base, token string, publishers int) *httpTarget {
	t := &httpTarget{base: base, token: token}
	for range publishers {
		t.clients = append(t.clients, &http.Client{Transport: &http.Transport{
			MaxIdleConnsPerHost: 1, IdleConnTimeout: time.Minute, DisableCompression: true,
		}})
	}
	return t
}

func (t *httpTarget) publish(ctx context.Context, worker int, topic string, payload []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.base+"/v1.0/publish/"+pubsubName+"/"+topic, bytes.NewReader(payload))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("dapr-api-token", t.token)
	resp, err := t.clients[worker%len(t.clients)].Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10)) // read to the end, so the connection is reused
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("POST /v1.0/publish: %s: %s", resp.Status, bytes.TrimSpace(body))
	}
	return nil
}

func (t *httpTarget) close() {
	for _, c := range t.clients {
		c.CloseIdleConnections()
	}
}
