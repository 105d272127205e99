package handlers_test

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/pixieauth/pixie/handlers"
	"github.com/pixieauth/pixie/provider"
	"github.com/pixieauth/pixie/store"
)

// TestAuthorizationCodeFlow runs the whole flow a native app runs, with the
// real x/oauth2 and go-oidc clients: authorize with PKCE, log in, redirect
// with code, state and iss, exchange, verify the ID token against the JWKS,
// call /userinfo; the claims follow the scopes.
func TestAuthorizationCodeFlow(t *testing.T) {
	t.Parallel()
	ts := sharedServer(t)
	op := ts.oidcProvider(t)
	// One browser, logged in once through the login form; the cases then
	// run in parallel on its session.
	b := newBrowser(t, ts)
	b.code(t, newAuthRequest(ts.oauth2Config(nativeClient, ts.loopbackRedirect(), "openid")))

	tests := []struct {
		name     string
		redirect func() string // the redirect URI the app uses
		scopes   string        // the scopes it asks for
		// wantIDToken: an ID token is issued (openid asked for).
		wantIDToken bool
		// wantRefresh: a refresh token is issued (offline_access asked for).
		wantRefresh bool
		// wantClaims must be in the ID token and the UserInfo response;
		// wantNoClaims must be in neither.
		wantClaims   map[string]any
		wantNoClaims []string
	}{
		{
			name:        "loopback, all scopes",
			redirect:    ts.loopbackRedirect,
			scopes:      allScopes,
			wantIDToken: true, wantRefresh: true,
			wantClaims: map[string]any{"sub": "alice", "name": aliceName, "preferred_username": aliceUsername, "email": aliceEmail, "email_verified": true},
		},
		{
			name:        "custom scheme, all scopes",
			redirect:    func() string { return customSchemeURI },
			scopes:      allScopes,
			wantIDToken: true, wantRefresh: true,
			wantClaims: map[string]any{"sub": "alice", "name": aliceName, "email": aliceEmail},
		},
		{
			name:         "loopback, openid email: no profile claims, no refresh token",
			redirect:     ts.loopbackRedirect,
			scopes:       "openid email",
			wantIDToken:  true,
			wantClaims:   map[string]any{"sub": "alice", "email": aliceEmail},
			wantNoClaims: []string{"name", "given_name", "preferred_username"},
		},
		{
			name:         "custom scheme, openid profile: no email",
			redirect:     func() string { return customSchemeURI },
			scopes:       "openid profile",
			wantIDToken:  true,
			wantClaims:   map[string]any{"sub": "alice", "name": aliceName, "family_name": "Example"},
			wantNoClaims: []string{"email", "email_verified"},
		},
		{
			name:         "openid only: sub alone",
			redirect:     ts.loopbackRedirect,
			scopes:       "openid",
			wantIDToken:  true,
			wantClaims:   map[string]any{"sub": "alice"},
			wantNoClaims: []string{"name", "email"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			conf := ts.oauth2Config(nativeClient, tt.redirect(), tt.scopes)
			ar := newAuthRequest(conf)
			p := b.authorize(t, ar.URL)
			if p.Callback == nil {
				t.Fatalf("got status %d at %s, want a redirect to the app", p.Status, p.URL)
			}
			want, _ := url.Parse(conf.RedirectURL)
			if got := *p.Callback; got.Scheme != want.Scheme || got.Host != want.Host || got.Path != want.Path || got.Opaque != want.Opaque {
				t.Errorf("got redirect to %s, want %s", p.Location, conf.RedirectURL)
			}
			q := p.Callback.Query()
			if got := q.Get("state"); got != ar.State {
				t.Errorf("got state %q, want %q", got, ar.State)
			}
			if got := q.Get("iss"); got != ts.URL {
				t.Errorf("got iss %q, want %q (RFC 9207)", got, ts.URL)
			}
			if q.Get("error") != "" || q.Get("code") == "" {
				t.Fatalf("got %s, want a code", p.Location)
			}
			if got := p.Header.Get("Cache-Control"); got != "no-store" {
				t.Errorf("got Cache-Control %q on the code redirect, want no-store", got)
			}

			tok, err := ar.exchange(ctx, q.Get("code"))
			if err != nil {
				t.Fatalf("exchange: %v", err)
			}
			if tok.AccessToken == "" || tok.Type() != "Bearer" || tok.Expiry.IsZero() {
				t.Errorf("got access token %t, type %q, expiry %v; want a Bearer token that expires", tok.AccessToken != "", tok.Type(), tok.Expiry)
			}
			if got, want := scopeSet(fmt.Sprint(tok.Extra("scope"))), scopeSet(tt.scopes); !slices.Equal(got, want) {
				t.Errorf("got scope %v, want %v", got, want)
			}
			if got := tok.RefreshToken != ""; got != tt.wantRefresh {
				t.Errorf("got refresh token %t, want %t", got, tt.wantRefresh)
			}

			raw, _ := tok.Extra("id_token").(string)
			if got := raw != ""; got != tt.wantIDToken {
				t.Fatalf("got ID token %t, want %t", got, tt.wantIDToken)
			}
			// go-oidc checks the signature against the JWKS, iss, aud and exp.
			idt, err := op.VerifierContext(ctx, &oidc.Config{ClientID: nativeClient}).Verify(ctx, raw)
			if err != nil {
				t.Fatalf("verify ID token: %v", err)
			}
			if idt.Nonce != ar.Nonce {
				t.Errorf("got nonce %q, want %q", idt.Nonce, ar.Nonce)
			}
			if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
				t.Errorf("at_hash: %v", err)
			}
			if err := idt.VerifyAccessToken(tok.AccessToken + "x"); err == nil {
				t.Error("at_hash matches another access token, want a mismatch")
			}
			var idClaims map[string]any
			if err := idt.Claims(&idClaims); err != nil {
				t.Fatal(err)
			}

			ui, err := op.UserInfo(ctx, oauth2.StaticTokenSource(tok))
			if err != nil {
				t.Fatalf("userinfo: %v", err)
			}
			if ui.Subject != idt.Subject {
				t.Errorf("got userinfo sub %q, want the ID token's %q", ui.Subject, idt.Subject)
			}
			var uiClaims map[string]any
			if err := ui.Claims(&uiClaims); err != nil {
				t.Fatal(err)
			}
			for where, claims := range map[string]map[string]any{"ID token": idClaims, "userinfo": uiClaims} {
				for k, v := range tt.wantClaims {
					if claims[k] != v {
						t.Errorf("%s: got %s %v, want %v", where, k, claims[k], v)
					}
				}
				for _, k := range tt.wantNoClaims {
					if v, ok := claims[k]; ok {
						t.Errorf("%s: got %s %v, want no %s for scope %q", where, k, v, k, tt.scopes)
					}
				}
			}
		})
	}

	// Without openid there is no ID token, and the access token does not
	// open /userinfo.
	t.Run("no openid scope", func(t *testing.T) {
		t.Parallel()
		_, tok := b.tokens(t, ts.oauth2Config(nativeClient, ts.loopbackRedirect(), "profile"))
		if idt := tok.Extra("id_token"); idt != nil {
			t.Errorf("got id_token %v, want none without openid", idt)
		}
		res := ts.userinfo(t, "Bearer "+tok.AccessToken)
		if res.Status != http.StatusForbidden || !strings.Contains(res.Header.Get("WWW-Authenticate"), `error="insufficient_scope"`) {
			t.Errorf("userinfo: got %d, WWW-Authenticate %q; want 403 insufficient_scope", res.Status, res.Header.Get("WWW-Authenticate"))
		}
	})
}

// TestTokenResponseHeaders checks a raw token response: JSON with no-store
// caching headers (RFC 6749 §5.1).
func TestTokenResponseHeaders(t *testing.T) {
	t.Parallel()
	ts := sharedServer(t)
	b := newBrowser(t, ts)
	ar := newAuthRequest(ts.oauth2Config(nativeClient, ts.loopbackRedirect(), allScopes))
	code := b.code(t, ar)
	res := ts.postForm(t, handlers.PathToken, url.Values{
		"grant_type":    {"authorization_code"},
		"code":          {code},
		"redirect_uri":  {ar.Conf.RedirectURL},
		"client_id":     {nativeClient},
		"code_verifier": {ar.Verifier},
	}, nil)
	if res.Status != http.StatusOK {
		t.Fatalf("got status %d, want 200; body: %s", res.Status, res.Body)
	}
	for k, want := range map[string]string{"Cache-Control": "no-store", "Pragma": "no-cache"} {
		if got := res.Header.Get(k); got != want {
			t.Errorf("got %s %q, want %q", k, got, want)
		}
	}
	if ct, _, _ := strings.Cut(res.Header.Get("Content-Type"), ";"); ct != "application/json" {
		t.Errorf("got Content-Type %q, want application/json", res.Header.Get("Content-Type"))
	}
	m := res.JSON(t)
	for _, k := range []string{"access_token", "id_token", "refresh_token", "expires_in", "scope"} {
		if _, ok := m[k]; !ok {
			t.Errorf("token response has no %s", k)
		}
	}
	if tt, _ := m["token_type"].(string); !strings.EqualFold(tt, "bearer") {
		t.Errorf("got token_type %v, want bearer", m["token_type"])
	}
}

// TestIDTokenAlgorithms checks that ID tokens are signed with the provider's
// default algorithm unless the client asks for another, and that go-oidc
// verifies each through discovery and the JWKS.
func TestIDTokenAlgorithms(t *testing.T) {
	t.Parallel()
	clients := []*store.Client{
		{ID: "es256-native", RedirectURIs: []string{loopbackURI}, Scopes: strings.Fields(allScopes), Native: true, FirstParty: true, IDTokenAlg: provider.ES256},
		{ID: "rs256-native", RedirectURIs: []string{loopbackURI}, Scopes: strings.Fields(allScopes), Native: true, FirstParty: true, IDTokenAlg: provider.RS256},
	}
	servers := map[string]*testServer{
		provider.RS256: newTestServer(t, serverOptions{Clients: clients}),
		provider.ES256: newTestServer(t, serverOptions{IDTokenAlg: provider.ES256, Clients: clients}),
	}

	tests := []struct {
		name        string
		providerAlg string // Config.IDTokenAlg
		client      string
		wantAlg     string
	}{
		{"RS256 provider, default client", provider.RS256, nativeClient, provider.RS256},
		{"ES256 provider, default client", provider.ES256, nativeClient, provider.ES256},
		{"RS256 provider, ES256 client", provider.RS256, "es256-native", provider.ES256},
		{"ES256 provider, RS256 client", provider.ES256, "rs256-native", provider.RS256},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			ts := servers[tt.providerAlg]
			op := ts.oidcProvider(t)
			var meta struct {
				Algs []string `json:"id_token_signing_alg_values_supported"`
			}
			if err := op.Claims(&meta); err != nil {
				t.Fatal(err)
			}
			if !slices.Contains(meta.Algs, provider.RS256) || !slices.Contains(meta.Algs, provider.ES256) {
				t.Errorf("got id_token_signing_alg_values_supported %v, want RS256 and ES256", meta.Algs)
			}

			b := newBrowser(t, ts)
			conf := ts.oauth2Config(tt.client, ts.loopbackRedirect(), allScopes)
			ar, tok := b.tokens(t, conf)
			// Accept only the wanted algorithm: a token signed with the
			// other one fails verification.
			verifier := op.VerifierContext(ctx, &oidc.Config{ClientID: tt.client, SupportedSigningAlgs: []string{tt.wantAlg}})
			check := func(step, raw string) *oidc.IDToken {
				t.Helper()
				if got := jwtHeader(t, raw)["alg"]; got != tt.wantAlg {
					t.Errorf("%s: got alg %v, want %s", step, got, tt.wantAlg)
				}
				idt, err := verifier.Verify(ctx, raw)
				if err != nil {
					t.Fatalf("%s: verify: %v", step, err)
				}
				return idt
			}
			raw, _ := tok.Extra("id_token").(string)
			idt := check("code exchange", raw)
			if idt.Nonce != ar.Nonce {
				t.Errorf("got nonce %q, want %q", idt.Nonce, ar.Nonce)
			}
			if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
				t.Errorf("at_hash: %v", err)
			}

			// The ID token issued on refresh uses the same algorithm.
			tok2, err := refresh(ctx, conf, tok.RefreshToken)
			if err != nil {
				t.Fatalf("refresh: %v", err)
			}
			raw2, _ := tok2.Extra("id_token").(string)
			if raw2 == "" {
				t.Fatal("got no ID token on refresh, want one")
			}
			if idt2 := check("refresh", raw2); idt2.Subject != idt.Subject {
				t.Errorf("got sub %q on refresh, want %q", idt2.Subject, idt.Subject)
			}
		})
	}
}

// TestRefreshTokenRotation checks that refresh tokens rotate and that
// replaying a rotated one revokes the whole family (RFC 6819 §5.2.2.3).
func TestRefreshTokenRotation(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	ts := sharedServer(t)
	b := newBrowser(t, ts)
	conf := ts.oauth2Config(nativeClient, ts.loopbackRedirect(), allScopes)
	_, tok1 := b.tokens(t, conf)

	tok2, err := refresh(ctx, conf, tok1.RefreshToken)
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if tok2.RefreshToken == "" || tok2.RefreshToken == tok1.RefreshToken {
		t.Fatalf("got refresh token %q after rotation, want a new one", tok2.RefreshToken)
	}
	if tok2.AccessToken == tok1.AccessToken {
		t.Fatal("got the same access token after refresh, want a new one")
	}
	if res := ts.userinfo(t, "Bearer "+tok2.AccessToken); res.Status != http.StatusOK {
		t.Fatalf("userinfo with the refreshed access token: got %d, want 200; body: %s", res.Status, res.Body)
	}
	// RotateRefreshToken revokes the access tokens issued before it.
	if res := ts.userinfo(t, "Bearer "+tok1.AccessToken); res.Status != http.StatusUnauthorized {
		t.Errorf("userinfo with the access token from before the refresh: got %d, want 401", res.Status)
	}

	// Replaying the rotated token fails...
	_, err = refresh(ctx, conf, tok1.RefreshToken)
	wantRetrieveError(t, err, http.StatusBadRequest, "invalid_grant")
	// ...and revokes its family: the new refresh token and the access token
	// issued with it.
	_, err = refresh(ctx, conf, tok2.RefreshToken)
	wantRetrieveError(t, err, http.StatusBadRequest, "invalid_grant")
	if res := ts.userinfo(t, "Bearer "+tok2.AccessToken); res.Status != http.StatusUnauthorized {
		t.Errorf("userinfo after refresh-token reuse: got %d, want 401", res.Status)
	}
}

// TestLoginSessionReused checks single sign-on: a second authorization in the
// same browser goes straight back to the app, without the login page.
func TestLoginSessionReused(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	ts := sharedServer(t)
	b := newBrowser(t, ts)
	conf := ts.oauth2Config(nativeClient, ts.loopbackRedirect(), allScopes)

	b.code(t, newAuthRequest(conf))
	if b.PasswordPosts != 1 {
		t.Fatalf("got %d password posts for the first login, want 1", b.PasswordPosts)
	}

	ar := newAuthRequest(conf)
	p := b.get(t, ar.URL)
	if p.Callback == nil {
		t.Fatalf("second authorization: got status %d at %s, want a redirect straight to the app", p.Status, p.URL)
	}
	code := p.Callback.Query().Get("code")
	if code == "" || p.Callback.Query().Get("state") != ar.State {
		t.Fatalf("second authorization: got %s, want a code and state %q", p.Location, ar.State)
	}
	if b.PasswordPosts != 1 {
		t.Errorf("got %d password posts, want still 1", b.PasswordPosts)
	}
	if _, err := ar.exchange(ctx, code); err != nil {
		t.Errorf("exchange the second code: %v", err)
	}

	// Another browser has no session: it gets the login page.
	if p := newBrowser(t, ts).get(t, newAuthRequest(conf).URL); !p.IsLogin() {
		t.Errorf("fresh browser: got status %d at %s, want the login page", p.Status, p.URL)
	}
}

// pkceQuery returns a valid authorization request query for example-native
// on the loopback URI, for tests to spoil.
func pkceQuery(ts *testServer) url.Values {
	return url.Values{
		"response_type":         {"code"},
		"client_id":             {nativeClient},
		"redirect_uri":          {ts.loopbackRedirect()},
		"scope":                 {"openid"},
		"state":                 {randomString()},
		"nonce":                 {randomString()},
		"code_challenge":        {oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier())},
		"code_challenge_method": {"S256"},
	}
}

// pkceAuthorizeErrors are authorization requests with bad PKCE parameters
// (RFC 7636 §4.3, §4.4.1: code_challenge is 43–128 unreserved characters,
// S256 only): every one must come back as invalid_request.
var pkceAuthorizeErrors = []struct {
	name  string
	spoil func(q url.Values) // what is wrong with the request
}{
	{"no code_challenge", func(q url.Values) { q.Del("code_challenge"); q.Del("code_challenge_method") }},
	{"code_challenge_method=plain", func(q url.Values) {
		q.Set("code_challenge", oauth2.GenerateVerifier())
		q.Set("code_challenge_method", "plain")
	}},
	{"no code_challenge_method (defaults to plain)", func(q url.Values) { q.Del("code_challenge_method") }},
	{"unsupported code_challenge_method", func(q url.Values) { q.Set("code_challenge_method", "S512") }},
	{"code_challenge_method without code_challenge", func(q url.Values) { q.Del("code_challenge") }},
	{"code_challenge of 42 characters", func(q url.Values) { q.Set("code_challenge", q.Get("code_challenge")[:42]) }},
	{"code_challenge of 129 characters", func(q url.Values) { q.Set("code_challenge", strings.Repeat("a", 129)) }},
	{"code_challenge with characters outside [A-Za-z0-9-._~]", func(q url.Values) {
		q.Set("code_challenge", "abc+def/ghi="+q.Get("code_challenge")[12:])
	}},
	{"code_challenge with base64 padding", func(q url.Values) { q.Set("code_challenge", q.Get("code_challenge")+"=") }},
}

// TestAuthorizePKCEErrors checks that a request with bad PKCE parameters is
// refused with an error redirect that carries state and iss (RFC 9207), and
// no code. The browser is logged in, so the refusal is the server's last
// word on the request.
func TestAuthorizePKCEErrors(t *testing.T) {
	t.Parallel()
	ts := sharedServer(t)
	b := newBrowser(t, ts)
	b.code(t, newAuthRequest(ts.oauth2Config(nativeClient, ts.loopbackRedirect(), "openid")))

	for _, tt := range pkceAuthorizeErrors {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			q := pkceQuery(ts)
			tt.spoil(q)
			p := b.authorize(t, ts.authorizeURL(q))
			if p.Callback == nil {
				t.Fatalf("got status %d at %s, want an error redirect to the app; body:\n%s", p.Status, p.URL, p.Body)
			}
			if !strings.HasPrefix(p.Location, q.Get("redirect_uri")+"?") {
				t.Errorf("got redirect to %s, want %s", p.Location, q.Get("redirect_uri"))
			}
			cb := p.Callback.Query()
			if got := cb.Get("error"); got != "invalid_request" {
				t.Errorf("got error %q (%s), want invalid_request", got, cb.Get("error_description"))
			}
			if cb.Has("code") {
				t.Errorf("got a code in %s, want none", p.Location)
			}
			if got := cb.Get("state"); got != q.Get("state") {
				t.Errorf("got state %q, want %q", got, q.Get("state"))
			}
			if got := cb.Get("iss"); got != ts.URL {
				t.Errorf("got iss %q on the error redirect, want %q (RFC 9207)", got, ts.URL)
			}
		})
	}
}

// TestAuthorizePKCEErrorsBeforeLogin checks that a request the server will
// refuse anyway is refused at once: the user is not asked for a password
// for an authorization that cannot succeed.
func TestAuthorizePKCEErrorsBeforeLogin(t *testing.T) {
	t.Parallel()
	ts := sharedServer(t)
	for _, tt := range pkceAuthorizeErrors {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			q := pkceQuery(ts)
			tt.spoil(q)
			p := newBrowser(t, ts).get(t, ts.authorizeURL(q))
			if p.IsLogin() {
				t.Fatalf("got the login page, want the invalid_request redirect before any login")
			}
			if p.Callback == nil || p.Callback.Query().Get("error") != "invalid_request" {
				t.Errorf("got status %d, Location %q; want an invalid_request redirect", p.Status, p.Location)
			}
		})
	}
}

// TestTokenPKCEVerifier checks the code_verifier at the token endpoint
// (RFC 7636 §4.6): only the verifier of the challenge redeems the code.
func TestTokenPKCEVerifier(t *testing.T) {
	t.Parallel()
	ts := sharedServer(t)
	b := newBrowser(t, ts)

	tests := []struct {
		name     string
		verifier func(good string) string // the verifier sent; "" omits it
		// wantStatus and wantError: the expected response.
		wantStatus int
		wantError  string
	}{
		{"correct verifier", func(good string) string { return good }, http.StatusOK, ""},
		{"wrong verifier", func(string) string { return oauth2.GenerateVerifier() }, http.StatusBadRequest, "invalid_grant"},
		{"missing verifier", func(string) string { return "" }, http.StatusBadRequest, "invalid_grant"},
		{"42 characters", func(good string) string { return good[:42] }, http.StatusBadRequest, "invalid_grant"},
		{"129 characters", func(good string) string { return good + strings.Repeat("a", 129-len(good)) }, http.StatusBadRequest, "invalid_grant"},
		{"characters outside [A-Za-z0-9-._~]", func(good string) string { return "+/=" + good[3:] }, http.StatusBadRequest, "invalid_grant"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ar := newAuthRequest(ts.oauth2Config(nativeClient, ts.loopbackRedirect(), "openid"))
			code := b.code(t, ar)
			form := url.Values{
				"grant_type":   {"authorization_code"},
				"code":         {code},
				"redirect_uri": {ar.Conf.RedirectURL},
				"client_id":    {nativeClient},
			}
			if v := tt.verifier(ar.Verifier); v != "" {
				form.Set("code_verifier", v)
			}
			res := ts.postForm(t, handlers.PathToken, form, nil)
			if tt.wantStatus == http.StatusOK {
				if res.Status != http.StatusOK {
					t.Fatalf("got status %d, want 200; body: %s", res.Status, res.Body)
				}
				return
			}
			res.wantOAuthError(t, tt.wantStatus, tt.wantError)
			t.Logf("got %d %s", res.Status, res.Body)
		})
	}
}

// TestCodeReuseRevokesTokens checks that a code is single-use and that
// redeeming it again revokes what it issued (RFC 6749 §4.1.2).
func TestCodeReuseRevokesTokens(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	ts := sharedServer(t)
	b := newBrowser(t, ts)
	ar := newAuthRequest(ts.oauth2Config(nativeClient, ts.loopbackRedirect(), allScopes))
	code := b.code(t, ar)
	tok, err := ar.exchange(ctx, code)
	if err != nil {
		t.Fatalf("first redemption: %v", err)
	}
	if res := ts.userinfo(t, "Bearer "+tok.AccessToken); res.Status != http.StatusOK {
		t.Fatalf("userinfo before the replay: got %d, want 200", res.Status)
	}

	_, err = ar.exchange(ctx, code)
	wantRetrieveError(t, err, http.StatusBadRequest, "invalid_grant")

	if res := ts.userinfo(t, "Bearer "+tok.AccessToken); res.Status != http.StatusUnauthorized {
		t.Errorf("userinfo after the code replay: got %d, want 401", res.Status)
	}
	_, err = refresh(ctx, ar.Conf, tok.RefreshToken)
	wantRetrieveError(t, err, http.StatusBadRequest, "invalid_grant")
}

// TestConcurrentCodeRedemption redeems one code from many goroutines at once:
// exactly one gets tokens, every other one invalid_grant, none a 500
// (fosite #778).
func TestConcurrentCodeRedemption(t *testing.T) {
	t.Parallel()
	const (
		rounds     = 5
		goroutines = 20
	)
	tests := []struct {
		name string
		// gate holds the redemptions' compare-and-set steps until all
		// have reached them; nil lets the requests race as they come.
		gate *casGate
	}{
		{"memory store", nil},
		{"every redemption finds the code unused", newCASGate(goroutines)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ts := sharedServer(t)
			if tt.gate != nil {
				ts = newTestServer(t, serverOptions{Grants: tt.gate.wrap, Middleware: tt.gate.countFinished})
			}
			b := newBrowser(t, ts)
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: goroutines}}
			t.Cleanup(client.CloseIdleConnections)

			for round := range rounds {
				ar := newAuthRequest(ts.oauth2Config(nativeClient, ts.loopbackRedirect(), allScopes))
				body := url.Values{
					"grant_type":    {"authorization_code"},
					"code":          {b.code(t, ar)},
					"redirect_uri":  {ar.Conf.RedirectURL},
					"client_id":     {nativeClient},
					"code_verifier": {ar.Verifier},
				}.Encode()
				if tt.gate != nil {
					tt.gate.reset()
				}

				redeemTogether(t, client, []string{ts.URL}, goroutines, body, round)
			}
		})
	}
}

// TestAuthorizeBadClientOrRedirect checks that a request with an unknown
// client or an unregistered redirect URI is never redirected (RFC 6749
// §4.1.2.1, RFC 8252 §8.4): the user gets an error page.
func TestAuthorizeBadClientOrRedirect(t *testing.T) {
	t.Parallel()
	ts := sharedServer(t)
	port := strings.TrimPrefix(strings.TrimSuffix(ts.loopbackRedirect(), "/callback"), "http://127.0.0.1:")

	tests := []struct {
		name      string
		client    string // client_id; "" omits it
		redirect  string // redirect_uri; "" omits it
		wantError string // the OAuth error code shown on the page
	}{
		{"unregistered https URI", nativeClient, "https://evil.example/callback", "invalid_request"},
		{"loopback, other path", nativeClient, "http://127.0.0.1:" + port + "/other", "invalid_request"},
		{"loopback with an extra query", nativeClient, "http://127.0.0.1:" + port + "/callback?x=1", "invalid_request"},
		{"localhost instead of 127.0.0.1", nativeClient, "http://localhost:" + port + "/callback", "invalid_request"},
		{"https on the loopback address", nativeClient, "https://127.0.0.1:" + port + "/callback", "invalid_request"},
		{"loopback with a fragment", nativeClient, "http://127.0.0.1:" + port + "/callback#x", "invalid_request"},
		{"other custom scheme", nativeClient, "com.evil.app:/oauth2redirect", "invalid_request"},
		{"registered scheme, other path", nativeClient, "com.example.app:/other", "invalid_request"},
		{"no redirect_uri, two registered", nativeClient, "", "invalid_request"},
		{"unknown client", "no-such-client", customSchemeURI, "invalid_client"},
		{"no client_id", "", customSchemeURI, "invalid_client"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			q := pkceQuery(ts)
			q.Del("client_id")
			q.Del("redirect_uri")
			if tt.client != "" {
				q.Set("client_id", tt.client)
			}
			if tt.redirect != "" {
				q.Set("redirect_uri", tt.redirect)
			}
			p := newBrowser(t, ts).get(t, ts.authorizeURL(q))
			if p.Location != "" || p.Header.Get("Location") != "" {
				t.Fatalf("got a redirect to %q, want none", p.Location)
			}
			if p.URL.Path != handlers.PathAuthorize {
				t.Fatalf("got sent to %s, want the error page at %s", p.URL.Path, handlers.PathAuthorize)
			}
			if p.Status != http.StatusBadRequest {
				t.Errorf("got status %d, want 400", p.Status)
			}
			if ct := p.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
				t.Errorf("got Content-Type %q, want an HTML page", ct)
			}
			if !strings.Contains(p.Body, tt.wantError) {
				t.Errorf("page does not show %s:\n%s", tt.wantError, p.Body)
			}
		})
	}
}

// TestTokenGrantMismatch checks that the code is bound to the redirect URI
// and the client of the authorization request (RFC 6749 §4.1.3).
func TestTokenGrantMismatch(t *testing.T) {
	t.Parallel()
	ts := sharedServer(t)
	b := newBrowser(t, ts)

	tests := []struct {
		name string
		// spoil changes the correct redemption form.
		spoil      func(form url.Values)
		wantStatus int
		wantError  string
	}{
		{"loopback with another port", func(f url.Values) { f.Set("redirect_uri", ts.loopbackRedirect()) }, http.StatusBadRequest, "invalid_grant"},
		{"the other registered redirect URI", func(f url.Values) { f.Set("redirect_uri", customSchemeURI) }, http.StatusBadRequest, "invalid_grant"},
		{"no redirect_uri", func(f url.Values) { f.Del("redirect_uri") }, http.StatusBadRequest, "invalid_grant"},
		{"another client redeems the code", func(f url.Values) { f.Set("client_id", otherClient) }, http.StatusBadRequest, "invalid_grant"},
		{"unknown client", func(f url.Values) { f.Set("client_id", "no-such-client") }, http.StatusUnauthorized, "invalid_client"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ar := newAuthRequest(ts.oauth2Config(nativeClient, ts.loopbackRedirect(), allScopes))
			form := url.Values{
				"grant_type":    {"authorization_code"},
				"code":          {b.code(t, ar)},
				"redirect_uri":  {ar.Conf.RedirectURL},
				"client_id":     {nativeClient},
				"code_verifier": {ar.Verifier},
			}
			tt.spoil(form)
			res := ts.postForm(t, handlers.PathToken, form, nil)
			res.wantOAuthError(t, tt.wantStatus, tt.wantError)
		})
	}
}

// TestExpiredCode checks that a code cannot be redeemed after its lifespan.
// fosite checks code expiry against the wall clock (time.Now), not
// Config.Now, and the lifespan cannot be shorter than a second, so the test
// waits: it waits just past the latest possible expiry (the code was issued
// before the redirect reached the browser, and expires exactly one lifespan
// later), about one second, in parallel with the other tests.
func TestExpiredCode(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	const lifespan = time.Second
	ts := newTestServer(t, serverOptions{CodeLifespan: lifespan})
	b := newBrowser(t, ts)
	conf := ts.oauth2Config(nativeClient, ts.loopbackRedirect(), "openid")

	// Control: on the same server, a code redeemed at once works.
	b.tokens(t, conf)

	ar := newAuthRequest(conf)
	code := b.code(t, ar)
	issuedBy := time.Now()
	time.Sleep(time.Until(issuedBy.Add(lifespan + 50*time.Millisecond)))
	_, err := ar.exchange(ctx, code)
	wantRetrieveError(t, err, http.StatusBadRequest, "invalid_grant")
}

// TestTokenEndpointBadRequests checks requests that are not form POSTs.
func TestTokenEndpointBadRequests(t *testing.T) {
	t.Parallel()
	ts := sharedServer(t)
	b := newBrowser(t, ts)
	ar := newAuthRequest(ts.oauth2Config(nativeClient, ts.loopbackRedirect(), "openid"))
	form := url.Values{
		"grant_type":    {"authorization_code"},
		"code":          {b.code(t, ar)},
		"redirect_uri":  {ar.Conf.RedirectURL},
		"client_id":     {nativeClient},
		"code_verifier": {ar.Verifier},
	}
	jsonBody, err := json.Marshal(map[string]string{
		"grant_type": "authorization_code", "code": form.Get("code"), "redirect_uri": form.Get("redirect_uri"),
		"client_id": nativeClient, "code_verifier": ar.Verifier,
	})
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name        string
		method      string
		target      string // path and query
		contentType string
		body        string
		// wantStatus lists the acceptable statuses.
		wantStatus []int
		wantCode   string // the OAuth error; "" means invalid_request
	}{
		{"GET with the parameters in the query", http.MethodGet, handlers.PathToken + "?" + form.Encode(), "", "", []int{http.StatusMethodNotAllowed, http.StatusBadRequest}, ""},
		{"POST with a JSON body", http.MethodPost, handlers.PathToken, "application/json", string(jsonBody), []int{http.StatusBadRequest}, ""},
		{"POST with no Content-Type", http.MethodPost, handlers.PathToken, "", form.Encode(), []int{http.StatusBadRequest}, ""},
		{"PUT with a form", http.MethodPut, handlers.PathToken, "application/x-www-form-urlencoded", form.Encode(), []int{http.StatusMethodNotAllowed, http.StatusBadRequest}, ""},
		{"password grant", http.MethodPost, handlers.PathToken, "application/x-www-form-urlencoded",
			"grant_type=password&client_id=" + nativeClient + "&username=alice&password=x", []int{http.StatusBadRequest}, "unsupported_grant_type"},
		{"client_credentials grant", http.MethodPost, handlers.PathToken, "application/x-www-form-urlencoded",
			"grant_type=client_credentials&client_id=" + nativeClient, []int{http.StatusBadRequest}, "unsupported_grant_type"},
		{"no grant_type", http.MethodPost, handlers.PathToken, "application/x-www-form-urlencoded",
			"client_id=" + nativeClient, []int{http.StatusBadRequest}, ""},
		{"a parameter twice (RFC 6749 §3.2)", http.MethodPost, handlers.PathToken, "application/x-www-form-urlencoded",
			form.Encode() + "&code_verifier=" + ar.Verifier, []int{http.StatusBadRequest}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), tt.method, ts.URL+tt.target, strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if tt.contentType != "" {
				req.Header.Set("Content-Type", tt.contentType)
			}
			res := send(t, nil, req)
			if !slices.Contains(tt.wantStatus, res.Status) {
				t.Errorf("got status %d, want one of %v", res.Status, tt.wantStatus)
			}
			code := tt.wantCode
			if code == "" {
				code = "invalid_request"
			}
			res.wantOAuthError(t, res.Status, code)
			if res.Status == http.StatusMethodNotAllowed && res.Header.Get("Allow") != http.MethodPost {
				t.Errorf("got Allow %q with 405, want POST", res.Header.Get("Allow"))
			}
		})
	}

	// None of these consumed the code.
	if _, err := ar.exchange(t.Context(), form.Get("code")); err != nil {
		t.Errorf("exchange after the bad requests: %v", err)
	}
}

// TestUnsupportedResponseTypes checks that only the code flow is served: the
// implicit and hybrid flows are refused and no token reaches the browser.
func TestUnsupportedResponseTypes(t *testing.T) {
	t.Parallel()
	ts := sharedServer(t)
	b := newBrowser(t, ts)
	b.code(t, newAuthRequest(ts.oauth2Config(nativeClient, ts.loopbackRedirect(), "openid")))

	for _, rt := range []string{"token", "id_token", "id_token token", "code token", "code id_token", "code id_token token", "none"} {
		t.Run(rt, func(t *testing.T) {
			t.Parallel()
			q := pkceQuery(ts)
			q.Set("response_type", rt)
			p := b.authorize(t, ts.authorizeURL(q))
			if p.Callback == nil {
				t.Fatalf("got status %d at %s, want an error redirect", p.Status, p.URL)
			}
			params := p.Callback.Query()
			if frag, err := url.ParseQuery(p.Callback.Fragment); err == nil {
				for k, v := range frag {
					params[k] = append(params[k], v...)
				}
			}
			if got := params.Get("error"); got != "unsupported_response_type" {
				t.Errorf("got error %q (%s), want unsupported_response_type", got, params.Get("error_description"))
			}
			for _, k := range []string{"access_token", "id_token", "code"} {
				if params.Has(k) {
					t.Errorf("got %s in %s, want none", k, p.Location)
				}
			}
			if got := params.Get("iss"); got != ts.URL {
				t.Errorf("got iss %q, want %q", got, ts.URL)
			}
			if got := params.Get("state"); got != q.Get("state") {
				t.Errorf("got state %q, want %q", got, q.Get("state"))
			}
		})
	}
}

// TestUserInfoBearerErrors checks the RFC 6750 §3 errors of /userinfo.
func TestUserInfoBearerErrors(t *testing.T) {
	t.Parallel()
	ts := sharedServer(t)
	b := newBrowser(t, ts)
	_, tok := b.tokens(t, ts.oauth2Config(nativeClient, ts.loopbackRedirect(), "openid"))
	forged := tok.AccessToken[:len(tok.AccessToken)-4] + "AAAA"

	tests := []struct {
		name          string
		authorization string // the Authorization header; "" sends none
		wantStatus    int
		// wantError is the error attribute of WWW-Authenticate; "" means
		// none (RFC 6750 §3.1: a request without credentials gets no error
		// code).
		wantError string
	}{
		{"valid token", "Bearer " + tok.AccessToken, http.StatusOK, ""},
		{"lower-case scheme", "bearer " + tok.AccessToken, http.StatusOK, ""},
		{"garbage token", "Bearer garbage", http.StatusUnauthorized, "invalid_token"},
		{"forged signature", "Bearer " + forged, http.StatusUnauthorized, "invalid_token"},
		{"no Authorization header", "", http.StatusUnauthorized, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := ts.userinfo(t, tt.authorization)
			if res.Status != tt.wantStatus {
				t.Fatalf("got status %d, want %d; body: %s", res.Status, tt.wantStatus, res.Body)
			}
			if tt.wantStatus == http.StatusOK {
				if sub := res.JSON(t)["sub"]; sub != "alice" {
					t.Errorf("got sub %v, want alice", sub)
				}
				return
			}
			wa := res.Header.Get("WWW-Authenticate")
			if !strings.HasPrefix(wa, "Bearer") {
				t.Errorf("got WWW-Authenticate %q, want the Bearer scheme", wa)
			}
			if tt.wantError != "" && !strings.Contains(wa, `error="`+tt.wantError+`"`) {
				t.Errorf("got WWW-Authenticate %q, want error=%q", wa, tt.wantError)
			}
			if tt.wantError == "" && strings.Contains(wa, "error=") {
				t.Errorf("got WWW-Authenticate %q for a request without credentials, want no error code (RFC 6750 §3.1)", wa)
			}
		})
	}
}

// TestLoginFailures checks the login form: a wrong password shows the form
// again, and a forged or cross-site post is refused; none logs anyone in.
func TestLoginFailures(t *testing.T) {
	t.Parallel()
	ts := sharedServer(t)
	conf := ts.oauth2Config(nativeClient, ts.loopbackRedirect(), "openid")

	tests := []struct {
		name string
		// form changes the filled-in login form; origin is the Origin
		// header ("" the server's own).
		form   func(f url.Values)
		origin string
		// wantStatus 200 means the login page again, with wantMessage.
		wantStatus  int
		wantMessage string
	}{
		{"wrong password", func(f url.Values) { f.Set("password", "not the password") }, "", http.StatusOK, "incorrect"},
		{"unknown user", func(f url.Values) { f.Set("username", "mallory-"+randomString()) }, "", http.StatusOK, "incorrect"},
		{"empty password", func(f url.Values) { f.Set("password", "") }, "", http.StatusOK, "Enter your username and password"},
		{"missing csrf_token", func(f url.Values) { f.Del("csrf_token") }, "", http.StatusForbidden, ""},
		{"wrong csrf_token", func(f url.Values) { f.Set("csrf_token", randomString()+randomString()) }, "", http.StatusForbidden, ""},
		{"cross-origin post", func(url.Values) {}, "https://evil.example", http.StatusForbidden, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := newBrowser(t, ts)
			ar := newAuthRequest(conf)
			p := b.get(t, ar.URL)
			if !p.IsLogin() {
				t.Fatalf("got status %d at %s, want the login page", p.Status, p.URL)
			}
			f := b.parseLoginForm(t, p)
			f.Fields.Set("username", aliceUsername)
			f.Fields.Set("password", alicePassword)
			tt.form(f.Fields)
			p = b.post(t, f.Action, f.Fields, tt.origin)

			if p.Callback != nil {
				t.Fatalf("got a redirect to %s, want none", p.Location)
			}
			if p.Status != tt.wantStatus {
				t.Fatalf("got status %d, want %d; body:\n%s", p.Status, tt.wantStatus, p.Body)
			}
			if tt.wantStatus == http.StatusOK {
				if !p.IsLogin() {
					t.Fatalf("got %s, want the login page again", p.URL)
				}
				if f := b.parseLoginForm(t, p); !strings.Contains(f.Error, tt.wantMessage) {
					t.Errorf("got error message %q, want one containing %q", f.Error, tt.wantMessage)
				}
			}
			// Still not logged in: the request shows the login page again.
			if p := b.get(t, ar.URL); !p.IsLogin() {
				t.Errorf("after the failed login: got status %d at %s, Location %q; want the login page", p.Status, p.URL, p.Location)
			}
		})
	}

	// Both credential failures read alike, so usernames cannot be probed.
	t.Run("same message for unknown user and wrong password", func(t *testing.T) {
		t.Parallel()
		msg := func(username, password string) string {
			b := newBrowser(t, ts)
			p := b.submitLogin(t, b.get(t, newAuthRequest(conf).URL), username, password)
			return b.parseLoginForm(t, p).Error
		}
		wrong, unknown := msg(aliceUsername, "not the password"), msg("mallory-"+randomString(), alicePassword)
		if wrong == "" || wrong != unknown {
			t.Errorf("got %q for a wrong password and %q for an unknown user, want the same non-empty message", wrong, unknown)
		}
	})
}

// TestIntrospection checks that only an authenticated confidential client
// allowed to introspect may call /oauth/introspect (RFC 7662 §2.1).
func TestIntrospection(t *testing.T) {
	t.Parallel()
	ts := sharedServer(t)
	b := newBrowser(t, ts)
	_, tok := b.tokens(t, ts.oauth2Config(nativeClient, ts.loopbackRedirect(), allScopes))

	tests := []struct {
		name          string
		authorization string     // the Authorization header; "" sends none
		form          url.Values // besides token
		token         string
		wantStatus    int
		wantActive    bool // when wantStatus is 200
	}{
		{"resource server, Basic, access token", basicAuth(apiClient, apiSecret), nil, tok.AccessToken, http.StatusOK, true},
		{"resource server, Basic, refresh token", basicAuth(apiClient, apiSecret), nil, tok.RefreshToken, http.StatusOK, true},
		{"resource server, Basic, garbage token", basicAuth(apiClient, apiSecret), nil, "garbage", http.StatusOK, false},
		{"resource server, secret in the form", "", url.Values{"client_id": {apiClient}, "client_secret": {apiSecret}}, tok.AccessToken, http.StatusOK, true},
		{"user's access token as Bearer", "Bearer " + tok.AccessToken, nil, tok.AccessToken, http.StatusUnauthorized, false},
		{"no client authentication", "", nil, tok.AccessToken, http.StatusUnauthorized, false},
		{"public client by client_id", "", url.Values{"client_id": {nativeClient}}, tok.AccessToken, http.StatusUnauthorized, false},
		{"public client with Basic and no secret", basicAuth(nativeClient, ""), nil, tok.AccessToken, http.StatusUnauthorized, false},
		{"wrong secret", basicAuth(apiClient, "wrong"), nil, tok.AccessToken, http.StatusUnauthorized, false},
		{"confidential client not allowed to introspect", basicAuth(webClient, apiSecret), nil, tok.AccessToken, http.StatusUnauthorized, false},
		{"unknown client", basicAuth("no-such-client", apiSecret), nil, tok.AccessToken, http.StatusUnauthorized, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			form := url.Values{"token": {tt.token}}
			for k, v := range tt.form {
				form[k] = v
			}
			h := http.Header{}
			if tt.authorization != "" {
				h.Set("Authorization", tt.authorization)
			}
			res := ts.postForm(t, handlers.PathIntrospect, form, h)
			if tt.wantStatus != http.StatusOK {
				res.wantOAuthError(t, tt.wantStatus, "invalid_client")
				if m := res.JSON(t); m["active"] != nil {
					t.Errorf("got active %v in a refusal, want none", m["active"])
				}
				return
			}
			if res.Status != http.StatusOK {
				t.Fatalf("got status %d, want 200; body: %s", res.Status, res.Body)
			}
			m := res.JSON(t)
			if m["active"] != tt.wantActive {
				t.Fatalf("got active %v, want %t", m["active"], tt.wantActive)
			}
			if !tt.wantActive {
				if len(m) != 1 {
					t.Errorf("got %v for an inactive token, want only active=false", m)
				}
				return
			}
			want := map[string]any{"sub": "alice", "client_id": nativeClient, "iss": ts.URL}
			for k, v := range want {
				if m[k] != v {
					t.Errorf("got %s %v, want %v", k, m[k], v)
				}
			}
			if got, want := scopeSet(fmt.Sprint(m["scope"])), scopeSet(allScopes); !slices.Equal(got, want) {
				t.Errorf("got scope %v, want %v", got, want)
			}
			if exp, ok := m["exp"].(float64); !ok || time.Unix(int64(exp), 0).Before(time.Now()) {
				t.Errorf("got exp %v, want a time in the future", m["exp"])
			}
		})
	}
}

// TestRevocation checks RFC 7009: revoking the refresh token ends the grant,
// its access token included.
func TestRevocation(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	ts := sharedServer(t)
	b := newBrowser(t, ts)
	conf := ts.oauth2Config(nativeClient, ts.loopbackRedirect(), allScopes)
	_, tok := b.tokens(t, conf)
	if m := ts.introspect(t, tok.AccessToken); m["active"] != true {
		t.Fatalf("before revocation: got active %v, want true", m["active"])
	}

	res := ts.postForm(t, handlers.PathRevoke, url.Values{
		"token":           {tok.RefreshToken},
		"token_type_hint": {"refresh_token"},
		"client_id":       {nativeClient},
	}, nil)
	if res.Status != http.StatusOK {
		t.Fatalf("revoke: got status %d, want 200; body: %s", res.Status, res.Body)
	}

	_, err := refresh(ctx, conf, tok.RefreshToken)
	wantRetrieveError(t, err, http.StatusBadRequest, "invalid_grant")
	if m := ts.introspect(t, tok.AccessToken); m["active"] != false {
		t.Errorf("access token after revocation: got active %v, want false", m["active"])
	}
	if m := ts.introspect(t, tok.RefreshToken); m["active"] != false {
		t.Errorf("refresh token after revocation: got active %v, want false", m["active"])
	}
	if res := ts.userinfo(t, "Bearer "+tok.AccessToken); res.Status != http.StatusUnauthorized {
		t.Errorf("userinfo after revocation: got %d, want 401", res.Status)
	}

	// An unknown token is not an error (RFC 7009 §2.2).
	res = ts.postForm(t, handlers.PathRevoke, url.Values{"token": {"garbage"}, "client_id": {nativeClient}}, nil)
	if res.Status != http.StatusOK {
		t.Errorf("revoke an unknown token: got status %d, want 200; body: %s", res.Status, res.Body)
	}
}

// TestDiscovery checks both metadata documents (OIDC Discovery 1.0 §3,
// RFC 8414 §2) and the JWKS they point to.
func TestDiscovery(t *testing.T) {
	t.Parallel()
	ts := sharedServer(t)
	get := func(t *testing.T, rawURL string) *httpResult {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, rawURL, nil)
		if err != nil {
			t.Fatal(err)
		}
		return send(t, nil, req)
	}

	for _, path := range []string{handlers.PathOIDCConfig, handlers.PathOAuthConfig} {
		t.Run(path, func(t *testing.T) {
			res := get(t, ts.URL+path)
			if res.Status != http.StatusOK {
				t.Fatalf("got status %d, want 200", res.Status)
			}
			var doc struct {
				Issuer                  string   `json:"issuer"`
				AuthorizationEndpoint   string   `json:"authorization_endpoint"`
				TokenEndpoint           string   `json:"token_endpoint"`
				UserInfoEndpoint        string   `json:"userinfo_endpoint"`
				JWKSURI                 string   `json:"jwks_uri"`
				RevocationEndpoint      string   `json:"revocation_endpoint"`
				IntrospectionEndpoint   string   `json:"introspection_endpoint"`
				ResponseTypes           []string `json:"response_types_supported"`
				GrantTypes              []string `json:"grant_types_supported"`
				CodeChallengeMethods    []string `json:"code_challenge_methods_supported"`
				IDTokenAlgs             []string `json:"id_token_signing_alg_values_supported"`
				IssParameterSupported   *bool    `json:"authorization_response_iss_parameter_supported"`
				TokenEndpointAuthMethod []string `json:"token_endpoint_auth_methods_supported"`
			}
			if err := json.Unmarshal(res.Body, &doc); err != nil {
				t.Fatalf("decode: %v", err)
			}
			for name, c := range map[string]struct{ got, want string }{
				"issuer":                 {doc.Issuer, ts.URL},
				"authorization_endpoint": {doc.AuthorizationEndpoint, ts.URL + handlers.PathAuthorize},
				"token_endpoint":         {doc.TokenEndpoint, ts.URL + handlers.PathToken},
				"userinfo_endpoint":      {doc.UserInfoEndpoint, ts.URL + handlers.PathUserInfo},
				"jwks_uri":               {doc.JWKSURI, ts.URL + handlers.PathJWKS},
				"revocation_endpoint":    {doc.RevocationEndpoint, ts.URL + handlers.PathRevoke},
				"introspection_endpoint": {doc.IntrospectionEndpoint, ts.URL + handlers.PathIntrospect},
			} {
				if c.got != c.want {
					t.Errorf("got %s %q, want %q", name, c.got, c.want)
				}
			}
			for name, c := range map[string]struct{ got, want []string }{
				"code_challenge_methods_supported": {doc.CodeChallengeMethods, []string{"S256"}},
				"response_types_supported":         {doc.ResponseTypes, []string{"code"}},
				"grant_types_supported":            {scopeSet(strings.Join(doc.GrantTypes, " ")), []string{"authorization_code", "refresh_token"}},
				"id_token_signing_alg_values":      {scopeSet(strings.Join(doc.IDTokenAlgs, " ")), []string{"ES256", "RS256"}},
			} {
				if !slices.Equal(c.got, c.want) {
					t.Errorf("got %s %v, want %v", name, c.got, c.want)
				}
			}
			if doc.IssParameterSupported == nil || !*doc.IssParameterSupported {
				t.Errorf("got authorization_response_iss_parameter_supported %v, want true", doc.IssParameterSupported)
			}
			if !slices.Contains(doc.TokenEndpointAuthMethod, "none") {
				t.Errorf("got token_endpoint_auth_methods_supported %v, want none among them (public clients)", doc.TokenEndpointAuthMethod)
			}
		})
	}

	t.Run("jwks", func(t *testing.T) {
		res := get(t, ts.URL+handlers.PathJWKS)
		if res.Status != http.StatusOK {
			t.Fatalf("got status %d, want 200", res.Status)
		}
		var set struct {
			Keys []map[string]any `json:"keys"`
		}
		if err := json.Unmarshal(res.Body, &set); err != nil {
			t.Fatalf("decode: %v", err)
		}
		kids := map[string]bool{}
		algs := map[string]bool{}
		for _, k := range set.Keys {
			kid, _ := k["kid"].(string)
			if kid == "" || kids[kid] {
				t.Errorf("got kid %q, want a unique non-empty kid", kid)
			}
			kids[kid] = true
			alg, _ := k["alg"].(string)
			algs[alg] = true
			if k["use"] != "sig" {
				t.Errorf("key %s: got use %v, want sig", kid, k["use"])
			}
			for _, private := range []string{"d", "p", "q", "dp", "dq", "qi", "k"} {
				if _, ok := k[private]; ok {
					t.Errorf("key %s publishes private member %q", kid, private)
				}
			}
		}
		if !algs[provider.RS256] || !algs[provider.ES256] {
			t.Errorf("got keys for %v, want RS256 and ES256", algs)
		}
	})
}

// TestNoSecretsInLogs runs the flow and its failure paths with a Debug-level
// logger and checks that no token, code, verifier, password or client secret
// reaches the log.
func TestNoSecretsInLogs(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	var logs syncBuffer
	ts := newTestServer(t, serverOptions{Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	conf := ts.oauth2Config(nativeClient, ts.loopbackRedirect(), allScopes)
	const wrongPassword = "wrong-password-Zq9"
	secrets := map[string]string{"password": alicePassword, "wrong password": wrongPassword, "client secret": apiSecret}

	b := newBrowser(t, ts)
	ar := newAuthRequest(conf)
	p := b.get(t, ar.URL)
	secrets["csrf token"] = b.parseLoginForm(t, p).Fields.Get("csrf_token")
	if p = b.submitLogin(t, p, aliceUsername, wrongPassword); !p.IsLogin() {
		t.Fatalf("wrong password: got status %d at %s, want the login page", p.Status, p.URL)
	}
	code := b.code(t, ar)
	secrets["code"], secrets["code verifier"] = code, ar.Verifier
	tok, err := ar.exchange(ctx, code)
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	secrets["access token"], secrets["refresh token"] = tok.AccessToken, tok.RefreshToken
	secrets["id token"], _ = tok.Extra("id_token").(string)
	issuerURL, err := url.Parse(ts.URL)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range b.client.Jar.Cookies(issuerURL) {
		secrets["cookie "+c.Name] = c.Value
	}

	if res := ts.userinfo(t, "Bearer "+tok.AccessToken); res.Status != http.StatusOK {
		t.Errorf("userinfo: got %d, want 200", res.Status)
	}
	ts.introspect(t, tok.AccessToken)
	h := http.Header{}
	h.Set("Authorization", basicAuth(apiClient, apiSecret+"x"))
	ts.postForm(t, handlers.PathIntrospect, url.Values{"token": {tok.AccessToken}}, h)
	tok2, err := refresh(ctx, conf, tok.RefreshToken)
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	secrets["refreshed access token"], secrets["refreshed refresh token"] = tok2.AccessToken, tok2.RefreshToken
	if _, err := refresh(ctx, conf, tok.RefreshToken); err == nil { // reuse: logged at Warn
		t.Error("refresh-token reuse succeeded")
	}
	if _, err := ar.exchange(ctx, code); err == nil { // code replay: logged at Warn
		t.Error("code replay succeeded")
	}
	ar2 := newAuthRequest(conf)
	code2 := b.code(t, ar2)
	secrets["second code"] = code2
	ar2.Verifier = oauth2.GenerateVerifier() // wrong verifier: a client mistake, logged at Debug
	secrets["wrong verifier"] = ar2.Verifier
	if _, err := ar2.exchange(ctx, code2); err == nil {
		t.Error("exchange with a wrong verifier succeeded")
	}
	ts.postForm(t, handlers.PathRevoke, url.Values{"token": {tok2.RefreshToken}, "client_id": {nativeClient}}, nil)

	out := logs.String()
	// The log must have recorded the flow, or the test proves nothing.
	for _, want := range []string{"user logged in", "login failed", "level=WARN", "level=DEBUG"} {
		if !strings.Contains(out, want) {
			t.Errorf("log has no %q; got:\n%s", want, out)
		}
	}
	for name, s := range secrets {
		if s == "" {
			t.Errorf("%s is empty: the test did not capture it", name)
			continue
		}
		if strings.Contains(out, s) {
			t.Errorf("log contains the %s", name)
		}
		// The random half of an opaque token (before the dot) is as good as
		// the token to whoever holds the HMAC key.
		if key, _, ok := strings.Cut(s, "."); ok && len(key) >= 16 && strings.Contains(out, key) {
			t.Errorf("log contains the first part of the %s", name)
		}
	}
	if t.Failed() {
		t.Logf("log:\n%s", out)
	}
}
