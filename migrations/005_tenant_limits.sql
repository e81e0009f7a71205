-- Per-tenant limits the platform admin sets. NULL means the gateway's
-- default (its flags).

ALTER TABLE tenants ADD COLUMN pubsub_max_bytes bigint CHECK (pubsub_max_bytes > 0);

---- create above / drop below ----

ALTER TABLE tenants DROP COLUMN pubsub_max_bytes;
