-- pixie schema version 1, SQLite. {p} stands for Config.TablePrefix.
-- Times are Unix microseconds (UTC); lists are JSON arrays of strings;
-- booleans are 0 or 1.

CREATE TABLE {p}clients (
    id            TEXT    NOT NULL PRIMARY KEY,
    name          TEXT    NOT NULL DEFAULT '',
    secret_hash   TEXT    NOT NULL DEFAULT '',
    redirect_uris TEXT    NOT NULL DEFAULT '[]',
    scopes        TEXT    NOT NULL DEFAULT '[]',
    grant_types   TEXT    NOT NULL DEFAULT '[]',
    native        INTEGER NOT NULL DEFAULT 0,
    first_party   INTEGER NOT NULL DEFAULT 0,
    introspect    INTEGER NOT NULL DEFAULT 0,
    id_token_alg  TEXT    NOT NULL DEFAULT ''
) STRICT;

CREATE TABLE {p}users (
    subject            TEXT    NOT NULL PRIMARY KEY,
    username           TEXT    NOT NULL UNIQUE,
    password_hash      TEXT    NOT NULL,
    preferred_username TEXT    NOT NULL DEFAULT '',
    name               TEXT    NOT NULL DEFAULT '',
    given_name         TEXT    NOT NULL DEFAULT '',
    family_name        TEXT    NOT NULL DEFAULT '',
    email              TEXT    NOT NULL DEFAULT '',
    email_verified     INTEGER NOT NULL DEFAULT 0,
    picture            TEXT    NOT NULL DEFAULT '',
    locale             TEXT    NOT NULL DEFAULT ''
) STRICT;

CREATE TABLE {p}grants (
    kind       TEXT    NOT NULL,
    signature  TEXT    NOT NULL,
    request_id TEXT    NOT NULL,
    client_id  TEXT    NOT NULL,
    subject    TEXT    NOT NULL DEFAULT '',
    expires_at INTEGER NOT NULL,
    active     INTEGER NOT NULL,
    data       BLOB    NOT NULL,
    PRIMARY KEY (kind, signature)
) STRICT;

CREATE INDEX {p}grants_request_idx ON {p}grants (kind, request_id);

CREATE INDEX {p}grants_expires_idx ON {p}grants (expires_at);

CREATE TABLE {p}keys (
    id          TEXT    NOT NULL PRIMARY KEY,
    algorithm   TEXT    NOT NULL,
    private_enc BLOB    NOT NULL,
    created_at  INTEGER NOT NULL
) STRICT;
