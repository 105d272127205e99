package handlers_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/pixieauth/pixie/handlers"
	"github.com/pixieauth/pixie/internal/pgtest"
	"github.com/pixieauth/pixie/internal/testbrowser"
	"github.com/pixieauth/pixie/store"
	"github.com/pixieauth/pixie/store/memory"
	"github.com/pixieauth/pixie/store/sqlstore"
	"github.com/pixieauth/pixie/store/sqlstore/postgres"
	"github.com/pixieauth/pixie/store/sqlstore/sqlite"
)

// Tests of the login session: a server-side record behind the cookie, with
// an absolute lifetime, an idle timeout, and revocation at logout and by
// Server.EndSessions, on every replica sharing the store.

// copyOf returns a second browser holding the cookies b holds for the
// server: a copy of the login cookie saved by someone (a thief, a backup,
// a shared computer) at this moment.
func (b *browser) copyOf(t *testing.T) *browser {
	t.Helper()
	u, err := url.Parse(b.ts.URL)
	if err != nil {
		t.Fatal(err)
	}
	c := newBrowser(t, b.ts)
	c.client.Jar.SetCookies(u, b.client.Jar.Cookies(u))
	if len(b.client.Jar.Cookies(u)) == 0 {
		t.Fatal("the browser holds no cookie to copy")
	}
	return c
}

// withServer returns a browser sharing b's cookies that talks to another
// server on the same host (a cookie is per host, whatever the port): the
// same browser behind a load balancer reaching another replica.
func (b *browser) withServer(ts *testServer) *browser {
	return &browser{ts: ts, client: b.client}
}

// wantNoSession fails t unless b's session gets no code: the login page
// for an interactive request, login_required for prompt=none.
func (b *browser) wantNoSession(t *testing.T, why string) {
	t.Helper()
	ar := newAuthRequest(b.ts.oauth2Config(nativeClient, b.ts.loopbackRedirect(), "openid"))
	if p := b.get(t, ar.URL); !p.IsLogin() {
		t.Errorf("%s: got status %d at %s, Location %q; want the login page", why, p.Status, p.URL, p.Location)
	}
	ar = authorizeWith(b.ts, nativeClient, "openid", url.Values{"prompt": {"none"}})
	wantRedirectError(t, b.ts, ar, b.get(t, ar.URL), "login_required")
}

// wantSession fails t unless b's session gets a code without a login.
func (b *browser) wantSession(t *testing.T, why string) {
	t.Helper()
	ar := newAuthRequest(b.ts.oauth2Config(nativeClient, b.ts.loopbackRedirect(), "openid"))
	p := b.get(t, ar.URL)
	if p.Callback == nil || p.Callback.Query().Get("code") == "" {
		t.Errorf("%s: got status %d at %s, Location %q; want a code", why, p.Status, p.URL, p.Location)
	}
}

// crossSiteGet GETs a page of the server as a link on another site opens
// it (a top-level navigation, cookies sent: SameSite=Lax), without
// following redirects, and returns the response's Set-Cookie headers.
func (b *browser) crossSiteGet(t *testing.T, path string) (status int, setCookies []string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, b.ts.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	req.Header.Set("Sec-Fetch-Mode", "navigate")
	req.Header.Set("Referer", "https://evil.example/")
	p := b.noFollow().do(t, req)
	return p.Status, p.Header.Values("Set-Cookie")
}

// TestLogoutEndsCopiedSession: a copy of the login cookie saved before
// logout gets no code after it, interactive or with prompt=none.
func TestLogoutEndsCopiedSession(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, logoutOptions())
	b, idToken := logIn(t, ts)
	saved := b.copyOf(t)
	saved.wantSession(t, "the copy before logout")

	p := b.get(t, ts.logoutURL(url.Values{"id_token_hint": {idToken}}))
	if got := logoutPageKind(p); got != signedOut {
		t.Fatalf("logout: got status %d, page %q; want signed out", p.Status, got)
	}
	b.wantNoSession(t, "the browser that logged out")
	saved.wantNoSession(t, "the copy saved before logout")

	// The confirmed logout (no hint) ends the session for copies too.
	b, _ = logIn(t, ts)
	saved = b.copyOf(t)
	p = b.get(t, ts.logoutURL(nil))
	if got := logoutPageKind(p); got != confirm {
		t.Fatalf("logout without a hint: got page %q, want the confirmation", got)
	}
	f := b.parseForm(t, p)
	if p = b.post(t, f.Action, f.Fields, ""); logoutPageKind(p) != signedOut {
		t.Fatalf("confirm logout: got status %d, page %q; want signed out", p.Status, logoutPageKind(p))
	}
	saved.wantNoSession(t, "the copy saved before the confirmed logout")
}

// TestSessionLoginReplacesSession: logging in again in the same browser
// (prompt=login) ends the session it replaces, so a copy of the old cookie
// is worth nothing; the new one works.
func TestSessionLoginReplacesSession(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, serverOptions{})
	b := newBrowser(t, ts)
	b.code(t, newAuthRequest(ts.oauth2Config(nativeClient, ts.loopbackRedirect(), "openid")))
	saved := b.copyOf(t)
	ar := authorizeWith(ts, nativeClient, "openid", url.Values{"prompt": {"login"}})
	p := b.get(t, ar.URL)
	if !p.IsLogin() {
		t.Fatalf("prompt=login: got status %d at %s, want the login page", p.Status, p.URL)
	}
	if p = b.submitLogin(t, p, aliceUsername, alicePassword); p.Callback == nil || p.Callback.Query().Get("code") == "" {
		t.Fatalf("login: got status %d at %s, want a code", p.Status, p.URL)
	}
	b.wantSession(t, "the new session")
	saved.wantNoSession(t, "a copy of the replaced session")
}

// maxAgeOf returns the Max-Age of the login cookie in Set-Cookie headers,
// and whether there is one.
func maxAgeOf(t *testing.T, setCookies []string) (int, bool) {
	t.Helper()
	for _, sc := range setCookies {
		c, err := http.ParseSetCookie(sc)
		if err != nil {
			t.Fatalf("Set-Cookie %q: %v", sc, err)
		}
		if strings.HasSuffix(c.Name, "pixie_session") {
			return c.MaxAge, true
		}
	}
	return 0, false
}

// TestSessionAbsoluteLifetime: a session ends SessionLifetime after the
// login, however it is used meanwhile; page views (the login, consent and
// logout pages, opened from another site) neither re-save the cookie nor
// extend anything.
func TestSessionAbsoluteLifetime(t *testing.T) {
	t.Parallel()
	clock := &testClock{}
	cfg := handlers.Config{SessionLifetime: time.Hour}
	ts := newTestServer(t, serverOptions{Now: clock.Now, Handlers: &cfg})
	b := newBrowser(t, ts)

	// Log in 65 minutes ago: the session ends 5 minutes ago. The clock
	// never runs ahead of the wall clock (fosite checks auth_time with it).
	clock.Shift(-65 * time.Minute)
	ar := newAuthRequest(ts.oauth2Config(nativeClient, ts.loopbackRedirect(), "openid"))
	login := b.get(t, ar.URL)
	if !login.IsLogin() {
		t.Fatalf("authorize: got status %d at %s, want the login page", login.Status, login.URL)
	}
	f := b.parseLoginForm(t, login)
	f.Fields.Set("username", aliceUsername)
	f.Fields.Set("password", alicePassword)
	p := b.noFollow().post(t, f.Action, f.Fields, "")
	if p.Status != http.StatusSeeOther {
		t.Fatalf("login: got status %d, want 303", p.Status)
	}
	// The cookie lasts as long as the session, not longer.
	if age, ok := maxAgeOf(t, p.Header.Values("Set-Cookie")); !ok || age <= 0 || age > 3600 {
		t.Errorf("login: got cookie Max-Age %d (set: %v), want at most the session's 3600 s", age, ok)
	}
	b.wantSession(t, "right after the login")

	// Twenty minutes on: pages opened from another site, with the cookie.
	clock.Shift(-45 * time.Minute)
	consent := authorizeWith(ts, otherClient, "openid profile", nil)
	_, consentQuery, _ := strings.Cut(consent.URL, "?")
	for _, path := range []string{
		handlers.PathLogin + "?" + mustQuery(t, ar.URL).Encode(),
		handlers.PathConsent + "?" + consentQuery,
		handlers.PathLogout,
	} {
		status, setCookies := b.crossSiteGet(t, path)
		if status != http.StatusOK {
			t.Errorf("cross-site GET %s: got status %d, want the page (200)", path, status)
		}
		if len(setCookies) != 0 {
			t.Errorf("cross-site GET %s: got Set-Cookie %q, want none: a page view must not re-save the session", path, setCookies)
		}
	}
	b.wantSession(t, "20 minutes after the login")
	clock.Shift(-25 * time.Minute)
	b.wantSession(t, "40 minutes after the login")

	// 63 minutes after the login: over.
	clock.Shift(-2 * time.Minute)
	b.wantNoSession(t, "63 minutes after a login with a 1-hour lifetime")
	// Logging in again starts a new session.
	b.code(t, newAuthRequest(ts.oauth2Config(nativeClient, ts.loopbackRedirect(), "openid")))
	b.wantSession(t, "after logging in again")
}

// TestSessionCookieNotResaved: a page that changes nothing in the session
// sends no Set-Cookie, logged in or not; the first visit, which needs a
// CSRF token, does.
func TestSessionCookieNotResaved(t *testing.T) {
	t.Parallel()
	ts := sharedServer(t)
	b := newBrowser(t, ts)
	if _, setCookies := b.crossSiteGet(t, handlers.PathLogin); len(setCookies) != 1 {
		t.Errorf("first visit: got Set-Cookie %q, want the cookie holding the CSRF token", setCookies)
	}
	if _, setCookies := b.crossSiteGet(t, handlers.PathLogin); len(setCookies) != 0 {
		t.Errorf("second visit: got Set-Cookie %q, want none", setCookies)
	}
	b.code(t, newAuthRequest(ts.oauth2Config(nativeClient, ts.loopbackRedirect(), "openid")))
	for range 2 {
		if _, setCookies := b.crossSiteGet(t, handlers.PathLogin); len(setCookies) != 0 {
			t.Errorf("logged in: got Set-Cookie %q, want none", setCookies)
		}
	}
	// Using the session to get a code does not re-save the cookie either.
	p := b.noFollow().get(t, newAuthRequest(ts.oauth2Config(nativeClient, ts.loopbackRedirect(), "openid")).URL)
	if p.Callback == nil || p.Callback.Query().Get("code") == "" {
		t.Fatalf("authorize: got status %d, Location %q, want a code", p.Status, p.Location)
	}
	if sc := p.Header.Values("Set-Cookie"); len(sc) != 0 {
		t.Errorf("authorize: got Set-Cookie %q, want none", sc)
	}
}

// TestSessionIdleTimeout: a session unused for SessionIdleTimeout ends;
// getting a code is a use, viewing a page is not.
func TestSessionIdleTimeout(t *testing.T) {
	t.Parallel()
	clock := &testClock{}
	cfg := handlers.Config{SessionIdleTimeout: 10 * time.Minute}
	ts := newTestServer(t, serverOptions{Now: clock.Now, Handlers: &cfg})
	b := newBrowser(t, ts)

	clock.Shift(-60 * time.Minute)
	b.code(t, newAuthRequest(ts.oauth2Config(nativeClient, ts.loopbackRedirect(), "openid")))
	// Each use within 10 minutes of the one before keeps it going...
	for _, at := range []time.Duration{-52 * time.Minute, -44 * time.Minute, -36 * time.Minute} {
		clock.Shift(at)
		b.wantSession(t, "used "+(at+60*time.Minute).String()+" after the login, 8 minutes after the last use")
	}
	// ... page views do not count ...
	clock.Shift(-30 * time.Minute)
	for _, path := range []string{handlers.PathLogin, handlers.PathLogout} {
		if _, setCookies := b.crossSiteGet(t, path); len(setCookies) != 0 {
			t.Errorf("GET %s: got Set-Cookie %q, want none", path, setCookies)
		}
	}
	// ... and 11 minutes after the last use it is over.
	clock.Shift(-25 * time.Minute)
	b.wantNoSession(t, "11 minutes after the last use, with a 10-minute idle timeout")
}

// TestSessionConfig: New checks the session settings and names the field.
func TestSessionConfig(t *testing.T) {
	t.Parallel()
	ts := sharedServer(t)
	tests := []struct {
		name string
		cfg  handlers.Config
		bad  string // the field named in the error, "" for none
	}{
		{"defaults", handlers.Config{}, ""},
		{"idle timeout defaults to a short lifetime", handlers.Config{SessionLifetime: 10 * time.Minute}, ""},
		{"idle timeout as long as the lifetime", handlers.Config{SessionLifetime: time.Hour, SessionIdleTimeout: time.Hour}, ""},
		{"idle timeout under a minute", handlers.Config{SessionIdleTimeout: time.Second}, "SessionIdleTimeout"},
		{"negative idle timeout", handlers.Config{SessionIdleTimeout: -time.Minute}, "SessionIdleTimeout"},
		{"idle timeout over the lifetime", handlers.Config{SessionLifetime: time.Hour, SessionIdleTimeout: 2 * time.Hour}, "SessionIdleTimeout"},
		{"lifetime under a minute", handlers.Config{SessionLifetime: time.Second}, "SessionLifetime"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := handlers.New(ts.Provider, tt.cfg)
			switch {
			case tt.bad == "" && err != nil:
				t.Errorf("got error %v, want none", err)
			case tt.bad != "" && (err == nil || !strings.Contains(err.Error(), "Config."+tt.bad)):
				t.Errorf("got error %v, want one naming Config.%s", err, tt.bad)
			}
		})
	}
}

// TestSessionsAcrossReplicasSQLite: two replicas on one SQLite file share
// the login sessions: a session started on one works on the other, a
// logout on one ends it on both (for copies of the cookie too), and
// Server.EndSessions on one ends every session of the user on both.
func TestSessionsAcrossReplicasSQLite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pixie.db")
	open := func() *sqlstore.Store {
		st, err := sqlite.Open(t.Context(), path, sqlstore.Config{KeySecret: testKeySecret})
		if err != nil {
			t.Fatalf("sqlite.Open: %v", err)
		}
		t.Cleanup(func() { _ = st.Close() })
		return st.Store
	}
	testSessionsAcrossReplicas(t, open(), open())
}

// TestSessionsAcrossReplicasPostgres is the same on PostgreSQL, each
// replica with its own connection pool.
func TestSessionsAcrossReplicasPostgres(t *testing.T) {
	dsn := pgtest.FreshSchema(t)
	open := func() *sqlstore.Store {
		st, err := postgres.Open(t.Context(), dsn, sqlstore.Config{KeySecret: testKeySecret})
		if err != nil {
			t.Fatalf("postgres.Open: %v", err)
		}
		t.Cleanup(func() { _ = st.Close() })
		return st.Store
	}
	testSessionsAcrossReplicas(t, open(), open())
}

func testSessionsAcrossReplicas(t *testing.T, stA, stB *sqlstore.Store) {
	seedStore(t, stA)
	a := startReplica(t, "A", stA)
	b := startReplica(t, "B", stB)
	replicas := []*replica{a, b}
	ctx := t.Context()

	// hasSession reports whether browser's session gets a code on r: were
	// the login form shown, the wrong password would be refused.
	hasSession := func(r *replica, browser *http.Client) bool {
		t.Helper()
		ar := newAuthRequest(r.conf())
		to, err := testbrowser.Login(ctx, browser, ar.URL, aliceUsername, "not alice's password")
		if err != nil {
			if !strings.Contains(err.Error(), "incorrect") {
				t.Fatalf("authorize on %s: %v", r.name, err)
			}
			return false
		}
		if to.Query().Get("code") == "" {
			t.Fatalf("authorize on %s: got %s, want a code", r.name, to.Redacted())
		}
		return true
	}
	// promptNone returns the error of a prompt=none request on r, "" for a code.
	promptNone := func(r *replica, browser *http.Client) string {
		t.Helper()
		ar := newAuthRequest(r.conf())
		to, err := testbrowser.Login(ctx, browser, ar.URL+"&prompt=none", aliceUsername, alicePassword)
		if err != nil {
			t.Fatalf("prompt=none on %s: %v", r.name, err)
		}
		return to.Query().Get("error")
	}
	copyJar := func(from *http.Client) *http.Client {
		c := testbrowser.NewClient()
		for _, r := range replicas {
			u, _ := url.Parse(r.url)
			c.Jar.SetCookies(u, from.Jar.Cookies(u))
		}
		return c
	}

	t.Run("logout on one replica ends the session on both", func(t *testing.T) {
		browser := testbrowser.NewClient()
		ar, code := a.authorize(t, browser, alicePassword)
		tok := a.redeem(t, ar, code)
		saved := copyJar(browser)
		if !hasSession(b, saved) {
			t.Fatal("before logout: the session started on A gets no code on B")
		}
		idToken, _ := tok.Extra("id_token").(string)
		res := send(t, browser, mustRequest(t, b.url+handlers.PathLogout+"?"+url.Values{"id_token_hint": {idToken}}.Encode()))
		if res.Status != http.StatusOK || !strings.Contains(string(res.Body), "You are signed out") {
			t.Fatalf("logout on B: got status %d, want the signed-out page", res.Status)
		}
		for _, r := range replicas {
			if hasSession(r, saved) {
				t.Errorf("a copy of the cookie saved before the logout on B gets a code on %s", r.name)
			}
			if got := promptNone(r, saved); got != "login_required" {
				t.Errorf("prompt=none on %s with the saved copy: got error %q, want login_required", r.name, got)
			}
		}
	})

	t.Run("EndSessions on one replica ends the user's sessions on both", func(t *testing.T) {
		phone, laptop := testbrowser.NewClient(), testbrowser.NewClient()
		a.authorize(t, phone, alicePassword)
		b.authorize(t, laptop, alicePassword)
		for _, r := range replicas {
			for name, browser := range map[string]*http.Client{"phone": phone, "laptop": laptop} {
				if !hasSession(r, browser) {
					t.Fatalf("before EndSessions: the %s's session gets no code on %s", name, r.name)
				}
			}
		}
		// The user changed their password (on A, say).
		if err := a.h.EndSessions(ctx, "alice"); err != nil {
			t.Fatalf("EndSessions: %v", err)
		}
		for _, r := range replicas {
			for name, browser := range map[string]*http.Client{"phone": phone, "laptop": laptop} {
				if got := promptNone(r, browser); got != "login_required" {
					t.Errorf("after EndSessions: prompt=none with the %s's session on %s: got error %q, want login_required", name, r.name, got)
				}
				if hasSession(r, browser) {
					t.Errorf("after EndSessions: the %s's session still gets a code on %s", name, r.name)
				}
			}
		}
		// Logging in again works, on either replica.
		b.authorize(t, phone, alicePassword)
		if !hasSession(a, phone) {
			t.Error("a login after EndSessions gets no code on the other replica")
		}
		if err := b.h.EndSessions(ctx, ""); err == nil {
			t.Error("EndSessions with no subject: got no error")
		}
	})
}

// mustRequest is a GET request for rawURL.
func mustRequest(t *testing.T, rawURL string) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// failingSessions is the memory store's Sessions with reads and
// revocations failing while down is set, as a database that went away.
type failingSessions struct {
	store.Sessions
	down atomic.Bool
}

var errSessionsDown = errors.New("sessions store down")

func (f *failingSessions) Session(ctx context.Context, id string) (*store.Session, error) {
	if f.down.Load() {
		return nil, errSessionsDown
	}
	return f.Sessions.Session(ctx, id)
}

func (f *failingSessions) RevokeSession(ctx context.Context, id string) error {
	if f.down.Load() {
		return errSessionsDown
	}
	return f.Sessions.RevokeSession(ctx, id)
}

// TestSessionStoreDown: when the session store fails, an authorization
// request gets server_error, not login_required (an outage is not a
// logged-out user), and a logout says it did not complete and keeps the
// session, rather than pretending; once the store is back, both work.
func TestSessionStoreDown(t *testing.T) {
	t.Parallel()
	sessions := &failingSessions{Sessions: memory.New()}
	cfg := handlers.Config{Sessions: sessions}
	ts := newTestServer(t, serverOptions{Handlers: &cfg, Clients: logoutOptions().Clients})
	b, idToken := logIn(t, ts)

	sessions.down.Store(true)
	ar := authorizeWith(ts, nativeClient, "openid", url.Values{"prompt": {"none"}})
	wantRedirectError(t, ts, ar, b.get(t, ar.URL), "server_error")
	p := b.get(t, ts.logoutURL(url.Values{"id_token_hint": {idToken}}))
	if p.Status != http.StatusInternalServerError || len(p.Header.Values("Set-Cookie")) != 0 {
		t.Errorf("logout with the store down: got status %d, Set-Cookie %q; want 500 and the cookie kept", p.Status, p.Header.Values("Set-Cookie"))
	}

	sessions.down.Store(false)
	saved := b.copyOf(t)
	saved.wantSession(t, "the store back, after the failed logout")
	if p := b.get(t, ts.logoutURL(url.Values{"id_token_hint": {idToken}})); logoutPageKind(p) != signedOut {
		t.Fatalf("logout: got status %d, want signed out", p.Status)
	}
	saved.wantNoSession(t, "after the logout")
}

// TestPendingLoginSessionEnds: a session the host app's own login started
// (Pending.Complete) is a server-side session like any other: the app ends
// it with Server.EndSessions, say after the user changed their password.
func TestPendingLoginSessionEnds(t *testing.T) {
	t.Parallel()
	app := newCompanyApp(t)
	b := newBrowser(t, app.testServer)
	ar := authorizeWith(app.testServer, nativeClient, "openid", nil)
	wantCodeFor(t, app.testServer, ar, submitCompanyLogin(t, b, app.openCompanyLogin(t, b, ar), employeePassword, "login"))
	saved := b.copyOf(t)
	ar = authorizeWith(app.testServer, nativeClient, "openid", nil)
	wantCodeFor(t, app.testServer, ar, saved.get(t, ar.URL))

	if err := app.Handlers.EndSessions(t.Context(), "alice"); err != nil {
		t.Fatalf("EndSessions: %v", err)
	}
	// The browser and the copy of its cookie are sent to the company login
	// again; prompt=none gets login_required.
	for _, br := range []*browser{b, saved} {
		app.openCompanyLogin(t, br, authorizeWith(app.testServer, nativeClient, "openid", nil))
		ar := authorizeWith(app.testServer, nativeClient, "openid", url.Values{"prompt": {"none"}})
		wantRedirectError(t, app.testServer, ar, br.get(t, ar.URL), "login_required")
	}
}

// TestBrowserSessionLogout runs in headless Chromium (see TestBrowser): a
// user logs in and out with the real pages; the cookie as Chromium stored
// it before the logout, put into a fresh browser profile, gets the login
// page, not a code.
func TestBrowserSessionLogout(t *testing.T) {
	chrome := startChrome(t)
	f := newChromeFlow(t, nativeClient)
	tab := chrome.newTab(t)
	tab.navigate(f.ar.URL, http.StatusOK)
	tab.wantLoginPage(f.ts, "Example App")
	f.redeem(f.wantCode(tab, tab.logIn(aliceUsername, alicePassword)))

	var saved []*network.Cookie
	chromeRun(t, tab.ctx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		res, err := cdp.Call(ctx, tg, network.GetCookies, network.GetCookiesParams{URLs: []string{f.ts.URL}})
		saved = res.Cookies
		return err
	}))
	if len(saved) != 1 || !strings.HasSuffix(saved[0].Name, "pixie_session") || !saved[0].HTTPOnly {
		t.Fatalf("got cookies %+v, want the HttpOnly login cookie", saved)
	}
	const lifetime = 12 * time.Hour // Config.SessionLifetime's default
	if exp := time.Unix(int64(saved[0].Expires), 0); time.Until(exp) > lifetime {
		t.Errorf("the cookie expires at %v, after the session's %v lifetime", exp, lifetime)
	}

	// Signing out: the confirmation page (no id_token_hint), then the button.
	tab.navigate(f.ts.URL+handlers.PathLogout, http.StatusOK)
	if resp := tab.submit(`form button[type=submit]`); resp.Status != http.StatusOK || tab.text(`h1`) != "You are signed out" {
		t.Fatalf("sign out: got status %d, heading %q", resp.Status, tab.text(`h1`))
	}

	copyTab := chrome.newTab(t)
	chromeRun(t, copyTab.ctx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		c, httpOnly := saved[0], true
		_, err := cdp.Call(ctx, tg, network.SetCookie, network.SetCookieParams{
			Name: c.Name, Value: c.Value, URL: f.ts.URL, Path: c.Path, HTTPOnly: &httpOnly, SameSite: c.SameSite,
		})
		return err
	}))
	ar := newAuthRequest(f.ts.oauth2Config(nativeClient, f.app.redirectURI(), "openid"))
	copyTab.navigate(ar.URL, http.StatusOK)
	copyTab.wantLoginPage(f.ts, "Example App")
	if calls := f.app.callbacks(); len(calls) != 1 {
		t.Errorf("the app got %d redirects, want only the first login's", len(calls))
	}
}
