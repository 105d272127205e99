package frameworks_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/gin-gonic/gin"
	"github.com/go-chi/chi/v5"
	"github.com/gorilla/mux"
	"github.com/labstack/echo/v4"
	"golang.org/x/net/html"
	"golang.org/x/oauth2"

	"github.com/pixieauth/pixie/example/frameworks/echopixie"
	"github.com/pixieauth/pixie/example/frameworks/ginpixie"
	"github.com/pixieauth/pixie/example/frameworks/gorillapixie"
	"github.com/pixieauth/pixie/example/frameworks/internal/demo"
	"github.com/pixieauth/pixie/handlers"
	"github.com/pixieauth/pixie/middleware"
	"github.com/pixieauth/pixie/provider"
)

// framework is one router with pixie and the test API on it.
type framework struct {
	name string
	// app builds the router. With srv nil, pixie is mounted at the root
	// with handlers.Mount(…, p); otherwise srv is mounted under /auth, the
	// issuer's path. Either way the API answers GET /api/messages (needs
	// read:messages) and POST /api/messages (needs write:messages) with
	// the verified token's subject.
	app func(p *provider.Provider, srv *handlers.Server, v *middleware.Verifier) (http.Handler, error)
}

// subject answers with the subject of the token RequireToken verified.
func subject(w http.ResponseWriter, r *http.Request) {
	tok, ok := middleware.TokenFrom(r.Context())
	if !ok {
		http.Error(w, "no token in the request context", http.StatusInternalServerError)
		return
	}
	io.WriteString(w, tok.Subject)
}

var frameworks = []framework{
	{
		name: "servemux",
		app: func(p *provider.Provider, srv *handlers.Server, v *middleware.Verifier) (http.Handler, error) {
			r := http.NewServeMux()
			if srv == nil {
				if err := handlers.Mount(r, p); err != nil {
					return nil, err
				}
			} else {
				r.Handle("/auth/", http.StripPrefix("/auth", srv))
			}
			r.Handle("GET /api/messages", middleware.RequireToken(v, "read:messages")(http.HandlerFunc(subject)))
			r.Handle("POST /api/messages", middleware.RequireToken(v, "write:messages")(http.HandlerFunc(subject)))
			return r, nil
		},
	},
	{
		name: "chi",
		app: func(p *provider.Provider, srv *handlers.Server, v *middleware.Verifier) (http.Handler, error) {
			r := chi.NewRouter()
			if srv == nil {
				if err := handlers.Mount(r, p); err != nil {
					return nil, err
				}
			} else {
				r.Handle("/auth/*", http.StripPrefix("/auth", srv))
			}
			r.With(middleware.RequireToken(v, "read:messages")).Get("/api/messages", subject)
			r.With(middleware.RequireToken(v, "write:messages")).Post("/api/messages", subject)
			return r, nil
		},
	},
	{
		name: "gorilla",
		app: func(p *provider.Provider, srv *handlers.Server, v *middleware.Verifier) (http.Handler, error) {
			r := mux.NewRouter()
			if srv == nil {
				if err := handlers.Mount(gorillapixie.Router(r), p); err != nil {
					return nil, err
				}
			} else {
				r.PathPrefix("/auth/").Handler(http.StripPrefix("/auth", srv))
			}
			read := r.Methods("GET").Subrouter()
			read.Use(middleware.RequireToken(v, "read:messages"))
			read.HandleFunc("/api/messages", subject)
			write := r.Methods("POST").Subrouter()
			write.Use(middleware.RequireToken(v, "write:messages"))
			write.HandleFunc("/api/messages", subject)
			return r, nil
		},
	},
	{
		name: "gin",
		app: func(p *provider.Provider, srv *handlers.Server, v *middleware.Verifier) (http.Handler, error) {
			r := gin.New()
			if srv == nil {
				if err := handlers.Mount(ginpixie.Router(r), p); err != nil {
					return nil, err
				}
			} else {
				r.Any("/auth/*path", gin.WrapH(http.StripPrefix("/auth", srv)))
			}
			answer := func(c *gin.Context) { subject(c.Writer, c.Request) }
			r.GET("/api/messages", ginpixie.RequireToken(v, "read:messages"), answer)
			r.POST("/api/messages", ginpixie.RequireToken(v, "write:messages"), answer)
			return r, nil
		},
	},
	{
		name: "echo",
		app: func(p *provider.Provider, srv *handlers.Server, v *middleware.Verifier) (http.Handler, error) {
			e := echo.New()
			if srv == nil {
				if err := handlers.Mount(echopixie.Router(e), p); err != nil {
					return nil, err
				}
			} else {
				e.Any("/auth/*", echo.WrapHandler(http.StripPrefix("/auth", srv)))
			}
			answer := func(c echo.Context) error { subject(c.Response(), c.Request()); return nil }
			e.GET("/api/messages", answer, echo.WrapMiddleware(middleware.RequireToken(v, "read:messages")))
			e.POST("/api/messages", answer, echo.WrapMiddleware(middleware.RequireToken(v, "write:messages")))
			return e, nil
		},
	},
}

func TestMain(m *testing.M) {
	gin.SetMode(gin.ReleaseMode) // no route listing on stdout
	m.Run()
}

// TestFrameworks runs the whole flow on every framework, with the issuer at
// the server's root and under /auth: discovery and JWKS, the authorization
// request through the login page to the code, the token exchange with
// x/oauth2, userinfo, and the API that RequireToken protects.
func TestFrameworks(t *testing.T) {
	for _, fw := range frameworks {
		for _, prefix := range []string{"", "/auth"} {
			name := fw.name + "/root"
			if prefix != "" {
				name = fw.name + "/prefix"
			}
			t.Run(name, func(t *testing.T) {
				ts := httptest.NewUnstartedServer(nil)
				base := "http://" + ts.Listener.Addr().String()
				p, v, err := demo.New(t.Context(), base+prefix)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(v.Close)
				var srv *handlers.Server
				if prefix != "" {
					if srv, err = handlers.New(p, handlers.Config{}); err != nil {
						t.Fatal(err)
					}
				}
				h, err := fw.app(p, srv, v)
				if err != nil {
					t.Fatalf("mount: %v", err)
				}
				ts.Config.Handler = h
				ts.Start()
				t.Cleanup(ts.Close)
				runFlow(t, base, base+prefix)
			})
		}
	}
}

// runFlow drives pixie at issuer, on the server at base, as an app and its
// user's browser do, and calls the API at base/api/messages.
func runFlow(t *testing.T, base, issuer string) {
	ctx := t.Context()
	issuerPath := strings.TrimPrefix(issuer, base)

	// Discovery and JWKS.
	var meta struct {
		Issuer   string `json:"issuer"`
		Authz    string `json:"authorization_endpoint"`
		Token    string `json:"token_endpoint"`
		UserInfo string `json:"userinfo_endpoint"`
		JWKS     string `json:"jwks_uri"`
	}
	getJSON(t, issuer+"/.well-known/openid-configuration", &meta)
	want := struct{ Issuer, Authz, Token, UserInfo, JWKS string }{
		issuer, issuer + "/authorize", issuer + "/oauth/token", issuer + "/userinfo", issuer + "/.well-known/jwks.json",
	}
	if got := (struct{ Issuer, Authz, Token, UserInfo, JWKS string }{meta.Issuer, meta.Authz, meta.Token, meta.UserInfo, meta.JWKS}); got != want {
		t.Fatalf("discovery: got %+v, want %+v", got, want)
	}
	var rfc8414 struct {
		Issuer string `json:"issuer"`
	}
	if getJSON(t, issuer+"/.well-known/oauth-authorization-server", &rfc8414); rfc8414.Issuer != issuer {
		t.Errorf("oauth-authorization-server: got issuer %q, want %q", rfc8414.Issuer, issuer)
	}
	var jwks struct {
		Keys []struct {
			Kid string `json:"kid"`
			Use string `json:"use"`
		} `json:"keys"`
	}
	if getJSON(t, meta.JWKS, &jwks); len(jwks.Keys) == 0 || jwks.Keys[0].Kid == "" || jwks.Keys[0].Use != "sig" {
		t.Fatalf("jwks: got %+v, want signing keys with kid", jwks)
	}
	op, err := oidc.NewProvider(ctx, issuer) // checks the issuer too
	if err != nil {
		t.Fatalf("oidc.NewProvider: %v", err)
	}

	// The token endpoint takes every method at the router, so that pixie,
	// not the framework, answers a GET: with an OAuth error.
	var tokErr struct {
		Error string `json:"error"`
	}
	if status := getJSON(t, issuer+"/oauth/token", &tokErr); status < 400 || status >= 500 || tokErr.Error == "" {
		t.Errorf("GET token endpoint: got %d %+v, want an OAuth error from pixie", status, tokErr)
	}

	// And the methods a route's pattern names are the only ones it serves.
	del, err := http.NewRequestWithContext(ctx, http.MethodDelete, meta.JWKS, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp, body := do(t, http.DefaultClient, del); resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("DELETE %s: got %d %s, want 404 or 405 from the router", meta.JWKS, resp.StatusCode, body)
	}

	// The authorization request, the login page, the code.
	b := newBrowser(t, base)
	endpoint := op.Endpoint()
	endpoint.AuthStyle = oauth2.AuthStyleInParams
	conf := &oauth2.Config{
		ClientID: demo.ClientID, Endpoint: endpoint,
		RedirectURL: "http://127.0.0.1:5000/callback",
		Scopes:      []string{"openid", "profile", "email"},
	}
	verifier, nonce := oauth2.GenerateVerifier(), "nonce-"+oauth2.GenerateVerifier()
	resp, body := b.do(t, get(t, conf.AuthCodeURL("state-one", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("nonce", nonce))))
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != issuerPath+handlers.PathLogin {
		t.Fatalf("authorize: got %d at %s, want the login page at %s", resp.StatusCode, resp.Request.URL.Path, issuerPath+handlers.PathLogin)
	}
	action, fields := loginForm(t, resp.Request.URL, body)
	if action.Path != issuerPath+handlers.PathLogin {
		t.Errorf("login form: action %s, want %s", action, issuerPath+handlers.PathLogin)
	}
	fields.Set("username", demo.Username)
	fields.Set("password", demo.Password)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, action.String(), strings.NewReader(fields.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", base)
	code := callbackCode(t, issuer, "state-one", req, b)

	// The token exchange, with x/oauth2, and the ID token.
	tok, err := conf.Exchange(ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	rawID, _ := tok.Extra("id_token").(string)
	idt, err := op.Verifier(&oidc.Config{ClientID: demo.ClientID}).Verify(ctx, rawID) // against the JWKS
	if err != nil {
		t.Fatalf("ID token: %v", err)
	}
	if idt.Subject != demo.Subject || idt.Nonce != nonce {
		t.Errorf("ID token: got sub %q nonce %q, want %q %q", idt.Subject, idt.Nonce, demo.Subject, nonce)
	}

	// Userinfo.
	ui, err := op.UserInfo(ctx, oauth2.StaticTokenSource(tok))
	if err != nil {
		t.Fatalf("userinfo: %v", err)
	}
	if ui.Subject != demo.Subject || ui.Email != "alice@example.com" {
		t.Errorf("userinfo: got sub %q email %q, want %q alice@example.com", ui.Subject, ui.Email, demo.Subject)
	}

	// A token for the API, with read:messages only: the login session
	// answers this request without the login page.
	conf.Scopes = []string{"openid", "read:messages"}
	verifier = oauth2.GenerateVerifier()
	code = callbackCode(t, issuer, "state-two",
		get(t, conf.AuthCodeURL("state-two", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("audience", demo.API))), b)
	apiTok, err := conf.Exchange(ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange for the API: %v", err)
	}

	// The API behind RequireToken.
	tests := []struct {
		name          string
		method        string
		token         string
		wantStatus    int
		wantChallenge string // in WWW-Authenticate
	}{
		{"the scope it needs", http.MethodGet, apiTok.AccessToken, http.StatusOK, ""},
		{"a scope it lacks", http.MethodPost, apiTok.AccessToken, http.StatusForbidden, `error="insufficient_scope"`},
		{"no token", http.MethodGet, "", http.StatusUnauthorized, `Bearer realm="` + demo.API + `"`},
		{"a token for userinfo, not the API", http.MethodGet, tok.AccessToken, http.StatusUnauthorized, `error="invalid_token"`},
	}
	for _, tc := range tests {
		req, err := http.NewRequestWithContext(ctx, tc.method, base+"/api/messages", nil)
		if err != nil {
			t.Fatal(err)
		}
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		resp, body := do(t, http.DefaultClient, req)
		if resp.StatusCode != tc.wantStatus {
			t.Errorf("%s: %s /api/messages: got %d %s, want %d", tc.name, tc.method, resp.StatusCode, body, tc.wantStatus)
			continue
		}
		challenge := resp.Header.Get("WWW-Authenticate")
		if tc.wantStatus == http.StatusOK {
			if body != demo.Subject || challenge != "" {
				t.Errorf("%s: got body %q, WWW-Authenticate %q; want the subject %q from TokenFrom", tc.name, body, challenge, demo.Subject)
			}
			continue
		}
		if !strings.Contains(challenge, tc.wantChallenge) {
			t.Errorf("%s: got WWW-Authenticate %q, want it to contain %s", tc.name, challenge, tc.wantChallenge)
		}
		if tc.wantStatus == http.StatusForbidden && !strings.Contains(challenge, `scope="write:messages"`) {
			t.Errorf("%s: got WWW-Authenticate %q, want the needed scope", tc.name, challenge)
		}
		// Only RequireToken's JSON error: the handler did not run.
		var refusal struct {
			Error string `json:"error"`
		}
		if err := json.Unmarshal([]byte(body), &refusal); err != nil || (refusal.Error != "" && !strings.Contains(challenge, `error="`+refusal.Error+`"`)) {
			t.Errorf("%s: got body %q, want only the error the challenge names (%v)", tc.name, body, err)
		}
	}
}

// browser is a user agent with cookies that follows redirects on the
// server's origin and stops at one leaving it: the authorization response
// the browser hands to the app.
type browser struct{ client *http.Client }

func newBrowser(t *testing.T, origin string) *browser {
	t.Helper()
	o, err := url.Parse(origin)
	if err != nil {
		t.Fatal(err)
	}
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &browser{client: &http.Client{Jar: jar, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if req.URL.Host != o.Host || len(via) >= 10 {
			return http.ErrUseLastResponse
		}
		return nil
	}}}
}

func (b *browser) do(t *testing.T, req *http.Request) (*http.Response, string) {
	t.Helper()
	return do(t, b.client, req)
}

// callbackCode sends req with the browser and returns the code of the
// redirect to the app, after checking its state and iss (RFC 9207).
func callbackCode(t *testing.T, issuer, state string, req *http.Request, b *browser) string {
	t.Helper()
	resp, body := b.do(t, req)
	loc, err := resp.Location()
	if resp.StatusCode/100 != 3 || err != nil || loc.Host != "127.0.0.1:5000" {
		t.Fatalf("%s %s: got %d %s, want a redirect to the app; body:\n%s", req.Method, req.URL.Path, resp.StatusCode, resp.Header.Get("Location"), body)
	}
	q := loc.Query()
	if q.Get("code") == "" || q.Get("state") != state || q.Get("iss") != issuer {
		t.Fatalf("redirect to the app: got %s, want a code, state %q and iss %q", loc.Redacted(), state, issuer)
	}
	return q.Get("code")
}

// loginForm returns the login page's form action and its fields: the hidden
// csrf_token and request, which must be set.
func loginForm(t *testing.T, page *url.URL, body string) (*url.URL, url.Values) {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var action *url.URL
	fields := url.Values{}
	for n := range doc.Descendants() {
		if n.Type != html.ElementNode {
			continue
		}
		switch n.Data {
		case "form":
			if action, err = page.Parse(attr(n, "action")); err != nil {
				t.Fatalf("login form action: %v", err)
			}
		case "input":
			if name := attr(n, "name"); name != "" {
				fields.Set(name, attr(n, "value"))
			}
		}
	}
	if action == nil || fields.Get("csrf_token") == "" || fields.Get("request") == "" {
		t.Fatalf("login page: got form action %v fields %v, want a form with csrf_token and request:\n%s", action, fields, body)
	}
	return action, fields
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

func get(t *testing.T, rawURL string) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// getJSON GETs rawURL, decodes the JSON body into v and returns the status.
func getJSON(t *testing.T, rawURL string, v any) int {
	t.Helper()
	resp, body := do(t, http.DefaultClient, get(t, rawURL))
	if ct := resp.Header.Get("Content-Type"); !strings.Contains(ct, "json") {
		t.Fatalf("GET %s: got %d, Content-Type %q, want JSON; body:\n%s", rawURL, resp.StatusCode, ct, body)
	}
	if err := json.Unmarshal([]byte(body), v); err != nil {
		t.Fatalf("GET %s: %v", rawURL, err)
	}
	return resp.StatusCode
}

func do(t *testing.T, c *http.Client, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Redacted(), err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}
