package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/pixieauth/pixie/store"
)

// The SQL store applies a token exchange's writes at once.
var _ store.Batcher = (*Store)(nil)

// ApplyGrants applies b, all or none. It implements [store.Batcher].
//
// On PostgreSQL it is one statement, so one round trip, made of
// data-modifying common table expressions: it locks the records of
// b.Consume (SELECT … FOR UPDATE, in key order, so that batches do not
// deadlock on each other), and only if all of them exist and are active it
// consumes them (UPDATE … WHERE … AND active, the compare-and-set of
// [Store.Consume]), revokes b.Revoke and inserts b.Create. Every part of a
// statement reads the database as it was when the statement began, so the
// revocation cannot touch the batch's own new records. A record of b.Create
// whose key exists makes the insert fail with a unique violation, which
// undoes the whole statement and is returned as [store.ErrAlreadyExists].
// When a record of b.Consume was missing or inactive, the statement wrote
// nothing and tells which: an error wrapping [store.ErrNotFound] if one was
// missing, otherwise [store.ErrConsumed]; telling them apart costs no
// second query. The statement's text depends only on how many entries each
// part of b has, so that the driver's statement cache (pgx's, by default)
// prepares it once per shape and connection.
//
// On SQLite it runs [Store.Consume], [Store.Revoke] and [Store.CreateGrant]
// in that order in a transaction (BEGIN IMMEDIATE with the DSN package
// sqlite uses), undone on the first error: the transaction of a group
// commit, which concurrent callers' writes share (see [Store.CreateGrant]).
//
// A batch is its own transaction: ApplyGrants with a context carrying a
// transaction of [Store.BeginTx] is an error, and writes nothing. So are
// invalid kinds, a nil record and two entries naming one record.
func (s *Store) ApplyGrants(ctx context.Context, b *store.GrantBatch) error {
	if b == nil {
		return errors.New("sqlstore: apply grants: nil batch")
	}
	if s.tx(ctx) != nil {
		return errors.New("sqlstore: apply grants: the context carries a transaction; a batch is its own")
	}
	if err := checkBatch(b); err != nil {
		return fmt.Errorf("sqlstore: apply grants: %w", err)
	}
	if len(b.Consume)+len(b.Revoke)+len(b.Create) == 0 {
		return nil
	}
	if s.dialect == Postgres {
		return s.applyPostgres(ctx, b)
	}
	return s.applyGrouped(ctx, b)
}

// applyGrouped applies b as one write of group commit (group.go): in the
// group's transaction, so all or none as if in one of its own.
func (s *Store) applyGrouped(ctx context.Context, b *store.GrantBatch) error {
	err := s.write(ctx, false, func(txCtx context.Context) (bool, error) { return s.applyIn(txCtx, b) })
	if err != nil {
		return fmt.Errorf("sqlstore: apply grants: %w", err)
	}
	return nil
}

// applyIn runs the statements of b in the transaction txCtx carries:
// Consume, Revoke and CreateGrant in that order, up to the first error.
// wrote says whether a statement before the failing one ran, whose change
// the transaction must then undo.
func (s *Store) applyIn(txCtx context.Context, b *store.GrantBatch) (wrote bool, err error) {
	for _, k := range b.Consume {
		if err := s.consume(txCtx, k.Kind, k.Signature); err != nil {
			return wrote, err
		}
		wrote = true
	}
	for _, f := range b.Revoke {
		if err := s.revoke(txCtx, f.Kind, f.RequestID); err != nil {
			return wrote, err
		}
		wrote = true
	}
	for _, g := range b.Create {
		if err := s.createGrant(txCtx, g); err != nil {
			return wrote, err
		}
		wrote = true
	}
	return wrote, nil
}

// applyPostgres applies b in one statement; see [Store.ApplyGrants].
func (s *Store) applyPostgres(ctx context.Context, b *store.GrantBatch) error {
	q, args := postgresBatch(s.stmts.prefix, b)
	var consumed, existing int64
	err := s.db.QueryRowContext(ctx, q, args...).Scan(&consumed, &existing)
	switch {
	case isUniqueViolation(err):
		return fmt.Errorf("sqlstore: apply grants: create: %w", store.ErrAlreadyExists)
	case err != nil:
		return fmt.Errorf("sqlstore: apply grants: %w", err)
	case consumed == int64(len(b.Consume)):
		return nil
	case existing < int64(len(b.Consume)):
		return fmt.Errorf("sqlstore: apply grants: consume: %w", store.ErrNotFound)
	}
	return fmt.Errorf("sqlstore: apply grants: consume: %w", store.ErrConsumed)
}

// postgresBatch returns the statement that applies b on PostgreSQL, and its
// arguments. Its one row holds how many records of b.Consume it consumed
// and how many of them it found. For a batch of one consume, one revoke and
// one create (without the table prefix):
//
//	WITH l AS MATERIALIZED (SELECT active FROM grants
//	    WHERE (kind = $1 AND signature = $2) ORDER BY kind, signature FOR UPDATE),
//	c AS (UPDATE grants SET active = FALSE WHERE active AND ((kind = $1 AND signature = $2))
//	    AND (SELECT count(*) FROM l WHERE active) = 1 RETURNING kind, signature),
//	r AS (UPDATE grants SET active = FALSE WHERE active AND ((kind = $3 AND request_id = $4))
//	    AND (kind, signature) NOT IN (SELECT kind, signature FROM c)
//	    AND (SELECT count(*) FROM c) = 1),
//	i AS (INSERT INTO grants (kind, signature, request_id, client_id, subject, expires_at, active, data)
//	    SELECT v.kind, v.signature, v.request_id, v.client_id, v.subject, v.expires_at, TRUE, v.data
//	    FROM (VALUES ($5, $6, $7, $8, $9, $10::bigint, $11::bytea))
//	    AS v (kind, signature, request_id, client_id, subject, expires_at, data)
//	    WHERE (SELECT count(*) FROM c) = 1)
//	SELECT (SELECT count(*) FROM c), (SELECT count(*) FROM l)
//
// l reads the records to consume as they are once locked, not as the
// statement's snapshot has them, so a batch that loses a race to another
// consumes none of its records, not only those it did not lose. The
// revocation leaves out the records the batch consumes, which it marks
// inactive already: PostgreSQL does not apply two changes of one row by one
// statement.
func postgresBatch(prefix string, b *store.GrantBatch) (string, []any) {
	var q strings.Builder
	args := make([]any, 0, 2*len(b.Consume)+2*len(b.Revoke)+7*len(b.Create))
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	table := prefix + "grants"
	n := strconv.Itoa(len(b.Consume))
	var ctes []string
	if len(b.Consume) > 0 {
		ctes = append(ctes, consumeCTEs(table, n, b.Consume, arg)...)
	}
	// allConsumed guards the revocation and the insert.
	allConsumed := ""
	if len(b.Consume) > 0 {
		allConsumed = " AND (SELECT count(*) FROM c) = " + n
	}
	if len(b.Revoke) > 0 {
		ctes = append(ctes, revokeCTE(table, b.Revoke, len(b.Consume) > 0, allConsumed, arg))
	}
	if len(b.Create) > 0 {
		where := ""
		if len(b.Consume) > 0 {
			where = " WHERE (SELECT count(*) FROM c) = " + n
		}
		ctes = append(ctes, insertCTE(table, b.Create, where, arg))
	}
	q.WriteString("WITH ")
	q.WriteString(strings.Join(ctes, ",\n"))
	if len(b.Consume) > 0 {
		q.WriteString("\nSELECT (SELECT count(*) FROM c), (SELECT count(*) FROM l)")
	} else {
		q.WriteString("\nSELECT 0, 0")
	}
	return q.String(), args
}

// consumeCTEs returns l and c of [postgresBatch], which lock the n records
// of consume and consume them only if all are active, so that a batch
// consumes all of its records or none. arg adds an argument and returns
// its placeholder.
func consumeCTEs(table, n string, consume []store.GrantKey, arg func(any) string) []string {
	var ors []string
	for _, k := range consume {
		ors = append(ors, "(kind = "+arg(string(k.Kind))+" AND signature = "+arg(k.Signature)+")")
	}
	keys := strings.Join(ors, " OR ") // the predicate naming the records to consume
	return []string{
		"l AS MATERIALIZED (SELECT active FROM " + table + " WHERE " + keys + " ORDER BY kind, signature FOR UPDATE)",
		"c AS (UPDATE " + table + " SET active = FALSE WHERE active AND (" + keys + ")" +
			" AND (SELECT count(*) FROM l WHERE active) = " + n + " RETURNING kind, signature)",
	}
}

// revokeCTE returns r of [postgresBatch], which marks the records of
// revoke inactive only if guard holds (that every record to consume was),
// leaving out those c consumes when consuming. arg adds an argument and
// returns its placeholder.
func revokeCTE(table string, revoke []store.GrantFamily, consuming bool, guard string, arg func(any) string) string {
	var ors []string
	for _, f := range revoke {
		ors = append(ors, "(kind = "+arg(string(f.Kind))+" AND request_id = "+arg(f.RequestID)+")")
	}
	r := "r AS (UPDATE " + table + " SET active = FALSE WHERE active AND (" + strings.Join(ors, " OR ") + ")"
	if consuming {
		r += " AND (kind, signature) NOT IN (SELECT kind, signature FROM c)"
	}
	return r + guard + ")"
}

// insertCTE returns i of [postgresBatch], which inserts the records of
// create, active, only if where holds (empty, or a WHERE clause: that
// every record to consume was). arg adds an argument and returns its
// placeholder.
func insertCTE(table string, create []*store.Grant, where string, arg func(any) string) string {
	var rows []string
	for _, g := range create {
		data := g.Data
		if data == nil {
			data = []byte{} // NOT NULL: drivers send a nil slice as NULL
		}
		rows = append(rows, "("+arg(string(g.Kind))+", "+arg(g.Signature)+", "+arg(g.RequestID)+", "+
			arg(g.ClientID)+", "+arg(g.Subject)+", "+arg(toMicro(g.ExpiresAt))+"::bigint, "+arg(data)+"::bytea)")
	}
	return "i AS (INSERT INTO " + table +
		" (kind, signature, request_id, client_id, subject, expires_at, active, data)" +
		" SELECT v.kind, v.signature, v.request_id, v.client_id, v.subject, v.expires_at, TRUE, v.data" +
		" FROM (VALUES " + strings.Join(rows, ", ") + ")" +
		" AS v (kind, signature, request_id, client_id, subject, expires_at, data)" + where + ")"
}

// isUniqueViolation reports whether err is PostgreSQL's unique_violation
// (SQLSTATE 23505), as pgx and lib/pq report it, without importing either.
func isUniqueViolation(err error) bool {
	var e interface{ SQLState() string }
	return errors.As(err, &e) && e.SQLState() == "23505"
}

// checkBatch reports what makes b invalid whatever the store holds: an
// invalid kind, a nil record, or two entries naming one record.
func checkBatch(b *store.GrantBatch) error {
	type key struct {
		kind      store.Kind
		signature string
	}
	seen := make(map[key]bool, len(b.Consume)+len(b.Create))
	for _, k := range b.Consume {
		if !k.Kind.Valid() {
			return fmt.Errorf("consume: invalid kind %q", k.Kind)
		}
		if seen[key{k.Kind, k.Signature}] {
			return fmt.Errorf("consume %s: the batch names the record twice", k.Kind)
		}
		seen[key{k.Kind, k.Signature}] = true
	}
	for _, f := range b.Revoke {
		if !f.Kind.Valid() {
			return fmt.Errorf("revoke: invalid kind %q", f.Kind)
		}
	}
	for _, g := range b.Create {
		if g == nil {
			return errors.New("create: nil grant")
		}
		if !g.Kind.Valid() {
			return fmt.Errorf("create: invalid kind %q", g.Kind)
		}
		if seen[key{g.Kind, g.Signature}] {
			return fmt.Errorf("create %s: the batch names the record twice", g.Kind)
		}
		seen[key{g.Kind, g.Signature}] = true
	}
	return nil
}
