package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/pixieauth/pixie/store"

	_ "modernc.org/sqlite" // the "sqlite" driver, for a Store on a real file
)

// openGroupStore opens a Store on a fresh SQLite file with one writing
// connection, as package sqlite does.
func openGroupStore(t *testing.T) *Store {
	t.Helper()
	path := filepath.Join(t.TempDir(), "pixie.db")
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { _ = db.Close() })
	s, err := New(t.Context(), db, Config{Dialect: SQLite, KeySecret: make([]byte, MinKeySecretLen)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// groupGrant is a record of the group tests.
func groupGrant(kind store.Kind, sig string) *store.Grant {
	return &store.Grant{Kind: kind, Signature: sig, RequestID: "req-" + sig, ClientID: "app",
		ExpiresAt: time.Now().Add(time.Hour), Data: []byte("data")}
}

// waitQueued waits until s has a leader and n writes queued behind it.
func waitQueued(t *testing.T, s *Store, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		s.group.mu.Lock()
		got, leading := len(s.group.queue), s.group.leading
		s.group.mu.Unlock()
		if leading && got == n {
			return
		}
	}
	t.Fatalf("the queue never held %d writes", n)
}

// TestGroupCommit queues writes behind a leader that waits for the writing
// connection (held by a transaction of BeginTx), so that they run as one
// group, and checks that each caller gets its own outcome: a batch that
// fails after it consumed (its insert finds the key taken) is undone alone,
// and the write after it, which consumes the same record, then wins; a
// write withdrawn by its caller's context never runs; the others commit.
func TestGroupCommit(t *testing.T) {
	s := openGroupStore(t)
	ctx := t.Context()
	for _, g := range []*store.Grant{groupGrant(store.KindRefreshToken, "rt"), groupGrant(store.KindAccessToken, "taken")} {
		if err := s.CreateGrant(ctx, g); err != nil {
			t.Fatal(err)
		}
	}
	hold, err := s.BeginTx(ctx) // holds the one connection: the leader waits
	if err != nil {
		t.Fatal(err)
	}
	type outcome struct {
		name string
		err  error
	}
	results := make(chan outcome, 8)
	start := func(name string, ctx context.Context, f func(context.Context) error) {
		go func() { results <- outcome{name, f(ctx)} }()
	}
	start("leader", ctx, func(ctx context.Context) error {
		return s.CreateGrant(ctx, groupGrant(store.KindAccessToken, "at-0"))
	})
	waitQueued(t, s, 0) // the leader has taken its own write, and waits for BEGIN
	start("dirty", ctx, func(ctx context.Context) error {
		return s.ApplyGrants(ctx, &store.GrantBatch{
			Consume: []store.GrantKey{{Kind: store.KindRefreshToken, Signature: "rt"}},
			Create:  []*store.Grant{groupGrant(store.KindAccessToken, "at-dirty"), groupGrant(store.KindAccessToken, "taken")},
		})
	})
	waitQueued(t, s, 1)
	withdrawnCtx, withdraw := context.WithCancel(ctx)
	start("withdrawn", withdrawnCtx, func(ctx context.Context) error {
		return s.CreateGrant(ctx, groupGrant(store.KindAccessToken, "at-withdrawn"))
	})
	waitQueued(t, s, 2)
	start("consume", ctx, func(ctx context.Context) error {
		return s.Consume(ctx, store.KindRefreshToken, "rt")
	})
	waitQueued(t, s, 3)
	start("create", ctx, func(ctx context.Context) error {
		return s.CreateGrant(ctx, groupGrant(store.KindAccessToken, "at-1"))
	})
	waitQueued(t, s, 4)
	withdraw()
	if r := <-results; r.name != "withdrawn" || !errors.Is(r.err, context.Canceled) {
		t.Fatalf("first outcome: %s %v, want withdrawn with context.Canceled", r.name, r.err)
	}
	waitQueued(t, s, 3)
	if err := s.Commit(hold); err != nil {
		t.Fatal(err)
	}
	want := map[string]error{"leader": nil, "dirty": store.ErrAlreadyExists, "consume": nil, "create": nil}
	for range want {
		r := <-results
		if w := want[r.name]; !errors.Is(r.err, w) || (w == nil && r.err != nil) {
			t.Errorf("%s: got %v, want %v", r.name, r.err, w)
		}
	}
	for sig, exists := range map[string]bool{"at-0": true, "at-1": true, "at-dirty": false, "at-withdrawn": false} {
		_, err := s.Grant(ctx, store.KindAccessToken, sig)
		if exists != (err == nil) {
			t.Errorf("access token %s: Grant error %v, want it stored: %v", sig, err, exists)
		}
	}
	if g, err := s.Grant(ctx, store.KindRefreshToken, "rt"); err != nil || g.Active {
		t.Errorf("refresh token: %+v, %v; want consumed (by the write after the undone batch)", g, err)
	}
	s.group.mu.Lock()
	defer s.group.mu.Unlock()
	if s.group.leading || len(s.group.queue) != 0 {
		t.Errorf("after the writes: leading %v, %d queued; want no leader and an empty queue", s.group.leading, len(s.group.queue))
	}
}

// TestGroupCommitConcurrent has 32 callers redeem 8 codes, 4 callers each,
// all at once: of each code's callers exactly one wins, and every winner's
// tokens, and no loser's, are stored.
func TestGroupCommitConcurrent(t *testing.T) {
	s := openGroupStore(t)
	ctx := t.Context()
	const codes, callers = 8, 4
	for c := range codes {
		if err := s.CreateGrant(ctx, groupGrant(store.KindAuthorizeCode, string(rune('a'+c)))); err != nil {
			t.Fatal(err)
		}
	}
	type win struct {
		code, caller int
		err          error
	}
	results := make(chan win, codes*callers)
	for c := range codes {
		for i := range callers {
			go func() {
				sig := string(rune('a'+c)) + "-" + string(rune('0'+i))
				results <- win{c, i, s.ApplyGrants(ctx, &store.GrantBatch{
					Consume: []store.GrantKey{{Kind: store.KindAuthorizeCode, Signature: string(rune('a' + c))}},
					Create:  []*store.Grant{groupGrant(store.KindAccessToken, sig)},
				})}
			}()
		}
	}
	winners := make(map[int]int)
	for range codes * callers {
		r := <-results
		sig := string(rune('a'+r.code)) + "-" + string(rune('0'+r.caller))
		_, gerr := s.Grant(ctx, store.KindAccessToken, sig)
		switch {
		case r.err == nil:
			winners[r.code]++
			if gerr != nil {
				t.Errorf("winner %s: its token is not stored: %v", sig, gerr)
			}
		case errors.Is(r.err, store.ErrConsumed):
			if gerr == nil {
				t.Errorf("loser %s: its token is stored", sig)
			}
		default:
			t.Errorf("%s: %v", sig, r.err)
		}
	}
	for c := range codes {
		if winners[c] != 1 {
			t.Errorf("code %d: %d winners, want 1", c, winners[c])
		}
	}
}
