-- pixie schema version 10, SQLite: every lookup of a grant's records by
-- request is of its active records, which grants_active_request_idx
-- (version 9) serves; the full index on (kind, request_id) only cost a
-- write on every insert.

DROP INDEX {p}grants_request_idx;
