// Package state is the state building block: Dapr's key/value API with
// ETags, transactions, TTLs and the alpha query API, for many tenants.
//
// The Service is written once for both transports. It resolves the store a
// caller names among its tenant's components (reopening it when the
// component changes), applies Dapr's key prefixing (appid||key by default;
// the component's keyPrefix may choose name, namespace, none or a fixed
// prefix) and request rules, and calls a Store.
//
// Store is deliberately small: Get, Set and Delete. Bulk reads,
// transactions and queries are separate one-method interfaces a store may
// implement; the service finds them by type assertion and falls back (bulk
// get key by key) or answers that the store does not support the feature.
// Implementations live beside this package: statepg (the gateway's Postgres)
// and statemem (in process), both held to the statetest conformance suite.
//
// # Transactional outbox
//
// A state component with Dapr's outbox metadata (outboxPublishPubsub, a
// pub/sub component of the same tenant, and outboxPublishTopic) publishes
// one CloudEvent per upsert of every transaction on it, if and only if the
// transaction commits. The service builds each message with
// pubsub.NewEnvelope, exactly as a publish by the calling app would be
// built (source is the app id; the id is "outbox-<uuid>", as daprd's), and
// hands the operations and the messages to the store's OutboxTransactor,
// which records both in one transaction; the store's relay (package
// stateoutbox) publishes them afterwards, at least once, deduplicated by the
// broker on the message id. As in daprd:
//
//   - Save and Delete do not publish; deletes in a transaction do not
//     either.
//   - An upsert with metadata outbox.projection=true is not saved: its value
//     is published in place of the value of the upsert of the same key in
//     the same transaction (the first projection of a key wins). A
//     projection without such an upsert fails the transaction with 400, as
//     Dapr documents. Without the outbox, the metadata means nothing and the
//     upsert is saved.
//   - Operation metadata shapes the event: outbox.cloudevent.<attr> (Dapr's
//     documented form) or cloudevent.<attr> override id, source, type,
//     subject, traceid, traceparent and tracestate; any other name adds an
//     extension attribute; datacontenttype (or daprd's contentType) sets the
//     content type; partitionKey orders the messages of a key. A
//     projection's metadata overrides the upsert's. Without a content type,
//     a value that is JSON (every value sent over HTTP) is published as
//     application/json and anything else as text/plain. Request-level
//     transaction metadata is not seen by the service.
//   - The pub/sub component must exist for the caller (500
//     ERR_PUBLISH_OUTBOX otherwise, daprd's code) and its topic scopes must
//     let the app publish (403), checked at every transaction.
//
// Differences from daprd: outboxPubsub (daprd's internal coordination
// topic) and outboxDiscardWhenMissingState are validated and ignored,
// because the message is a row of the same database transaction and cannot
// outlive a transaction that did not commit; daprd copies every metadata key
// into the event verbatim, blockgate only the keys above; a message larger
// than MaxOutboxMessageBytes fails the transaction with 400 instead of
// failing forever in the relay.
package state
