package pubsub

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/blockgate/blockgate/blocks"
)

// The pub/sub block's errors, with Dapr's codes and the HTTP statuses daprd
// answers with (dapr/dapr pkg/api/errors/pubsub.go and
// pkg/messages/errorcodes, v1.18). Where daprd answers a client's own bad
// input with a 5xx, blockgate answers 400 with the same code; each such
// constructor says so.

// ErrNotConfigured is the answer when the tenant has no pub/sub component
// at all.
func ErrNotConfigured(name string) *blocks.Error {
	what := "pubsub " + name
	if name == "" {
		what = "pubsub"
	}
	return blocks.New(blocks.FailedPrecondition, http.StatusBadRequest, "ERR_PUBSUB_NOT_CONFIGURED",
		"%s is not configured; apply a pubsub component to this tenant first", what).
		WithMetadata("pubsubName", name)
}

// ErrNameEmpty is the answer to a request that names no pub/sub component.
func ErrNameEmpty() *blocks.Error {
	return blocks.New(blocks.InvalidArgument, http.StatusNotFound, "ERR_PUBSUB_EMPTY", "pubsub name is empty")
}

// ErrNotFound is the answer when the tenant has no pub/sub component called
// name (HTTP 404, gRPC InvalidArgument, as daprd).
func ErrNotFound(name string) *blocks.Error {
	return blocks.New(blocks.InvalidArgument, http.StatusNotFound, "ERR_PUBSUB_NOT_FOUND",
		"pubsub %s is not found", name).WithMetadata("pubsubName", name)
}

// ErrTopicEmpty is the answer to a request that names no topic.
func ErrTopicEmpty() *blocks.Error {
	return blocks.New(blocks.InvalidArgument, http.StatusNotFound, "ERR_TOPIC_NAME_EMPTY", "topic is empty")
}

// ErrInvalidTopic is the answer to a topic name ValidateTopic refuses for a
// reason other than being empty. daprd has no such check; the code is the
// shared malformed-request one.
func ErrInvalidTopic(reason string) *blocks.Error {
	return blocks.ErrMalformedRequest("invalid topic: %s", reason)
}

// ErrForbidden is the answer when app may not publish to (or subscribe to)
// topic.
func ErrForbidden(app, topic string) *blocks.Error {
	return blocks.New(blocks.Forbidden, http.StatusForbidden, "ERR_PUBSUB_FORBIDDEN",
		"topic %s is not allowed for app id %s", topic, app).WithMetadata("appID", app, "topic", topic)
}

// ErrRequestMetadata is the answer to request metadata the block cannot
// read, such as rawPayload=maybe or ttlInSeconds=-1.
func ErrRequestMetadata(format string, args ...any) *blocks.Error {
	return blocks.New(blocks.InvalidArgument, http.StatusBadRequest, "ERR_PUBSUB_REQUEST_METADATA",
		"failed deserializing metadata: "+format, args...)
}

// ErrCloudEvent is the answer to a body that cannot become a CloudEvent,
// such as an application/cloudevents+json body that is not a JSON object.
// daprd answers 500 here (with gRPC InvalidArgument); the input is the
// client's, so blockgate answers 400.
func ErrCloudEvent(format string, args ...any) *blocks.Error {
	return blocks.New(blocks.InvalidArgument, http.StatusBadRequest, "ERR_PUBSUB_CLOUD_EVENTS_SER",
		"cannot create cloudevent: "+format, args...)
}

// ErrMarshalEnvelope is the answer when an envelope cannot be serialised.
func ErrMarshalEnvelope(pubsub, topic string, cause error) *blocks.Error {
	return blocks.New(blocks.InvalidArgument, http.StatusBadRequest, "ERR_PUBSUB_EVENTS_SER",
		"error when marshalling cloud event envelope for topic %s pubsub %s", topic, pubsub).WithCause(cause)
}

// ErrUnmarshalEvents is the answer to a bulk publish body that is not a list
// of entries. The decoder's message is the client's own input described, so
// it is part of the message.
func ErrUnmarshalEvents(pubsub, topic string, cause error) *blocks.Error {
	return blocks.New(blocks.InvalidArgument, http.StatusBadRequest, "ERR_PUBSUB_EVENTS_SER",
		"error when unmarshaling the request for topic %s pubsub %s: %v", topic, pubsub, cause)
}

// ErrPublish wraps a broker's failure to publish to topic. The broker's
// sentinels choose the status: ErrUnavailable is 503 / Unavailable,
// ErrQuotaExceeded is 429 / ResourceExhausted, a deadline is 504; anything
// else is daprd's 500 / Internal. The cause is logged, never sent.
func ErrPublish(pubsub, topic string, cause error) *blocks.Error {
	kind, status, why := blocks.Internal, http.StatusInternalServerError, "the pub/sub backend failed"
	switch {
	case errors.Is(cause, ErrUnavailable):
		kind, status, why = blocks.Unavailable, http.StatusServiceUnavailable, "the pub/sub backend is unavailable; retry later"
	case errors.Is(cause, ErrQuotaExceeded):
		kind, status, why = blocks.ResourceExhausted, http.StatusTooManyRequests, "the tenant's pub/sub storage limit is reached"
	case errors.Is(cause, context.DeadlineExceeded):
		kind, status, why = blocks.DeadlineExceeded, http.StatusGatewayTimeout, "the pub/sub backend did not answer in time"
	case errors.Is(cause, context.Canceled):
		kind, why = blocks.Canceled, "the request was canceled"
	}
	return blocks.New(kind, status, "ERR_PUBSUB_PUBLISH_MESSAGE",
		"error when publishing to topic %s in pubsub %s: %s", topic, pubsub, why).
		WithMetadata("pubsubName", pubsub, "topic", topic).WithCause(cause)
}

// ErrConsume wraps a broker's failure to deliver a subscription's events:
// its consumers could not be made, or one failed for good. ErrUnavailable
// (JetStream electing a leader after losing a server, say) is 503 /
// Unavailable, so that a streaming subscriber comes back — the Dapr SDKs
// subscribe again by themselves on Unavailable, and give up on any other
// code; anything else is returned as it is, which the transports answer as
// an internal error. daprd has no code of its own for this.
func ErrConsume(pubsub, topic string, cause error) error {
	if !errors.Is(cause, ErrUnavailable) {
		return cause
	}
	return blocks.ErrUnavailable("the pub/sub backend", cause).WithMetadata("pubsubName", pubsub, "topic", topic)
}

// errSubscription describes what is wrong with a subscription (declarative
// or programmatic). It is a plain error: the admin API answers it as a
// malformed request, the delivery side logs it.
func errSubscription(format string, args ...any) error {
	return fmt.Errorf(format, args...)
}
