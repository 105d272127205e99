package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"

	"github.com/pixieauth/pixie/handlers"
	"github.com/pixieauth/pixie/internal/dpoptest"
	"github.com/pixieauth/pixie/internal/testbrowser"
	"github.com/pixieauth/pixie/provider"
	"github.com/pixieauth/pixie/store"
	"github.com/pixieauth/pixie/store/memory"
)

const (
	testAudience = "https://api.example.com"
	testClientID = "example-native"
	testUser     = "alice"
	testPassword = "correct horse battery staple"
)

// syncBuffer is a program's output: written by its goroutines, read by the
// test.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// pixie is a real pixie server on an httptest.Server, registered like
// example/server's demo: the API testAudience with read:messages and
// write:messages, the first-party native client example-native that may
// ask for it, and alice.
type pixie struct {
	url string
	p   *provider.Provider
}

func startPixie(t *testing.T) *pixie {
	t.Helper()
	st := memory.New()
	if err := st.AddUser(t.Context(), &store.User{Subject: "alice", PreferredUsername: "alice", Name: "Alice Example"}, testUser, testPassword); err != nil {
		t.Fatal(err)
	}
	err := st.AddClient(t.Context(), &store.Client{
		ID:           testClientID,
		Name:         "Example App",
		RedirectURIs: []string{"http://127.0.0.1/callback"},
		Scopes:       []string{"openid", "profile", "offline_access", "read:messages", "write:messages"},
		APIs:         []string{testAudience},
		Native:       true,
		FirstParty:   true,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(nil)
	s := &pixie{url: "http://" + srv.Listener.Addr().String()}
	s.p, err = provider.New(t.Context(), provider.Config{
		Issuer:  s.url,
		Clients: st, Users: st, Grants: st, Keys: st,
		APIs:   []provider.API{{Identifier: testAudience, Scopes: []string{"read:messages", "write:messages"}}},
		Logger: slog.New(slog.NewTextHandler(t.Output(), nil)),
		// A rotated key signs two intervals after RotateKeys: keep that short.
		KeyRefreshInterval: keyRefresh,
	})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	if err := handlers.Mount(mux, s.p); err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = mux
	srv.Start()
	t.Cleanup(srv.Close)
	return s
}

// token logs alice in with a browser and returns the access token of the
// code exchange: authorization code with PKCE S256, asking for scopes and,
// unless audience is "", for a token for that API.
func (s *pixie) token(t *testing.T, scopes, audience string) string {
	t.Helper()
	cfg := &oauth2.Config{
		ClientID: testClientID,
		Endpoint: oauth2.Endpoint{
			AuthURL:   s.url + handlers.PathAuthorize,
			TokenURL:  s.url + handlers.PathToken,
			AuthStyle: oauth2.AuthStyleInParams,
		},
		RedirectURL: "http://127.0.0.1/callback",
		Scopes:      strings.Fields(scopes),
	}
	verifier := oauth2.GenerateVerifier()
	opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(verifier)}
	if audience != "" {
		opts = append(opts, oauth2.SetAuthURLParam("audience", audience))
	}
	to, err := testbrowser.Login(t.Context(), testbrowser.NewClient(), cfg.AuthCodeURL("state-0123456789", opts...), testUser, testPassword)
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	code := to.Query().Get("code")
	if code == "" {
		t.Fatalf("login: redirect without a code: error %q %q", to.Query().Get("error"), to.Query().Get("error_description"))
	}
	tok, err := cfg.Exchange(t.Context(), code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	return tok.AccessToken
}

// startAPI runs the example API (run, as main does) on 127.0.0.1:0 for the
// issuer, with args, and returns its base URL and output once it accepts
// connections. Cleanup stops it and fails t if run then returns an error.
func startAPI(t *testing.T, issuer string, args ...string) (string, *syncBuffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	out := &syncBuffer{}
	ready := make(chan string, 1)
	done := make(chan error, 1)
	args = append([]string{"-addr", "127.0.0.1:0", "-issuer", issuer, "-log-level", "debug"}, args...)
	go func() {
		done <- run(ctx, args, func(string) string { return "" }, out, func(u string) { ready <- u })
	}()
	var base string
	select {
	case base = <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("run returned before listening: %v\noutput:\n%s", err, out)
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: got %v, want nil after cancel\noutput:\n%s", err, out)
		}
	})
	return base, out
}

// call sends method url with the bearer token (none if "") and a JSON body
// (none if ""), and returns the response and its body.
func call(t *testing.T, method, url, token, body string) (*http.Response, string) {
	t.Helper()
	return callWith(t, method, url, token, body, nil)
}

// callDPoP is call with the token sent with the DPoP scheme and a DPoP
// proof (RFC 9449 §4.2, §7.1) for the request, signed by a fresh ES256 key
// with go-jose.
func callDPoP(t *testing.T, method, url, token, body string) (*http.Response, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	proof := dpoptest.Sign(t, dpoptest.Signer(t, jose.ES256, key), map[string]any{
		"jti": rand.Text(), "htm": method, "htu": url, "iat": time.Now().Unix(), "ath": dpoptest.ATH(token),
	})
	return callWith(t, method, url, token, body, func(h http.Header) {
		h.Set("Authorization", "DPoP "+token)
		h.Set("DPoP", proof)
	})
}

func callWith(t *testing.T, method, url, token, body string, edit func(http.Header)) (*http.Response, string) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if edit != nil {
		edit(req.Header)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// TestAPI drives the example API with real tokens from a real pixie: each
// case is one request, in order (a message posted by one case is read by
// the next).
func TestAPI(t *testing.T) {
	s := startPixie(t)
	api, out := startAPI(t, s.url)

	read := s.token(t, "openid profile read:messages", testAudience)
	write := s.token(t, "openid read:messages write:messages", testAudience)
	// Asked without audience: aud is the issuer, the token is for userinfo.
	noAudience := s.token(t, "openid profile", "")

	tests := []struct {
		name          string
		method, path  string
		token         string // "" sends no Authorization header
		dpop          bool   // send token with the DPoP scheme and a proof
		body          string // JSON; "" sends none
		wantStatus    int
		wantChallenge []string // in the WWW-Authenticate values; nil: the header must be absent
		wantBody      []string
	}{
		{
			name: "public needs no token", method: "GET", path: "/api/public",
			wantStatus: http.StatusOK, wantBody: []string{`"message":"Hello from example/api.`},
		},
		{
			// RFC 6750 §3.1: no token, no error code, just the realm;
			// and the DPoP scheme is offered too (RFC 9449 §7.2).
			name: "no token", method: "GET", path: "/api/messages",
			wantStatus:    http.StatusUnauthorized,
			wantChallenge: []string{`Bearer realm="` + testAudience + `"` + "\n" + `DPoP algs="ES256 RS256 PS256 EdDSA"`},
		},
		{
			// A bearer token gains nothing from a proof: with the DPoP
			// scheme it is refused, with the DPoP challenge (RFC 9449 §7.1).
			name: "bearer token with the DPoP scheme", method: "GET", path: "/api/messages", token: read, dpop: true,
			wantStatus:    http.StatusUnauthorized,
			wantChallenge: []string{`DPoP algs="ES256 RS256 PS256 EdDSA", error="invalid_token"`, "not DPoP-bound"},
		},
		{
			// The token shows who calls: alice, through example-native.
			name: "read", method: "GET", path: "/api/messages", token: read,
			wantStatus: http.StatusOK,
			wantBody:   []string{`"sub":"alice"`, `"client_id":"example-native"`, `"messages":[]`},
		},
		{
			// Valid, but without write:messages: 403 naming the scope.
			name: "post without write:messages", method: "POST", path: "/api/messages", token: read, body: `{"text":"hi"}`,
			wantStatus:    http.StatusForbidden,
			wantChallenge: []string{`error="insufficient_scope"`, `scope="write:messages"`},
			wantBody:      []string{`"error":"insufficient_scope"`},
		},
		{
			// A token for the issuer (userinfo) is not for this API.
			name: "token for another audience", method: "GET", path: "/api/messages", token: noAudience,
			wantStatus:    http.StatusUnauthorized,
			wantChallenge: []string{`error="invalid_token"`, "(aud)"},
		},
		{
			name: "post with write:messages", method: "POST", path: "/api/messages", token: write, body: `{"text":"Hello, API"}`,
			wantStatus: http.StatusCreated,
			wantBody:   []string{`"text":"Hello, API"`, `"client_id":"example-native"`},
		},
		{
			// The message is alice's, whichever of her tokens reads it.
			name: "read what was posted", method: "GET", path: "/api/messages", token: read,
			wantStatus: http.StatusOK,
			wantBody:   []string{`"sub":"alice"`, `"text":"Hello, API"`},
		},
		{
			name: "post an empty message", method: "POST", path: "/api/messages", token: write, body: `{"text":"  "}`,
			wantStatus: http.StatusBadRequest, wantBody: []string{`"error":"invalid_request"`},
		},
		{
			name: "post something else than JSON", method: "POST", path: "/api/messages", token: write, body: `text=hi`,
			wantStatus: http.StatusBadRequest, wantBody: []string{`"error":"invalid_request"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			send := call
			if tt.dpop {
				send = callDPoP
			}
			resp, body := send(t, tt.method, api+tt.path, tt.token, tt.body)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("got status %d, want %d; body %s", resp.StatusCode, tt.wantStatus, body)
			}
			challenge := strings.Join(resp.Header.Values("WWW-Authenticate"), "\n")
			if tt.wantChallenge == nil && challenge != "" {
				t.Errorf("got WWW-Authenticate %q, want none", challenge)
			}
			for _, want := range tt.wantChallenge {
				if !strings.Contains(challenge, want) {
					t.Errorf("got WWW-Authenticate %q, want it to contain %q", challenge, want)
				}
			}
			for _, want := range tt.wantBody {
				if !strings.Contains(body, want) {
					t.Errorf("got body %s, want it to contain %s", body, want)
				}
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("got Content-Type %q, want application/json", ct)
			}
		})
	}

	// Refusals are logged (at Debug), tokens never.
	logs := out.String()
	for _, tok := range []string{read, write, noAudience} {
		if strings.Contains(logs, tok) || strings.Contains(logs, tok[strings.LastIndexByte(tok, '.')+1:]) {
			t.Errorf("the API's log contains a token:\n%s", logs)
		}
	}
	if !strings.Contains(logs, "bearer token refused") {
		t.Errorf("got no refusal in the API's log:\n%s", logs)
	}
}

// keyRefresh is the test provider's KeyRefreshInterval.
const keyRefresh = time.Second

// TestKeyRotation: after pixie rotates its signing keys, a token signed with
// the new key is accepted by the running API (which refetches the JWK Set
// when it meets an unknown kid), and one signed before still is.
func TestKeyRotation(t *testing.T) {
	s := startPixie(t)
	api, _ := startAPI(t, s.url)

	before := s.token(t, "openid read:messages", testAudience)
	if resp, body := call(t, "GET", api+"/api/messages", before, ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("before rotation: got %d %s, want 200", resp.StatusCode, body)
	}

	if err := s.p.RotateKeys(t.Context()); err != nil {
		t.Fatalf("RotateKeys: %v", err)
	}
	// The new key is published at once and signs two refresh intervals
	// later (a real wait: the provider reads the wall clock).
	time.Sleep(2*keyRefresh + 50*time.Millisecond)
	after := s.token(t, "openid read:messages", testAudience)
	if kid(t, after) == kid(t, before) {
		t.Fatalf("the token after RotateKeys has the old kid %q", kid(t, before))
	}
	// The API's first unknown kid refetches at once: MinRefetchInterval
	// only limits the refetches after that one.
	if resp, body := call(t, "GET", api+"/api/messages", after, ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("after rotation, new key: got %d %s, want 200", resp.StatusCode, body)
	}
	// The old key stays published until its tokens have expired.
	if resp, body := call(t, "GET", api+"/api/messages", before, ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("after rotation, old key: got %d %s, want 200", resp.StatusCode, body)
	}
}

// kid returns the kid of a JWT's header.
func kid(t *testing.T, jwt string) string {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(jwt[:strings.IndexByte(jwt, '.')])
	if err != nil {
		t.Fatal(err)
	}
	var h struct {
		Kid string `json:"kid"`
	}
	if err := json.Unmarshal(b, &h); err != nil || h.Kid == "" {
		t.Fatalf("JWT header %s: no kid (%v)", b, err)
	}
	return h.Kid
}

// TestRunWithoutIssuer: the API will not start without the issuer's keys,
// and says what to check.
func TestRunWithoutIssuer(t *testing.T) {
	// A port that was free a moment ago: connection refused.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	issuer := "http://" + ln.Addr().String()
	ln.Close()

	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	var out syncBuffer
	err = run(ctx, []string{"-addr", "127.0.0.1:0", "-issuer", issuer}, func(string) string { return "" }, &out, func(string) {
		t.Error("ready called, want run to fail first")
	})
	if err == nil || !strings.Contains(err.Error(), "is example/server running at "+issuer) {
		t.Errorf("run: got %v, want an error that names the issuer", err)
	}
}

func TestParseOptions(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    options // logLevel not compared
		wantErr string
	}{
		{
			name: "defaults",
			want: options{addr: defaultAddr, issuer: defaultIssuer, audience: defaultAudience, jwks: defaultIssuer + jwksPath},
		},
		{
			// The JWKS URL follows -issuer unless set.
			name: "environment, flag wins",
			args: []string{"-issuer", "https://auth.example.com"},
			env:  map[string]string{"PIXIE_ISSUER": "https://ignored.example.com", "PIXIE_AUDIENCE": "https://other.example.com", "PIXIE_API_ADDR": ":9000", "PIXIE_ADDR": ":8080"},
			want: options{addr: ":9000", issuer: "https://auth.example.com", audience: "https://other.example.com", jwks: "https://auth.example.com" + jwksPath},
		},
		{
			name: "explicit jwks",
			args: []string{"-jwks", "https://keys.example.com/jwks"},
			want: options{addr: defaultAddr, issuer: defaultIssuer, audience: defaultAudience, jwks: "https://keys.example.com/jwks"},
		},
		{name: "bad issuer", args: []string{"-issuer", "auth.example.com"}, wantErr: "-issuer"},
		{name: "empty audience", args: []string{"-audience", ""}, wantErr: "-audience is required"},
		{name: "bad log level", args: []string{"-log-level", "loud"}, wantErr: "-log-level"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseOptions(tt.args, func(k string) string { return tt.env[k] }, io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got.logLevel = 0
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}
