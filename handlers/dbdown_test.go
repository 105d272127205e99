package handlers_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/pixieauth/pixie/handlers"
	"github.com/pixieauth/pixie/store"
	"github.com/pixieauth/pixie/store/sqlstore"
	"github.com/pixieauth/pixie/store/sqlstore/sqlite"
)

// The database goes away while the server runs. Every request that needs it
// must fail as the server's fault (5xx server_error), never as the client's
// (invalid_grant, invalid_client, invalid_token, a wrong password); the
// process must go on serving what needs no database; the failure is logged
// at Error without a token; and when the database comes back, nothing the
// failed requests began is left half-done.

// outageTimeout bounds each request made while the database is away: a
// refused connection fails at once, so a request taking longer hangs.
const outageTimeout = 5 * time.Second

// outageScene is what a test prepares while the database is up, to use
// while it is down.
type outageScene struct {
	ts      *testServer
	conf    *oauth2.Config
	tok     *oauth2.Token // issued before the outage, not yet refreshed
	pending *authRequest  // an authorization request whose code is not yet redeemed
	code    string
	login   *page    // a login form, shown before the outage
	browser *browser // the browser showing it
	logs    *syncBuffer
	secrets map[string]string // what must never appear in the log, by name
}

// prepareOutage issues tokens, a code and a login form on ts.
func prepareOutage(t *testing.T, ts *testServer, logs *syncBuffer) *outageScene {
	t.Helper()
	s := &outageScene{ts: ts, logs: logs, conf: ts.oauth2Config(nativeClient, ts.loopbackRedirect(), allScopes)}
	b := newBrowser(t, ts)
	_, s.tok = b.tokens(t, s.conf)
	s.pending = newAuthRequest(s.conf)
	s.code = b.code(t, s.pending)

	s.browser = newBrowser(t, ts)
	s.browser.client.Timeout = outageTimeout
	s.login = s.browser.get(t, newAuthRequest(s.conf).URL)
	if !s.login.IsLogin() {
		t.Fatalf("authorize in a new browser: got status %d at %s, want the login page", s.login.Status, s.login.URL)
	}

	idToken, _ := s.tok.Extra("id_token").(string)
	s.secrets = map[string]string{
		"password":      alicePassword,
		"access token":  s.tok.AccessToken,
		"refresh token": s.tok.RefreshToken,
		"id token":      idToken,
		"code":          s.code,
		"code verifier": s.pending.Verifier,
		"csrf token":    s.browser.parseLoginForm(t, s.login).Fields.Get("csrf_token"),
	}
	u, err := url.Parse(ts.URL)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range b.client.Jar.Cookies(u) {
		s.secrets["login cookie"] = c.Value
	}
	return s
}

// checkDown checks every request while the database is away.
func (s *outageScene) checkDown(t *testing.T) {
	t.Helper()
	ctx := t.Context()
	errorsBefore := strings.Count(s.logs.String(), "level=ERROR")

	// A valid refresh token and a valid code: server_error, not invalid_grant.
	func() {
		ctx, cancel := context.WithTimeout(ctx, outageTimeout)
		defer cancel()
		_, err := refresh(ctx, s.conf, s.tok.RefreshToken)
		wantUnavailable(t, "refresh with a valid refresh token", err)
	}()
	func() {
		ctx, cancel := context.WithTimeout(ctx, outageTimeout)
		defer cancel()
		_, err := s.pending.exchange(ctx, s.code)
		wantUnavailable(t, "code exchange with a valid code", err)
	}()

	// A valid access token: 5xx, not 401 invalid_token.
	res := s.get(t, handlers.PathUserInfo, "Bearer "+s.tok.AccessToken)
	if res.Status < 500 {
		t.Errorf("userinfo with a valid access token: got %d, want 5xx; body: %s", res.Status, res.Body)
	} else if m := res.JSON(t); m["error"] != "server_error" && m["error"] != "temporarily_unavailable" {
		t.Errorf("userinfo with a valid access token: got error %v, want server_error", m["error"])
	}
	if h := res.Header.Get("WWW-Authenticate"); strings.Contains(h, "invalid_token") {
		t.Errorf("userinfo with a valid access token: got WWW-Authenticate %q, want no invalid_token", h)
	}

	// The right password: an error page, not "incorrect".
	p := s.browser.submitLogin(t, s.login, aliceUsername, alicePassword)
	if p.Status < 500 {
		t.Errorf("login with the right password: got status %d at %s, want 5xx", p.Status, p.URL)
	}
	if strings.Contains(p.Body, "incorrect") || p.Callback != nil {
		t.Errorf("login with the right password: got a refusal or a redirect (status %d, Location %q), want an error page", p.Status, p.Location)
	}

	// The process serves what needs no database.
	for _, path := range []string{handlers.PathOIDCConfig, handlers.PathJWKS} {
		if res := s.get(t, path, ""); res.Status != http.StatusOK {
			t.Errorf("GET %s: got %d, want 200", path, res.Status)
		}
	}

	// The operator hears of it, without a token.
	out := s.logs.String()
	if strings.Count(out, "level=ERROR") <= errorsBefore {
		t.Errorf("log: got no new Error line during the outage, want one; log:\n%s", out)
	}
	for name, secret := range s.secrets {
		if secret == "" {
			t.Errorf("%s is empty: the test did not capture it", name)
			continue
		}
		if strings.Contains(out, secret) {
			t.Errorf("log contains the %s", name)
		}
		if key, _, ok := strings.Cut(secret, "."); ok && len(key) >= 16 && strings.Contains(out, key) {
			t.Errorf("log contains the first part of the %s", name)
		}
	}
}

// get GETs a path of the server, with the outage timeout.
func (s *outageScene) get(t *testing.T, path, authorization string) *httpResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), outageTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.ts.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	return send(t, nil, req)
}

// wantUnavailable checks that a token request failed as the server's fault:
// 5xx with server_error (or temporarily_unavailable).
func wantUnavailable(t *testing.T, what string, err error) {
	t.Helper()
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		t.Errorf("%s: got %v, want a 5xx server_error response", what, err)
		return
	}
	if re.Response.StatusCode < 500 || (re.ErrorCode != "server_error" && re.ErrorCode != "temporarily_unavailable") {
		t.Errorf("%s: got %d %q (%s), want 5xx server_error", what, re.Response.StatusCode, re.ErrorCode, re.ErrorDescription)
	}
}

// TestDatabaseDown runs pixie on PostgreSQL through a TCP proxy, and stops
// and restores the proxy: the database going away and coming back, as the
// server sees it.
func TestDatabaseDown(t *testing.T) {
	st, proxy := proxiedPostgres(t)
	st.DB().SetMaxOpenConns(16)
	seedStore(t, st.Store)
	logger, logs := testLogger(t, "server")
	grants := &outageAfterConsume{Store: st.Store}
	ts := startSQLServer(t, st.Store, grants, logger)
	s := prepareOutage(t, ts, logs)

	// ping is the readiness check a load balancer would make. While the
	// database is away it also rids the pool of the connections the proxy
	// cut (database/sql drops a connection whose ping fails), as a health
	// checker polling during an outage does: a request made after the
	// restore then gets a live connection, not a cut one.
	ping := func() error {
		ctx, cancel := context.WithTimeout(t.Context(), outageTimeout)
		defer cancel()
		return st.Ping(ctx)
	}
	ctxTimeout := func() context.Context {
		ctx, cancel := context.WithTimeout(t.Context(), outageTimeout)
		t.Cleanup(cancel)
		return ctx
	}

	proxy.stop()
	s.checkDown(t)
	if err := ping(); err == nil {
		t.Error("Ping while the database is away: got nil, want an error")
	}

	proxy.restore(t)
	if err := ping(); err != nil {
		t.Fatalf("Ping after the restore: %v", err)
	}
	// The failed attempts consumed nothing: the same refresh token and code
	// work now.
	tok2, err := refresh(ctxTimeout(), s.conf, s.tok.RefreshToken)
	if err != nil {
		t.Fatalf("refresh after the restore with the refresh token presented during the outage: %v", err)
	}
	if _, err := s.pending.exchange(ctxTimeout(), s.code); err != nil {
		t.Errorf("code exchange after the restore with the code presented during the outage: %v", err)
	}

	// The database goes away inside a refresh's transaction, right after
	// the refresh token was consumed and before the new tokens are stored:
	// the transaction rolls back, and the refresh token stays usable.
	t.Run("outage inside a refresh", func(t *testing.T) {
		grants.arm(store.KindRefreshToken, proxy.stop)
		_, err := refresh(ctxTimeout(), s.conf, tok2.RefreshToken)
		wantUnavailable(t, "refresh cut off after consuming the refresh token", err)
		if err := ping(); err == nil {
			t.Error("Ping while the database is away: got nil, want an error")
		}
		proxy.restore(t)
		if err := ping(); err != nil {
			t.Fatalf("Ping after the restore: %v", err)
		}
		tok3, err := refresh(ctxTimeout(), s.conf, tok2.RefreshToken)
		if err != nil {
			t.Fatalf("refresh after the restore, same refresh token: got %v, want new tokens: the cut-off refresh must not have consumed it", err)
		}
		if res := s.get(t, handlers.PathUserInfo, "Bearer "+tok3.AccessToken); res.Status != http.StatusOK {
			t.Errorf("userinfo with the access token of the retried refresh: got %d, want 200", res.Status)
		}
	})

	// The same inside a code exchange, right after the code was consumed.
	t.Run("outage inside a code exchange", func(t *testing.T) {
		ar := newAuthRequest(s.conf)
		code := newBrowser(t, ts).code(t, ar)
		grants.arm(store.KindAuthorizeCode, proxy.stop)
		_, err := ar.exchange(ctxTimeout(), code)
		wantUnavailable(t, "code exchange cut off after consuming the code", err)
		if err := ping(); err == nil {
			t.Error("Ping while the database is away: got nil, want an error")
		}
		proxy.restore(t)
		if err := ping(); err != nil {
			t.Fatalf("Ping after the restore: %v", err)
		}
		if _, err := ar.exchange(ctxTimeout(), code); err != nil {
			t.Errorf("code exchange after the restore, same code: got %v, want tokens: the cut-off exchange must have left nothing half-done", err)
		}
	})
}

// TestDatabaseClosedSQLite closes the SQLite store's *sql.DB under a running
// server: every request that needs it fails as server_error.
func TestDatabaseClosedSQLite(t *testing.T) {
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "pixie.db"), sqlstore.Config{KeySecret: testKeySecret})
	if err != nil {
		t.Fatalf("sqlite.Open: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() }) // closes the database a second time: harmless
	seedStore(t, st.Store)
	logger, logs := testLogger(t, "server")
	ts := startSQLServer(t, st.Store, nil, logger)
	s := prepareOutage(t, ts, logs)

	if err := st.DB().Close(); err != nil {
		t.Fatalf("close the database: %v", err)
	}
	s.checkDown(t)
}
