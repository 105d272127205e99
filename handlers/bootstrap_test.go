package handlers_test

import (
	"fmt"
	"log/slog"
	"maps"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"

	"github.com/pixieauth/pixie/handlers"
	"github.com/pixieauth/pixie/internal/pgtest"
	"github.com/pixieauth/pixie/internal/testbrowser"
	"github.com/pixieauth/pixie/provider"
	"github.com/pixieauth/pixie/store/sqlstore"
	"github.com/pixieauth/pixie/store/sqlstore/postgres"
	"github.com/pixieauth/pixie/store/sqlstore/sqlite"
)

// bootstrapReplicas is how many replicas start together on an empty store.
const bootstrapReplicas = 4

// TestBootstrapTogetherSQLite starts several replicas at the same instant
// on one new SQLite file (finding 11).
func TestBootstrapTogetherSQLite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pixie.db")
	testBootstrapTogether(t, func() *sqlstore.Store {
		st, err := sqlite.Open(t.Context(), path, sqlstore.Config{KeySecret: testKeySecret})
		if err != nil {
			t.Fatalf("sqlite.Open: %v", err)
		}
		t.Cleanup(func() { _ = st.Close() })
		return st.Store
	})
}

// TestBootstrapTogetherPostgres starts several replicas at the same instant
// on one empty PostgreSQL schema (finding 11).
func TestBootstrapTogetherPostgres(t *testing.T) {
	dsn := pgtest.FreshSchema(t)
	testBootstrapTogether(t, func() *sqlstore.Store {
		st, err := postgres.Open(t.Context(), dsn, sqlstore.Config{KeySecret: testKeySecret})
		if err != nil {
			t.Fatalf("postgres.Open: %v", err)
		}
		st.DB().SetMaxOpenConns(4)
		t.Cleanup(func() { _ = st.Close() })
		return st.Store
	})
}

// testBootstrapTogether checks that replicas starting together on an empty
// key store converge on one token secret and one key per algorithm: each
// publishes the same JWKS, a code from any replica is redeemed at another,
// a refresh token at a third, and the login cookie one set opens a fourth.
func testBootstrapTogether(t *testing.T, open func() *sqlstore.Store) {
	stores := make([]*sqlstore.Store, bootstrapReplicas)
	for i := range stores {
		stores[i] = open()
	}
	seedStore(t, stores[0])

	replicas := make([]*replica, bootstrapReplicas)
	servers := make([]*handlers.Server, bootstrapReplicas)
	errs := make([]error, bootstrapReplicas)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, st := range stores {
		wg.Go(func() {
			<-start
			p, err := provider.New(t.Context(), provider.Config{
				Issuer:                  replicaIssuer,
				InsecureAllowHTTPIssuer: true,
				Clients:                 st, Users: st, Grants: st, Keys: st,
				CleanupInterval: -1,
				Logger:          slog.New(slog.DiscardHandler),
			})
			if err != nil {
				errs[i] = fmt.Errorf("provider.New: %w", err)
				return
			}
			// The login sessions in the shared store too, as replicas need.
			h, err := handlers.New(p, handlers.Config{Sessions: st})
			if err != nil {
				errs[i] = fmt.Errorf("handlers.New: %w", err)
				return
			}
			replicas[i], servers[i] = &replica{name: fmt.Sprint(i), p: p}, h
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("replica %d: %v", i, err)
		}
	}
	for i, r := range replicas {
		srv := httptest.NewServer(servers[i])
		t.Cleanup(srv.Close)
		r.url = srv.URL
	}

	first := replicas[0].jwks(t)
	if len(first) != 2 {
		t.Errorf("replica 0 publishes %v, want one RS256 and one ES256 key", first)
	}
	for _, r := range replicas[1:] {
		if got := r.jwks(t); !maps.Equal(got, first) {
			t.Errorf("replica %s publishes %v, replica 0 %v: want the same keys", r.name, got, first)
		}
	}
	for i, r := range replicas {
		next := func(k int) *replica { return replicas[(i+k)%len(replicas)] }
		browser := testbrowser.NewClient()
		ar, code := r.authorize(t, browser, alicePassword)
		tok := next(1).redeem(t, ar, code)
		if _, err := next(2).refresh(t.Context(), tok.RefreshToken); err != nil {
			t.Errorf("refresh on replica %s of a token from replica %s: %v", next(2).name, next(1).name, err)
		}
		// The cookie replica i set opens replica i+3: were the login form
		// shown, the wrong password would be refused.
		next(3).authorize(t, browser, "not alice's password")
	}
}
