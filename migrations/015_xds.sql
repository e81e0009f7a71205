-- Join tokens: the credential an app's Envoy sidecar presents to the xDS
-- server (as "authorization: Bearer <token>" on its ADS stream) before it
-- has a certificate of its own. A token names one app of one tenant; the
-- xDS server serves a node only the configuration of the app its token
-- names. Like admin tokens they are opaque random strings of which only the
-- SHA-256 is kept, so that reading the table (or a backup of it) gives no
-- usable token. A token dies with its app.

CREATE TABLE join_tokens (
    id          text PRIMARY KEY,
    tenant_id   text NOT NULL,
    app_id      text NOT NULL,
    token_hash  bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    issued_at   timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    revoked_at  timestamptz,
    CHECK (expires_at > issued_at),
    FOREIGN KEY (tenant_id, app_id) REFERENCES apps (tenant_id, app_id) ON DELETE CASCADE
);
CREATE INDEX join_tokens_tenant ON join_tokens (tenant_id, issued_at DESC);

ALTER TABLE join_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE join_tokens FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON join_tokens
    USING (tenant_id = current_setting('blockgate.tenant', true)
           OR current_setting('blockgate.scope', true) = 'platform');

---- create above / drop below ----

DROP TABLE join_tokens;
