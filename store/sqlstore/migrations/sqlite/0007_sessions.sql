-- pixie schema version 7, SQLite: server-side login sessions, keyed by a
-- digest of the session ID the cookie carries.

CREATE TABLE {p}sessions (
    id         TEXT    NOT NULL PRIMARY KEY,
    subject    TEXT    NOT NULL,
    auth_time  INTEGER NOT NULL,
    amr        TEXT    NOT NULL DEFAULT '[]',
    acr        TEXT    NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    last_used  INTEGER NOT NULL,
    revoked    INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE INDEX {p}sessions_subject_idx ON {p}sessions (subject);

CREATE INDEX {p}sessions_expires_idx ON {p}sessions (expires_at);
