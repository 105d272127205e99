package handlers_test

import (
	"context"
	"database/sql"
	"errors"
	"io"
	"maps"
	"net/http"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/pixieauth/pixie/handlers"
	"github.com/pixieauth/pixie/provider"
	"github.com/pixieauth/pixie/store"
	"github.com/pixieauth/pixie/store/sqlstore"
	"github.com/pixieauth/pixie/store/sqlstore/sqlite"
)

// The database hangs: it accepts connections and answers nothing. Every
// request that needs it must answer 503 server_error within about
// provider.Config.StoreTimeout, not hang with it; the goroutines those
// requests used must not pile up; and when the database answers again,
// nothing the hung requests began has been consumed.

// hangTimeout is the StoreTimeout of the test server, and hangMargin what a
// request may take beyond it (the race detector, two shared cores).
const (
	hangTimeout = 2 * time.Second
	hangMargin  = 2 * time.Second
)

func TestDatabaseHangs(t *testing.T) {
	st, proxy := proxiedPostgres(t)
	st.DB().SetMaxOpenConns(16)
	seedStore(t, st.Store)
	logger, logs := testLogger(t, "server")
	// The handlers' own stores on the database too: the login throttle is
	// then the first store a login meets.
	grants := &outageAfterConsume{Store: st.Store}
	ts := startSQLServer(t, st.Store, grants, logger, func(c *provider.Config, h *handlers.Config) {
		c.StoreTimeout = hangTimeout
		// Without the client cache, the authorization endpoint needs the
		// database too (with it, it shows the login page from the cache).
		c.ClientCacheTTL = -1
		h.Throttle, h.Consents = st, st
	})
	s := prepareOutage(t, ts, logs)

	// The server's goroutines: all of the process's but the proxy's, with
	// no HTTP connection kept alive (each holds goroutines on both ends).
	serverGoroutines := func() int {
		ts.Server.CloseClientConnections()
		http.DefaultClient.CloseIdleConnections()
		s.browser.client.CloseIdleConnections()
		return runtime.NumGoroutine() - int(proxy.running.Load())
	}
	// settle waits until the count is at most limit, and returns it.
	settle := func(limit int) int {
		n := serverGoroutines()
		for deadline := time.Now().Add(10 * time.Second); n > limit && time.Now().Before(deadline); n = serverGoroutines() {
			time.Sleep(50 * time.Millisecond)
		}
		return n
	}
	// The baseline: the count once it stops falling.
	baseline := serverGoroutines()
	for range 20 {
		time.Sleep(50 * time.Millisecond)
		n := serverGoroutines()
		if n >= baseline {
			break
		}
		baseline = n
	}

	proxy.hang()

	// Many requests at once, each of every kind that needs the database.
	const rounds = 8
	type result struct {
		what   string
		status int
		err    string // the OAuth error code, or what went wrong
		took   time.Duration
	}
	results := make(chan result, rounds*5)
	var wg sync.WaitGroup
	timed := func(what string, f func(ctx context.Context) (int, string)) {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(t.Context(), outageTimeout)
			defer cancel()
			start := time.Now()
			status, code := f(ctx)
			results <- result{what, status, code, time.Since(start)}
		})
	}
	tokenError := func(err error) (int, string) {
		var re *oauth2.RetrieveError
		if !errors.As(err, &re) {
			return 0, "no OAuth error response: " + errString(err)
		}
		return re.Response.StatusCode, re.ErrorCode
	}
	plain := func(method, url, authorization, form string) func(ctx context.Context) (int, string) {
		return func(ctx context.Context) (int, string) {
			req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(form))
			if err != nil {
				return 0, err.Error()
			}
			if authorization != "" {
				req.Header.Set("Authorization", authorization)
			}
			if form != "" {
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return 0, err.Error()
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
			if err != nil {
				return resp.StatusCode, "read body: " + err.Error()
			}
			if !strings.Contains(string(body), "server_error") {
				return resp.StatusCode, "body without server_error"
			}
			if strings.Contains(string(body), "The app that sent you here made a request") {
				return resp.StatusCode, "an error page blaming the app"
			}
			return resp.StatusCode, "server_error"
		}
	}
	loginForm := s.browser.parseLoginForm(t, s.login)
	for i := range rounds {
		timed("refresh", func(ctx context.Context) (int, string) {
			_, err := refresh(ctx, s.conf, s.tok.RefreshToken)
			return tokenError(err)
		})
		timed("code exchange", func(ctx context.Context) (int, string) {
			_, err := s.pending.exchange(ctx, s.code)
			return tokenError(err)
		})
		timed("userinfo", plain(http.MethodGet, ts.URL+handlers.PathUserInfo, "Bearer "+s.tok.AccessToken, ""))
		timed("authorize", plain(http.MethodGet, newAuthRequest(s.conf).URL, "", ""))
		if i >= 2 {
			// The login throttle counts an attempt until it succeeds: a
			// few attempts, so that checkDown's is not throttled.
			continue
		}
		timed("login", func(ctx context.Context) (int, string) {
			fields := maps.Clone(loginForm.Fields)
			fields.Set("username", aliceUsername)
			fields.Set("password", alicePassword)
			if i == 0 {
				// Without the pending request, the page looks up no
				// client: the throttle is the first store it meets.
				fields.Del("request")
			}
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, loginForm.Action, strings.NewReader(fields.Encode()))
			if err != nil {
				return 0, err.Error()
			}
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Origin", ts.URL)
			resp, err := s.browser.client.Do(req)
			if err != nil {
				return 0, err.Error()
			}
			resp.Body.Close()
			return resp.StatusCode, "server_error"
		})
	}
	wg.Wait()
	close(results)
	for r := range results {
		if r.status != http.StatusServiceUnavailable || r.err != "server_error" {
			t.Errorf("%s while the database hangs: got %d %q, want 503 server_error", r.what, r.status, r.err)
		}
		if r.took > hangTimeout+hangMargin {
			t.Errorf("%s while the database hangs: took %v, want at most %v (StoreTimeout %v)", r.what, r.took, hangTimeout+hangMargin, hangTimeout)
		}
	}
	if !strings.Contains(logs.String(), "store timed out") {
		t.Errorf("log: no \"store timed out\" line during the hang")
	}
	// The same checks as for a database that is down: not the client's
	// fault, the process serves what needs no database, the log names no
	// secret.
	s.checkDown(t)

	// The goroutines the hung requests used are not held by the hang.
	if n := settle(baseline); n > baseline {
		t.Errorf("goroutines while the database still hangs: %d, want at most the %d before it (a request left behind holds one)", n, baseline)
	}

	proxy.endHang()
	ping := func() error {
		ctx, cancel := context.WithTimeout(t.Context(), outageTimeout)
		defer cancel()
		return st.Ping(ctx)
	}
	// Ping rids the pool of the connections the hang's end cut.
	for range 20 {
		if ping() == nil {
			break
		}
	}
	if err := ping(); err != nil {
		t.Fatalf("Ping after the hang: %v", err)
	}
	if n := settle(baseline); n > baseline {
		t.Errorf("goroutines after the hang: %d, want at most the %d before it", n, baseline)
	}

	// Nothing the hung requests began was consumed.
	ctx, cancel := context.WithTimeout(t.Context(), outageTimeout)
	defer cancel()
	if _, err := refresh(ctx, s.conf, s.tok.RefreshToken); err != nil {
		t.Errorf("refresh after the hang with the refresh token presented during it: %v", err)
	}
	if _, err := s.pending.exchange(ctx, s.code); err != nil {
		t.Errorf("code exchange after the hang with the code presented during it: %v", err)
	}

	// The database hangs inside a code exchange's transaction, right after
	// the code was consumed: the transaction's bound ends the request, it
	// rolls back, and the code still works once the database answers.
	t.Run("hang inside a code exchange", func(t *testing.T) {
		ar := newAuthRequest(s.conf)
		code := newBrowser(t, ts).code(t, ar)
		grants.arm(store.KindAuthorizeCode, proxy.hang)
		ctx, cancel := context.WithTimeout(t.Context(), outageTimeout)
		defer cancel()
		start := time.Now()
		_, err := ar.exchange(ctx, code)
		took := time.Since(start)
		var re *oauth2.RetrieveError
		if !errors.As(err, &re) || re.Response.StatusCode != http.StatusServiceUnavailable || re.ErrorCode != "server_error" {
			t.Errorf("code exchange hung after consuming the code: got %v, want 503 server_error", err)
		}
		if took > hangTimeout+hangMargin {
			t.Errorf("code exchange hung after consuming the code: took %v, want at most %v", took, hangTimeout+hangMargin)
		}
		proxy.endHang()
		for range 20 {
			if ping() == nil {
				break
			}
		}
		if _, err := ar.exchange(ctx, code); err != nil {
			t.Errorf("code exchange after the hang, same code: got %v, want tokens: the hung exchange must have rolled back", err)
		}
	})
}

func errString(err error) string {
	if err == nil {
		return "no error"
	}
	return err.Error()
}

// TestDatabaseLockedSQLite holds SQLite's write lock from another
// connection, as another process would: SQLite waits up to its busy_timeout
// (10 s) for it, but a token request must answer 503 within about
// StoreTimeout, and once the lock is released the same code and refresh
// token work.
func TestDatabaseLockedSQLite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pixie.db")
	st, err := sqlite.Open(t.Context(), path, sqlstore.Config{KeySecret: testKeySecret})
	if err != nil {
		t.Fatalf("sqlite.Open: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	seedStore(t, st.Store)
	logger, logs := testLogger(t, "server")
	ts := startSQLServer(t, st.Store, nil, logger, func(c *provider.Config, _ *handlers.Config) { c.StoreTimeout = hangTimeout })
	s := prepareOutage(t, ts, logs)

	other, err := sql.Open("sqlite", sqlite.DSN(path))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	lock, err := other.BeginTx(t.Context(), nil) // BEGIN IMMEDIATE: the write lock
	if err != nil {
		t.Fatalf("take the write lock: %v", err)
	}
	for what, redeem := range map[string]func(ctx context.Context) error{
		"code exchange": func(ctx context.Context) error { _, err := s.pending.exchange(ctx, s.code); return err },
		"refresh":       func(ctx context.Context) error { _, err := refresh(ctx, s.conf, s.tok.RefreshToken); return err },
	} {
		ctx, cancel := context.WithTimeout(t.Context(), outageTimeout)
		start := time.Now()
		err := redeem(ctx)
		took := time.Since(start)
		cancel()
		var re *oauth2.RetrieveError
		if !errors.As(err, &re) || re.Response.StatusCode != http.StatusServiceUnavailable || re.ErrorCode != "server_error" {
			t.Errorf("%s while another connection holds the write lock: got %v, want 503 server_error", what, err)
		}
		if took > hangTimeout+hangMargin {
			t.Errorf("%s while another connection holds the write lock: took %v, want at most %v", what, took, hangTimeout+hangMargin)
		}
	}
	if err := lock.Rollback(); err != nil {
		t.Fatalf("release the write lock: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), outageTimeout)
	defer cancel()
	if _, err := s.pending.exchange(ctx, s.code); err != nil {
		t.Errorf("code exchange after the lock was released: %v", err)
	}
	if _, err := refresh(ctx, s.conf, s.tok.RefreshToken); err != nil {
		t.Errorf("refresh after the lock was released: %v", err)
	}
}
