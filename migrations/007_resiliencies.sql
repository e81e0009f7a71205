-- Dapr Resiliency resources per tenant (timeouts, retries and circuit
-- breakers for calls to apps), kept as the document that was applied.

CREATE TABLE resiliencies (
    tenant_id   text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name        text NOT NULL,
    spec        jsonb NOT NULL,
    revision    bigint NOT NULL DEFAULT 1,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, name)
);

ALTER TABLE resiliencies ENABLE ROW LEVEL SECURITY;
ALTER TABLE resiliencies FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON resiliencies
    USING (tenant_id = current_setting('blockgate.tenant', true)
           OR current_setting('blockgate.scope', true) = 'platform');

---- create above / drop below ----

DROP TABLE resiliencies;
