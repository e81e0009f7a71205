package pubsub

import (
	"context"
	"errors"
	"time"

	"github.com/blockgate/blockgate/tenants"
)

// Broker is the messaging backend every tenant's pub/sub components share
// (pubsub.jetstream: the gateway's JetStream). It keeps tenants apart by
// itself: a Message or Spec names its tenant, and nothing one tenant
// publishes or consumes can reach another tenant's messages.
//
// All methods may be called concurrently.
type Broker interface {
	// Publish stores msg durably and returns once the backend acknowledged
	// it; a nil error means the message will be delivered. Publishing the
	// same Message.ID again within the deduplication window is a no-op that
	// also succeeds.
	Publish(ctx context.Context, msg Message) error
	// PublishBatch publishes msgs, pipelined, and returns one error per
	// message (nil for each acknowledged one), in order.
	PublishBatch(ctx context.Context, msgs []Message) []error
	// Consume delivers the messages of spec's subscription to handle until
	// ctx is done or the subscription fails, and returns ctx's error or the
	// failure. Every Consume call with the same Spec.Group shares the
	// messages (competing consumers), across processes and nodes; the
	// subscription itself is durable and outlives Consume. handle is called
	// from the broker's goroutines, at most Spec.MaxInFlight at a time; it
	// must settle every Delivery exactly once.
	Consume(ctx context.Context, spec Spec, handle func(Delivery)) error
}

// Message is one event on a topic.
type Message struct {
	Tenant tenants.ID
	// Pubsub is the component name.
	Pubsub string
	Topic  string
	// ID identifies the message for deduplication (the CloudEvent id).
	ID string
	// Data is what subscribers get: a CloudEvent in JSON, or the raw payload.
	Data []byte
	// ContentType of Data: application/cloudevents+json for envelopes.
	ContentType string
	// PartitionKey, when set, orders the message after every earlier
	// message with the same key on the same topic: they are delivered one
	// at a time, in publish order.
	PartitionKey string
	// Expires is when the message stops being deliverable; zero for never.
	Expires time.Time
	// Metadata travels with the message to subscribers (as headers).
	Metadata map[string]string
}

// Spec describes a durable subscription.
type Spec struct {
	Tenant tenants.ID
	Pubsub string
	Topic  string
	// Group names the competing consumers: every Consume with the same
	// Tenant, Pubsub, Topic and Group shares one stream of messages. It is
	// the subscribing app id (and a suffix for different routes of one app).
	Group string
	// MaxDeliver is how many times a message is delivered before it is
	// given up on; its last delivery has Delivery.Final set. Default 5.
	MaxDeliver int
	// Backoff is the delay before each redelivery (the last value repeats).
	// Default 1s, 2s, 5s, 10s.
	Backoff []time.Duration
	// AckWait is how long a delivery may stay unsettled before the broker
	// redelivers it; the handler may extend it with InProgress. Default 30s.
	AckWait time.Duration
	// MaxInFlight bounds concurrent unsettled deliveries to this Consume
	// call; default 100.
	MaxInFlight int
}

// Delivery is one delivery attempt of a message.
type Delivery interface {
	Message() Message
	// Attempt counts deliveries of this message, from 1.
	Attempt() int
	// Final reports whether this is the last attempt (Attempt == MaxDeliver).
	Final() bool
	// Ack settles the message as processed.
	Ack() error
	// Retry asks for redelivery after delay (0: the spec's backoff).
	Retry(delay time.Duration) error
	// Drop settles the message without processing; it is not redelivered.
	Drop() error
	// InProgress extends the time the handler has before a redelivery.
	InProgress() error
}

// Errors brokers return, matched with errors.Is.
var (
	// ErrUnavailable: the backend cannot be reached; retry later.
	ErrUnavailable = errors.New("pub/sub backend unavailable")
	// ErrQuotaExceeded: the tenant's storage limit is reached.
	ErrQuotaExceeded = errors.New("pub/sub storage limit reached")
)
