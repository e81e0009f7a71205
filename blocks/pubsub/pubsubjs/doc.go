// Package pubsubjs implements pubsub.Broker over NATS JetStream: the
// pubsub.jetstream component that every tenant's pub/sub components share,
// served by the JetStream the gateway nodes embed (or an external cluster).
//
// # One stream per tenant
//
// Each tenant has one stream, T_<tenant>, holding every message of every
// pub/sub component and topic of that tenant, on the subjects t.<tenant>.>.
// It is created on the tenant's first Publish or Consume (CreateOrUpdate, so
// every node may do it at once) and remembered; Broker.ApplyLimits rewrites
// it after the tenant's limits change. The stream keeps messages in files
// with limits retention:
//
//   - MaxAge (Config.MaxAge, default 24h) is how long a message is kept,
//     consumed or not; an unconsumed message older than that is gone.
//   - MaxBytes is the tenant's storage quota (Config.TenantMaxBytes, default
//     Config.DefaultMaxBytes, 1 GiB) with DiscardNew: when the stream is full
//     a publish fails with pubsub.ErrQuotaExceeded instead of evicting
//     messages that subscribers have not seen. Under limits retention
//     acknowledged messages count too until MaxAge removes them, so the quota
//     bounds the bytes a tenant published in the last MaxAge.
//   - Duplicates (Config.DuplicateWindow, default 2m) is the dedupe window.
//   - AllowMsgTTL, for per-message expiry (below).
//   - Replicas (Config.Replicas): the gateway gives min(3, cluster size),
//     so that a clustered stream survives losing a server (RAFT, R3).
//
// When the cluster grows, Broker.SetReplicas raises the replicas: each
// stream is updated (JetStream copies it to the new servers) on its next
// use on that node, so a tenant idle since then keeps its old replicas
// until it publishes or subscribes again. A stream is never scaled down by
// a node that would give it fewer replicas (one restarted with a smaller
// view of the cluster): creating or updating keeps the larger of the two.
//
// Tenants never share a stream, a subject or a consumer: a tenant's Message
// or Spec can only name subjects under its own t.<tenant>. prefix, and the
// tenant itself must be a valid tenants.ID (a DNS label), so it cannot carry
// '.' or a wildcard either.
//
// # Subjects
//
// A message is stored on
//
//	t.<tenant>.<pubsub>.<topic>.<part>
//
// where <pubsub> and <topic> are the component and Dapr topic names escaped
// into exactly one subject token each: bytes in [A-Za-z0-9-] stay as they
// are and every other byte becomes _XX, its value in upper-case hex ('_'
// itself is _5F, '.' is _2E, '>' is _3E, 'é' is _C3_A9); the empty name is
// the lone token "_", which no other name produces. This is a prefix code, so
// distinct names give distinct tokens, and a token never holds '.', '*', '>'
// or whitespace: no topic can reach a subject outside its tenant's prefix or
// match another topic's subject, whatever it contains. Component names are
// DNS labels and come out unchanged; topics like orders or order-created do
// too. An escaped topic may be at most 1,024 bytes long.
//
// <part> is "_" for a message without a partition key, and p<N> for a keyed
// one, where N is the FNV-1a hash of the key modulo Config.Partitions
// (default 8). Changing Partitions moves keys between partitions, which
// breaks per-key ordering for the messages in flight at that moment, and
// leaves the consumers of partitions beyond the new count idle: choose it
// once per deployment.
//
// # Publishing
//
// Publish is a JetStream publish that waits for the stream's PubAck.
// PublishBatch sends every message asynchronously on the one connection
// (so they are stored in order) and then waits for all acks, one error per
// message; entries no server answered within 2 s (a leader election, a
// dropped connection) are sent again one by one, as Publish retries, and
// only those may be stored out of order. Message fields travel as headers:
//
//	Nats-Msg-Id       <pubsub>.<topic>/<id>: dedupe scoped to the topic
//	Nats-TTL          seconds until Expires (at least 1)
//	Bg-Content-Type   ContentType
//	Bg-Partition-Key  PartitionKey
//	Bg-Expires        Expires, RFC 3339 with nanoseconds
//	Bg-Md-<key>       one per Metadata entry, <key> escaped as a token
//
// Header values that NATS would alter (control characters, surrounding
// blanks, invalid UTF-8) are sent as "b64:" and their base64, as is any value
// that itself starts with "b64:", so every value arrives byte for byte.
// Data is the message body, untouched.
//
// The same Message.ID published again on the same topic within the dedupe
// window is stored once; the second publish succeeds (PubAck.Duplicate).
//
// Publish rides out the loss of the stream's leader: while the other
// servers elect a new one (4 to 9 s), no server answers for the stream, and
// a message the dead leader took gets no PubAck. Publish sends the message
// again, every 100 ms and each attempt bounded by 2 s, until it is
// acknowledged or the request's time is up; the dedupe id has JetStream
// store it once. Creating a consumer rides out its leader's election the
// same way (election.go).
//
// # Consumers
//
// A Spec (tenant, pubsub, topic, group) owns 1 + Partitions durable pull
// consumers on its tenant's stream, named from a readable prefix and a hash
// of the Spec's names (valid characters only, under 100 bytes):
//
//   - "u" filters <topic>._ (the unkeyed messages), with a large
//     MaxAckPending: its messages are delivered in parallel;
//   - "p<N>" filters <topic>.p<N>, with MaxAckPending 1: across every process
//     and node, at most one message of a partition is unsettled at a time,
//     so keyed messages are handled in publish order, one after the other,
//     even when one is retried (it blocks the later messages of its partition
//     until it is settled or given up).
//
// Ordering relies on handlers settling within AckWait (or extending it with
// InProgress): a delivery whose AckWait passes is redelivered, possibly to
// another handler, while the first may still be working on it.
//
// Every consumer acknowledges explicitly, with AckWait = Spec.AckWait and
// MaxDeliver = Spec.MaxDeliver, and DeliverPolicy all: a new group receives
// every message the stream still retains (up to MaxAge old), like Dapr's own
// JetStream component, which delivers all by default. Consumers are created
// with CreateOrUpdateConsumer on every Consume, which is idempotent; Consume
// calls with the same Spec, in any process or node, bind to the same
// consumers and compete for their messages. Consumers are durable and
// outlive Consume; Broker.DeleteSubscription deletes them when a
// subscription is removed for good.
//
// Spec.Backoff is applied by the broker, not by JetStream's BackOff:
// JetStream replaces AckWait with BackOff[0] (1s by default), which would
// redeliver every message whose handler takes longer than a second. Instead
// Delivery.Retry(0) is a NAK with the delay Backoff[Attempt-1] (the last value
// repeats), and a delivery left unsettled is redelivered after AckWait.
//
// Consume runs one JetStream pull loop per consumer and hands each message to
// handle on its own goroutine, at most Spec.MaxInFlight unsettled at a time
// (a slot is also freed when a delivery's AckWait passes, since JetStream
// redelivers it then). Delivery maps to JetStream acks:
//
//	Attempt     NumDelivered of the message's metadata
//	Final       Attempt >= MaxDeliver
//	Ack         DoubleAck: returns once the server has the ack
//	Retry(d)    NakWithDelay(d, or the Spec's backoff for this attempt)
//	Drop        Term
//	InProgress  InProgress (resets AckWait)
//
// Consume returns when ctx is done (ctx's error) or when a consumer fails
// for good (deleted, connection closed); it waits for the handle calls it
// started to return. Messages it had pulled but not handed to handle are
// NAKed as it stops, so that another Consume gets them at once rather than
// after AckWait (this counts as a delivery attempt). A handler that panics
// has its delivery retried.
//
// # Expiry
//
// A message with Expires is published with a Nats-TTL header (whole seconds,
// rounded up, at least 1), so JetStream deletes it when it expires. Consumers
// also compare Bg-Expires with their own clock and Term an expired message
// without calling handle, which covers the TTL's rounding and a message
// delivered just before the server removed it.
//
// # Errors
//
// Errors wrap pubsub.ErrUnavailable when NATS cannot be reached or does not
// answer in time (connection closed, no responders, timeouts, JetStream
// temporarily unavailable), including while creating streams and consumers,
// and pubsub.ErrQuotaExceeded when the tenant's stream is full. Requests
// without a deadline in their ctx wait at most Config.Timeout (default 10s:
// long enough for a clustered JetStream to elect a stream's new leader after
// its server died, 4 to 9 s).
//
// JetStream reserves each stream's MaxBytes on the servers that hold it: a
// tenant's stream cannot be created once the quotas of all tenants would
// exceed the server's JetStream store. That is an operator's problem (add
// storage, raise the store limit or lower quotas); it is logged as an error
// and reported as pubsub.ErrUnavailable.
package pubsubjs
