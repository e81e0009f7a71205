package state

import (
	"errors"
	"net/http"

	"github.com/blockgate/blockgate/blocks"
)

// The state block's errors, with Dapr's codes and the statuses daprd answers.

func errStoreNotFound(name string) *blocks.Error {
	return blocks.New(blocks.InvalidArgument, http.StatusBadRequest, "ERR_STATE_STORE_NOT_FOUND",
		"state store %s is not found", name).WithMetadata("storeName", name)
}

func errStoresNotConfigured() *blocks.Error {
	return blocks.New(blocks.FailedPrecondition, http.StatusInternalServerError, "ERR_STATE_STORE_NOT_CONFIGURED",
		"state store is not configured; apply a state component to this tenant first")
}

func errNotSupported(store, what string) *blocks.Error {
	return blocks.New(blocks.Unimplemented, http.StatusInternalServerError, "ERR_STATE_STORE_NOT_SUPPORTED",
		"state store %s does not support %s", store, what)
}

func errMalformed(format string, args ...any) *blocks.Error {
	return blocks.ErrMalformedRequest(format, args...)
}

func errUnsupportedOperation(op string) *blocks.Error {
	return blocks.New(blocks.InvalidArgument, http.StatusBadRequest, "ERR_NOT_SUPPORTED_STATE_OPERATION",
		"operation type %s not supported; use upsert or delete", op)
}

// errOutboxPubsubNotFound: the pub/sub component a store's outbox names is
// missing or out of the caller's scope. daprd fails the transaction with
// ERR_PUBLISH_OUTBOX, 500, when it cannot publish the outbox message.
func errOutboxPubsubNotFound(store, pubsubName string) *blocks.Error {
	return blocks.New(blocks.Internal, http.StatusInternalServerError, "ERR_PUBLISH_OUTBOX",
		"error while publishing outbox message: pubsub %s, which state store %s names in outboxPublishPubsub, is not found", pubsubName, store).
		WithMetadata("storeName", store, "pubsubName", pubsubName)
}

// errOutboxTooLarge: the event of one upsert would not fit the broker.
func errOutboxTooLarge(key string, size int) *blocks.Error {
	return blocks.New(blocks.InvalidArgument, http.StatusBadRequest, "ERR_PUBLISH_OUTBOX",
		"the outbox event of key %s is %d bytes; the limit is %d", key, size, MaxOutboxMessageBytes)
}

func errQueryMalformed(format string, args ...any) *blocks.Error {
	return blocks.New(blocks.InvalidArgument, http.StatusBadRequest, "ERR_MALFORMED_REQUEST",
		"invalid state query: "+format, args...)
}

// errStore wraps a store failure of operation op ("save", "get", …) in the
// Dapr error for it: a failed ETag check is 409 / Aborted, an unreachable
// backend is 503 / Unavailable, anything else is 500 / Internal.
func errStore(op, code, store string, err error) *blocks.Error {
	switch {
	case errors.Is(err, ErrETagMismatch):
		return blocks.New(blocks.Conflict, http.StatusConflict, code,
			"failed to %s state in state store %s: possible etag mismatch", op, store).WithCause(err)
	case errors.Is(err, ErrUnavailable):
		return blocks.New(blocks.Unavailable, http.StatusServiceUnavailable, code,
			"state store %s is unavailable; retry later", store).WithCause(err)
	case errors.Is(err, ErrInvalidQuery):
		return errQueryMalformed("%v", err)
	}
	return blocks.New(blocks.Internal, http.StatusInternalServerError, code,
		"failed to %s state in state store %s", op, store).WithCause(err)
}
