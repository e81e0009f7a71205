-- The gateway's certificate authority (auth/authca): one row per CA
-- generation, a root certificate and the intermediate it signed. Only the
-- intermediate's private key is kept, sealed with AES-256-GCM under a key
-- derived from the operator's master key (the generation id is the
-- additional data); the root's key is never stored.
--
-- At most one generation is active (retired_at IS NULL), enforced by a
-- partial unique index: nodes that race to create the first generation, or
-- to replace the same one, conflict there and all but one adopt the
-- winner's.

CREATE TABLE ca_generations (
    id                 text PRIMARY KEY,
    -- DER.
    root_cert          bytea NOT NULL,
    intermediate_cert  bytea NOT NULL,
    -- Version byte, nonce, AES-256-GCM ciphertext and tag of the PKCS #8 key.
    intermediate_key   bytea NOT NULL,
    -- Fingerprint of the master key that sealed intermediate_key, so that a
    -- node with another master key can say so.
    master_key_id      text NOT NULL,
    created_at         timestamptz NOT NULL,
    -- Set when a newer generation takes over signing; the root stays trusted
    -- until the certificates the generation signed have expired.
    retired_at         timestamptz
);
CREATE UNIQUE INDEX ca_generations_one_active ON ca_generations ((true)) WHERE retired_at IS NULL;

-- The CA belongs to the platform, never to a tenant.
ALTER TABLE ca_generations ENABLE ROW LEVEL SECURITY;
ALTER TABLE ca_generations FORCE ROW LEVEL SECURITY;
CREATE POLICY platform_only ON ca_generations
    USING (current_setting('blockgate.scope', true) = 'platform');

---- create above / drop below ----

DROP TABLE ca_generations;
