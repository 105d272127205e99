package handlers_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/pixieauth/pixie/store"
)

// TestRefreshTokenIsNotABearerToken checks that only access tokens open
// /userinfo: a refresh token is a credential for the token endpoint alone,
// where a confidential client must also authenticate (issue 8, finding 1).
func TestRefreshTokenIsNotABearerToken(t *testing.T) {
	t.Parallel()
	hash, err := apiSecretHash()
	if err != nil {
		t.Fatal(err)
	}
	const firstPartyWeb = "first-party-web"
	ts := newTestServer(t, serverOptions{Clients: []*store.Client{{
		ID: firstPartyWeb, SecretHash: hash, FirstParty: true,
		RedirectURIs: []string{"https://app.example.com/callback"}, Scopes: strings.Fields(allScopes),
	}}})
	tests := []struct {
		name   string
		client string
		secret string // "" for a public client
		uri    string
	}{
		{"public native client", nativeClient, "", ts.loopbackRedirect()},
		{"confidential client", firstPartyWeb, apiSecret, "https://app.example.com/callback"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conf := ts.oauth2Config(tt.client, tt.uri, allScopes)
			conf.ClientSecret = tt.secret
			b := newBrowser(t, ts)
			_, tok := b.tokens(t, conf)
			if tok.RefreshToken == "" {
				t.Fatal("got no refresh token")
			}
			if res := ts.userinfo(t, "Bearer "+tok.AccessToken); res.Status != http.StatusOK {
				t.Fatalf("access token at userinfo: got %d, want 200; body: %s", res.Status, res.Body)
			}
			res := ts.userinfo(t, "Bearer "+tok.RefreshToken)
			if res.Status != http.StatusUnauthorized {
				t.Fatalf("refresh token at userinfo: got %d, want 401; body: %s", res.Status, res.Body)
			}
			if wa := res.Header.Get("WWW-Authenticate"); !strings.Contains(wa, `error="invalid_token"`) {
				t.Errorf("got WWW-Authenticate %q, want error=\"invalid_token\"", wa)
			}
		})
	}
}

// TestLogoutUsesClientValidation checks that /logout looks clients up
// through the provider's checks: a registration /authorize refuses (here a
// custom-scheme redirect URI on a client that is not native) gets no
// post-logout redirect either (finding 12).
func TestLogoutUsesClientValidation(t *testing.T) {
	t.Parallel()
	const broken, bye = "broken-registration", "https://app.example.com/bye"
	ts := newTestServer(t, serverOptions{Clients: []*store.Client{{
		ID: broken, RedirectURIs: []string{customSchemeURI}, PostLogoutRedirectURIs: []string{bye},
		Scopes: strings.Fields(allScopes), FirstParty: true,
	}}})
	b := newBrowser(t, ts)
	q := pkceQuery(ts)
	q.Set("client_id", broken)
	q.Set("redirect_uri", customSchemeURI)
	if p := b.get(t, ts.authorizeURL(q)); p.Callback != nil {
		t.Fatalf("authorize: got a redirect to %s for a client that breaks the rules", p.Location)
	}
	p := b.get(t, ts.logoutURL(url.Values{"client_id": {broken}, "post_logout_redirect_uri": {bye}, "state": {"s"}}))
	if p.Callback != nil {
		t.Fatalf("logout: got a redirect to %s for a client /authorize refuses", p.Location)
	}
	if p.Status != http.StatusBadRequest {
		t.Errorf("logout: got status %d, want 400", p.Status)
	}
}

// TestLoopbackRedirectExact checks redirect URI matching (finding 8): only
// the port of a native client's http loopback URI may vary (RFC 8252 §7.3,
// RFC 9700 §4.1.1); everything else must be the registered string. A
// refused redirect_uri gets an error page, never a redirect, even for a
// logged-in user.
func TestLoopbackRedirectExact(t *testing.T) {
	t.Parallel()
	const confidential = "confidential-loopback"
	hash, err := apiSecretHash()
	if err != nil {
		t.Fatal(err)
	}
	ts := newTestServer(t, serverOptions{Clients: []*store.Client{{
		ID: confidential, SecretHash: hash, FirstParty: true,
		RedirectURIs: []string{"https://127.0.0.1/cb"}, Scopes: strings.Fields(allScopes),
	}}})
	b := newBrowser(t, ts)
	b.code(t, newAuthRequest(ts.oauth2Config(nativeClient, ts.loopbackRedirect(), "openid"))) // log in

	tests := []struct {
		name     string
		client   string
		redirect string
		want     bool // a code
	}{
		{"registered, no port", nativeClient, "http://127.0.0.1/callback", true},
		{"registered with a port", nativeClient, "http://127.0.0.1:51234/callback", true},
		{"port 65535", nativeClient, "http://127.0.0.1:65535/callback", true},
		{"port 0", nativeClient, "http://127.0.0.1:0/callback", false},
		{"port 99999", nativeClient, "http://127.0.0.1:99999/callback", false},
		{"port with a leading zero", nativeClient, "http://127.0.0.1:08080/callback", false},
		{"empty port", nativeClient, "http://127.0.0.1:/callback", false},
		{"userinfo before the host", nativeClient, "http://evil.com%2F@127.0.0.1:51234/callback", false},
		{"userinfo", nativeClient, "http://user@127.0.0.1:51234/callback", false},
		{"upper-case scheme", nativeClient, "HTTP://127.0.0.1:51234/callback", false},
		{"https instead of http", nativeClient, "https://127.0.0.1:51234/callback", false},
		{"localhost for 127.0.0.1", nativeClient, "http://localhost:51234/callback", false},
		{"another loopback address", nativeClient, "http://127.0.0.2:51234/callback", false},
		{"longer host", nativeClient, "http://127.0.0.10:51234/callback", false},
		{"other path", nativeClient, "http://127.0.0.1:51234/callback/x", false},
		{"query added", nativeClient, "http://127.0.0.1:51234/callback?x=1", false},
		{"dot segment", nativeClient, "http://127.0.0.1:51234/x/../callback", false},
		{"custom scheme, exact", nativeClient, customSchemeURI, true},
		{"custom scheme, other path", nativeClient, customSchemeURI + "x", false},
		{"confidential https loopback, exact", confidential, "https://127.0.0.1/cb", true},
		{"confidential client, http with a port", confidential, "http://127.0.0.1:51234/cb", false},
		{"confidential client, https with a port", confidential, "https://127.0.0.1:51234/cb", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := pkceQuery(ts)
			q.Set("client_id", tt.client)
			q.Set("redirect_uri", tt.redirect)
			p := b.get(t, ts.authorizeURL(q))
			if !tt.want {
				if p.Callback != nil {
					t.Fatalf("got a redirect to %s, want an error page", p.Location)
				}
				if p.Status != http.StatusBadRequest {
					t.Errorf("got status %d, want 400", p.Status)
				}
				return
			}
			if p.Callback == nil || p.Callback.Query().Get("code") == "" {
				t.Fatalf("got status %d, Location %q; want a code", p.Status, p.Location)
			}
			if p.Location[:len(tt.redirect)] != tt.redirect {
				t.Errorf("got redirected to %s, want %s", p.Location, tt.redirect)
			}
		})
	}
}
