// Package authpolicy decides who may do what inside a tenant: which app may
// invoke which method of which other app (Dapr's service invocation access
// control, in Dapr's Configuration shape), and which app may use which
// component and publish or subscribe to which topic (Dapr's component
// scopes and pub/sub topic scopes), with a per-tenant switch that turns
// every "allowed unless said otherwise" into "denied unless allowed".
//
// It is plain data and matching: no transport, no driver. The registry
// (tenants/tenantspg) stores the Records, the Cache keeps one immutable Set
// per tenant on each node, and the blocks ask the Set.
//
// # Where a Configuration applies
//
// In Dapr, access control is part of the Configuration loaded by the
// callee's sidecar: it says who may call that app. A tenant here stores
// Configurations by name, each applying either to a list of callee app ids
// or to the whole tenant (the default for apps without one of their own).
// An app has at most one, and a tenant at most one default; the registry's
// keys enforce both. Only spec.accessControl matters; the other spec
// fields of a Configuration (tracing, features, mtls, ...) are accepted so
// that an existing file applies unchanged, and ignored. Unknown fields,
// misspelt ones included, are errors that name the field.
//
// # Identity
//
// daprd matches a policy against the caller's SPIFFE ID,
// spiffe://<trustDomain>/ns/<namespace>/<appId>. Here the caller's tenant
// plays the namespace and the gateway's trust domain is every app's, so a
// policy applies to the caller whose appId it names when its namespace is
// empty or the tenant's id and its trustDomain empty or the gateway's. A
// policy naming another namespace or trust domain never matches (daprd:
// "the app policy is ignored and the global default action takes
// effect"); Configuration.Warnings says so when the file is applied, since
// files written for daprd must name both (daprd requires them) and often
// say "public" and "default". spec.accessControl.trustDomain, the callee's
// own trust domain in daprd, is ignored.
//
// # Precedence (daprd's)
//
//  1. No Configuration applies to the callee: allowed.
//  2. The Configuration has no accessControl, or one without defaultAction
//     and policies: allowed (daprd's documented rule: an empty access
//     control spec is none; daprd itself denies when such a spec sets only
//     trustDomain, a quirk not reproduced).
//  3. Otherwise the action of the most specific operation that matches the
//     method (and, for HTTP, lists the verb or "*"); else the caller's
//     policy defaultAction; else the global defaultAction, which is deny
//     when not given and there are policies ("the more secure option").
//
// # Operation names
//
// daprd (pkg/config/acl_trie.go, v1.18) splits names and methods on '/'
// and matches segment by segment:
//   - a name without a trailing wildcard matches the method and everything
//     under it: "/orders" matches "/orders" and "/orders/1/items", never
//     "/ordersx";
//   - a trailing "/*" matches zero or one more segment: "/op/*" matches
//     "/op" and "/op/x", not "/op/x/y";
//   - a trailing "/**" matches any depth: "/op/**" matches "/op/x/y";
//   - '*' inside a segment matches within it: "/v*" matches "/v1", and
//     "/v*/orders" matches "/v2/orders";
//   - HTTP methods match case-insensitively, gRPC methods exactly; for a
//     gRPC call the verb is ignored (httpVerb is "unused for grpc
//     invocation"). An operation without httpVerb never matches an HTTP
//     call, as in daprd.
//
// Where daprd's result depends on the order of the rules in the file, or
// silently drops a rule, this package is deterministic or refuses:
//   - the most specific matching rule wins (a literal segment beats a
//     segment glob, which beats "/*", which beats "/**", which beats a
//     shorter name that covers the method). daprd takes the first sibling
//     in file order and the shortest covering name, so there "/api" allow
//     shadows "/api/internal" deny; here the deny applies. Rules that name
//     the verb of an HTTP call are the candidates, so "/orders/**" GET
//     allow still allows GET /orders/admin when "/orders/admin" lists only
//     DELETE;
//   - a whole-segment "*" or "**" before the end of a name ("/a/*/b") is
//     refused: daprd never matches the former and matches the latter as one
//     segment; write "/a/*" or a segment glob;
//   - two operations of one policy with the same name, or two policies for
//     one appId and namespace, are refused (daprd keeps one of them);
//   - an operation without action is refused: the documentation says it
//     defaults to allow, daprd denies;
//   - httpVerb entries are upper-cased and must be an HTTP verb daprd knows
//     or "*" (daprd silently never matches "post").
//
// # Method normalization
//
// Methods are normalized before matching (NormalizeOperation), as daprd's
// NormalizeMethod does at its entry points: percent-decoded once (HTTP),
// then rooted and cleaned, so ".." cannot climb out of an allowed prefix
// ("/public/../admin" and "/public/..%2Fadmin" are "/admin", which
// "/public/**" does not allow) and "//x" is "/x". An encoded slash is a
// slash, as in daprd (it matches on the decoded path): "%2F" cannot hide a
// segment, or a "..", from the matcher. '?', '#', control characters and,
// beyond daprd, a backslash (a separator to some servers) are refused. The
// transport must send the app the normalized method, as daprd does, so that
// the path that was authorized is the path that is served.
//
// # Deny by default
//
// A tenant's switch (off by default) makes:
//   - an app with no applicable Configuration uncallable;
//   - a Configuration without defaultAction deny (rule 2 above becomes deny;
//     daprd's default is allow);
//   - a component without scopes usable by no app (Dapr: by every app);
//   - a topic usable only by the apps the component's publishingScopes or
//     subscriptionScopes list with it (Dapr: an app not listed is limited
//     only by allowedTopics). The topic rules themselves are the pub/sub
//     block's (pubsub.TopicAllowed), so the two cannot drift apart.
package authpolicy
