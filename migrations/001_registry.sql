-- The tenant registry: tenants, their apps, components, app tokens and the
-- gateway's token signing keys.
--
-- Row-level security is the second wall around tenant data. Every request
-- path sets the transaction-local setting blockgate.tenant to the caller's
-- tenant; platform work (the admin API, token revocation lists, TTL sweeps)
-- sets blockgate.scope to 'platform'. FORCE makes the policies apply to the
-- table owner too, which is the role the gateway connects as.

CREATE TABLE tenants (
    id          text PRIMARY KEY,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE apps (
    tenant_id   text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    app_id      text NOT NULL,
    endpoint    text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, app_id)
);

CREATE TABLE components (
    tenant_id   text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name        text NOT NULL,
    type        text NOT NULL,
    version     text NOT NULL,
    -- The whole Dapr Component document as applied, for round-tripping.
    spec        jsonb NOT NULL,
    -- Bumped on every change so that nodes can tell a stale cached component.
    revision    bigint NOT NULL DEFAULT 1,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, name)
);

-- Tokens outlive their app on purpose: deleting an app or a tenant revokes
-- its tokens, and the revocation must stay known until they expire.
CREATE TABLE tokens (
    id          text PRIMARY KEY,
    tenant_id   text NOT NULL,
    app_id      text NOT NULL,
    issued_at   timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    revoked_at  timestamptz
);
CREATE INDEX tokens_revoked ON tokens (revoked_at) WHERE revoked_at IS NOT NULL;

CREATE TABLE signing_keys (
    kid          text PRIMARY KEY,
    algorithm    text NOT NULL,
    -- PKCS #8, DER.
    private_key  bytea NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    -- Set when a newer key takes over signing; the key still verifies the
    -- tokens it signed until they expire.
    retired_at   timestamptz
);

CREATE TABLE app_metadata (
    tenant_id   text NOT NULL,
    app_id      text NOT NULL,
    key         text NOT NULL,
    value       text NOT NULL,
    PRIMARY KEY (tenant_id, app_id, key),
    FOREIGN KEY (tenant_id, app_id) REFERENCES apps (tenant_id, app_id) ON DELETE CASCADE
);

ALTER TABLE tenants ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenants FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenants
    USING (id = current_setting('blockgate.tenant', true)
           OR current_setting('blockgate.scope', true) = 'platform');

ALTER TABLE apps ENABLE ROW LEVEL SECURITY;
ALTER TABLE apps FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON apps
    USING (tenant_id = current_setting('blockgate.tenant', true)
           OR current_setting('blockgate.scope', true) = 'platform');

ALTER TABLE components ENABLE ROW LEVEL SECURITY;
ALTER TABLE components FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON components
    USING (tenant_id = current_setting('blockgate.tenant', true)
           OR current_setting('blockgate.scope', true) = 'platform');

ALTER TABLE tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE tokens FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tokens
    USING (tenant_id = current_setting('blockgate.tenant', true)
           OR current_setting('blockgate.scope', true) = 'platform');

ALTER TABLE app_metadata ENABLE ROW LEVEL SECURITY;
ALTER TABLE app_metadata FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON app_metadata
    USING (tenant_id = current_setting('blockgate.tenant', true)
           OR current_setting('blockgate.scope', true) = 'platform');

-- Signing keys belong to the platform, never to a tenant.
ALTER TABLE signing_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE signing_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY platform_only ON signing_keys
    USING (current_setting('blockgate.scope', true) = 'platform');

---- create above / drop below ----

DROP TABLE app_metadata;
DROP TABLE signing_keys;
DROP TABLE tokens;
DROP TABLE components;
DROP TABLE apps;
DROP TABLE tenants;
