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
package state
