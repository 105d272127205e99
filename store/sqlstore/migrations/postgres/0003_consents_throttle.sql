-- pixie schema version 3, PostgreSQL: consents and login-failure counts.

CREATE TABLE {p}consents (
    subject    TEXT   NOT NULL,
    client_id  TEXT   NOT NULL,
    scopes     TEXT   NOT NULL DEFAULT '[]',
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (subject, client_id)
);

CREATE TABLE {p}throttle (
    key          TEXT   NOT NULL PRIMARY KEY,
    count        BIGINT NOT NULL,
    window_start BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);

CREATE INDEX {p}throttle_expires_idx ON {p}throttle (expires_at);
