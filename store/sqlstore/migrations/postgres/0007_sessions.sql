-- pixie schema version 7, PostgreSQL: server-side login sessions, keyed by
-- a digest of the session ID the cookie carries.

CREATE TABLE {p}sessions (
    id         TEXT    NOT NULL PRIMARY KEY,
    subject    TEXT    NOT NULL,
    auth_time  BIGINT  NOT NULL,
    amr        TEXT    NOT NULL DEFAULT '[]',
    acr        TEXT    NOT NULL DEFAULT '',
    created_at BIGINT  NOT NULL,
    expires_at BIGINT  NOT NULL,
    last_used  BIGINT  NOT NULL,
    revoked    BOOLEAN NOT NULL DEFAULT FALSE
);

CREATE INDEX {p}sessions_subject_idx ON {p}sessions (subject);

CREATE INDEX {p}sessions_expires_idx ON {p}sessions (expires_at);
