-- pixie schema version 2, SQLite: the APIs a client may ask tokens for.

ALTER TABLE {p}clients ADD COLUMN apis TEXT NOT NULL DEFAULT '[]';
