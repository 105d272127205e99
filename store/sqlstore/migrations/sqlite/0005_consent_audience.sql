-- pixie schema version 5, SQLite: a consent is per user, client and audience
-- (the API, or '' for none), and expires. Existing consents become consents
-- for no API, expiring a year after their latest save.

CREATE TABLE {p}consents_v5 (
    subject    TEXT    NOT NULL,
    client_id  TEXT    NOT NULL,
    audience   TEXT    NOT NULL,
    scopes     TEXT    NOT NULL DEFAULT '[]',
    expires_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (subject, client_id, audience)
) STRICT;

INSERT INTO {p}consents_v5 (subject, client_id, audience, scopes, expires_at, updated_at)
SELECT subject, client_id, '', scopes, updated_at + 31536000000000, updated_at FROM {p}consents;

DROP TABLE {p}consents;

ALTER TABLE {p}consents_v5 RENAME TO {p}consents;

CREATE INDEX {p}consents_expires_idx ON {p}consents (expires_at);
