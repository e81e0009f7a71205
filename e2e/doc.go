// Package e2e holds the end-to-end tests: they build the blockgate binary,
// start real gateway processes (with their private Postgres and embedded
// NATS) and drive them with the official Dapr SDKs, plain HTTP and gRPC.
package e2e
