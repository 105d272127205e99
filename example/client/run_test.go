package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/coreos/go-oidc/v3/oidc/oidctest"
	jose "github.com/go-jose/go-jose/v4"
)

// knobs make fakeOP misbehave, one way each; the zero value behaves.
type knobs struct {
	wrongState    bool   // redirect with a state that is not ours
	iss           string // "" sends the real issuer; "-" sends none
	authError     string // redirect with this error instead of a code
	wrongNonce    bool   // put another nonce in the ID token
	userinfoSub   string // "" uses the real subject
	noRotation    bool   // refresh returns the same refresh token
	advertiseIss  bool   // authorization_response_iss_parameter_supported
	noRefreshToks bool   // never issue a refresh token
}

// fakeOP is a minimal authorization server that stands in for pixie until
// example/server exists.
type fakeOP struct {
	knobs
	t    *testing.T
	url  string
	priv *ecdsa.PrivateKey

	mu            sync.Mutex
	challenge     string
	nonce         string
	code          string
	accessTokens  map[string]bool
	refreshTokens map[string]bool // value: still valid
}

const testSub = "user-123"

func newFakeOP(t *testing.T, k knobs) *fakeOP {
	t.Helper()
	op := &fakeOP{knobs: k}
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	op.t, op.priv = t, priv
	op.accessTokens = map[string]bool{}
	op.refreshTokens = map[string]bool{}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", op.discovery)
	mux.HandleFunc("GET /.well-known/jwks.json", op.jwks)
	mux.HandleFunc("GET /authorize", op.authorize)
	mux.HandleFunc("POST /oauth/token", op.token)
	mux.HandleFunc("GET /userinfo", op.userinfo)
	mux.HandleFunc("GET /api", op.api)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	op.url = srv.URL
	return op
}

func (op *fakeOP) discovery(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                op.url,
		"authorization_endpoint":                op.url + "/authorize",
		"token_endpoint":                        op.url + "/oauth/token",
		"userinfo_endpoint":                     op.url + "/userinfo",
		"jwks_uri":                              op.url + "/.well-known/jwks.json",
		"code_challenge_methods_supported":      []string{"S256"},
		"id_token_signing_alg_values_supported": []string{"ES256"},
		"authorization_response_iss_parameter_supported": op.advertiseIss,
	})
}

func (op *fakeOP) jwks(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
		{Key: op.priv.Public(), KeyID: "k1", Algorithm: "ES256", Use: "sig"},
	}})
}

func (op *fakeOP) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	redirect := q.Get("redirect_uri")
	u, err := url.Parse(redirect)
	if err != nil || u.Scheme != "http" || u.Hostname() != "127.0.0.1" || u.Path != "/callback" || u.Port() == "" {
		op.t.Errorf("authorize: bad redirect_uri %q", redirect)
		http.Error(w, "bad redirect_uri", http.StatusBadRequest)
		return
	}
	for k, want := range map[string]string{"client_id": "example-native", "response_type": "code", "code_challenge_method": "S256"} {
		if got := q.Get(k); got != want {
			op.t.Errorf("authorize: %s = %q, want %q", k, got, want)
		}
	}
	if q.Get("code_challenge") == "" || q.Get("nonce") == "" || len(q.Get("state")) < 22 {
		op.t.Errorf("authorize: missing code_challenge, nonce or a long enough state: %v", q)
	}

	op.mu.Lock()
	op.challenge, op.nonce = q.Get("code_challenge"), q.Get("nonce")
	op.code = rand.Text()
	code := op.code
	op.mu.Unlock()

	v := url.Values{"state": {q.Get("state")}}
	if op.wrongState {
		v.Set("state", "not-the-state")
	}
	switch op.iss {
	case "":
		v.Set("iss", op.url)
	case "-":
	default:
		v.Set("iss", op.iss)
	}
	if op.authError != "" {
		v.Set("error", op.authError)
		v.Set("error_description", "the user said no")
	} else {
		v.Set("code", code)
	}
	http.Redirect(w, r, redirect+"?"+v.Encode(), http.StatusFound)
}

func (op *fakeOP) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		op.t.Errorf("token: %v", err)
	}
	if _, _, ok := r.BasicAuth(); ok || r.PostForm.Get("client_secret") != "" || r.PostForm.Get("client_id") != "example-native" {
		op.t.Errorf("token: a public client sends client_id in the body and no secret")
	}
	op.mu.Lock()
	defer op.mu.Unlock()

	invalidGrant := func() {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_grant", "error_description": "token inactive"})
	}
	switch r.PostForm.Get("grant_type") {
	case "authorization_code":
		sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
		if r.PostForm.Get("code") != op.code || base64.RawURLEncoding.EncodeToString(sum[:]) != op.challenge {
			invalidGrant()
			return
		}
		op.code = ""
		op.issue(w, op.nonce, !op.noRefreshToks)
	case "refresh_token":
		rt := r.PostForm.Get("refresh_token")
		valid, known := op.refreshTokens[rt]
		if !known || !valid {
			invalidGrant()
			return
		}
		if op.noRotation {
			op.issue(w, "", false)
			return
		}
		op.refreshTokens[rt] = false
		op.issue(w, "", true)
	default:
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "unsupported_grant_type"})
	}
}

// issue writes a token response; op.mu is held.
func (op *fakeOP) issue(w http.ResponseWriter, nonce string, withRefresh bool) {
	at := "ory_at_" + rand.Text() + rand.Text()
	op.accessTokens[at] = true
	sum := sha256.Sum256([]byte(at))
	claims := map[string]any{
		"iss": op.url, "sub": testSub, "aud": []string{"example-native"},
		"exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix(),
		"at_hash": base64.RawURLEncoding.EncodeToString(sum[:16]),
		"name":    "Alice Example", "email": "alice@example.com",
	}
	if nonce != "" {
		if op.wrongNonce {
			nonce = "other"
		}
		claims["nonce"] = nonce
	}
	raw, _ := json.Marshal(claims)
	resp := map[string]any{
		"access_token": at,
		"token_type":   "bearer",
		"expires_in":   3600,
		"scope":        "openid profile email offline_access",
		"id_token":     oidctest.SignIDToken(op.priv, "k1", oidc.ES256, string(raw)),
	}
	if withRefresh {
		rt := "ory_rt_" + rand.Text() + rand.Text()
		op.refreshTokens[rt] = true
		resp["refresh_token"] = rt
	}
	writeJSON(w, http.StatusOK, resp)
}

func (op *fakeOP) userinfo(w http.ResponseWriter, r *http.Request) {
	at, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	op.mu.Lock()
	valid := ok && op.accessTokens[at]
	op.mu.Unlock()
	if !valid {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	sub := testSub
	if op.userinfoSub != "" {
		sub = op.userinfoSub
	}
	writeJSON(w, http.StatusOK, map[string]any{"sub": sub, "email": "alice@example.com", "name": "Alice Example"})
}

// api stands in for example/api: a resource accepting the access token.
func (op *fakeOP) api(w http.ResponseWriter, r *http.Request) {
	at, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	op.mu.Lock()
	valid := ok && op.accessTokens[at]
	op.mu.Unlock()
	if !valid {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"hello": testSub})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// followAuthURL plays the browser: it follows the authorize redirect to the
// client's loopback listener.
func followAuthURL(t *testing.T) func(string) {
	return func(authURL string) {
		go func() {
			resp, err := http.Get(authURL)
			if err != nil {
				t.Errorf("browser: %v", err)
				return
			}
			resp.Body.Close()
		}()
	}
}

func TestRun(t *testing.T) {
	tests := []struct {
		name    string
		op      knobs // how the server misbehaves
		refresh bool
		api     bool   // call the fake server's /api
		wantErr string // "" means success
		wantOut []string
	}{
		{
			name:    "login and rotation",
			op:      knobs{advertiseIss: true},
			refresh: true,
			api:     true,
			wantOut: []string{
				"status         200 OK",
				`    {"hello":"user-123"}`,
				"iss            matches the issuer (RFC 9207)",
				"nonce          matches the one sent",
				"at_hash        matches the access token",
				"sub matches the ID token",
				"the refresh token was rotated",
				`refused        oauth2: "invalid_grant"`,
			},
		},
		{
			// Without RFC 9207 support the login works and the transcript says so.
			name:    "no iss, not advertised",
			op:      knobs{iss: "-"},
			wantOut: []string{"not sent: the server does not implement RFC 9207"},
		},
		{name: "state mismatch", op: knobs{wrongState: true}, wantErr: "state mismatch"},
		{name: "iss mismatch", op: knobs{iss: "http://evil.example"}, wantErr: "does not match the issuer"},
		{name: "iss missing but advertised", op: knobs{iss: "-", advertiseIss: true}, wantErr: "iss parameter missing"},
		{name: "error response", op: knobs{authError: "access_denied"}, wantErr: `error "access_denied": "the user said no"`},
		{name: "nonce mismatch", op: knobs{wrongNonce: true}, wantErr: "nonce does not match"},
		{name: "userinfo sub mismatch", op: knobs{userinfoSub: "someone-else"}, wantErr: "does not match the id token's sub"},
		{name: "no rotation", op: knobs{noRotation: true}, refresh: true, wantErr: "did not rotate"},
		{name: "no refresh token", op: knobs{noRefreshToks: true}, refresh: true, wantErr: "no refresh token was issued"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			op := newFakeOP(t, tt.op)
			var out strings.Builder
			api := ""
			if tt.api {
				api = op.url + "/api"
			}
			err := run(t.Context(), options{
				issuer:    op.url,
				clientID:  "example-native",
				scopes:    strings.Fields(defaultScopes),
				refresh:   tt.refresh,
				api:       api,
				timeout:   10 * time.Second,
				onAuthURL: followAuthURL(t),
			}, &out)
			if tt.wantErr == "" && err != nil {
				t.Fatalf("run: %v\ntranscript:\n%s", err, out.String())
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("run error = %v, want one containing %q\ntranscript:\n%s", err, tt.wantErr, out.String())
			}
			for _, want := range tt.wantOut {
				if !strings.Contains(out.String(), want) {
					t.Errorf("transcript lacks %q:\n%s", want, out.String())
				}
			}
			// No token may appear in full.
			op.mu.Lock()
			defer op.mu.Unlock()
			for tok := range op.accessTokens {
				if strings.Contains(out.String(), tok) {
					t.Errorf("transcript contains a full access token")
				}
			}
			for tok := range op.refreshTokens {
				if strings.Contains(out.String(), tok) {
					t.Errorf("transcript contains a full refresh token")
				}
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
			t.Errorf("request %d: status %d, want %d", i, rec.Code, wantStatus)
		}
	}
	if res := <-results; res.code != "c0" || res.err != nil {
		t.Errorf("result = %+v, want code c0", res)
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
			t.Errorf("redact(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
