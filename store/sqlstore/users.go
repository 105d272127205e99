package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/pixieauth/pixie/store"
)

// dummyPassword is hashed once per Store; an unknown username is checked
// against that hash so that it costs as much as a known one.
const dummyPassword = "pixie/sqlstore: password of no user"

// AddUser registers u, who logs in with username and password (matched
// exactly, case included). The password is stored hashed with
// [store.HashSecret] (argon2id), which takes tens of milliseconds. A user
// with the same subject or username already present yields an error
// wrapping [store.ErrAlreadyExists]. It runs inside the transaction ctx
// carries, if any.
func (s *Store) AddUser(ctx context.Context, u *store.User, username, password string) error {
	if u == nil || u.Subject == "" || username == "" {
		return errors.New("sqlstore: add user: missing user, subject or username")
	}
	hash, err := store.HashSecret(password)
	if err != nil {
		return fmt.Errorf("sqlstore: add user: %w", err)
	}
	res, err := s.stmt(ctx, s.stmts.userAdd).ExecContext(ctx,
		u.Subject, username, hash, u.PreferredUsername, u.Name, u.GivenName, u.FamilyName,
		u.Email, u.EmailVerified, u.Picture, u.Locale,
		u.Address.Formatted, u.Address.StreetAddress, u.Address.Locality, u.Address.Region, u.Address.PostalCode, u.Address.Country,
		u.PhoneNumber, u.PhoneNumberVerified)
	if err := inserted(res, err); err != nil {
		return fmt.Errorf("sqlstore: add user: subject %q or username %q: %w", u.Subject, username, err)
	}
	return nil
}

// SetPassword replaces the password of the user registered with username,
// storing it hashed with [store.HashSecret]. An unknown username yields an
// error wrapping [store.ErrNotFound].
func (s *Store) SetPassword(ctx context.Context, username, password string) error {
	hash, err := store.HashSecret(password)
	if err != nil {
		return fmt.Errorf("sqlstore: set password: %w", err)
	}
	res, err := s.stmt(ctx, s.stmts.userPass).ExecContext(ctx, hash, username)
	n, err := affected(res, err)
	if err != nil {
		return fmt.Errorf("sqlstore: set password: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("sqlstore: set password of %q: %w", username, store.ErrNotFound)
	}
	return nil
}

// Authenticate returns the subject of the user registered with username and
// password. It implements [store.Users]. An unknown username and a wrong
// password both yield an error wrapping [store.ErrInvalidCredentials]; both
// cost one password hash check (an unknown username is checked against a
// hash the Store makes on its first Authenticate), so the time taken does
// not tell them apart. A database failure is returned as such, never as
// invalid credentials.
func (s *Store) Authenticate(ctx context.Context, username, password string) (string, error) {
	// Made before the lookup whatever its outcome, so that the first call
	// costs the same for a known and an unknown user.
	dummy, err := s.dummy()
	if err != nil {
		return "", fmt.Errorf("sqlstore: authenticate: %w", err)
	}
	var subject, hash string
	err = s.stmt(ctx, s.stmts.userAuth).QueryRowContext(ctx, username).Scan(&subject, &hash)
	known := err == nil
	switch {
	case errors.Is(err, sql.ErrNoRows):
		hash = dummy
	case err != nil:
		return "", fmt.Errorf("sqlstore: authenticate: %w", err)
	}
	ok, err := store.CheckSecret(hash, password)
	if err != nil {
		return "", fmt.Errorf("sqlstore: authenticate: %w", err)
	}
	if !known || !ok {
		return "", fmt.Errorf("sqlstore: authenticate: %w", store.ErrInvalidCredentials)
	}
	return subject, nil
}

// dummy returns the hash an unknown username is checked against, computing it
// on first use.
func (s *Store) dummy() (string, error) {
	s.dummyOnce.Do(func() {
		s.dummyHash, s.dummyErr = store.HashSecret(dummyPassword)
	})
	return s.dummyHash, s.dummyErr
}

// User returns the profile of the user with the given subject, or an error
// wrapping [store.ErrNotFound]. It implements [store.Users].
func (s *Store) User(ctx context.Context, subject string) (*store.User, error) {
	u := &store.User{Subject: subject}
	err := s.stmt(ctx, s.stmts.userGet).QueryRowContext(s.readCtx(ctx), subject).Scan(
		&u.PreferredUsername, &u.Name, &u.GivenName, &u.FamilyName, &u.Email, &u.EmailVerified, &u.Picture, &u.Locale,
		&u.Address.Formatted, &u.Address.StreetAddress, &u.Address.Locality, &u.Address.Region, &u.Address.PostalCode, &u.Address.Country,
		&u.PhoneNumber, &u.PhoneNumberVerified)
	if err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			err = store.ErrNotFound
		}
		return nil, fmt.Errorf("sqlstore: user %q: %w", subject, err)
	}
	return u, nil
}
