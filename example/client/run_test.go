package main

import (
	"context"
	"encoding/json"
	"log/slog"
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
	"github.com/pixieauth/pixie/provider"
	"github.com/pixieauth/pixie/store"
	"github.com/pixieauth/pixie/store/memory"
)

const (
	testUser     = "alice"
	testPassword = "correct horse battery staple"
)

// pixie is a real pixie server on an httptest.Server, registered like
// example/server's demo, that remembers every secret it hands out so a test
// can check that none reaches the transcript.
type pixie struct {
	url string

	mu      sync.Mutex
	secrets []string // codes, access, refresh and ID tokens
}

func startPixie(t *testing.T) *pixie {
	t.Helper()
	st := memory.New()
	err := st.AddUser(&store.User{
		Subject:           "alice",
		PreferredUsername: "alice",
		Name:              "Alice Example",
		Email:             "alice@example.com",
		EmailVerified:     true,
	}, testUser, testPassword)
	if err != nil {
		t.Fatal(err)
	}
	err = st.AddClient(&store.Client{
		ID:           "example-native",
		Name:         "Example App",
		RedirectURIs: []string{"http://127.0.0.1/callback", "com.example.app:/oauth2redirect"},
		Scopes:       []string{"openid", "profile", "email", "offline_access"},
		Native:       true,
		FirstParty:   true,
	})
	if err != nil {
		t.Fatal(err)
	}

	srv := httptest.NewUnstartedServer(nil)
	s := &pixie{url: "http://" + srv.Listener.Addr().String()}
	p, err := provider.New(t.Context(), provider.Config{
		Issuer:  s.url,
		Clients: st, Users: st, Grants: st, Keys: st,
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
func browser(t *testing.T, s *pixie, cancel context.CancelFunc, tamper func(q url.Values)) func(string) {
	return func(authURL string) {
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
		name    string
		scopes  string // "" means defaultScopes
		refresh bool
		api     string           // path on the server for -api; "" means none
		tamper  func(url.Values) // how the redirect is altered on its way to the CLI
		wantErr string           // "" means success
		wantOut []string
	}{
		{
			// Everything: the transcript shows each check passing. -api
			// uses the userinfo endpoint as the Bearer-protected resource.
			name:    "login, api and rotation",
			refresh: true,
			api:     handlers.PathUserInfo,
			wantOut: []string{
				"RFC 9207 iss   advertised: the redirect must carry iss",
				"iss            matches the issuer (RFC 9207)",
				"ID token verified: signature (JWKS), iss, aud, exp",
				"nonce          matches the one sent",
				"at_hash        matches the access token",
				`sub            "alice"`,
				`email          "alice@example.com"`,
				"sub matches the ID token",
				"status         200 OK",
				"the refresh token was rotated",
				"New ID token verified",
				`refused        oauth2: "invalid_grant"`,
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
			s := startPixie(t)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			scopes := tt.scopes
			if scopes == "" {
				scopes = defaultScopes
			}
			api := ""
			if tt.api != "" {
				api = s.url + tt.api
			}
			var out strings.Builder
			err := run(ctx, options{
				issuer:    s.url,
				clientID:  "example-native",
				scopes:    strings.Fields(scopes),
				refresh:   tt.refresh,
				api:       api,
				timeout:   10 * time.Second,
				onAuthURL: browser(t, s, cancel, tt.tamper),
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
			s.checkNoSecrets(t, out.String())
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
