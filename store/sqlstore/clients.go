package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/pixieauth/pixie/store"
)

// PutClient registers c, replacing the registration of a client with the
// same ID: for programs that declare their clients in code and register
// them on every start. It runs inside the transaction ctx carries, if any.
func (s *Store) PutClient(ctx context.Context, c *store.Client) error {
	return s.writeClient(ctx, s.stmts.clientPut, c, "put client")
}

// AddClient registers c. A client with the same ID already present yields an
// error wrapping [store.ErrAlreadyExists], so that a program may register its
// clients on every start and ignore that error. c.SecretHash must be empty
// (a public client) or made with [store.HashSecret]. It runs inside the
// transaction ctx carries, if any.
func (s *Store) AddClient(ctx context.Context, c *store.Client) error {
	return s.writeClient(ctx, s.stmts.clientAdd, c, "add client")
}

func (s *Store) writeClient(ctx context.Context, st *sql.Stmt, c *store.Client, op string) error {
	if c == nil || c.ID == "" {
		return fmt.Errorf("sqlstore: %s: missing client or client ID", op)
	}
	redirects, err := encodeList(c.RedirectURIs)
	if err != nil {
		return fmt.Errorf("sqlstore: %s %q: %w", op, c.ID, err)
	}
	scopes, err := encodeList(c.Scopes)
	if err != nil {
		return fmt.Errorf("sqlstore: %s %q: %w", op, c.ID, err)
	}
	grantTypes, err := encodeList(c.GrantTypes)
	if err != nil {
		return fmt.Errorf("sqlstore: %s %q: %w", op, c.ID, err)
	}
	apis, err := encodeList(c.APIs)
	if err != nil {
		return fmt.Errorf("sqlstore: %s %q: %w", op, c.ID, err)
	}
	postLogout, err := encodeList(c.PostLogoutRedirectURIs)
	if err != nil {
		return fmt.Errorf("sqlstore: %s %q: %w", op, c.ID, err)
	}
	res, err := s.stmt(ctx, st).ExecContext(ctx,
		c.ID, c.Name, c.SecretHash, redirects, scopes, grantTypes, c.Native, c.FirstParty, c.Introspect, c.IDTokenAlg, apis, postLogout, c.RequireDPoP, c.RequirePAR)
	if err := inserted(res, err); err != nil {
		return fmt.Errorf("sqlstore: %s %q: %w", op, c.ID, err)
	}
	return nil
}

// Client returns the client with the given id, or an error wrapping
// [store.ErrNotFound]. It implements [store.Clients].
func (s *Store) Client(ctx context.Context, id string) (*store.Client, error) {
	c := &store.Client{ID: id}
	var redirects, scopes, grantTypes, apis, postLogout string
	err := s.stmt(ctx, s.stmts.clientGet).QueryRowContext(s.readCtx(ctx), id).Scan(
		&c.Name, &c.SecretHash, &redirects, &scopes, &grantTypes, &c.Native, &c.FirstParty, &c.Introspect, &c.IDTokenAlg, &apis, &postLogout, &c.RequireDPoP, &c.RequirePAR)
	if err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			err = store.ErrNotFound
		}
		return nil, fmt.Errorf("sqlstore: client %q: %w", id, err)
	}
	if c.RedirectURIs, err = decodeList(redirects); err != nil {
		return nil, fmt.Errorf("sqlstore: client %q: redirect_uris: %w", id, err)
	}
	if c.Scopes, err = decodeList(scopes); err != nil {
		return nil, fmt.Errorf("sqlstore: client %q: scopes: %w", id, err)
	}
	if c.GrantTypes, err = decodeList(grantTypes); err != nil {
		return nil, fmt.Errorf("sqlstore: client %q: grant_types: %w", id, err)
	}
	if c.APIs, err = decodeList(apis); err != nil {
		return nil, fmt.Errorf("sqlstore: client %q: apis: %w", id, err)
	}
	if c.PostLogoutRedirectURIs, err = decodeList(postLogout); err != nil {
		return nil, fmt.Errorf("sqlstore: client %q: post_logout_redirect_uris: %w", id, err)
	}
	return c, nil
}

// encodeList stores a list of strings as a JSON array; nil and empty both
// become [].
func encodeList(l []string) (string, error) {
	if len(l) == 0 {
		return "[]", nil
	}
	b, err := json.Marshal(l)
	return string(b), err
}

// decodeList reads what encodeList wrote; an empty list, [], null or an
// empty column all become nil, as store.Client.Clone makes them.
func decodeList(s string) ([]string, error) {
	if s == "" {
		return nil, nil
	}
	var l []string
	if err := json.Unmarshal([]byte(s), &l); err != nil {
		return nil, err
	}
	if len(l) == 0 {
		return nil, nil
	}
	return l, nil
}

// inserted turns the outcome of an INSERT … ON CONFLICT DO NOTHING into nil,
// store.ErrAlreadyExists (no row inserted) or the driver's error.
func inserted(res sql.Result, err error) error {
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return store.ErrAlreadyExists
	}
	return nil
}
