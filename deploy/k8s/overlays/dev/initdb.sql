-- Runs once, when the data directory is created, as the owner chat_owner in
-- the database chat (docker-entrypoint-initdb.d). The schema and the service
-- roles come from the migration Job.

-- Timestamps are stored and compared in UTC whatever a session says.
ALTER DATABASE chat SET timezone TO 'UTC';

-- Only the owner creates objects in public (PostgreSQL 15's default, stated
-- so that the grants the migrations make are the only ones).
REVOKE CREATE ON SCHEMA public FROM PUBLIC;

-- Slow statements show up in the pod's log.
ALTER SYSTEM SET log_min_duration_statement = '500ms';
