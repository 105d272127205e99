-- pixie schema version 6, PostgreSQL: throttle keys keep the time of their latest
-- event (for the login backoff) instead of the start of their window; a
-- window is kept as its end, expires_at, which no later event moves.

ALTER TABLE {p}throttle RENAME COLUMN window_start TO last_at;
