package handlers_test

import (
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/pixieauth/pixie/handlers"
	"github.com/pixieauth/pixie/internal/engine"
	"github.com/pixieauth/pixie/provider"
	"github.com/pixieauth/pixie/store"
)

// Tests of what an OpenID Connect certification run checks beyond the basic
// flow: acr (OIDC Core §2, §3.1.2.1, §5.5.1.1), the claims request
// parameter (§5.5), the access token in a POST body at userinfo (RFC 6750
// §2.2), and the address and phone scopes (§5.4).

const (
	oidcClient   = "example-oidc"   // public, native, first party; may ask for address and phone
	oidc3pClient = "example-oidc3p" // the same, not first party: asks for consent
	narrowClient = "example-narrow" // public, native, first party; registered for openid only

	bobUsername = "bob"
	bobPassword = "bob's correct horse battery"
	bobPhone    = "+15555550100"

	mfaACR = "urn:example:acr:mfa" // the acr the host app's login reports in the tests
)

// bobAddress is bob's postal address.
var bobAddress = store.Address{
	StreetAddress: "1 Main Street\nApt 2",
	Locality:      "Springfield",
	Region:        "IL",
	PostalCode:    "62701",
	Country:       "USA",
}

// newOIDCServer starts a test server with opts plus the clients above and
// bob, who has an address and a phone number (alice has neither).
func newOIDCServer(t *testing.T, opts serverOptions) *testServer {
	t.Helper()
	scopes := []string{"openid", "profile", "email", "address", "phone", "offline_access"}
	native := []string{loopbackURI}
	opts.Clients = append(opts.Clients,
		&store.Client{ID: oidcClient, Name: "OIDC App", RedirectURIs: native, Scopes: scopes, Native: true, FirstParty: true},
		&store.Client{ID: oidc3pClient, Name: "Third App", RedirectURIs: native, Scopes: scopes, Native: true},
		&store.Client{ID: narrowClient, Name: "Narrow App", RedirectURIs: native, Scopes: []string{"openid", "offline_access"}, Native: true, FirstParty: true},
	)
	ts := newTestServer(t, opts)
	if err := ts.Store.AddUser(t.Context(), &store.User{
		Subject: "bob", PreferredUsername: bobUsername, Name: "Bob Example",
		Address: bobAddress, PhoneNumber: bobPhone, PhoneNumberVerified: true,
	}, bobUsername, bobPassword); err != nil {
		t.Fatal(err)
	}
	return ts
}

// signIn opens authURL in b and, if the login page comes up, signs in with
// username and password. It returns the last page.
func signIn(t *testing.T, b *browser, authURL, username, password string) *page {
	t.Helper()
	p := b.get(t, authURL)
	if p.IsLogin() {
		p = b.submitLogin(t, p, username, password)
	}
	return p
}

// callbackCode returns the code of a redirect to the client, failing the
// test if p is anything else.
func callbackCode(t *testing.T, ar *authRequest, p *page) string {
	t.Helper()
	if p.Callback == nil {
		t.Fatalf("got status %d at %s, want a redirect to the app; body:\n%s", p.Status, p.URL, p.Body)
	}
	q := p.Callback.Query()
	if q.Get("error") != "" || q.Get("code") == "" || q.Get("state") != ar.State {
		t.Fatalf("got redirect %s, want a code with state %q", p.Location, ar.State)
	}
	return q.Get("code")
}

// idTokenClaims verifies the ID token of tok with go-oidc and returns all
// its claims.
func idTokenClaims(t *testing.T, ts *testServer, clientID string, tok *oauth2.Token) map[string]any {
	t.Helper()
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		t.Fatal("token response has no id_token")
	}
	ctx := t.Context()
	idt, err := ts.oidcProvider(t).VerifierContext(ctx, &oidc.Config{ClientID: clientID}).Verify(ctx, raw)
	if err != nil {
		t.Fatalf("verify ID token: %v", err)
	}
	var c map[string]any
	if err := idt.Claims(&c); err != nil {
		t.Fatal(err)
	}
	return c
}

// userInfoOf calls userinfo with tok's access token and returns the claims.
func userInfoOf(t *testing.T, ts *testServer, tok *oauth2.Token) map[string]any {
	t.Helper()
	res := ts.userinfo(t, "Bearer "+tok.AccessToken)
	if res.Status != http.StatusOK {
		t.Fatalf("userinfo: got status %d, want 200; body: %s", res.Status, res.Body)
	}
	return res.JSON(t)
}

// wantClaims checks that claims has exactly the keys of want among the
// names checked, with want's values (nil: any value).
func wantClaims(t *testing.T, where string, claims map[string]any, checked []string, want map[string]any) {
	t.Helper()
	for _, k := range checked {
		got, has := claims[k]
		w, wanted := want[k]
		switch {
		case has && !wanted:
			t.Errorf("%s: got %s = %v, want none", where, k, got)
		case !has && wanted:
			t.Errorf("%s: got no %s, want %v", where, k, w)
		case has && w != nil && !reflect.DeepEqual(got, w):
			t.Errorf("%s: got %s = %#v, want %#v", where, k, got, w)
		}
	}
}

// userClaimNames are the claims wantClaims checks in these tests.
var userClaimNames = []string{"name", "given_name", "family_name", "preferred_username", "email", "email_verified",
	"address", "phone_number", "phone_number_verified"}

// TestDiscoveryOIDC: the provider metadata tells what these tests use:
// claims_parameter_supported, acr_values_supported, the address and phone
// scopes and their claims (OIDC Discovery §3).
func TestDiscoveryOIDC(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, serverOptions{ACRValues: []string{mfaACR}})
	var md struct {
		ClaimsParameter bool     `json:"claims_parameter_supported"`
		ACRValues       []string `json:"acr_values_supported"`
		Scopes          []string `json:"scopes_supported"`
		Claims          []string `json:"claims_supported"`
	}
	if err := ts.oidcProvider(t).Claims(&md); err != nil {
		t.Fatal(err)
	}
	if !md.ClaimsParameter {
		t.Error("claims_parameter_supported is false")
	}
	if want := []string{provider.ACRPassword, provider.ACRUnspecified, mfaACR}; !slices.Equal(md.ACRValues, want) {
		t.Errorf("got acr_values_supported %q, want %q", md.ACRValues, want)
	}
	for _, sc := range []string{"openid", "profile", "email", "address", "phone", "offline_access"} {
		if !slices.Contains(md.Scopes, sc) {
			t.Errorf("scopes_supported %q lacks %s", md.Scopes, sc)
		}
	}
	for _, c := range []string{"acr", "amr", "auth_time", "email", "address", "phone_number", "phone_number_verified"} {
		if !slices.Contains(md.Claims, c) {
			t.Errorf("claims_supported %q lacks %s", md.Claims, c)
		}
	}
}

// TestACRPasswordLogin: pixie's own login is a password login, and its ID
// tokens say so (acr ACRPassword). acr_values and a voluntary acr claim are
// preferences that never fail a request (OIDC Core §3.1.2.1, §5.5.1.1); an
// essential acr claim the login cannot meet answers
// unmet_authentication_requirements, with no code.
func TestACRPasswordLogin(t *testing.T) {
	t.Parallel()
	ts := newOIDCServer(t, serverOptions{ACRValues: []string{mfaACR}})
	b := newBrowser(t, ts)
	tests := []struct {
		name    string
		extra   url.Values
		wantErr string // the error sent to the app, or "": a code, and an ID token with acr ACRPassword
	}{
		{"not asked", nil, ""},
		{"acr_values unmet", url.Values{"acr_values": {mfaACR}}, ""},
		{"acr_values met", url.Values{"acr_values": {mfaACR + " " + provider.ACRPassword}}, ""},
		{"voluntary acr claim unmet", url.Values{"claims": {`{"id_token":{"acr":{"values":["` + mfaACR + `"]}}}`}}, ""},
		{"essential acr met", url.Values{"claims": {`{"id_token":{"acr":{"essential":true,"values":["` + mfaACR + `","` + provider.ACRPassword + `"]}}}`}}, ""},
		{"essential acr without values", url.Values{"claims": {`{"id_token":{"acr":{"essential":true}}}`}}, ""},
		{"essential acr unmet", url.Values{"claims": {`{"id_token":{"acr":{"essential":true,"values":["` + mfaACR + `"]}}}`}}, engine.CodeUnmetAuthenticationRequirements},
		{"essential acr value unmet", url.Values{"claims": {`{"id_token":{"acr":{"essential":true,"value":"` + mfaACR + `"}}}`}}, engine.CodeUnmetAuthenticationRequirements},
		// acr_values do not loosen an essential claim.
		{"essential acr unmet, acr_values met", url.Values{
			"acr_values": {provider.ACRPassword},
			"claims":     {`{"id_token":{"acr":{"essential":true,"values":["` + mfaACR + `"]}}}`},
		}, engine.CodeUnmetAuthenticationRequirements},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ar := authorizeWith(ts, oidcClient, "openid", tc.extra)
			p := signIn(t, b, ar.URL, aliceUsername, alicePassword)
			if tc.wantErr != "" {
				wantRedirectError(t, ts, ar, p, tc.wantErr)
				return
			}
			tok, err := ar.exchange(t.Context(), callbackCode(t, ar, p))
			if err != nil {
				t.Fatalf("exchange: %v", err)
			}
			c := idTokenClaims(t, ts, oidcClient, tok)
			if c["acr"] != provider.ACRPassword {
				t.Errorf("got acr %v, want %q", c["acr"], provider.ACRPassword)
			}
		})
	}
}

// hostACRApp is a host app whose login (Config.LoginURL) completes every
// pending login at once as alice, with amr [pwd otp] and the acr the test
// set for the request's state.
type hostACRApp struct {
	*testServer
	mu      sync.Mutex
	acr     map[string]string            // by state: the Login.ACR to report
	pending map[string]*handlers.Pending // by state: what the login saw
}

func newHostACRApp(t *testing.T) *hostACRApp {
	app := &hostACRApp{acr: map[string]string{}, pending: map[string]*handlers.Pending{}}
	routes := func(mux *http.ServeMux, s *handlers.Server) {
		mux.HandleFunc("GET /app/login", func(w http.ResponseWriter, r *http.Request) {
			p, err := s.PendingLogin(r)
			if err != nil {
				http.Error(w, "no sign-in request", http.StatusBadRequest)
				return
			}
			state := r.URL.Query().Get("state")
			app.mu.Lock()
			app.pending[state] = p
			acr := app.acr[state]
			app.mu.Unlock()
			p.Complete(w, r, provider.Login{Subject: "alice", AMR: []string{"pwd", "otp"}, ACR: acr})
		})
	}
	app.testServer = newOIDCServer(t, serverOptions{
		ACRValues: []string{mfaACR},
		Handlers:  &handlers.Config{LoginURL: "/app/login"},
		Routes:    routes,
	})
	return app
}

// TestACRHostLogin: the host app's login reports its acr in
// Pending.Complete (Login.ACR), and the ID token carries it, also for later
// requests served by the session; without one, the acr is ACRUnspecified
// (its amr is not a password alone). Pending tells the app the acr asked
// for. An essential acr the app's login did not meet fails; an acr the
// provider was not configured with (Config.ACRValues) is a server error.
func TestACRHostLogin(t *testing.T) {
	t.Parallel()
	app := newHostACRApp(t)
	tests := []struct {
		name          string
		appACR        string     // what the app reports
		extra         url.Values // the request's acr parameters
		wantPending   []string   // Pending.ACRValues
		wantEssential bool       // Pending.ACREssential
		wantErr       string     // the error sent to the app, or "": an ID token with acr wantACR
		wantACR       string
	}{
		{"app acr", mfaACR, nil, nil, false, "", mfaACR},
		{"no app acr", "", nil, nil, false, "", provider.ACRUnspecified},
		{"acr_values", mfaACR, url.Values{"acr_values": {mfaACR + " " + provider.ACRPassword}}, []string{mfaACR, provider.ACRPassword}, false, "", mfaACR},
		{"essential met", mfaACR, url.Values{"claims": {`{"id_token":{"acr":{"essential":true,"values":["` + mfaACR + `"]}}}`}}, []string{mfaACR}, true, "", mfaACR},
		{"essential unmet", mfaACR, url.Values{"claims": {`{"id_token":{"acr":{"essential":true,"values":["` + provider.ACRPassword + `"]}}}`}}, []string{provider.ACRPassword}, true, engine.CodeUnmetAuthenticationRequirements, ""},
		{"acr not configured", "urn:example:acr:unknown", nil, nil, false, engine.CodeServerError, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := newBrowser(t, app.testServer)
			ar := authorizeWith(app.testServer, oidcClient, "openid", tc.extra)
			app.mu.Lock()
			app.acr[ar.State] = tc.appACR
			app.mu.Unlock()
			p := b.get(t, ar.URL)
			app.mu.Lock()
			pending := app.pending[ar.State]
			app.mu.Unlock()
			if pending == nil {
				t.Fatal("the app's login saw no pending login")
			}
			if !slices.Equal(pending.ACRValues, tc.wantPending) || pending.ACREssential != tc.wantEssential {
				t.Errorf("got Pending.ACRValues %q, ACREssential %v; want %q, %v", pending.ACRValues, pending.ACREssential, tc.wantPending, tc.wantEssential)
			}
			if tc.wantErr != "" {
				wantRedirectError(t, app.testServer, ar, p, tc.wantErr)
				return
			}
			tok, err := ar.exchange(t.Context(), callbackCode(t, ar, p))
			if err != nil {
				t.Fatalf("exchange: %v", err)
			}
			if c := idTokenClaims(t, app.testServer, oidcClient, tok); c["acr"] != tc.wantACR {
				t.Errorf("got acr %v, want %q", c["acr"], tc.wantACR)
			}
			// The session remembers the login's acr.
			ar = authorizeWith(app.testServer, oidcClient, "openid", nil)
			tok, err = ar.exchange(t.Context(), callbackCode(t, ar, b.get(t, ar.URL)))
			if err != nil {
				t.Fatalf("second exchange: %v", err)
			}
			if c := idTokenClaims(t, app.testServer, oidcClient, tok); c["acr"] != tc.wantACR {
				t.Errorf("second request, from the session: got acr %v, want %q", c["acr"], tc.wantACR)
			}
		})
	}
}

// TestClaimsParameter: the claims parameter (OIDC Core §5.5) releases
// individual claims in the ID token or at userinfo, as asked, even without
// their scope; a claim the user lacks is absent, even when essential
// (§5.5.1); a claim of a scope the client is not registered for is not
// released; refreshed ID tokens and userinfo with refreshed access tokens
// keep honouring the request. The access token's scope is not widened.
func TestClaimsParameter(t *testing.T) {
	t.Parallel()
	ts := newOIDCServer(t, serverOptions{})
	b := newBrowser(t, ts)
	tests := []struct {
		name         string
		client       string
		scopes       string
		claims       string
		wantIDToken  map[string]any // the user claims of the ID tokens (nil value: any)
		wantUserInfo map[string]any // those at userinfo
	}{
		{
			name: "ID token", client: oidcClient, scopes: "openid offline_access",
			claims:       `{"id_token":{"email":{"essential":true},"name":null,"phone_number":{"essential":true}}}`,
			wantIDToken:  map[string]any{"email": aliceEmail, "name": aliceName},
			wantUserInfo: map[string]any{},
		},
		{
			name: "userinfo", client: oidcClient, scopes: "openid offline_access",
			claims:       `{"userinfo":{"email":null,"email_verified":null,"phone_number":{"essential":true}}}`,
			wantIDToken:  map[string]any{},
			wantUserInfo: map[string]any{"email": aliceEmail, "email_verified": true},
		},
		{
			name: "both, besides a scope", client: oidcClient, scopes: "openid profile offline_access",
			claims:       `{"id_token":{"email":null},"userinfo":{"email":null},"other_member":{"x":1}}`,
			wantIDToken:  map[string]any{"email": aliceEmail, "name": aliceName, "given_name": "Alice", "family_name": "Example", "preferred_username": aliceUsername},
			wantUserInfo: map[string]any{"email": aliceEmail, "name": aliceName, "given_name": "Alice", "family_name": "Example", "preferred_username": aliceUsername},
		},
		{
			name: "client not registered for the scope", client: narrowClient, scopes: "openid offline_access",
			claims:       `{"id_token":{"email":{"essential":true}},"userinfo":{"name":null}}`,
			wantIDToken:  map[string]any{},
			wantUserInfo: map[string]any{},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ar := authorizeWith(ts, tc.client, tc.scopes, url.Values{"claims": {tc.claims}})
			tok, err := ar.exchange(t.Context(), callbackCode(t, ar, signIn(t, b, ar.URL, aliceUsername, alicePassword)))
			if err != nil {
				t.Fatalf("exchange: %v", err)
			}
			if got := scopeSet(tok.Extra("scope").(string)); !slices.Equal(got, scopeSet(tc.scopes)) {
				t.Errorf("got scope %q, want %q: the claims parameter grants no scope", got, tc.scopes)
			}
			wantClaims(t, "ID token", idTokenClaims(t, ts, tc.client, tok), userClaimNames, tc.wantIDToken)
			wantClaims(t, "userinfo", userInfoOf(t, ts, tok), userClaimNames, tc.wantUserInfo)

			refreshed, err := refresh(t.Context(), ar.Conf, tok.RefreshToken)
			if err != nil {
				t.Fatalf("refresh: %v", err)
			}
			rc := idTokenClaims(t, ts, tc.client, refreshed)
			wantClaims(t, "refreshed ID token", rc, userClaimNames, tc.wantIDToken)
			if rc["acr"] != provider.ACRPassword {
				t.Errorf("refreshed ID token: got acr %v, want the login's %q", rc["acr"], provider.ACRPassword)
			}
			wantClaims(t, "userinfo with the refreshed access token", userInfoOf(t, ts, refreshed), userClaimNames, tc.wantUserInfo)
		})
	}
}

// TestClaimsParameterSubject: a sub value in the claims parameter (§5.5.1)
// gets an ID token for that user only, never for another one logged in.
func TestClaimsParameterSubject(t *testing.T) {
	t.Parallel()
	ts := newOIDCServer(t, serverOptions{})
	b := newBrowser(t, ts)
	ar := authorizeWith(ts, oidcClient, "openid", url.Values{"claims": {`{"id_token":{"sub":{"value":"alice"}}}`}})
	tok, err := ar.exchange(t.Context(), callbackCode(t, ar, signIn(t, b, ar.URL, aliceUsername, alicePassword)))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	if c := idTokenClaims(t, ts, oidcClient, tok); c["sub"] != "alice" {
		t.Errorf("got sub %v, want alice", c["sub"])
	}
	ar = authorizeWith(ts, oidcClient, "openid", url.Values{"claims": {`{"id_token":{"sub":{"value":"bob"}}}`}})
	wantRedirectError(t, ts, ar, b.get(t, ar.URL), engine.CodeAccessDenied)
}

// TestClaimsParameterConsent: a claim asked for with the claims parameter
// needs the user's consent as its scope does: a third-party app asking for
// email that way is shown the email line on the consent page.
func TestClaimsParameterConsent(t *testing.T) {
	t.Parallel()
	ts := newOIDCServer(t, serverOptions{})
	b := newBrowser(t, ts)
	ar := authorizeWith(ts, oidc3pClient, "openid", url.Values{"claims": {`{"userinfo":{"email":null}}`}})
	c := b.parseConsent(t, signIn(t, b, ar.URL, aliceUsername, alicePassword))
	if !slices.Contains(c.Scopes, wordsEmail) {
		t.Errorf("consent page lists %q, want %q among them", c.Scopes, wordsEmail)
	}
	tok, err := ar.exchange(t.Context(), callbackCode(t, ar, b.decide(t, c, "allow")))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	wantClaims(t, "userinfo", userInfoOf(t, ts, tok), userClaimNames, map[string]any{"email": aliceEmail})

	// prompt=none with the same request: already allowed.
	ar = authorizeWith(ts, oidc3pClient, "openid", url.Values{"claims": {`{"userinfo":{"email":null}}`}, "prompt": {"none"}})
	callbackCode(t, ar, b.get(t, ar.URL))
	// Asking for the phone number the same way is new: consent_required.
	ar = authorizeWith(ts, oidc3pClient, "openid", url.Values{"claims": {`{"userinfo":{"phone_number":null}}`}, "prompt": {"none"}})
	wantRedirectError(t, ts, ar, b.get(t, ar.URL), "consent_required")
}

// TestClaimsParameterMalformed: a claims parameter that is not a JSON
// claims request (§5.5) is invalid_request sent back to the app, before any
// login; one too long is refused on a page, as every overlong parameter;
// members pixie does not understand are ignored.
func TestClaimsParameterMalformed(t *testing.T) {
	t.Parallel()
	ts := sharedServer(t)
	tests := []struct {
		name      string
		claims    string
		wantErr   bool
		wantShown bool // the error is shown on a page, not sent to the app
	}{
		{"not JSON", `{"id_token":`, true, false},
		{"null", `null`, true, false},
		{"an array", `[{"id_token":{}}]`, true, false},
		{"a string", `"email"`, true, false},
		{"trailing data", `{"id_token":{}} {}`, true, false},
		{"id_token not an object", `{"id_token":["email"]}`, true, false},
		{"userinfo not an object", `{"userinfo":"email"}`, true, false},
		{"claim not an object", `{"id_token":{"email":true}}`, true, false},
		{"essential not a boolean", `{"id_token":{"email":{"essential":"yes"}}}`, true, false},
		{"values not an array", `{"userinfo":{"email":{"values":"a"}}}`, true, false},
		{"two sub values", `{"id_token":{"sub":{"values":["alice","bob"]}}}`, true, false},
		{"too long", `{"userinfo":{"email":{"values":["` + strings.Repeat("a", 5000) + `"]}}}`, true, true},
		{"unknown members", `{"vp_token":{"x":1},"id_token":{"nickname":{"essential":true}}}`, false, false},
		{"empty", `{}`, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := newBrowser(t, ts)
			ar := authorizeWith(ts, nativeClient, "openid", url.Values{"claims": {tc.claims}})
			p := b.get(t, ar.URL)
			if tc.wantShown {
				if p.Status != http.StatusBadRequest || p.Callback != nil {
					t.Errorf("got status %d, Location %q; want a 400 page", p.Status, p.Location)
				}
				return
			}
			if tc.wantErr {
				wantRedirectError(t, ts, ar, p, engine.CodeInvalidRequest)
				return
			}
			if !p.IsLogin() {
				t.Errorf("got status %d at %s (Location %q), want the login page", p.Status, p.URL, p.Location)
			}
		})
	}
}

// TestUserInfoPostBody: POST /userinfo takes the access token in an
// application/x-www-form-urlencoded body (RFC 6750 §2.2) when there is no
// Authorization header; both at once, or the field twice, is
// invalid_request (§2, §3.1); other bodies and the query are not read.
func TestUserInfoPostBody(t *testing.T) {
	t.Parallel()
	ts := sharedServer(t)
	_, tok := newBrowser(t, ts).tokens(t, ts.oauth2Config(nativeClient, ts.loopbackRedirect(), "openid email"))
	tests := []struct {
		name        string
		method      string
		contentType string
		body        string
		query       string
		auth        string // the Authorization header, or ""
		wantStatus  int
		wantErr     string // the error, or "": the claims
	}{
		{"form", http.MethodPost, "application/x-www-form-urlencoded", "access_token=" + tok.AccessToken, "", "", http.StatusOK, ""},
		{"form with charset", http.MethodPost, "application/x-www-form-urlencoded; charset=utf-8", url.Values{"access_token": {tok.AccessToken}, "other": {"x"}}.Encode(), "", "", http.StatusOK, ""},
		{"header, form without token", http.MethodPost, "application/x-www-form-urlencoded", "other=x", "", "Bearer " + tok.AccessToken, http.StatusOK, ""},
		{"header and form", http.MethodPost, "application/x-www-form-urlencoded", "access_token=" + tok.AccessToken, "", "Bearer " + tok.AccessToken, http.StatusBadRequest, engine.CodeInvalidRequest},
		{"token twice", http.MethodPost, "application/x-www-form-urlencoded", "access_token=" + tok.AccessToken + "&access_token=" + tok.AccessToken, "", "", http.StatusBadRequest, engine.CodeInvalidRequest},
		{"wrong token in form", http.MethodPost, "application/x-www-form-urlencoded", "access_token=" + tok.AccessToken + "x", "", "", http.StatusUnauthorized, engine.CodeInvalidToken},
		{"JSON body", http.MethodPost, "application/json", `{"access_token":"` + tok.AccessToken + `"}`, "", "", http.StatusUnauthorized, ""},
		{"query of a POST", http.MethodPost, "application/x-www-form-urlencoded", "", "access_token=" + tok.AccessToken, "", http.StatusUnauthorized, ""},
		{"query of a GET", http.MethodGet, "", "", "access_token=" + tok.AccessToken, "", http.StatusUnauthorized, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			u := ts.URL + handlers.PathUserInfo
			if tc.query != "" {
				u += "?" + tc.query
			}
			req, err := http.NewRequestWithContext(t.Context(), tc.method, u, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if tc.contentType != "" {
				req.Header.Set("Content-Type", tc.contentType)
			}
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			res := send(t, nil, req)
			if tc.wantStatus == http.StatusOK {
				if res.Status != http.StatusOK {
					t.Fatalf("got status %d, want 200; body: %s", res.Status, res.Body)
				}
				wantClaims(t, "userinfo", res.JSON(t), []string{"sub", "email"}, map[string]any{"sub": "alice", "email": aliceEmail})
				return
			}
			if res.Status != tc.wantStatus {
				t.Errorf("got status %d, want %d; body: %s", res.Status, tc.wantStatus, res.Body)
			}
			challenge := res.Header.Get("WWW-Authenticate")
			if tc.wantErr == "" {
				// RFC 6750 §3.1: no error code when no credentials were sent.
				if challenge != `Bearer realm="pixie"` {
					t.Errorf("got WWW-Authenticate %q, want the bare challenge", challenge)
				}
				return
			}
			res.wantOAuthError(t, tc.wantStatus, tc.wantErr)
			if !strings.Contains(challenge, `error="`+tc.wantErr+`"`) {
				t.Errorf("got WWW-Authenticate %q, want error=%q", challenge, tc.wantErr)
			}
		})
	}
}

// TestAddressPhoneScopes: the address and phone scopes release the address
// (a JSON object, OIDC Core §5.1.1), phone_number and
// phone_number_verified claims in the ID token and at userinfo, when the
// user has them; the claims parameter releases them one by one; the consent
// page names them in plain words.
func TestAddressPhoneScopes(t *testing.T) {
	t.Parallel()
	ts := newOIDCServer(t, serverOptions{})
	address := map[string]any{
		"street_address": bobAddress.StreetAddress, "locality": bobAddress.Locality, "region": bobAddress.Region,
		"postal_code": bobAddress.PostalCode, "country": bobAddress.Country,
	}
	tests := []struct {
		name               string
		username, password string
		scopes             string
		claims             string
		want               map[string]any // in the ID token and at userinfo
	}{
		{"bob, address and phone", bobUsername, bobPassword, "openid address phone", "",
			map[string]any{"address": address, "phone_number": bobPhone, "phone_number_verified": true}},
		{"bob, address", bobUsername, bobPassword, "openid address", "", map[string]any{"address": address}},
		{"bob, phone", bobUsername, bobPassword, "openid phone", "", map[string]any{"phone_number": bobPhone, "phone_number_verified": true}},
		{"bob, neither", bobUsername, bobPassword, "openid profile", "", map[string]any{"name": "Bob Example", "preferred_username": bobUsername}},
		{"bob, claims parameter", bobUsername, bobPassword, "openid", `{"id_token":{"address":null,"phone_number":null},"userinfo":{"address":null,"phone_number":null}}`,
			map[string]any{"address": address, "phone_number": bobPhone}},
		{"alice has neither", aliceUsername, alicePassword, "openid address phone", "", map[string]any{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := newBrowser(t, ts)
			var extra url.Values
			if tc.claims != "" {
				extra = url.Values{"claims": {tc.claims}}
			}
			ar := authorizeWith(ts, oidcClient, tc.scopes, extra)
			tok, err := ar.exchange(t.Context(), callbackCode(t, ar, signIn(t, b, ar.URL, tc.username, tc.password)))
			if err != nil {
				t.Fatalf("exchange: %v", err)
			}
			wantClaims(t, "ID token", idTokenClaims(t, ts, oidcClient, tok), userClaimNames, tc.want)
			wantClaims(t, "userinfo", userInfoOf(t, ts, tok), userClaimNames, tc.want)
		})
	}

	t.Run("consent page", func(t *testing.T) {
		t.Parallel()
		b := newBrowser(t, ts)
		ar := authorizeWith(ts, oidc3pClient, "openid address phone", nil)
		c := b.parseConsent(t, signIn(t, b, ar.URL, bobUsername, bobPassword))
		for _, w := range []string{"See your postal address", "See your phone number"} {
			if !slices.Contains(c.Scopes, w) {
				t.Errorf("consent page lists %q, want %q among them", c.Scopes, w)
			}
		}
	})
}
