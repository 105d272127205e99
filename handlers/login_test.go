package handlers_test

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/pixieauth/pixie/handlers"
	"github.com/pixieauth/pixie/store"
)

// Tests of the login step (the failed-login throttle is in
// throttle_test.go): what a failed login reveals, and the OpenID Connect
// parameters that decide whether the user must log in (prompt, max_age,
// login_hint).

// clientIPHeader carries the address a test browser pretends to connect
// from; the throttle servers' Config.ClientIP reads it, as a deployment
// behind a proxy reads X-Forwarded-For.
const clientIPHeader = "X-Test-Client-IP"

func clientIPFromHeader(r *http.Request) string { return r.Header.Get(clientIPHeader) }

// testClock is provider.Config.Now for tests: the wall clock shifted by an
// offset, or frozen at a time. It should not run ahead of the wall clock
// while users log in: fosite reads the wall clock and refuses an auth_time
// more than 5 seconds in the future, and checks max_age against it.
type testClock struct {
	mu     sync.Mutex
	offset time.Duration
	frozen time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.frozen.IsZero() {
		return c.frozen
	}
	return time.Now().Add(c.offset)
}

// Shift makes the clock the wall clock plus d.
func (c *testClock) Shift(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset, c.frozen = d, time.Time{}
}

// Freeze stops the clock at at.
func (c *testClock) Freeze(at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.frozen = at
}

// countingUsers counts the password checks (Authenticate calls).
type countingUsers struct {
	store.Users
	n atomic.Int64
}

func (u *countingUsers) Authenticate(ctx context.Context, username, password string) (string, error) {
	u.n.Add(1)
	return u.Users.Authenticate(ctx, username, password)
}

// headerTransport adds a header to every request, as a proxy in front of
// the server would.
type headerTransport struct {
	name, value string
}

func (h headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set(h.name, h.value)
	return http.DefaultTransport.RoundTrip(r)
}

// from makes the browser appear to connect from addr.
func (b *browser) from(addr string) *browser {
	b.client.Transport = headerTransport{clientIPHeader, addr}
	return b
}

// noFollow returns the browser, sharing its cookies, stopping at every
// redirect.
func (b *browser) noFollow() *browser {
	c := *b.client
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &browser{ts: b.ts, client: &c}
}

// TestLoginFailuresAlike: a wrong password and an unknown username get the
// same answer: status, headers and page, apart from the per-response CSP
// nonce and CSRF token (and the username echoed in the form, here of the
// same length). Both cost exactly one password check: the memory store's
// Authenticate checks a dummy hash for an unknown username (not observable
// here, and never measured: no timing tests), and the handler calls it once
// either way.
func TestLoginFailuresAlike(t *testing.T) {
	t.Parallel()
	ts := newThrottleServer(t, handlers.Backoff{FreeFailures: 100}, nil, nil)
	// One authorization request for both, so that the pending request on
	// the page is the same.
	ar := newAuthRequest(ts.oauth2Config(nativeClient, ts.loopbackRedirect(), "openid"))
	const unknown = "mabel" // as long as "alice"
	type answer struct {
		status int
		header http.Header
		body   string
		msg    string
		checks int64
	}
	attempt := func(username string) answer {
		b := newBrowser(t, ts.testServer).from("192.0.2.1")
		p := b.get(t, ar.URL)
		if !p.IsLogin() {
			t.Fatalf("got status %d at %s, want the login page", p.Status, p.URL)
		}
		before := ts.checks.n.Load()
		p = b.submitLogin(t, p, username, "wrong password")
		checks := ts.checks.n.Load() - before
		f := b.parseLoginForm(t, p)
		nonce := cspNonce(t, p.Header)
		// html/template writes the nonce's "+" as "&#43;" in the page.
		norm := strings.NewReplacer(nonce, "NONCE", strings.ReplaceAll(nonce, "+", "&#43;"), "NONCE",
			f.Fields.Get("csrf_token"), "CSRF", `value="`+username+`"`, `value="USERNAME"`)
		h := p.Header.Clone()
		h.Del("Date")
		for k, vs := range h {
			for i, v := range vs {
				h[k][i] = norm.Replace(v)
			}
		}
		return answer{p.Status, h, norm.Replace(p.Body), f.Error, checks}
	}
	wrong, unknownUser := attempt(aliceUsername), attempt(unknown)

	if wrong.status != http.StatusOK || unknownUser.status != wrong.status {
		t.Errorf("got status %d for a wrong password and %d for an unknown user, want 200 for both", wrong.status, unknownUser.status)
	}
	if wrong.msg == "" || unknownUser.msg != wrong.msg {
		t.Errorf("got message %q for a wrong password and %q for an unknown user, want the same", wrong.msg, unknownUser.msg)
	}
	if !equalHeaders(wrong.header, unknownUser.header) {
		t.Errorf("got headers\n%v\nfor a wrong password and\n%v\nfor an unknown user, want the same", wrong.header, unknownUser.header)
	}
	if wrong.body != unknownUser.body {
		t.Errorf("the pages differ:\nwrong password:\n%s\nunknown user:\n%s", wrong.body, unknownUser.body)
	}
	if wrong.checks != 1 || unknownUser.checks != 1 {
		t.Errorf("got %d password checks for a wrong password and %d for an unknown user, want 1 each", wrong.checks, unknownUser.checks)
	}
}

func equalHeaders(a, b http.Header) bool {
	if len(a) != len(b) {
		return false
	}
	for k, va := range a {
		if !slices.Equal(va, b[k]) {
			return false
		}
	}
	return true
}

// cspNonce returns the nonce of a page's Content-Security-Policy.
func cspNonce(t *testing.T, h http.Header) string {
	t.Helper()
	csp := h.Get("Content-Security-Policy")
	_, rest, ok := strings.Cut(csp, "'nonce-")
	nonce, _, ok2 := strings.Cut(rest, "'")
	if !ok || !ok2 || nonce == "" {
		t.Fatalf("got Content-Security-Policy %q, want a nonce", csp)
	}
	return nonce
}

// authClaims are the ID token's claims about the login.
type authClaims struct {
	Subject  string   `json:"sub"`
	AuthTime int64    `json:"auth_time"`
	AMR      []string `json:"amr"`
}

// exchangeIDToken redeems code, verifies the ID token with go-oidc and
// returns its login claims.
func exchangeIDToken(t *testing.T, ts *testServer, ar *authRequest, code string) authClaims {
	t.Helper()
	ctx := t.Context()
	tok, err := ar.exchange(ctx, code)
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := ts.oidcProvider(t).VerifierContext(ctx, &oidc.Config{ClientID: ar.Conf.ClientID}).Verify(ctx, raw)
	if err != nil {
		t.Fatalf("verify ID token: %v", err)
	}
	if idt.Nonce != ar.Nonce {
		t.Errorf("got nonce %q, want %q", idt.Nonce, ar.Nonce)
	}
	var c authClaims
	if err := idt.Claims(&c); err != nil {
		t.Fatal(err)
	}
	return c
}

// authorizeWith returns an authorization request for client on the
// loopback URI with extra parameters.
func authorizeWith(ts *testServer, client, scopes string, extra url.Values) *authRequest {
	ar := newAuthRequest(ts.oauth2Config(client, ts.loopbackRedirect(), scopes))
	if len(extra) > 0 {
		ar.URL += "&" + extra.Encode()
	}
	return ar
}

// wantRedirectError checks an error sent back to the client (RFC 6749
// §4.1.2.1): error, state and iss (RFC 9207), and no code.
func wantRedirectError(t *testing.T, ts *testServer, ar *authRequest, p *page, code string) {
	t.Helper()
	if p.Callback == nil {
		t.Fatalf("got status %d at %s, want a redirect to the app with error=%s", p.Status, p.URL, code)
	}
	if want, _ := url.Parse(ar.Conf.RedirectURL); p.Callback.Scheme != want.Scheme || p.Callback.Host != want.Host || p.Callback.Path != want.Path {
		t.Errorf("got redirect to %s, want %s", p.Location, ar.Conf.RedirectURL)
	}
	q := p.Callback.Query()
	if got := q.Get("error"); got != code {
		t.Errorf("got error %q (%s), want %q", got, q.Get("error_description"), code)
	}
	if got := q.Get("state"); got != ar.State {
		t.Errorf("got state %q, want %q", got, ar.State)
	}
	if got := q.Get("iss"); got != ts.URL {
		t.Errorf("got iss %q, want %q", got, ts.URL)
	}
	if q.Has("code") {
		t.Errorf("got a code with error %q", q.Get("error"))
	}
}

// TestPromptNone: prompt=none never shows a page (OIDC Core §3.1.2.1): the
// code when nothing needs asking, else login_required or consent_required
// sent back to the app.
func TestPromptNone(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, serverOptions{})
	loggedIn := newBrowser(t, ts)
	loggedIn.code(t, newAuthRequest(ts.oauth2Config(nativeClient, ts.loopbackRedirect(), "openid")))

	tests := []struct {
		name      string
		session   bool   // alice is logged in
		client    string // the app asking
		wantError string // "" for a code
	}{
		{"no session", false, nativeClient, "login_required"},
		{"session, first-party app", true, nativeClient, ""},
		{"session, app without consent", true, otherClient, "consent_required"},
		{"no session, app without consent", false, otherClient, "login_required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := newBrowser(t, ts)
			if tt.session {
				b = loggedIn
			}
			ar := authorizeWith(ts, tt.client, "openid profile", url.Values{"prompt": {"none"}})
			p := b.get(t, ar.URL)
			if tt.wantError != "" {
				wantRedirectError(t, ts, ar, p, tt.wantError)
				return
			}
			if p.Callback == nil || p.Callback.Query().Get("code") == "" {
				t.Fatalf("got status %d at %s, Location %q; want a redirect with a code", p.Status, p.URL, p.Location)
			}
			if got := p.Callback.Query().Get("state"); got != ar.State {
				t.Errorf("got state %q, want %q", got, ar.State)
			}
			exchangeIDToken(t, ts, ar, p.Callback.Query().Get("code"))
		})
	}
}

// TestPromptLogin: prompt=login shows the login page despite a session, and
// the ID token then carries the new login's auth_time; amr is ["pwd"].
func TestPromptLogin(t *testing.T) {
	t.Parallel()
	clock := &testClock{}
	ts := newTestServer(t, serverOptions{Now: clock.Now})
	b := newBrowser(t, ts)

	// The first login, two minutes ago.
	clock.Shift(-2 * time.Minute)
	from := clock.Now()
	ar := authorizeWith(ts, nativeClient, "openid", nil)
	code := b.code(t, ar)
	to := clock.Now()
	first := exchangeIDToken(t, ts, ar, code)
	if first.AuthTime < from.Unix() || first.AuthTime > to.Unix() {
		t.Errorf("first login: got auth_time %d, want the login's time, between %d and %d", first.AuthTime, from.Unix(), to.Unix())
	}
	if !slices.Equal(first.AMR, []string{"pwd"}) {
		t.Errorf("first login: got amr %v, want [pwd]", first.AMR)
	}

	clock.Shift(0)
	before := clock.Now().Truncate(time.Second)
	ar = authorizeWith(ts, nativeClient, "openid", url.Values{"prompt": {"login"}})
	p := b.get(t, ar.URL)
	if !p.IsLogin() {
		t.Fatalf("prompt=login with a session: got status %d at %s, Location %q; want the login page", p.Status, p.URL, p.Location)
	}
	p = b.submitLogin(t, p, aliceUsername, alicePassword)
	if p.Callback == nil {
		t.Fatalf("after logging in again: got status %d at %s, want a redirect with a code", p.Status, p.URL)
	}
	second := exchangeIDToken(t, ts, ar, p.Callback.Query().Get("code"))
	if second.AuthTime < before.Unix() {
		t.Errorf("got auth_time %v, want the new login's, at or after %v", time.Unix(second.AuthTime, 0), before)
	}
	if second.AuthTime <= first.AuthTime {
		t.Errorf("got auth_time %d, want later than the first login's %d", second.AuthTime, first.AuthTime)
	}
	if !slices.Equal(second.AMR, []string{"pwd"}) || second.Subject != "alice" {
		t.Errorf("got sub %q, amr %v; want alice, [pwd]", second.Subject, second.AMR)
	}
}

// TestMaxAge: a login older than max_age must be done again (OIDC Core
// §3.1.2.1); a recent enough one is reused.
func TestMaxAge(t *testing.T) {
	t.Parallel()
	clock := &testClock{}
	ts := newTestServer(t, serverOptions{Now: clock.Now})
	b := newBrowser(t, ts)
	const sessionAge = 2 * time.Minute
	clock.Shift(-sessionAge)
	b.code(t, authorizeWith(ts, nativeClient, "openid", nil))
	clock.Shift(0)

	tests := []struct {
		name      string
		maxAge    string // "" for none
		wantLogin bool   // the login page, else a code
	}{
		{"no max_age", "", false},
		{"max_age=3600, longer than the session", "3600", false},
		{"max_age=60, shorter than the session", "60", true},
		{"max_age=0", "0", true},
	}
	t.Run("session 2 minutes old", func(t *testing.T) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				extra := url.Values{}
				if tt.maxAge != "" {
					extra.Set("max_age", tt.maxAge)
				}
				ar := authorizeWith(ts, nativeClient, "openid", extra)
				p := b.get(t, ar.URL)
				if tt.wantLogin {
					if !p.IsLogin() {
						t.Errorf("got status %d at %s, Location %q; want the login page", p.Status, p.URL, p.Location)
					}
					return
				}
				if p.Callback == nil || p.Callback.Query().Get("code") == "" {
					t.Fatalf("got status %d at %s, Location %q; want a code", p.Status, p.URL, p.Location)
				}
				c := exchangeIDToken(t, ts, ar, p.Callback.Query().Get("code"))
				if c.AuthTime == 0 || time.Since(time.Unix(c.AuthTime, 0)) < sessionAge {
					t.Errorf("got auth_time %d, want the session's (%v ago)", c.AuthTime, sessionAge)
				}
			})
		}
	})

	t.Run("logging in again satisfies max_age", func(t *testing.T) {
		before := clock.Now().Truncate(time.Second)
		ar := authorizeWith(ts, nativeClient, "openid", url.Values{"max_age": {"60"}})
		p := b.get(t, ar.URL)
		if !p.IsLogin() {
			t.Fatalf("got status %d at %s, want the login page", p.Status, p.URL)
		}
		p = b.submitLogin(t, p, aliceUsername, alicePassword)
		if p.Callback == nil || p.Callback.Query().Get("code") == "" {
			t.Fatalf("after logging in: got status %d at %s, Location %q; want a code", p.Status, p.URL, p.Location)
		}
		if c := exchangeIDToken(t, ts, ar, p.Callback.Query().Get("code")); c.AuthTime < before.Unix() {
			t.Errorf("got auth_time %d, want the new login's (≥ %d)", c.AuthTime, before.Unix())
		}
	})
}

// TestMaxAgeZero: max_age=0 is equivalent to prompt=login (OIDC Core
// §3.1.2.1, errata set 2): it always asks for the login, even for a session
// started in the same second, and the login it asked for then counts, even
// if the clock passes a second boundary before the browser is back at the
// authorization endpoint. The clock is frozen so that where the second
// boundary falls is certain.
func TestMaxAgeZero(t *testing.T) {
	t.Parallel()
	clock := &testClock{}
	ts := newTestServer(t, serverOptions{Now: clock.Now})
	// A whole second, in the past: see testClock.
	base := time.Now().Truncate(time.Second).Add(-10 * time.Second)

	t.Run("session from the same second", func(t *testing.T) {
		clock.Freeze(base.Add(200 * time.Millisecond))
		b := newBrowser(t, ts)
		b.code(t, authorizeWith(ts, nativeClient, "openid", nil))
		clock.Freeze(base.Add(700 * time.Millisecond))
		p := b.get(t, authorizeWith(ts, nativeClient, "openid", url.Values{"max_age": {"0"}}).URL)
		if !p.IsLogin() {
			t.Errorf("max_age=0 half a second after logging in: got status %d at %s, Location %q; want the login page", p.Status, p.URL, p.Location)
		}
	})

	t.Run("the login asked for counts across a second boundary", func(t *testing.T) {
		clock.Freeze(base.Add(900 * time.Millisecond))
		b := newBrowser(t, ts)
		ar := authorizeWith(ts, nativeClient, "openid", url.Values{"max_age": {"0"}})
		p := b.get(t, ar.URL)
		if !p.IsLogin() {
			t.Fatalf("got status %d at %s, want the login page", p.Status, p.URL)
		}
		clock.Freeze(base.Add(999 * time.Millisecond))
		f := b.parseLoginForm(t, p)
		f.Fields.Set("username", aliceUsername)
		f.Fields.Set("password", alicePassword)
		p = b.noFollow().post(t, f.Action, f.Fields, "")
		if p.Status != http.StatusSeeOther || p.Callback == nil {
			t.Fatalf("login: got status %d, want 303 back to the authorization endpoint", p.Status)
		}
		resume, err := url.Parse(ts.URL)
		if err != nil {
			t.Fatal(err)
		}
		resume = resume.ResolveReference(p.Callback)
		// The browser comes back 2 ms later, in the next second.
		clock.Freeze(base.Add(time.Second + time.Millisecond))
		p = b.get(t, resume.String())
		if p.Callback == nil || p.Callback.Query().Get("code") == "" {
			t.Fatalf("back from the login: got status %d at %s (login page: %t), want a code", p.Status, p.URL, p.IsLogin())
		}
		if c := exchangeIDToken(t, ts, ar, p.Callback.Query().Get("code")); c.AuthTime != base.Unix() {
			t.Errorf("got auth_time %d, want %d", c.AuthTime, base.Unix())
		}
	})
}

// TestLoginHint: login_hint pre-fills the username, escaped.
func TestLoginHint(t *testing.T) {
	t.Parallel()
	ts := sharedServer(t)
	tests := []struct {
		name string
		hint string // login_hint; "" for none
	}{
		{"username", aliceUsername},
		{"email address", aliceEmail},
		{"markup", `"><script>alert(1)</script>`},
		{"none", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			extra := url.Values{}
			if tt.hint != "" {
				extra.Set("login_hint", tt.hint)
			}
			b := newBrowser(t, ts)
			p := b.get(t, authorizeWith(ts, nativeClient, "openid", extra).URL)
			if !p.IsLogin() {
				t.Fatalf("got status %d at %s, want the login page", p.Status, p.URL)
			}
			if got := b.parseLoginForm(t, p).Fields.Get("username"); got != tt.hint {
				t.Errorf("got username %q, want %q", got, tt.hint)
			}
			if strings.Contains(p.Body, "<script>") {
				t.Error("the login_hint's markup reached the page unescaped")
			}
		})
	}
}
