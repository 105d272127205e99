-- pixie schema version 11, SQLite: clients that must push their
-- authorization requests (RFC 9126).

ALTER TABLE {p}clients ADD COLUMN require_par INTEGER NOT NULL DEFAULT 0;
