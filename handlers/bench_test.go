package handlers_test

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pixieauth/pixie/handlers"
	"github.com/pixieauth/pixie/provider"
	"github.com/pixieauth/pixie/store"
	"github.com/pixieauth/pixie/store/memory"
	"github.com/pixieauth/pixie/store/sqlstore"
	"github.com/pixieauth/pixie/store/sqlstore/postgres"
	"github.com/pixieauth/pixie/store/sqlstore/sqlite"
)

// BenchmarkFlow measures one full authorization-code flow in process, through
// the real http.Handler: GET /authorize with a logged-in session (PKCE S256,
// openid profile email offline_access) and POST /oauth/token redeeming the
// code with its verifier, which mints an access token, a refresh token and a
// signed ID token. It reports flows/s for each signing algorithm and storage
// backend (PostgreSQL with PIXIE_TEST_POSTGRES_DSN set). Run:
//
//	go test -run '^$' -bench Flow -benchtime 2s ./handlers/
func BenchmarkFlow(b *testing.B) {
	for _, be := range benchBackends {
		for _, alg := range benchAlgs {
			b.Run(be.name+"/"+alg, func(b *testing.B) {
				f := newBenchFlow(b, alg, be.open(b))
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					f.run(b)
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "flows/s")
			})
		}
	}
}

// BenchmarkRefresh measures one refresh-token rotation through the real
// http.Handler: POST /oauth/token with the last refresh token, which
// consumes it and mints an access token, a refresh token and a signed ID
// token (as an app start does). A chain of rotations, as one app makes.
//
//	go test -run '^$' -bench Refresh -benchtime 2s ./handlers/
func BenchmarkRefresh(b *testing.B) {
	for _, be := range benchBackends {
		for _, alg := range benchAlgs {
			b.Run(be.name+"/"+alg, func(b *testing.B) {
				f := newBenchFlow(b, alg, be.open(b))
				rt := f.run(b).RefreshToken
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					rt = f.refresh(b, rt).RefreshToken
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "refreshes/s")
			})
		}
	}
}

// BenchmarkFlowParallel is BenchmarkFlow from GOMAXPROCS goroutines at once.
func BenchmarkFlowParallel(b *testing.B) {
	for _, be := range benchBackends {
		for _, alg := range benchAlgs {
			b.Run(be.name+"/"+alg, func(b *testing.B) {
				f := newBenchFlow(b, alg, be.open(b))
				b.ReportAllocs()
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						f.run(b)
					}
				})
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "flows/s")
			})
		}
	}
}

// benchAlgs are the signing choices benchmarked: the default (RS256 ID
// tokens, ES256 access tokens), ES256 for both, and RS256 for both.
var benchAlgs = []string{"RS256", "ES256", "RS256+RS256at"}

// benchStore is a backend under benchmark with its registration methods.
type benchStore struct {
	st interface {
		store.Clients
		store.Users
		store.Grants
		store.Keys
	}
	addClient func(context.Context, *store.Client) error
	addUser   func(ctx context.Context, u *store.User, username, password string) error
}

var benchBackends = []struct {
	name string
	open func(b *testing.B) benchStore
}{
	{"memory", func(*testing.B) benchStore {
		st := memory.New()
		return benchStore{st, st.AddClient, st.AddUser}
	}},
	{"sqlite", func(b *testing.B) benchStore {
		st, err := sqlite.Open(b.Context(), filepath.Join(b.TempDir(), "pixie.db"), sqlstore.Config{KeySecret: benchKeySecret})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { st.Close() })
		return sqlBenchStore(b, st.Store)
	}},
	{"postgres", func(b *testing.B) benchStore {
		dsn := os.Getenv("PIXIE_TEST_POSTGRES_DSN")
		if dsn == "" {
			b.Skip("set PIXIE_TEST_POSTGRES_DSN to benchmark on PostgreSQL")
		}
		st, err := postgres.Open(b.Context(), benchSchema(b, dsn), sqlstore.Config{KeySecret: benchKeySecret})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { st.Close() })
		return sqlBenchStore(b, st.Store)
	}},
}

var benchKeySecret = []byte("benchmark key-encryption secret, 32+ bytes")

func sqlBenchStore(_ *testing.B, st *sqlstore.Store) benchStore {
	return benchStore{st, st.AddClient, st.AddUser}
}

// benchSchema creates a fresh PostgreSQL schema, dropped after the
// benchmark, and returns a DSN that selects it.
func benchSchema(b *testing.B, dsn string) string {
	admin, err := sql.Open("pgx", dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer admin.Close()
	schema := fmt.Sprintf("pixie_bench_%d", time.Now().UnixNano())
	if _, err := admin.ExecContext(b.Context(), "CREATE SCHEMA "+schema); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		admin, err := sql.Open("pgx", dsn)
		if err == nil {
			_, _ = admin.ExecContext(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
			admin.Close()
		}
	})
	u, err := url.Parse(dsn)
	if err != nil || u.Scheme == "" {
		return dsn + " search_path=" + schema
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

type benchFlow struct {
	h        http.Handler
	key      *dpopKey // if set, token requests carry a DPoP proof of it
	proofs   []string // the proofs of key ready for the token requests
	cookie   *http.Cookie
	verifier string
	auth     string // the authorize URL, PKCE challenge included
}

var hiddenInput = regexp.MustCompile(`name="(csrf_token|request)" value="([^"]*)"`)

func newBenchFlow(b *testing.B, alg string, bs benchStore) *benchFlow {
	b.Helper()
	ctx := context.Background()
	const issuer = "http://127.0.0.1:8080"
	st := bs.st
	if err := bs.addUser(ctx, &store.User{Subject: "alice", Name: "Alice", Email: "alice@example.com"}, "alice", "correct horse"); err != nil {
		b.Fatal(err)
	}
	if err := bs.addClient(ctx, &store.Client{
		ID: "app", Native: true, FirstParty: true,
		RedirectURIs: []string{"http://127.0.0.1/callback"},
		Scopes:       []string{"openid", "profile", "email", "offline_access"},
	}); err != nil {
		b.Fatal(err)
	}
	p, err := provider.New(ctx, provider.Config{
		Issuer: issuer, Clients: st, Users: st, Grants: st, Keys: st,
		IDTokenAlg:     strings.TrimSuffix(alg, "+RS256at"),
		AccessTokenAlg: map[bool]string{true: provider.RS256, false: provider.ES256}[strings.HasSuffix(alg, "+RS256at")],
		Logger:         slog.New(slog.DiscardHandler),
	})
	if err != nil {
		b.Fatal(err)
	}
	mux := http.NewServeMux()
	if err := handlers.Mount(mux, p); err != nil {
		b.Fatal(err)
	}
	verifier := strings.Repeat("v", 43)
	sum := sha256.Sum256([]byte(verifier))
	q := url.Values{
		"response_type":         {"code"},
		"client_id":             {"app"},
		"redirect_uri":          {"http://127.0.0.1:5000/callback"},
		"scope":                 {"openid profile email offline_access"},
		"state":                 {"state-0123456789"},
		"nonce":                 {"nonce-0123456789"},
		"code_challenge":        {base64.RawURLEncoding.EncodeToString(sum[:])},
		"code_challenge_method": {"S256"},
	}
	f := &benchFlow{h: mux, verifier: verifier, auth: issuer + "/authorize?" + q.Encode()}

	// Log in once through the login page to get the session cookie.
	rec := f.do(httptest.NewRequest(http.MethodGet, issuer+"/login?"+q.Encode(), nil))
	form := url.Values{"username": {"alice"}, "password": {"correct horse"}}
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
		b.Fatalf("login: got status %d, want 303", rec.Code)
	}
	for _, c := range rec.Result().Cookies() {
		f.cookie = c
	}
	if f.cookie == nil {
		b.Fatal("login set no cookie")
	}
	f.run(b) // fail fast if the flow is broken
	return f
}

func (f *benchFlow) do(r *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, r)
	return rec
}

// benchTokens is what the benchmarks read of a token response.
type benchTokens struct {
	AccessToken  string `json:"access_token"`
	IDToken      string `json:"id_token"`
	RefreshToken string `json:"refresh_token"`
}

// refresh redeems a refresh token and returns the new tokens.
func (f *benchFlow) refresh(b *testing.B, rt string) benchTokens {
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {"app"}}
	req := httptest.NewRequest(http.MethodPost, "http://127.0.0.1:8080/oauth/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec := f.do(req)
	var tok benchTokens
	if rec.Code != http.StatusOK || json.NewDecoder(rec.Body).Decode(&tok) != nil || tok.RefreshToken == "" || tok.IDToken == "" {
		b.Fatalf("refresh: got %d %s, want new tokens", rec.Code, rec.Body)
	}
	return tok
}

// run performs one authorize + token exchange.
func (f *benchFlow) run(b *testing.B) benchTokens {
	req := httptest.NewRequest(http.MethodGet, f.auth, nil)
	req.AddCookie(f.cookie)
	rec := f.do(req)
	loc, err := url.Parse(rec.Header().Get("Location"))
	if rec.Code != http.StatusSeeOther || err != nil || loc.Query().Get("code") == "" {
		b.Fatalf("authorize: got %d %q, want a redirect with a code", rec.Code, rec.Header().Get("Location"))
	}
	form := url.Values{
		"grant_type":    {"authorization_code"},
		"code":          {loc.Query().Get("code")},
		"code_verifier": {f.verifier},
		"redirect_uri":  {"http://127.0.0.1:5000/callback"},
		"client_id":     {"app"},
	}
	req = httptest.NewRequest(http.MethodPost, "http://127.0.0.1:8080/oauth/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if f.key != nil {
		req.Header.Set("DPoP", f.key.nextProof(b, &f.proofs, http.MethodPost, "http://127.0.0.1:8080/oauth/token", ""))
	}
	rec = f.do(req)
	if rec.Code != http.StatusOK {
		b.Fatalf("token: got %d %s, want 200", rec.Code, rec.Body)
	}
	var tok benchTokens
	if err := json.NewDecoder(io.Reader(rec.Body)).Decode(&tok); err != nil || tok.IDToken == "" || tok.RefreshToken == "" {
		b.Fatalf("token: got %s, want an ID token and a refresh token", rec.Body)
	}
	return tok
}
