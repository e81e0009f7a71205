package pubsub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/blockgate/blockgate/tenants"
)

// Verdict is a subscriber's answer for one event.
type Verdict int

const (
	// Success: processed; the message is acknowledged.
	Success Verdict = iota
	// Retry: deliver again after the subscription's backoff.
	Retry
	// Drop: do not deliver again; it goes to the dead-letter topic if the
	// subscription has one.
	Drop
)

func (v Verdict) String() string {
	switch v {
	case Success:
		return "SUCCESS"
	case Retry:
		return "RETRY"
	case Drop:
		return "DROP"
	}
	return "Verdict(" + strconv.Itoa(int(v)) + ")"
}

// Sink hands events to one subscriber: an app's HTTP endpoint, or a stream
// the app opened. Deliver may be called concurrently; it returns the
// subscriber's verdict, with err explaining a Retry that came from a failure
// (an unreachable app, a timeout) rather than from the app's answer.
type Sink interface {
	Deliver(ctx context.Context, d Delivered) (Verdict, error)
}

// Delivered is one event on its way to a subscriber.
type Delivered struct {
	Event   Event
	Message Message
	// Path is the route the subscription's rules picked ("" for streams
	// without routes).
	Path    string
	Attempt int
}

// Subscriber is a subscription being delivered to one app.
type Subscriber struct {
	Tenant tenants.ID
	AppID  string
	Sub    Subscription
	// Stream marks an app-opened stream, which takes every event, also
	// those its routes (if any) do not match.
	Stream bool
	// Origin says where the subscription came from, for the metadata API:
	// OriginDeclarative, OriginProgrammatic or OriginStreaming.
	Origin string
	Sink   Sink
}

// Origins of a subscription, as Dapr's metadata API names them.
const (
	OriginDeclarative  = "DECLARATIVE"
	OriginProgrammatic = "PROGRAMMATIC"
	OriginStreaming    = "STREAMING"
)

// Delivery settings a subscription's metadata may change.
const (
	defaultMaxDeliver = 5
	maxMaxDeliver     = 100
)

// spec builds the broker subscription of s: one consumer group per app and
// topic, so that an app's instances compete and different apps each get
// every message.
func (s Subscriber) spec() (Spec, error) {
	spec := Spec{Tenant: s.Tenant, Pubsub: s.Sub.Pubsub, Topic: s.Sub.Topic, Group: s.AppID, MaxDeliver: defaultMaxDeliver}
	if v, ok := s.Sub.Metadata["maxDeliver"]; ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxMaxDeliver {
			return Spec{}, errSubscription("metadata maxDeliver %q: use 1 to %d", v, maxMaxDeliver)
		}
		spec.MaxDeliver = n
	}
	if v, ok := s.Sub.Metadata["backoff"]; ok {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || d > time.Hour {
			return Spec{}, errSubscription("metadata backoff %q: use a duration up to 1h, e.g. 500ms", v)
		}
		spec.Backoff = []time.Duration{d}
	}
	return spec, nil
}

// Open checks a subscriber — the component, the topic and its scopes, the
// dead-letter topic, the routing rules, the delivery settings — and returns
// the function that delivers its events until ctx is done or the broker
// fails. Checking first lets a stream that names an unknown pubsub or a
// forbidden topic fail at once with the Dapr error.
func (svc *Service) Open(ctx context.Context, s Subscriber) (run func(ctx context.Context) error, err error) {
	p := tenants.Principal{Tenant: s.Tenant, AppID: s.AppID}
	c, err := svc.component(ctx, p, s.Sub.Pubsub)
	if err != nil {
		return nil, err
	}
	if err := svc.topicAllowed(ctx, p, c, s.Sub.Topic, false); err != nil {
		return nil, err
	}
	if s.Sub.DeadLetterTopic != "" {
		if err := svc.topicAllowed(ctx, p, c, s.Sub.DeadLetterTopic, true); err != nil {
			return nil, err
		}
	}
	router, err := s.Sub.Router()
	if err != nil {
		return nil, err
	}
	spec, err := s.spec()
	if err != nil {
		return nil, err
	}
	log := svc.logger.With("tenant", s.Tenant, "app_id", s.AppID, "pubsub", s.Sub.Pubsub, "topic", s.Sub.Topic)
	return func(ctx context.Context) error {
		defer svc.active.add(s)()
		h := &handler{svc: svc, sub: s, router: router, ctx: ctx, log: log}
		handle := h.handle
		if bulk, ok := s.Sink.(BulkSink); ok && s.Sub.BulkSubscribe != nil && s.Sub.BulkSubscribe.Enabled {
			b := newBatcher(h, bulk, *s.Sub.BulkSubscribe)
			defer b.close()
			handle = b.add
		}
		err := svc.broker.Consume(ctx, spec, handle)
		if ctx.Err() != nil {
			return nil
		}
		return ErrConsume(s.Sub.Pubsub, s.Sub.Topic, err)
	}, nil
}

type handler struct {
	svc    *Service
	sub    Subscriber
	router *Router
	ctx    context.Context
	log    *slog.Logger
}

// handle settles one delivery: decode, expire, route, deliver, and act on
// the verdict.
func (h *handler) handle(d Delivery) {
	out, ok := h.prepare(d)
	if !ok {
		return
	}
	v, err := h.sub.Sink.Deliver(h.ctx, out)
	h.settle(d, v, err)
}

// prepare turns a delivery into what the sink gets. It settles at once, and
// reports false for, messages that cannot or need not be delivered:
// undecodable, expired, or matching no route.
func (h *handler) prepare(d Delivery) (Delivered, bool) {
	msg := d.Message()
	var ev Event
	var err error
	if h.sub.Sub.RawPayload() {
		ev = RawEvent(msg)
	} else if ev, err = DecodeEvent(msg); err != nil {
		h.log.Warn("undeliverable message", "id", msg.ID, "err", err)
		h.giveUp(d, "undecodable")
		return Delivered{}, false
	}
	if ev.Expired(h.svc.now()) {
		h.log.Debug("expired message not delivered", "id", msg.ID)
		h.svc.stats.Dropped.Add(1)
		_ = d.Drop()
		return Delivered{}, false
	}
	// A subscription without routes (a stream, or a gRPC app's topic
	// handler) takes every event with an empty path.
	path := ""
	if len(h.sub.Sub.Routes.Rules) > 0 || h.sub.Sub.Routes.Default != "" {
		var rerr error
		path, rerr = h.router.Match(ev)
		if rerr != nil {
			h.log.Warn("routing rules failed to evaluate", "id", msg.ID, "err", rerr)
		}
		if path == "" && !h.sub.Stream {
			// No rule matched and there is no default: daprd skips the event.
			h.log.Debug("no route matches; event skipped", "id", msg.ID)
			_ = d.Ack()
			return Delivered{}, false
		}
	}
	return Delivered{Event: ev, Message: msg, Path: path, Attempt: d.Attempt()}, true
}

// settle acts on a subscriber's verdict. It never loses a message: whenever
// forwarding to the dead-letter topic fails, the delivery is retried.
func (h *handler) settle(d Delivery, v Verdict, err error) {
	msg := d.Message()
	switch v {
	case Success:
		h.svc.stats.Delivered.Add(1)
		if err := d.Ack(); err != nil {
			h.log.Warn("acknowledging a delivered message failed; it may be redelivered", "id", msg.ID, "err", err)
		}
	case Drop:
		h.giveUp(d, "dropped by the app")
	default:
		if err != nil {
			h.log.Debug("delivery failed", "id", msg.ID, "attempt", d.Attempt(), "err", err)
		}
		if d.Final() {
			h.giveUp(d, fmt.Sprintf("no success after %d attempts", d.Attempt()))
			return
		}
		h.svc.stats.Retried.Add(1)
		_ = d.Retry(0)
	}
}

// giveUp forwards the message to the dead-letter topic when there is one,
// and otherwise drops it, counted and logged.
func (h *handler) giveUp(d Delivery, why string) {
	msg := d.Message()
	dlq := h.sub.Sub.DeadLetterTopic
	if dlq == "" {
		h.svc.stats.Dropped.Add(1)
		h.log.Warn("message dropped", "id", msg.ID, "reason", why)
		_ = d.Drop()
		return
	}
	dead := msg
	dead.Topic = dlq
	// A stable id: a retried forward is deduplicated by the broker.
	dead.ID = msg.ID + "/dead-letter/" + h.sub.AppID
	if err := h.svc.broker.Publish(h.ctx, dead); err != nil {
		h.log.Warn("forwarding to the dead-letter topic failed; will retry", "id", msg.ID, "dead_letter_topic", dlq, "err", err)
		_ = d.Retry(0)
		return
	}
	h.svc.stats.DeadLettered.Add(1)
	h.log.Debug("message sent to the dead-letter topic", "id", msg.ID, "dead_letter_topic", dlq, "reason", why)
	_ = d.Ack()
}

// Unsubscriber is a Broker that can delete a durable subscription.
type Unsubscriber interface {
	DeleteSubscription(ctx context.Context, spec Spec) error
}

// Delete removes the durable subscription of s from the broker, for a
// subscription that was deleted: messages published from now on are not
// kept for it. The caller must have stopped delivering s first.
func (svc *Service) Delete(ctx context.Context, s Subscriber) error {
	u, ok := svc.broker.(Unsubscriber)
	if !ok {
		return nil
	}
	spec, err := s.spec()
	if err != nil {
		return err
	}
	return u.DeleteSubscription(ctx, spec)
}

// ErrStreamClosed is returned by sinks whose stream has gone away.
var ErrStreamClosed = errors.New("subscriber stream closed")
