// Package sqlstoretest holds the tests of package sqlstore that go beyond
// the conformance suite of package storetest: encryption of keys at rest,
// migrations, transactions, batches of grant writes, concurrency across
// connection pools, and how database failures surface. The sqlite and postgres packages run them on
// their database with [Run].
package sqlstoretest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"database/sql"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pixieauth/pixie/store"
	"github.com/pixieauth/pixie/store/sqlstore"
	"github.com/pixieauth/pixie/store/storetest"
)

// Backend is a database to run the tests on.
type Backend struct {
	// Dialect is the database's dialect.
	Dialect sqlstore.Dialect
	// NewDatabase prepares a fresh, empty database for t (a file, a
	// schema) and returns a function that opens a Store on it. Each call of
	// that function opens a new connection pool, as another replica would,
	// and closes it when t ends; it may be called from several goroutines
	// at once. It returns the Store and its *sql.DB.
	NewDatabase func(tb testing.TB) Opener
}

// Opener opens a Store with cfg on the database prepared by
// [Backend.NewDatabase].
type Opener func(cfg sqlstore.Config) (*sqlstore.Store, *sql.DB, error)

// Secret and OtherSecret are key-encryption secrets for the tests.
var (
	Secret      = []byte("pixie test key-encryption secret, 32+ bytes")
	OtherSecret = []byte("another key-encryption secret for pixie tests")
)

// Config returns the Config the tests open stores with.
func (b Backend) Config() sqlstore.Config {
	return sqlstore.Config{Dialect: b.Dialect, KeySecret: Secret}
}

// Run runs every test on b, each on a fresh database.
func Run(t *testing.T, b Backend) {
	tests := []struct {
		name string
		run  func(t *testing.T, b Backend)
	}{
		{"KeysEncryptedAtRest", testKeysEncryptedAtRest},
		{"WrongKeySecret", testWrongKeySecret},
		{"KeyRowBoundToCiphertext", testKeyRowBound},
		{"MigrationsIdempotent", testMigrationsIdempotent},
		{"ConcurrentNew", testConcurrentNew},
		{"MigrateFromOlder", testMigrateFromOlder},
		{"ConcurrentConsumeTwoPools", testConcurrentConsumeTwoPools},
		{"ConcurrentDeleteTwoPools", testConcurrentDeleteTwoPools},
		{"TxCommit", testTxCommit},
		{"TxRollback", testTxRollback},
		{"TxConsumeIsCompareAndSet", testTxConsumeCAS},
		{"TxMisuse", testTxMisuse},
		{"DeleteExpiredZeroTime", testDeleteExpiredZeroTime},
		{"DeleteExpiredThrottle", testDeleteExpiredThrottle},
		{"ThrottleTwoPools", testThrottleTwoPools},
		{"ThrottleTimes", testThrottleTimes},
		{"ConsentValues", testConsentValues},
		{"DeleteExpiredConsents", testDeleteExpiredConsents},
		{"SessionsTwoPools", testSessionsTwoPools},
		{"SessionValues", testSessionValues},
		{"TimesAndEmptyValues", testTimesAndEmptyValues},
		{"AddClient", testAddClient},
		{"AddUser", testAddUser},
		{"PutClient", testPutClient},
		{"SetPassword", testSetPassword},
		{"InvalidKind", testInvalidKind},
		{"TablePrefix", testTablePrefix},
		{"BatchTwoPools", testBatchTwoPools},
		{"BatchRefusesTx", testBatchRefusesTx},
		{"BatchInvalid", testBatchInvalid},
		{"BatchRevokeOverlapsConsume", testBatchRevokeOverlapsConsume},
		{"BatchTablePrefix", testBatchTablePrefix},
		{"DatabaseDown", testDatabaseDown},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, b) })
	}
}

// ---- helpers ----

// open opens a Store with the default Config, or stops the test.
func open(t *testing.T, o Opener, cfg sqlstore.Config) (*sqlstore.Store, *sql.DB) {
	t.Helper()
	s, db, err := o(cfg)
	if err != nil {
		t.Fatalf("open: got error %v, want nil", err)
	}
	return s, db
}

// fresh opens a Store on a fresh database.
func fresh(t *testing.T, b Backend) (*sqlstore.Store, *sql.DB) {
	t.Helper()
	return open(t, b.NewDatabase(t), b.Config())
}

func mustOK(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("got error %v, want nil", err)
	}
}

func mustErrIs(t *testing.T, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("got error %v, want one wrapping %v", err, target)
	}
}

// q rewrites the ? placeholders of query for the backend's dialect.
func (b Backend) q(query string) string {
	if b.Dialect != sqlstore.Postgres {
		return query
	}
	var sb strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			sb.WriteString("$" + strconv.Itoa(n))
			continue
		}
		sb.WriteRune(r)
	}
	return sb.String()
}

func newGrant(kind store.Kind, sig, requestID string) *store.Grant {
	return &store.Grant{
		Kind: kind, Signature: sig, RequestID: requestID, ClientID: "client-1", Subject: "sub-1",
		ExpiresAt: time.Now().Add(time.Hour), Data: []byte("data of " + sig),
	}
}

func wantActive(t *testing.T, s store.Grants, ctx context.Context, kind store.Kind, sig string, want bool) {
	t.Helper()
	g, err := s.Grant(ctx, kind, sig)
	mustOK(t, err)
	if g.Active != want {
		t.Errorf("%s %q: got Active %v, want %v", kind, sig, g.Active, want)
	}
}

// ecKey returns a fresh P-256 key as a store.Key, and its PKCS #8 bytes.
func ecKey(t *testing.T, id string) (store.Key, *ecdsa.PrivateKey) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	mustOK(t, err)
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	mustOK(t, err)
	return store.Key{ID: id, Algorithm: "ES256", Private: der, CreatedAt: time.Now().UTC()}, priv
}

// ---- keys ----

func testKeysEncryptedAtRest(t *testing.T, b Backend) {
	s, db := fresh(t, b)
	ctx := t.Context()
	k, priv := ecKey(t, "kid-1")
	mustOK(t, s.AddKey(ctx, k.Clone()))

	var raw []byte
	mustOK(t, db.QueryRowContext(ctx, b.q(`SELECT private_enc FROM keys WHERE id = ?`), "kid-1").Scan(&raw))
	d, err := priv.Bytes()
	mustOK(t, err)
	if bytes.Contains(raw, k.Private) || bytes.Contains(raw, d) {
		t.Errorf("stored private_enc contains the private key in the clear")
	}
	if len(raw) <= len(k.Private) {
		t.Errorf("got %d stored bytes for a %d-byte key, want more (nonce and tag)", len(raw), len(k.Private))
	}

	keys, err := s.Keys(ctx)
	mustOK(t, err)
	if len(keys) != 1 || !bytes.Equal(keys[0].Private, k.Private) || keys[0].Algorithm != "ES256" {
		t.Fatalf("got keys %+v, want the key added", keys)
	}
	if _, err := x509.ParsePKCS8PrivateKey(keys[0].Private); err != nil {
		t.Errorf("decrypted key does not parse: %v", err)
	}
}

func testWrongKeySecret(t *testing.T, b Backend) {
	o := b.NewDatabase(t)
	s, _ := open(t, o, b.Config())
	ctx := t.Context()
	k, _ := ecKey(t, "kid-1")
	mustOK(t, s.AddKey(ctx, k))

	cfg := b.Config()
	cfg.KeySecret = OtherSecret
	other, _ := open(t, o, cfg)
	keys, err := other.Keys(ctx)
	mustErrIs(t, err, sqlstore.ErrDecrypt)
	if !strings.Contains(err.Error(), "KeySecret") || !strings.Contains(err.Error(), "kid-1") {
		t.Errorf("got error %q, want one naming KeySecret and the key", err)
	}
	if keys != nil {
		t.Errorf("got keys %+v with the error, want nil", keys)
	}

	// The right secret still reads it.
	again, _ := open(t, o, b.Config())
	keys, err = again.Keys(ctx)
	mustOK(t, err)
	if len(keys) != 1 || !bytes.Equal(keys[0].Private, k.Private) {
		t.Errorf("got keys %+v, want the key added", keys)
	}
}

// testKeyRowBound checks that a ciphertext only decrypts in its own row: the
// key ID and algorithm are authenticated data.
func testKeyRowBound(t *testing.T, b Backend) {
	s, db := fresh(t, b)
	ctx := t.Context()
	k, _ := ecKey(t, "kid-1")
	mustOK(t, s.AddKey(ctx, k))
	_, err := db.ExecContext(ctx, b.q(`UPDATE keys SET algorithm = ? WHERE id = ?`), "RS256", "kid-1")
	mustOK(t, err)
	_, err = s.Keys(ctx)
	mustErrIs(t, err, sqlstore.ErrDecrypt)
}

// ---- migrations ----

// migrationRows returns the versions in the migrations table.
func migrationRows(t *testing.T, db *sql.DB, table string) []int {
	t.Helper()
	rows, err := db.QueryContext(t.Context(), `SELECT version FROM `+table+` ORDER BY version`)
	mustOK(t, err)
	defer rows.Close()
	var vs []int
	for rows.Next() {
		var v int
		mustOK(t, rows.Scan(&v))
		vs = append(vs, v)
	}
	mustOK(t, rows.Err())
	return vs
}

func testMigrationsIdempotent(t *testing.T, b Backend) {
	o := b.NewDatabase(t)
	s1, db := open(t, o, b.Config())
	ctx := t.Context()
	mustOK(t, s1.AddClient(ctx, &store.Client{ID: "web"}))
	want := migrationRows(t, db, "pixie_migrations")
	if len(want) == 0 || want[0] != 1 {
		t.Fatalf("got migration versions %v, want 1, …", want)
	}
	// A second and third New on the same database apply nothing and keep the data.
	for range 2 {
		s2, db2 := open(t, o, b.Config())
		_, err := s2.Client(ctx, "web")
		mustOK(t, err)
		if got := migrationRows(t, db2, "pixie_migrations"); !reflect.DeepEqual(got, want) {
			t.Errorf("got migration versions %v, want %v", got, want)
		}
	}
}

func testConcurrentNew(t *testing.T, b Backend) {
	o := b.NewDatabase(t)
	const replicas = 8
	stores := make([]*sqlstore.Store, replicas)
	dbs := make([]*sql.DB, replicas)
	errs := make([]error, replicas)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range replicas {
		wg.Go(func() {
			<-start
			stores[i], dbs[i], errs[i] = o(b.Config())
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("replica %d: New: got error %v, want nil", i, err)
		}
	}
	if got := migrationRows(t, dbs[0], "pixie_migrations"); len(got) == 0 || got[0] != 1 {
		t.Errorf("got migration versions %v, want 1, … once each", got)
	}
	// Every replica works on the one schema.
	ctx := t.Context()
	mustOK(t, stores[0].CreateGrant(ctx, newGrant(store.KindAuthorizeCode, "code-1", "req-1")))
	for i, s := range stores {
		if _, err := s.Grant(ctx, store.KindAuthorizeCode, "code-1"); err != nil {
			t.Errorf("replica %d: Grant: got error %v, want nil", i, err)
		}
	}
}

// ---- concurrency across pools ----

// twoPools opens two stores, as two replicas would, on one fresh database.
func twoPools(t *testing.T, b Backend) [2]*sqlstore.Store {
	o := b.NewDatabase(t)
	a, _ := open(t, o, b.Config())
	c, _ := open(t, o, b.Config())
	return [2]*sqlstore.Store{a, c}
}

func testConcurrentConsumeTwoPools(t *testing.T, b Backend) {
	pools := twoPools(t, b)
	ctx := t.Context()
	for round := range 3 {
		sig := fmt.Sprintf("code-%d", round)
		mustOK(t, pools[0].CreateGrant(ctx, newGrant(store.KindAuthorizeCode, sig, "req-1")))
		errs := storetest.Race(20, func(i int) error {
			return pools[i%2].Consume(ctx, store.KindAuthorizeCode, sig)
		})
		storetest.ExactlyOneWins(t, errs, store.ErrConsumed)
		wantActive(t, pools[1], ctx, store.KindAuthorizeCode, sig, false)
	}
}

func testConcurrentDeleteTwoPools(t *testing.T, b Backend) {
	pools := twoPools(t, b)
	ctx := t.Context()
	mustOK(t, pools[0].CreateGrant(ctx, newGrant(store.KindPKCE, "pkce-1", "req-1")))
	errs := storetest.Race(20, func(i int) error {
		return pools[i%2].Delete(ctx, store.KindPKCE, "pkce-1")
	})
	storetest.ExactlyOneWins(t, errs, store.ErrNotFound)
}

// ---- transactions ----

func testTxCommit(t *testing.T, b Backend) {
	s, _ := fresh(t, b)
	ctx := t.Context()
	mustOK(t, s.CreateGrant(ctx, newGrant(store.KindAuthorizeCode, "code-1", "req-1")))

	// A token exchange: consume the code, store the tokens, all or none.
	tx, err := s.BeginTx(ctx)
	mustOK(t, err)
	mustOK(t, s.Consume(tx, store.KindAuthorizeCode, "code-1"))
	mustOK(t, s.CreateGrant(tx, newGrant(store.KindAccessToken, "at-1", "req-1")))
	mustOK(t, s.CreateGrant(tx, newGrant(store.KindRefreshToken, "rt-1", "req-1")))
	// The transaction sees its own writes, and a duplicate inside it does
	// not spoil it.
	wantActive(t, s, tx, store.KindAccessToken, "at-1", true)
	mustErrIs(t, s.CreateGrant(tx, newGrant(store.KindAccessToken, "at-1", "req-1")), store.ErrAlreadyExists)
	mustOK(t, s.Commit(tx))

	wantActive(t, s, ctx, store.KindAuthorizeCode, "code-1", false)
	wantActive(t, s, ctx, store.KindAccessToken, "at-1", true)
	wantActive(t, s, ctx, store.KindRefreshToken, "rt-1", true)
	// A deferred Rollback after Commit reports the transaction done.
	mustErrIs(t, s.Rollback(tx), sql.ErrTxDone)
	// So does any call with the finished transaction's context.
	_, err = s.Grant(tx, store.KindAccessToken, "at-1")
	mustErrIs(t, err, sql.ErrTxDone)
}

func testTxRollback(t *testing.T, b Backend) {
	s, _ := fresh(t, b)
	ctx := t.Context()
	mustOK(t, s.CreateGrant(ctx, newGrant(store.KindAuthorizeCode, "code-1", "req-1")))
	mustOK(t, s.CreateGrant(ctx, newGrant(store.KindPKCE, "pkce-1", "req-1")))

	tx, err := s.BeginTx(ctx)
	mustOK(t, err)
	mustOK(t, s.Consume(tx, store.KindAuthorizeCode, "code-1"))
	mustOK(t, s.Delete(tx, store.KindPKCE, "pkce-1"))
	mustOK(t, s.CreateGrant(tx, newGrant(store.KindAccessToken, "at-1", "req-1")))
	mustOK(t, s.AddClient(tx, &store.Client{ID: "web"}))
	mustOK(t, s.Rollback(tx))

	wantActive(t, s, ctx, store.KindAuthorizeCode, "code-1", true)
	wantActive(t, s, ctx, store.KindPKCE, "pkce-1", true)
	_, err = s.Grant(ctx, store.KindAccessToken, "at-1")
	mustErrIs(t, err, store.ErrNotFound)
	_, err = s.Client(ctx, "web")
	mustErrIs(t, err, store.ErrNotFound)
}

// testTxConsumeCAS checks that a Consume inside a transaction holds off a
// concurrent one outside it until the transaction ends: the outsider loses
// if the transaction commits and wins if it rolls back.
func testTxConsumeCAS(t *testing.T, b Backend) {
	for _, commit := range []bool{true, false} {
		t.Run(fmt.Sprintf("commit=%v", commit), func(t *testing.T) {
			pools := twoPools(t, b)
			s, other := pools[0], pools[1]
			ctx := t.Context()
			mustOK(t, s.CreateGrant(ctx, newGrant(store.KindRefreshToken, "rt-1", "req-1")))

			tx, err := s.BeginTx(ctx)
			mustOK(t, err)
			mustOK(t, s.Consume(tx, store.KindRefreshToken, "rt-1"))
			outside := make(chan error, 1)
			go func() { outside <- other.Consume(ctx, store.KindRefreshToken, "rt-1") }()
			select {
			case err := <-outside:
				t.Fatalf("outside Consume returned %v while the transaction was open, want it to wait", err)
			case <-time.After(100 * time.Millisecond):
			}
			if commit {
				mustOK(t, s.Commit(tx))
				mustErrIs(t, <-outside, store.ErrConsumed)
			} else {
				mustOK(t, s.Rollback(tx))
				mustOK(t, <-outside)
			}
			wantActive(t, s, ctx, store.KindRefreshToken, "rt-1", false)
		})
	}
}

func testTxMisuse(t *testing.T, b Backend) {
	s, _ := fresh(t, b)
	ctx := t.Context()
	if err := s.Commit(ctx); err == nil {
		t.Error("Commit without a transaction: got nil error, want one")
	}
	if err := s.Rollback(ctx); err == nil {
		t.Error("Rollback without a transaction: got nil error, want one")
	}
	tx, err := s.BeginTx(ctx)
	mustOK(t, err)
	if _, err := s.BeginTx(tx); err == nil {
		t.Error("nested BeginTx: got nil error, want one")
	}
	mustOK(t, s.Rollback(tx))
}

// ---- grants ----

func testDeleteExpiredZeroTime(t *testing.T, b Backend) {
	s, _ := fresh(t, b)
	ctx := t.Context()
	g := newGrant(store.KindAccessToken, "at-zero", "req-1")
	g.ExpiresAt = time.Time{}
	mustOK(t, s.CreateGrant(ctx, g))
	got, err := s.Grant(ctx, store.KindAccessToken, "at-zero")
	mustOK(t, err)
	if !got.ExpiresAt.IsZero() {
		t.Errorf("got ExpiresAt %v, want the zero time", got.ExpiresAt)
	}
	mustOK(t, s.CreateGrant(ctx, newGrant(store.KindAccessToken, "at-live", "req-1")))

	// Inside a transaction, and then rolled back: nothing removed.
	tx, err := s.BeginTx(ctx)
	mustOK(t, err)
	n, err := s.DeleteExpired(tx, time.Now())
	mustOK(t, err)
	if n != 1 {
		t.Errorf("in a transaction: got %d deleted, want 1", n)
	}
	mustOK(t, s.Rollback(tx))

	n, err = s.DeleteExpired(ctx, time.Now())
	mustOK(t, err)
	if n != 1 {
		t.Errorf("got %d deleted, want 1", n)
	}
	_, err = s.Grant(ctx, store.KindAccessToken, "at-zero")
	mustErrIs(t, err, store.ErrNotFound)
	wantActive(t, s, ctx, store.KindAccessToken, "at-live", true)
}

// testTimesAndEmptyValues checks what storetest leaves open: sub-second
// times (kept to the microsecond, returned in UTC), empty grant data, and
// clients with empty lists.
func testTimesAndEmptyValues(t *testing.T, b Backend) {
	s, _ := fresh(t, b)
	ctx := t.Context()
	loc := time.FixedZone("UTC+5:30", 5*3600+1800)
	exp := time.Date(2030, 1, 2, 3, 4, 5, 123456789, loc)
	g := &store.Grant{Kind: store.KindPKCE, Signature: "pkce-1", RequestID: "req-1", ExpiresAt: exp}
	mustOK(t, s.CreateGrant(ctx, g))
	got, err := s.Grant(ctx, store.KindPKCE, "pkce-1")
	mustOK(t, err)
	if want := exp.Truncate(time.Microsecond); !got.ExpiresAt.Equal(want) || got.ExpiresAt.Location() != time.UTC {
		t.Errorf("got ExpiresAt %v, want %v in UTC", got.ExpiresAt, want)
	}
	if got.Data != nil || got.ClientID != "" || got.Subject != "" {
		t.Errorf("got grant %+v, want empty Data, ClientID and Subject", got)
	}

	mustOK(t, s.AddClient(ctx, &store.Client{ID: "bare"}))
	c, err := s.Client(ctx, "bare")
	mustOK(t, err)
	if want := (&store.Client{ID: "bare"}); !reflect.DeepEqual(c, want) {
		t.Errorf("got client %+v, want %+v", c, want)
	}
	mustOK(t, s.AddClient(ctx, &store.Client{ID: "empty", Scopes: []string{}, RedirectURIs: []string{"a\nb", `"quoted"`}}))
	c, err = s.Client(ctx, "empty")
	mustOK(t, err)
	if c.Scopes != nil || !reflect.DeepEqual(c.RedirectURIs, []string{"a\nb", `"quoted"`}) {
		t.Errorf("got client %+v, want nil Scopes and the redirect URIs as given", c)
	}
}

func testAddClient(t *testing.T, b Backend) {
	s, _ := fresh(t, b)
	ctx := t.Context()
	mustOK(t, s.AddClient(ctx, &store.Client{ID: "web", Name: "Web"}))
	tests := []struct {
		name    string
		client  *store.Client
		wantErr error // nil: any error
	}{
		{"Duplicate", &store.Client{ID: "web", Name: "Other"}, store.ErrAlreadyExists},
		{"Nil", nil, nil},
		{"EmptyID", &store.Client{}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := s.AddClient(ctx, tc.client)
			if err == nil || tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("got error %v, want %v", err, tc.wantErr)
			}
		})
	}
	c, err := s.Client(ctx, "web")
	mustOK(t, err)
	if c.Name != "Web" {
		t.Errorf("got name %q, want the first registration's %q", c.Name, "Web")
	}
}

func testAddUser(t *testing.T, b Backend) {
	s, db := fresh(t, b)
	ctx := t.Context()
	mustOK(t, s.AddUser(ctx, &store.User{Subject: "sub-1"}, "alice", "pw"))
	var hash string
	mustOK(t, db.QueryRowContext(ctx, b.q(`SELECT password_hash FROM users WHERE subject = ?`), "sub-1").Scan(&hash))
	if !strings.HasPrefix(hash, "$argon2id$") {
		t.Errorf("got stored password hash %q, want an argon2id PHC string", hash)
	}
	tests := []struct {
		name     string
		user     *store.User
		username string
		wantErr  error // nil: any error
	}{
		{"DuplicateSubject", &store.User{Subject: "sub-1"}, "bob", store.ErrAlreadyExists},
		{"DuplicateUsername", &store.User{Subject: "sub-2"}, "alice", store.ErrAlreadyExists},
		{"Nil", nil, "carol", nil},
		{"EmptySubject", &store.User{}, "carol", nil},
		{"EmptyUsername", &store.User{Subject: "sub-3"}, "", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := s.AddUser(ctx, tc.user, tc.username, "pw")
			if err == nil || tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("got error %v, want %v", err, tc.wantErr)
			}
		})
	}
	// Usernames are matched exactly.
	_, err := s.Authenticate(ctx, "Alice", "pw")
	mustErrIs(t, err, store.ErrInvalidCredentials)
}

func testPutClient(t *testing.T, b Backend) {
	s, _ := fresh(t, b)
	ctx := t.Context()
	mustOK(t, s.PutClient(ctx, &store.Client{ID: "api", Name: "API", SecretHash: "h1", Scopes: []string{"a"}}))
	mustOK(t, s.PutClient(ctx, &store.Client{ID: "api", Name: "API v2", SecretHash: "h2", Introspect: true}))
	c, err := s.Client(ctx, "api")
	mustOK(t, err)
	if c.Name != "API v2" || c.SecretHash != "h2" || !c.Introspect || len(c.Scopes) != 0 {
		t.Errorf("got %+v, want the second registration", c)
	}
	mustErrIs(t, s.AddClient(ctx, &store.Client{ID: "api"}), store.ErrAlreadyExists)
	if err := s.PutClient(ctx, nil); err == nil {
		t.Error("PutClient(nil): got nil error, want one")
	}
}

func testSetPassword(t *testing.T, b Backend) {
	s, _ := fresh(t, b)
	ctx := t.Context()
	mustOK(t, s.AddUser(ctx, &store.User{Subject: "sub-1"}, "alice", "old"))
	mustOK(t, s.SetPassword(ctx, "alice", "new"))
	if _, err := s.Authenticate(ctx, "alice", "old"); !errors.Is(err, store.ErrInvalidCredentials) {
		t.Errorf("old password: got %v, want ErrInvalidCredentials", err)
	}
	sub, err := s.Authenticate(ctx, "alice", "new")
	if err != nil || sub != "sub-1" {
		t.Errorf("new password: got %q, %v, want sub-1", sub, err)
	}
	mustErrIs(t, s.SetPassword(ctx, "nobody", "x"), store.ErrNotFound)
}

// sentinels are the errors that tell a caller something about the request;
// an operational failure must wrap none of them.
var sentinels = []error{store.ErrNotFound, store.ErrConsumed, store.ErrAlreadyExists, store.ErrInvalidCredentials}

// notSentinel fails the test if err is nil or wraps a sentinel.
func notSentinel(t *testing.T, name string, err error) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: got nil error, want one", name)
		return
	}
	for _, s := range sentinels {
		if errors.Is(err, s) {
			t.Errorf("%s: got error %v, want one wrapping no sentinel (not %v)", name, err, s)
		}
	}
	if !strings.HasPrefix(err.Error(), "sqlstore: ") {
		t.Errorf("%s: got error %q, want the prefix %q", name, err, "sqlstore: ")
	}
}

func testInvalidKind(t *testing.T, b Backend) {
	const bad = store.Kind("bogus")
	s, _ := fresh(t, b)
	ctx := t.Context()
	_, grantErr := s.Grant(ctx, bad, "sig")
	for name, err := range map[string]error{
		"CreateGrant":    s.CreateGrant(ctx, &store.Grant{Kind: bad, Signature: "sig"}),
		"CreateGrantNil": s.CreateGrant(ctx, nil),
		"Grant":          grantErr,
		"Consume":        s.Consume(ctx, bad, "sig"),
		"Delete":         s.Delete(ctx, bad, "sig"),
		"Revoke":         s.Revoke(ctx, bad, "req"),
	} {
		notSentinel(t, name, err)
	}
}

func testTablePrefix(t *testing.T, b Backend) {
	o := b.NewDatabase(t)
	plain, _ := open(t, o, b.Config())
	cfg := b.Config()
	cfg.TablePrefix = "px_"
	prefixed, db := open(t, o, cfg)
	ctx := t.Context()
	mustOK(t, prefixed.AddClient(ctx, &store.Client{ID: "web"}))
	_, err := plain.Client(ctx, "web")
	mustErrIs(t, err, store.ErrNotFound)
	var n int
	mustOK(t, db.QueryRowContext(ctx, `SELECT count(*) FROM px_clients`).Scan(&n))
	if n != 1 {
		t.Errorf("got %d rows in px_clients, want 1", n)
	}
	if got := migrationRows(t, db, "px_pixie_migrations"); len(got) == 0 {
		t.Error("px_pixie_migrations is empty")
	}
	// Both installations work side by side.
	mustOK(t, plain.CreateGrant(ctx, newGrant(store.KindAuthorizeCode, "code-1", "req-1")))
	mustOK(t, prefixed.CreateGrant(ctx, newGrant(store.KindAuthorizeCode, "code-1", "req-1")))
	mustOK(t, plain.Consume(ctx, store.KindAuthorizeCode, "code-1"))
	mustOK(t, prefixed.Consume(ctx, store.KindAuthorizeCode, "code-1"))
	for _, st := range []*sqlstore.Store{plain, prefixed} {
		if h, err := st.AddHit(ctx, "key-1", time.Now(), time.Minute); err != nil || h.Count != 1 {
			t.Errorf("AddHit: got %+v, %v, want count 1 in each installation", h, err)
		}
	}
	mustOK(t, prefixed.SaveConsent(ctx, &store.Consent{Subject: "sub-1", ClientID: "web", Scopes: []string{"openid"}, ExpiresAt: time.Now().Add(time.Hour)}))
	if got, err := plain.Consent(ctx, "sub-1", "web", ""); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Consent: got %+v, %v, want none in the other installation", got, err)
	}

	for _, bad := range []string{"Px_", "1px", "px-", strings.Repeat("p", 41)} {
		cfg.TablePrefix = bad
		if _, _, err := o(cfg); err == nil || !strings.Contains(err.Error(), "TablePrefix") {
			t.Errorf("TablePrefix %q: got error %v, want one naming TablePrefix", bad, err)
		}
	}
}

// testDatabaseDown checks that an unreachable database yields operational
// errors, never a sentinel that would make pixie answer invalid_grant or
// invalid_client (or "wrong password") for an outage.
func testDatabaseDown(t *testing.T, b Backend) {
	s, db := fresh(t, b)
	ctx := t.Context()
	mustOK(t, s.AddUser(ctx, &store.User{Subject: "sub-1"}, "alice", "pw"))
	mustOK(t, s.Ping(ctx))
	mustOK(t, db.Close())

	_, clientErr := s.Client(ctx, "web")
	_, userErr := s.User(ctx, "sub-1")
	_, authErr := s.Authenticate(ctx, "alice", "pw")
	_, unknownErr := s.Authenticate(ctx, "mallory", "pw")
	_, grantErr := s.Grant(ctx, store.KindAuthorizeCode, "code-1")
	_, keysErr := s.Keys(ctx)
	_, expiredErr := s.DeleteExpired(ctx, time.Now())
	_, txErr := s.BeginTx(ctx)
	_, consentErr := s.Consent(ctx, "sub-1", "web", "")
	_, addHitErr := s.AddHit(ctx, "key-1", time.Now(), time.Minute)
	_, hitsErr := s.Hits(ctx, "key-1", time.Now())
	_, sessionErr := s.Session(ctx, "sid-1")
	for name, err := range map[string]error{
		"Ping":                s.Ping(ctx),
		"Client":              clientErr,
		"AddClient":           s.AddClient(ctx, &store.Client{ID: "web"}),
		"User":                userErr,
		"Authenticate":        authErr,
		"AuthenticateUnknown": unknownErr,
		"CreateGrant":         s.CreateGrant(ctx, newGrant(store.KindAuthorizeCode, "code-1", "req-1")),
		"Grant":               grantErr,
		"Consume":             s.Consume(ctx, store.KindAuthorizeCode, "code-1"),
		"Delete":              s.Delete(ctx, store.KindAuthorizeCode, "code-1"),
		"Revoke":              s.Revoke(ctx, store.KindAccessToken, "req-1"),
		"Keys":                keysErr,
		"AddKey":              s.AddKey(ctx, store.Key{ID: "kid-1"}),
		"DeleteExpired":       expiredErr,
		"BeginTx":             txErr,
		"Consent":             consentErr,
		"SaveConsent":         s.SaveConsent(ctx, &store.Consent{Subject: "sub-1", ClientID: "web", Scopes: []string{"openid"}, ExpiresAt: time.Now()}),
		"AddHit":              addHitErr,
		"Hits":                hitsErr,
		"ResetHits":           s.ResetHits(ctx, "key-1"),
		"CreateSession":       s.CreateSession(ctx, &store.Session{ID: "sid-1", Subject: "sub-1"}),
		"Session":             sessionErr,
		"TouchSession":        s.TouchSession(ctx, "sid-1", time.Now()),
		"RevokeSession":       s.RevokeSession(ctx, "sid-1"),
		"RevokeSessions":      s.RevokeSessions(ctx, "sub-1"),
	} {
		notSentinel(t, name, err)
	}
}
