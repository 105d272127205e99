package postgres_test

import (
	"database/sql"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/pixieauth/pixie/internal/pgtest"
	"github.com/pixieauth/pixie/store/sqlstore"
	"github.com/pixieauth/pixie/store/sqlstore/internal/sqlstoretest"
	"github.com/pixieauth/pixie/store/sqlstore/postgres"
	"github.com/pixieauth/pixie/store/storetest"
)

// open opens a Store on dsn, closed when t ends. Its pool is limited, so
// that the tests stay well below the server's max_connections.
func open(t testing.TB, dsn string, cfg sqlstore.Config) (*postgres.Store, error) {
	s, err := postgres.Open(t.Context(), dsn, cfg)
	if err != nil {
		return nil, err
	}
	s.DB().SetMaxOpenConns(16)
	t.Cleanup(func() { _ = s.Close() }) // a test may have closed the pool already
	return s, nil
}

// backend is a fresh schema per test.
var backend = sqlstoretest.Backend{
	Dialect: sqlstore.Postgres,
	NewDatabase: func(t testing.TB) sqlstoretest.Opener {
		dsn := pgtest.FreshSchema(t)
		return func(cfg sqlstore.Config) (*sqlstore.Store, *sql.DB, error) {
			s, err := open(t, dsn, cfg)
			if err != nil {
				return nil, nil, err
			}
			return s.Store, s.DB(), nil
		}
	},
}

func TestConformance(t *testing.T) {
	pgtest.DSN(t)
	storetest.Run(t, func(t *testing.T) storetest.Stores {
		s, err := open(t, pgtest.FreshSchema(t), sqlstore.Config{KeySecret: sqlstoretest.Secret})
		if err != nil {
			t.Fatalf("Open: got error %v, want nil", err)
		}
		return storetest.Stores{
			Clients:   s,
			Users:     s,
			Grants:    s,
			Keys:      s,
			Consents:  s,
			Throttle:  s,
			Sessions:  s,
			AddClient: s.AddClient,
			AddUser:   s.AddUser,
		}
	})
}

func TestSQLStore(t *testing.T) {
	pgtest.DSN(t)
	sqlstoretest.Run(t, backend)
}

// TestOpenErrors checks that a bad DSN fails without echoing its password.
func TestOpenErrors(t *testing.T) {
	_, err := postgres.Open(t.Context(), "postgres://u:hunter2@127.0.0.1:notaport/db", sqlstore.Config{KeySecret: sqlstoretest.Secret})
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("got error %v, want one without the password", err)
	}
	_, err = postgres.Open(t.Context(), "postgres://127.0.0.1/db", sqlstore.Config{Dialect: sqlstore.SQLite, KeySecret: sqlstoretest.Secret})
	if err == nil || !strings.Contains(err.Error(), "Dialect") {
		t.Errorf("got error %v, want one naming Dialect", err)
	}
}

func BenchmarkStore(b *testing.B) {
	pgtest.DSN(b)
	sqlstoretest.Bench(b, backend)
}

// TestPoolKeepsConnections: the pool Open makes keeps its connections for
// reuse. Sixteen concurrent calls, twice, open no more connections the
// second time than the first (database/sql's default of two idle
// connections closed all but two after each burst, and every request past
// them paid for a new server process), and never more than the pool's
// limit.
func TestPoolKeepsConnections(t *testing.T) {
	s, err := postgres.Open(t.Context(), pgtest.FreshSchema(t), sqlstore.Config{KeySecret: sqlstoretest.Secret})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	limit := s.DB().Stats().MaxOpenConnections
	if want := max(8, 4*runtime.GOMAXPROCS(0)); limit != want {
		t.Errorf("MaxOpenConnections %d, want %d", limit, want)
	}
	burst := func() {
		var wg sync.WaitGroup
		for range 16 {
			wg.Go(func() {
				if _, err := s.DB().ExecContext(t.Context(), "SELECT pg_sleep(0.05)"); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
	}
	burst()
	first := s.DB().Stats()
	burst()
	second := s.DB().Stats()
	if first.OpenConnections > limit || second.OpenConnections > limit {
		t.Errorf("open connections %d and %d, want at most %d", first.OpenConnections, second.OpenConnections, limit)
	}
	if first.Idle < min(16, limit) || second.MaxIdleClosed != first.MaxIdleClosed {
		t.Errorf("after a burst: %d idle (want %d), %d then %d closed for the idle limit (want none more)",
			first.Idle, min(16, limit), first.MaxIdleClosed, second.MaxIdleClosed)
	}
}
