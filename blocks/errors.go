// Package blocks holds what every building block shares: the error vocabulary
// that both transports map to Dapr-compatible responses, and the caller's
// identity as a block sees it.
//
// A block package (blocks/state, blocks/pubsub, …) is transport-agnostic: it
// never imports echo, grpc or pgx. Its service methods take ctx first and the
// caller's Principal explicitly, and they return *Error values built by the
// block's own errors.go. The HTTP adapter maps an *Error to a status code and a
// {"errorCode","message"} body; the gRPC adapter maps it to a status with a
// google.rpc.ErrorInfo. Each mapping lives in exactly one place per transport.
package blocks

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// Kind classifies an error the way gRPC status codes do. The gRPC adapter maps
// a Kind one-to-one onto a codes.Code; the HTTP status is carried separately
// by each error because Dapr's HTTP statuses do not follow the kind (an
// unknown state store is 400 over HTTP but InvalidArgument over gRPC, an
// unknown pub/sub is 404 over HTTP but still InvalidArgument over gRPC).
type Kind int

const (
	// Internal is a failure the caller cannot fix; its detail is logged, not sent.
	Internal Kind = iota
	InvalidArgument
	NotFound
	// Conflict is an optimistic-concurrency failure (a stale ETag): gRPC Aborted.
	Conflict
	AlreadyExists
	Forbidden
	Unauthenticated
	ResourceExhausted
	FailedPrecondition
	Unavailable
	Unimplemented
	DeadlineExceeded
	Canceled
)

var kindNames = [...]string{
	Internal:           "Internal",
	InvalidArgument:    "InvalidArgument",
	NotFound:           "NotFound",
	Conflict:           "Conflict",
	AlreadyExists:      "AlreadyExists",
	Forbidden:          "Forbidden",
	Unauthenticated:    "Unauthenticated",
	ResourceExhausted:  "ResourceExhausted",
	FailedPrecondition: "FailedPrecondition",
	Unavailable:        "Unavailable",
	Unimplemented:      "Unimplemented",
	DeadlineExceeded:   "DeadlineExceeded",
	Canceled:           "Canceled",
}

func (k Kind) String() string {
	if k >= 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Error is an error a client may see. Message is written for the client;
// Cause holds internal detail that is logged with an error id and never sent.
type Error struct {
	Kind Kind
	// Code is Dapr's stable error code, such as ERR_STATE_STORE_NOT_FOUND.
	Code string
	// HTTPStatus is the status the HTTP API answers with.
	HTTPStatus int
	// Message is safe to show to the caller.
	Message string
	// Metadata is sent to the caller as google.rpc.ErrorInfo metadata.
	Metadata map[string]string
	// Cause is internal detail; it is logged and unwrapped, never sent.
	Cause error
}

func (e *Error) Error() string {
	if e.Cause != nil {
		return e.Code + ": " + e.Message + ": " + e.Cause.Error()
	}
	return e.Code + ": " + e.Message
}

func (e *Error) Unwrap() error { return e.Cause }

// Is matches another *Error by Code, so that errors.Is(err, SomeTemplate)
// works without comparing messages.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code && t.Code != ""
}

// New builds an error with a client message formatted from args.
func New(kind Kind, httpStatus int, code, format string, args ...any) *Error {
	return &Error{Kind: kind, Code: code, HTTPStatus: httpStatus, Message: fmt.Sprintf(format, args...)}
}

// WithCause returns a copy of e that carries cause as internal detail.
func (e *Error) WithCause(cause error) *Error {
	c := *e
	c.Cause = cause
	return &c
}

// WithMetadata returns a copy of e with ErrorInfo metadata added.
func (e *Error) WithMetadata(kv ...string) *Error {
	c := *e
	c.Metadata = make(map[string]string, len(e.Metadata)+len(kv)/2)
	for k, v := range e.Metadata {
		c.Metadata[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		c.Metadata[kv[i]] = kv[i+1]
	}
	return &c
}

// As returns err as an *Error. Any other error becomes an Internal error whose
// cause is err, so that adapters have one type to map.
func As(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Kind: Internal, Code: "ERR_INTERNAL", HTTPStatus: http.StatusInternalServerError,
		Message: "internal error", Cause: err}
}

// Errors shared by every block and by the transports.
var (
	ErrMalformedRequest = func(format string, args ...any) *Error {
		return New(InvalidArgument, http.StatusBadRequest, "ERR_MALFORMED_REQUEST", format, args...)
	}
	ErrBodyTooLarge = func(limit int64) *Error {
		return New(ResourceExhausted, http.StatusRequestEntityTooLarge, "ERR_BODY_TOO_LARGE",
			"request body exceeds the limit of %d bytes; send less per request or raise --max-body-size", limit)
	}
	ErrUnauthenticated = func(format string, args ...any) *Error {
		return New(Unauthenticated, http.StatusUnauthorized, "ERR_UNAUTHENTICATED", format, args...)
	}
	ErrNotImplemented = func(what string) *Error {
		return New(Unimplemented, http.StatusNotImplemented, "ERR_NOT_IMPLEMENTED", "%s is not implemented by blockgate yet", what)
	}
	ErrUnavailable = func(what string, cause error) *Error {
		return New(Unavailable, http.StatusServiceUnavailable, "ERR_UNAVAILABLE", "%s is unavailable; retry later", what).WithCause(cause)
	}
	// ErrTooManyRequests refuses a request over the tenant's (or app's)
	// rate; the transports tell the caller when to retry (Retry-After,
	// google.rpc.RetryInfo) from the retryAfterSeconds metadata.
	ErrTooManyRequests = func(retryAfter time.Duration) *Error {
		secs := max(int64((retryAfter+time.Second-1)/time.Second), 1)
		return New(ResourceExhausted, http.StatusTooManyRequests, "ERR_TOO_MANY_REQUESTS",
			"the request rate limit of the tenant or the app is reached; retry in %d s", secs).
			WithMetadata(MetaRetryAfterSeconds, strconv.FormatInt(secs, 10))
	}
	// ErrQuotaExceeded refuses a request that would take the tenant past
	// one of its quotas (what), such as its concurrent connections.
	ErrQuotaExceeded = func(what string, limit int64) *Error {
		return New(ResourceExhausted, http.StatusTooManyRequests, "ERR_QUOTA_EXCEEDED",
			"the tenant's quota of %d %s is reached; ask the platform admin to raise it", limit, what)
	}
)

// MetaRetryAfterSeconds is the error metadata key that tells the caller how
// many seconds to wait before retrying.
const MetaRetryAfterSeconds = "retryAfterSeconds"
