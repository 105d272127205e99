// Package pgtest gives pixie's tests on PostgreSQL their database: the DSN
// from PIXIE_TEST_POSTGRES_DSN (the test skips without it) and a fresh
// schema per test, so that tests run side by side without seeing each
// other's rows. Only tests import it.
package pgtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver
)

// DSNEnv names the environment variable with the DSN of the test database.
const DSNEnv = "PIXIE_TEST_POSTGRES_DSN"

// DSN returns the DSN of the test database, or skips t.
func DSN(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv(DSNEnv)
	if dsn == "" {
		t.Skip("set " + DSNEnv + " to run the PostgreSQL tests, e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable")
	}
	return dsn
}

// FreshSchema creates an empty schema pixie_test_<random> for t, dropped
// when t ends, and returns the test database's DSN with search_path set to
// it. It skips t without a test database.
func FreshSchema(t testing.TB) string {
	t.Helper()
	dsn := DSN(t)
	admin, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatalf("open admin connection: %v", err)
	}
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	schema := "pixie_test_" + hex.EncodeToString(b)
	if _, err := admin.ExecContext(t.Context(), "CREATE SCHEMA "+schema); err != nil {
		admin.Close()
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		// t.Context() is done by now: use a context of its own.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := admin.ExecContext(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
		admin.Close()
	})
	return With(t, dsn, map[string]string{"search_path": schema})
}

// With sets connection parameters in a URL or keyword/value DSN; "host"
// takes host:port.
func With(t testing.TB, dsn string, params map[string]string) string {
	t.Helper()
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatalf("parse %s: %v", DSNEnv, err)
		}
		q := u.Query()
		for k, v := range params {
			if k == "host" {
				u.Host = v
				continue
			}
			q.Set(k, v)
		}
		u.RawQuery = q.Encode()
		return u.String()
	}
	for k, v := range params {
		if k == "host" {
			h, p, err := net.SplitHostPort(v)
			if err != nil {
				t.Fatalf("host %q: %v", v, err)
			}
			dsn += " host=" + h + " port=" + p
			continue
		}
		dsn += " " + k + "=" + v
	}
	return dsn
}
