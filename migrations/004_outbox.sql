-- The transactional outbox of state.postgresql components: messages a state
-- transaction wrote in the same database transaction as its state, waiting
-- to be relayed to the pub/sub broker. A row exists only if its transaction
-- committed; the relay deletes it once the broker has stored the message.
--
-- id is the message id (the CloudEvent id), which the broker also uses to
-- drop duplicates (JetStream's Nats-Msg-Id), so a message relayed twice is
-- stored once. seq orders the rows of one transaction. A failed publish
-- bumps attempts and moves next_attempt_at into the future; the relay
-- claims due rows in (next_attempt_at, seq) order with FOR UPDATE SKIP
-- LOCKED, under the platform scope.

CREATE TABLE outbox (
    tenant_id        text NOT NULL,
    id               text NOT NULL,
    seq              bigint GENERATED ALWAYS AS IDENTITY,
    pubsub           text NOT NULL,
    topic            text NOT NULL,
    data             bytea NOT NULL,
    content_type     text NOT NULL,
    partition_key    text NOT NULL DEFAULT '',
    expires_at       timestamptz,
    metadata         jsonb,
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX outbox_due ON outbox (next_attempt_at, seq);

ALTER TABLE outbox ENABLE ROW LEVEL SECURITY;
ALTER TABLE outbox FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON outbox
    USING (tenant_id = current_setting('blockgate.tenant', true)
           OR current_setting('blockgate.scope', true) = 'platform');

---- create above / drop below ----

DROP TABLE outbox;
