package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/pixieauth/pixie/store"
)

// CreateSession stores a login-session record. It implements
// [store.Sessions]. A record with the same ID already present yields an
// error wrapping [store.ErrAlreadyExists]. Times are kept to the
// microsecond.
func (s *Store) CreateSession(ctx context.Context, sess *store.Session) error {
	if sess == nil || sess.ID == "" {
		return errors.New("sqlstore: create session: missing session or ID")
	}
	amr, err := encodeList(sess.AMR)
	if err != nil {
		return fmt.Errorf("sqlstore: create session: %w", err)
	}
	res, err := s.stmt(ctx, s.stmts.sessionCreate).ExecContext(ctx, sess.ID, sess.Subject,
		toMicro(sess.AuthTime), amr, sess.ACR, toMicro(sess.CreatedAt), toMicro(sess.ExpiresAt), toMicro(sess.LastUsed), sess.Revoked)
	if err := inserted(res, err); err != nil {
		return fmt.Errorf("sqlstore: create session: %w", err)
	}
	return nil
}

// Session returns the login-session record with that ID, revoked or expired
// or not, or an error wrapping [store.ErrNotFound]. It implements
// [store.Sessions].
func (s *Store) Session(ctx context.Context, id string) (*store.Session, error) {
	sess := &store.Session{ID: id}
	var authTime, created, expires, lastUsed int64
	var amr string
	err := s.stmt(ctx, s.stmts.sessionGet).QueryRowContext(s.readCtx(ctx), id).Scan(
		&sess.Subject, &authTime, &amr, &sess.ACR, &created, &expires, &lastUsed, &sess.Revoked)
	if err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			err = store.ErrNotFound
		}
		return nil, fmt.Errorf("sqlstore: session: %w", err)
	}
	if sess.AMR, err = decodeList(amr); err != nil {
		return nil, fmt.Errorf("sqlstore: session: amr: %w", err)
	}
	sess.AuthTime, sess.CreatedAt = fromMicro(authTime), fromMicro(created)
	sess.ExpiresAt, sess.LastUsed = fromMicro(expires), fromMicro(lastUsed)
	return sess, nil
}

// TouchSession sets the record's LastUsed to at if that is later. It
// implements [store.Sessions]. It is one UPDATE … WHERE last_used < at, so
// concurrent calls, on any replica, never move it back. A missing record
// yields an error wrapping [store.ErrNotFound]; telling it from a record
// already used later costs a second query, on that path only.
func (s *Store) TouchSession(ctx context.Context, id string, at time.Time) error {
	us := toMicro(at)
	n, err := affected(s.stmt(ctx, s.stmts.sessionTouch).ExecContext(ctx, us, id, us))
	if err != nil {
		return fmt.Errorf("sqlstore: touch session: %w", err)
	}
	if n == 1 {
		return nil
	}
	var one int
	err = s.stmt(ctx, s.stmts.sessionExists).QueryRowContext(ctx, id).Scan(&one)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("sqlstore: touch session: %w", store.ErrNotFound)
	case err != nil:
		return fmt.Errorf("sqlstore: touch session: %w", err)
	}
	return nil
}

// RevokeSession marks the record revoked; a missing one is not an error. It
// implements [store.Sessions].
func (s *Store) RevokeSession(ctx context.Context, id string) error {
	if _, err := s.stmt(ctx, s.stmts.sessionRevoke).ExecContext(ctx, id); err != nil {
		return fmt.Errorf("sqlstore: revoke session: %w", err)
	}
	return nil
}

// RevokeSessions marks every record of the subject revoked, in one UPDATE
// using the index on subject. It implements [store.Sessions].
func (s *Store) RevokeSessions(ctx context.Context, subject string) error {
	if _, err := s.stmt(ctx, s.stmts.sessionRevokeSubject).ExecContext(ctx, subject); err != nil {
		return fmt.Errorf("sqlstore: revoke sessions: %w", err)
	}
	return nil
}
