package handlers_test

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/gorilla/securecookie"

	"github.com/pixieauth/pixie/internal/engine"
	"github.com/pixieauth/pixie/provider"
)

// deriveKey is the key p derives for purpose, as the Server keys its
// cookies with: only package handlers may ask for it, through
// engine.Handlers.
func deriveKey(p *provider.Provider, purpose string) ([]byte, error) {
	return engine.Handlers(p).(interface{ DeriveKey(string) ([]byte, error) }).DeriveKey(purpose)
}

// TestLoginCookieFormat: the login cookie is sealed JSON, and a cookie
// sealed in gob (gorilla's default, written by earlier versions) still
// logs its user in: an upgrade logs nobody out.
func TestLoginCookieFormat(t *testing.T) {
	ts := newTestServer(t, serverOptions{})
	conf := ts.oauth2Config(nativeClient, ts.loopbackRedirect(), "openid")
	b := newBrowser(t, ts)
	b.code(t, newAuthRequest(conf)) // logs in
	u, _ := url.Parse(ts.URL)
	var cookie *http.Cookie
	for _, c := range b.client.Jar.Cookies(u) {
		if c.Name == "pixie_session" {
			cookie = c
		}
	}
	if cookie == nil {
		t.Fatal("no pixie_session cookie after login")
	}
	hashKey, err := deriveKey(ts.Provider, "login cookie mac")
	if err != nil {
		t.Fatal(err)
	}
	blockKey, err := deriveKey(ts.Provider, "login cookie encryption")
	if err != nil {
		t.Fatal(err)
	}
	var values map[string]any
	if err := securecookie.New(hashKey, blockKey).SetSerializer(securecookie.JSONEncoder{}).
		Decode("pixie_session", cookie.Value, &values); err != nil {
		t.Fatalf("the cookie is not sealed JSON: %v", err)
	}
	sid, _ := values["sid"].(string)
	if sid == "" {
		t.Fatalf("cookie values %v: no session ID", values)
	}

	old, err := securecookie.New(hashKey, blockKey).Encode("pixie_session", map[any]any{"sid": sid, "csrf": values["csrf"]})
	if err != nil {
		t.Fatal(err)
	}
	gob := newBrowser(t, ts)
	gob.client.Jar.SetCookies(u, []*http.Cookie{{Name: "pixie_session", Value: old, Path: "/"}})
	p := gob.get(t, newAuthRequest(conf).URL)
	if p.Callback == nil || p.Callback.Query().Get("code") == "" {
		t.Errorf("gob cookie: got status %d at %s, want a redirect with a code (still logged in)", p.Status, p.URL)
	}

	forged := newBrowser(t, ts)
	forged.client.Jar.SetCookies(u, []*http.Cookie{{Name: "pixie_session", Value: old[:len(old)-4] + "AAAA", Path: "/"}})
	if p := forged.get(t, newAuthRequest(conf).URL); !p.IsLogin() {
		t.Errorf("forged cookie: got status %d at %s, want the login page", p.Status, p.URL)
	}
}
