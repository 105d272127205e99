package handlers_test

import (
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pixieauth/pixie/handlers"
	"github.com/pixieauth/pixie/internal/engine"
	"github.com/pixieauth/pixie/store"
)

// TestRefreshTokenIsNotABearerToken checks that only access tokens open
// /userinfo: a refresh token is a credential for the token endpoint alone,
// where a confidential client must also authenticate (issue 8, finding 1).
func TestRefreshTokenIsNotABearerToken(t *testing.T) {
	t.Parallel()
	hash, err := apiSecretHash()
	if err != nil {
		t.Fatal(err)
	}
	const firstPartyWeb = "first-party-web"
	ts := newTestServer(t, serverOptions{Clients: []*store.Client{{
		ID: firstPartyWeb, SecretHash: hash, FirstParty: true,
		RedirectURIs: []string{"https://app.example.com/callback"}, Scopes: strings.Fields(allScopes),
	}}})
	tests := []struct {
		name   string
		client string
		secret string // "" for a public client
		uri    string
	}{
		{"public native client", nativeClient, "", ts.loopbackRedirect()},
		{"confidential client", firstPartyWeb, apiSecret, "https://app.example.com/callback"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conf := ts.oauth2Config(tt.client, tt.uri, allScopes)
			conf.ClientSecret = tt.secret
			b := newBrowser(t, ts)
			_, tok := b.tokens(t, conf)
			if tok.RefreshToken == "" {
				t.Fatal("got no refresh token")
			}
			if res := ts.userinfo(t, "Bearer "+tok.AccessToken); res.Status != http.StatusOK {
				t.Fatalf("access token at userinfo: got %d, want 200; body: %s", res.Status, res.Body)
			}
			res := ts.userinfo(t, "Bearer "+tok.RefreshToken)
			if res.Status != http.StatusUnauthorized {
				t.Fatalf("refresh token at userinfo: got %d, want 401; body: %s", res.Status, res.Body)
			}
			if wa := res.Header.Get("WWW-Authenticate"); !strings.Contains(wa, `error="invalid_token"`) {
				t.Errorf("got WWW-Authenticate %q, want error=\"invalid_token\"", wa)
			}
		})
	}
}

// TestLogoutUsesClientValidation checks that /logout looks clients up
// through the provider's checks: a registration /authorize refuses (here a
// custom-scheme redirect URI on a client that is not native) gets no
// post-logout redirect either (finding 12).
func TestLogoutUsesClientValidation(t *testing.T) {
	t.Parallel()
	const broken, bye = "broken-registration", "https://app.example.com/bye"
	ts := newTestServer(t, serverOptions{Clients: []*store.Client{{
		ID: broken, RedirectURIs: []string{customSchemeURI}, PostLogoutRedirectURIs: []string{bye},
		Scopes: strings.Fields(allScopes), FirstParty: true,
	}}})
	b := newBrowser(t, ts)
	q := pkceQuery(ts)
	q.Set("client_id", broken)
	q.Set("redirect_uri", customSchemeURI)
	if p := b.get(t, ts.authorizeURL(q)); p.Callback != nil {
		t.Fatalf("authorize: got a redirect to %s for a client that breaks the rules", p.Location)
	}
	p := b.get(t, ts.logoutURL(url.Values{"client_id": {broken}, "post_logout_redirect_uri": {bye}, "state": {"s"}}))
	if p.Callback != nil {
		t.Fatalf("logout: got a redirect to %s for a client /authorize refuses", p.Location)
	}
	if p.Status != http.StatusBadRequest {
		t.Errorf("logout: got status %d, want 400", p.Status)
	}
}

// TestLoopbackRedirectExact checks redirect URI matching (finding 8): only
// the port of a native client's http loopback URI may vary (RFC 8252 §7.3,
// RFC 9700 §4.1.1); everything else must be the registered string. A
// refused redirect_uri gets an error page, never a redirect, even for a
// logged-in user.
func TestLoopbackRedirectExact(t *testing.T) {
	t.Parallel()
	const confidential = "confidential-loopback"
	hash, err := apiSecretHash()
	if err != nil {
		t.Fatal(err)
	}
	ts := newTestServer(t, serverOptions{Clients: []*store.Client{{
		ID: confidential, SecretHash: hash, FirstParty: true,
		RedirectURIs: []string{"https://127.0.0.1/cb"}, Scopes: strings.Fields(allScopes),
	}}})
	b := newBrowser(t, ts)
	b.code(t, newAuthRequest(ts.oauth2Config(nativeClient, ts.loopbackRedirect(), "openid"))) // log in

	tests := []struct {
		name     string
		client   string
		redirect string
		want     bool // a code
	}{
		{"registered, no port", nativeClient, "http://127.0.0.1/callback", true},
		{"registered with a port", nativeClient, "http://127.0.0.1:51234/callback", true},
		{"port 65535", nativeClient, "http://127.0.0.1:65535/callback", true},
		{"port 0", nativeClient, "http://127.0.0.1:0/callback", false},
		{"port 99999", nativeClient, "http://127.0.0.1:99999/callback", false},
		{"port with a leading zero", nativeClient, "http://127.0.0.1:08080/callback", false},
		{"empty port", nativeClient, "http://127.0.0.1:/callback", false},
		{"userinfo before the host", nativeClient, "http://evil.com%2F@127.0.0.1:51234/callback", false},
		{"userinfo", nativeClient, "http://user@127.0.0.1:51234/callback", false},
		{"upper-case scheme", nativeClient, "HTTP://127.0.0.1:51234/callback", false},
		{"https instead of http", nativeClient, "https://127.0.0.1:51234/callback", false},
		{"localhost for 127.0.0.1", nativeClient, "http://localhost:51234/callback", false},
		{"another loopback address", nativeClient, "http://127.0.0.2:51234/callback", false},
		{"longer host", nativeClient, "http://127.0.0.10:51234/callback", false},
		{"other path", nativeClient, "http://127.0.0.1:51234/callback/x", false},
		{"query added", nativeClient, "http://127.0.0.1:51234/callback?x=1", false},
		{"dot segment", nativeClient, "http://127.0.0.1:51234/x/../callback", false},
		{"custom scheme, exact", nativeClient, customSchemeURI, true},
		{"custom scheme, other path", nativeClient, customSchemeURI + "x", false},
		{"confidential https loopback, exact", confidential, "https://127.0.0.1/cb", true},
		{"confidential client, http with a port", confidential, "http://127.0.0.1:51234/cb", false},
		{"confidential client, https with a port", confidential, "https://127.0.0.1:51234/cb", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := pkceQuery(ts)
			q.Set("client_id", tt.client)
			q.Set("redirect_uri", tt.redirect)
			p := b.get(t, ts.authorizeURL(q))
			if !tt.want {
				if p.Callback != nil {
					t.Fatalf("got a redirect to %s, want an error page", p.Location)
				}
				if p.Status != http.StatusBadRequest {
					t.Errorf("got status %d, want 400", p.Status)
				}
				return
			}
			if p.Callback == nil || p.Callback.Query().Get("code") == "" {
				t.Fatalf("got status %d, Location %q; want a code", p.Status, p.Location)
			}
			if p.Location[:len(tt.redirect)] != tt.redirect {
				t.Errorf("got redirected to %s, want %s", p.Location, tt.redirect)
			}
		})
	}
}

// TestRequestSizeLimits checks the one request-size rule (finding 2):
// every endpoint refuses a body over handlers.MaxRequestBytes, an app's
// endpoint with 400 invalid_request, a page with 413, and multipart bodies
// are refused everywhere.
func TestRequestSizeLimits(t *testing.T) {
	t.Parallel()
	ts := sharedServer(t)
	endpoints := []struct {
		method, path string
		api          bool // answers apps with OAuth JSON errors
	}{
		{http.MethodPost, handlers.PathAuthorize, false},
		{http.MethodPost, handlers.PathToken, true},
		{http.MethodPost, handlers.PathUserInfo, true},
		{http.MethodPost, handlers.PathRevoke, true},
		{http.MethodPost, handlers.PathIntrospect, true},
		{http.MethodPost, handlers.PathLogin, false},
		{http.MethodPost, handlers.PathConsent, false},
		{http.MethodPost, handlers.PathLogout, false},
		{http.MethodPost, handlers.PathLogout + "/confirm", false},
	}
	big := "state=" + strings.Repeat("a", handlers.MaxRequestBytes)
	for _, ep := range endpoints {
		t.Run("too large "+ep.path, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), ep.method, ts.URL+ep.path, strings.NewReader(big))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Origin", ts.URL)
			res := send(t, nil, req)
			if ep.api {
				res.wantOAuthError(t, http.StatusBadRequest, "invalid_request")
			} else if res.Status != http.StatusRequestEntityTooLarge {
				t.Errorf("got status %d, want 413; body: %.200s", res.Status, res.Body)
			}
		})
		t.Run("multipart "+ep.path, func(t *testing.T) {
			var body strings.Builder
			mw := multipart.NewWriter(&body)
			_ = mw.WriteField("client_id", nativeClient)
			_ = mw.Close()
			req, err := http.NewRequestWithContext(t.Context(), ep.method, ts.URL+ep.path, strings.NewReader(body.String()))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", mw.FormDataContentType())
			req.Header.Set("Origin", ts.URL)
			res := send(t, nil, req)
			if ep.api {
				res.wantOAuthError(t, http.StatusBadRequest, "invalid_request")
			} else if res.Status != http.StatusUnsupportedMediaType {
				t.Errorf("got status %d, want 415; body: %.200s", res.Status, res.Body)
			}
		})
	}
}

// TestOversizedBodyNotRead checks that a request announcing a body over the
// limit is answered before the body is sent: the 8 MB id_token_hint of the
// finding is never buffered (finding 2).
func TestOversizedBodyNotRead(t *testing.T) {
	t.Parallel()
	ts := sharedServer(t)
	pr, pw := io.Pipe()
	defer pw.Close()
	go func() {
		// The first bytes only; the rest never comes.
		_, _ = pw.Write([]byte("id_token_hint=" + strings.Repeat(".", 1024)))
	}()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, ts.URL+handlers.PathLogout, pr)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = 8 << 20
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	// A server waiting for the body would never answer.
	res := send(t, &http.Client{Timeout: 10 * time.Second}, req)
	if res.Status != http.StatusRequestEntityTooLarge {
		t.Fatalf("got status %d, want 413", res.Status)
	}
}

// TestAuthorizeParameterLimits checks that the parameters pixie echoes,
// stores or signs are bounded (finding 2): an oversized one is an
// invalid_request shown to the user, never echoed in a redirect or signed
// into a token; values at the limit work.
func TestAuthorizeParameterLimits(t *testing.T) {
	t.Parallel()
	ts := sharedServer(t)
	b := newBrowser(t, ts)
	b.code(t, newAuthRequest(ts.oauth2Config(nativeClient, ts.loopbackRedirect(), "openid"))) // log in
	tests := []struct {
		param string
		n     int
		want  bool // a code
	}{
		{"state", 2048, true},
		{"state", 2049, false},
		{"state", 3 << 20 / 100, false}, // 30 KB: within the request limit, over the parameter's
		{"nonce", 512, true},
		{"nonce", 600 << 10 / 100, false},
		{"login_hint", 513, false},
		{"ui_locales", 257, false},
		{"acr_values", 513, false},
		{"id_token_hint", engine.MaxIDTokenHintLen + 1, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s of %d bytes", tt.param, tt.n), func(t *testing.T) {
			q := pkceQuery(ts)
			q.Set(tt.param, strings.Repeat("a", tt.n))
			p := b.get(t, ts.authorizeURL(q))
			if tt.want {
				if p.Callback == nil || p.Callback.Query().Get("code") == "" {
					t.Fatalf("got status %d, Location %.200q; want a code", p.Status, p.Location)
				}
				return
			}
			if p.Callback != nil {
				t.Fatalf("got a redirect (%d bytes), want an error page", len(p.Location))
			}
			if p.Status != http.StatusBadRequest || !strings.Contains(p.Body, "invalid_request") {
				t.Errorf("got status %d, want 400 invalid_request; body: %.300s", p.Status, p.Body)
			}
		})
	}
	t.Run("query over the request limit", func(t *testing.T) {
		q := pkceQuery(ts)
		q.Set("nonce", strings.Repeat("a", handlers.MaxRequestBytes))
		if p := b.get(t, ts.authorizeURL(q)); p.Status != http.StatusRequestEntityTooLarge {
			t.Errorf("got status %d, want 413", p.Status)
		}
	})
}

// TestMultipartAuthorizeRefused is the finding's reproduction: a multipart
// POST to /authorize with a repeated parameter skipped the repeated-
// parameter check; it is refused, never redirected.
func TestMultipartAuthorizeRefused(t *testing.T) {
	t.Parallel()
	ts := sharedServer(t)
	b := newBrowser(t, ts)
	b.code(t, newAuthRequest(ts.oauth2Config(nativeClient, ts.loopbackRedirect(), "openid")))
	var body strings.Builder
	mw := multipart.NewWriter(&body)
	for k, vs := range pkceQuery(ts) {
		_ = mw.WriteField(k, vs[0])
	}
	_ = mw.WriteField("scope", "openid profile")
	_ = mw.Close()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, ts.URL+handlers.PathAuthorize, strings.NewReader(body.String()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	p := b.do(t, req)
	if p.Callback != nil {
		t.Fatalf("got a redirect to %.200s, want a refusal", p.Location)
	}
}

// TestPendingLoginBodyBounded checks that Server.PendingLogin, called from
// the host app's own route, reads only a bounded urlencoded body (finding
// 2): r.FormValue would parse multipart bodies of up to 32 MB.
func TestPendingLoginBodyBounded(t *testing.T) {
	t.Parallel()
	const route = "/app/pending"
	ts := newTestServer(t, serverOptions{
		Handlers: &handlers.Config{LoginURL: "/app/login"},
		Routes: func(mux *http.ServeMux, s *handlers.Server) {
			mux.HandleFunc("POST "+route, func(w http.ResponseWriter, r *http.Request) {
				if _, err := s.PendingLogin(r); err != nil {
					http.Error(w, "no pending request", http.StatusBadRequest)
					return
				}
				_, _ = io.WriteString(w, "pending")
			})
		},
	})
	request := pkceQuery(ts).Encode()
	post := func(t *testing.T, contentType, body string) int {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, ts.URL+route, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", contentType)
		return send(t, nil, req).Status
	}
	if got := post(t, "application/x-www-form-urlencoded", url.Values{"pixie_request": {request}}.Encode()); got != http.StatusOK {
		t.Fatalf("urlencoded pixie_request: got %d, want 200", got)
	}
	var mp strings.Builder
	mw := multipart.NewWriter(&mp)
	_ = mw.WriteField("pixie_request", request)
	_ = mw.Close()
	if got := post(t, mw.FormDataContentType(), mp.String()); got != http.StatusBadRequest {
		t.Errorf("multipart pixie_request: got %d, want the body unread (400)", got)
	}
	huge := url.Values{"pixie_request": {request}, "pad": {strings.Repeat("a", handlers.MaxRequestBytes)}}.Encode()
	if got := post(t, "application/x-www-form-urlencoded", huge); got != http.StatusBadRequest {
		t.Errorf("body over MaxRequestBytes: got %d, want 400", got)
	}
}

// TestRefreshGraceBounded checks that the refresh grace period only
// recovers a lost response (finding 9): one reuse by default, one chain
// (the lost response's refresh token stops working), and no reuse once a
// newer token of the family has been used. Every refusal is invalid_grant,
// and a reuse beyond the bounds revokes the family as any replay does.
func TestRefreshGraceBounded(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, serverOptions{GracePeriod: time.Minute})
	conf := ts.oauth2Config(nativeClient, ts.loopbackRedirect(), allScopes)
	start := func(t *testing.T) (parent, lost string) {
		t.Helper()
		_, tok := newBrowser(t, ts).tokens(t, conf)
		next, err := refresh(t.Context(), conf, tok.RefreshToken)
		if err != nil {
			t.Fatalf("first refresh: %v", err)
		}
		return tok.RefreshToken, next.RefreshToken
	}
	must := func(t *testing.T, rt, what string) string {
		t.Helper()
		tok, err := refresh(t.Context(), conf, rt)
		if err != nil {
			t.Fatalf("%s: got %v, want new tokens", what, err)
		}
		return tok.RefreshToken
	}
	refused := func(t *testing.T, rt, what string) {
		t.Helper()
		_, err := refresh(t.Context(), conf, rt)
		wantRetrieveError(t, err, http.StatusBadRequest, "invalid_grant")
		if t.Failed() {
			t.Logf("(%s)", what)
		}
	}

	t.Run("one reuse", func(t *testing.T) {
		parent, _ := start(t)
		recovered := must(t, parent, "reuse within the grace period")
		refused(t, parent, "a second reuse")
		refused(t, recovered, "the chain after a reuse beyond the bound (family revoked)")
	})
	t.Run("one chain", func(t *testing.T) {
		parent, lost := start(t)
		recovered := must(t, parent, "reuse within the grace period")
		refused(t, lost, "the refresh token of the lost response")
		refused(t, recovered, "the chain, after the lost token was replayed (family revoked)")
	})
	t.Run("the recovered chain goes on", func(t *testing.T) {
		parent, _ := start(t)
		rt := must(t, parent, "reuse within the grace period")
		for i := range 3 {
			rt = must(t, rt, fmt.Sprintf("refresh %d of the recovered chain", i))
		}
	})
	t.Run("no reuse once a newer token was used", func(t *testing.T) {
		parent, next := start(t)
		newest := must(t, next, "the next token, used: the response was not lost")
		refused(t, parent, "reuse of a token whose successor was used")
		refused(t, newest, "the family, after the replay")
	})
}
