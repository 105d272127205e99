package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pixieauth/pixie/handlers"
	"github.com/pixieauth/pixie/internal/testbrowser"
	"github.com/pixieauth/pixie/middleware"
	"github.com/pixieauth/pixie/provider"
	"github.com/pixieauth/pixie/store"
	"github.com/pixieauth/pixie/store/memory"
)

const (
	testUser     = "alice"
	testPassword = "correct horse battery staple"
	testAudience = "https://api.example.com"
)

// pixie is a real pixie server on an httptest.Server, registered like
// example/server's demo (with its API, testAudience), that remembers every secret it hands out so a test
// can check that none reaches the transcript.
type pixie struct {
	url string

	mu      sync.Mutex
	secrets []string // codes, access, refresh and ID tokens
}

// startPixie starts the server; edit, if given, changes the demo client's
// registration first.
func startPixie(t *testing.T, edit ...func(*store.Client)) *pixie {
	t.Helper()
	st := memory.New()
	err := st.AddUser(t.Context(), &store.User{
		Subject:           "alice",
		PreferredUsername: "alice",
		Name:              "Alice Example",
		Email:             "alice@example.com",
		EmailVerified:     true,
	}, testUser, testPassword)
	if err != nil {
		t.Fatal(err)
	}
	c := &store.Client{
		ID:           "example-native",
		Name:         "Example App",
		RedirectURIs: []string{"http://127.0.0.1/callback", "com.example.app:/oauth2redirect"},
		Scopes:       []string{"openid", "profile", "email", "offline_access", "read:messages", "write:messages"},
		APIs:         []string{testAudience},
		Native:       true,
		FirstParty:   true,
	}
	for _, f := range edit {
		f(c)
	}
	err = st.AddClient(t.Context(), c)
	if err != nil {
		t.Fatal(err)
	}

	srv := httptest.NewUnstartedServer(nil)
	s := &pixie{url: "http://" + srv.Listener.Addr().String()}
	p, err := provider.New(t.Context(), provider.Config{
		Issuer:  s.url,
		Clients: st, Users: st, Grants: st, Keys: st,
		APIs:   []provider.API{{Identifier: testAudience, Scopes: []string{"read:messages", "write:messages"}}},
		Logger: slog.New(slog.NewTextHandler(t.Output(), nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	if err := handlers.Mount(mux, p); err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = s.recordTokens(mux)
	srv.Start()
	t.Cleanup(srv.Close)
	return s
}

// startAPI starts a resource server with example/api's protected routes,
// built the same way from package middleware: the verifier fetches pixie's
// JWK Set (remote mode) and RequireToken guards GET /api/messages with
// read:messages and POST /api/messages with write:messages. It returns the
// base URL. (example/api is a package main of its own, so its run cannot
// be called from here; example/api's tests run it against a real pixie.)
func startAPI(t *testing.T, s *pixie) string {
	t.Helper()
	v, err := middleware.NewVerifier(t.Context(), middleware.Config{
		Issuer:   s.url,
		Audience: testAudience,
		JWKSURL:  s.url + handlers.PathJWKS,
		Logger:   slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	reply := func(status int, v any) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			tok, _ := middleware.TokenFrom(r.Context())
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			_ = json.NewEncoder(w).Encode(map[string]any{"sub": tok.Subject, "client_id": tok.ClientID, "result": v})
		}
	}
	mux := http.NewServeMux()
	mux.Handle("GET /api/messages", middleware.RequireToken(v, "read:messages")(reply(http.StatusOK, []string{})))
	mux.Handle("POST /api/messages", middleware.RequireToken(v, "write:messages")(reply(http.StatusCreated, "posted")))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

// closedPort returns the URL of a port on 127.0.0.1 that nothing listens
// on: connecting is refused.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := "http://" + ln.Addr().String()
	ln.Close()
	return u
}

// recordTokens remembers the tokens in every token endpoint response.
func (s *pixie) recordTokens(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != handlers.PathToken {
			next.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		var resp struct {
			AccessToken  string `json:"access_token"`
			RefreshToken string `json:"refresh_token"`
			IDToken      string `json:"id_token"`
		}
		if json.Unmarshal(rec.Body.Bytes(), &resp) == nil {
			s.remember(resp.AccessToken, resp.RefreshToken, resp.IDToken)
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	})
}

func (s *pixie) remember(secrets ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, v := range secrets {
		if v != "" {
			s.secrets = append(s.secrets, v)
		}
	}
}

// checkNoSecrets fails t if out contains a code or token in full.
func (s *pixie) checkNoSecrets(t *testing.T, out string) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, v := range s.secrets {
		if strings.Contains(out, v) {
			t.Errorf("transcript contains a whole code or token (%.11s…)", v)
		}
	}
	// Also what a token would look like, in case one slipped past the
	// recorder: no long run of base64url characters at all.
	if m := longRun.FindString(out); m != "" {
		t.Errorf("transcript contains %q, which looks like a secret", m)
	}
}

var longRun = regexp.MustCompile(`[A-Za-z0-9_-]{32,}`)

// browser returns an onAuthURL hook that is the user's browser: it signs in
// as alice and delivers the authorization response to the CLI's loopback
// listener after passing it through tamper (nil: unchanged). A failure is
// reported on t and cancels the run, which would otherwise wait for a
// redirect that never comes.
func browser(t *testing.T, s *pixie, cancel context.CancelFunc, tamper func(q url.Values), pushed bool) func(string) {
	return func(authURL string) {
		if u, err := url.Parse(authURL); err == nil && pushed {
			// RFC 9126 §4: nothing of the request but client_id and
			// request_uri goes through the browser.
			if q := u.Query(); len(q) != 2 || q.Get("client_id") == "" || q.Get("request_uri") == "" {
				t.Errorf("browser: pushed request's URL %s carries more than client_id and request_uri", authURL)
			}
		}
		client := testbrowser.NewClient()
		to, err := testbrowser.Login(t.Context(), client, authURL, testUser, testPassword)
		if err != nil {
			t.Errorf("browser: %v", err)
			cancel()
			return
		}
		q := to.Query()
		s.remember(q.Get("code"))
		if tamper != nil {
			tamper(q)
			to.RawQuery = q.Encode()
		}
		if _, err := testbrowser.Get(t.Context(), client, to.String()); err != nil {
			t.Errorf("browser: delivering the redirect: %v", err)
			cancel()
		}
	}
}

func TestRun(t *testing.T) {
	tests := []struct {
		name     string
		scopes   string // "" means defaultScopes
		audience string // "-" means none; "" means testAudience
		refresh  bool
		dpop     bool             // -dpop
		api      string           // "api": the resource server of startAPI; "closed": a refused port; "": none
		tamper   func(url.Values) // how the redirect is altered on its way to the CLI
		par      bool             // -par: push the request first
		// requirePAR registers the client with store.Client.RequirePAR
		requirePAR bool
		wantErr    string // "" means success
		wantOut    []string
	}{
		{
			// Everything: the transcript shows each check passing, the
			// token for the API used to read the messages and refused for
			// writing them, then rotation.
			name:    "login, api and rotation",
			refresh: true,
			api:     "api",
			wantOut: []string{
				"RFC 9207 iss   advertised: the redirect must carry iss",
				"audience       " + testAudience,
				"iss            matches the issuer (RFC 9207)",
				`aud            ["` + testAudience + `","http://127.0.0.1:`,
				`scope          "openid profile email offline_access read:messages"`,
				"ID token verified: signature (JWKS), iss, aud, exp",
				"nonce          matches the one sent",
				"at_hash        matches the access token",
				`sub            "alice"`,
				`email          "alice@example.com"`,
				"sub matches the ID token",
				"API: GET http://",
				"needs read:messages, which the token has",
				"status         200 OK",
				`"sub": "alice"`,
				`"client_id": "example-native"`,
				"accepted",
				"API: POST http://",
				"needs write:messages, which the token lacks (expect 403 insufficient_scope)",
				"status         403 Forbidden",
				`error="insufficient_scope"`,
				`scope="write:messages"`,
				"refused, as expected",
				"the refresh token was rotated",
				"New ID token verified",
				`refused        oauth2: "invalid_grant"`,
				"Done.",
			},
		},
		{
			// -dpop: the tokens are bound to the client's key, UserInfo
			// and the refresh take proofs of it, and the old refresh
			// token is still refused.
			name:    "dpop",
			dpop:    true,
			refresh: true,
			api:     "api",
			wantOut: []string{
				"dpop           ES256 key made for this run; thumbprint (jkt) ",
				"token_type     DPoP",
				"cnf.jkt        ",
				"bound to this client's DPoP key: token_type DPoP, cnf.jkt is its thumbprint",
				"sub matches the ID token",
				"API: GET http://",
				"status         200 OK",
				"accepted",
				"status         403 Forbidden",
				`DPoP algs="ES256 RS256 PS256 EdDSA", error="insufficient_scope"`,
				"the refresh token was rotated",
				`refused        oauth2: "invalid_grant"`,
				"Done.",
			},
		},
		{
			// -dpop with -par: dpop_jkt goes in the pushed request, and
			// the code is bound to the key all the same.
			name: "dpop and par",
			dpop: true,
			par:  true,
			wantOut: []string{
				"token_type     DPoP",
				"bound to this client's DPoP key: token_type DPoP, cnf.jkt is its thumbprint",
				"Done.",
			},
		},
		{
			// With write:messages the same POST is accepted.
			name:   "token that may write",
			scopes: "openid read:messages write:messages",
			api:    "api",
			wantOut: []string{
				"needs write:messages, which the token has",
				"status         201 Created",
				"Done.",
			},
		},
		{
			// A token asked for no API is for the issuer: the API refuses
			// it (401 invalid_token), as the transcript expects.
			name:     "no audience",
			scopes:   "openid profile",
			audience: "-",
			api:      "api",
			wantOut: []string{
				"audience       (none)",
				`aud            ["http://127.0.0.1:`,
				"no -audience: the token is for the issuer, not for the API (expect 401 invalid_token)",
				"status         401 Unauthorized",
				`error="invalid_token"`,
				"refused, as expected",
				"Done.",
			},
		},
		{
			// example/api not started: a note on how to start it, and the
			// run goes on to the end.
			name:    "api not running",
			refresh: true,
			api:     "closed",
			wantOut: []string{
				"example/api is not running at http://127.0.0.1:",
				"start it with: go run ./example/api",
				"the refresh token was rotated",
				"Done.",
			},
		},
		{
			// Without offline_access pixie issues no refresh token, and
			// -refresh says so instead of pretending.
			name:    "no offline_access",
			scopes:  "openid profile",
			refresh: true,
			wantErr: "no refresh token was issued",
		},
		{
			// A redirect with someone else's state (login CSRF, or a
			// response meant for another request) is refused.
			name:    "state mismatch",
			tamper:  func(q url.Values) { q.Set("state", "not-the-state") },
			wantErr: "state mismatch",
		},
		{
			// An iss from another server is a mix-up attack (RFC 9207).
			name:    "iss mismatch",
			tamper:  func(q url.Values) { q.Set("iss", "http://evil.example") },
			wantErr: "does not match the issuer",
		},
		{
			// pixie advertises RFC 9207, so a redirect without iss is refused.
			name:    "iss stripped",
			tamper:  func(q url.Values) { q.Del("iss") },
			wantErr: "iss parameter missing",
		},
		{
			// -par with a client that must push: the request goes to the
			// pushed endpoint, the browser gets only client_id and
			// request_uri, and the rest of the flow is the same.
			name:       "pushed authorization request",
			par:        true,
			requirePAR: true,
			refresh:    true,
			wantOut: []string{
				"PAR            http://127.0.0.1:",
				"Pushed the authorization request (RFC 9126)",
				"request_uri    urn:ietf:pa…",
				"expires_in     60 s, usable once",
				`scope          "openid profile email offline_access read:messages"`,
				"nonce          matches the one sent",
				"the refresh token was rotated",
				"Done.",
			},
		},
		{
			// The same client without -par: pixie refuses the direct
			// request.
			name:       "pushed request required, not pushed",
			requirePAR: true,
			wantErr:    `authorization server returned error "invalid_request"`,
		},
		{
			// A scope the client is not registered for: pixie sends the
			// error back to the client, and the CLI reports it.
			name:    "error response",
			scopes:  "openid admin",
			wantErr: `authorization server returned error "invalid_scope"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := startPixie(t, func(c *store.Client) { c.RequirePAR = tt.requirePAR })
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			scopes := tt.scopes
			if scopes == "" {
				scopes = defaultScopes
			}
			aud := testAudience
			if tt.audience == "-" {
				aud = ""
			}
			var api string
			switch tt.api {
			case "api":
				api = startAPI(t, s)
			case "closed":
				api = closedPort(t)
			}
			var out strings.Builder
			err := run(ctx, options{
				issuer:    s.url,
				clientID:  "example-native",
				scopes:    strings.Fields(scopes),
				audience:  aud,
				refresh:   tt.refresh,
				dpop:      tt.dpop,
				api:       api,
				par:       tt.par,
				timeout:   10 * time.Second,
				onAuthURL: browser(t, s, cancel, tt.tamper, tt.par),
			}, &out)
			if tt.wantErr == "" && err != nil {
				t.Fatalf("run: got error %v, want nil\ntranscript:\n%s", err, out.String())
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("run: got error %v, want one containing %q\ntranscript:\n%s", err, tt.wantErr, out.String())
			}
			for _, want := range tt.wantOut {
				if !strings.Contains(out.String(), want) {
					t.Errorf("transcript: got no %q, want it in:\n%s", want, out.String())
				}
			}
			transcript := out.String()
			if tt.dpop {
				// The key's thumbprint is public, and the token must be
				// bound to exactly it.
				m := jktLine.FindStringSubmatch(transcript)
				if m == nil {
					t.Fatalf("transcript: no thumbprint of the DPoP key in:\n%s", transcript)
				}
				if !strings.Contains(transcript, "cnf.jkt        "+m[1]) {
					t.Errorf("transcript: the access token's cnf.jkt is not the key's thumbprint %s:\n%s", m[1], transcript)
				}
				transcript = strings.ReplaceAll(transcript, m[1], "<jkt>")
			}
			s.checkNoSecrets(t, transcript)
		})
	}
}

var jktLine = regexp.MustCompile(`thumbprint \(jkt\) ([A-Za-z0-9_-]{43})\n`)

// TestParseFlags checks the API-related defaults: the token is asked for
// the demo API with read:messages, and -audience "" drops that scope from
// the default.
func TestParseFlags(t *testing.T) {
	tests := []struct {
		name         string
		args         []string
		env          map[string]string
		wantScopes   string
		wantAudience string
		wantAPI      string
	}{
		{"defaults", nil, nil, defaultScopes, defaultAudience, defaultAPI},
		{"no audience", []string{"-audience", ""}, nil, defaultOIDCScopes, "", defaultAPI},
		{"no audience, scopes given", []string{"-audience", "", "-scopes", "openid read:messages"}, nil, "openid read:messages", "", defaultAPI},
		{"no api", []string{"-api", ""}, nil, defaultScopes, defaultAudience, ""},
		{
			"environment", nil,
			map[string]string{"PIXIE_AUDIENCE": "https://other.example.com", "PIXIE_API": "http://127.0.0.1:9999", "PIXIE_SCOPES": "openid"},
			"openid", "https://other.example.com", "http://127.0.0.1:9999",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseFlags(tt.args, func(k string) string { return tt.env[k] }, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(o.scopes, " "); got != tt.wantScopes || o.audience != tt.wantAudience || o.api != tt.wantAPI {
				t.Errorf("got scopes %q audience %q api %q, want %q %q %q", got, o.audience, o.api, tt.wantScopes, tt.wantAudience, tt.wantAPI)
			}
		})
	}
}

func TestCallbackOnlyOnce(t *testing.T) {
	results := make(chan callbackResult, 1)
	h := &callbackHandler{state: "s", issuer: "http://op", results: results}
	for i, wantStatus := range []int{http.StatusOK, http.StatusConflict} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/callback?state=s&code=c"+string(rune('0'+i)), nil))
		if rec.Code != wantStatus {
			t.Errorf("request %d: got status %d, want %d", i, rec.Code, wantStatus)
		}
	}
	if res := <-results; res.code != "c0" || res.err != nil {
		t.Errorf("result: got %+v, want code c0", res)
	}
}

func TestRedact(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"", "(empty)"},
		{"short", "s…(5 chars)"}, // at most a quarter is shown
		{"abcdefgh", "ab…(8 chars)"},
		{"ory_at_" + strings.Repeat("x", 80), "ory_at_xxxx…(87 chars)"},
	}
	for _, tt := range tests {
		if got := redact(tt.in); got != tt.want {
			t.Errorf("redact(%q): got %q, want %q", tt.in, got, tt.want)
		}
	}
}
