package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// statements are the prepared statements of a Store, one per query. They
// are prepared once by New; database/sql prepares each again, lazily, on
// every pooled connection it runs on, and [sql.Tx.StmtContext] reuses the
// connection's preparation inside a transaction.
type statements struct {
	clientGet *sql.Stmt
	clientAdd *sql.Stmt
	clientPut *sql.Stmt

	userAuth *sql.Stmt
	userGet  *sql.Stmt
	userAdd  *sql.Stmt
	userPass *sql.Stmt

	grantCreate        *sql.Stmt
	grantCreateCode    *sql.Stmt // qGrantCreateCode on PostgreSQL, else qGrantCreate
	grantGet           *sql.Stmt
	grantExists        *sql.Stmt
	grantConsume       *sql.Stmt
	grantDelete        *sql.Stmt
	grantRevoke        *sql.Stmt
	grantDeleteExpired *sql.Stmt

	keysAll *sql.Stmt
	keyAdd  *sql.Stmt

	consentGet           *sql.Stmt
	consentSave          *sql.Stmt
	consentDeleteExpired *sql.Stmt

	hitAdd           *sql.Stmt
	hitGet           *sql.Stmt
	hitReset         *sql.Stmt
	hitDeleteExpired *sql.Stmt

	sessionCreate        *sql.Stmt
	sessionGet           *sql.Stmt
	sessionExists        *sql.Stmt
	sessionTouch         *sql.Stmt
	sessionRevoke        *sql.Stmt
	sessionRevokeSubject *sql.Stmt
	sessionDeleteExpired *sql.Stmt

	// prefix is the table prefix, for the statements built per call
	// (batch.go).
	prefix string
}

// The queries, written with ? placeholders and {p} for the table prefix.
// Inserts use ON CONFLICT DO NOTHING and a rows-affected check instead of
// catching a unique violation: no driver-specific error decoding, and on
// PostgreSQL a duplicate does not abort the surrounding transaction.
const (
	qClientGet = `SELECT name, secret_hash, redirect_uris, scopes, grant_types, native, first_party, introspect, id_token_alg, apis, post_logout_redirect_uris, require_dpop, require_par
FROM {p}clients WHERE id = ?`
	qClientAdd = `INSERT INTO {p}clients
(id, name, secret_hash, redirect_uris, scopes, grant_types, native, first_party, introspect, id_token_alg, apis, post_logout_redirect_uris, require_dpop, require_par)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`
	qClientPut = `INSERT INTO {p}clients
(id, name, secret_hash, redirect_uris, scopes, grant_types, native, first_party, introspect, id_token_alg, apis, post_logout_redirect_uris, require_dpop, require_par)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET
name = excluded.name, secret_hash = excluded.secret_hash, redirect_uris = excluded.redirect_uris,
scopes = excluded.scopes, grant_types = excluded.grant_types, native = excluded.native,
first_party = excluded.first_party, introspect = excluded.introspect, id_token_alg = excluded.id_token_alg,
apis = excluded.apis, post_logout_redirect_uris = excluded.post_logout_redirect_uris,
require_dpop = excluded.require_dpop, require_par = excluded.require_par`

	qUserAuth = `SELECT subject, password_hash FROM {p}users WHERE username = ?`
	qUserGet  = `SELECT preferred_username, name, given_name, family_name, email, email_verified, picture, locale,
address_formatted, address_street, address_locality, address_region, address_postal_code, address_country,
phone_number, phone_number_verified
FROM {p}users WHERE subject = ?`
	qUserAdd = `INSERT INTO {p}users
(subject, username, password_hash, preferred_username, name, given_name, family_name, email, email_verified, picture, locale,
address_formatted, address_street, address_locality, address_region, address_postal_code, address_country,
phone_number, phone_number_verified)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`
	qUserPass = `UPDATE {p}users SET password_hash = ? WHERE username = ?`

	qGrantCreate = `INSERT INTO {p}grants
(kind, signature, request_id, client_id, subject, expires_at, active, data)
VALUES (?, ?, ?, ?, ?, ?, TRUE, ?) ON CONFLICT DO NOTHING`
	// qGrantCreateCode is qGrantCreate for an authorization code outside a
	// transaction on PostgreSQL: its commit does not wait for the WAL to
	// reach the disk (synchronous_commit off for this statement's own
	// transaction only). A code lives for minutes and is redeemed at most
	// once: one lost in a database crash costs the user a new login, never
	// a token, and the commit of its exchange, which waits, makes it
	// durable with the tokens. It saves a flush on every login.
	qGrantCreateCode = `WITH a AS (SELECT set_config('synchronous_commit', 'off', true))
INSERT INTO {p}grants (kind, signature, request_id, client_id, subject, expires_at, active, data)
SELECT ?, ?, ?, ?, ?, ?::bigint, TRUE, ?::bytea FROM a ON CONFLICT DO NOTHING`
	qGrantGet = `SELECT request_id, client_id, subject, expires_at, active, data
FROM {p}grants WHERE kind = ? AND signature = ?`
	qGrantExists       = `SELECT 1 FROM {p}grants WHERE kind = ? AND signature = ?`
	qGrantConsume      = `UPDATE {p}grants SET active = FALSE WHERE kind = ? AND signature = ? AND active`
	qGrantDelete       = `DELETE FROM {p}grants WHERE kind = ? AND signature = ?`
	qGrantRevoke       = `UPDATE {p}grants SET active = FALSE WHERE kind = ? AND request_id = ? AND active`
	qGrantDeleteExpire = `DELETE FROM {p}grants WHERE expires_at < ?`

	qKeysAll = `SELECT id, algorithm, private_enc, created_at FROM {p}keys ORDER BY created_at, id`
	qKeyAdd  = `INSERT INTO {p}keys (id, algorithm, private_enc, created_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING`

	qConsentGet  = `SELECT scopes, expires_at FROM {p}consents WHERE subject = ? AND client_id = ? AND audience = ?`
	qConsentSave = `INSERT INTO {p}consents (subject, client_id, audience, scopes, expires_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (subject, client_id, audience) DO UPDATE SET
scopes = excluded.scopes, expires_at = excluded.expires_at, updated_at = excluded.updated_at`
	qConsentDeleteExpired = `DELETE FROM {p}consents WHERE expires_at < ?`

	// qHitAdd counts an event in one atomic upsert. Its arguments: the key;
	// the time of the event and that time plus the window, which open a new
	// window (count 1) if the key has no row; and three times the time of the
	// event, to open a new window too if the row's has ended by then
	// (expires_at <= now). In SET, every column reference is to the row as it
	// was, on both dialects.
	qHitAdd = `INSERT INTO {p}throttle (key, count, last_at, expires_at) VALUES (?, 1, ?, ?)
ON CONFLICT (key) DO UPDATE SET
count = CASE WHEN {p}throttle.expires_at <= ? THEN 1 ELSE {p}throttle.count + 1 END,
last_at = CASE WHEN {p}throttle.expires_at <= ? OR excluded.last_at > {p}throttle.last_at THEN excluded.last_at ELSE {p}throttle.last_at END,
expires_at = CASE WHEN {p}throttle.expires_at <= ? THEN excluded.expires_at ELSE {p}throttle.expires_at END
RETURNING count, last_at, expires_at`
	// qHitGet's second argument is the time: a window ending after it is open.
	qHitGet           = `SELECT count, last_at, expires_at FROM {p}throttle WHERE key = ? AND expires_at > ?`
	qHitReset         = `DELETE FROM {p}throttle WHERE key = ?`
	qHitDeleteExpired = `DELETE FROM {p}throttle WHERE expires_at <= ?`

	qSessionCreate = `INSERT INTO {p}sessions
(id, subject, auth_time, amr, acr, created_at, expires_at, last_used, revoked)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`
	qSessionGet = `SELECT subject, auth_time, amr, acr, created_at, expires_at, last_used, revoked
FROM {p}sessions WHERE id = ?`
	qSessionExists = `SELECT 1 FROM {p}sessions WHERE id = ?`
	// qSessionTouch moves last_used forward only: its arguments are the
	// time, the ID and the time again.
	qSessionTouch         = `UPDATE {p}sessions SET last_used = ? WHERE id = ? AND last_used < ?`
	qSessionRevoke        = `UPDATE {p}sessions SET revoked = TRUE WHERE id = ? AND NOT revoked`
	qSessionRevokeSubject = `UPDATE {p}sessions SET revoked = TRUE WHERE subject = ? AND NOT revoked`
	qSessionDeleteExpired = `DELETE FROM {p}sessions WHERE expires_at < ?`
)

// prepare prepares every statement on db. On error it closes those it
// prepared.
func (st *statements) prepare(ctx context.Context, db *sql.DB, d Dialect, prefix string) error {
	st.prefix = prefix
	for _, p := range st.list() {
		stmt, err := db.PrepareContext(ctx, expand(d, prefix, p.query))
		if err != nil {
			return errors.Join(fmt.Errorf("sqlstore: prepare statement: %w", err), st.close())
		}
		*p.stmt = stmt
	}
	st.grantCreateCode = st.grantCreate
	if d == Postgres {
		stmt, err := db.PrepareContext(ctx, expand(d, prefix, qGrantCreateCode))
		if err != nil {
			return errors.Join(fmt.Errorf("sqlstore: prepare statement: %w", err), st.close())
		}
		st.grantCreateCode = stmt
	}
	return nil
}

// close closes every prepared statement.
func (st *statements) close() error {
	var errs []error
	if st.grantCreateCode != nil && st.grantCreateCode != st.grantCreate {
		if err := st.grantCreateCode.Close(); err != nil {
			errs = append(errs, fmt.Errorf("sqlstore: close statement: %w", err))
		}
	}
	for _, p := range st.list() {
		if *p.stmt != nil {
			if err := (*p.stmt).Close(); err != nil {
				errs = append(errs, fmt.Errorf("sqlstore: close statement: %w", err))
			}
		}
	}
	return errors.Join(errs...)
}

// list pairs each statement field with its query.
func (st *statements) list() []struct {
	stmt  **sql.Stmt
	query string
} {
	return []struct {
		stmt  **sql.Stmt
		query string
	}{
		{&st.clientGet, qClientGet},
		{&st.clientAdd, qClientAdd},
		{&st.clientPut, qClientPut},
		{&st.userAuth, qUserAuth},
		{&st.userGet, qUserGet},
		{&st.userAdd, qUserAdd},
		{&st.userPass, qUserPass},
		{&st.grantCreate, qGrantCreate},
		{&st.grantGet, qGrantGet},
		{&st.grantExists, qGrantExists},
		{&st.grantConsume, qGrantConsume},
		{&st.grantDelete, qGrantDelete},
		{&st.grantRevoke, qGrantRevoke},
		{&st.grantDeleteExpired, qGrantDeleteExpire},
		{&st.keysAll, qKeysAll},
		{&st.keyAdd, qKeyAdd},
		{&st.consentGet, qConsentGet},
		{&st.consentSave, qConsentSave},
		{&st.consentDeleteExpired, qConsentDeleteExpired},
		{&st.hitAdd, qHitAdd},
		{&st.hitGet, qHitGet},
		{&st.hitReset, qHitReset},
		{&st.hitDeleteExpired, qHitDeleteExpired},
		{&st.sessionCreate, qSessionCreate},
		{&st.sessionGet, qSessionGet},
		{&st.sessionExists, qSessionExists},
		{&st.sessionTouch, qSessionTouch},
		{&st.sessionRevoke, qSessionRevoke},
		{&st.sessionRevokeSubject, qSessionRevokeSubject},
		{&st.sessionDeleteExpired, qSessionDeleteExpired},
	}
}
