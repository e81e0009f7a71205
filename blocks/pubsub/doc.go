// Package pubsub is the publish/subscribe building block: Dapr's pub/sub API
// (publish, bulk publish, declarative, programmatic and streaming
// subscriptions) for many tenants, on one shared Broker.
//
// Publishing is written once for both transports. The service checks the
// pub/sub component and the topic the caller names, and the tenant's access
// policy, then NewEnvelope wraps the payload in a CloudEvent exactly as daprd
// does — the same attributes, defaults, cloudevent.* overrides, pass-through
// of application/cloudevents+json bodies, rawPayload and ttlInSeconds — so
// that a subscriber cannot tell blockgate from a sidecar. The broker stores
// the resulting Message durably before the publisher gets its 204; the
// CloudEvent id doubles as the broker's deduplication id.
//
// The Broker (pubsub.jetstream, the gateway's JetStream) keeps tenants apart
// by itself and offers durable, competing-consumer subscriptions with
// redelivery and backoff. A subscription is either declarative (Dapr's
// Subscription resource, ParseSubscription) or programmatic (the app's GET
// /dapr/subscribe answer, ParseProgrammatic); both become a Subscription,
// whose Routes are compiled into a Router of CEL rules evaluated over the
// event as daprd exposes it.
//
// Delivery reads each Message back with DecodeEvent, drops expired events,
// picks the app's route with Router.Match, and hands the event to the app
// (HTTP POST, gRPC OnTopicEvent, or an app-opened stream). The app's answer
// settles the delivery: SUCCESS acknowledges, RETRY redelivers after the
// subscription's backoff, DROP (or running out of attempts) sends the event
// to the dead-letter topic when there is one. Errors a client sees are the
// constructors of errors.go, with Dapr's codes.
package pubsub
