package sqlstore

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
)

func TestRebind(t *testing.T) {
	tests := []struct {
		name    string
		dialect Dialect
		in      string
		want    string
	}{
		{"SQLiteUnchanged", SQLite, "a = ? AND b = ?", "a = ? AND b = ?"},
		{"Postgres", Postgres, "a = ? AND b = ? OR c = ?", "a = $1 AND b = $2 OR c = $3"},
		{"PostgresNone", Postgres, "SELECT 1", "SELECT 1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := rebind(tc.dialect, tc.in); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestSplitStatements(t *testing.T) {
	src := "-- comment\nCREATE TABLE a (\n    x INT\n);\n\n  -- another\nCREATE INDEX i ON a (x);\nSELECT 1"
	want := []string{"CREATE TABLE a (\n    x INT\n)", "CREATE INDEX i ON a (x)", "SELECT 1"}
	if got := splitStatements(src); !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestMigrationsLoad checks the embedded migrations of both dialects: the
// same versions, the prefix put everywhere, one statement per table or
// index and no placeholder left.
func TestMigrationsLoad(t *testing.T) {
	var versions [][]int
	for _, d := range []Dialect{SQLite, Postgres} {
		ms, err := loadMigrations(d, "px_")
		if err != nil {
			t.Fatalf("%s: %v", d, err)
		}
		var vs []int
		for _, m := range ms {
			vs = append(vs, m.version)
			for _, s := range m.stmts {
				if strings.Contains(s, "{p}") || strings.Contains(s, ";") {
					t.Errorf("%s %s: statement %q keeps a placeholder or a ;", d, m.name, s)
				}
			}
		}
		if len(ms) == 0 || len(ms[0].stmts) != 6 {
			t.Fatalf("%s: got %d migrations, the first with %d statements, want 6", d, len(ms), len(ms[0].stmts))
		}
		for _, s := range ms[0].stmts {
			if !strings.Contains(s, " px_") {
				t.Errorf("%s: statement %q lacks the table prefix", d, s)
			}
		}
		versions = append(versions, vs)
	}
	if !slices.Equal(versions[0], versions[1]) {
		t.Errorf("got versions %v for SQLite and %v for PostgreSQL, want the same", versions[0], versions[1])
	}
}

func TestSealOpenKey(t *testing.T) {
	aead, err := newKeyCipher(bytes.Repeat([]byte{1}, 32))
	if err != nil {
		t.Fatal(err)
	}
	s := &Store{aead: aead}
	private := []byte("pkcs8 bytes")
	enc, err := s.sealKey("kid", "ES256", private)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.openKey("kid", "ES256", enc); err != nil || !bytes.Equal(got, private) {
		t.Fatalf("openKey: got %q, %v, want %q", got, err, private)
	}
	again, _ := s.sealKey("kid", "ES256", private)
	if bytes.Equal(enc, again) {
		t.Error("two encryptions of one key are equal, want fresh nonces")
	}
	tests := []struct {
		name    string
		id, alg string
		enc     []byte
	}{
		{"OtherID", "kid2", "ES256", enc},
		{"OtherAlg", "kid", "RS256", enc},
		{"Truncated", "kid", "ES256", enc[:len(enc)-1]},
		{"Short", "kid", "ES256", enc[:5]},
		{"Empty", "kid", "ES256", nil},
		{"BadVersion", "kid", "ES256", append([]byte{9}, enc[1:]...)},
		{"Flipped", "kid", "ES256", append(append([]byte(nil), enc[:len(enc)-1]...), enc[len(enc)-1]^1)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := s.openKey(tc.id, tc.alg, tc.enc); !errors.Is(err, ErrDecrypt) {
				t.Errorf("got error %v, want ErrDecrypt", err)
			}
		})
	}
}

// TestDocSchema checks that the schemas the package documentation lists are
// the ones the migrations create (version 1; later versions are described
// in prose).
func TestDocSchema(t *testing.T) {
	tests := []struct {
		docFile string
		dialect Dialect
	}{
		{"doc.go", Postgres},
		{"sqlite/doc.go", SQLite},
	}
	for _, tc := range tests {
		t.Run(tc.docFile, func(t *testing.T) {
			src, err := os.ReadFile(tc.docFile)
			if err != nil {
				t.Fatal(err)
			}
			// The schema is the code block starting at the first CREATE TABLE.
			var doc []string
			for line := range strings.Lines(string(src)) {
				code, ok := strings.CutPrefix(line, "//\t")
				if ok && (len(doc) > 0 || strings.HasPrefix(code, "CREATE TABLE")) {
					doc = append(doc, code)
				} else if len(doc) > 0 {
					break
				}
			}
			ms, err := loadMigrations(tc.dialect, "")
			if err != nil {
				t.Fatal(err)
			}
			got := normalizeSQL(strings.Join(doc, ""))
			want := normalizeSQL(strings.Join(ms[0].stmts, ";\n") + ";")
			if got != want {
				t.Errorf("schema in %s:\n%s\nwant (from the migration):\n%s", tc.docFile, got, want)
			}
		})
	}
}

// normalizeSQL drops -- comments and collapses white space.
func normalizeSQL(s string) string {
	var b strings.Builder
	for line := range strings.Lines(s) {
		line, _, _ = strings.Cut(line, "--")
		b.WriteString(line)
		b.WriteString(" ")
	}
	return strings.Join(strings.Fields(b.String()), " ")
}

// laterNames finds the names a migration statement adds: a table and its
// columns, an index, or a column.
var laterNames = []*regexp.Regexp{
	regexp.MustCompile(`CREATE TABLE (\w+)`),
	regexp.MustCompile(`CREATE INDEX (\w+)`),
	regexp.MustCompile(`ADD COLUMN (\w+)`),
	regexp.MustCompile(`(?m)^\s+(\w+)\s+(?:TEXT|INTEGER|BIGINT|BOOLEAN|BLOB|BYTEA)\b`), // a column
}

// TestDocLaterVersions checks that the package documentation describes
// every schema version after the first, which it does in prose: it names
// the version and every table, column and index the version adds.
func TestDocLaterVersions(t *testing.T) {
	tests := []struct {
		docFile string
		dialect Dialect
	}{
		{"doc.go", Postgres},
		{"sqlite/doc.go", SQLite},
	}
	for _, tc := range tests {
		t.Run(tc.docFile, func(t *testing.T) {
			src, err := os.ReadFile(tc.docFile)
			if err != nil {
				t.Fatal(err)
			}
			// The prose after the version 1 schema.
			_, doc, ok := strings.Cut(string(src), "Schema version 2 ")
			if !ok {
				t.Fatalf("%s does not describe schema version 2", tc.docFile)
			}
			doc = "Schema version 2 " + doc
			ms, err := loadMigrations(tc.dialect, "")
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range ms[1:] {
				if want := fmt.Sprintf("Schema version %d ", m.version); !strings.Contains(doc, want) {
					t.Errorf("%s does not describe %s: no %q", tc.docFile, m.name, want)
					continue
				}
				for _, stmt := range m.stmts {
					for _, re := range laterNames {
						for _, match := range re.FindAllStringSubmatch(stmt, -1) {
							if !regexp.MustCompile(`\b` + match[1] + `\b`).MatchString(doc) {
								t.Errorf("%s does not name %s, which %s adds", tc.docFile, match[1], m.name)
							}
						}
					}
				}
			}
		})
	}
}
