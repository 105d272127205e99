package handlers_test

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/pixieauth/pixie/handlers"
	"github.com/pixieauth/pixie/provider"
	"github.com/pixieauth/pixie/store"
)

// Tests of the consent page, shown for clients that are not first party
// (example-other, "Other App").

// consentPage is the parsed consent page.
type consentPage struct {
	Title  string     // the <title>
	Scopes []string   // the scope descriptions listed
	Form   *loginForm // its form (csrf_token, request)
}

// IsConsent reports whether the page is the consent page.
func (p *page) IsConsent() bool {
	return p.Status == http.StatusOK && p.URL.Path == handlers.PathConsent && p.Callback == nil
}

// parseConsent parses the consent page, failing the test if p is not one.
func (b *browser) parseConsent(t *testing.T, p *page) *consentPage {
	t.Helper()
	if !p.IsConsent() {
		t.Fatalf("got status %d at %s, Location %q; want the consent page", p.Status, p.URL, p.Location)
	}
	doc, err := html.Parse(strings.NewReader(p.Body))
	if err != nil {
		t.Fatalf("parse consent page: %v", err)
	}
	c := &consentPage{Form: b.parseLoginForm(t, p)}
	for n := range doc.Descendants() {
		if n.Type != html.ElementNode {
			continue
		}
		switch n.Data {
		case "title":
			c.Title = strings.TrimSpace(textOf(n))
		case "li":
			c.Scopes = append(c.Scopes, strings.TrimSpace(textOf(n)))
		}
	}
	return c
}

// decide submits the consent form with decision (allow or deny).
func (b *browser) decide(t *testing.T, c *consentPage, decision string) *page {
	t.Helper()
	f := url.Values{}
	for k, v := range c.Form.Fields {
		f[k] = slices.Clone(v)
	}
	f.Set("decision", decision)
	return b.post(t, c.Form.Action, f, "")
}

// wantCodeFor checks that p is the redirect to ar's app with a code, and
// redeems it.
func wantCodeFor(t *testing.T, ts *testServer, ar *authRequest, p *page) authClaims {
	t.Helper()
	if p.Callback == nil {
		t.Fatalf("got status %d at %s, want a redirect to the app with a code", p.Status, p.URL)
	}
	q := p.Callback.Query()
	if q.Get("code") == "" || q.Get("state") != ar.State || q.Get("iss") != ts.URL {
		t.Fatalf("got %s, want a code, state %q and iss %q", p.Location, ar.State, ts.URL)
	}
	return exchangeIDToken(t, ts, ar, q.Get("code"))
}

// Plain-word descriptions of the consent page (handlers.scopeWords).
const (
	wordsOpenID  = "Sign you in with your account"
	wordsProfile = "See your name and profile"
	wordsEmail   = "See your email address"
)

// TestConsent follows one user's answers to one app, step by step: asked
// once, remembered for the same scopes, asked again for a new scope or with
// prompt=consent.
func TestConsent(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, serverOptions{})
	b := newBrowser(t, ts)

	steps := []struct {
		name   string
		scopes string
		extra  url.Values // more authorization parameters
		// wantAsked: the consent page comes up, listing wantWords, and
		// is answered with allow; otherwise the code comes straight away.
		wantAsked bool
		wantWords []string
	}{
		{"first request asks", "openid profile", nil, true, []string{wordsOpenID, wordsProfile}},
		{"same scopes are remembered", "openid profile", nil, false, nil},
		{"fewer scopes are remembered", "openid", nil, false, nil},
		{"prompt=none once allowed", "openid profile", url.Values{"prompt": {"none"}}, false, nil},
		{"a new scope asks again", "openid profile email", nil, true, []string{wordsOpenID, wordsProfile, wordsEmail}},
		{"all three remembered", "openid email profile", nil, false, nil},
		{"prompt=consent asks again", "openid", url.Values{"prompt": {"consent"}}, true, []string{wordsOpenID}},
		{"after prompt=consent, remembered", "openid profile email", nil, false, nil},
	}
	for i, st := range steps {
		ok := t.Run(st.name, func(t *testing.T) {
			ar := authorizeWith(ts, otherClient, st.scopes, st.extra)
			p := b.authorize(t, ar.URL) // logs in on the first step
			if !st.wantAsked {
				wantCodeFor(t, ts, ar, p)
				return
			}
			c := b.parseConsent(t, p)
			if !strings.Contains(c.Title, "Other App") {
				t.Errorf("got title %q, want the app's name, Other App", c.Title)
			}
			if !strings.Contains(p.Body, "<strong>Other App</strong>") {
				t.Error("the page does not name Other App")
			}
			if !slices.Equal(c.Scopes, st.wantWords) {
				t.Errorf("got scopes listed as %q, want %q", c.Scopes, st.wantWords)
			}
			if i == 0 {
				wantSecurityHeaders(t, p.Header)
			}
			if cl := wantCodeFor(t, ts, ar, b.decide(t, c, "allow")); cl.Subject != "alice" {
				t.Errorf("got sub %q, want alice", cl.Subject)
			}
		})
		if !ok {
			break // the later steps build on this one
		}
	}
}

// wantSecurityHeaders checks the headers every page must carry.
func wantSecurityHeaders(t *testing.T, h http.Header) {
	t.Helper()
	tests := []struct {
		header, want string
		contains     bool // the value contains want, else equals it
	}{
		{"Content-Security-Policy", "frame-ancestors 'none'", true},
		{"X-Frame-Options", "DENY", false},
		{"X-Content-Type-Options", "nosniff", false},
		{"Referrer-Policy", "no-referrer", false},
		{"Cache-Control", "no-store", false},
	}
	for _, tt := range tests {
		got := h.Get(tt.header)
		if tt.contains && !strings.Contains(got, tt.want) || !tt.contains && got != tt.want {
			t.Errorf("got %s %q, want %q", tt.header, got, tt.want)
		}
	}
}

// TestConsentDeny: deny sends access_denied to the app (with state and
// iss), issues no code and remembers nothing.
func TestConsentDeny(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, serverOptions{})
	b := newBrowser(t, ts)
	ar := authorizeWith(ts, otherClient, "openid profile", nil)
	p := b.decide(t, b.parseConsent(t, b.authorize(t, ar.URL)), "deny")
	wantRedirectError(t, ts, ar, p, "access_denied")

	// Asked again: the denial was not taken for consent.
	if p := b.get(t, authorizeWith(ts, otherClient, "openid profile", nil).URL); !p.IsConsent() {
		t.Errorf("after deny: got status %d at %s, Location %q; want the consent page again", p.Status, p.URL, p.Location)
	}
}

// TestConsentForgedForm: a consent post without the session's CSRF token,
// or from another origin, is refused with 403 and grants nothing.
func TestConsentForgedForm(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, serverOptions{})
	// Another browser's token: valid, but not this session's.
	other := newBrowser(t, ts)
	otherToken := other.parseConsent(t, other.authorize(t, authorizeWith(ts, otherClient, "openid", nil).URL)).Form.Fields.Get("csrf_token")

	tests := []struct {
		name string
		// form spoils the filled-in form; preLogin is the CSRF token the
		// login page had.
		form   func(f url.Values, preLogin string)
		origin string // Origin header; "" the server's own
	}{
		{"missing csrf_token", func(f url.Values, _ string) { f.Del("csrf_token") }, ""},
		{"wrong csrf_token", func(f url.Values, _ string) { f.Set("csrf_token", randomString()) }, ""},
		{"another session's csrf_token", func(f url.Values, _ string) { f.Set("csrf_token", otherToken) }, ""},
		// The login starts a fresh session: a token seen before it (by a
		// planted session, say) is worthless after.
		{"csrf_token from before the login", func(f url.Values, preLogin string) { f.Set("csrf_token", preLogin) }, ""},
		{"cross-origin post", func(url.Values, string) {}, "https://evil.example"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := newBrowser(t, ts)
			ar := authorizeWith(ts, otherClient, "openid", nil)
			p := b.get(t, ar.URL)
			preLogin := b.parseLoginForm(t, p).Fields.Get("csrf_token")
			c := b.parseConsent(t, b.submitLogin(t, p, aliceUsername, alicePassword))
			if c.Form.Fields.Get("csrf_token") == preLogin {
				t.Error("the CSRF token survived the login, want a fresh session")
			}
			f := url.Values{}
			for k, v := range c.Form.Fields {
				f[k] = slices.Clone(v)
			}
			f.Set("decision", "allow")
			tt.form(f, preLogin)
			p = b.post(t, c.Form.Action, f, tt.origin)
			if p.Status != http.StatusForbidden || p.Callback != nil {
				t.Errorf("got status %d, Location %q; want 403", p.Status, p.Location)
			}
			if p := b.get(t, ar.URL); !p.IsConsent() {
				t.Errorf("after the forged post: got status %d at %s, Location %q; want the consent page (nothing granted)", p.Status, p.URL, p.Location)
			}
		})
	}
}

// Two APIs that define a scope of the same name, and an app that is not
// first party, allowed both.
const (
	ordersAPI       = "https://orders.example.com"
	photosAPI       = "https://photos.example.com"
	consentAPIAppID = "consent-api-app"
)

// consentAPIOptions registers ordersAPI and photosAPI, both with the scope
// read, and consentAPIAppID (Consent API App), which may ask for either.
func consentAPIOptions() serverOptions {
	return serverOptions{
		APIs: []provider.API{
			{Identifier: ordersAPI, Scopes: []string{"read"}},
			{Identifier: photosAPI, Scopes: []string{"read"}},
		},
		Clients: []*store.Client{{
			ID: consentAPIAppID, Name: "Consent API App", Native: true,
			RedirectURIs: []string{loopbackURI},
			Scopes:       []string{"openid", "profile", "read"},
			APIs:         []string{ordersAPI, photosAPI},
		}},
	}
}

// apiRequest is an authorization request of consentAPIAppID for api with
// scopes ("" sends no scope parameter) and extra parameters.
func apiRequest(ts *testServer, api, scopes string, extra url.Values) *authRequest {
	q := url.Values{"audience": {api}}
	for k, v := range extra {
		q[k] = v
	}
	return authorizeWith(ts, consentAPIAppID, scopes, q)
}

// wantAccessFor checks that p is the redirect to ar's app with a code,
// redeems it and checks that the access token is for api with the scopes.
func wantAccessFor(t *testing.T, ts *testServer, ar *authRequest, p *page, api, scopes string) {
	t.Helper()
	if p.Callback == nil || p.Callback.Query().Get("code") == "" {
		t.Fatalf("got status %d at %s, Location %q; want a redirect to the app with a code", p.Status, p.URL, p.Location)
	}
	tok, err := ar.exchange(t.Context(), p.Callback.Query().Get("code"))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	c := accessClaims(t, ts, tok.AccessToken)
	if aud := audience(c); !slices.Contains(aud, api) || c["sub"] != "alice" || c["scope"] != scopes {
		t.Errorf("got aud %v sub %v scope %q, want %s, alice, %q", aud, c["sub"], c["scope"], api, scopes)
	}
}

// wantConsentFor checks that p is the consent page and that it names api.
func wantConsentFor(t *testing.T, b *browser, p *page, api string) *consentPage {
	t.Helper()
	c := b.parseConsent(t, p)
	if !strings.Contains(p.Body, api) {
		t.Errorf("the consent page does not name the API %s", api)
	}
	return c
}

// TestConsentPerAPI: consent is bound to the API. Allowing the scope read
// for one API does not allow read for another API that happens to define a
// scope of the same name: the user is asked (prompt=none: consent_required)
// and the token for the second API is issued only once they allow it.
func TestConsentPerAPI(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, consentAPIOptions())
	b := newBrowser(t, ts)

	ar := apiRequest(ts, ordersAPI, "read", nil)
	c := wantConsentFor(t, b, b.authorize(t, ar.URL), ordersAPI)
	wantAccessFor(t, ts, ar, b.decide(t, c, "allow"), ordersAPI, "read")

	ar = apiRequest(ts, ordersAPI, "read", url.Values{"prompt": {"none"}})
	wantAccessFor(t, ts, ar, b.get(t, ar.URL), ordersAPI, "read")

	// Another API, the same scope name.
	ar = apiRequest(ts, photosAPI, "read", url.Values{"prompt": {"none"}})
	wantRedirectError(t, ts, ar, b.get(t, ar.URL), "consent_required")
	ar = apiRequest(ts, photosAPI, "read", nil)
	c = wantConsentFor(t, b, b.get(t, ar.URL), photosAPI)
	wantAccessFor(t, ts, ar, b.decide(t, c, "allow"), photosAPI, "read")

	// Both are remembered now, each for its API.
	for _, api := range []string{ordersAPI, photosAPI} {
		ar = apiRequest(ts, api, "read", url.Values{"prompt": {"none"}})
		wantAccessFor(t, ts, ar, b.get(t, ar.URL), api, "read")
	}
	// Consent for an API is not consent without one, and the reverse.
	ar = authorizeWith(ts, consentAPIAppID, "openid", url.Values{"prompt": {"none"}})
	wantRedirectError(t, ts, ar, b.get(t, ar.URL), "consent_required")
}

// TestConsentAPIWithoutScopes: a request for an API with no scope at all
// still needs the user's consent (the token names the user to the API).
// prompt=none answers consent_required until the user has allowed it once;
// after that the same request gets a code without a page.
func TestConsentAPIWithoutScopes(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, consentAPIOptions())
	b := newBrowser(t, ts)
	b.code(t, authorizeWith(ts, nativeClient, "openid", nil)) // logs alice in

	ar := apiRequest(ts, ordersAPI, "", url.Values{"prompt": {"none"}})
	wantRedirectError(t, ts, ar, b.get(t, ar.URL), "consent_required")

	ar = apiRequest(ts, ordersAPI, "", nil)
	c := wantConsentFor(t, b, b.get(t, ar.URL), ordersAPI)
	wantAccessFor(t, ts, ar, b.decide(t, c, "allow"), ordersAPI, "")

	ar = apiRequest(ts, ordersAPI, "", url.Values{"prompt": {"none"}})
	wantAccessFor(t, ts, ar, b.get(t, ar.URL), ordersAPI, "")

	// Consent to the API without scopes is not consent to its scopes.
	ar = apiRequest(ts, ordersAPI, "read", url.Values{"prompt": {"none"}})
	wantRedirectError(t, ts, ar, b.get(t, ar.URL), "consent_required")
}

// TestConsentNoScope: a request for no API and no scope still gets a
// token naming the user, so it needs consent too, once.
func TestConsentNoScope(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, serverOptions{})
	b := newBrowser(t, ts)
	b.code(t, authorizeWith(ts, nativeClient, "openid", nil)) // logs alice in

	ar := authorizeWith(ts, otherClient, "", url.Values{"prompt": {"none"}})
	wantRedirectError(t, ts, ar, b.get(t, ar.URL), "consent_required")
	ar = authorizeWith(ts, otherClient, "", nil)
	p := b.get(t, ar.URL)
	b.parseConsent(t, p)
	if !strings.Contains(p.Body, "which account you use") {
		t.Error("the consent page does not say what the app gets")
	}
	wantCode(t, ar, b.decide(t, b.parseConsent(t, p), "allow"))
	ar = authorizeWith(ts, otherClient, "", url.Values{"prompt": {"none"}})
	wantCode(t, ar, b.get(t, ar.URL))
}

// clockTestSession is the login sessions' lifetime and idle timeout in the
// tests that move the clock ahead by up to two years with the login they
// started with (they cannot log in again: see testClock): long enough
// that only the consent expires.
const clockTestSession = 3 * 365 * 24 * time.Hour

// TestConsentExpires: a consent is remembered for Config.ConsentLifetime
// (by default 365 days); after that the user is asked again, prompt=none
// answers consent_required, and allowing again remembers it afresh.
func TestConsentExpires(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		lifetime time.Duration // Config.ConsentLifetime; 0 the default
		want     time.Duration // how long the consent lasts
	}{
		{"default", 0, 365 * 24 * time.Hour},
		{"an hour", time.Hour, time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			clock := &testClock{}
			opts := consentAPIOptions()
			opts.Now = clock.Now
			opts.Handlers = &handlers.Config{ConsentLifetime: tt.lifetime,
				SessionLifetime: clockTestSession, SessionIdleTimeout: clockTestSession}
			ts := newTestServer(t, opts)
			b := newBrowser(t, ts)
			silent := func() (*authRequest, *page) {
				ar := apiRequest(ts, ordersAPI, "read", url.Values{"prompt": {"none"}})
				return ar, b.get(t, ar.URL)
			}

			ar := apiRequest(ts, ordersAPI, "read", nil)
			c := wantConsentFor(t, b, b.authorize(t, ar.URL), ordersAPI)
			wantAccessFor(t, ts, ar, b.decide(t, c, "allow"), ordersAPI, "read")

			// The clock runs ahead from here, but nobody logs in (see
			// testClock), and codes are not redeemed: fosite checks them
			// by the wall clock, a year behind.
			clock.Shift(tt.want - time.Minute)
			ar, p := silent()
			wantCode(t, ar, p)

			clock.Shift(tt.want + time.Minute)
			ar, p = silent()
			wantRedirectError(t, ts, ar, p, "consent_required")
			ar = apiRequest(ts, ordersAPI, "read", nil)
			c = wantConsentFor(t, b, b.get(t, ar.URL), ordersAPI)
			wantCode(t, ar, b.decide(t, c, "allow"))

			// Allowed again: it lasts from then.
			clock.Shift(2*tt.want - time.Minute)
			ar, p = silent()
			wantCode(t, ar, p)
		})
	}
}

// wantCode checks that p is the redirect to ar's app with a code and its
// state.
func wantCode(t *testing.T, ar *authRequest, p *page) {
	t.Helper()
	if p.Callback == nil || p.Callback.Query().Get("code") == "" || p.Callback.Query().Get("state") != ar.State {
		t.Fatalf("got status %d at %s, Location %q; want a redirect to the app with a code", p.Status, p.URL, p.Location)
	}
}

// TestConsentNotExtended: allowing one more scope does not make the
// consent to the scopes allowed before last longer than ConsentLifetime
// from when the user allowed them.
func TestConsentNotExtended(t *testing.T) {
	t.Parallel()
	clock := &testClock{}
	opts := consentAPIOptions()
	opts.Now = clock.Now
	opts.Handlers = &handlers.Config{ConsentLifetime: time.Hour,
		SessionLifetime: clockTestSession, SessionIdleTimeout: clockTestSession}
	ts := newTestServer(t, opts)
	b := newBrowser(t, ts)

	ar := apiRequest(ts, ordersAPI, "read", nil)
	wantCode(t, ar, b.decide(t, wantConsentFor(t, b, b.authorize(t, ar.URL), ordersAPI), "allow"))

	// Half an hour later, profile alone is asked for and allowed.
	clock.Shift(30 * time.Minute)
	ar = apiRequest(ts, ordersAPI, "profile", nil)
	wantCode(t, ar, b.decide(t, wantConsentFor(t, b, b.get(t, ar.URL), ordersAPI), "allow"))
	ar = apiRequest(ts, ordersAPI, "profile read", url.Values{"prompt": {"none"}})
	wantCode(t, ar, b.get(t, ar.URL))

	// An hour after read was allowed, it is asked again.
	clock.Shift(61 * time.Minute)
	ar = apiRequest(ts, ordersAPI, "read", url.Values{"prompt": {"none"}})
	wantRedirectError(t, ts, ar, b.get(t, ar.URL), "consent_required")
	// Allowing everything it holds makes it last from then.
	ar = apiRequest(ts, ordersAPI, "profile read", nil)
	wantCode(t, ar, b.decide(t, wantConsentFor(t, b, b.get(t, ar.URL), ordersAPI), "allow"))
	clock.Shift(2 * time.Hour)
	ar = apiRequest(ts, ordersAPI, "profile read", url.Values{"prompt": {"none"}})
	wantCode(t, ar, b.get(t, ar.URL))
}

// TestConsentLifetimeInvalid: New refuses a ConsentLifetime under a minute,
// naming the field.
func TestConsentLifetimeInvalid(t *testing.T) {
	t.Parallel()
	p := sharedServer(t).Provider
	for _, d := range []time.Duration{-time.Hour, time.Second, time.Minute - 1} {
		if _, err := handlers.New(p, handlers.Config{ConsentLifetime: d}); err == nil || !strings.Contains(err.Error(), "Config.ConsentLifetime") {
			t.Errorf("ConsentLifetime %v: got error %v, want one naming Config.ConsentLifetime", d, err)
		}
	}
	if _, err := handlers.New(p, handlers.Config{ConsentLifetime: time.Minute}); err != nil {
		t.Errorf("ConsentLifetime 1m: got error %v, want nil", err)
	}
}
