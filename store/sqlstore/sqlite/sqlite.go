package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"time"

	"github.com/pixieauth/pixie/store"
	"github.com/pixieauth/pixie/store/sqlstore"

	modernc "modernc.org/sqlite" // also registers the "sqlite" database/sql driver
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

// dsnParams are the settings of the connection that writes (the driver
// applies busy_timeout first, the other pragmas in alphabetical order):
//   - busy_timeout(10000): a connection that finds the database locked (by
//     another process) waits up to 10 s instead of failing at once; first,
//     so that it covers the journal_mode switch, which needs the lock;
//   - journal_mode(WAL): readers do not block the writer nor the writer them;
//   - journal_size_limit(16777216): when the WAL starts over after a
//     checkpoint, the file is truncated to 16 MiB if it grew larger, so that
//     a burst of writes, or readers that kept a checkpoint from finishing,
//     do not leave a large file behind (SQLite checkpoints every 1000
//     pages written by default; Open's writer does so at 4000, see
//     openDSNParams);
//   - foreign_keys(1): enforce foreign keys (off by default in SQLite);
//   - synchronous(NORMAL): the usual setting with WAL; a commit is in the
//     WAL file when it returns, so killing the process loses nothing; a
//     power loss may lose the last transactions, never corrupt the file;
//   - _txlock=immediate: transactions take the write lock at BEGIN, so a
//     transaction never fails with SQLITE_BUSY when upgrading from reading
//     to writing.
const dsnParams = "_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=journal_size_limit(16777216)" +
	"&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)&_txlock=immediate"

// openDSNParams are added to [DSN]'s by Open, whose checkpointer (see
// checkpointEvery) does the checkpoints: wal_autocheckpoint(4000), the
// writer checkpoints itself only once the WAL holds 4000 pages (16 MiB, the
// journal_size_limit), a fallback. A background checkpoint lets the WAL
// start over only if no write came in while it ran, which under a steady
// stream of writes is seldom: the writer's checkpoint then finds most pages
// copied, but still makes every write queued behind it wait for its two
// fsyncs, now once every 4000 pages instead of 1000.
const openDSNParams = "&_pragma=wal_autocheckpoint(4000)"

// checkpointDSNParams are the settings of the checkpointer's connection
// (see checkpointEvery): busy_timeout(10000), as for the others.
const checkpointDSNParams = "_pragma=busy_timeout(10000)"

// readDSNParams are the settings of the read-only connections:
//   - busy_timeout(10000), as for the writer: a reader of a WAL database is
//     only ever blocked briefly (while another connection recovers the WAL
//     after a crash), and waits rather than fails;
//   - query_only(1): a statement that would change the database fails, so a
//     write routed here by mistake is an error, never a second writer.
const readDSNParams = "_pragma=busy_timeout(10000)&_pragma=query_only(1)"

// DSN returns the modernc.org/sqlite data source name of the connection
// that writes, for a program that opens the *sql.DB itself and passes it to
// [sqlstore.New]. Such a program should call db.SetMaxOpenConns(1), as Open
// does, and may open a pool with [ReadDSN] for [sqlstore.Config.ReadDB].
func DSN(path string) string {
	return path + "?" + dsnParams
}

// ReadDSN returns the modernc.org/sqlite data source name of the read-only
// connections Open puts in the pool it passes as [sqlstore.Config.ReadDB],
// for a program that opens its *sql.DB pools itself. The database must have
// been opened with [DSN] first: that switches it to WAL mode, in which these
// readers run alongside the writer.
func ReadDSN(path string) string {
	return path + "?" + readDSNParams
}

// minReadConns is the least number of read-only connections Open allows;
// it allows GOMAXPROCS if that is more. More readers than CPUs buy no reads
// (a read hardly waits for I/O: the file is in the OS cache) and take CPU
// from the single writer, which every write queues for: measured with
// BenchmarkReadsWhileWriting on 2 CPUs, 4 readers gave no more reads per
// second than 2 and about 20% fewer writes.
const minReadConns = 2

// Store is a [sqlstore.Store] on an SQLite database file that it owns:
// [Store.Close] closes the file too. Every method of the embedded
// *sqlstore.Store is available on it. It is safe for concurrent use.
type Store struct {
	*sqlstore.Store
	db   *sql.DB // the writer: one connection
	read *sql.DB // the readers: query_only connections

	ck            *sql.DB       // the checkpointer's connection (see checkpointEvery)
	stop, stopped chan struct{} // Close stops the checkpointer; it says it has
}

// Open opens (creating it if need be) the SQLite database file at path,
// applies the schema migrations and returns a Store on it. cfg.Dialect may
// be left empty; it is set to [sqlstore.SQLite]. cfg.ReadDB must be nil:
// Open opens the read pool itself. The other fields of cfg are as
// [sqlstore.New] documents them: KeySecret is required.
//
// The Store has two connection pools on the file. Writes, and every
// statement of a transaction begun with [sqlstore.Store.BeginTx], go to a
// single connection (db.SetMaxOpenConns(1), see [Store.DB]): SQLite allows
// one writer at a time anyway, and with one connection database/sql queues
// writers instead of SQLite failing them with SQLITE_BUSY. Reads made
// outside a transaction go to a pool of read-only connections (GOMAXPROCS,
// at least 2; see [Store.ReadDB]): in WAL mode they run while the writer
// writes, and each sees every transaction committed before it began, so a
// read after a write has returned, from any goroutine, sees that write. A
// third connection, the checkpointer's, copies the WAL into the database
// file in the background every 50 ms, until [Store.Close].
//
// While a transaction is open it holds the writing connection: a write made
// meanwhile with a context that does not carry the transaction waits for it
// to end, which from the goroutine that holds the transaction is a deadlock
// until the context's deadline. Make every call of the unit of work with
// the transaction's context. Several processes may open the same file; their
// writers then wait for each other through SQLite's locks and the busy
// timeout.
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
	if cfg.ReadDB != nil {
		return nil, errors.New("sqlite: Config.ReadDB must be nil: Open opens the read pool itself")
	}
	readConn, err := modernc.NewConnector(ReadDSN(path))
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	writeConn, err := modernc.NewConnector(DSN(path) + openDSNParams)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	read := sql.OpenDB(readConn)
	n := max(minReadConns, runtime.GOMAXPROCS(0))
	read.SetMaxOpenConns(n)
	read.SetMaxIdleConns(n) // keep them, with their prepared statements
	db := sql.OpenDB(closesToo{writeConn, read})
	db.SetMaxOpenConns(1) // the single writer; see the doc comment
	db.SetMaxIdleConns(1)
	cfg.ReadDB = read
	s, err := sqlstore.New(ctx, db, cfg)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("sqlite: open %s: %w", path, err), db.Close())
	}
	ckConn, err := modernc.NewConnector(path + "?" + checkpointDSNParams)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("sqlite: open %s: %w", path, err), s.Close(), db.Close())
	}
	ck := sql.OpenDB(ckConn)
	ck.SetMaxOpenConns(1)
	st := &Store{Store: s, db: db, read: read, ck: ck, stop: make(chan struct{}), stopped: make(chan struct{})}
	go st.checkpoints()
	return st, nil
}

// checkpointEvery is how often a Store's checkpointer, a goroutine with a
// connection of its own, copies the pages of the WAL into the database file
// (PRAGMA wal_checkpoint(PASSIVE)), so that the WAL can start over. A
// checkpoint reads and writes pages and flushes both files to disk: on the
// writer, where SQLite runs it by default (every 1000 pages), every write
// queued behind it waited for those flushes, about 0.1 ms a flow on the
// machine of issue 9. A PASSIVE checkpoint runs alongside the writer and
// the readers and takes no lock they wait for. The writer's own checkpoint
// at 4000 pages (openDSNParams) remains, for the WAL to start over.
const checkpointEvery = 50 * time.Millisecond

// checkpoints runs a PASSIVE checkpoint every checkpointEvery until Close.
// A failed checkpoint is left to the next one, or to the writer's.
func (s *Store) checkpoints() {
	defer close(s.stopped)
	t := time.NewTicker(checkpointEvery)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			_, _ = s.ck.Exec("PRAGMA wal_checkpoint(PASSIVE)")
		}
	}
}

// closesToo is the writer pool's connector: closing the writer pool closes
// the read pool too (database/sql calls the Close method of a connector
// that has one), so that closing [Store.DB] takes the whole database away,
// as a test of an outage expects, rather than leaving reads working.
type closesToo struct {
	driver.Connector
	read *sql.DB
}

// Close closes the read pool.
func (c closesToo) Close() error { return c.read.Close() }

// DB returns the Store's writing pool (one connection), e.g. for a health
// check of one's own or to inspect the tables in tests. Don't close it: call
// [Store.Close]. (Closing it closes [Store.ReadDB] too.)
func (s *Store) DB() *sql.DB { return s.db }

// ReadDB returns the Store's pool of read-only connections, which serves
// the reads made outside a transaction, e.g. for its [sql.DB.Stats]. Don't
// close it: call [Store.Close].
func (s *Store) ReadDB() *sql.DB { return s.read }

// Close stops the checkpointer, releases the prepared statements and closes
// the pools.
func (s *Store) Close() error {
	close(s.stop)
	<-s.stopped
	return errors.Join(s.Store.Close(), s.db.Close(), s.read.Close(), s.ck.Close())
}
