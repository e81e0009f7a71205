// Package invokeresiliency is Dapr's Resiliency resource and the policy
// engine that the service invocation block wraps every call to an app with
// (and, later, the other calls the gateway makes to apps).
//
// # The resource
//
// Parse reads a Resiliency (apiVersion dapr.io/v1alpha1) in YAML or JSON,
// with the fields of daprd's pkg/apis/resiliency/v1alpha1 types:
// spec.policies.timeouts, .retries and .circuitBreakers by name,
// spec.targets.apps, .actors and .components naming the policies that
// apply, and scopes. Durations read as daprd reads them: a plain number is
// milliseconds, anything else Go's duration form ("5s", "1m30s"). Parse is
// stricter than daprd, which logs a bad resource and runs without it:
// unknown fields, bad durations and code lists, trip expressions that are
// not a boolean over the breaker's counts, and targets naming an undefined
// policy are refused, with the offending field in the error.
//
// A tenant may hold several resources. Merge combines those whose scopes
// include the calling app (daprd loads a resource only into the sidecars of
// the apps in its scopes), a later one's policies and targets replacing an
// earlier one's of the same name. Each resource must name only policies it
// defines itself (or daprd's built-in ones).
//
// # The policy of a call
//
// Resiliency.ForApp resolves the Policy for calls to a target app, as daprd
// resolves an endpoint policy: the target's named policies if
// spec.targets.apps names the app (and only those), else the default
// policies the tenant defined (DefaultAppRetryPolicy, then
// DefaultRetryPolicy; likewise for timeouts and circuit breakers), else the
// built-in defaults:
//
//   - no timeout beyond the caller's context (the client's deadline, if
//     any, bounds the call);
//   - no circuit breaker;
//   - daprd's built-in service invocation retries (DaprBuiltInServiceRetries:
//     3 retries, 1s apart; a tenant may redefine them, not weaken them),
//     applied only to attempts that never reached the app (the connection
//     was refused, the name did not resolve). A request that reached the
//     app is not repeated without a policy that asks for it, and a
//     non-idempotent one never is.
//
// Policy.Run applies the policy. Each attempt passes the circuit breaker,
// then runs under the timeout, and a failed attempt is retried by the retry
// policy. This is daprd's order (its runner nests retry ⊃ circuit breaker ⊃
// timeout): the timeout is per attempt, not for the whole call, and every
// attempt counts for the breaker, so a trip expression means the same as in
// daprd. An open breaker fails the call fast with ErrCircuitOpen before
// anything is sent, and a failure that opens the breaker ends the retries
// with that failure.
//
// # Outcomes and retries
//
// The caller's function reports each attempt as an Outcome: the app's
// Status (an HTTP status or a gRPC code; success is 200-399 or OK, as in
// daprd, so an app's 4xx counts as a failure for the breaker) and two facts
// only the caller knows. Unsent says that the attempt failed before the
// request left (DialFailed helps): any retry policy retries it, since
// sending it again cannot apply it twice. Replayable says that the request
// can be sent again after it reached the app: its body is empty or
// buffered, and its method is idempotent (IdempotentMethod). Only
// replayable requests are retried after a failing status (subject to the
// policy's matching) or a broken connection or a timeout. So a request
// with a streamed body, once consumed, is not retried (daprd bypasses
// retries for streamed requests likewise), and a non-idempotent request
// (POST, PATCH) is retried only when Unsent.
//
// This last rule is where the gateway departs from daprd, which repeats
// any request its retry policy matches, POST included. A duplicated POST can
// charge a card twice; a gateway shared by many tenants should not do that
// on a policy's say-so. The caller owns the decision: it may mark a request
// Replayable when it knows better (an idempotency key, a method the app
// declares idempotent).
//
// A failing status is the app's answer, not an error: when no retry
// follows, Run returns it with a nil error and the caller passes it on, as
// daprd passes the app's status through. Run's errors are its own
// (ErrCircuitOpen, ErrTimeout, the caller's context ending while waiting to
// retry) or the call's, for the last attempt.
//
// The Outcome's Release frees an attempt's response: Run calls it on the
// outcomes it drops to retry, and the caller calls it on the one Run
// returns, after streaming the response; until then the attempt's context,
// and so the policy's timeout, still covers the response body, as daprd
// copies the response within the timeout.
//
// # Retry schedules
//
// constant waits duration (default 5s). exponential waits 500ms, then 1.5
// times longer each time, each wait jittered by ±50% and capped at
// maxInterval (default 60s), and gives up after 15 minutes in all, as
// daprd's backoff does. maxRetries (default -1, no limit) counts retries
// after the first attempt. matching.httpStatusCodes and gRPCStatusCodes
// ("429,500-599", "1-4,8-11,13,14") choose the failing statuses to retry;
// left out, every failing status of that protocol is retried.
//
// # Circuit breakers
//
// A breaker's state is kept per (tenant, target app, policy name) in a
// Breakers registry that lives as long as the gateway node, as daprd's live
// as long as the sidecar; a changed policy replaces its breaker. The
// semantics are those of sony/gobreaker, which daprd uses: closed, it
// evaluates trip (a CEL expression over requests, totalSuccesses,
// totalFailures, consecutiveSuccesses and consecutiveFailures, default
// consecutiveFailures > 5) after each failure, and clears its counts every
// interval (0: never); open, it fails calls fast for timeout (default 60s);
// half-open, it admits maxRequests probes (default 1), closes after as many
// consecutive successes and opens again on any failure. An attempt whose
// caller went away (context cancelled) counts neither way. The gateway
// reaches an app through one registered endpoint, so a breaker is per app
// where daprd's are per app instance. Breakers are per gateway node, not
// shared across the cluster: each node stops sending to a failing app on
// its own evidence.
//
// # Time
//
// Waits between retries and breaker periods read a Clock, which tests
// replace. Per-attempt timeouts use context.WithTimeout on real time, so
// that the deadline travels with the request to the app.
package invokeresiliency
