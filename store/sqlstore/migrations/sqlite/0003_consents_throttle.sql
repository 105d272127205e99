-- pixie schema version 3, SQLite: consents and login-failure counts.

CREATE TABLE {p}consents (
    subject    TEXT    NOT NULL,
    client_id  TEXT    NOT NULL,
    scopes     TEXT    NOT NULL DEFAULT '[]',
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (subject, client_id)
) STRICT;

CREATE TABLE {p}throttle (
    key          TEXT    NOT NULL PRIMARY KEY,
    count        INTEGER NOT NULL,
    window_start INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL
) STRICT;

CREATE INDEX {p}throttle_expires_idx ON {p}throttle (expires_at);
