package handlers_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/pixieauth/pixie/handlers"
	"github.com/pixieauth/pixie/internal/pgtest"
	"github.com/pixieauth/pixie/store"
	"github.com/pixieauth/pixie/store/sqlstore"
	"github.com/pixieauth/pixie/store/sqlstore/postgres"
	"github.com/pixieauth/pixie/store/sqlstore/sqlite"
)

// parPath is the pushed authorization request endpoint (RFC 9126), as
// discovery publishes it.
const parPath = "/oauth/par"

// parClient is a public native client that must push its requests
// (store.Client.RequirePAR).
const parClient = "example-par"

// webRedirect is webClient's registered redirect URI.
const webRedirect = "https://app.example.com/callback"

// pushParams returns the parameters of ar's authorization URL, which x/oauth2
// built: what the client pushes instead of sending it through the browser.
func pushParams(t *testing.T, ar *authRequest) url.Values {
	t.Helper()
	u, err := url.Parse(ar.URL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query()
}

// push sends form to the pushed authorization request endpoint.
func (ts *testServer) push(t *testing.T, form url.Values, header http.Header) *httpResult {
	t.Helper()
	return ts.postForm(t, parPath, form, header)
}

// pushed pushes ar's parameters and points ar.URL at the authorization
// endpoint with only client_id and the request_uri the push returned,
// checking the 201 response on the way. header authenticates a
// confidential client.
func (ts *testServer) pushed(t *testing.T, ar *authRequest, header http.Header) string {
	t.Helper()
	res := ts.push(t, pushParams(t, ar), header)
	if res.Status != http.StatusCreated {
		t.Fatalf("push: got status %d, want 201; body: %s", res.Status, res.Body)
	}
	if got := res.Header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("push: got Cache-Control %q, want no-store", got)
	}
	m := res.JSON(t)
	uri, _ := m["request_uri"].(string)
	if !strings.HasPrefix(uri, "urn:ietf:params:oauth:request_uri:") || len(uri) < len("urn:ietf:params:oauth:request_uri:")+40 {
		t.Fatalf("push: got request_uri %q, want a urn:ietf:params:oauth:request_uri: with 32 random bytes", uri)
	}
	if got, _ := m["expires_in"].(float64); got != 60 {
		t.Errorf("push: got expires_in %v, want 60 (the default lifespan)", m["expires_in"])
	}
	ar.URL = ts.authorizeURL(url.Values{"client_id": {ar.Conf.ClientID}, "request_uri": {uri}})
	return uri
}

// wantShownError checks that p is pixie's error page with the OAuth error
// code, not a redirect to anywhere.
func wantShownError(t *testing.T, p *page, code string) {
	t.Helper()
	if p.Callback != nil {
		t.Fatalf("got a redirect to %s, want the error page with %s", p.Location, code)
	}
	if p.Status != http.StatusBadRequest || !strings.Contains(p.Body, "<code>"+code+"</code>") {
		t.Errorf("got status %d, want 400 with error %s; body:\n%s", p.Status, code, p.Body)
	}
}

// TestPARFlow runs whole authorizations through a pushed request, to the
// tokens, for a public and a confidential client, through the login and
// consent steps, with prompt and max_age values that the login step
// resumes from: each ends in tokens whose ID token has the pushed nonce.
func TestPARFlow(t *testing.T) {
	t.Parallel()
	clock := &testClock{}
	ts := newTestServer(t, serverOptions{Now: clock.Now})
	webConf := func() *oauth2.Config {
		c := ts.oauth2Config(webClient, webRedirect, "openid profile")
		c.ClientSecret = apiSecret
		c.Endpoint.AuthStyle = oauth2.AuthStyleInHeader
		return c
	}
	tests := []struct {
		name string
		conf func() *oauth2.Config // the client's configuration
		// extra parameters pushed with the request
		extra url.Values
		// header authenticates the push (a confidential client)
		header http.Header
		// loggedIn runs a first authorization, so that a session exists
		loggedIn bool
		// wantLogin and wantConsent: the steps the browser goes through
		wantLogin, wantConsent bool
	}{
		{name: "public, first party, login with the pushed login_hint",
			conf:      func() *oauth2.Config { return ts.oauth2Config(nativeClient, ts.loopbackRedirect(), allScopes) },
			extra:     url.Values{"login_hint": {aliceUsername}},
			wantLogin: true},
		{name: "public, third party, login and consent",
			conf:      func() *oauth2.Config { return ts.oauth2Config(otherClient, ts.loopbackRedirect(), "openid email") },
			wantLogin: true, wantConsent: true},
		{name: "confidential, secret in Basic",
			conf:      webConf,
			header:    http.Header{"Authorization": {basicAuth(webClient, apiSecret)}},
			wantLogin: true, wantConsent: true},
		{name: "prompt=login with a session: one login, not a loop",
			conf:     func() *oauth2.Config { return ts.oauth2Config(nativeClient, ts.loopbackRedirect(), "openid") },
			extra:    url.Values{"prompt": {"login"}},
			loggedIn: true, wantLogin: true},
		{name: "max_age=0 with a session: one login",
			conf:     func() *oauth2.Config { return ts.oauth2Config(nativeClient, ts.loopbackRedirect(), "openid") },
			extra:    url.Values{"max_age": {"0"}},
			loggedIn: true, wantLogin: true},
		{name: "prompt=consent with a consent given: asked once",
			conf:     func() *oauth2.Config { return ts.oauth2Config(otherClient, ts.loopbackRedirect(), "openid") },
			extra:    url.Values{"prompt": {"consent"}},
			loggedIn: true, wantConsent: true},
		{name: "a session and a consent: straight to the code",
			conf:     func() *oauth2.Config { return ts.oauth2Config(otherClient, ts.loopbackRedirect(), "openid") },
			loggedIn: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := newBrowser(t, ts)
			if tc.loggedIn {
				// A direct authorization first, two seconds ago (auth_time
				// is in seconds): the login, and the consent for a
				// third-party client.
				clock.Shift(-2 * time.Second)
				ar := newAuthRequest(tc.conf())
				p := b.authorize(t, ar.URL)
				if p.IsConsent() {
					p = b.decide(t, b.parseConsent(t, p), "allow")
				}
				wantCodeFor(t, ts, ar, p)
				clock.Shift(0)
			}
			conf := tc.conf()
			ar := newAuthRequest(conf)
			if len(tc.extra) > 0 {
				ar.URL += "&" + tc.extra.Encode()
			}
			ts.pushed(t, ar, tc.header)
			p := b.get(t, ar.URL)
			if p.IsLogin() != tc.wantLogin {
				t.Fatalf("got the login page %v, want %v (status %d at %s)", p.IsLogin(), tc.wantLogin, p.Status, p.URL)
			}
			if p.IsLogin() {
				if got, want := b.parseLoginForm(t, p).Fields.Get("username"), tc.extra.Get("login_hint"); got != want {
					t.Errorf("login form: got username %q, want the pushed login_hint %q", got, want)
				}
				p = b.submitLogin(t, p, aliceUsername, alicePassword)
			}
			if p.IsConsent() != tc.wantConsent {
				t.Fatalf("got the consent page %v, want %v (status %d at %s, Location %q)", p.IsConsent(), tc.wantConsent, p.Status, p.URL, p.Location)
			}
			if p.IsConsent() {
				p = b.decide(t, b.parseConsent(t, p), "allow")
			}
			if p.Callback == nil {
				t.Fatalf("got status %d at %s, want a redirect to the client; body:\n%s", p.Status, p.URL, p.Body)
			}
			q := p.Callback.Query()
			if q.Get("state") != ar.State || q.Get("iss") != ts.URL || q.Get("code") == "" {
				t.Fatalf("got %s, want a code with the pushed state %q and iss", p.Location, ar.State)
			}
			if want, _ := url.Parse(conf.RedirectURL); p.Callback.Host != want.Host || p.Callback.Path != want.Path {
				t.Errorf("got redirect to %s, want the pushed redirect_uri %s", p.Location, conf.RedirectURL)
			}
			cl := exchangeIDToken(t, ts, ar, q.Get("code")) // checks the pushed nonce
			if cl.Subject != "alice" {
				t.Errorf("got sub %q, want alice", cl.Subject)
			}
		})
	}
}

// TestPARRequestURIRefused: a request_uri opens one authorization of the
// client that pushed it, within its lifespan; anything else is
// invalid_request_uri on pixie's error page, never a redirect.
func TestPARRequestURIRefused(t *testing.T) {
	t.Parallel()
	clock := &testClock{}
	ts := newTestServer(t, serverOptions{Now: clock.Now})
	b := newBrowser(t, ts)

	// Used once, to the code: the second use is refused.
	ar := newAuthRequest(ts.oauth2Config(nativeClient, ts.loopbackRedirect(), "openid"))
	ts.pushed(t, ar, nil)
	wantCodeFor(t, ts, ar, b.authorize(t, ar.URL))
	wantShownError(t, b.get(t, ar.URL), "invalid_request_uri")

	// Presented with another client_id: refused, and the pushing client
	// may still use it.
	ar = newAuthRequest(ts.oauth2Config(nativeClient, ts.loopbackRedirect(), "openid"))
	uri := ts.pushed(t, ar, nil)
	wantShownError(t, b.get(t, ts.authorizeURL(url.Values{"client_id": {otherClient}, "request_uri": {uri}})), "invalid_request_uri")
	wantShownError(t, b.get(t, ts.authorizeURL(url.Values{"request_uri": {uri}})), "invalid_request")
	wantCodeFor(t, ts, ar, b.get(t, ar.URL))

	// Unknown.
	wantShownError(t, b.get(t, ts.authorizeURL(url.Values{"client_id": {nativeClient}, "request_uri": {"urn:ietf:params:oauth:request_uri:nosuchrequest"}})), "invalid_request_uri")

	// Expired: 60 seconds by default.
	ar = newAuthRequest(ts.oauth2Config(nativeClient, ts.loopbackRedirect(), "openid"))
	ts.pushed(t, ar, nil)
	clock.Shift(61 * time.Second)
	wantShownError(t, b.get(t, ar.URL), "invalid_request_uri")
	clock.Shift(0)
	// Before expiry, the parameters sent beside it are ignored (RFC 9126
	// §4): the redirect goes to the pushed redirect_uri with the pushed
	// state.
	ar = newAuthRequest(ts.oauth2Config(nativeClient, ts.loopbackRedirect(), "openid"))
	ts.pushed(t, ar, nil)
	clock.Shift(50 * time.Second)
	wantCodeFor(t, ts, ar, b.get(t, ar.URL+"&"+url.Values{"state": {"other"}, "redirect_uri": {customSchemeURI}, "scope": {"openid email"}}.Encode()))
}

// TestPARPushRefused: what the pushed endpoint refuses, with the OAuth
// error a client can act on, never a 500.
func TestPARPushRefused(t *testing.T) {
	t.Parallel()
	ts := sharedServer(t)
	native := func() url.Values {
		return pushParams(t, newAuthRequest(ts.oauth2Config(nativeClient, ts.loopbackRedirect(), "openid")))
	}
	web := func() url.Values {
		f := pushParams(t, newAuthRequest(ts.oauth2Config(webClient, webRedirect, "openid")))
		f.Del("client_id")
		return f
	}
	without := func(f url.Values, keys ...string) url.Values {
		for _, k := range keys {
			f.Del(k)
		}
		return f
	}
	with := func(f url.Values, k, v string) url.Values { f.Set(k, v); return f }
	basic := http.Header{"Authorization": {basicAuth(webClient, apiSecret)}}
	tests := []struct {
		name   string
		form   url.Values  // the pushed parameters
		header http.Header // headers added to the form POST
		status int
		code   string
	}{
		{"public client without PKCE", without(native(), "code_challenge", "code_challenge_method"), nil, 400, "invalid_request"},
		{"confidential client without PKCE", without(web(), "code_challenge", "code_challenge_method"), basic, 400, "invalid_request"},
		{"plain PKCE", with(native(), "code_challenge_method", "plain"), nil, 400, "invalid_request"},
		{"confidential client with a wrong secret", web(), http.Header{"Authorization": {basicAuth(webClient, "wrong")}}, 401, "invalid_client"},
		{"confidential client without its secret", with(web(), "client_id", webClient), nil, 401, "invalid_client"},
		{"unknown client", with(native(), "client_id", "no-such-client"), nil, 401, "invalid_client"},
		{"client_id of another client than Basic's", with(web(), "client_id", nativeClient), basic, 400, "invalid_request"},
		{"request_uri inside the pushed request", with(native(), "request_uri", "urn:ietf:params:oauth:request_uri:x"), nil, 400, "invalid_request"},
		{"unregistered redirect_uri", with(native(), "redirect_uri", "https://evil.example/cb"), nil, 400, "invalid_request"},
		{"scope the client may not ask", with(native(), "scope", "openid admin"), nil, 400, "invalid_scope"},
		{"repeated parameter", func() url.Values { f := native(); f.Add("state", "again"); return f }(), nil, 400, "invalid_request"},
		{"overlong state", with(native(), "state", strings.Repeat("s", 3000)), nil, 400, "invalid_request"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := ts.push(t, tc.form, tc.header)
			res.wantOAuthError(t, tc.status, tc.code)
			if tc.status == 401 && res.Header.Get("WWW-Authenticate") == "" {
				t.Errorf("401 without WWW-Authenticate")
			}
		})
	}

	t.Run("GET", func(t *testing.T) {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, ts.URL+parPath+"?"+native().Encode(), nil)
		send(t, nil, req).wantOAuthError(t, http.StatusMethodNotAllowed, "invalid_request")
	})
	t.Run("JSON body", func(t *testing.T) {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, ts.URL+parPath, strings.NewReader(`{"client_id":"example-native"}`))
		req.Header.Set("Content-Type", "application/json")
		send(t, nil, req).wantOAuthError(t, http.StatusBadRequest, "invalid_request")
	})
	t.Run("parameters in the query", func(t *testing.T) {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, ts.URL+parPath+"?prompt=none", strings.NewReader(native().Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		send(t, nil, req).wantOAuthError(t, http.StatusBadRequest, "invalid_request")
	})
}

// TestPARRequired: with store.Client.RequirePAR, or provider.Config.RequirePAR
// for every client, a direct authorization request is refused with
// invalid_request, sent to the app only when its redirect URI checks out,
// and a pushed one goes through.
func TestPARRequired(t *testing.T) {
	t.Parallel()
	perClient := newTestServer(t, serverOptions{Clients: []*store.Client{{
		ID: parClient, Name: "PAR App", RedirectURIs: []string{loopbackURI}, Scopes: []string{"openid"},
		Native: true, FirstParty: true, RequirePAR: true,
	}}})
	global := newTestServer(t, serverOptions{RequirePAR: true})
	tests := []struct {
		name   string
		ts     *testServer
		client string
	}{
		{"per client", perClient, parClient},
		{"for every client", global, nativeClient},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := newBrowser(t, tc.ts)
			ar := newAuthRequest(tc.ts.oauth2Config(tc.client, tc.ts.loopbackRedirect(), "openid"))
			wantRedirectError(t, tc.ts, ar, b.get(t, ar.URL), "invalid_request")
			// An unregistered redirect URI is not redirected to.
			bad := newAuthRequest(tc.ts.oauth2Config(tc.client, "https://evil.example/cb", "openid"))
			wantShownError(t, b.get(t, bad.URL), "invalid_request")
			tc.ts.pushed(t, ar, nil)
			wantCodeFor(t, tc.ts, ar, b.authorize(t, ar.URL))
		})
	}
	// Other clients of the first server need not push.
	_, tok := newBrowser(t, perClient).tokens(t, perClient.oauth2Config(nativeClient, perClient.loopbackRedirect(), "openid"))
	if tok.AccessToken == "" {
		t.Error("a client without RequirePAR got no access token")
	}
	for _, tc := range []struct {
		ts   *testServer
		want bool
	}{{perClient, false}, {global, true}} {
		m := discover(t, tc.ts)
		if got := m["require_pushed_authorization_requests"]; got != tc.want {
			t.Errorf("require_pushed_authorization_requests: got %v, want %v", got, tc.want)
		}
	}
}

// discover returns the discovery document.
func discover(t *testing.T, ts *testServer) map[string]any {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, ts.URL+handlers.PathOIDCConfig, nil)
	res := send(t, nil, req)
	if res.Status != http.StatusOK {
		t.Fatalf("discovery: got status %d", res.Status)
	}
	return res.JSON(t)
}

// TestPARDiscovery: both metadata documents name the pushed endpoint, and
// say PAR is optional by default.
func TestPARDiscovery(t *testing.T) {
	t.Parallel()
	ts := sharedServer(t)
	for _, path := range []string{handlers.PathOIDCConfig, handlers.PathOAuthConfig} {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, ts.URL+path, nil)
		m := send(t, nil, req).JSON(t)
		if got := m["pushed_authorization_request_endpoint"]; got != ts.URL+parPath {
			t.Errorf("%s: got pushed_authorization_request_endpoint %v, want %s", path, got, ts.URL+parPath)
		}
		if got := m["require_pushed_authorization_requests"]; got != false {
			t.Errorf("%s: got require_pushed_authorization_requests %v, want false", path, got)
		}
	}
}

// pushedGate holds back the consumption (Delete) of a pushed request until
// n uses have reached it, so that every one of n concurrent uses finds the
// request_uri valid and tries to consume it: the interleaving a fast memory
// store otherwise rarely produces.
type pushedGate struct {
	store.Grants
	n int

	mu      sync.Mutex
	arrived int
	open    chan struct{}
}

// reset starts a new round.
func (g *pushedGate) reset() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.arrived, g.open = 0, make(chan struct{})
}

func (g *pushedGate) Delete(ctx context.Context, kind store.Kind, signature string) error {
	if kind == store.KindPushedRequest {
		g.mu.Lock()
		open := g.open
		if g.arrived++; g.arrived == g.n {
			close(open)
		}
		g.mu.Unlock()
		select {
		case <-open:
		case <-ctx.Done(): // StoreTimeout: the use then fails, and so does the test
			return ctx.Err()
		}
	}
	return g.Grants.Delete(ctx, kind, signature)
}

// TestPARConcurrentUse: of concurrent uses of one request_uri by a
// logged-in browser, all of which find it unused, exactly one gets a code;
// the others are sent back to the app with invalid_request_uri.
func TestPARConcurrentUse(t *testing.T) {
	t.Parallel()
	const n = 8
	gate := &pushedGate{n: n}
	ts := newTestServer(t, serverOptions{Grants: func(gr store.Grants) store.Grants { gate.Grants = gr; return gate }})
	b := newBrowser(t, ts)
	b.tokens(t, ts.oauth2Config(nativeClient, ts.loopbackRedirect(), "openid")) // logs in
	for round := range 3 {
		gate.reset()
		ar := newAuthRequest(ts.oauth2Config(nativeClient, ts.loopbackRedirect(), "openid"))
		ts.pushed(t, ar, nil)
		var (
			wg    sync.WaitGroup
			start = make(chan struct{})
			mu    sync.Mutex
			codes []string
			other []string
		)
		for range n {
			wg.Go(func() {
				<-start
				req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, ar.URL, nil)
				resp, err := b.client.Do(req)
				if err != nil {
					mu.Lock()
					other = append(other, err.Error())
					mu.Unlock()
					return
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				loc, _ := url.Parse(resp.Header.Get("Location"))
				mu.Lock()
				defer mu.Unlock()
				switch {
				case resp.StatusCode == http.StatusSeeOther && loc.Query().Get("code") != "":
					codes = append(codes, loc.Query().Get("code"))
				case resp.StatusCode == http.StatusSeeOther:
					// Lost the race to consume it: sent back to the app.
					other = append(other, loc.Query().Get("error"))
				default:
					other = append(other, resp.Status+" "+string(body))
				}
			})
		}
		close(start)
		wg.Wait()
		if len(codes) != 1 {
			t.Fatalf("round %d: %d uses got a code, want exactly 1 (others: %v)", round, len(codes), other)
		}
		for _, o := range other {
			if o != "invalid_request_uri" {
				t.Errorf("round %d: a losing use got %q, want invalid_request_uri", round, o)
			}
		}
		if _, err := ar.exchange(t.Context(), codes[0]); err != nil {
			t.Errorf("round %d: exchange the one code: %v", round, err)
		}
	}
}

// TestPARSQL runs a pushed request on the SQL stores: a client registered
// with RequirePAR (the column of schema version 11) is refused a direct
// request, and its pushed request, stored as a grant, opens one
// authorization to the tokens and no second.
func TestPARSQL(t *testing.T) {
	for _, backend := range []struct {
		name string
		open func(t *testing.T) *sqlstore.Store
	}{
		{"sqlite", func(t *testing.T) *sqlstore.Store {
			st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "pixie.db"), sqlstore.Config{KeySecret: testKeySecret})
			if err != nil {
				t.Fatalf("sqlite.Open: %v", err)
			}
			t.Cleanup(func() { _ = st.Close() })
			return st.Store
		}},
		{"postgres", func(t *testing.T) *sqlstore.Store {
			st, err := postgres.Open(t.Context(), pgtest.FreshSchema(t), sqlstore.Config{KeySecret: testKeySecret})
			if err != nil {
				t.Fatalf("postgres.Open: %v", err)
			}
			t.Cleanup(func() { _ = st.Close() })
			return st.Store
		}},
	} {
		t.Run(backend.name, func(t *testing.T) {
			t.Parallel()
			st := backend.open(t)
			seedStore(t, st)
			if err := st.AddClient(t.Context(), &store.Client{ID: parClient, Name: "PAR App",
				RedirectURIs: []string{loopbackURI}, Scopes: []string{"openid"}, Native: true, FirstParty: true, RequirePAR: true}); err != nil {
				t.Fatal(err)
			}
			logger, _ := testLogger(t, "server")
			ts := startSQLServer(t, st, nil, logger)
			b := newBrowser(t, ts)
			ar := newAuthRequest(ts.oauth2Config(parClient, ts.loopbackRedirect(), "openid"))
			wantRedirectError(t, ts, ar, b.get(t, ar.URL), "invalid_request")
			ts.pushed(t, ar, nil)
			wantCodeFor(t, ts, ar, b.authorize(t, ar.URL))
			wantShownError(t, b.get(t, ar.URL), "invalid_request_uri")
		})
	}
}

// testPendingPushed (of TestPendingLogin): a pushed request reaches the
// host app's login with only client_id and request_uri in the query;
// PendingLogin still shows what was pushed, and Complete resumes it to a
// code.
func testPendingPushed(t *testing.T, app *companyApp) {
	b := newBrowser(t, app.testServer)
	ar := authorizeWith(app.testServer, nativeClient, "openid profile", url.Values{"login_hint": {aliceUsername}})
	app.pushed(t, ar, nil)
	p := b.get(t, ar.URL)
	if p.Status != http.StatusOK || p.URL.Path != companyLoginPath {
		t.Fatalf("got status %d at %s, Location %q; want the company login page", p.Status, p.URL, p.Location)
	}
	if q := p.URL.Query(); len(q) != 2 || q.Get("request_uri") == "" || q.Get("client_id") != nativeClient {
		t.Errorf("company login query: got %v, want client_id and request_uri only", q)
	}
	f := b.parseForm(t, p)
	if got := f.Fields.Get("username"); got != aliceUsername {
		t.Errorf("got username %q pre-filled, want the pushed login_hint %q", got, aliceUsername)
	}
	wantCodeFor(t, app.testServer, ar, submitCompanyLogin(t, b, p, employeePassword, "login"))
}
