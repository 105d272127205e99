package handlers_test

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"golang.org/x/net/html"

	"github.com/pixieauth/pixie/handlers"
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
