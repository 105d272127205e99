package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/pixieauth/pixie/store"
)

// CreateGrant stores g, marked active. It implements [store.Grants]. A record
// with the same Kind and Signature already present, active or not, yields an
// error wrapping [store.ErrAlreadyExists]. An invalid g.Kind is an error. On
// PostgreSQL, an authorization code written outside a transaction does not
// wait for its commit to reach the disk (see qGrantCreateCode). On SQLite, a
// write outside a transaction is group committed (see the package
// documentation), as are those of Consume, Delete, Revoke and ApplyGrants.
func (s *Store) CreateGrant(ctx context.Context, g *store.Grant) error {
	if g == nil {
		return errors.New("sqlstore: create grant: nil grant")
	}
	if !g.Kind.Valid() {
		return fmt.Errorf("sqlstore: create grant: invalid kind %q", g.Kind)
	}
	if s.grouped(ctx) {
		return s.write(ctx, true, func(txCtx context.Context) (bool, error) { return false, s.createGrant(txCtx, g) })
	}
	return s.createGrant(ctx, g)
}

// createGrant is CreateGrant once g is checked: one INSERT.
func (s *Store) createGrant(ctx context.Context, g *store.Grant) error {
	data := g.Data
	if data == nil {
		data = []byte{} // NOT NULL: drivers send a nil slice as NULL
	}
	st := s.stmts.grantCreate
	if g.Kind == store.KindAuthorizeCode && s.tx(ctx) == nil {
		st = s.stmts.grantCreateCode
	}
	res, err := s.stmt(ctx, st).ExecContext(ctx,
		string(g.Kind), g.Signature, g.RequestID, g.ClientID, g.Subject, toMicro(g.ExpiresAt), data)
	if err := inserted(res, err); err != nil {
		return fmt.Errorf("sqlstore: create %s: %w", g.Kind, err)
	}
	return nil
}

// Grant returns the record of that kind and signature, active or not and
// expired or not, or an error wrapping [store.ErrNotFound]. It implements
// [store.Grants].
func (s *Store) Grant(ctx context.Context, kind store.Kind, signature string) (*store.Grant, error) {
	if !kind.Valid() {
		return nil, fmt.Errorf("sqlstore: grant: invalid kind %q", kind)
	}
	g := &store.Grant{Kind: kind, Signature: signature}
	var expires int64
	err := s.stmt(ctx, s.stmts.grantGet).QueryRowContext(s.readCtx(ctx), string(kind), signature).Scan(
		&g.RequestID, &g.ClientID, &g.Subject, &expires, &g.Active, &g.Data)
	if err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			err = store.ErrNotFound
		}
		return nil, fmt.Errorf("sqlstore: grant %s: %w", kind, err)
	}
	g.ExpiresAt = fromMicro(expires)
	if len(g.Data) == 0 {
		g.Data = nil
	}
	return g, nil
}

// Consume marks the active record of that kind and signature inactive. It
// implements [store.Grants]. It is one compare-and-set statement (UPDATE …
// WHERE … AND active): of concurrent callers, on any number of connections
// or replicas, exactly one returns nil. An inactive record yields an error
// wrapping [store.ErrConsumed], a missing one [store.ErrNotFound]; telling
// the two apart costs a second query, on the losing path only.
func (s *Store) Consume(ctx context.Context, kind store.Kind, signature string) error {
	if !kind.Valid() {
		return fmt.Errorf("sqlstore: consume: invalid kind %q", kind)
	}
	if s.grouped(ctx) {
		return s.write(ctx, true, func(txCtx context.Context) (bool, error) { return false, s.consume(txCtx, kind, signature) })
	}
	return s.consume(ctx, kind, signature)
}

// consume is Consume once kind is checked.
func (s *Store) consume(ctx context.Context, kind store.Kind, signature string) error {
	n, err := affected(s.stmt(ctx, s.stmts.grantConsume).ExecContext(ctx, string(kind), signature))
	if err != nil {
		return fmt.Errorf("sqlstore: consume %s: %w", kind, err)
	}
	if n == 1 {
		return nil
	}
	var one int
	err = s.stmt(ctx, s.stmts.grantExists).QueryRowContext(ctx, string(kind), signature).Scan(&one)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("sqlstore: consume %s: %w", kind, store.ErrNotFound)
	case err != nil:
		return fmt.Errorf("sqlstore: consume %s: %w", kind, err)
	}
	return fmt.Errorf("sqlstore: consume %s: %w", kind, store.ErrConsumed)
}

// Delete removes the record of that kind and signature. It implements
// [store.Grants]. It is one DELETE and a rows-affected check: of concurrent
// callers exactly one returns nil; a missing record yields an error wrapping
// [store.ErrNotFound].
func (s *Store) Delete(ctx context.Context, kind store.Kind, signature string) error {
	if !kind.Valid() {
		return fmt.Errorf("sqlstore: delete: invalid kind %q", kind)
	}
	if s.grouped(ctx) {
		return s.write(ctx, true, func(txCtx context.Context) (bool, error) { return false, s.delete(txCtx, kind, signature) })
	}
	return s.delete(ctx, kind, signature)
}

// delete is Delete once kind is checked.
func (s *Store) delete(ctx context.Context, kind store.Kind, signature string) error {
	n, err := affected(s.stmt(ctx, s.stmts.grantDelete).ExecContext(ctx, string(kind), signature))
	if err != nil {
		return fmt.Errorf("sqlstore: delete %s: %w", kind, err)
	}
	if n == 0 {
		return fmt.Errorf("sqlstore: delete %s: %w", kind, store.ErrNotFound)
	}
	return nil
}

// Revoke marks every record of that kind with the given request ID inactive.
// It implements [store.Grants]. The records are kept, so that a replay is
// recognized as one. It is not an error if there is none.
func (s *Store) Revoke(ctx context.Context, kind store.Kind, requestID string) error {
	if !kind.Valid() {
		return fmt.Errorf("sqlstore: revoke: invalid kind %q", kind)
	}
	if s.grouped(ctx) {
		return s.write(ctx, true, func(txCtx context.Context) (bool, error) { return false, s.revoke(txCtx, kind, requestID) })
	}
	return s.revoke(ctx, kind, requestID)
}

// revoke is Revoke once kind is checked.
func (s *Store) revoke(ctx context.Context, kind store.Kind, requestID string) error {
	if _, err := s.stmt(ctx, s.stmts.grantRevoke).ExecContext(ctx, string(kind), requestID); err != nil {
		return fmt.Errorf("sqlstore: revoke %s: %w", kind, err)
	}
	return nil
}

// DeleteExpired removes every grant record whose ExpiresAt is before the
// given time, active or not, and returns how many it removed. It implements
// [store.ExpiredDeleter]. A record with a zero ExpiresAt counts as expired.
//
// It also removes the throttle rows (see [Store.AddHit]) whose window ended
// at or before that time, the consents that expired before it, and the
// login-session rows (see [Store.CreateSession]) whose ExpiresAt is before
// it; they are not counted in the result. Each is one DELETE, using the
// index on expires_at of its table. If a later one fails, DeleteExpired
// returns the number of grant records removed with the error.
func (s *Store) DeleteExpired(ctx context.Context, before time.Time) (int, error) {
	n, err := affected(s.stmt(ctx, s.stmts.grantDeleteExpired).ExecContext(ctx, toMicro(before)))
	if err != nil {
		return 0, fmt.Errorf("sqlstore: delete expired grants: %w", err)
	}
	if _, err := s.stmt(ctx, s.stmts.hitDeleteExpired).ExecContext(ctx, toMicro(before)); err != nil {
		return int(n), fmt.Errorf("sqlstore: delete ended throttle windows: %w", err)
	}
	if _, err := s.stmt(ctx, s.stmts.consentDeleteExpired).ExecContext(ctx, toMicro(before)); err != nil {
		return int(n), fmt.Errorf("sqlstore: delete expired consents: %w", err)
	}
	if _, err := s.stmt(ctx, s.stmts.sessionDeleteExpired).ExecContext(ctx, toMicro(before)); err != nil {
		return int(n), fmt.Errorf("sqlstore: delete expired sessions: %w", err)
	}
	return int(n), nil
}

// affected returns the number of rows a statement changed.
func affected(res sql.Result, err error) (int64, error) {
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// toMicro is how times are stored: Unix microseconds, which are UTC by
// definition, in a 64-bit integer column on every dialect. The zero
// time.Time is stored as is (year 1) and read back as the zero time.
func toMicro(t time.Time) int64 { return t.UnixMicro() }

// fromMicro reads what toMicro wrote, as a UTC time.
func fromMicro(us int64) time.Time { return time.UnixMicro(us).UTC() }
