package handlers_test

import (
	"bytes"
	"context"
	cryptorand "crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/net/html"
	"golang.org/x/oauth2"

	"github.com/pixieauth/pixie/handlers"
	"github.com/pixieauth/pixie/provider"
	"github.com/pixieauth/pixie/store"
	"github.com/pixieauth/pixie/store/memory"
)

// The demo-like registrations every test server has (see example/server/demo.go).
const (
	aliceUsername = "alice"
	alicePassword = "correct horse battery staple"
	aliceName     = "Alice Example"
	aliceEmail    = "alice@example.com"

	nativeClient = "example-native" // public, native, first party
	otherClient  = "example-other"  // public, native, same redirect URIs
	apiClient    = "example-api"    // confidential, may introspect
	webClient    = "example-web"    // confidential, may not introspect; secret apiSecret
	// apiSecret has characters that RFC 6749 §2.3.1 form-encodes in HTTP
	// Basic credentials, so that the encoding is exercised.
	apiSecret = "api-secret/with+special=chars"

	loopbackURI     = "http://127.0.0.1/callback" // registered; any port matches
	customSchemeURI = "com.example.app:/oauth2redirect"

	allScopes = "openid profile email offline_access"
)

// testKeys returns signing keys generated once for the whole test binary:
// RSA key generation dominates provider.New, even more so under -race, and
// every test server may share the same keys without weakening any test.
var testKeys = sync.OnceValues(func() ([]store.Key, error) {
	st := memory.New()
	if _, err := provider.New(context.Background(), provider.Config{
		Issuer: "http://127.0.0.1", Clients: st, Users: st, Grants: st, Keys: st,
		Logger: slog.New(slog.DiscardHandler),
	}); err != nil {
		return nil, err
	}
	return st.Keys(context.Background())
})

// apiSecretHash hashes apiSecret once (argon2id costs tens of milliseconds).
var apiSecretHash = sync.OnceValues(func() (string, error) { return store.HashSecret(apiSecret) })

// serverOptions are the provider settings a test may change; the zero value
// gives the defaults.
type serverOptions struct {
	IDTokenAlg   string          // provider.Config.IDTokenAlg
	CodeLifespan time.Duration   // provider.Config.AuthorizeCodeLifespan
	Logger       *slog.Logger    // nil discards the logs
	Clients      []*store.Client // registered besides the demo ones
	// Grants, if set, wraps the memory store's grants (see casGate).
	Grants func(store.Grants) store.Grants
	// Middleware, if set, wraps the mux.
	Middleware func(http.Handler) http.Handler
	APIs       []provider.API  // provider.Config.APIs
	Rules      []provider.Rule // provider.Config.Rules
	// RuleTimeout is provider.Config.RuleTimeout.
	RuleTimeout time.Duration
	// GracePeriod is provider.Config.RefreshTokenGracePeriod.
	GracePeriod time.Duration
	// AccessTokenAlg is provider.Config.AccessTokenAlg.
	AccessTokenAlg string
	// Now is provider.Config.Now (the handlers' throttle reads it too).
	Now func() time.Time
	// IDTokenLifespan is provider.Config.IDTokenLifespan.
	IDTokenLifespan time.Duration
	// ACRValues is provider.Config.ACRValues.
	ACRValues []string
	// RequirePAR is provider.Config.RequirePAR.
	RequirePAR bool
	// Users, if set, wraps the memory store's users (to count or hold
	// Authenticate calls).
	Users func(store.Users) store.Users
	// Store, if set, is served instead of a fresh memory store: the store
	// of another test server, for a second replica. It already holds the
	// registrations, so Clients is ignored.
	Store *memory.Store
	// Handlers, if set, builds pixie with handlers.New and this Config
	// instead of handlers.Mount; testServer.Handlers is then the Server.
	Handlers *handlers.Config
	// Provider, if set, changes the provider's configuration last.
	Provider func(*provider.Config)
	// Routes, if set, registers the test's own handlers (a host app's
	// pages) on the mux; it gets the Server when Handlers is set, else nil.
	Routes func(mux *http.ServeMux, s *handlers.Server)
}

// testServer is pixie mounted on an http.ServeMux behind a real HTTP server,
// the issuer being the server's URL.
type testServer struct {
	URL      string // the issuer: http://127.0.0.1:PORT
	Server   *httptest.Server
	Provider *provider.Provider
	Store    *memory.Store
	Handlers *handlers.Server // set when serverOptions.Handlers is
}

// newTestServer starts a provider on a fresh memory store holding the demo
// registrations, mounted with handlers.Mount. It is closed when t ends.
func newTestServer(t *testing.T, opts serverOptions) *testServer {
	t.Helper()
	ts, err := startServer(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ts.Server.Close)
	return ts
}

// shared is the server with the default options that most tests share: they
// are independent of each other, each running its own authorization
// requests, and sharing spares a provider and two argon2id hashes per test
// (about 0.2 s under -race). TestMain closes it.
var shared struct {
	once sync.Once
	ts   *testServer
	err  error
}

// sharedServer returns the shared server, starting it on first use.
func sharedServer(t *testing.T) *testServer {
	t.Helper()
	shared.once.Do(func() { shared.ts, shared.err = startServer(context.Background(), serverOptions{}) })
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.ts
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.ts != nil {
		shared.ts.Server.Close()
	}
	os.Exit(code)
}

// startServer starts a test server; the caller closes it.
func startServer(ctx context.Context, opts serverOptions) (*testServer, error) {
	st := opts.Store
	if st == nil {
		st = memory.New()
		if err := addDemoRegistrations(ctx, st, opts.Clients); err != nil {
			return nil, err
		}
	}

	// The issuer must be the server's URL, known only once it listens: an
	// unstarted server already has its listener.
	srv := httptest.NewUnstartedServer(nil)
	issuer := "http://" + srv.Listener.Addr().String()
	var grants store.Grants = st
	if opts.Grants != nil {
		grants = opts.Grants(st)
	}
	var users store.Users = st
	if opts.Users != nil {
		users = opts.Users(st)
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg := provider.Config{
		Issuer:  issuer,
		Clients: st, Users: users, Grants: grants, Keys: st,
		IDTokenAlg:              opts.IDTokenAlg,
		AuthorizeCodeLifespan:   opts.CodeLifespan,
		IDTokenLifespan:         opts.IDTokenLifespan,
		Logger:                  logger,
		APIs:                    opts.APIs,
		Rules:                   opts.Rules,
		RuleTimeout:             opts.RuleTimeout,
		RefreshTokenGracePeriod: opts.GracePeriod,
		AccessTokenAlg:          opts.AccessTokenAlg,
		Now:                     opts.Now,
		ACRValues:               opts.ACRValues,
		RequirePAR:              opts.RequirePAR,
	}
	if opts.Provider != nil {
		opts.Provider(&cfg)
	}
	p, err := provider.New(ctx, cfg)
	if err != nil {
		srv.Close()
		return nil, fmt.Errorf("provider.New: %w", err)
	}
	mux := http.NewServeMux()
	var hs *handlers.Server
	if opts.Handlers != nil {
		if hs, err = handlers.New(p, *opts.Handlers); err != nil {
			srv.Close()
			return nil, fmt.Errorf("handlers.New: %w", err)
		}
		hs.Register(mux)
	} else if err := handlers.Mount(mux, p); err != nil {
		srv.Close()
		return nil, fmt.Errorf("handlers.Mount: %w", err)
	}
	if opts.Routes != nil {
		opts.Routes(mux, hs)
	}
	srv.Config.Handler = mux
	if opts.Middleware != nil {
		srv.Config.Handler = opts.Middleware(mux)
	}
	srv.Start()
	return &testServer{URL: issuer, Server: srv, Provider: p, Store: st, Handlers: hs}, nil
}

// addDemoRegistrations adds the demo registrations to st: the signing keys,
// alice, the demo clients and extra.
func addDemoRegistrations(ctx context.Context, st *memory.Store, extra []*store.Client) error {
	keys, err := testKeys()
	if err != nil {
		return fmt.Errorf("generate keys: %w", err)
	}
	for _, k := range keys {
		if err := st.AddKey(ctx, k.Clone()); err != nil {
			return fmt.Errorf("add key: %w", err)
		}
	}
	if err := st.AddUser(ctx, &store.User{
		Subject:           "alice",
		PreferredUsername: aliceUsername,
		Name:              aliceName,
		GivenName:         "Alice",
		FamilyName:        "Example",
		Email:             aliceEmail,
		EmailVerified:     true,
	}, aliceUsername, alicePassword); err != nil {
		return fmt.Errorf("add user: %w", err)
	}
	hash, err := apiSecretHash()
	if err != nil {
		return fmt.Errorf("hash secret: %w", err)
	}
	native := []string{loopbackURI, customSchemeURI}
	scopes := strings.Fields(allScopes)
	clients := []*store.Client{
		{ID: nativeClient, Name: "Example App", RedirectURIs: native, Scopes: scopes, Native: true, FirstParty: true},
		{ID: otherClient, Name: "Other App", RedirectURIs: native, Scopes: scopes, Native: true},
		{ID: apiClient, Name: "Example API", SecretHash: hash, Introspect: true},
		// A confidential client that may not introspect.
		{ID: webClient, Name: "Web App", SecretHash: hash, RedirectURIs: []string{"https://app.example.com/callback"}, Scopes: scopes},
	}
	for _, c := range append(clients, extra...) {
		if err := st.AddClient(ctx, c); err != nil {
			return fmt.Errorf("add client %s: %w", c.ID, err)
		}
	}
	return nil
}

// loopbackRedirect returns the registered loopback redirect URI with a port
// other than the server's, as a native app's local listener would have.
func (ts *testServer) loopbackRedirect() string {
	_, sp, _ := net.SplitHostPort(ts.Server.Listener.Addr().String())
	port := 49152 + rand.N(16000)
	if strconv.Itoa(port) == sp {
		port++
	}
	return "http://127.0.0.1:" + strconv.Itoa(port) + "/callback"
}

// oauth2Config is what a native app configures in golang.org/x/oauth2.
func (ts *testServer) oauth2Config(clientID, redirectURI, scopes string) *oauth2.Config {
	return &oauth2.Config{
		ClientID: clientID,
		Endpoint: oauth2.Endpoint{
			AuthURL:   ts.URL + handlers.PathAuthorize,
			TokenURL:  ts.URL + handlers.PathToken,
			AuthStyle: oauth2.AuthStyleInParams,
		},
		RedirectURL: redirectURI,
		Scopes:      strings.Fields(scopes),
	}
}

// oidcProvider discovers the provider with go-oidc.
func (ts *testServer) oidcProvider(t *testing.T) *oidc.Provider {
	t.Helper()
	op, err := oidc.NewProvider(t.Context(), ts.URL)
	if err != nil {
		t.Fatalf("oidc.NewProvider(%s): %v", ts.URL, err)
	}
	return op
}

// authRequest is one authorization request as a native app makes it.
type authRequest struct {
	Conf     *oauth2.Config
	State    string
	Nonce    string
	Verifier string
	URL      string // the authorization URL to open in the browser
}

// newAuthRequest builds an authorization request with S256 PKCE, state and
// nonce, using x/oauth2.
func newAuthRequest(conf *oauth2.Config) *authRequest {
	ar := &authRequest{
		Conf:     conf,
		State:    randomString(),
		Nonce:    randomString(),
		Verifier: oauth2.GenerateVerifier(),
	}
	ar.URL = conf.AuthCodeURL(ar.State, oauth2.S256ChallengeOption(ar.Verifier), oauth2.SetAuthURLParam("nonce", ar.Nonce))
	return ar
}

// exchange redeems code with x/oauth2, sending the request's verifier.
func (ar *authRequest) exchange(ctx context.Context, code string) (*oauth2.Token, error) {
	return ar.Conf.Exchange(ctx, code, oauth2.VerifierOption(ar.Verifier))
}

// authorizeURL builds an authorization URL by hand, for requests x/oauth2
// would not make.
func (ts *testServer) authorizeURL(q url.Values) string {
	return ts.URL + handlers.PathAuthorize + "?" + q.Encode()
}

// randomString returns a random string for state and nonce values.
func randomString() string { return cryptorand.Text() }

// browser is a user agent: it keeps cookies, follows redirects within the
// server and stops at a redirect leaving it (to the app's loopback port or
// custom scheme), as the system browser hands that URL to the app.
type browser struct {
	ts     *testServer
	client *http.Client
	// PasswordPosts counts the login forms submitted.
	PasswordPosts int
}

func newBrowser(t *testing.T, ts *testServer) *browser {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	origin, err := url.Parse(ts.URL)
	if err != nil {
		t.Fatal(err)
	}
	return &browser{ts: ts, client: &http.Client{
		Jar: jar,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if req.URL.Scheme != origin.Scheme || req.URL.Host != origin.Host {
				return http.ErrUseLastResponse
			}
			if len(via) >= 10 {
				return errors.New("browser: too many redirects")
			}
			return nil
		},
	}}
}

// page is the browser's view of the last response.
type page struct {
	Status int
	URL    *url.URL // the URL the page was served from (after in-server redirects)
	Header http.Header
	Body   string
	// Callback is the Location of a redirect that left the server (to the
	// client), or nil.
	Callback *url.URL
	// Location is the raw Location header of that redirect, or "".
	Location string
}

// IsLogin reports whether the page is the login form.
func (p *page) IsLogin() bool {
	return p.Status == http.StatusOK && p.URL.Path == handlers.PathLogin && p.Callback == nil
}

func (b *browser) do(t *testing.T, req *http.Request) *page {
	t.Helper()
	resp, err := b.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read %s: %v", req.URL, err)
	}
	p := &page{Status: resp.StatusCode, URL: resp.Request.URL, Header: resp.Header, Body: string(body)}
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		p.Location = resp.Header.Get("Location")
		u, err := url.Parse(p.Location)
		if err != nil {
			t.Fatalf("redirect to unparsable Location %q: %v", p.Location, err)
		}
		p.Callback = u
	}
	return p
}

// get opens a URL, following redirects within the server.
func (b *browser) get(t *testing.T, rawURL string) *page {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	return b.do(t, req)
}

// post submits a form as a same-origin browser does (Origin header set), or
// from origin when it is not empty.
func (b *browser) post(t *testing.T, rawURL string, form url.Values, origin string) *page {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, rawURL, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if origin == "" {
		origin = b.ts.URL
	}
	req.Header.Set("Origin", origin)
	return b.do(t, req)
}

// loginForm is the parsed login form.
type loginForm struct {
	Action string     // absolute URL the form posts to
	Fields url.Values // every named input with its value
	Error  string     // the text of the error alert, if any
}

// parseLoginForm parses the login page's form with x/net/html.
func (b *browser) parseLoginForm(t *testing.T, p *page) *loginForm {
	t.Helper()
	f := b.parseForm(t, p)
	for _, name := range []string{"csrf_token", "request"} {
		if f.Fields.Get(name) == "" {
			t.Fatalf("login form has no %s value", name)
		}
	}
	return f
}

// parseForm parses the one form of a page (pixie's or a host app's) with
// x/net/html.
func (b *browser) parseForm(t *testing.T, p *page) *loginForm {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(p.Body))
	if err != nil {
		t.Fatalf("parse page %s: %v", p.URL, err)
	}
	f := &loginForm{Fields: url.Values{}}
	var inForm bool
	for n := range doc.Descendants() {
		if n.Type != html.ElementNode {
			continue
		}
		switch n.Data {
		case "form":
			if inForm {
				t.Fatalf("page %s has more than one form", p.URL)
			}
			inForm = true
			action, err := p.URL.Parse(attr(n, "action"))
			if err != nil {
				t.Fatalf("form action %q: %v", attr(n, "action"), err)
			}
			f.Action = action.String()
		case "input":
			if name := attr(n, "name"); name != "" {
				f.Fields.Set(name, attr(n, "value"))
			}
		case "div":
			if attr(n, "role") == "alert" {
				f.Error = strings.TrimSpace(textOf(n))
			}
		}
	}
	if !inForm {
		t.Fatalf("no form on page %s (status %d):\n%s", p.URL, p.Status, p.Body)
	}
	return f
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

func textOf(n *html.Node) string {
	var sb strings.Builder
	for d := range n.Descendants() {
		if d.Type == html.TextNode {
			sb.WriteString(d.Data)
		}
	}
	return sb.String()
}

// submitLogin fills in the login form on p and submits it.
func (b *browser) submitLogin(t *testing.T, p *page, username, password string) *page {
	t.Helper()
	f := b.parseLoginForm(t, p)
	f.Fields.Set("username", username)
	f.Fields.Set("password", password)
	b.PasswordPosts++
	return b.post(t, f.Action, f.Fields, "")
}

// authorize opens an authorization URL and, if the login page comes up,
// signs in as alice. It returns the last page: normally the redirect to the
// client, with Callback set.
func (b *browser) authorize(t *testing.T, authURL string) *page {
	t.Helper()
	p := b.get(t, authURL)
	if p.IsLogin() {
		p = b.submitLogin(t, p, aliceUsername, alicePassword)
	}
	return p
}

// code runs an authorization request to the redirect and returns the code,
// after checking that the redirect carries state and iss.
func (b *browser) code(t *testing.T, ar *authRequest) string {
	t.Helper()
	p := b.authorize(t, ar.URL)
	if p.Callback == nil {
		t.Fatalf("authorize: got status %d at %s, want a redirect to the client; body:\n%s", p.Status, p.URL, p.Body)
	}
	q := p.Callback.Query()
	if e := q.Get("error"); e != "" {
		t.Fatalf("authorize: got error %q (%s), want a code", e, q.Get("error_description"))
	}
	if got := q.Get("state"); got != ar.State {
		t.Fatalf("authorize: got state %q, want %q", got, ar.State)
	}
	if got := q.Get("iss"); got != b.ts.URL {
		t.Fatalf("authorize: got iss %q, want %q", got, b.ts.URL)
	}
	code := q.Get("code")
	if code == "" {
		t.Fatalf("authorize: got no code in %s", p.Location)
	}
	return code
}

// tokens runs a whole flow for the client and returns the token response.
func (b *browser) tokens(t *testing.T, conf *oauth2.Config) (*authRequest, *oauth2.Token) {
	t.Helper()
	ar := newAuthRequest(conf)
	tok, err := ar.exchange(t.Context(), b.code(t, ar))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	return ar, tok
}

// httpResult is a raw HTTP response.
type httpResult struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body as a JSON object, failing the test if it is not one.
func (r *httpResult) JSON(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("got body %q (status %d), want a JSON object: %v", r.Body, r.Status, err)
	}
	return m
}

// wantOAuthError checks an OAuth error response (RFC 6749 §5.2).
func (r *httpResult) wantOAuthError(t *testing.T, status int, code string) {
	t.Helper()
	if r.Status != status {
		t.Errorf("got status %d, want %d; body: %s", r.Status, status, r.Body)
	}
	if ct, _, _ := strings.Cut(r.Header.Get("Content-Type"), ";"); ct != "application/json" {
		t.Errorf("got Content-Type %q, want application/json", r.Header.Get("Content-Type"))
	}
	m := r.JSON(t)
	if got := m["error"]; got != code {
		t.Errorf("got error %v (%v), want %q", got, m["error_description"], code)
	}
	for _, k := range []string{"access_token", "id_token", "refresh_token"} {
		if _, ok := m[k]; ok {
			t.Errorf("error response has %s", k)
		}
	}
}

// send makes a raw HTTP request.
func send(t *testing.T, client *http.Client, req *http.Request) *httpResult {
	t.Helper()
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read %s: %v", req.URL, err)
	}
	return &httpResult{Status: resp.StatusCode, Header: resp.Header, Body: body}
}

// postForm POSTs a form to one of the server's endpoints; header may add or
// override headers.
func (ts *testServer) postForm(t *testing.T, path string, form url.Values, header http.Header) *httpResult {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, ts.URL+path, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range header {
		req.Header[k] = v
	}
	return send(t, nil, req)
}

// userinfo calls the UserInfo endpoint with the given Authorization header
// value ("" sends none).
func (ts *testServer) userinfo(t *testing.T, authorization string) *httpResult {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, ts.URL+handlers.PathUserInfo, nil)
	if err != nil {
		t.Fatal(err)
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	return send(t, nil, req)
}

// introspect calls the introspection endpoint as example-api (HTTP Basic,
// credentials form-encoded per RFC 6749 §2.3.1).
func (ts *testServer) introspect(t *testing.T, token string) map[string]any {
	t.Helper()
	h := http.Header{}
	h.Set("Authorization", basicAuth(apiClient, apiSecret))
	res := ts.postForm(t, handlers.PathIntrospect, url.Values{"token": {token}}, h)
	if res.Status != http.StatusOK {
		t.Fatalf("introspect: got status %d, want 200; body: %s", res.Status, res.Body)
	}
	return res.JSON(t)
}

func basicAuth(id, secret string) string {
	cred := url.QueryEscape(id) + ":" + url.QueryEscape(secret)
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(cred))
}

// refresh redeems a refresh token with x/oauth2.
func refresh(ctx context.Context, conf *oauth2.Config, refreshToken string) (*oauth2.Token, error) {
	return conf.TokenSource(ctx, &oauth2.Token{RefreshToken: refreshToken}).Token()
}

// wantRetrieveError checks that err is an OAuth error response from the token
// endpoint with the status and error code.
func wantRetrieveError(t *testing.T, err error, status int, code string) {
	t.Helper()
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		t.Fatalf("got error %v, want an *oauth2.RetrieveError %s", err, code)
	}
	if re.Response.StatusCode != status || re.ErrorCode != code {
		t.Errorf("got %d %q (%s), want %d %q", re.Response.StatusCode, re.ErrorCode, re.ErrorDescription, status, code)
	}
}

// jwtHeader decodes the JOSE header of a compact JWS without verifying it.
func jwtHeader(t *testing.T, token string) map[string]any {
	t.Helper()
	h, _, ok := strings.Cut(token, ".")
	if !ok {
		t.Fatalf("got %q, want a compact JWS", token)
	}
	raw, err := base64.RawURLEncoding.DecodeString(h)
	if err != nil {
		t.Fatalf("JWS header: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("JWS header: %v", err)
	}
	return m
}

// syncBuffer is a bytes.Buffer safe for the server's goroutines to write to
// while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// scopeSet splits a scope string into a sorted set.
func scopeSet(s string) []string {
	f := strings.Fields(s)
	slices.Sort(f)
	return slices.Compact(f)
}

// casGate is the memory store with its two compare-and-set steps of a code
// redemption held back: deleting the code's PKCE record and consuming the
// code. Each waits until every one of n concurrent redemptions has either
// reached the same step or finished, then all proceed together. The
// redemptions thus all find the code still unused at each step, the
// interleaving that exposes a check-then-act redemption (fosite #778), and
// that a fast in-memory store otherwise almost never produces. Serve the
// token endpoint through casGate.countFinished so that it knows which
// redemptions have finished.
type casGate struct {
	store.Grants
	n int

	mu       sync.Mutex
	finished int               // redemptions finished since the last reset
	steps    map[string]*stage // by step and signature
}

type stage struct {
	arrived int
	open    chan struct{}
}

func newCASGate(n int) *casGate { return &casGate{n: n, steps: map[string]*stage{}} }

func (g *casGate) wrap(gr store.Grants) store.Grants { g.Grants = gr; return g }

// reset starts a new round of n redemptions.
func (g *casGate) reset() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.finished, g.steps = 0, map[string]*stage{}
}

// countFinished counts the token requests h has finished serving.
func (g *casGate) countFinished(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r)
		if r.URL.Path == handlers.PathToken {
			g.mu.Lock()
			g.finished++
			g.release()
			g.mu.Unlock()
		}
	})
}

// release opens every step that all redemptions have reached or passed by.
// A redemption waiting at a step has not finished, so the two counts never
// overlap. g.mu must be held.
func (g *casGate) release() {
	for _, st := range g.steps {
		if st.arrived+g.finished >= g.n {
			select {
			case <-st.open:
			default:
				close(st.open)
			}
		}
	}
}

func (g *casGate) wait(ctx context.Context, step string) error {
	g.mu.Lock()
	st := g.steps[step]
	if st == nil {
		st = &stage{open: make(chan struct{})}
		g.steps[step] = st
	}
	st.arrived++
	g.release()
	g.mu.Unlock()
	select {
	case <-st.open:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (g *casGate) Delete(ctx context.Context, kind store.Kind, signature string) error {
	if kind == store.KindPKCE {
		if err := g.wait(ctx, "delete pkce "+signature); err != nil {
			return err
		}
	}
	return g.Grants.Delete(ctx, kind, signature)
}

func (g *casGate) Consume(ctx context.Context, kind store.Kind, signature string) error {
	if kind == store.KindAuthorizeCode {
		if err := g.wait(ctx, "consume code "+signature); err != nil {
			return err
		}
	}
	return g.Grants.Consume(ctx, kind, signature)
}

// redeemTogether POSTs body to the token endpoints at bases (request i goes
// to bases[i%len(bases)]), n requests released at once, and fails t unless
// exactly one gets tokens and every other 400 invalid_grant.
func redeemTogether(t *testing.T, client *http.Client, bases []string, n int, body string, round int) {
	t.Helper()
	start := make(chan struct{})
	outcome := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, bases[i%len(bases)]+handlers.PathToken, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		wg.Go(func() {
			<-start
			resp, err := client.Do(req)
			if err != nil {
				outcome[i] = err.Error()
				return
			}
			defer resp.Body.Close()
			var m map[string]any
			_ = json.NewDecoder(resp.Body).Decode(&m)
			outcome[i] = fmt.Sprint(resp.StatusCode)
			if resp.StatusCode != http.StatusOK {
				outcome[i] += fmt.Sprint(" ", m["error"])
			} else if m["access_token"] == nil {
				outcome[i] += " without access_token"
			}
		})
	}
	close(start)
	wg.Wait()
	got := map[string]int{}
	for _, o := range outcome {
		got[o]++
	}
	if want := map[string]int{"200": 1, "400 invalid_grant": n - 1}; !reflect.DeepEqual(got, want) {
		t.Errorf("round %d: got outcomes %v, want %v", round, got, want)
	}
}
