-- Access policies per tenant (see auth/authpolicy).
--
-- access_policies holds Dapr Configuration documents (their
-- spec.accessControl decides who may invoke an app), kept as applied. Each
-- applies either to the callee apps listed in access_policy_apps or, with
-- tenant_default, to every app of the tenant that has none of its own. The
-- keys carry the rules: an app has at most one configuration (the primary
-- key of access_policy_apps) and a tenant at most one default (the partial
-- unique index). App ids are not foreign keys: like component scopes, a
-- policy may name an app before it is registered.
--
-- tenant_policy_settings holds the tenant's deny-by-default switch; a
-- tenant without a row has it off. It is a table of its own rather than a
-- column of tenants so that the request path reads it under the same
-- row-level security as the policies.

CREATE TABLE access_policies (
    tenant_id       text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name            text NOT NULL,
    tenant_default  boolean NOT NULL,
    spec            jsonb NOT NULL,
    revision        bigint NOT NULL DEFAULT 1,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, name)
);
CREATE UNIQUE INDEX access_policies_one_default ON access_policies (tenant_id) WHERE tenant_default;

CREATE TABLE access_policy_apps (
    tenant_id   text NOT NULL,
    app_id      text NOT NULL,
    policy      text NOT NULL,
    PRIMARY KEY (tenant_id, app_id),
    FOREIGN KEY (tenant_id, policy) REFERENCES access_policies (tenant_id, name) ON DELETE CASCADE
);
CREATE INDEX access_policy_apps_policy ON access_policy_apps (tenant_id, policy);

CREATE TABLE tenant_policy_settings (
    tenant_id        text PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    deny_by_default  boolean NOT NULL DEFAULT false,
    updated_at       timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE access_policies ENABLE ROW LEVEL SECURITY;
ALTER TABLE access_policies FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON access_policies
    USING (tenant_id = current_setting('blockgate.tenant', true)
           OR current_setting('blockgate.scope', true) = 'platform');

ALTER TABLE access_policy_apps ENABLE ROW LEVEL SECURITY;
ALTER TABLE access_policy_apps FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON access_policy_apps
    USING (tenant_id = current_setting('blockgate.tenant', true)
           OR current_setting('blockgate.scope', true) = 'platform');

ALTER TABLE tenant_policy_settings ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenant_policy_settings FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenant_policy_settings
    USING (tenant_id = current_setting('blockgate.tenant', true)
           OR current_setting('blockgate.scope', true) = 'platform');

---- create above / drop below ----

DROP TABLE tenant_policy_settings;
DROP TABLE access_policy_apps;
DROP TABLE access_policies;
