package sqlstore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
)

// migrationFS holds the schema migrations, one directory per dialect, one
// file per version named NNNN_description.sql. A released file is never
// edited: a schema change is a new file.
//
//go:embed migrations
var migrationFS embed.FS

// migration is one version of the schema.
type migration struct {
	version int
	name    string   // the file name
	stmts   []string // the statements, in order, prefix expanded
}

// migrationLockKey is the first key of the PostgreSQL advisory lock taken
// while migrating ("pixe"); the second is a hash of the schema and table
// prefix, so that separate pixie installations in one database do not wait
// for each other.
const migrationLockKey = 0x70697865

// loadMigrations returns the migrations of d in version order.
func loadMigrations(d Dialect, prefix string) ([]migration, error) {
	dir := path.Join("migrations", string(d))
	entries, err := fs.ReadDir(migrationFS, dir)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: migrations: %w", err)
	}
	var ms []migration
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 || !strings.HasSuffix(e.Name(), ".sql") {
			return nil, fmt.Errorf("sqlstore: migrations: bad file name %q", e.Name())
		}
		b, err := migrationFS.ReadFile(path.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("sqlstore: migrations: %w", err)
		}
		ms = append(ms, migration{version: v, name: e.Name(), stmts: splitStatements(strings.ReplaceAll(string(b), "{p}", prefix))})
	}
	slices.SortFunc(ms, func(a, b migration) int { return a.version - b.version })
	for i := 1; i < len(ms); i++ {
		if ms[i].version == ms[i-1].version {
			return nil, fmt.Errorf("sqlstore: migrations: version %d twice", ms[i].version)
		}
	}
	return ms, nil
}

// splitStatements splits a migration file into statements: it drops lines
// that are only a -- comment and splits at each ; that ends a line. The
// migrations keep to that form (no ; inside a statement), so that no driver
// has to accept several statements in one Exec.
func splitStatements(src string) []string {
	var stmts []string
	var cur strings.Builder
	for line := range strings.Lines(src) {
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "--") {
			continue
		}
		cur.WriteString(line)
		if strings.HasSuffix(trimmed, ";") {
			stmts = append(stmts, strings.TrimSuffix(strings.TrimSpace(cur.String()), ";"))
			cur.Reset()
		}
	}
	if s := strings.TrimSpace(cur.String()); s != "" {
		stmts = append(stmts, s)
	}
	return stmts
}

// querier is what migrations run on: a *sql.Tx (PostgreSQL) or a *sql.Conn
// in a transaction begun by hand (SQLite).
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// migrate applies, in one transaction under a lock, every migration of d
// that the database lacks.
func migrate(ctx context.Context, db *sql.DB, d Dialect, prefix string) error {
	ms, err := loadMigrations(d, prefix)
	if err != nil {
		return err
	}
	switch d {
	case Postgres:
		return migratePostgres(ctx, db, prefix, ms)
	default:
		return retryBusy(ctx, func() error { return migrateSQLite(ctx, db, prefix, ms) })
	}
}

// migratePostgres runs the migrations in a transaction that first takes a
// transaction-scoped advisory lock: a second replica starting at the same
// time waits for the first to commit, then finds every version applied.
// PostgreSQL's DDL is transactional, so a failed migration leaves nothing.
func migratePostgres(ctx context.Context, db *sql.DB, prefix string, ms []migration) (err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlstore: migrate: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback() // the error that made us roll back is the one to report
		}
	}()
	if _, err := tx.ExecContext(ctx,
		`SELECT pg_advisory_xact_lock($1, hashtext(coalesce(current_schema(), '') || ':' || $2))`,
		migrationLockKey, prefix); err != nil {
		return fmt.Errorf("sqlstore: migrate: lock: %w", err)
	}
	if err := applyMigrations(ctx, tx, Postgres, prefix, ms); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlstore: migrate: commit: %w", err)
	}
	return nil
}

// migrateSQLite runs the migrations in a transaction begun with BEGIN
// IMMEDIATE, which takes the database's write lock at once: a second
// process starting at the same time waits (for the connection's
// busy_timeout) and then finds every version applied. The transaction is
// begun by hand on a dedicated connection because database/sql's BeginTx
// begins a DEFERRED one unless the DSN says otherwise.
// retryBusy runs fn again while SQLite answers SQLITE_BUSY without waiting
// for its busy timeout, as it does when two connections starting on a new
// file meet (one switching it to WAL while the other writes): each then
// waits for the other, and SQLite breaks the deadlock by failing one at
// once. A few tries, a little apart, always get through.
func retryBusy(ctx context.Context, fn func() error) error {
	var err error
	for try := 1; try <= 10; try++ {
		if err = fn(); err == nil || !isBusy(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(try) * 20 * time.Millisecond):
		}
	}
	return err
}

// isBusy reports whether err is SQLite's SQLITE_BUSY (code 5), without
// importing a driver: by the Code method modernc.org/sqlite's errors have.
func isBusy(err error) bool {
	var coded interface{ Code() int }
	if errors.As(err, &coded) {
		return coded.Code()&0xff == 5
	}
	return false
}

func migrateSQLite(ctx context.Context, db *sql.DB, prefix string, ms []migration) (err error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("sqlstore: migrate: %w", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return fmt.Errorf("sqlstore: migrate: begin: %w", err)
	}
	defer func() {
		if err == nil {
			return
		}
		// Roll back even if ctx is done; if that fails, the connection may
		// still be in the transaction: have database/sql discard it.
		if _, rbErr := conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK"); rbErr != nil {
			_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		}
	}()
	if err := applyMigrations(ctx, conn, SQLite, prefix, ms); err != nil {
		return err
	}
	if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
		return fmt.Errorf("sqlstore: migrate: commit: %w", err)
	}
	return nil
}

// applyMigrations creates the migrations table if needed and applies, in
// order, the migrations whose version it does not list. Versions it lists
// that ms lacks (from a newer pixie) are left alone.
func applyMigrations(ctx context.Context, q querier, d Dialect, prefix string, ms []migration) error {
	table := prefix + "pixie_migrations"
	if _, err := q.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS `+table+` (
    version    INTEGER NOT NULL PRIMARY KEY,
    name       TEXT    NOT NULL,
    applied_at BIGINT  NOT NULL
)`); err != nil {
		return fmt.Errorf("sqlstore: migrate: create %s: %w", table, err)
	}
	applied, err := appliedVersions(ctx, q, table)
	if err != nil {
		return err
	}
	insert := rebind(d, `INSERT INTO `+table+` (version, name, applied_at) VALUES (?, ?, ?)`)
	for _, m := range ms {
		if applied[m.version] {
			continue
		}
		for _, stmt := range m.stmts {
			if _, err := q.ExecContext(ctx, stmt); err != nil {
				return fmt.Errorf("sqlstore: migrate: %s: %w", m.name, err)
			}
		}
		if _, err := q.ExecContext(ctx, insert, m.version, m.name, time.Now().UnixMicro()); err != nil {
			return fmt.Errorf("sqlstore: migrate: %s: record version: %w", m.name, err)
		}
	}
	return nil
}

// appliedVersions returns the versions listed in the migrations table.
func appliedVersions(ctx context.Context, q querier, table string) (map[int]bool, error) {
	rows, err := q.QueryContext(ctx, `SELECT version FROM `+table)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: migrate: read %s: %w", table, err)
	}
	defer rows.Close()
	applied := make(map[int]bool)
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			return nil, fmt.Errorf("sqlstore: migrate: read %s: %w", table, err)
		}
		applied[v] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlstore: migrate: read %s: %w", table, err)
	}
	return applied, nil
}
