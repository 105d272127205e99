// Package sqlite opens pixie's SQL store, package
// [github.com/pixieauth/pixie/store/sqlstore], on an SQLite database file
// through modernc.org/sqlite, a pure-Go SQLite: programs still build with
// CGO_ENABLED=0. It is pixie's embedded default: one process, nothing to
// install, clients, users, grants, signing keys, consents and throttle
// counts surviving restarts.
//
//	s, err := sqlite.Open(ctx, "pixie.db", sqlstore.Config{
//		KeySecret: keySecret, // ≥ 32 random bytes, kept out of the database
//	})
//	if err != nil {
//		return err
//	}
//	defer s.Close()
//
// The returned [Store] embeds *sqlstore.Store, so it implements every
// storage interface of package store, and closes the file on [Store.Close].
//
// The database runs in WAL mode with a 10-second busy timeout, foreign keys
// on, synchronous=NORMAL, checkpoints in the background (every 50 ms, by a
// connection of their own, so that writers never wait for one), a WAL file
// cut back to 16 MiB after checkpoints,
// and transactions that take the write lock when they begin (see [DSN]).
// The Store has two connection pools on the file. Writes and transactions
// use a single connection ([Store.DB]): SQLite has one writer at a time
// anyway, and database/sql then queues writers rather than SQLite failing
// them with SQLITE_BUSY. Concurrent grant writes share that connection's
// transactions: each commit holds the writes of every caller that queued
// during the one before (group commit, see package sqlstore). Reads made outside a transaction use a pool of
// read-only (query_only) connections, GOMAXPROCS of them but at least two
// ([Store.ReadDB], see [ReadDSN]): in WAL mode they do not wait for the
// writer, not even while a transaction is open, and each sees every write
// that returned before it began, from whichever goroutine. Durability is
// that of WAL with synchronous=NORMAL: a commit is in the WAL file when it
// returns, so killing the process loses none; a power cut may lose the last
// commits, never corrupt the file.
//
// The schema, created and migrated by Open, is that of package sqlstore,
// with SQLite types:
//
//	CREATE TABLE clients (
//	    id            TEXT    NOT NULL PRIMARY KEY,
//	    name          TEXT    NOT NULL DEFAULT '',
//	    secret_hash   TEXT    NOT NULL DEFAULT '',
//	    redirect_uris TEXT    NOT NULL DEFAULT '[]',
//	    scopes        TEXT    NOT NULL DEFAULT '[]',
//	    grant_types   TEXT    NOT NULL DEFAULT '[]',
//	    native        INTEGER NOT NULL DEFAULT 0,
//	    first_party   INTEGER NOT NULL DEFAULT 0,
//	    introspect    INTEGER NOT NULL DEFAULT 0,
//	    id_token_alg  TEXT    NOT NULL DEFAULT ''
//	) STRICT;
//	CREATE TABLE users (
//	    subject            TEXT    NOT NULL PRIMARY KEY,
//	    username           TEXT    NOT NULL UNIQUE,
//	    password_hash      TEXT    NOT NULL,
//	    preferred_username TEXT    NOT NULL DEFAULT '',
//	    name               TEXT    NOT NULL DEFAULT '',
//	    given_name         TEXT    NOT NULL DEFAULT '',
//	    family_name        TEXT    NOT NULL DEFAULT '',
//	    email              TEXT    NOT NULL DEFAULT '',
//	    email_verified     INTEGER NOT NULL DEFAULT 0,
//	    picture            TEXT    NOT NULL DEFAULT '',
//	    locale             TEXT    NOT NULL DEFAULT ''
//	) STRICT;
//	CREATE TABLE grants (
//	    kind       TEXT    NOT NULL,
//	    signature  TEXT    NOT NULL,
//	    request_id TEXT    NOT NULL,
//	    client_id  TEXT    NOT NULL,
//	    subject    TEXT    NOT NULL DEFAULT '',
//	    expires_at INTEGER NOT NULL,  -- Unix microseconds
//	    active     INTEGER NOT NULL,
//	    data       BLOB    NOT NULL,
//	    PRIMARY KEY (kind, signature)
//	) STRICT;
//	CREATE INDEX grants_request_idx ON grants (kind, request_id);
//	CREATE INDEX grants_expires_idx ON grants (expires_at);
//	CREATE TABLE keys (
//	    id          TEXT    NOT NULL PRIMARY KEY,
//	    algorithm   TEXT    NOT NULL,
//	    private_enc BLOB    NOT NULL,  -- encrypted with Config.KeySecret
//	    created_at  INTEGER NOT NULL   -- Unix microseconds
//	) STRICT;
//
// Schema version 2 adds to clients the column apis TEXT NOT NULL DEFAULT '[]'
// (a JSON array: [store.Client.APIs]).
//
// Schema version 3 adds two STRICT tables. consents has the columns
// subject TEXT, client_id TEXT, scopes TEXT NOT NULL DEFAULT '[]' (a JSON
// array) and updated_at INTEGER (Unix microseconds), and the primary key
// (subject, client_id). throttle has the columns key TEXT PRIMARY KEY,
// count INTEGER, window_start INTEGER and expires_at INTEGER (Unix
// microseconds), and the index throttle_expires_idx on expires_at. See
// package sqlstore for what they hold.
//
// Schema version 4 adds to clients the column post_logout_redirect_uris TEXT
// NOT NULL DEFAULT '[]' (a JSON array: store.Client.PostLogoutRedirectURIs).
//
// Schema version 5 rebuilds consents as a STRICT table with the columns
// subject TEXT, client_id TEXT, audience TEXT, scopes TEXT NOT NULL DEFAULT
// '[]', expires_at INTEGER and updated_at INTEGER (Unix microseconds), the
// primary key (subject, client_id, audience) and the index
// consents_expires_idx on expires_at (built as consents_v5, then renamed);
// existing rows become consents for the empty audience that expire 365
// days after their updated_at. See package sqlstore for what they hold.
//
// Schema version 6 renames throttle's column window_start to last_at (Unix
// microseconds of the key's latest event). See package sqlstore.
//
// Schema version 7 adds the STRICT table sessions, with the columns id TEXT
// PRIMARY KEY, subject TEXT, auth_time, created_at, expires_at and
// last_used INTEGER (Unix microseconds), amr TEXT NOT NULL DEFAULT '[]' (a
// JSON array), acr TEXT NOT NULL (empty by default) and revoked INTEGER
// (0 or 1), and the indexes sessions_subject_idx on subject and
// sessions_expires_idx on expires_at. See package sqlstore for what it
// holds.
//
// Schema version 8 adds to users the columns address_formatted,
// address_street, address_locality, address_region, address_postal_code,
// address_country and phone_number TEXT NOT NULL, default empty, and
// phone_number_verified INTEGER NOT NULL DEFAULT 0 (store.User.Address,
// PhoneNumber and PhoneNumberVerified).
//
// Schema version 9 adds the partial index grants_active_request_idx on
// grants (kind, request_id) WHERE active: revoking a grant's records by
// request then visits its active ones only, not every record it had.
//
// Schema version 10 drops the index grants_request_idx: every lookup by
// request is of the active records, which grants_active_request_idx serves,
// and the full index cost a write on every insert.
//
// Schema version 11 adds to clients the column require_par INTEGER NOT
// NULL DEFAULT 0 (0 or 1: store.Client.RequirePAR).
//
// Schema version 12 adds to clients the column require_dpop (BOOLEAN on
// PostgreSQL, INTEGER on SQLite; NOT NULL, default false): the client's
// [store.Client.RequireDPoP]. DPoP proofs already used are grant records of
// kind dpop_proof, in the grants table.
//
// Back the file up with the sqlite3 command's .backup or VACUUM INTO, not
// by copying it while the server runs (the WAL file holds recent writes).
package sqlite
