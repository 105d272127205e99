package postgres_test

import (
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/pixieauth/pixie/internal/pgtest"
	"github.com/pixieauth/pixie/store"
	"github.com/pixieauth/pixie/store/sqlstore"
	"github.com/pixieauth/pixie/store/sqlstore/internal/sqlstoretest"
)

// TestCodeCommitSetting: storing an authorization code outside a
// transaction, with the statement that turns synchronous_commit off for
// its own implicit transaction, leaves the connection's setting as it was
// (on the pool's one connection, for the token exchange that must wait for
// the disk), inside a transaction too. The code reads back, and a second
// one under its key is ErrAlreadyExists, as any record. (That the commit
// itself does not wait is PostgreSQL's documented set_config semantics;
// the test cannot observe a flush.)
func TestCodeCommitSetting(t *testing.T) {
	connCfg, err := pgx.ParseConfig(pgtest.FreshSchema(t))
	if err != nil {
		t.Fatal(err)
	}
	db := stdlib.OpenDB(*connCfg)
	t.Cleanup(func() { _ = db.Close() })
	db.SetMaxOpenConns(1)
	ctx := t.Context()
	s, err := sqlstore.New(ctx, db, sqlstore.Config{Dialect: sqlstore.Postgres, KeySecret: sqlstoretest.Secret})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	setting := func() string {
		t.Helper()
		var v string
		if err := db.QueryRowContext(ctx, "SHOW synchronous_commit").Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	before := setting()
	code := &store.Grant{Kind: store.KindAuthorizeCode, Signature: "code-1", RequestID: "req-1", ClientID: "app",
		ExpiresAt: time.Now().Add(time.Minute), Data: []byte("d")}
	if err := s.CreateGrant(ctx, code); err != nil {
		t.Fatal(err)
	}
	if got := setting(); got != before {
		t.Errorf("after storing a code: synchronous_commit %q, want %q as before", got, before)
	}
	if g, err := s.Grant(ctx, store.KindAuthorizeCode, "code-1"); err != nil || !g.Active || string(g.Data) != "d" {
		t.Errorf("code read back: got %+v, %v", g, err)
	}
	if err := s.CreateGrant(ctx, code); !errors.Is(err, store.ErrAlreadyExists) {
		t.Errorf("the same code again: got %v, want ErrAlreadyExists", err)
	}
	// Inside a transaction the code is written as any record.
	txCtx, err := s.BeginTx(ctx)
	if err != nil {
		t.Fatal(err)
	}
	code.Signature = "code-2"
	if err := s.CreateGrant(txCtx, code); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(txCtx); err != nil {
		t.Fatal(err)
	}
	if got := setting(); got != before {
		t.Errorf("after a transaction: synchronous_commit %q, want %q", got, before)
	}
}
