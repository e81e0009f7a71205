// Package appchannel is the one way the gateway reaches an app's own
// endpoint. Service invocation, pub/sub push deliveries, the discovery of an
// app's programmatic subscriptions, health probes and, as the blocks that
// need them arrive, actor, binding and configuration callbacks all go
// through one Channel, so that every call to an app gets the same instance
// balancing, health, credentials and connection pooling.
//
// # Instances and health
//
// An app has one or more instances, each with an endpoint: an http:// or
// https:// base URL, or grpc:// / grpcs:// for apps that speak Dapr's gRPC
// app protocol. Every call picks an instance anew, round robin over the
// healthy ones, so a retried call may land on another instance. An app with a
// health check (tenants.HealthCheck) is probed by Run; an instance that fails
// Threshold probes in a row gets nothing until one probe succeeds again. An
// app without a check counts as healthy. Every gateway node probes on its
// own: health is a node's view, like a load balancer's.
//
// # What the app receives
//
// Every HTTP request carries the app's token as dapr-api-token when it has
// one (daprd's APP_API_TOKEN), and the static headers of the app's
// registration (a Dapr HTTPEndpoint's spec.headers). The request's own path
// and query are resolved under the instance's base URL, so an endpoint
// registered as https://api.example.com/v2 receives /v2/<path>.
//
// gRPC apps are reached over one client connection per endpoint, kept for
// the life of the process: Conn for proxying any service, Callback for
// Dapr's AppCallback service (OnInvoke, and the pub/sub and binding
// callbacks).
//
// # Concurrency
//
// A Channel is safe for concurrent use. Do, Conn and Callback may be called
// from any goroutine; Run is called once.
package appchannel
