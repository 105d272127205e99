package storetimeout_test

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/pixieauth/pixie/internal/storetimeout"
	"github.com/pixieauth/pixie/store"
	"github.com/pixieauth/pixie/store/memory"
	"github.com/pixieauth/pixie/store/sqlstore"
	"github.com/pixieauth/pixie/store/sqlstore/sqlite"
)

var testKeySecret = []byte("storetimeout tests: key-encryption secret, 32+ bytes")

// openSQLite opens a Store on a fresh SQLite file, closed when t ends, and
// returns it with the file's path.
func openSQLite(t *testing.T) (*sqlite.Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "pixie.db")
	st, err := sqlite.Open(t.Context(), path, sqlstore.Config{KeySecret: testKeySecret})
	if err != nil {
		t.Fatalf("sqlite.Open: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st, path
}

// TestGrantsCapabilities checks that the wrapper of a grant store has the
// optional capabilities Transactor and Batcher exactly when the store has
// them, and that they reach the store.
func TestGrantsCapabilities(t *testing.T) {
	st, _ := openSQLite(t)
	// Each case: the grant store, and whether it is a Transactor and a
	// Batcher.
	for _, tc := range []struct {
		name                string
		grants              store.Grants
		wantTx, wantBatcher bool
	}{
		{"Memory", memory.New(), false, true},
		{"SQLite", st, true, true},
		{"GrantsOnly", struct{ store.Grants }{memory.New()}, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			g := storetimeout.Grants(tc.grants, time.Minute)
			_, isTx := g.(store.Transactor)
			b, isBatcher := g.(store.Batcher)
			if isTx != tc.wantTx || isBatcher != tc.wantBatcher {
				t.Fatalf("got Transactor %v and Batcher %v, want %v and %v", isTx, isBatcher, tc.wantTx, tc.wantBatcher)
			}
			if !isBatcher {
				return
			}
			sig := "code-" + tc.name
			if err := g.CreateGrant(ctx, &store.Grant{Kind: store.KindAuthorizeCode, Signature: sig, RequestID: "req-1"}); err != nil {
				t.Fatal(err)
			}
			batch := &store.GrantBatch{Consume: []store.GrantKey{{Kind: store.KindAuthorizeCode, Signature: sig}}}
			if err := b.ApplyGrants(ctx, batch); err != nil {
				t.Fatalf("ApplyGrants: got error %v, want nil", err)
			}
			if err := b.ApplyGrants(ctx, batch); !errors.Is(err, store.ErrConsumed) || storetimeout.Is(err) {
				t.Errorf("ApplyGrants again: got error %v, want one wrapping store.ErrConsumed and no timeout", err)
			}
		})
	}
}

// TestApplyGrantsBounded holds SQLite's write lock from another connection,
// as another process would: SQLite would wait up to its busy_timeout (10 s),
// but ApplyGrants through the wrapper fails as a timeout once its bound has
// passed, and writes nothing.
func TestApplyGrantsBounded(t *testing.T) {
	st, path := openSQLite(t)
	ctx := t.Context()
	g := storetimeout.Grants(st, 200*time.Millisecond)
	b := g.(store.Batcher)
	if err := g.CreateGrant(ctx, &store.Grant{Kind: store.KindAuthorizeCode, Signature: "code-1", RequestID: "req-1"}); err != nil {
		t.Fatal(err)
	}
	batch := &store.GrantBatch{
		Consume: []store.GrantKey{{Kind: store.KindAuthorizeCode, Signature: "code-1"}},
		Create:  []*store.Grant{{Kind: store.KindAccessToken, Signature: "at-1", RequestID: "req-1"}},
	}

	other, err := sql.Open("sqlite", sqlite.DSN(path))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	lock, err := other.BeginTx(ctx, nil) // BEGIN IMMEDIATE: the write lock
	if err != nil {
		t.Fatalf("take the write lock: %v", err)
	}
	err = b.ApplyGrants(ctx, batch)
	if !storetimeout.Is(err) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("ApplyGrants while another connection holds the write lock: got error %v, want a storetimeout.Error", err)
	}
	if err := lock.Rollback(); err != nil {
		t.Fatalf("release the write lock: %v", err)
	}

	got, err := g.Grant(ctx, store.KindAuthorizeCode, "code-1")
	if err != nil || !got.Active {
		t.Fatalf("the code after the timed-out batch: got %+v, %v, want it active", got, err)
	}
	if _, err := g.Grant(ctx, store.KindAccessToken, "at-1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the access token after the timed-out batch: got error %v, want store.ErrNotFound", err)
	}
	if err := b.ApplyGrants(ctx, batch); err != nil {
		t.Errorf("ApplyGrants once the lock is released: got error %v, want nil", err)
	}
}
