package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/pixieauth/pixie/store"
	"github.com/pixieauth/pixie/store/sqlstore"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
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

// dsnParams are the connection settings Open uses, applied in this order:
//   - busy_timeout(10000): a connection that finds the database locked (by
//     another process) waits up to 10 s instead of failing at once; first,
//     so that it covers the journal_mode switch, which needs the lock;
//   - journal_mode(WAL): readers do not block the writer nor the writer them;
//   - foreign_keys(1): enforce foreign keys (off by default in SQLite);
//   - synchronous(NORMAL): the usual setting with WAL; a power loss may lose
//     the last transactions, never corrupt the file;
//   - _txlock=immediate: transactions take the write lock at BEGIN, so a
//     transaction never fails with SQLITE_BUSY when upgrading from reading
//     to writing.
const dsnParams = "_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)" +
	"&_pragma=synchronous(NORMAL)&_txlock=immediate"

// DSN returns the modernc.org/sqlite data source name Open uses for the
// database file at path, for a program that opens the *sql.DB itself and
// passes it to [sqlstore.New]. Such a program should also call
// db.SetMaxOpenConns(1), as Open does.
func DSN(path string) string {
	return path + "?" + dsnParams
}

// Store is a [sqlstore.Store] on an SQLite database file that it owns:
// [Store.Close] closes the file too. Every method of the embedded
// *sqlstore.Store is available on it. It is safe for concurrent use.
type Store struct {
	*sqlstore.Store
	db *sql.DB
}

// Open opens (creating it if need be) the SQLite database file at path,
// applies the schema migrations and returns a Store on it. cfg.Dialect may
// be left empty; it is set to [sqlstore.SQLite]. The other fields of cfg are
// as [sqlstore.New] documents them: KeySecret is required.
//
// The Store uses a single connection (db.SetMaxOpenConns(1)): SQLite allows
// one writer at a time anyway, and with one connection database/sql queues
// callers instead of SQLite failing them with SQLITE_BUSY. Reads queue
// behind writes too, which costs little at the speed of an embedded
// database; a deployment that outgrows it wants PostgreSQL. While a
// transaction begun with [sqlstore.Store.BeginTx] is open it holds that
// connection: make every call of the unit of work with the transaction's
// context. Several processes may open the same file; they then wait for each other
// through SQLite's locks and the busy timeout.
func Open(ctx context.Context, path string, cfg sqlstore.Config) (*Store, error) {
	if path == "" || strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("sqlite: database path %q must be non-empty and contain no ? or #", path)
	}
	switch cfg.Dialect {
	case "":
		cfg.Dialect = sqlstore.SQLite
	case sqlstore.SQLite:
	default:
		return nil, fmt.Errorf("sqlite: Config.Dialect is %q, want sqlstore.SQLite or empty", cfg.Dialect)
	}
	db, err := sql.Open("sqlite", DSN(path))
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	db.SetMaxOpenConns(1) // the single writer; see the doc comment
	s, err := sqlstore.New(ctx, db, cfg)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("sqlite: open %s: %w", path, err), db.Close())
	}
	return &Store{Store: s, db: db}, nil
}

// DB returns the database the Store uses, e.g. for a health check of one's
// own or to inspect the tables in tests. Don't close it: call [Store.Close].
func (s *Store) DB() *sql.DB { return s.db }

// Close releases the prepared statements and closes the database.
func (s *Store) Close() error {
	return errors.Join(s.Store.Close(), s.db.Close())
}
