-- pixie schema version 12, PostgreSQL: clients that must use DPoP (RFC 9449).

ALTER TABLE {p}clients ADD COLUMN require_dpop BOOLEAN NOT NULL DEFAULT FALSE;
