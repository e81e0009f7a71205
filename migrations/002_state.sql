-- State for every tenant's state.postgresql components, in one table.
--
-- Keys are compared in the C collation so that a prefix scan (an app's keys,
-- for the query API) can use the primary key index on any server.
-- value holds the bytes exactly as saved; is_json marks values that parse as
-- JSON, the only ones the query API looks into.

CREATE TABLE state (
    tenant_id   text NOT NULL,
    store       text NOT NULL,
    key         text COLLATE "C" NOT NULL,
    value       bytea NOT NULL,
    is_json     boolean NOT NULL,
    etag        text NOT NULL,
    expires_at  timestamptz,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, store, key)
);
CREATE INDEX state_expires_at ON state (expires_at) WHERE expires_at IS NOT NULL;

ALTER TABLE state ENABLE ROW LEVEL SECURITY;
ALTER TABLE state FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON state
    USING (tenant_id = current_setting('blockgate.tenant', true)
           OR current_setting('blockgate.scope', true) = 'platform');

---- create above / drop below ----

DROP TABLE state;
