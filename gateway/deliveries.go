package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/blockgate/blockgate/appchannel"
	"github.com/blockgate/blockgate/blocks/pubsub"
	"github.com/blockgate/blockgate/blocks/pubsub/pubsubpush"
	"github.com/blockgate/blockgate/gateway/gatewaygrpc"
	"github.com/blockgate/blockgate/tenants"
	"github.com/blockgate/blockgate/tenants/tenantspg"
)

// deliveries keeps one push delivery running for every subscription of
// every app with a registered endpoint: declarative subscriptions in the
// app's scope, and the programmatic ones the app lists at GET
// /dapr/subscribe. Every node runs all of them; the broker's competing
// consumers share the messages between nodes.
type deliveries struct {
	// channel reaches the apps, the same way service invocation does
	// (healthy instances, round robin, the app's token and headers).
	channel  *appchannel.Channel
	registry *tenantspg.Registry
	pubsub   *pubsub.Service
	pusher   *pubsubpush.Pusher
	logger   *slog.Logger
	// every is how often the desired set is recomputed without a change.
	every time.Duration

	wake chan struct{}

	mu      sync.Mutex
	running map[string]*runningDelivery
	wg      sync.WaitGroup
	// discovered keeps each app's last /dapr/subscribe answer, so that an
	// app that is briefly unreachable keeps its subscriptions.
	discovered map[deliveryKey][]pubsub.Subscription
}

type deliveryKey struct {
	tenant tenants.ID
	app    string
	pubsub string
	topic  string
}

type runningDelivery struct {
	fingerprint string
	sub         pubsub.Subscriber
	cancel      context.CancelFunc
	done        chan struct{}
}

func newDeliveries(reg *tenantspg.Registry, svc *pubsub.Service, channel *appchannel.Channel, logger *slog.Logger) *deliveries {
	return &deliveries{
		registry: reg, pubsub: svc, channel: channel,
		pusher:     pubsubpush.New(channel, time.Minute),
		logger:     logger.With("component", "deliveries"),
		every:      30 * time.Second,
		wake:       make(chan struct{}, 1),
		running:    map[string]*runningDelivery{},
		discovered: map[deliveryKey][]pubsub.Subscription{},
	}
}

// Changed asks for a new sync soon (a subscription, app or component changed).
func (d *deliveries) Changed() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Run syncs until ctx is done, then stops every delivery.
func (d *deliveries) Run(ctx context.Context) error {
	defer func() {
		d.mu.Lock()
		for k, r := range d.running {
			r.cancel()
			delete(d.running, k)
		}
		d.mu.Unlock()
		d.wg.Wait()
	}()
	t := time.NewTicker(d.every)
	defer t.Stop()
	for {
		d.sync(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-d.wake:
		}
	}
}

// desired is one delivery the node should run.
type desired struct {
	sub pubsub.Subscriber
	// app is how the delivery reaches the app: every instance, the health
	// check, the token and headers; a change restarts the delivery.
	app tenants.App
}

func (d *deliveries) sync(ctx context.Context) {
	want, err := d.desired(ctx)
	if err != nil {
		d.logger.Warn("listing subscriptions failed; keeping the running deliveries", "err", err)
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for id, r := range d.running {
		w, ok := want[id]
		if ok && fingerprint(w) == r.fingerprint {
			continue
		}
		r.cancel()
		delete(d.running, id)
		if !ok && r.sub.Origin == pubsub.OriginDeclarative {
			// The subscription was deleted: its durable consumer goes too.
			d.wg.Add(1)
			go func() {
				defer d.wg.Done()
				<-r.done
				if err := d.pubsub.Delete(ctx, r.sub); err != nil {
					d.logger.Warn("deleting the consumer of a removed subscription", "delivery", id, "err", err)
				}
			}()
		}
	}
	for id, w := range want {
		if _, ok := d.running[id]; ok {
			continue
		}
		run, err := d.pubsub.Open(ctx, w.sub)
		if err != nil {
			d.logger.Warn("subscription cannot run", "tenant", w.sub.Tenant, "app_id", w.sub.AppID,
				"pubsub", w.sub.Sub.Pubsub, "topic", w.sub.Sub.Topic, "err", err)
			continue
		}
		cctx, cancel := context.WithCancel(ctx)
		r := &runningDelivery{fingerprint: fingerprint(w), sub: w.sub, cancel: cancel, done: make(chan struct{})}
		d.running[id] = r
		d.wg.Add(1)
		go func() {
			defer close(r.done)
			d.keep(cctx, id, w, run)
		}()
	}
}

// keep runs one delivery, restarting it after a failure until cancelled.
func (d *deliveries) keep(ctx context.Context, id string, w desired, run func(context.Context) error) {
	defer d.wg.Done()
	defer func() {
		if v := recover(); v != nil {
			d.logger.Error("delivery panicked", "delivery", id, "panic", v)
		}
	}()
	backoff := time.Second
	for ctx.Err() == nil {
		err := run(ctx)
		if ctx.Err() != nil {
			return
		}
		d.logger.Warn("delivery stopped; restarting", "delivery", id, "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 30*time.Second)
	}
}

func fingerprint(w desired) string {
	b, _ := json.Marshal(struct {
		S       pubsub.Subscription
		E       []string
		H       tenants.HealthCheck
		T       string
		Headers map[string]string
	}{w.sub.Sub, w.app.Endpoints(), w.app.Health, w.app.AppToken, w.app.Headers})
	sum := sha256.Sum256(b)
	return fmt.Sprintf("%x", sum[:8])
}

// desired computes the deliveries this node should run.
func (d *deliveries) desired(ctx context.Context) (map[string]desired, error) {
	apps, err := d.registry.AppsWithEndpoints(ctx)
	if err != nil {
		return nil, err
	}
	records, err := d.registry.AllSubscriptions(ctx)
	if err != nil {
		return nil, err
	}
	declared := map[tenants.ID][]pubsub.Subscription{}
	for _, r := range records {
		s, err := pubsub.ParseSubscription(r.Document)
		if err != nil {
			d.logger.Warn("ignoring a stored subscription that no longer parses", "tenant", r.Tenant, "name", r.Name, "err", err)
			continue
		}
		declared[r.Tenant] = append(declared[r.Tenant], s)
	}
	want := map[string]desired{}
	add := func(a tenants.App, s pubsub.Subscription, origin string) {
		k := deliveryKey{a.Tenant, a.ID, s.Pubsub, s.Topic}
		id := fmt.Sprintf("%s/%s/%s/%s", k.tenant, k.app, k.pubsub, k.topic)
		if _, dup := want[id]; dup {
			return // the first (declarative) subscription of a topic wins, as one app has one per topic
		}
		want[id] = desired{
			sub: pubsub.Subscriber{Tenant: a.Tenant, AppID: a.ID, Sub: s, Origin: origin,
				Sink: d.sink(a)},
			app: a,
		}
	}
	for _, a := range apps {
		for _, s := range declared[a.Tenant] {
			if s.InScope(a.ID) {
				add(a, s, pubsub.OriginDeclarative)
			}
		}
		for _, s := range d.discover(ctx, a) {
			add(a, s, pubsub.OriginProgrammatic)
		}
	}
	return want, nil
}

// sink is how deliveries reach a: POST for apps that speak HTTP,
// AppCallback.OnTopicEvent for apps that speak gRPC.
func (d *deliveries) sink(a tenants.App) pubsub.Sink {
	if a.SpeaksGRPC() {
		return gatewaygrpc.AppSink{Channel: d.channel, App: a}
	}
	return pubsubpush.Sink{Pusher: d.pusher, App: a}
}

// discover asks an app for its programmatic subscriptions. An app that
// answers 404 has none; one that does not answer keeps its last answer.
func (d *deliveries) discover(ctx context.Context, a tenants.App) []pubsub.Subscription {
	k := deliveryKey{tenant: a.Tenant, app: a.ID}
	subs, ok := d.ask(ctx, a)
	d.mu.Lock()
	defer d.mu.Unlock()
	if ok {
		d.discovered[k] = subs
	}
	return d.discovered[k]
}

// ask reads an app's /dapr/subscribe; ok is false when the app gave no
// usable answer.
func (d *deliveries) ask(ctx context.Context, a tenants.App) (subs []pubsub.Subscription, ok bool) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if a.SpeaksGRPC() {
		subs, err := gatewaygrpc.ListSubscriptions(ctx, d.channel, a)
		if err != nil {
			d.logger.Debug("app did not answer ListTopicSubscriptions", "tenant", a.Tenant, "app_id", a.ID, "err", err)
			return nil, false
		}
		return subs, true
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "/dapr/subscribe", nil)
	if err != nil {
		return nil, false
	}
	resp, err := d.channel.Do(req, a)
	if err != nil {
		d.logger.Debug("app did not answer /dapr/subscribe", "tenant", a.Tenant, "app_id", a.ID, "err", err)
		return nil, false
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		return nil, true
	default:
		return nil, false
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, false
	}
	subs, err = pubsub.ParseProgrammatic(body)
	if err != nil {
		d.logger.Warn("app's /dapr/subscribe answer is invalid", "tenant", a.Tenant, "app_id", a.ID, "err", err)
		return nil, false
	}
	return subs, true
}
