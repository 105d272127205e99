package sqlite_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/pixieauth/pixie/store"
	"github.com/pixieauth/pixie/store/sqlstore"
	"github.com/pixieauth/pixie/store/sqlstore/internal/sqlstoretest"
	"github.com/pixieauth/pixie/store/sqlstore/sqlite"
)

// grant returns an authorization-code record for the tests.
func grant(sig string) *store.Grant {
	return &store.Grant{
		Kind: store.KindAuthorizeCode, Signature: sig, RequestID: "req-" + sig, ClientID: "app",
		ExpiresAt: time.Now().Add(time.Hour), Data: []byte("data of " + sig),
	}
}

// TestPools checks the two pools Open sets up: one writing connection, a
// read-only pool of GOMAXPROCS (at least two), and the pragmas on every
// connection of each (a pragma missing on the second connection of a pool
// is the usual mistake, so the test pins all the readers at once).
func TestPools(t *testing.T) {
	s := openTemp(t)
	ctx := t.Context()
	if got := s.DB().Stats().MaxOpenConnections; got != 1 {
		t.Errorf("writer pool: MaxOpenConnections %d, want 1", got)
	}
	wantReaders := max(2, runtime.GOMAXPROCS(0))
	if got := s.ReadDB().Stats().MaxOpenConnections; got != wantReaders {
		t.Errorf("read pool: MaxOpenConnections %d, want %d", got, wantReaders)
	}

	type pragmas struct {
		journalMode      string
		synchronous      int // 1 is NORMAL
		busyTimeout      int
		queryOnly        int
		journalSizeLimit int
	}
	check := func(t *testing.T, name string, conns []pragmas, want pragmas) {
		for i, got := range conns {
			if got != want {
				t.Errorf("%s connection %d: got %+v, want %+v", name, i, got, want)
			}
		}
	}
	// The writer's only connection.
	var w pragmas
	wc, err := s.DB().Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for q, dst := range map[string]any{
		"PRAGMA journal_mode": &w.journalMode, "PRAGMA synchronous": &w.synchronous,
		"PRAGMA busy_timeout": &w.busyTimeout, "PRAGMA query_only": &w.queryOnly,
		"PRAGMA journal_size_limit": &w.journalSizeLimit,
	} {
		if err := wc.QueryRowContext(ctx, q).Scan(dst); err != nil {
			t.Fatalf("writer: %s: %v", q, err)
		}
	}
	wc.Close()
	check(t, "writer", []pragmas{w}, pragmas{"wal", 1, 10000, 0, 16 << 20})

	// Every read connection, all open at once.
	var readers []pragmas
	for range wantReaders {
		rc, err := s.ReadDB().Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		var r pragmas
		for q, dst := range map[string]any{
			"PRAGMA journal_mode": &r.journalMode, "PRAGMA busy_timeout": &r.busyTimeout,
			"PRAGMA query_only": &r.queryOnly,
		} {
			if err := rc.QueryRowContext(ctx, q).Scan(dst); err != nil {
				t.Fatalf("reader: %s: %v", q, err)
			}
		}
		readers = append(readers, r)
		if _, err := rc.ExecContext(ctx, "DELETE FROM grants"); err == nil {
			t.Error("reader: DELETE FROM grants: got nil error, want one (query_only)")
		}
	}
	check(t, "reader", readers, pragmas{journalMode: "wal", busyTimeout: 10000, queryOnly: 1})
}

// TestReadDuringWriteTransaction holds the writing connection in an open
// transaction, with a write in it, while another goroutine reads: the reads
// must be answered from the read pool while the transaction is still open
// (with a single connection they would wait for it and fail at their
// deadline), must not see the uncommitted write, and once it is committed
// must see it.
func TestReadDuringWriteTransaction(t *testing.T) {
	s := openTemp(t)
	ctx := t.Context()
	if err := s.AddClient(ctx, &store.Client{ID: "app", RedirectURIs: []string{"http://127.0.0.1/cb"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateGrant(ctx, grant("committed")); err != nil {
		t.Fatal(err)
	}
	txCtx, err := s.BeginTx(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateGrant(txCtx, grant("pending")); err != nil {
		t.Fatal(err)
	}

	type result struct {
		committed, client, pending error
	}
	done := make(chan result)
	go func() {
		// A generous deadline: it only turns a wait for the transaction,
		// which never ends while this goroutine has not answered, into a
		// failure instead of a hang.
		rctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		var r result
		_, r.committed = s.Grant(rctx, store.KindAuthorizeCode, "committed")
		_, r.client = s.Client(rctx, "app")
		_, r.pending = s.Grant(rctx, store.KindAuthorizeCode, "pending")
		done <- r
	}()
	r := <-done // the transaction is still open here
	if r.committed != nil {
		t.Errorf("Grant of a committed record while a transaction is open: got %v, want nil", r.committed)
	}
	if r.client != nil {
		t.Errorf("Client while a transaction is open: got %v, want nil", r.client)
	}
	if !errors.Is(r.pending, store.ErrNotFound) {
		t.Errorf("Grant of the open transaction's record from outside it: got %v, want ErrNotFound", r.pending)
	}
	if stats := s.ReadDB().Stats(); stats.InUse+stats.Idle == 0 {
		t.Errorf("read pool: no connection open after the reads: %+v", stats)
	}
	if err := s.Commit(txCtx); err != nil {
		t.Fatal(err)
	}
	go func() {
		_, err := s.Grant(ctx, store.KindAuthorizeCode, "pending")
		done <- result{pending: err}
	}()
	if r := <-done; r.pending != nil {
		t.Errorf("Grant after the commit, from another goroutine: got %v, want nil", r.pending)
	}
}

// TestReadYourWrites has writers and readers in many goroutines: a read
// made after a write returned, in whatever goroutine, sees it (creation,
// consumption, deletion), on the Store that wrote and on a second Store on
// the same file, as another process would have.
func TestReadYourWrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pixie.db")
	var stores [2]*sqlite.Store
	for i := range stores {
		s, err := sqlite.Open(t.Context(), path, sqlstore.Config{KeySecret: sqlstoretest.Secret})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		stores[i] = s
	}
	ctx := t.Context()
	const writers, rounds = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, writers*rounds)
	for w := range writers {
		wg.Go(func() {
			for i := range rounds {
				sig := fmt.Sprintf("w%d-%d", w, i)
				writer, reader := stores[(w+i)%2], stores[(w+i+1)%2]
				if err := writer.CreateGrant(ctx, grant(sig)); err != nil {
					errs <- err
					return
				}
				// Read in another goroutine, after the write returned.
				seen := make(chan error)
				go func() {
					for _, s := range []*sqlite.Store{writer, reader} {
						if g, err := s.Grant(ctx, store.KindAuthorizeCode, sig); err != nil || !g.Active {
							seen <- fmt.Errorf("grant %s after its creation: got %+v, %v; want it active", sig, g, err)
							return
						}
					}
					if err := writer.Consume(ctx, store.KindAuthorizeCode, sig); err != nil {
						seen <- err
						return
					}
					for _, s := range []*sqlite.Store{writer, reader} {
						if g, err := s.Grant(ctx, store.KindAuthorizeCode, sig); err != nil || g.Active {
							seen <- fmt.Errorf("grant %s after its consumption: got %+v, %v; want it inactive", sig, g, err)
							return
						}
					}
					if err := reader.Delete(ctx, store.KindAuthorizeCode, sig); err != nil {
						seen <- err
						return
					}
					for _, s := range []*sqlite.Store{writer, reader} {
						if _, err := s.Grant(ctx, store.KindAuthorizeCode, sig); !errors.Is(err, store.ErrNotFound) {
							seen <- fmt.Errorf("grant %s after its deletion: got %v, want ErrNotFound", sig, err)
							return
						}
					}
					seen <- nil
				}()
				if err := <-seen; err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestCloseDBClosesReadPool checks that closing the writing pool, as a test
// of a database outage does, takes the read pool with it: reads fail too
// rather than answer from a database the Store no longer writes to.
func TestCloseDBClosesReadPool(t *testing.T) {
	s := openTemp(t)
	ctx := t.Context()
	if err := s.CreateGrant(ctx, grant("code-1")); err != nil {
		t.Fatal(err)
	}
	if err := s.DB().Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.ReadDB().PingContext(ctx); err == nil {
		t.Error("read pool after closing the writing pool: Ping got nil error, want one")
	}
	if _, err := s.Grant(ctx, store.KindAuthorizeCode, "code-1"); err == nil || errors.Is(err, store.ErrNotFound) {
		t.Errorf("Grant after closing the writing pool: got %v, want an error that is not ErrNotFound", err)
	}
}
