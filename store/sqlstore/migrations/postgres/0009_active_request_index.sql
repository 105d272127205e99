-- pixie schema version 9, PostgreSQL: revoking by request (a refresh rotation
-- revokes the grant's access tokens, a replay its whole family) looks up the
-- grant's active records only. The index on (kind, request_id) alone made it
-- visit every record the grant ever had: one per rotation, kept inactive
-- until it expires to detect replays.

CREATE INDEX {p}grants_active_request_idx ON {p}grants (kind, request_id) WHERE active;
