-- pixie schema version 2, PostgreSQL: the APIs a client may ask tokens for.

ALTER TABLE {p}clients ADD COLUMN apis TEXT NOT NULL DEFAULT '[]';
