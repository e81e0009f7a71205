// Package deploy holds no code: it is where blockgate's deployment files
// live (the Dockerfile, Kubernetes manifests, the Envoy sidecar example and
// the files of docker-compose.yml under compose/), and its tests check
// those files' invariants without Docker: that the compose cluster's nodes
// form one cluster over one Postgres with one CA key, that every sample
// app has an Envoy sidecar in its network namespace with a bootstrap the
// init job writes, and that the Envoy configurations parse and validate as
// Envoy's own API does.
package deploy
