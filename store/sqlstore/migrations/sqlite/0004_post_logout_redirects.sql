-- pixie schema version 4, SQLite: where a client may send the browser after logout.

ALTER TABLE {p}clients ADD COLUMN post_logout_redirect_uris TEXT NOT NULL DEFAULT '[]';
