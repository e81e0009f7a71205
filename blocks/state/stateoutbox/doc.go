// Package stateoutbox is the relay of the state block's transactional
// outbox: the loop that moves messages a state transaction committed to the
// pub/sub broker.
//
// A store that implements state.OutboxTransactor keeps the messages of a
// transaction in a Queue of its own, written atomically with the state
// (statepg: a row of the outbox table in the same database transaction;
// statemem: an in-memory queue appended under the store's lock), so a
// message exists if and only if its transaction committed. Run drains such
// a Queue:
//
//   - it claims a batch of due messages (Queue.Claim), which no other relay
//     can claim until the claim ends (statepg: FOR UPDATE SKIP LOCKED, so
//     every gateway node may relay at once without double work);
//   - it publishes them in one pipelined batch (pubsub.Broker.PublishBatch),
//     which the broker stores in claim order; a message whose expiry has
//     passed is dropped instead;
//   - it settles the claim: published messages are removed, failed ones are
//     kept and retried after RetryDelay, which grows with their attempts.
//
// Delivery is at least once: a relay that stops between publishing and
// settling leaves the messages to be published again. The broker drops the
// copy, because a message keeps its id (the CloudEvent id, JetStream's
// Nats-Msg-Id) for as long as it waits in the outbox; a copy published
// after the broker's duplicate window is delivered twice.
//
// Run wakes when the Queue signals new messages (statepg: LISTEN/NOTIFY) and
// polls every Config.Poll as a safety net. It never stops on a failure: a
// failing Queue or broker is retried with backoff, failures are logged at
// most once a minute, and a panic in a round is recovered and logged.
package stateoutbox
