package sqlite_test

import (
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pixieauth/pixie/store/sqlstore"
	"github.com/pixieauth/pixie/store/sqlstore/internal/sqlstoretest"
	"github.com/pixieauth/pixie/store/sqlstore/sqlite"
	"github.com/pixieauth/pixie/store/storetest"
)

// backend is a fresh SQLite file in t.TempDir() per test.
var backend = sqlstoretest.Backend{
	Dialect: sqlstore.SQLite,
	NewDatabase: func(t testing.TB) sqlstoretest.Opener {
		path := filepath.Join(t.TempDir(), "pixie.db")
		return func(cfg sqlstore.Config) (*sqlstore.Store, *sql.DB, error) {
			s, err := sqlite.Open(t.Context(), path, cfg)
			if err != nil {
				return nil, nil, err
			}
			t.Cleanup(func() { _ = s.Close() }) // a test may have closed the database already
			return s.Store, s.DB(), nil
		}
	},
}

// openTemp opens a Store on a fresh file.
func openTemp(t *testing.T) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "pixie.db"),
		sqlstore.Config{KeySecret: sqlstoretest.Secret})
	if err != nil {
		t.Fatalf("Open: got error %v, want nil", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: got error %v, want nil", err)
		}
	})
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Stores {
		s := openTemp(t)
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
	sqlstoretest.Run(t, backend)
}

func BenchmarkStore(b *testing.B) {
	sqlstoretest.Bench(b, backend)
}

// TestOpenErrors checks that Open rejects what it cannot use before creating
// any file.
func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	secret := sqlstoretest.Secret
	tests := []struct {
		name    string
		path    string
		cfg     sqlstore.Config
		wantErr string // a substring of the error
	}{
		{"EmptyPath", "", sqlstore.Config{KeySecret: secret}, "path"},
		{"QueryInPath", filepath.Join(dir, "a.db?mode=ro"), sqlstore.Config{KeySecret: secret}, "path"},
		{"OtherDialect", filepath.Join(dir, "b.db"), sqlstore.Config{Dialect: sqlstore.Postgres, KeySecret: secret}, "Dialect"},
		{"NoKeySecret", filepath.Join(dir, "c.db"), sqlstore.Config{}, "KeySecret"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := sqlite.Open(t.Context(), tc.path, tc.cfg)
			if err == nil {
				s.Close()
				t.Fatal("got nil error, want one")
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("got error %q, want one mentioning %q", err, tc.wantErr)
			}
		})
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("got %d files in the directory, want none", len(entries))
	}
}
