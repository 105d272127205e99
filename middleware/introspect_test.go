package middleware_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pixieauth/pixie/middleware"
)

// The credentials of the resource server at the introspection endpoint;
// the secret has characters RFC 6749 §2.3.1 form-encoding changes.
const (
	introClientID     = "api:server"
	introClientSecret = "s3cr=t &+é"
)

// introServer is an RFC 7662 introspection endpoint over real HTTP. It
// checks the client's credentials the way pixie does (HTTP Basic of
// form-encoded values) and counts the calls.
type introServer struct {
	*httptest.Server
	calls  atomic.Int64
	status atomic.Int32 // 0: answer normally
	mu     sync.Mutex
	active map[string]map[string]any // by token
}

func newIntroServer(t *testing.T) *introServer {
	s := &introServer{active: map[string]map[string]any{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.calls.Add(1)
		if code := s.status.Load(); code != 0 {
			http.Error(w, "down", int(code))
			return
		}
		id, secret, ok := r.BasicAuth()
		if ok {
			id, _ = url.QueryUnescape(id)
			secret, _ = url.QueryUnescape(secret)
		}
		if !ok || id != introClientID || secret != introClientSecret {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error":"invalid_client"}`))
			return
		}
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
			t.Errorf("introspection request: %s with Content-Type %q", r.Method, r.Header.Get("Content-Type"))
		}
		if err := r.ParseForm(); err != nil || r.PostForm.Get("token_type_hint") != "access_token" {
			t.Errorf("introspection form: %v, %v", r.PostForm, err)
		}
		s.mu.Lock()
		resp, ok := s.active[r.PostForm.Get("token")]
		s.mu.Unlock()
		if !ok {
			resp = map[string]any{"active": false}
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(resp)
	}))
	t.Cleanup(s.Close)
	return s
}

// add makes tok active with the answer pixie's provider gives, edited.
func (s *introServer) add(tok string, now time.Time, edit func(map[string]any)) {
	resp := map[string]any{
		"active":     true,
		"iss":        testIssuer,
		"client_id":  "native-app",
		"sub":        "user-42",
		"scope":      "openid read",
		"iat":        now.Unix(),
		"exp":        now.Add(time.Hour).Unix(),
		"token_type": "Bearer",
		"aud":        []string{testAudience},
	}
	if edit != nil {
		edit(resp)
	}
	s.mu.Lock()
	s.active[tok] = resp
	s.mu.Unlock()
}

func (s *introServer) config() *middleware.IntrospectionConfig {
	return &middleware.IntrospectionConfig{Endpoint: s.URL + "/oauth/introspect", ClientID: introClientID, ClientSecret: introClientSecret}
}

// opaque returns a token shaped like pixie's HMAC access tokens.
func opaque(n int) string {
	return "ory_at_" + strings.Repeat(string(rune('a'+n%26)), 20) + ".sig" + strings.Repeat("Z", n%7)
}

func TestIntrospection(t *testing.T) {
	srv := newIntroServer(t)
	clk := newClock(t0)
	v := newVerifier(t, middleware.Config{Introspection: srv.config(), Now: clk.Now})

	active := opaque(1)
	srv.add(active, t0, nil)
	tok, err := v.Verify(t.Context(), active)
	if err != nil {
		t.Fatalf("active token: %v", err)
	}
	if tok.Subject != "user-42" || tok.ClientID != "native-app" || !tok.HasScope("read") || !tok.ExpiresAt.Equal(t0.Add(time.Hour)) {
		t.Errorf("token: %+v", tok)
	}
	if srv.calls.Load() != 1 {
		t.Fatalf("calls: got %d, want 1", srv.calls.Load())
	}

	// A cache hit calls nobody, through the middleware too.
	if _, err := v.Verify(t.Context(), active); err != nil {
		t.Fatalf("cached: %v", err)
	}
	rec := serve(v, active, "read")
	if rec.Code != http.StatusOK {
		t.Fatalf("middleware with a cached token: %d %s", rec.Code, rec.Body)
	}
	if rec := serve(v, active, "write"); rec.Code != http.StatusForbidden || !strings.Contains(rec.Header().Get("WWW-Authenticate"), `scope="write"`) {
		t.Fatalf("missing scope: %d %q", rec.Code, rec.Header().Get("WWW-Authenticate"))
	}
	if srv.calls.Load() != 1 {
		t.Fatalf("calls after cache hits: got %d, want 1", srv.calls.Load())
	}

	// Inactive: 401 invalid_token; also cached.
	inactive := opaque(2)
	for range 3 {
		if _, err := v.Verify(t.Context(), inactive); !errors.Is(err, middleware.ReasonInactive) {
			t.Fatalf("inactive: got %v, want ReasonInactive", err)
		}
	}
	if rec := serve(v, inactive); rec.Code != http.StatusUnauthorized || !strings.Contains(rec.Header().Get("WWW-Authenticate"), `error="invalid_token"`) {
		t.Fatalf("inactive through the middleware: %d %q", rec.Code, rec.Header().Get("WWW-Authenticate"))
	}
	if srv.calls.Load() != 2 {
		t.Fatalf("calls: got %d, want 2", srv.calls.Load())
	}

	// After CacheTTL (30s) the endpoint is asked again: a revocation shows.
	srv.mu.Lock()
	delete(srv.active, active)
	srv.mu.Unlock()
	clk.Advance(29 * time.Second)
	if _, err := v.Verify(t.Context(), active); err != nil {
		t.Fatalf("revoked but cached: got %v", err)
	}
	clk.Advance(time.Second)
	if _, err := v.Verify(t.Context(), active); !errors.Is(err, middleware.ReasonInactive) {
		t.Fatalf("revoked, after CacheTTL: got %v, want ReasonInactive", err)
	}
	if srv.calls.Load() != 3 {
		t.Fatalf("calls: got %d, want 3", srv.calls.Load())
	}
}

// TestIntrospectionCacheCappedByExp: an answer is never reused past the
// token's exp.
func TestIntrospectionCacheCappedByExp(t *testing.T) {
	srv := newIntroServer(t)
	clk := newClock(t0)
	v := newVerifier(t, middleware.Config{Introspection: srv.config(), Now: clk.Now, Leeway: time.Minute})
	tok := opaque(3)
	srv.add(tok, t0, func(m map[string]any) { m["exp"] = t0.Add(5 * time.Second).Unix() })
	if _, err := v.Verify(t.Context(), tok); err != nil {
		t.Fatal(err)
	}
	clk.Advance(4 * time.Second)
	if _, err := v.Verify(t.Context(), tok); err != nil {
		t.Fatal(err)
	}
	if srv.calls.Load() != 1 {
		t.Fatalf("calls before exp: got %d, want 1", srv.calls.Load())
	}
	clk.Advance(2 * time.Second) // past exp, within the leeway
	if _, err := v.Verify(t.Context(), tok); err != nil {
		t.Fatal(err)
	}
	if srv.calls.Load() != 2 {
		t.Fatalf("calls after exp: got %d, want 2 (the cache must not outlive exp)", srv.calls.Load())
	}
	clk.Advance(time.Minute)
	if _, err := v.Verify(t.Context(), tok); !errors.Is(err, middleware.ErrExpired) {
		t.Fatalf("past exp and leeway: got %v, want ErrExpired", err)
	}
}

func TestIntrospectionCacheBounded(t *testing.T) {
	srv := newIntroServer(t)
	cfg := srv.config()
	cfg.CacheSize = 2
	v := newVerifier(t, middleware.Config{Introspection: cfg, Now: fixed(t0)})
	toks := []string{opaque(4), opaque(5), opaque(6)}
	for _, tok := range toks {
		srv.add(tok, t0, nil)
		if _, err := v.Verify(t.Context(), tok); err != nil {
			t.Fatal(err)
		}
	}
	// toks[0] was evicted (oldest); toks[2] is still cached.
	if _, err := v.Verify(t.Context(), toks[2]); err != nil {
		t.Fatal(err)
	}
	if srv.calls.Load() != 3 {
		t.Fatalf("calls: got %d, want 3", srv.calls.Load())
	}
	if _, err := v.Verify(t.Context(), toks[0]); err != nil {
		t.Fatal(err)
	}
	if srv.calls.Load() != 4 {
		t.Fatalf("calls: got %d, want 4 (evicted entry refetched)", srv.calls.Load())
	}
}

func TestIntrospectionNoCache(t *testing.T) {
	srv := newIntroServer(t)
	cfg := srv.config()
	cfg.CacheTTL = -1
	v := newVerifier(t, middleware.Config{Introspection: cfg, Now: fixed(t0)})
	tok := opaque(7)
	srv.add(tok, t0, nil)
	for range 3 {
		if _, err := v.Verify(t.Context(), tok); err != nil {
			t.Fatal(err)
		}
	}
	if srv.calls.Load() != 3 {
		t.Fatalf("calls: got %d, want 3", srv.calls.Load())
	}
}

func TestIntrospectionRefusals(t *testing.T) {
	tests := []struct {
		name string
		// edit changes the endpoint's answer for the token.
		edit    func(m map[string]any)
		wantErr error
	}{
		{"refresh token", func(m map[string]any) { m["token_type"] = "refresh_token" }, middleware.ReasonWrongTokenType},
		{"wrong audience", func(m map[string]any) { m["aud"] = "https://other.example.com" }, middleware.ReasonAudience},
		{"wrong issuer", func(m map[string]any) { m["iss"] = "https://evil.example.com" }, middleware.ReasonIssuer},
		{"expired", func(m map[string]any) { m["exp"] = t0.Add(-time.Hour).Unix() }, middleware.ErrExpired},
		{"nbf in the future", func(m map[string]any) { m["nbf"] = t0.Add(time.Hour).Unix() }, middleware.ReasonNotYetValid},
		{"scope not a string", func(m map[string]any) { m["scope"] = []string{"read"} }, middleware.ReasonMalformedToken},
		{"active a string", func(m map[string]any) { m["active"] = "true" }, middleware.ErrUnavailable},
		// RFC 7662 §2.2: only active is required.
		{"only active", func(m map[string]any) {
			for k := range m {
				if k != "active" {
					delete(m, k)
				}
			}
		}, nil},
		{"token_type access_token", func(m map[string]any) { m["token_type"] = "access_token" }, nil},
	}
	srv := newIntroServer(t)
	v := newVerifier(t, middleware.Config{Introspection: srv.config(), Now: fixed(t0)})
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tok := opaque(100 + i)
			srv.add(tok, t0, tc.edit)
			got, err := v.Verify(t.Context(), tok)
			if !errors.Is(err, tc.wantErr) || (err == nil) != (got != nil) {
				t.Errorf("got %v, %v; want %v", got, err, tc.wantErr)
			}
			if want := tc.wantErr != nil && tc.wantErr != middleware.ErrUnavailable; errors.Is(err, middleware.ErrInvalidToken) != want {
				t.Errorf("errors.Is(%v, ErrInvalidToken) = %v, want %v", err, !want, want)
			}
		})
	}
}

// TestIntrospectionUnavailable: an endpoint that is down, refuses our
// credentials or answers nonsense gives 503 temporarily_unavailable, not
// invalid_token, and nothing is cached.
func TestIntrospectionUnavailable(t *testing.T) {
	srv := newIntroServer(t)
	tok := opaque(8)
	srv.add(tok, t0, nil)

	t.Run("500", func(t *testing.T) {
		v := newVerifier(t, middleware.Config{Introspection: srv.config(), Now: fixed(t0)})
		srv.status.Store(http.StatusInternalServerError)
		defer srv.status.Store(0)
		checkUnavailable(t, v, tok)
	})
	t.Run("wrong client secret", func(t *testing.T) {
		cfg := srv.config()
		cfg.ClientSecret = "wrong"
		logs := &syncBuffer{}
		v := newVerifier(t, middleware.Config{Introspection: cfg, Now: fixed(t0), Logger: bufferLogger(logs)})
		checkUnavailable(t, v, tok)
		if !strings.Contains(logs.String(), "Config.Introspection.ClientID") {
			t.Errorf("the log does not say the credentials were refused:\n%s", logs)
		}
		if strings.Contains(logs.String(), tok) || strings.Contains(logs.String(), "wrong") {
			t.Errorf("the log holds the token or the secret:\n%s", logs)
		}
	})
	t.Run("connection refused", func(t *testing.T) {
		dead := httptest.NewServer(http.NotFoundHandler())
		dead.Close()
		cfg := srv.config()
		cfg.Endpoint = dead.URL
		v := newVerifier(t, middleware.Config{Introspection: cfg, Now: fixed(t0)})
		checkUnavailable(t, v, tok)
	})
	t.Run("not JSON", func(t *testing.T) {
		html := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("<html>")) }))
		defer html.Close()
		cfg := srv.config()
		cfg.Endpoint = html.URL
		v := newVerifier(t, middleware.Config{Introspection: cfg, Now: fixed(t0)})
		checkUnavailable(t, v, tok)
	})

	// Back up: the token is accepted (the failures were not cached).
	v := newVerifier(t, middleware.Config{Introspection: srv.config(), Now: fixed(t0)})
	if _, err := v.Verify(t.Context(), tok); err != nil {
		t.Fatal(err)
	}
}

func checkUnavailable(t *testing.T, v *middleware.Verifier, tok string) {
	t.Helper()
	for range 2 {
		rec := serve(v, tok)
		if rec.Code != http.StatusServiceUnavailable {
			t.Fatalf("status: got %d, want 503 (%s)", rec.Code, rec.Body)
		}
		if h := rec.Header().Get("WWW-Authenticate"); h != "" {
			t.Errorf("WWW-Authenticate %q on an outage: the client would drop a good token", h)
		}
		if !strings.Contains(rec.Body.String(), `"error":"temporarily_unavailable"`) {
			t.Errorf("body: %s", rec.Body)
		}
	}
	if _, err := v.Verify(t.Context(), tok); !errors.Is(err, middleware.ErrUnavailable) {
		t.Errorf("Verify: got %v, want ErrUnavailable", err)
	}
}

// TestMixedMode: with keys and introspection, JWTs are verified locally
// and opaque tokens introspected.
func TestMixedMode(t *testing.T) {
	a := sharedKey(t, "rsa-a", "RS256")
	srv := newIntroServer(t)
	v := newVerifier(t, middleware.Config{KeySet: middleware.StaticKeys(setOf(t, a)), Introspection: srv.config(), Now: fixed(t0)})
	if _, err := v.Verify(t.Context(), token(t, a, t0)); err != nil {
		t.Fatalf("JWT: %v", err)
	}
	evil := sharedKey(t, "rsa-evil", "RS256")
	if _, err := v.Verify(t.Context(), token(t, evil, t0)); !errors.Is(err, middleware.ReasonUnknownKey) {
		t.Fatalf("JWT with an unknown key: got %v, want ReasonUnknownKey (not introspected)", err)
	}
	if srv.calls.Load() != 0 {
		t.Fatalf("JWTs were introspected: %d calls", srv.calls.Load())
	}
	tok := opaque(9)
	srv.add(tok, t0, nil)
	if _, err := v.Verify(t.Context(), tok); err != nil {
		t.Fatalf("opaque: %v", err)
	}
	if srv.calls.Load() != 1 {
		t.Fatalf("calls: got %d, want 1", srv.calls.Load())
	}
	// Garbage is not sent to the endpoint.
	if _, err := v.Verify(t.Context(), "not a token"); !errors.Is(err, middleware.ReasonMalformedToken) {
		t.Fatalf("garbage: got %v", err)
	}
	if srv.calls.Load() != 1 {
		t.Fatalf("garbage was introspected")
	}
}

// serve sends tok through RequireToken(v, scopes...).
func serve(v *middleware.Verifier, tok string, scopes ...string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/api", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	middleware.RequireToken(v, scopes...)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := middleware.TokenFrom(r.Context()); !ok {
			w.WriteHeader(http.StatusTeapot)
		}
	})).ServeHTTP(rec, req)
	return rec
}
