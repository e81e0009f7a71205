package pubsubjs

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/blockgate/blockgate/blocks/pubsub"
)

// JetStream error codes nats.go has no constants for.
const (
	// jsErrCodeStoreFailed (JSStreamStoreFailedF): a message could not be
	// stored.
	jsErrCodeStoreFailed jetstream.ErrorCode = 10077
	// jsErrCodeStorageExceeded (JSStorageResourcesExceededErr): the server
	// cannot reserve a new stream's MaxBytes, because the MaxBytes of all its
	// streams would exceed its JetStream store. An operator has to add
	// storage or lower quotas.
	jsErrCodeStorageExceeded jetstream.ErrorCode = 10047
)

// errSettled is returned when a Delivery is settled a second time.
var errSettled = errors.New("pubsubjs: delivery already settled")

// unavailable are the errors of a NATS or JetStream that cannot be reached
// or does not answer in time.
var unavailable = []error{
	nats.ErrConnectionClosed,
	nats.ErrConnectionDraining,
	nats.ErrConnectionReconnecting,
	nats.ErrDisconnected,
	nats.ErrNoServers,
	nats.ErrNoResponders,
	nats.ErrTimeout,
	nats.ErrReconnectBufExceeded,
	nats.ErrStaleConnection,
	context.DeadlineExceeded,
	jetstream.ErrNoStreamResponse,
	jetstream.ErrAsyncPublishTimeout,
	jetstream.ErrTooManyStalledMsgs,
	jetstream.ErrConnectionClosed,
	jetstream.ErrServerShutdown,
	jetstream.ErrNoHeartbeat,
	jetstream.ErrJetStreamNotEnabled,
	jetstream.ErrJetStreamNotEnabledForAccount,
}

// classify wraps err with pubsub.ErrQuotaExceeded or pubsub.ErrUnavailable
// when it is one of those; other errors are returned unchanged.
func classify(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, pubsub.ErrUnavailable), errors.Is(err, pubsub.ErrQuotaExceeded):
		return err
	case isQuota(err):
		return fmt.Errorf("%w: %w", pubsub.ErrQuotaExceeded, err)
	case isUnavailable(err):
		return fmt.Errorf("%w: %w", pubsub.ErrUnavailable, err)
	}
	return err
}

// classify is the package's classify, and also counts as unavailability
// any error while the connection is down: some nats.go errors lose their
// cause ("error creating async reply handler: nats: connection closed").
func (b *Broker) classify(err error) error {
	err = classify(err)
	if err == nil || errors.Is(err, pubsub.ErrUnavailable) || errors.Is(err, pubsub.ErrQuotaExceeded) {
		return err
	}
	if st := b.js.Conn().Status(); st != nats.CONNECTED {
		return fmt.Errorf("%w (connection %s): %w", pubsub.ErrUnavailable, st, err)
	}
	return err
}

// isQuota reports a publish refused because the stream is full. JetStream
// answers every failed store with the same code (10077) and the store's
// error text as description, so the text is all there is to tell "stream
// full" (discard new) from a failing disk.
func isQuota(err error) bool {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode != jsErrCodeStoreFailed {
		return false
	}
	switch apiErr.Description {
	case "maximum bytes exceeded", "maximum messages exceeded":
		return true
	}
	return false
}

func isUnavailable(err error) bool {
	for _, target := range unavailable {
		if errors.Is(err, target) {
			return true
		}
	}
	// JetStream answers 503 when it is temporarily unable to serve, such
	// as a stream without a leader or a store that failed.
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.Code == 503 || apiErr.ErrorCode == jsErrCodeStorageExceeded)
}
