-- A tenant's quotas beyond pub/sub storage: request rates, sizes and
-- counts, as a JSON object of tenants.Limits fields. A missing or zero
-- field means the gateway's default (its flags).

ALTER TABLE tenants ADD COLUMN quotas jsonb NOT NULL DEFAULT '{}'::jsonb
    CHECK (jsonb_typeof(quotas) = 'object');

---- create above / drop below ----

ALTER TABLE tenants DROP COLUMN quotas;
