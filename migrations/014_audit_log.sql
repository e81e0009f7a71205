-- Admin roles and the audit log of the admin API (see admin/roles.go).
--
-- admin_tokens are the tenant admins' bearer tokens: opaque random strings
-- of which only the SHA-256 is kept, so that reading the table (or a
-- backup of it) gives no usable token. A token dies with its tenant.
--
-- audit_log records every admin request that changes something, refused
-- ones included: who (actor_role 'platform', 'tenant' or 'anonymous';
-- actor_id 'platform', an admin token id or ''), what (method, route
-- pattern, path, the tenant and the object it names), the status it was
-- answered with, when, and from which address. Never a token text or a
-- request body. tenant_id is the log the entry belongs to: the tenant
-- admin's own tenant for its requests (even a refused attempt on another
-- tenant, which target_tenant then names), otherwise the tenant the request
-- named, or NULL for platform-wide requests. Entries have no foreign key so
-- that they outlive what they describe.
--
-- The policies make the log append-only for the gateway's role: platform
-- transactions may insert and read everything, tenant-scoped transactions
-- read only their tenant's entries, and nobody may update or delete (there
-- is no policy for those, and FORCE applies them to the table's owner).
-- Pruning old entries is an operator's job, as a role with BYPASSRLS.

CREATE TABLE admin_tokens (
    id          text PRIMARY KEY,
    tenant_id   text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name        text NOT NULL DEFAULT '',
    token_hash  bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    issued_at   timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    revoked_at  timestamptz,
    CHECK (expires_at > issued_at)
);
CREATE INDEX admin_tokens_tenant ON admin_tokens (tenant_id, issued_at DESC);

ALTER TABLE admin_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE admin_tokens FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON admin_tokens
    USING (tenant_id = current_setting('blockgate.tenant', true)
           OR current_setting('blockgate.scope', true) = 'platform');

CREATE TABLE audit_log (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at             timestamptz NOT NULL DEFAULT now(),
    tenant_id      text,
    actor_role     text NOT NULL CHECK (actor_role IN ('platform', 'tenant', 'anonymous')),
    actor_id       text NOT NULL,
    actor_name     text NOT NULL DEFAULT '',
    method         text NOT NULL,
    route          text NOT NULL,
    path           text NOT NULL,
    target_tenant  text,
    target         text NOT NULL DEFAULT '',
    status         integer NOT NULL,
    client_addr    text NOT NULL DEFAULT ''
);
CREATE INDEX audit_log_at ON audit_log (at DESC, id DESC);
CREATE INDEX audit_log_tenant_at ON audit_log (tenant_id, at DESC, id DESC);

ALTER TABLE audit_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_log FORCE ROW LEVEL SECURITY;
CREATE POLICY audit_read ON audit_log FOR SELECT
    USING (tenant_id = current_setting('blockgate.tenant', true)
           OR current_setting('blockgate.scope', true) = 'platform');
CREATE POLICY audit_append ON audit_log FOR INSERT
    WITH CHECK (current_setting('blockgate.scope', true) = 'platform');

---- create above / drop below ----

DROP TABLE audit_log;
DROP TABLE admin_tokens;
