package handlers_test

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"database/sql/driver"
	"encoding/base64"
	"encoding/json"
	"html"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/pixieauth/pixie/handlers"
	"github.com/pixieauth/pixie/internal/pgtest"
	"github.com/pixieauth/pixie/provider"
	"github.com/pixieauth/pixie/store"
	"github.com/pixieauth/pixie/store/memory"
	"github.com/pixieauth/pixie/store/sqlstore"
	"github.com/pixieauth/pixie/store/sqlstore/sqlite"
)

// maxRoundTripsPerFlow is the most statements (each a round trip to
// PostgreSQL) that one authorization-code flow may send: GET /authorize
// with a logged-in session, then POST /oauth/token redeeming the code.
// Issue 9's target is 6. Measured: 4 with the app's clients and users in
// memory (the session; the code's one record; the code read back; the
// exchange's writes in one store.Batcher statement), 5 with the users in
// SQL too (the user's profile for the ID token). Client registrations are
// cached (provider.Config.ClientCacheTTL).
const maxRoundTripsPerFlow = 5

// maxRoundTripsPerRefresh is the same for one refresh-token exchange: the
// token read, the user's profile (in SQL), the batch.
const maxRoundTripsPerRefresh = 3

// TestRoundTrips counts the statements a full flow and a refresh send to
// the database through the real handler, configured as example/server is
// (clients and users in memory, as the app's own; grants, keys, login
// sessions, consents and the throttle in the SQL store), and fails if a
// flow or a refresh on PostgreSQL sends more than its ceiling. It logs
// each statement's SQL (never its arguments, which hold digests and
// tokens' data). The ceilings also hold for PostgreSQL holding the clients
// and users too ("postgres/app-in-sql"). For information only, without a
// ceiling, it also counts SQLite, where a statement is no network round
// trip.
func TestRoundTrips(t *testing.T) {
	for _, be := range []struct {
		name     string
		open     func(t *testing.T) (*sqlstore.Store, *stmtCounter)
		appInSQL bool // clients and users in the SQL store, not in memory
		ceiling  bool // whether the ceilings apply
	}{
		{"postgres", openCountedPostgres, false, true},
		{"postgres/app-in-sql", openCountedPostgres, true, true},
		{"sqlite", openCountedSQLite, false, false},
	} {
		t.Run(be.name, func(t *testing.T) {
			st, counter := be.open(t)
			f := newCountedFlow(t, st, be.appInSQL)
			// A first flow and refresh warm up what is prepared or
			// cached once: the statements on the pool's connection, the
			// signing keys.
			f.refresh(t, f.flow(t))
			counter.take()

			f.authorize(t)
			authorize := counter.take()
			rt := f.token(t)
			token := counter.take()
			f.refresh(t, rt)
			refresh := counter.take()

			report := func(step string, c counted) {
				t.Logf("%s: %d statements, %d preparations", step, len(c.statements), c.prepares)
				for i, s := range c.statements {
					t.Logf("  %2d. %s", i+1, s)
				}
			}
			report("GET /authorize", authorize)
			report("POST /oauth/token (authorization_code)", token)
			report("POST /oauth/token (refresh_token)", refresh)
			flow := len(authorize.statements) + len(token.statements)
			t.Logf("per flow: %d statements; per refresh: %d", flow, len(refresh.statements))
			if !be.ceiling {
				return
			}
			if flow > maxRoundTripsPerFlow {
				t.Errorf("a flow sent %d statements, want at most %d (maxRoundTripsPerFlow)", flow, maxRoundTripsPerFlow)
			}
			if n := len(refresh.statements); n > maxRoundTripsPerRefresh {
				t.Errorf("a refresh sent %d statements, want at most %d (maxRoundTripsPerRefresh)", n, maxRoundTripsPerRefresh)
			}
		})
	}
}

// ---- counting ----

// stmtCounter records the statements sent to a database, and counts the
// preparations. It is safe for concurrent use.
type stmtCounter struct {
	mu  sync.Mutex
	got counted
}

// counted is what a stmtCounter saw.
type counted struct {
	statements []string // the SQL of each, whitespace collapsed
	prepares   int      // statements prepared on a connection
}

func (c *stmtCounter) statement(query string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.got.statements = append(c.got.statements, strings.Join(strings.Fields(query), " "))
}

func (c *stmtCounter) prepared() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.got.prepares++
}

// take returns what c saw since the last call, and forgets it.
func (c *stmtCounter) take() counted {
	c.mu.Lock()
	defer c.mu.Unlock()
	got := c.got
	c.got = counted{}
	return got
}

// pgxCounter is a pgx tracer feeding a stmtCounter: every query pgx sends
// is a statement (BEGIN and COMMIT are queries too), and every preparation
// that is not already done on the connection is counted.
type pgxCounter struct{ c *stmtCounter }

func (p pgxCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	p.c.statement(data.SQL) // the SQL only: data.Args hold digests and tokens' data
	return ctx
}

func (pgxCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (pgxCounter) TracePrepareStart(ctx context.Context, _ *pgx.Conn, _ pgx.TracePrepareStartData) context.Context {
	return ctx
}

func (p pgxCounter) TracePrepareEnd(_ context.Context, _ *pgx.Conn, data pgx.TracePrepareEndData) {
	if !data.AlreadyPrepared {
		p.c.prepared()
	}
}

// openCountedPostgres opens a SQL store on a fresh PostgreSQL schema
// through a pool whose statements c counts, or skips the test.
func openCountedPostgres(t *testing.T) (*sqlstore.Store, *stmtCounter) {
	t.Helper()
	cfg, err := pgx.ParseConfig(pgtest.FreshSchema(t))
	if err != nil {
		t.Fatal(err)
	}
	c := &stmtCounter{}
	cfg.Tracer = pgxCounter{c}
	db := stdlib.OpenDB(*cfg)
	t.Cleanup(func() { _ = db.Close() })
	st, err := sqlstore.New(t.Context(), db, sqlstore.Config{Dialect: sqlstore.Postgres, KeySecret: testKeySecret})
	if err != nil {
		t.Fatalf("sqlstore.New: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st, c
}

// openCountedSQLite opens a SQL store on a fresh SQLite file as package
// sqlite does (its DSN, one connection), through a driver whose statements
// c counts.
func openCountedSQLite(t *testing.T) (*sqlstore.Store, *stmtCounter) {
	t.Helper()
	plain, err := sql.Open("sqlite", "")
	if err != nil {
		t.Fatal(err)
	}
	drv := plain.Driver()
	_ = plain.Close()
	c := &stmtCounter{}
	db := sql.OpenDB(countingConnector{drv, sqlite.DSN(filepath.Join(t.TempDir(), "pixie.db")), c})
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { _ = db.Close() })
	st, err := sqlstore.New(t.Context(), db, sqlstore.Config{Dialect: sqlstore.SQLite, KeySecret: testKeySecret})
	if err != nil {
		t.Fatalf("sqlstore.New: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st, c
}

// countingConnector opens connections of drv whose statements c counts.
// The connections have the methods of modernc.org/sqlite's that
// database/sql uses.
type countingConnector struct {
	drv driver.Driver
	dsn string
	c   *stmtCounter
}

func (k countingConnector) Connect(context.Context) (driver.Conn, error) {
	conn, err := k.drv.Open(k.dsn)
	if err != nil {
		return nil, err
	}
	return countingConn{conn, k.c}, nil
}

func (k countingConnector) Driver() driver.Driver { return k.drv }

type countingConn struct {
	driver.Conn
	c *stmtCounter
}

func (w countingConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	st, err := w.Conn.(driver.ConnPrepareContext).PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	w.c.prepared()
	return countingStmt{st, query, w.c}, nil
}

func (w countingConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	w.c.statement("BEGIN")
	tx, err := w.Conn.(driver.ConnBeginTx).BeginTx(ctx, opts)
	if err != nil {
		return nil, err
	}
	return countingTx{tx, w.c}, nil
}

func (w countingConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	w.c.statement(query)
	return w.Conn.(driver.ExecerContext).ExecContext(ctx, query, args)
}

func (w countingConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	w.c.statement(query)
	return w.Conn.(driver.QueryerContext).QueryContext(ctx, query, args)
}

func (w countingConn) ResetSession(ctx context.Context) error {
	return w.Conn.(driver.SessionResetter).ResetSession(ctx)
}

func (w countingConn) IsValid() bool { return w.Conn.(driver.Validator).IsValid() }

type countingStmt struct {
	driver.Stmt
	query string
	c     *stmtCounter
}

func (s countingStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	s.c.statement(s.query)
	return s.Stmt.(driver.StmtExecContext).ExecContext(ctx, args)
}

func (s countingStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	s.c.statement(s.query)
	return s.Stmt.(driver.StmtQueryContext).QueryContext(ctx, args)
}

type countingTx struct {
	driver.Tx
	c *stmtCounter
}

func (x countingTx) Commit() error {
	x.c.statement("COMMIT")
	return x.Tx.Commit()
}

func (x countingTx) Rollback() error {
	x.c.statement("ROLLBACK")
	return x.Tx.Rollback()
}

// ---- the flow ----

// countedFlow is pixie on a SQL store, configured as example/server is,
// with a logged-in session of alice's; with appInSQL, the clients and
// users are in the SQL store too.
type countedFlow struct {
	h        http.Handler
	issuer   string
	cookies  []*http.Cookie
	verifier string
	auth     string // the authorize URL, PKCE challenge included
	code     string // the code of the last authorize
}

func newCountedFlow(t *testing.T, st *sqlstore.Store, appInSQL bool) *countedFlow {
	t.Helper()
	const issuer = "http://127.0.0.1:8080"
	alice := &store.User{Subject: "alice", PreferredUsername: aliceUsername, Name: aliceName, Email: aliceEmail}
	client := &store.Client{
		ID: nativeClient, Name: "Example App", Native: true, FirstParty: true,
		RedirectURIs: []string{loopbackURI}, Scopes: strings.Fields(allScopes),
	}
	var clients store.Clients
	var users store.Users
	if appInSQL {
		if err := st.AddUser(t.Context(), alice, aliceUsername, alicePassword); err != nil {
			t.Fatal(err)
		}
		if err := st.AddClient(t.Context(), client); err != nil {
			t.Fatal(err)
		}
		clients, users = st, st
	} else {
		demo := memory.New() // the app's own clients and users
		if err := demo.AddUser(t.Context(), alice, aliceUsername, alicePassword); err != nil {
			t.Fatal(err)
		}
		if err := demo.AddClient(t.Context(), client); err != nil {
			t.Fatal(err)
		}
		clients, users = demo, demo
	}
	p, err := provider.New(t.Context(), provider.Config{
		Issuer:  issuer,
		Clients: clients, Users: users, Grants: st, Keys: st,
		CleanupInterval: -1, // no background statements
		Logger:          slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatalf("provider.New: %v", err)
	}
	h, err := handlers.New(p, handlers.Config{Consents: st, Throttle: st, Sessions: st})
	if err != nil {
		t.Fatalf("handlers.New: %v", err)
	}
	verifier := strings.Repeat("v", 43)
	sum := sha256.Sum256([]byte(verifier))
	q := url.Values{
		"response_type":         {"code"},
		"client_id":             {nativeClient},
		"redirect_uri":          {"http://127.0.0.1:5000/callback"},
		"scope":                 {allScopes},
		"state":                 {"state-0123456789"},
		"nonce":                 {"nonce-0123456789"},
		"code_challenge":        {base64.RawURLEncoding.EncodeToString(sum[:])},
		"code_challenge_method": {"S256"},
	}
	f := &countedFlow{h: h, issuer: issuer, verifier: verifier, auth: issuer + "/authorize?" + q.Encode()}

	// Log in through the login page.
	rec := f.do(httptest.NewRequest(http.MethodGet, issuer+"/login?"+q.Encode(), nil))
	form := url.Values{"username": {aliceUsername}, "password": {alicePassword}}
	for _, m := range hiddenInput.FindAllStringSubmatch(rec.Body.String(), -1) {
		form.Set(m[1], html.UnescapeString(m[2]))
	}
	req := httptest.NewRequest(http.MethodPost, issuer+"/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", issuer)
	for _, c := range rec.Result().Cookies() {
		req.AddCookie(c)
	}
	rec = f.do(req)
	if rec.Code != http.StatusSeeOther {
		t.Fatalf("login: got status %d, want 303", rec.Code)
	}
	f.cookies = rec.Result().Cookies()
	if len(f.cookies) == 0 {
		t.Fatal("login set no cookie")
	}
	return f
}

func (f *countedFlow) do(r *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, r)
	return rec
}

// flow runs authorize and token, and returns the refresh token.
func (f *countedFlow) flow(t *testing.T) string {
	t.Helper()
	f.authorize(t)
	return f.token(t)
}

// authorize gets a code with the logged-in session.
func (f *countedFlow) authorize(t *testing.T) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, f.auth, nil)
	for _, c := range f.cookies {
		req.AddCookie(c)
	}
	rec := f.do(req)
	loc, err := url.Parse(rec.Header().Get("Location"))
	if rec.Code != http.StatusSeeOther || err != nil || loc.Query().Get("code") == "" {
		t.Fatalf("authorize: got %d %q, want a redirect with a code", rec.Code, rec.Header().Get("Location"))
	}
	f.code = loc.Query().Get("code")
}

// token redeems the code of the last authorize, and returns the refresh
// token.
func (f *countedFlow) token(t *testing.T) string {
	t.Helper()
	return f.tokenRequest(t, url.Values{
		"grant_type":    {"authorization_code"},
		"code":          {f.code},
		"code_verifier": {f.verifier},
		"redirect_uri":  {"http://127.0.0.1:5000/callback"},
		"client_id":     {nativeClient},
	})
}

// refresh redeems a refresh token, and returns the new one.
func (f *countedFlow) refresh(t *testing.T, refreshToken string) string {
	t.Helper()
	return f.tokenRequest(t, url.Values{
		"grant_type":    {"refresh_token"},
		"refresh_token": {refreshToken},
		"client_id":     {nativeClient},
	})
}

func (f *countedFlow) tokenRequest(t *testing.T, form url.Values) string {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, f.issuer+"/oauth/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec := f.do(req)
	if rec.Code != http.StatusOK {
		t.Fatalf("token (%s): got %d %s, want 200", form.Get("grant_type"), rec.Code, rec.Body)
	}
	var tok struct {
		AccessToken  string `json:"access_token"`
		IDToken      string `json:"id_token"`
		RefreshToken string `json:"refresh_token"`
	}
	if err := json.NewDecoder(rec.Body).Decode(&tok); err != nil || tok.AccessToken == "" || tok.IDToken == "" || tok.RefreshToken == "" {
		t.Fatalf("token (%s): got %s, want an access token, an ID token and a refresh token", form.Get("grant_type"), rec.Body)
	}
	return tok.RefreshToken
}
