package handlers_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/pixieauth/pixie/internal/pgtest"
	"github.com/pixieauth/pixie/store"
	"github.com/pixieauth/pixie/store/memory"
	"github.com/pixieauth/pixie/store/sqlstore"
	"github.com/pixieauth/pixie/store/sqlstore/postgres"
	"github.com/pixieauth/pixie/store/sqlstore/sqlite"
)

// The grant store fails in the middle of a token request: at each of its
// calls in turn. The request must fail as the server's fault (5xx
// server_error); afterwards the same code or refresh token must work
// exactly once, and nothing the failed request wrote may remain.

// errInjected is the failure failingGrants injects.
var errInjected = errors.New("test: injected store failure")

// failingGrants is a real grant store that fails its Nth call (counting
// Grants and Transactor calls, Rollback excepted) once armed, before the
// call reaches the store. It records the calls and what CreateGrant wrote.
type failingGrants struct {
	store.Grants

	mu      sync.Mutex
	failAt  int      // the call to fail, counting from 1; 0: none
	calls   []string // the calls since arm
	created []store.Grant
}

// arm starts counting calls, failing the nth (0: none).
func (f *failingGrants) arm(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failAt, f.calls, f.created = n, nil, nil
}

// disarm stops failing calls, keeping the log.
func (f *failingGrants) disarm() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failAt = 0
}

// log returns the calls since arm, and the records created meanwhile.
func (f *failingGrants) log() ([]string, []store.Grant) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls), slices.Clone(f.created)
}

// call counts a call and reports whether it must fail.
func (f *failingGrants) call(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, name)
	if len(f.calls) == f.failAt {
		return fmt.Errorf("%s: %w", name, errInjected)
	}
	return nil
}

func (f *failingGrants) CreateGrant(ctx context.Context, g *store.Grant) error {
	if err := f.call("CreateGrant " + string(g.Kind)); err != nil {
		return err
	}
	err := f.Grants.CreateGrant(ctx, g)
	if err == nil {
		f.mu.Lock()
		f.created = append(f.created, *g.Clone())
		f.mu.Unlock()
	}
	return err
}

func (f *failingGrants) Grant(ctx context.Context, kind store.Kind, signature string) (*store.Grant, error) {
	if err := f.call("Grant " + string(kind)); err != nil {
		return nil, err
	}
	return f.Grants.Grant(ctx, kind, signature)
}

func (f *failingGrants) Consume(ctx context.Context, kind store.Kind, signature string) error {
	if err := f.call("Consume " + string(kind)); err != nil {
		return err
	}
	return f.Grants.Consume(ctx, kind, signature)
}

func (f *failingGrants) Delete(ctx context.Context, kind store.Kind, signature string) error {
	if err := f.call("Delete " + string(kind)); err != nil {
		return err
	}
	return f.Grants.Delete(ctx, kind, signature)
}

func (f *failingGrants) Revoke(ctx context.Context, kind store.Kind, requestID string) error {
	if err := f.call("Revoke " + string(kind)); err != nil {
		return err
	}
	return f.Grants.Revoke(ctx, kind, requestID)
}

// failingTxGrants is a failingGrants over a store.Transactor.
type failingTxGrants struct {
	*failingGrants
	tx store.Transactor
}

func (f failingTxGrants) BeginTx(ctx context.Context) (context.Context, error) {
	if err := f.call("BeginTx"); err != nil {
		return ctx, err
	}
	return f.tx.BeginTx(ctx)
}

func (f failingTxGrants) Commit(ctx context.Context) error {
	if err := f.call("Commit"); err != nil {
		// The transaction stays open: the caller rolls it back.
		return err
	}
	return f.tx.Commit(ctx)
}

func (f failingTxGrants) Rollback(ctx context.Context) error { return f.tx.Rollback(ctx) }

var (
	_ store.Grants     = (*failingGrants)(nil)
	_ store.Transactor = failingTxGrants{}
)

// wrapFailing returns the failing wrapper of g, a Transactor when g is one.
func wrapFailing(g store.Grants) (*failingGrants, store.Grants) {
	f := &failingGrants{Grants: g}
	if tx, ok := g.(store.Transactor); ok {
		return f, failingTxGrants{f, tx}
	}
	return f, f
}

func TestStoreFailsMidExchange(t *testing.T) {
	for _, backend := range []struct {
		name string
		// start returns a server whose grant store is wrapped by fg, and
		// the store itself, to look records up behind the wrapper.
		start func(t *testing.T) (*testServer, *failingGrants, store.Grants)
		// atomic: the store is a Transactor, so a failed exchange leaves
		// nothing behind. Without transactions, a failure after the code
		// (or refresh token) was consumed burns it: see store.Transactor.
		atomic bool
	}{
		{"sqlite", func(t *testing.T) (*testServer, *failingGrants, store.Grants) {
			st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "pixie.db"), sqlstore.Config{KeySecret: testKeySecret})
			if err != nil {
				t.Fatalf("sqlite.Open: %v", err)
			}
			t.Cleanup(func() { _ = st.Close() })
			seedStore(t, st.Store)
			fg, grants := wrapFailing(st.Store)
			logger, _ := testLogger(t, "server")
			return startSQLServer(t, st.Store, grants, logger), fg, st.Store
		}, true},
		{"postgres", func(t *testing.T) (*testServer, *failingGrants, store.Grants) {
			st, err := postgres.Open(t.Context(), pgtest.FreshSchema(t), sqlstore.Config{KeySecret: testKeySecret})
			if err != nil {
				t.Fatalf("postgres.Open: %v", err)
			}
			t.Cleanup(func() { _ = st.Close() })
			seedStore(t, st.Store)
			fg, grants := wrapFailing(st.Store)
			logger, _ := testLogger(t, "server")
			return startSQLServer(t, st.Store, grants, logger), fg, st.Store
		}, true},
		{"memory", func(t *testing.T) (*testServer, *failingGrants, store.Grants) {
			var fg *failingGrants
			logger, _ := testLogger(t, "server")
			ts := newTestServer(t, serverOptions{Logger: logger, Grants: func(g store.Grants) store.Grants {
				var w store.Grants
				fg, w = wrapFailing(g)
				return w
			}})
			var st *memory.Store = ts.Store
			return ts, fg, st
		}, false},
	} {
		t.Run(backend.name, func(t *testing.T) {
			ts, fg, st := backend.start(t)
			conf := ts.oauth2Config(nativeClient, ts.loopbackRedirect(), allScopes)
			b := newBrowser(t, ts)

			// How many store calls a code exchange and a refresh make.
			ar := newAuthRequest(conf)
			code := b.code(t, ar)
			fg.arm(0)
			tok, err := ar.exchange(t.Context(), code)
			if err != nil {
				t.Fatalf("exchange: %v", err)
			}
			exchangeCalls, _ := fg.log()
			fg.arm(0)
			if _, err := refresh(t.Context(), conf, tok.RefreshToken); err != nil {
				t.Fatalf("refresh: %v", err)
			}
			refreshCalls, _ := fg.log()
			t.Logf("a code exchange makes %d grant store calls: %q", len(exchangeCalls), exchangeCalls)
			t.Logf("a refresh makes %d grant store calls: %q", len(refreshCalls), refreshCalls)

			// burned reports whether a call before the nth consumed the
			// code or refresh token: without transactions, the failure
			// cannot give it back.
			burned := func(calls []string, n int) bool {
				return !backend.atomic && slices.ContainsFunc(calls[:n-1], func(c string) bool {
					return c == "Consume "+string(store.KindAuthorizeCode) || c == "Consume "+string(store.KindRefreshToken)
				})
			}
			// leftovers checks that no record the failed request wrote is
			// still there.
			leftovers := func(t *testing.T, created []store.Grant) {
				t.Helper()
				for _, g := range created {
					got, err := st.Grant(t.Context(), g.Kind, g.Signature)
					if !errors.Is(err, store.ErrNotFound) {
						t.Errorf("%s record written by the failed request: got %+v, %v after it, want it rolled back", g.Kind, got != nil, err)
					}
				}
			}

			// The authorization endpoint writes the code and its PKCE
			// and OIDC records (in one transaction where it can).
			fg.arm(0)
			b.code(t, newAuthRequest(conf))
			authorizeCalls, _ := fg.log()
			t.Logf("issuing a code makes %d grant store calls: %q", len(authorizeCalls), authorizeCalls)
			for n := 1; n <= len(authorizeCalls); n++ {
				t.Run(fmt.Sprintf("authorize fails at call %d (%s)", n, authorizeCalls[n-1]), func(t *testing.T) {
					ar := newAuthRequest(conf)
					fg.arm(n)
					p := b.authorize(t, ar.URL)
					fg.disarm()
					_, created := fg.log()
					if p.Callback == nil || p.Callback.Query().Get("error") != "server_error" || p.Callback.Query().Get("code") != "" {
						t.Errorf("authorize with a failing store: got status %d, Location %q, want a redirect with error=server_error and no code", p.Status, p.Location)
					}
					if backend.atomic {
						leftovers(t, created)
					}
					if _, err := ar.exchange(t.Context(), b.code(t, ar)); err != nil {
						t.Errorf("authorize and exchange again after the failure: %v", err)
					}
				})
			}

			for n := 1; n <= len(exchangeCalls); n++ {
				t.Run(fmt.Sprintf("exchange fails at call %d (%s)", n, exchangeCalls[n-1]), func(t *testing.T) {
					ar := newAuthRequest(conf)
					code := b.code(t, ar)
					fg.arm(n)
					_, err := ar.exchange(t.Context(), code)
					fg.disarm()
					calls, created := fg.log()
					wantUnavailable(t, "exchange with a failing store", err)
					if backend.atomic {
						leftovers(t, created)
					}
					if burned(calls, n) {
						t.Logf("without transactions the code is burned by the failure after %q", calls[:n-1])
						return
					}
					tok, err := ar.exchange(t.Context(), code)
					if err != nil {
						t.Fatalf("exchange again after the failure: got %v, want tokens: the failed exchange burned the code", err)
					}
					if res := ts.userinfo(t, "Bearer "+tok.AccessToken); res.Status != http.StatusOK {
						t.Errorf("userinfo with the retried exchange's access token: got %d, want 200", res.Status)
					}
					_, err = ar.exchange(t.Context(), code)
					wantRetrieveError(t, err, http.StatusBadRequest, "invalid_grant")
				})
			}

			for n := 1; n <= len(refreshCalls); n++ {
				t.Run(fmt.Sprintf("refresh fails at call %d (%s)", n, refreshCalls[n-1]), func(t *testing.T) {
					_, tok := b.tokens(t, conf)
					fg.arm(n)
					_, err := refresh(t.Context(), conf, tok.RefreshToken)
					fg.disarm()
					calls, created := fg.log()
					wantUnavailable(t, "refresh with a failing store", err)
					if backend.atomic {
						leftovers(t, created)
					}
					if burned(calls, n) {
						t.Logf("without transactions the refresh token is burned by the failure after %q", calls[:n-1])
						return
					}
					tok2, err := refresh(t.Context(), conf, tok.RefreshToken)
					if err != nil {
						t.Fatalf("refresh again after the failure: got %v, want new tokens: the failed refresh burned the refresh token", err)
					}
					if res := ts.userinfo(t, "Bearer "+tok2.AccessToken); res.Status != http.StatusOK {
						t.Errorf("userinfo with the retried refresh's access token: got %d, want 200", res.Status)
					}
					if _, err := refresh(t.Context(), conf, tok2.RefreshToken); err != nil {
						t.Errorf("refresh with the retried refresh's refresh token: %v", err)
					}
					_, err = refresh(t.Context(), conf, tok.RefreshToken)
					wantRetrieveError(t, err, http.StatusBadRequest, "invalid_grant")
				})
			}
		})
	}
}
