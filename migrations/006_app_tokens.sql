-- The token the gateway sends to an app's endpoint (as dapr-api-token, like
-- daprd's APP_API_TOKEN), so that the app can tell the gateway's calls from
-- anyone else's. Empty means none.

ALTER TABLE apps ADD COLUMN app_token text NOT NULL DEFAULT '';

---- create above / drop below ----

ALTER TABLE apps DROP COLUMN app_token;
