-- An app may run several instances, each with its own endpoint, and a
-- health check the gateway probes them with; unhealthy instances get no
-- calls. apps.endpoint stays the app's first instance.

CREATE TABLE app_instances (
    tenant_id   text NOT NULL,
    app_id      text NOT NULL,
    id          text NOT NULL,
    endpoint    text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, app_id, id),
    FOREIGN KEY (tenant_id, app_id) REFERENCES apps (tenant_id, app_id) ON DELETE CASCADE
);

ALTER TABLE app_instances ENABLE ROW LEVEL SECURITY;
ALTER TABLE app_instances FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON app_instances
    USING (tenant_id = current_setting('blockgate.tenant', true)
           OR current_setting('blockgate.scope', true) = 'platform');

ALTER TABLE apps
    ADD COLUMN health_path text NOT NULL DEFAULT '',
    ADD COLUMN health_interval_ms integer NOT NULL DEFAULT 5000 CHECK (health_interval_ms >= 100),
    ADD COLUMN health_threshold integer NOT NULL DEFAULT 3 CHECK (health_threshold >= 1);

---- create above / drop below ----

ALTER TABLE apps DROP COLUMN health_path, DROP COLUMN health_interval_ms, DROP COLUMN health_threshold;
DROP TABLE app_instances;
