// Package xds is the gateway's xDS control plane: an aggregated discovery
// service (ADS, v3, state of the world and delta) built on
// go-control-plane's snapshot cache, which configures the Envoy sidecars
// of apps (listeners, routes, clusters, endpoints and their SPIFFE
// certificates over SDS) and proxyless gRPC clients.
//
// # Nodes
//
// A node's id is "<tenant>/<app-id>/<instance>" (NodeID, ParseNodeID):
// the tenant, the app's Dapr app id, and a name unique among the app's
// instances. The node's metadata may repeat them as TENANT, APP_ID and
// INSTANCE (they must agree), and says APP_PORT, the port on 127.0.0.1
// where an Envoy node's app listens, and PROXYLESS for gRPC clients
// (which are also recognised by their user agent). The cache keeps one
// snapshot per node id.
//
// # Authentication
//
// Every stream is authenticated before go-control-plane sees it, and its
// node checked at its first request, before any watch exists, so that a
// refused node receives nothing at all. A node presents either
//   - a join token, "authorization: Bearer bgjoin_..." in the gRPC
//     metadata of the stream (Envoy's initial_metadata on the ADS
//     grpc_service; see Bootstrap). Tokens are issued per app by the
//     registry, which keeps only their SHA-256 (tenantspg.IssueJoinToken);
//     or
//   - its app's SVID as the client certificate of a TLS connection
//     (Config.TLS, the CA's ServerTLSConfig), verified again here with the
//     CA and mapped to its app with authca.PrincipalOf. Proxyless gRPC
//     clients authenticate this way: gRPC sends no opaque bearer token.
//
// When both are given they must name the same app. A missing, unknown,
// expired or revoked credential ends the stream with Unauthenticated; a
// node id that names another tenant or app than the credential, or that
// changes within a stream, with PermissionDenied; a malformed node id with
// InvalidArgument. A token's expiry is checked when a stream opens: a
// connected node keeps its stream. Revocation ends the token's streams at
// once (CloseTokenStreams, on the registry's notification), and a node
// whose app is deleted loses its streams at the next Refresh.
//
// # What an Envoy sidecar gets
//
// Listeners on 127.0.0.1 for the app's Dapr calls, so that the app needs
// no token:
//   - outbound_http on 3500: /v1.0/invoke/<target>/method/<rest> goes to
//     the target's sidecars as /<rest>, and a request with the header
//     dapr-app-id: <target> as it is; everything else goes to the gateway's
//     HTTP API (cluster gateway|http);
//   - outbound_grpc on 50001: calls with dapr-app-id: <target> go to the
//     target's sidecars (Dapr's gRPC proxying), everything else to the
//     gateway's gRPC API (gateway|grpc).
//
// Both set dapr-caller-app-id. With APP_PORT, an inbound listener on
// 0.0.0.0:15000 (Config.InboundPort, the same for every sidecar, which is
// how the others find it) requires a client certificate from the trust
// bundle, admits with an RBAC filter only the SPIFFE IDs of the apps that
// policy allows and the gateway's, tells the app the caller's ID in
// x-forwarded-client-cert, and forwards to the cluster inbound|<port> on
// 127.0.0.1. Clusters to other sidecars and to the gateway are mTLS with
// the node's SVID, and match the peer's SPIFFE ID exactly (URI SAN); the
// protocol to other sidecars follows the caller's (HTTP/1.1 or HTTP/2).
// testdata/envoy-*.yaml show it all for a small tenant.
//
// # Access policy
//
// RBAC here admits or refuses whole apps, while a Dapr access policy may
// decide per method and verb. So a caller gets the direct path to a target
// (a route to it, and a place in the target's RBAC) only when the
// target's policy allows it every method; when the answer depends on the
// method, or is no, its calls go to the gateway, which decides per call
// and answers a refusal with Dapr's error. reachOf classifies, with
// authpolicy's precedence; a test checks it against authpolicy.Set.Invoke.
//
// # Endpoints
//
// A target's sidecars are found from the registry: the host of each
// registered instance endpoint of the app, at the inbound port. EDS
// carries them when they are all IP addresses; otherwise (Envoy takes
// only addresses over EDS) the cluster is STRICT_DNS with the endpoints
// inline. Only apps known to run sidecars are targets; calls to any other
// app go through the gateway, which reaches it at its registered endpoint.
// Which apps run sidecars is decided one of two ways:
//   - cluster-wide, with Config.Presence: the server reports each Envoy
//     node that connects or leaves, the gateway shares that among its
//     nodes, and the Source's TenantConfig.Sidecars is the whole list. The
//     sidecars connected to this server do not count by themselves, so
//     every gateway node that sees the same list builds the same
//     snapshots, with the same versions; the gateway calls Refresh when a
//     tenant's list changes (see gateway/gatewaysidecars).
//   - node-local, without it: the apps with an Envoy node connected to
//     this server, and those the Source lists in TenantConfig.Sidecars. A
//     sidecar's first connection, and its app's last disconnection,
//     refresh the tenant. Two servers that hold different sidecars then
//     serve different snapshots: for a lone server and tests.
//
// # Proxyless gRPC
//
// A proxyless client dials "xds:///<app-id>" and asks for a listener of
// that name, so its snapshot has another shape: per gRPC app it may call
// (as above, every method), an API listener named after the app, with its
// route inline, an EDS cluster and the app's registered instances
// themselves as endpoints. grpcs:// instances are reached over mTLS with
// gRPC's certificate provider (instance ProxylessCertProvider, a
// file_watcher over the app's SVID; see ProxylessBootstrap) and the
// target's SPIFFE ID matched; grpc:// ones in plaintext. When policy stops
// allowing a target, its listener goes, and gRPC fails the calls.
//
// # Certificates
//
// Each Envoy node has its own SVID (a fresh key, Config.SVIDTTL, one hour
// by default) served over SDS as a secret named by the app's SPIFFE ID,
// beside the trust bundle as a validation context named
// spiffe://<trust-domain>. The SVID is reissued after two thirds of its
// life, and at once when the bundle changes (a CA rotation), and pushed
// under a new secrets version; Envoy swaps it without a restart.
//
// # Versions and fan-out
//
// The version of each resource type is a hash of its resources' names and
// deterministic encodings, so the same registry state gives the same
// versions on every gateway node, and a change that does not touch a type
// leaves its version alone; the secrets' version hashes the certificate's
// serial number and the bundle, and is the node's own. Refresh(tenant)
// reloads a tenant from the Source and rebuilds its nodes' snapshots;
// RefreshAll every tenant's. They do not block: a loop in Run coalesces
// them, and retries a tenant whose Source failed a second later, keeping
// the current snapshots meanwhile. Nodes of one app with the same options
// share the resources of one build. Every resource is validated (Any
// contents included) before it is served, but only once while it stays
// the same: a rebuild validates the resources whose encoding changed.
// The gateway calls Refresh on the registry's change notifications (apps,
// instances, policies) and on announcements from other nodes.
//
// # Status and NACKs
//
// Status lists the connected nodes with the configuration version served,
// the version acknowledged per type and their latest NACKs with the error
// the node gave. After a NACK the server treats the node as holding the
// version it rejected, so that the same configuration is not sent again
// at once (go-control-plane would, and the node would reject it again, in
// a loop); the node keeps its last good configuration until the next
// version.
//
// # Concurrency
//
// A Server's methods are safe for concurrent use. Builds, and every change
// to the cache's snapshots, are serialised on one mutex; the connection
// state is behind another, never held while building.
package xds
