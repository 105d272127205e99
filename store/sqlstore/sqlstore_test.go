package sqlstore_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"strings"
	"testing"

	"github.com/pixieauth/pixie/store/sqlstore"
)

// deadConnector is a driver.Connector whose database never answers: New
// must reject a bad Config before using the database.
type deadConnector struct{}

func (deadConnector) Connect(context.Context) (driver.Conn, error) {
	return nil, errors.New("no database here")
}
func (deadConnector) Driver() driver.Driver { return nil }

func TestNewConfig(t *testing.T) {
	secret := []byte(strings.Repeat("k", sqlstore.MinKeySecretLen))
	tests := []struct {
		name      string
		cfg       sqlstore.Config
		wantField string // the field the error must name; "" for a database error
	}{
		{"NoDialect", sqlstore.Config{KeySecret: secret}, "Dialect"},
		{"BadDialect", sqlstore.Config{Dialect: "mysql", KeySecret: secret}, "Dialect"},
		{"NoKeySecret", sqlstore.Config{Dialect: sqlstore.SQLite}, "KeySecret"},
		{"ShortKeySecret", sqlstore.Config{Dialect: sqlstore.Postgres, KeySecret: secret[1:]}, "KeySecret"},
		{"UpperCasePrefix", sqlstore.Config{Dialect: sqlstore.SQLite, KeySecret: secret, TablePrefix: "Pixie_"}, "TablePrefix"},
		{"QuotePrefix", sqlstore.Config{Dialect: sqlstore.SQLite, KeySecret: secret, TablePrefix: `x"; DROP TABLE users; --`}, "TablePrefix"},
		// A valid Config gets as far as the database, which is down.
		{"Valid", sqlstore.Config{Dialect: sqlstore.SQLite, KeySecret: secret, TablePrefix: "pixie_"}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db := sql.OpenDB(deadConnector{})
			defer db.Close()
			s, err := sqlstore.New(t.Context(), db, tc.cfg)
			if err == nil {
				s.Close()
				t.Fatal("got nil error, want one")
			}
			if !strings.HasPrefix(err.Error(), "sqlstore: ") {
				t.Errorf("got error %q, want the prefix %q", err, "sqlstore: ")
			}
			if tc.wantField != "" && !strings.Contains(err.Error(), "Config."+tc.wantField) {
				t.Errorf("got error %q, want one naming Config.%s", err, tc.wantField)
			}
			if tc.wantField == "" && !strings.Contains(err.Error(), "no database here") {
				t.Errorf("got error %q, want the database's", err)
			}
		})
	}
	if _, err := sqlstore.New(t.Context(), nil, sqlstore.Config{Dialect: sqlstore.SQLite, KeySecret: secret}); err == nil {
		t.Error("nil *sql.DB: got nil error, want one")
	}
}

// TestConfigLogValue checks that logging a Config does not reveal the secret.
func TestConfigLogValue(t *testing.T) {
	cfg := sqlstore.Config{Dialect: sqlstore.SQLite, KeySecret: []byte("super secret key-encryption key!!")}
	got := cfg.LogValue().String()
	if strings.Contains(got, "super secret") {
		t.Errorf("LogValue %q reveals the key secret", got)
	}
}
