-- pixie schema version 12, SQLite: clients that must use DPoP (RFC 9449).

ALTER TABLE {p}clients ADD COLUMN require_dpop INTEGER NOT NULL DEFAULT 0;
