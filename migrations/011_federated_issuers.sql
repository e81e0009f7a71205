-- External OIDC issuers a tenant trusts (federated identities, such as
-- Kubernetes service-account tokens), kept as the FederatedIssuer document
-- that was applied. issuer and audience are copied out of it for the rule
-- that gives every federated token at most one tenant: a token is matched
-- by its iss and aud, so no two federations, in any tenants, may share an
-- issuer and an audience. The constraint is checked across tenants whatever
-- the row-level security of the transaction.

CREATE TABLE federated_issuers (
    tenant_id   text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name        text NOT NULL,
    issuer      text NOT NULL,
    audience    text NOT NULL,
    spec        jsonb NOT NULL,
    revision    bigint NOT NULL DEFAULT 1,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, name),
    CONSTRAINT federated_issuers_issuer_audience_key UNIQUE (issuer, audience)
);

ALTER TABLE federated_issuers ENABLE ROW LEVEL SECURITY;
ALTER TABLE federated_issuers FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON federated_issuers
    USING (tenant_id = current_setting('blockgate.tenant', true)
           OR current_setting('blockgate.scope', true) = 'platform');

---- create above / drop below ----

DROP TABLE federated_issuers;
