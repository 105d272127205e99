-- pixie schema version 11, PostgreSQL: clients that must push their
-- authorization requests (RFC 9126).

ALTER TABLE {p}clients ADD COLUMN require_par BOOLEAN NOT NULL DEFAULT FALSE;
