package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/pixieauth/pixie/store"
	"github.com/pixieauth/pixie/store/sqlstore"
)

// Compile-time checks that *Store implements every storage interface and
// every optional capability.
var (
	_ store.Clients        = (*Store)(nil)
	_ store.Users          = (*Store)(nil)
	_ store.Grants         = (*Store)(nil)
	_ store.Keys           = (*Store)(nil)
	_ store.Consents       = (*Store)(nil)
	_ store.Throttle       = (*Store)(nil)
	_ store.ExpiredDeleter = (*Store)(nil)
	_ store.Transactor     = (*Store)(nil)
	_ store.Batcher        = (*Store)(nil)
	_ store.Pinger         = (*Store)(nil)
)

// Store is a [sqlstore.Store] on a PostgreSQL connection pool that it owns:
// [Store.Close] closes the pool too. Every method of the embedded
// *sqlstore.Store is available on it. It is safe for concurrent use.
type Store struct {
	*sqlstore.Store
	db *sql.DB
}

// Open connects to the PostgreSQL database that dsn names, applies the
// schema migrations and returns a Store on it. dsn is a pgx connection
// string, a URL (postgres://user:password@host:5432/db?sslmode=verify-full)
// or keyword/value pairs (host=… dbname=…); a search_path parameter in it
// selects the schema pixie's tables live in. cfg.Dialect may be left empty;
// it is set to [sqlstore.Postgres]. The other fields of cfg are as
// [sqlstore.New] documents them: KeySecret is required.
//
// The pool holds at most 4 × GOMAXPROCS connections (at least 8), each
// kept open while idle for up to 5 minutes (database/sql would keep two, and
// open and close one per request past them under load): change that
// through [Store.DB] to fit the server's max_connections and the number of
// replicas. Every replica of a deployment opens its own Store on the same
// database; they may start at the same time.
func Open(ctx context.Context, dsn string, cfg sqlstore.Config) (*Store, error) {
	switch cfg.Dialect {
	case "":
		cfg.Dialect = sqlstore.Postgres
	case sqlstore.Postgres:
	default:
		return nil, fmt.Errorf("postgres: Config.Dialect is %q, want sqlstore.Postgres or empty", cfg.Dialect)
	}
	// pgx redacts the password from the errors of ParseConfig.
	pgcfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	db := stdlib.OpenDB(*pgcfg)
	// database/sql keeps two idle connections by default: under load every
	// request past the second opens a connection (a new server process) and
	// closes it after.
	n := max(8, 4*runtime.GOMAXPROCS(0))
	db.SetMaxOpenConns(n)
	db.SetMaxIdleConns(n)
	db.SetConnMaxIdleTime(5 * time.Minute)
	s, err := sqlstore.New(ctx, db, cfg)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("postgres: open: %w", err), db.Close())
	}
	return &Store{Store: s, db: db}, nil
}

// DB returns the connection pool the Store uses, e.g. to set its limits.
// Don't close it: call [Store.Close].
func (s *Store) DB() *sql.DB { return s.db }

// Close releases the prepared statements and closes the pool.
func (s *Store) Close() error {
	return errors.Join(s.Store.Close(), s.db.Close())
}
