-- Run once by the postgres image when its volume is new. blockgate gets a
-- role that owns its database and is neither a superuser nor BYPASSRLS, so
-- that row-level security applies to it. The password is a demo value: it
-- is also in BLOCKGATE_POSTGRES_URL in docker-compose.yml; change both.
CREATE ROLE blockgate LOGIN PASSWORD 'blockgate' NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS;
CREATE DATABASE blockgate OWNER blockgate;
