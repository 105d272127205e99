package handlers_test

import (
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pixieauth/pixie/handlers"
	"github.com/pixieauth/pixie/internal/engine"
	"github.com/pixieauth/pixie/provider"
)

// Tests of bring-your-own login: Config.LoginURL sends users to the host
// app's login page, which finishes with Server.PendingLogin and
// Pending.Complete or Pending.Deny.

const (
	companyLoginPath = "/company/login"
	// employeePassword is what the company login accepts for alice; it is
	// not her pixie password.
	employeePassword = "employee badge 4711"
)

// companyLoginForm is the host app's login page: a username pre-filled from
// login_hint, a password, and the pending request carried in pixie_request.
var companyLoginForm = template.Must(template.New("company").Parse(`<!doctype html>
<title>ACME sign-in for {{.ClientName}}</title>
<form method="post" action="/company/login">
<input type="hidden" name="pixie_request" value="{{.Request}}">
<input type="text" name="username" value="{{.LoginHint}}">
<input type="password" name="password">
<input type="hidden" name="action" value="login">
</form>`))

// companyApp is a host app with its own login page on pixie's mux.
type companyApp struct {
	*testServer
	authTime time.Time // the AuthTime its logins report

	mu   sync.Mutex
	seen map[string]*handlers.Pending // the pending logins its login page showed, by state
}

// shown returns the pending login the login page showed for the
// authorization request with state.
func (app *companyApp) shown(t *testing.T, state string) *handlers.Pending {
	t.Helper()
	app.mu.Lock()
	defer app.mu.Unlock()
	p := app.seen[state]
	if p == nil {
		t.Fatalf("the company login page showed no pending login for state %q", state)
	}
	return p
}

// newCompanyApp starts pixie with LoginURL /company/login and the app's
// handlers: GET shows the form; POST checks employeePassword and completes
// the pending login as alice with amr [pwd otp], or denies it when action
// is cancel.
func newCompanyApp(t *testing.T) *companyApp {
	t.Helper()
	app := &companyApp{
		authTime: time.Now().Add(-30 * time.Second).Truncate(time.Second),
		seen:     map[string]*handlers.Pending{},
	}
	routes := func(mux *http.ServeMux, s *handlers.Server) {
		pending := func(w http.ResponseWriter, r *http.Request) *handlers.Pending {
			p, err := s.PendingLogin(r)
			if err != nil {
				status := http.StatusBadRequest
				if errors.Is(err, handlers.ErrNoPending) {
					status = http.StatusNotFound
				}
				http.Error(w, "no valid sign-in request", status)
				return nil
			}
			return p
		}
		mux.HandleFunc("GET "+companyLoginPath, func(w http.ResponseWriter, r *http.Request) {
			p := pending(w, r)
			if p == nil {
				return
			}
			if q, err := url.ParseQuery(p.Request()); err == nil {
				app.mu.Lock()
				app.seen[q.Get("state")] = p
				app.mu.Unlock()
			}
			data := struct{ ClientName, Request, LoginHint string }{p.ClientName, p.Request(), p.LoginHint}
			if err := companyLoginForm.Execute(w, data); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
			}
		})
		mux.HandleFunc("POST "+companyLoginPath, func(w http.ResponseWriter, r *http.Request) {
			p := pending(w, r)
			if p == nil {
				return
			}
			switch {
			case r.PostFormValue("action") == "cancel":
				p.Deny(w, r, "The user cancelled the sign-in.")
			case r.PostFormValue("username") != aliceUsername || r.PostFormValue("password") != employeePassword:
				http.Error(w, "wrong badge", http.StatusUnauthorized)
			default:
				p.Complete(w, r, provider.Login{Subject: "alice", AMR: []string{"pwd", "otp"}, AuthTime: app.authTime})
			}
		})
	}
	app.testServer = newTestServer(t, serverOptions{
		Handlers: &handlers.Config{LoginURL: companyLoginPath},
		Routes:   routes,
	})
	return app
}

// openCompanyLogin opens ar in b and checks that it lands on the company
// login page, with the authorization request in the query.
func (app *companyApp) openCompanyLogin(t *testing.T, b *browser, ar *authRequest) *page {
	t.Helper()
	p := b.get(t, ar.URL)
	if p.Status != http.StatusOK || p.URL.Path != companyLoginPath {
		t.Fatalf("got status %d at %s, Location %q; want the company login page", p.Status, p.URL, p.Location)
	}
	authURL, _ := url.Parse(ar.URL)
	for _, k := range []string{"client_id", "redirect_uri", "state", "nonce", "code_challenge", "scope"} {
		if got, want := p.URL.Query().Get(k), authURL.Query().Get(k); got != want {
			t.Errorf("company login query: got %s %q, want %q", k, got, want)
		}
	}
	return p
}

// submitCompanyLogin fills in the company login form.
func submitCompanyLogin(t *testing.T, b *browser, p *page, password, action string) *page {
	t.Helper()
	f := b.parseForm(t, p)
	if f.Fields.Get("pixie_request") == "" {
		t.Fatal("company form has no pixie_request")
	}
	f.Fields.Set("username", aliceUsername)
	f.Fields.Set("password", password)
	f.Fields.Set("action", action)
	return b.post(t, f.Action, f.Fields, "")
}

// TestPendingLogin runs the host app's login on one server, each case in
// its own browser.
func TestPendingLogin(t *testing.T) {
	t.Parallel()
	app := newCompanyApp(t)
	tests := []struct {
		name string
		run  func(t *testing.T, app *companyApp)
	}{
		{"complete", testPendingComplete},
		{"deny", testPendingDeny},
		{"max_age", testPendingMaxAge},
		{"prompt=none", testPendingPromptNone},
		{"invalid request", testPendingInvalid},
		{"pixie login form off", testPendingReplacesPixieLogin},
		{"pushed request", testPendingPushed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.run(t, app)
		})
	}
}

// testPendingComplete: the authorization request goes to the company login
// with the request in the query; PendingLogin shows the app what is asked;
// Complete resumes the flow to a code, and the ID token says who logged in,
// how and when, as the app told.
func testPendingComplete(t *testing.T, app *companyApp) {
	b := newBrowser(t, app.testServer)
	ar := authorizeWith(app.testServer, nativeClient, "openid profile", url.Values{"login_hint": {aliceUsername}})
	p := app.openCompanyLogin(t, b, ar)

	got := app.shown(t, ar.State)
	want := handlers.Pending{ClientID: nativeClient, ClientName: "Example App", Scopes: []string{"openid", "profile"}, LoginHint: aliceUsername}
	if got.ClientID != want.ClientID || got.ClientName != want.ClientName || !slices.Equal(got.Scopes, want.Scopes) || got.LoginHint != want.LoginHint {
		t.Errorf("got pending %+v, want client %q (%q), scopes %v, login_hint %q",
			*got, want.ClientID, want.ClientName, want.Scopes, want.LoginHint)
	}
	if f := b.parseForm(t, p); f.Fields.Get("username") != aliceUsername {
		t.Errorf("got username %q pre-filled, want the login_hint %q", f.Fields.Get("username"), aliceUsername)
	}

	// A wrong badge password: no session.
	if p := submitCompanyLogin(t, b, p, alicePassword, "login"); p.Status != http.StatusUnauthorized {
		t.Errorf("wrong password: got status %d, want the company's 401", p.Status)
	}
	p = app.openCompanyLogin(t, b, ar)

	p = submitCompanyLogin(t, b, p, employeePassword, "login")
	c := wantCodeFor(t, app.testServer, ar, p)
	if c.Subject != "alice" || !slices.Equal(c.AMR, []string{"pwd", "otp"}) || c.AuthTime != app.authTime.Unix() {
		t.Errorf("got sub %q, amr %v, auth_time %d; want alice, [pwd otp], %d", c.Subject, c.AMR, c.AuthTime, app.authTime.Unix())
	}

	// The session serves the next request without the company login.
	ar = authorizeWith(app.testServer, nativeClient, "openid", nil)
	if c := wantCodeFor(t, app.testServer, ar, b.get(t, ar.URL)); c.AuthTime != app.authTime.Unix() {
		t.Errorf("second request: got auth_time %d, want the session's %d", c.AuthTime, app.authTime.Unix())
	}
}

// testPendingMaxAge: the app's login (30 seconds old, as its AuthTime says)
// counts only if it satisfies the request's max_age (OIDC Core §3.1.2.1:
// the OP must re-authenticate a user whose login is older); the app must
// not get a code whose auth_time is older than it asked for.
func testPendingMaxAge(t *testing.T, app *companyApp) {
	tests := []struct {
		name     string
		maxAge   string
		wantCode bool
	}{
		{"older than the login", "3600", true},
		{"younger than the login", "10", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := newBrowser(t, app.testServer)
			ar := authorizeWith(app.testServer, nativeClient, "openid", url.Values{"max_age": {tt.maxAge}})
			p := submitCompanyLogin(t, b, app.openCompanyLogin(t, b, ar), employeePassword, "login")
			code := ""
			if p.Callback != nil {
				code = p.Callback.Query().Get("code")
			}
			if !tt.wantCode {
				if code != "" {
					c := exchangeIDToken(t, app.testServer, ar, code)
					t.Errorf("max_age=%s: got a code, auth_time %v ago; want the login asked again (or login_required), not a login older than max_age",
						tt.maxAge, time.Since(time.Unix(c.AuthTime, 0)).Round(time.Second))
				}
				return
			}
			if code == "" {
				t.Fatalf("got status %d at %s, Location %q; want a code", p.Status, p.URL, p.Location)
			}
			if c := exchangeIDToken(t, app.testServer, ar, code); c.AuthTime != app.authTime.Unix() {
				t.Errorf("got auth_time %d, want the app's %d", c.AuthTime, app.authTime.Unix())
			}
		})
	}
}

// testPendingDeny: Deny sends access_denied to the app.
func testPendingDeny(t *testing.T, app *companyApp) {
	b := newBrowser(t, app.testServer)
	ar := authorizeWith(app.testServer, nativeClient, "openid", nil)
	p := submitCompanyLogin(t, b, app.openCompanyLogin(t, b, ar), "", "cancel")
	wantRedirectError(t, app.testServer, ar, p, "access_denied")
	if got := p.Callback.Query().Get("error_description"); got != "The user cancelled the sign-in." {
		t.Errorf("got error_description %q, want the app's", got)
	}
}

// testPendingPromptNone: prompt=none without a session is answered with
// login_required, not sent to the company login.
func testPendingPromptNone(t *testing.T, app *companyApp) {
	ar := authorizeWith(app.testServer, nativeClient, "openid", url.Values{"prompt": {"none"}})
	wantRedirectError(t, app.testServer, ar, newBrowser(t, app.testServer).get(t, ar.URL), "login_required")
}

// testPendingInvalid: PendingLogin validates the request again, so a
// request altered on its way through the host app fails, and a request
// without one gets ErrNoPending.
func testPendingInvalid(t *testing.T, app *companyApp) {
	b := newBrowser(t, app.testServer)
	ar := authorizeWith(app.testServer, nativeClient, "openid", nil)
	valid := app.openCompanyLogin(t, b, ar).URL.Query()

	tests := []struct {
		name   string
		query  func() url.Values // the company login page's query
		inForm bool              // sent as the posted pixie_request instead
		// wantNoPending: ErrNoPending; else an *engine.AuthorizeError,
		// redirectable to the app when wantRedirect.
		wantNoPending bool
		wantRedirect  bool
	}{
		{"no request", func() url.Values { return nil }, false, true, false},
		{"unrelated query", func() url.Values { return url.Values{"lang": {"en"}} }, false, true, false},
		{"redirect_uri changed", func() url.Values { q := clone(valid); q.Set("redirect_uri", "https://evil.example/cb"); return q }, false, false, false},
		{"redirect_uri changed in the form", func() url.Values { q := clone(valid); q.Set("redirect_uri", "https://evil.example/cb"); return q }, true, false, false},
		{"unknown client", func() url.Values { q := clone(valid); q.Set("client_id", "no-such-app"); return q }, false, false, false},
		{"PKCE removed", func() url.Values { q := clone(valid); q.Del("code_challenge"); return q }, false, false, true},
		{"scope not allowed", func() url.Values { q := clone(valid); q.Set("scope", "openid admin"); return q }, false, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			target := app.URL + companyLoginPath
			var req *http.Request
			var err error
			if tt.inForm {
				body := url.Values{"pixie_request": {tt.query().Encode()}, "username": {aliceUsername}}.Encode()
				req, err = http.NewRequestWithContext(t.Context(), http.MethodPost, target, strings.NewReader(body))
				if err == nil {
					req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				}
			} else {
				if q := tt.query(); len(q) > 0 {
					target += "?" + q.Encode()
				}
				req, err = http.NewRequestWithContext(t.Context(), http.MethodGet, target, nil)
			}
			if err != nil {
				t.Fatal(err)
			}
			pending, err := app.Handlers.PendingLogin(req)
			if err == nil {
				t.Fatalf("got pending %+v, want an error", *pending)
			}
			if got := errors.Is(err, handlers.ErrNoPending); got != tt.wantNoPending {
				t.Fatalf("got error %v, want ErrNoPending %t", err, tt.wantNoPending)
			}
			if tt.wantNoPending {
				return
			}
			ae, ok := errors.AsType[*engine.AuthorizeError](err)
			if !ok {
				t.Fatalf("got error %T %v, want an *engine.AuthorizeError", err, err)
			}
			if got := ae.RedirectURL != ""; got != tt.wantRedirect {
				t.Errorf("got RedirectURL %q, want one %t", ae.RedirectURL, tt.wantRedirect)
			}
		})
	}

	// Through the app's page too: it gets the error, and nobody logs in.
	t.Run("over HTTP", func(t *testing.T) {
		q := clone(valid)
		q.Set("redirect_uri", "https://evil.example/cb")
		if p := b.get(t, app.URL+companyLoginPath+"?"+q.Encode()); p.Status != http.StatusBadRequest {
			t.Errorf("got status %d, want the app's 400", p.Status)
		}
		if p := b.get(t, app.URL+companyLoginPath); p.Status != http.StatusNotFound {
			t.Errorf("no request: got status %d, want the app's 404 for ErrNoPending", p.Status)
		}
	})
}

func clone(q url.Values) url.Values {
	c := url.Values{}
	for k, v := range q {
		c[k] = slices.Clone(v)
	}
	return c
}

// testPendingReplacesPixieLogin: with LoginURL set, pixie's own password
// form is not a way around the host app's login (its second factor):
// posting alice's pixie password to /login must not log her in.
func testPendingReplacesPixieLogin(t *testing.T, app *companyApp) {
	b := newBrowser(t, app.testServer)
	ar := authorizeWith(app.testServer, nativeClient, "openid", nil)
	p := b.get(t, app.URL+handlers.PathLogin+"?"+mustQuery(t, ar.URL).Encode())
	if p.Status == http.StatusOK && p.URL.Path == handlers.PathLogin {
		p = b.submitLogin(t, p, aliceUsername, alicePassword)
		if p.Callback != nil {
			t.Errorf("pixie's /login with LoginURL set: got a redirect to %s after a password alone, want no login", p.Location)
		}
	}
	// Whatever /login did, the request must still go to the company login.
	p = b.get(t, ar.URL)
	if p.URL.Path != companyLoginPath {
		t.Errorf("got status %d at %s, Location %q; want the company login page: pixie's /login logged alice in with amr [pwd], bypassing the host app's login", p.Status, p.URL, p.Location)
	}
}

func mustQuery(t *testing.T, rawURL string) url.Values {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query()
}
