-- Headers the gateway sends to an app with every call (a Dapr
-- HTTPEndpoint's spec.headers), and whether the app was registered from a
-- declarative resource, which `app apply` replaces as a whole.

ALTER TABLE apps
    ADD COLUMN headers jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(headers) = 'object'),
    ADD COLUMN declared boolean NOT NULL DEFAULT false;

---- create above / drop below ----

ALTER TABLE apps DROP COLUMN headers, DROP COLUMN declared;
