package handlers_test

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/pixieauth/pixie/handlers"
	"github.com/pixieauth/pixie/store"
)

// Tests of RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0):
// the end_session_endpoint, GET or POST /logout.

const (
	// logoutClient is a first-party native app that registered where to
	// send the browser after logging out.
	logoutClient = "example-logout"
	// postLogoutURI is its registered post_logout_redirect_uri.
	postLogoutURI = "http://127.0.0.1/logged-out"
)

// logoutOptions registers logoutClient.
func logoutOptions() serverOptions {
	return serverOptions{Clients: []*store.Client{{
		ID: logoutClient, Name: "Logout App",
		RedirectURIs:           []string{loopbackURI},
		PostLogoutRedirectURIs: []string{postLogoutURI},
		Scopes:                 strings.Fields(allScopes),
		Native:                 true, FirstParty: true,
	}}}
}

// logIn logs a fresh browser in through logoutClient and returns it with
// the ID token the app received.
func logIn(t *testing.T, ts *testServer) (*browser, string) {
	t.Helper()
	b := newBrowser(t, ts)
	_, tok := b.tokens(t, ts.oauth2Config(logoutClient, ts.loopbackRedirect(), "openid"))
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		t.Fatal("got no ID token")
	}
	return b, raw
}

// loggedIn reports whether the browser still has a login session: an
// authorization request gets a code instead of the login page.
func (b *browser) loggedIn(t *testing.T) bool {
	t.Helper()
	p := b.get(t, newAuthRequest(b.ts.oauth2Config(nativeClient, b.ts.loopbackRedirect(), "openid")).URL)
	switch {
	case p.Callback != nil && p.Callback.Query().Get("code") != "":
		return true
	case p.IsLogin():
		return false
	}
	t.Fatalf("checking the session: got status %d at %s, Location %q; want a code or the login page", p.Status, p.URL, p.Location)
	return false
}

// logoutURL is the end_session_endpoint with params.
func (ts *testServer) logoutURL(params url.Values) string {
	u := ts.URL + handlers.PathLogout
	if len(params) > 0 {
		u += "?" + params.Encode()
	}
	return u
}

// Kinds of logout answers.
const (
	signedOut = "signed out" // 200, the signed-out page
	confirm   = "confirm"    // 200, the confirmation form
	errorPage = "error"      // 400, the error page
)

// logoutPageKind tells which page p is.
func logoutPageKind(p *page) string {
	switch {
	case p.Status == http.StatusOK && strings.Contains(p.Body, "You are signed out"):
		return signedOut
	case p.Status == http.StatusOK && strings.Contains(p.Body, "Sign out?") && strings.Contains(p.Body, "<form"):
		return confirm
	case p.Status == http.StatusBadRequest && strings.Contains(p.Body, "invalid_request"):
		return errorPage
	}
	return "other"
}

// TestLogoutDiscovery: discovery advertises the end_session_endpoint
// (RP-Initiated Logout 1.0 §2.1), as go-oidc reads it.
func TestLogoutDiscovery(t *testing.T) {
	t.Parallel()
	ts := sharedServer(t)
	var meta struct {
		EndSession string `json:"end_session_endpoint"`
	}
	if err := ts.oidcProvider(t).Claims(&meta); err != nil {
		t.Fatal(err)
	}
	if want := ts.URL + handlers.PathLogout; meta.EndSession != want {
		t.Errorf("got end_session_endpoint %q, want %q", meta.EndSession, want)
	}
}

// spoilPayload returns the ID token with its payload changed by edit and
// the signature kept.
func spoilPayload(t *testing.T, raw string, edit func(claims map[string]any)) string {
	t.Helper()
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		t.Fatalf("got %q, want a compact JWS", raw)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(b, &claims); err != nil {
		t.Fatal(err)
	}
	edit(claims)
	if b, err = json.Marshal(claims); err != nil {
		t.Fatal(err)
	}
	parts[1] = base64.RawURLEncoding.EncodeToString(b)
	return strings.Join(parts, ".")
}

// unsigned returns the ID token's claims under an alg "none" header and no
// signature.
func unsigned(t *testing.T, raw string) string {
	t.Helper()
	parts := strings.Split(raw, ".")
	header := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`))
	return header + "." + parts[1] + "."
}

// TestLogout runs logout requests on one server, each case in its own
// browser.
func TestLogout(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, logoutOptions())
	t.Run("request", func(t *testing.T) { t.Parallel(); testLogoutRequest(t, ts) })
	t.Run("confirmation", func(t *testing.T) { t.Parallel(); testLogoutConfirm(t, ts) })
	t.Run("without session", func(t *testing.T) { t.Parallel(); testLogoutWithoutSession(t, ts) })
	t.Run("another user's hint", func(t *testing.T) { t.Parallel(); testLogoutOtherUser(t, ts) })
}

// testLogoutOtherUser: an id_token_hint for someone else than the
// logged-in user proves nothing about this session: the user is asked.
func testLogoutOtherUser(t *testing.T, ts *testServer) {
	if err := ts.Store.AddUser(t.Context(), &store.User{Subject: "bob", PreferredUsername: "bob"}, "bob", "bob's password"); err != nil {
		t.Fatal(err)
	}
	bob := newBrowser(t, ts)
	ar := newAuthRequest(ts.oauth2Config(logoutClient, ts.loopbackRedirect(), "openid"))
	p := bob.submitLogin(t, bob.get(t, ar.URL), "bob", "bob's password")
	if p.Callback == nil {
		t.Fatalf("bob's login: got status %d at %s, want a code", p.Status, p.URL)
	}
	tok, err := ar.exchange(t.Context(), p.Callback.Query().Get("code"))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	bobHint, _ := tok.Extra("id_token").(string)

	alice, _ := logIn(t, ts)
	p = alice.get(t, ts.logoutURL(url.Values{"id_token_hint": {bobHint}, "post_logout_redirect_uri": {postLogoutURI}}))
	if got := logoutPageKind(p); got != confirm {
		t.Errorf("got status %d, Location %q, page %q; want the confirmation", p.Status, p.Location, got)
	}
	if !alice.loggedIn(t) {
		t.Error("alice was logged out by bob's ID token, want her asked first")
	}
}

// testLogoutRequest: a logout request with a valid id_token_hint naming the
// logged-in user ends the session at once and redirects to a registered
// post_logout_redirect_uri with state; one without asks the user first; a
// bad hint, client_id or post_logout_redirect_uri gets the error page, never
// a redirect, and leaves the session alone.
func testLogoutRequest(t *testing.T, ts *testServer) {

	tests := []struct {
		name string
		// params builds the request from the user's ID token.
		params func(t *testing.T, idToken string) url.Values
		// post sends it as a form POST from the app's origin.
		post bool
		// wantRedirect is the exact Location; "" means a page of kind
		// wantPage.
		wantRedirect string
		wantPage     string
		wantOut      bool // the session has ended
	}{
		{
			name: "hint, registered redirect and state",
			params: func(_ *testing.T, idt string) url.Values {
				return url.Values{"id_token_hint": {idt}, "post_logout_redirect_uri": {postLogoutURI}, "state": {"s1 &x"}}
			},
			wantRedirect: postLogoutURI + "?state=s1+%26x", wantOut: true,
		},
		{
			name: "hint, client_id, redirect, no state",
			params: func(_ *testing.T, idt string) url.Values {
				return url.Values{"id_token_hint": {idt}, "client_id": {logoutClient}, "post_logout_redirect_uri": {postLogoutURI}}
			},
			wantRedirect: postLogoutURI, wantOut: true,
		},
		{
			name: "form POST from the app",
			params: func(_ *testing.T, idt string) url.Values {
				return url.Values{"id_token_hint": {idt}, "post_logout_redirect_uri": {postLogoutURI}, "state": {"s2"}}
			},
			post:         true,
			wantRedirect: postLogoutURI + "?state=s2", wantOut: true,
		},
		{
			name:     "hint without redirect",
			params:   func(_ *testing.T, idt string) url.Values { return url.Values{"id_token_hint": {idt}} },
			wantPage: signedOut, wantOut: true,
		},
		{
			name:     "no parameters: asks",
			params:   func(*testing.T, string) url.Values { return nil },
			wantPage: confirm,
		},
		{
			name: "client_id and redirect without hint: asks",
			params: func(*testing.T, string) url.Values {
				return url.Values{"client_id": {logoutClient}, "post_logout_redirect_uri": {postLogoutURI}, "state": {"s3"}}
			},
			wantPage: confirm,
		},
		{
			name: "unregistered redirect",
			params: func(_ *testing.T, idt string) url.Values {
				return url.Values{"id_token_hint": {idt}, "post_logout_redirect_uri": {"http://127.0.0.1/elsewhere"}}
			},
			wantPage: errorPage,
		},
		{
			name: "another client's redirect",
			params: func(_ *testing.T, idt string) url.Values {
				return url.Values{"id_token_hint": {idt}, "post_logout_redirect_uri": {loopbackURI}}
			},
			wantPage: errorPage,
		},
		{
			name:     "redirect without a client",
			params:   func(*testing.T, string) url.Values { return url.Values{"post_logout_redirect_uri": {postLogoutURI}} },
			wantPage: errorPage,
		},
		{
			name: "client_id not the hint's audience",
			params: func(_ *testing.T, idt string) url.Values {
				return url.Values{"id_token_hint": {idt}, "client_id": {nativeClient}}
			},
			wantPage: errorPage,
		},
		{
			name:     "unknown client_id",
			params:   func(*testing.T, string) url.Values { return url.Values{"client_id": {"no-such-app"}} },
			wantPage: errorPage,
		},
		{
			name:     "garbage hint",
			params:   func(*testing.T, string) url.Values { return url.Values{"id_token_hint": {"not.a.token"}} },
			wantPage: errorPage,
		},
		{
			name: "hint with a changed payload",
			params: func(t *testing.T, idt string) url.Values {
				return url.Values{"id_token_hint": {spoilPayload(t, idt, func(c map[string]any) { c["aud"] = nativeClient })}}
			},
			wantPage: errorPage,
		},
		{
			name: "unsigned hint (alg none)",
			params: func(t *testing.T, idt string) url.Values {
				return url.Values{"id_token_hint": {unsigned(t, idt)}, "post_logout_redirect_uri": {postLogoutURI}}
			},
			wantPage: errorPage,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b, idt := logIn(t, ts)
			params := tt.params(t, idt)
			var p *page
			if tt.post {
				p = b.post(t, ts.URL+handlers.PathLogout, params, "https://app.example")
			} else {
				p = b.get(t, ts.logoutURL(params))
			}
			if tt.wantRedirect != "" {
				if p.Status != http.StatusSeeOther || p.Location != tt.wantRedirect {
					t.Errorf("got status %d, Location %q; want 303 to %s", p.Status, p.Location, tt.wantRedirect)
				}
			} else {
				if p.Callback != nil {
					t.Errorf("got a redirect to %s, want none", p.Location)
				}
				if got := logoutPageKind(p); got != tt.wantPage {
					t.Errorf("got status %d, page %q, want page %q; body:\n%s", p.Status, got, tt.wantPage, p.Body)
				}
			}
			if got := !b.loggedIn(t); got != tt.wantOut {
				t.Errorf("got logged out %t, want %t", got, tt.wantOut)
			}
		})
	}
}

// testLogoutConfirm: a logout request that does not prove it comes from the
// user's app asks the user, whose answer, posted with the CSRF token, ends
// the session and then follows the request.
func testLogoutConfirm(t *testing.T, ts *testServer) {

	tests := []struct {
		name   string
		params url.Values
		// spoil changes the confirmation form; origin is the Origin
		// header ("" the server's own).
		spoil  func(f url.Values)
		origin string
		// wantStatus and wantRedirect (exact Location, or "" for the
		// signed-out page) of the confirmation's answer.
		wantStatus   int
		wantRedirect string
		wantOut      bool
	}{
		{"confirmed, no parameters", nil, func(url.Values) {}, "", http.StatusOK, "", true},
		{
			"confirmed, redirect with state",
			url.Values{"client_id": {logoutClient}, "post_logout_redirect_uri": {postLogoutURI}, "state": {"st"}},
			func(url.Values) {}, "", http.StatusSeeOther, postLogoutURI + "?state=st", true,
		},
		{"missing csrf_token", nil, func(f url.Values) { f.Del("csrf_token") }, "", http.StatusForbidden, "", false},
		{"wrong csrf_token", nil, func(f url.Values) { f.Set("csrf_token", randomString()) }, "", http.StatusForbidden, "", false},
		{"cross-origin post", nil, func(url.Values) {}, "https://evil.example", http.StatusForbidden, "", false},
		{
			"redirect changed in the form",
			url.Values{"client_id": {logoutClient}, "post_logout_redirect_uri": {postLogoutURI}},
			func(f url.Values) {
				f.Set("request", url.Values{"client_id": {logoutClient}, "post_logout_redirect_uri": {"https://evil.example/"}}.Encode())
			},
			"", http.StatusBadRequest, "", false,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b, _ := logIn(t, ts)
			p := b.get(t, ts.logoutURL(tt.params))
			if got := logoutPageKind(p); got != confirm {
				t.Fatalf("got status %d, page %q, want the confirmation; body:\n%s", p.Status, got, p.Body)
			}
			wantSecurityHeaders(t, p.Header)
			if tt.params.Get("client_id") != "" && !strings.Contains(p.Body, "Logout App") {
				t.Error("the confirmation does not name the app asking, Logout App")
			}
			if !b.loggedIn(t) {
				t.Fatal("logged out before confirming")
			}
			f := b.parseForm(t, p)
			tt.spoil(f.Fields)
			p = b.post(t, f.Action, f.Fields, tt.origin)
			if p.Status != tt.wantStatus || p.Location != tt.wantRedirect {
				t.Errorf("got status %d, Location %q; want %d, %q", p.Status, p.Location, tt.wantStatus, tt.wantRedirect)
			}
			if tt.wantStatus == http.StatusOK && logoutPageKind(p) != signedOut {
				t.Errorf("got page %q, want the signed-out page", logoutPageKind(p))
			}
			if got := !b.loggedIn(t); got != tt.wantOut {
				t.Errorf("got logged out %t, want %t", got, tt.wantOut)
			}
		})
	}
}

// testLogoutWithoutSession: with nobody logged in there is nothing to
// confirm: the signed-out page, or the registered redirect.
func testLogoutWithoutSession(t *testing.T, ts *testServer) {
	_, idt := logIn(t, ts)
	tests := []struct {
		name         string
		params       url.Values
		wantRedirect string // exact Location, or "" for the signed-out page
	}{
		{"no parameters", nil, ""},
		{"client_id", url.Values{"client_id": {logoutClient}}, ""},
		{"hint and redirect", url.Values{"id_token_hint": {idt}, "post_logout_redirect_uri": {postLogoutURI}, "state": {"x"}}, postLogoutURI + "?state=x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := newBrowser(t, ts).get(t, ts.logoutURL(tt.params))
			if tt.wantRedirect != "" {
				if p.Status != http.StatusSeeOther || p.Location != tt.wantRedirect {
					t.Errorf("got status %d, Location %q; want 303 to %s", p.Status, p.Location, tt.wantRedirect)
				}
				return
			}
			if got := logoutPageKind(p); got != signedOut {
				t.Errorf("got status %d, page %q, want the signed-out page", p.Status, got)
			}
		})
	}
}

// TestLogoutExpiredHint: an expired ID token is still a valid
// id_token_hint (RP-Initiated Logout 1.0 §2): it only names who to log out.
// fosite checks expiry on the wall clock, so the test waits (about a
// second) for a 1-second ID token to expire.
func TestLogoutExpiredHint(t *testing.T) {
	t.Parallel()
	opts := logoutOptions()
	opts.IDTokenLifespan = time.Second
	ts := newTestServer(t, opts)
	b, idt := logIn(t, ts)

	var claims struct {
		Exp int64 `json:"exp"`
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.Split(idt, ".")[1])
	if err != nil || json.Unmarshal(payload, &claims) != nil || claims.Exp == 0 {
		t.Fatalf("got ID token payload %q, want an exp claim", payload)
	}
	// Expired once the wall clock's second is past exp.
	time.Sleep(time.Until(time.Unix(claims.Exp+1, 0)))
	ctx := t.Context()
	_, err = ts.oidcProvider(t).VerifierContext(ctx, &oidc.Config{ClientID: logoutClient}).Verify(ctx, idt)
	if _, ok := errors.AsType[*oidc.TokenExpiredError](err); !ok {
		t.Fatalf("go-oidc: got %v, want the token expired", err)
	}

	p := b.get(t, ts.logoutURL(url.Values{"id_token_hint": {idt}, "post_logout_redirect_uri": {postLogoutURI}, "state": {"late"}}))
	if want := postLogoutURI + "?state=late"; p.Status != http.StatusSeeOther || p.Location != want {
		t.Errorf("got status %d, Location %q; want 303 to %s", p.Status, p.Location, want)
	}
	if b.loggedIn(t) {
		t.Error("still logged in, want logged out")
	}
}
