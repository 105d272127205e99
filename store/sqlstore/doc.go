// Package sqlstore is pixie's SQL backend over [database/sql]: one [Store]
// implements [store.Clients], [store.Users], [store.Grants], [store.Keys],
// [store.Consents] and [store.Throttle], and the optional capabilities
// [store.ExpiredDeleter], [store.Transactor], [store.Batcher] and
// [store.Pinger], on SQLite or PostgreSQL.
//
// It imports no database driver. Most programs use one of the openers,
// which do, and return a Store that also owns (and closes) the database:
//
//   - [github.com/pixieauth/pixie/store/sqlstore/sqlite]: an SQLite file
//     through modernc.org/sqlite (pure Go, no cgo). The embedded default:
//     one process, nothing to install.
//   - [github.com/pixieauth/pixie/store/sqlstore/postgres]: PostgreSQL through
//     pgx. Several replicas behind a load balancer share it.
//
// A program that opens its *sql.DB itself calls [New] with the dialect:
//
//	db, err := sql.Open("pgx", dsn) // any driver; the caller owns db
//	...
//	s, err := sqlstore.New(ctx, db, sqlstore.Config{
//		Dialect:   sqlstore.Postgres,
//		KeySecret: keySecret, // ≥ 32 random bytes, the same on every replica
//	})
//	...
//	defer s.Close()
//
// # What is stored
//
// Grant records are keyed by the token's signature, never the token. User
// passwords are argon2id PHC strings made by [store.HashSecret]; client
// secrets are stored as the [store.Client.SecretHash] given. Signing keys
// are encrypted with AES-256-GCM under a key derived with HKDF-SHA256 from
// [Config.KeySecret]; the key ID and algorithm are authenticated with it, so
// a key decrypts only in its own row, and a wrong secret yields [ErrDecrypt],
// never garbage. [New] refuses to start without a KeySecret of at least 32
// bytes. Consents are the scopes a user allowed a client for an API (or
// for none) and when that consent expires; throttle counts (failed logins
// and client authentications) are kept under the keys the caller chooses (pixie
// passes digests, never a username or an address in clear).
//
// Times are stored as integer Unix microseconds (UTC by definition) on both
// dialects, and returned in UTC. Lists of strings (redirect URIs, scopes,
// grant types) are JSON arrays in TEXT columns.
//
// # Schema
//
// [New] applies the migrations embedded in the package, recording each in
// the pixie_migrations table. It is idempotent, and safe when several
// replicas start at once: on PostgreSQL the migrations run in one
// transaction that first takes pg_advisory_xact_lock, on SQLite in a BEGIN
// IMMEDIATE transaction; either way DDL is transactional, so a failed
// migration leaves nothing half-done. Version 1 is, on PostgreSQL (the
// SQLite schema is the same with INTEGER for BIGINT and BOOLEAN, BLOB for
// BYTEA, and STRICT tables):
//
//	CREATE TABLE clients (
//	    id            TEXT    NOT NULL PRIMARY KEY,
//	    name          TEXT    NOT NULL DEFAULT '',
//	    secret_hash   TEXT    NOT NULL DEFAULT '',  -- argon2id PHC, '' for public clients
//	    redirect_uris TEXT    NOT NULL DEFAULT '[]', -- JSON array
//	    scopes        TEXT    NOT NULL DEFAULT '[]', -- JSON array
//	    grant_types   TEXT    NOT NULL DEFAULT '[]', -- JSON array
//	    native        BOOLEAN NOT NULL DEFAULT FALSE,
//	    first_party   BOOLEAN NOT NULL DEFAULT FALSE,
//	    introspect    BOOLEAN NOT NULL DEFAULT FALSE,
//	    id_token_alg  TEXT    NOT NULL DEFAULT ''
//	);
//	CREATE TABLE users (
//	    subject            TEXT    NOT NULL PRIMARY KEY,
//	    username           TEXT    NOT NULL UNIQUE,
//	    password_hash      TEXT    NOT NULL,             -- argon2id PHC (or bcrypt, imported)
//	    preferred_username TEXT    NOT NULL DEFAULT '',
//	    name               TEXT    NOT NULL DEFAULT '',
//	    given_name         TEXT    NOT NULL DEFAULT '',
//	    family_name        TEXT    NOT NULL DEFAULT '',
//	    email              TEXT    NOT NULL DEFAULT '',
//	    email_verified     BOOLEAN NOT NULL DEFAULT FALSE,
//	    picture            TEXT    NOT NULL DEFAULT '',
//	    locale             TEXT    NOT NULL DEFAULT ''
//	);
//	CREATE TABLE grants (
//	    kind       TEXT    NOT NULL,  -- store.Kind
//	    signature  TEXT    NOT NULL,
//	    request_id TEXT    NOT NULL,
//	    client_id  TEXT    NOT NULL,
//	    subject    TEXT    NOT NULL DEFAULT '',
//	    expires_at BIGINT  NOT NULL,  -- Unix microseconds
//	    active     BOOLEAN NOT NULL,
//	    data       BYTEA   NOT NULL,  -- opaque to the store
//	    PRIMARY KEY (kind, signature)
//	);
//	CREATE INDEX grants_request_idx ON grants (kind, request_id);
//	CREATE INDEX grants_expires_idx ON grants (expires_at);
//	CREATE TABLE keys (
//	    id          TEXT   NOT NULL PRIMARY KEY,
//	    algorithm   TEXT   NOT NULL,
//	    private_enc BYTEA  NOT NULL,  -- 0x01 || nonce || AES-256-GCM(PKCS #8)
//	    created_at  BIGINT NOT NULL   -- Unix microseconds
//	);
//
// Schema version 2 adds to clients the column apis TEXT NOT NULL DEFAULT '[]'
// (a JSON array: [store.Client.APIs]).
//
// Schema version 3 adds two tables. The table consents holds
// [store.Consents] (until version 5): one row per user and client, with
// the columns subject TEXT, client_id TEXT, scopes TEXT NOT NULL DEFAULT
// '[]' (a JSON array) and updated_at BIGINT (Unix microseconds of the
// latest save, for operators: pixie does not read it), and the primary key
// (subject, client_id). The table throttle holds [store.Throttle]'s
// counts: one row per key, with the columns key TEXT PRIMARY KEY, count BIGINT,
// window_start BIGINT and expires_at BIGINT (Unix microseconds), and the
// index throttle_expires_idx on expires_at. Both tables start empty.
//
// Schema version 4 adds to clients the column post_logout_redirect_uris TEXT
// NOT NULL DEFAULT '[]' (a JSON array: [store.Client.PostLogoutRedirectURIs]).
//
// Schema version 5 keys consents by audience too, and gives them an
// expiry: the table consents is rebuilt (as consents_v5, then renamed)
// with the columns subject TEXT, client_id TEXT, audience TEXT
// ([store.Consent.Audience]; empty for no API), scopes TEXT NOT NULL
// DEFAULT '[]', expires_at BIGINT and updated_at BIGINT (Unix
// microseconds), the primary key (subject, client_id, audience) and the
// index consents_expires_idx on expires_at. [Store.DeleteExpired] removes
// the rows whose expires_at is before its argument. Existing rows are kept
// as consents for the empty audience (they cannot have been for an API: a
// request without one cannot ask for an API's scopes), expiring 365 days
// after their updated_at.
//
// Schema version 6 renames throttle's column window_start to last_at: the
// time of the key's latest event ([store.Hits].Last), which the login
// backoff waits from. expires_at is the end of the key's window, set when
// the window opens and not moved by later events; [Store.DeleteExpired]
// removes the rows whose expires_at is at or before its argument, as it
// removes expired grants. Rows of version 3 carry over: the start of their
// window becomes their latest event.
// Schema version 7 adds the table sessions, which holds [store.Sessions]:
// one row per login session, with the columns id TEXT PRIMARY KEY (a digest
// of the session ID the cookie carries, never the ID), subject TEXT,
// auth_time, created_at, expires_at and last_used BIGINT (Unix
// microseconds), amr TEXT NOT NULL DEFAULT '[]' (a JSON array), acr TEXT
// NOT NULL (empty by default) and revoked BOOLEAN (INTEGER on SQLite), and
// the indexes sessions_subject_idx on subject (ending all of a user's
// sessions) and sessions_expires_idx on expires_at ([Store.DeleteExpired]
// removes the rows whose expires_at is before its argument). Touching a
// session is one UPDATE … SET last_used = ? WHERE id = ? AND last_used <
// ?, so last_used never moves back. It starts empty.
//
// Schema version 8 adds to users the columns of the address and phone
// claims, all NOT NULL with an empty default: address_formatted,
// address_street, address_locality, address_region, address_postal_code and
// address_country TEXT ([store.User.Address]), phone_number TEXT and
// phone_number_verified BOOLEAN DEFAULT FALSE ([store.User.PhoneNumber],
// [store.User.PhoneNumberVerified]).
//
// Schema version 9 adds the partial index grants_active_request_idx on
// grants (kind, request_id) WHERE active: revoking a grant's records by
// request then visits its active ones only, not every record it had.
//
// Schema version 10 drops the index grants_request_idx: every lookup by
// request is of the active records, which grants_active_request_idx serves,
// and the full index cost a write on every insert.
//
// Schema version 11 adds to clients the column require_par BOOLEAN NOT
// NULL DEFAULT FALSE ([store.Client.RequirePAR]). Pushed authorization
// requests need no table of their own: they are grants of the kind
// [store.KindPushedRequest].
//
// Schema version 12 adds to clients the column require_dpop (BOOLEAN on
// PostgreSQL, INTEGER on SQLite; NOT NULL, default false): the client's
// [store.Client.RequireDPoP]. DPoP proofs already used are grant records of
// kind dpop_proof, in the grants table.
//
// [Config.TablePrefix] puts a prefix in front of every one of these names,
// including pixie_migrations, so that pixie can share a database with an
// application that has tables of those names. On PostgreSQL a schema of its
// own (the search_path parameter of the DSN) does the same.
//
// Clients and users are registered with [Store.AddClient] and
// [Store.AddUser], or by inserting rows with SQL (hash passwords with
// [store.HashSecret]); the storage interfaces only read them.
//
// # Atomicity and round trips
//
// Consuming a code or rotating a refresh token is one compare-and-set
// statement, UPDATE … SET active = FALSE WHERE kind = ? AND signature = ?
// AND active, and a rows-affected check; deleting is one DELETE and a
// rows-affected check. Nothing is read and then written, so of N concurrent
// callers exactly one wins, whatever the connection, pool or replica they
// use. Inserts are INSERT … ON CONFLICT DO NOTHING with a rows-affected
// check, so a duplicate is [store.ErrAlreadyExists] without decoding
// driver-specific errors and, on PostgreSQL, without aborting the
// surrounding transaction. Counting a throttle event is one upsert, INSERT …
// ON CONFLICT (key) DO UPDATE SET count = CASE WHEN the window has ended
// THEN 1 ELSE count + 1 END, … RETURNING count, last_at, expires_at: the
// database decides and counts in one statement, under the row's lock
// (PostgreSQL) or the write lock (SQLite), so N concurrent events of one
// key count 1 to N on any number of replicas. Saving a consent is one upsert too.
// Every call is one round trip, except a Consume that loses, which asks a
// second time to tell [store.ErrConsumed] from [store.ErrNotFound], a
// TouchSession that changes nothing, which asks whether the session
// exists, and DeleteExpired, which deletes from four tables. ApplyGrants,
// the writes of a whole token exchange, is one round trip on PostgreSQL
// (one statement) and a local transaction on SQLite: see
// [Store.ApplyGrants].
//
// # Group commit (SQLite)
//
// On SQLite, the grant writes made outside a transaction of [Store.BeginTx]
// (CreateGrant, Consume, Delete, Revoke and ApplyGrants) are group
// committed: a caller that finds another one writing queues its write, and
// the caller writing next runs every queued write, each after the other in
// arrival order, in one transaction, and commits it once. SQLite has one
// writer at a time, and most of a commit's cost is the same for one write
// as for many. Each caller is answered only once the commit that holds its
// write has returned, so a write that returned is as durable, and as
// visible to reads, as before; the compare-and-set statements keep exactly
// one winner, since the writes of a group run one after the other. A
// caller's error is its own: a write that fails rolls back only itself (the
// others of its group are applied without it), except a failed BEGIN or
// COMMIT, which fails the writes it held. A write still queued when its
// caller's context ends is withdrawn, never run.
//
// Also on SQLite, a read by primary key made outside a transaction (a grant,
// session, user or client) checks its context before it runs, not while it
// runs: on the read pool, in WAL mode, it takes microseconds and waits for
// no writer, and watching the context would cost two goroutines per read
// (the driver's and database/sql's). It is the one exception to
// provider.Config.StoreTimeout bounding a call through its context.
//
// # Durability
//
// Every commit waits for the database's own durability setting, with one
// exception on PostgreSQL: an authorization code stored outside a
// transaction is committed with synchronous_commit off, for its statement
// only, which spares a disk flush on every login. A database crash in the
// instant after may lose such a code; its user logs in again. Nothing else
// is lost that way: a code lasts minutes and opens nothing by itself, and
// the commit of the exchange that redeems it (with the refresh token it
// issues) waits for the disk, making the code's record durable with it.
//
// Every statement is prepared once by [New]; database/sql prepares it again
// on each pooled connection the first time it runs there.
//
// # Connection pools
//
// Everything goes to the *sql.DB given to [New], unless [Config.ReadDB] is
// set: then the statements that only read (SELECT), made with a context that
// carries no transaction, go to that second pool, prepared there too. A
// transaction's reads stay in the transaction. Package sqlite uses this to
// give SQLite's single writing connection a pool of read-only connections
// that run alongside it (WAL mode); each read starts a fresh snapshot, so it
// sees every write that returned before it began. The compare-and-set
// statements are writes and stay on the writing pool.
//
// # Transactions
//
// [Store.BeginTx] returns a context carrying a database transaction; every
// method of the Store called with that context runs inside it, until
// [Store.Commit] or [Store.Rollback]. See [Store.BeginTx] for the rules.
//
// # Errors
//
// Errors are prefixed with "sqlstore: " and wrap the store sentinels where
// the contracts say so (a missing row is [store.ErrNotFound]). Any other
// error, a database that is down or a timeout, wraps the driver's error and
// no sentinel, so that pixie answers it with server_error and never with
// invalid_grant or invalid_client.
//
// A Store is safe for concurrent use. Every value it returns is a fresh
// copy the caller may modify.
package sqlstore
