// Package tenantsrate limits how fast each tenant, and each app inside a
// tenant, may call the gateway, so that a noisy tenant cannot starve the
// others on a shared node, nor a noisy app the rest of its tenant. The
// gateway asks [Limiter.Allow] before a request reaches a block and answers
// 429 with a Retry-After header ([RetryAfterSeconds]) when it refuses.
//
// # Buckets
//
// Every limit is a token bucket: a sustained rate in cost units per second
// and a burst, the most units that may be spent at once after a quiet
// spell. A plain request costs 1; the gateway may charge more for bulk
// calls. A bucket is kept in GCRA form, as one integer (the instant it will
// be full again, in nanoseconds of the node's monotonic clock), so that the
// arithmetic is exact: a refused request's retryAfter is the exact time
// until the bucket holds enough, not a rounding of it. A rate is converted
// to a whole number of nanoseconds per token, which changes no real rate by
// more than a few parts per billion.
//
// A request whose cost exceeds the burst is admitted once the bucket is
// full and leaves it in debt, which the following requests wait out: it is
// never refused forever, and the long-run rate still holds.
//
// # Two buckets, spent together or not at all
//
// [Rates] gives each tenant a tenant limit (all its apps together) and a
// per-app limit (each app id alone); zero means no limit. A request must
// pass both. Both are checked and spent under the tenant's one mutex, so a
// request that the app's bucket refuses takes nothing from the tenant's,
// and the reverse: no token leaks. When both refuse, retryAfter is the
// longer wait, and the refusal counts against the tenant.
//
// # Limits change at once
//
// Allow reads the tenant's [Rates] through the function given to [New] on
// every request, so the gateway changes a limit by changing what that
// function returns (an atomic snapshot of the registry, refreshed on its
// change notifications). A bucket used under new limits rescales: it keeps
// the tokens it holds, up to the new burst, and refills at the new rate. A
// raised limit does not hand out a fresh burst, and a lowered one takes
// effect on the next request. Going from no limit to a limit starts a full
// bucket, since there was nothing to keep.
//
// # The cluster's share, and how close to the limit it gets
//
// Limits are cluster-wide; a node holds only its own buckets and talks to
// no other node on the request path. [Limiter.SetShare] makes a node
// enforce 1/N of each rate and of each burst (rounded up, at least 1),
// where N is the number of gateway nodes; the gateway calls it when cluster
// membership changes, and buckets rescale on their next request as above.
// How close the cluster then comes to a tenant's limit r with burst B
// depends on how the load balancer spreads that tenant's requests.
//
// The cluster never admits more than the limit plus one burst: each node
// admits at most ceil(B/N) + (r/N)·t units in any window of t seconds, so
// the N nodes together admit at most r·t + B + (N-1), whatever the
// balancer does (a request costing more than the burst may add its excess
// over the burst once, paid back as debt). Example: N = 3, r = 300/s and
// B = 60 give each node 100/s with a burst of 20, and the cluster at most
// 360 units in any one second and 300/s sustained.
//
// So the cluster-wide rate a tenant sees is its limit r within
// +(B + N - 1) units over any window, from the bursts, and -(s·r) where s is
// the balancer's skew for that tenant, defined below. A balanced balancer
// (s = 0) gives a tenant sending D per second min(D, r), less at most one
// unit per node for the granularity of tokens. A skewed one gives less,
// never more: each node admits min(its part of D, r/N), so if the balancer
// sends a fraction s of the tenant's traffic beyond the nodes' fair 1/N
// shares, a tenant sending exactly r gets (1-s)·r, and it needs to send
// (r/N)/f to get all of r, f being the smallest fraction any node receives.
// With the example's limits and a 40/30/30 split (s = 0.4 - 1/3 = 0.067), a tenant
// sending 300/s sees node A refuse 20 of its 120/s and gets 280/s; sending
// 334/s (100 / 0.3) gets it the full 300/s. The worst case is a balancer
// that pins a client to one node, as an L4 balancer does with the single
// long-lived HTTP/2 connection of a gRPC client: that client gets r/N, 100/s
// in the example, however fast it sends. The remedies are a request-level
// (L7, gRPC-aware) balancer, or clients that open several connections.
// Per-node weights fed by each node's measured share of a tenant's traffic
// would remove the skew term; the share is a method so that the gateway can
// change it live.
//
// While nodes disagree about N (a membership change propagating), each
// enforces its own view: the cluster admits at most the sum of r/N_i over
// the nodes, e.g. 150 + 150 + 100 = 400/s for a moment if a third node serves
// before the other two learn of it, or 2/3 of the limit while the survivors
// of a lost node still use N = 3. Each node measures time on its own
// monotonic clock; no clock synchronisation is involved.
//
// # Memory
//
// Buckets are made on a tenant's or an app's first request and dropped by
// [Limiter.Sweep] (run every SweepEvery by [Limiter.Run]) once they have
// stood full for IdleAfter. A full bucket is the same as a new one, so
// sweeping never forgives a debt; the one thing it forgets is the burst a
// bucket had before a limit was raised, for a bucket idle for IdleAfter.
//
// A tenant holds at most MaxAppsPerTenant app buckets (1024 by default,
// about 150 KiB with long app ids). When an app that has none arrives at a tenant at the
// cap, the tenant's full app buckets are dropped to make room (a scan at
// most once a second per tenant); if none is full, the newcomer is limited
// by the tenant's one overflow bucket, shared by every app beyond the cap
// and limited like a single app. So a tenant cycling through distinct app
// ids costs a bounded amount of memory, the flood is held to one app's
// rate on top of the tenant limit, and the apps the tenant already runs
// keep their own buckets. [Counts].Overflowed shows it happening.
//
// Per tenant a node keeps one entry (a few hundred bytes, dropped when
// idle) and, once dropped, its counts (tens of bytes). Tenant ids come from
// verified credentials, so that is bounded by the registry; [Limiter.Forget]
// drops a deleted tenant.
//
// # Concurrency
//
// Tenants are spread over 64 shards; a request finds its tenant's entry in
// an immutable per-shard map without taking a lock (a new or evicted tenant
// replaces its shard's map, copy on write), then holds the entry's mutex
// for the two bucket decisions, a few dozen nanoseconds. Requests of
// different tenants share no lock; requests of one tenant are serialised,
// as every exact limit on one quantity must be. The hot path allocates
// nothing once a tenant's and an app's buckets exist, and calls the clock
// once: on some VMs time.Now is the larger part of its cost.
//
// # Metrics
//
// [Limiter.Stats] returns per-tenant [Counts] of admitted and refused
// requests, monotonic for the life of the node, for the metrics endpoint
// to export.
package tenantsrate
