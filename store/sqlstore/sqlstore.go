package sqlstore

import (
	"context"
	"crypto/cipher"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/pixieauth/pixie/store"
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
	_ store.Sessions       = (*Store)(nil)
	_ store.ExpiredDeleter = (*Store)(nil)
	_ store.Transactor     = (*Store)(nil)
	_ store.Pinger         = (*Store)(nil)
)

// Dialect names the SQL database behind the *sql.DB given to [New]. It picks
// the schema, the placeholder style and the migration lock.
type Dialect string

// The supported dialects.
const (
	// SQLite is SQLite 3.37 or later (STRICT tables), e.g. through
	// modernc.org/sqlite as package [github.com/pixieauth/pixie/store/sqlstore/sqlite]
	// opens it.
	SQLite Dialect = "sqlite"
	// Postgres is PostgreSQL 12 or later, e.g. through pgx's database/sql
	// driver as package [github.com/pixieauth/pixie/store/sqlstore/postgres]
	// opens it.
	Postgres Dialect = "postgres"
)

// MinKeySecretLen is the least length in bytes of [Config.KeySecret].
const MinKeySecretLen = 32

// maxPrefixLen keeps every table and index name within PostgreSQL's 63-byte
// identifier limit.
const maxPrefixLen = 40

// validPrefix is what [Config.TablePrefix] may be: lower case, so that
// PostgreSQL's folding of unquoted names cannot surprise anyone.
var validPrefix = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)

// Config configures [New]. Dialect and KeySecret are required.
type Config struct {
	// Dialect is the database behind the *sql.DB: [SQLite] or [Postgres].
	// Required; there is no default.
	Dialect Dialect

	// KeySecret is the key-encryption secret: signing keys are stored
	// encrypted with AES-256-GCM under a key derived from it with
	// HKDF-SHA256. It must be at least [MinKeySecretLen] (32) random bytes,
	// the same on every replica, and kept out of the database (an
	// environment variable or a secret manager). Required: [New] refuses to
	// start without it. A store opened with another secret cannot read the
	// keys: [Store.Keys] fails with [ErrDecrypt].
	KeySecret []byte

	// TablePrefix is put in front of the name of every table and index
	// pixie creates, including the migrations table, so that pixie can
	// share a database (or PostgreSQL schema) with an application whose own
	// tables are called users or keys. Lower-case letters, digits and
	// underscores, at most 40 bytes, e.g. "pixie_". Default: "" (tables
	// named clients, users, grants, keys, consents, throttle, sessions and
	// pixie_migrations).
	TablePrefix string

	// ReadDB, if set, is a second connection pool on the same database, for
	// the statements that only read (those that start with SELECT) when ctx
	// carries no transaction; writes, and every statement of a transaction
	// begun with [Store.BeginTx], go to the *sql.DB given to [New]. It must
	// see every write committed through that *sql.DB as soon as the commit
	// returns: another pool on the same database, never an asynchronous
	// replica. Package sqlite sets it to a pool of read-only connections, so
	// that reads run alongside SQLite's single writer instead of queuing
	// behind it. The caller owns it: [Store.Close] does not close it.
	// Default: nil, every statement goes to the *sql.DB given to New.
	ReadDB *sql.DB
}

// LogValue redacts the key-encryption secret, so that a Config can be logged.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("dialect", string(c.Dialect)),
		slog.Int("key_secret_len", len(c.KeySecret)),
		slog.String("table_prefix", c.TablePrefix),
		slog.Bool("read_db", c.ReadDB != nil),
	)
}

// validate reports the first bad field of c.
func (c Config) validate() error {
	switch c.Dialect {
	case SQLite, Postgres:
	case "":
		return errors.New("sqlstore: Config.Dialect is required (sqlstore.SQLite or sqlstore.Postgres)")
	default:
		return fmt.Errorf("sqlstore: Config.Dialect %q is not sqlstore.SQLite or sqlstore.Postgres", c.Dialect)
	}
	if len(c.KeySecret) < MinKeySecretLen {
		return fmt.Errorf("sqlstore: Config.KeySecret must be at least %d bytes, got %d", MinKeySecretLen, len(c.KeySecret))
	}
	if c.TablePrefix != "" && (!validPrefix.MatchString(c.TablePrefix) || len(c.TablePrefix) > maxPrefixLen) {
		return fmt.Errorf("sqlstore: Config.TablePrefix %q must be at most %d lower-case letters, digits and underscores, not starting with a digit",
			c.TablePrefix, maxPrefixLen)
	}
	return nil
}

// Store keeps clients, users, grant records, signing keys, consents,
// throttle counts and login sessions in an SQL database. Create one with [New]; the zero value is not usable. A Store is
// safe for concurrent use.
//
// Every method takes its statement from a set prepared by [New] and runs it
// inside the transaction carried by ctx, if [Store.BeginTx] made ctx, or
// else, if it only reads, on [Config.ReadDB] when that is set.
type Store struct {
	db      *sql.DB
	dialect Dialect
	aead    cipher.AEAD // encrypts signing keys at rest
	stmts   statements

	// reads maps each statement of stmts that only reads to its preparation
	// on Config.ReadDB; nil without a ReadDB.
	reads  map[*sql.Stmt]*sql.Stmt
	readDB *sql.DB // Config.ReadDB, for Ping

	group groupCommit // the writes waiting for SQLite's writer (group.go)

	dummyOnce sync.Once
	dummyHash string
	dummyErr  error
}

// New returns a Store over db. It checks cfg, applies the schema migrations
// that db lacks (see the package documentation) and prepares every
// statement. db stays the caller's: [Store.Close] does not close it.
//
// Several processes may call New on one database at once: the migrations
// run under a lock (a transaction-scoped advisory lock on PostgreSQL, BEGIN
// IMMEDIATE on SQLite), so exactly one applies them and the others find
// them applied.
func New(ctx context.Context, db *sql.DB, cfg Config) (*Store, error) {
	if db == nil {
		return nil, errors.New("sqlstore: nil *sql.DB")
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	aead, err := newKeyCipher(cfg.KeySecret)
	if err != nil {
		return nil, err
	}
	s := &Store{db: db, dialect: cfg.Dialect, aead: aead, readDB: cfg.ReadDB}
	if err := migrate(ctx, db, cfg.Dialect, cfg.TablePrefix); err != nil {
		return nil, err
	}
	if err := s.stmts.prepare(ctx, db, cfg.Dialect, cfg.TablePrefix); err != nil {
		return nil, err
	}
	if cfg.ReadDB != nil && cfg.ReadDB != db {
		if err := s.prepareReads(ctx, cfg.ReadDB, cfg.Dialect, cfg.TablePrefix); err != nil {
			return nil, errors.Join(err, s.stmts.close())
		}
	}
	return s, nil
}

// prepareReads prepares on rdb the statements that only read, those whose
// SQL starts with SELECT, and records them in s.reads for [Store.stmt]. On
// error it closes those it prepared.
func (s *Store) prepareReads(ctx context.Context, rdb *sql.DB, d Dialect, prefix string) error {
	s.reads = make(map[*sql.Stmt]*sql.Stmt)
	for _, p := range s.stmts.list() {
		if !strings.HasPrefix(p.query, "SELECT ") {
			continue
		}
		st, err := rdb.PrepareContext(ctx, expand(d, prefix, p.query))
		if err != nil {
			return errors.Join(fmt.Errorf("sqlstore: prepare statement on the read pool: %w", err), s.closeReads())
		}
		s.reads[*p.stmt] = st
	}
	return nil
}

// closeReads closes the statements prepareReads prepared.
func (s *Store) closeReads() error {
	var errs []error
	for _, st := range s.reads {
		if err := st.Close(); err != nil {
			errs = append(errs, fmt.Errorf("sqlstore: close statement: %w", err))
		}
	}
	return errors.Join(errs...)
}

// Close releases the prepared statements. It does not close the *sql.DB
// passed to [New] nor [Config.ReadDB]. Don't use the Store after Close.
func (s *Store) Close() error {
	return errors.Join(s.stmts.close(), s.closeReads())
}

// Ping reports whether the database answers, for readiness checks: the
// *sql.DB given to [New] and, if set, [Config.ReadDB]. It implements
// [store.Pinger].
func (s *Store) Ping(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlstore: ping: %w", err)
	}
	if s.reads != nil {
		if err := s.readDB.PingContext(ctx); err != nil {
			return fmt.Errorf("sqlstore: ping the read pool: %w", err)
		}
	}
	return nil
}

// ---- transactions ----

// txKey is the context key of the transaction begun by one Store: a
// transaction is only ever used by the Store that began it.
type txKey struct{ s *Store }

// BeginTx starts a database transaction and returns a context carrying it.
// It implements [store.Transactor]: every method of s called with the
// returned context (or one derived from it) runs inside the transaction,
// until [Store.Commit] or [Store.Rollback] ends it; after that, calls with
// that context fail with an error wrapping [sql.ErrTxDone]. Transactions do
// not nest: BeginTx with a context that already carries one is an error.
//
// Consume and Delete keep their compare-and-set guarantee inside a
// transaction: a concurrent caller waits for the transaction to end.
//
// The transaction holds a database connection until it ends. On SQLite, as
// opened by package sqlite (one writing connection), a write made meanwhile
// with a context that does not carry the transaction waits for it to end:
// from the goroutine that holds the transaction, that is a deadlock until
// the context's deadline. (A read made so goes to [Config.ReadDB] and sees
// the database as it was before the transaction.) Pass the returned context
// to every store call of the unit of work.
func (s *Store) BeginTx(ctx context.Context) (context.Context, error) {
	if s.tx(ctx) != nil {
		return ctx, errors.New("sqlstore: begin transaction: the context already carries one")
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return ctx, fmt.Errorf("sqlstore: begin transaction: %w", err)
	}
	return context.WithValue(ctx, txKey{s}, tx), nil
}

// Commit commits the transaction carried by ctx. It implements
// [store.Transactor]. Without one in ctx it is an error; a transaction
// already ended yields an error wrapping [sql.ErrTxDone].
func (s *Store) Commit(ctx context.Context) error {
	tx := s.tx(ctx)
	if tx == nil {
		return errors.New("sqlstore: commit: the context carries no transaction")
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlstore: commit: %w", err)
	}
	return nil
}

// Rollback abandons the transaction carried by ctx. It implements
// [store.Transactor]. Without one in ctx it is an error; a transaction
// already ended (committed or rolled back) yields an error wrapping
// [sql.ErrTxDone], which a deferred Rollback may ignore.
func (s *Store) Rollback(ctx context.Context) error {
	tx := s.tx(ctx)
	if tx == nil {
		return errors.New("sqlstore: rollback: the context carries no transaction")
	}
	if err := tx.Rollback(); err != nil {
		return fmt.Errorf("sqlstore: rollback: %w", err)
	}
	return nil
}

// grouped reports whether a write made with ctx goes through group commit
// (group.go): on SQLite, outside a transaction of [Store.BeginTx].
func (s *Store) grouped(ctx context.Context) bool {
	return s.dialect == SQLite && s.tx(ctx) == nil
}

// readCtx is the context of a read by primary key outside a transaction.
// On SQLite's read pool such a read takes microseconds and waits for no
// lock (WAL mode), so that watching ctx while it runs costs more than it
// can save: the driver, and database/sql for its rows, would each start a
// goroutine to watch it. The read then runs under ctx's values without its
// cancellation, once ctx is checked not to have ended already.
func (s *Store) readCtx(ctx context.Context) context.Context {
	if s.dialect != SQLite || s.reads == nil || s.tx(ctx) != nil || ctx.Err() != nil {
		return ctx
	}
	return context.WithoutCancel(ctx)
}

// tx returns the transaction s began that ctx carries, or nil.
func (s *Store) tx(ctx context.Context) *sql.Tx {
	tx, _ := ctx.Value(txKey{s}).(*sql.Tx)
	return tx
}

// stmt returns st bound to the transaction ctx carries; without one, st's
// preparation on [Config.ReadDB] if st only reads and there is a ReadDB, or
// else st itself.
func (s *Store) stmt(ctx context.Context, st *sql.Stmt) *sql.Stmt {
	if tx := s.tx(ctx); tx != nil {
		return tx.StmtContext(ctx, st)
	}
	if r := s.reads[st]; r != nil {
		return r
	}
	return st
}

// ---- SQL text ----

// rebind turns the ? placeholders of q into PostgreSQL's $1, $2, …. The
// queries of this package have no ? anywhere else.
func rebind(d Dialect, q string) string {
	if d != Postgres || !strings.Contains(q, "?") {
		return q
	}
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// expand puts the table prefix in place of {p} and rebinds q for d.
func expand(d Dialect, prefix, q string) string {
	return rebind(d, strings.ReplaceAll(q, "{p}", prefix))
}
