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
