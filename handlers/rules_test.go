package handlers_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jwt"
	"golang.org/x/oauth2"

	"github.com/pixieauth/pixie/provider"
	"github.com/pixieauth/pixie/store"
)

const (
	messagesAPI = "https://api.example.com/messages"
	billingAPI  = "https://api.example.com/billing"
	apiClientID = "api-app" // a native client allowed to ask for messagesAPI
)

// apiOptions registers two APIs and a client allowed the first.
func apiOptions() serverOptions {
	return serverOptions{
		APIs: []provider.API{
			{Identifier: messagesAPI, Scopes: []string{"read:messages", "write:messages"}, AccessTokenLifespan: 5 * time.Minute},
			{Identifier: billingAPI, Scopes: []string{"read:invoices"}},
		},
		Clients: []*store.Client{{
			ID: apiClientID, Name: "API App", Native: true, FirstParty: true,
			RedirectURIs: []string{loopbackURI},
			Scopes:       []string{"openid", "profile", "offline_access", "read:messages", "write:messages", "read:invoices"},
			APIs:         []string{messagesAPI},
		}},
	}
}

// accessClaims verifies a JWT access token against the server's JWKS, as a
// resource server would, and returns its claims.
func accessClaims(t *testing.T, ts *testServer, token string) map[string]any {
	t.Helper()
	set, err := jwk.Fetch(t.Context(), ts.URL+"/.well-known/jwks.json")
	if err != nil {
		t.Fatalf("fetch JWKS: %v", err)
	}
	tok, err := jwt.Parse([]byte(token), jwt.WithKeySet(set), jwt.WithIssuer(ts.URL), jwt.WithValidate(true))
	if err != nil {
		t.Fatalf("access token does not verify against the JWKS: %v", err)
	}
	claims, err := tok.AsMap(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return claims
}

func audience(claims map[string]any) []string {
	switch v := claims["aud"].(type) {
	case []string:
		return v
	case string:
		return []string{v}
	}
	return nil
}

// TestAccessTokenForAPI: an access token asked for an API (audience or
// resource) is an RFC 9068 JWT for that API, with its lifespan; one asked
// for no API is for the issuer (userinfo).
func TestAccessTokenForAPI(t *testing.T) {
	ts := newTestServer(t, apiOptions())
	tests := []struct {
		name     string
		param    string // audience or resource; "" asks for no API
		scopes   string
		wantAud  []string
		wantExp  time.Duration
		userinfo int // the userinfo endpoint's answer to the token
	}{
		// With openid the token is for the userinfo endpoint (the issuer) too.
		{"audience", "audience", "openid read:messages", []string{messagesAPI, ts.URL}, 5 * time.Minute, http.StatusOK},
		{"resource (RFC 8707)", "resource", "openid read:messages write:messages offline_access", []string{messagesAPI, ts.URL}, 5 * time.Minute, http.StatusOK},
		{"API only", "audience", "read:messages", []string{messagesAPI}, 5 * time.Minute, http.StatusUnauthorized},
		{"no API", "", "openid profile", []string{ts.URL}, time.Hour, http.StatusOK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := newBrowser(t, ts)
			conf := ts.oauth2Config(apiClientID, ts.loopbackRedirect(), tc.scopes)
			ar := newAuthRequest(conf)
			if tc.param != "" {
				ar.URL += "&" + url.Values{tc.param: {messagesAPI}}.Encode()
			}
			tok, err := ar.exchange(t.Context(), b.code(t, ar))
			if err != nil {
				t.Fatalf("exchange: %v", err)
			}
			if typ := jwtHeader(t, tok.AccessToken)["typ"]; typ != "at+jwt" {
				t.Errorf("got typ %v, want at+jwt (RFC 9068 §2.1)", typ)
			}
			c := accessClaims(t, ts, tok.AccessToken)
			if aud := audience(c); !slices.Equal(aud, tc.wantAud) {
				t.Errorf("got aud %v, want %v", aud, tc.wantAud)
			}
			for _, k := range []string{"iss", "sub", "exp", "iat", "jti", "client_id", "scope", "auth_time"} {
				if _, ok := c[k]; !ok {
					t.Errorf("claim %s missing (RFC 9068 §2.2); got %v", k, c)
				}
			}
			if c["client_id"] != apiClientID || c["sub"] != "alice" || c["scope"] != tc.scopes {
				t.Errorf("got client_id %v sub %v scope %v, want %s alice %q", c["client_id"], c["sub"], c["scope"], apiClientID, tc.scopes)
			}
			exp, _ := c["exp"].(time.Time)
			iat, _ := c["iat"].(time.Time)
			if d := exp.Sub(iat); d < tc.wantExp-2*time.Second || d > tc.wantExp+2*time.Second {
				t.Errorf("got lifetime %v, want %v", d, tc.wantExp)
			}
			// The userinfo endpoint takes the JWT when it is one of its
			// audiences.
			if r := ts.userinfo(t, "Bearer "+tok.AccessToken); r.Status != tc.userinfo {
				t.Errorf("userinfo: got %d, want %d", r.Status, tc.userinfo)
			}
		})
	}
}

// TestAccessTokenTargetErrors: an unknown API, one the client is not
// registered for, two at once, or a scope the API does not define are
// refused on the redirect: no silently narrower token.
func TestAccessTokenTargetErrors(t *testing.T) {
	ts := newTestServer(t, apiOptions())
	tests := []struct {
		name     string
		extra    url.Values
		scopes   string
		wantCode string
	}{
		{"unknown API", url.Values{"audience": {"https://unknown.example.com"}}, "openid", "invalid_target"},
		{"API not allowed to the client", url.Values{"resource": {billingAPI}}, "openid read:invoices", "invalid_target"},
		{"two APIs", url.Values{"resource": {messagesAPI, billingAPI}}, "openid", "invalid_target"},
		{"scope of another API", url.Values{"audience": {messagesAPI}}, "openid read:invoices", "invalid_scope"},
		{"API scope without the API", nil, "openid read:messages", "invalid_scope"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ar := newAuthRequest(ts.oauth2Config(apiClientID, ts.loopbackRedirect(), tc.scopes))
			if tc.extra != nil {
				ar.URL += "&" + tc.extra.Encode()
			}
			p := newBrowser(t, ts).get(t, ar.URL)
			if p.Callback == nil {
				t.Fatalf("got status %d at %s, want a redirect to the client", p.Status, p.URL)
			}
			q := p.Callback.Query()
			if q.Get("error") != tc.wantCode || q.Get("code") != "" || q.Get("iss") != ts.URL {
				t.Errorf("got %v, want error=%s, no code, iss", q, tc.wantCode)
			}
		})
	}
}

// TestRules: rules add namespaced claims to both tokens, run again on
// refresh with the refresh protocol, and can deny; a failing, panicking,
// slow or misbehaving rule stops the flow with server_error.
func TestRules(t *testing.T) {
	var mu sync.Mutex
	var seen []string // protocols the rule ran in
	denyRefresh := false
	rules := []provider.Rule{{
		Name: "roles",
		Run: func(_ context.Context, rc *provider.RuleContext) error {
			mu.Lock()
			seen = append(seen, rc.Protocol)
			deny := denyRefresh && rc.Protocol == provider.ProtocolOAuth2RefreshToken
			mu.Unlock()
			if rc.User.Subject != "alice" || rc.Client.ID != nativeClient || !slices.Contains(rc.Scopes, "openid") {
				return errors.New("unexpected rule context")
			}
			if deny {
				return provider.Deny("Alice's account is suspended.")
			}
			rc.IDToken["https://example.com/roles"] = []string{"admin"}
			rc.AccessToken["https://example.com/tier"] = "gold"
			rc.AccessToken["https://example.com/protocol"] = rc.Protocol
			return nil
		},
	}}
	ts := newTestServer(t, serverOptions{Rules: rules})
	conf := ts.oauth2Config(nativeClient, ts.loopbackRedirect(), allScopes)
	b := newBrowser(t, ts)
	_, tok := b.tokens(t, conf)
	verifier := ts.oidcProvider(t).Verifier(&oidc.Config{ClientID: nativeClient})
	idt, err := verifier.Verify(t.Context(), tok.Extra("id_token").(string))
	if err != nil {
		t.Fatal(err)
	}
	var idClaims map[string]any
	if err := idt.Claims(&idClaims); err != nil {
		t.Fatal(err)
	}
	if roles, _ := idClaims["https://example.com/roles"].([]any); len(roles) != 1 || roles[0] != "admin" {
		t.Errorf("ID token: got roles %v, want [admin]", idClaims["https://example.com/roles"])
	}
	at := accessClaims(t, ts, tok.AccessToken)
	if at["https://example.com/tier"] != "gold" || at["https://example.com/protocol"] != provider.ProtocolOIDCBasicProfile {
		t.Errorf("access token: got %v, want the rule's claims for %s", at, provider.ProtocolOIDCBasicProfile)
	}
	if _, ok := at["https://example.com/roles"]; ok {
		t.Error("access token carries the ID-token-only claim")
	}

	// Refresh runs the rules again, in the refresh protocol.
	tok2, err := refresh(t.Context(), conf, tok.RefreshToken)
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if p := accessClaims(t, ts, tok2.AccessToken)["https://example.com/protocol"]; p != provider.ProtocolOAuth2RefreshToken {
		t.Errorf("after refresh: got protocol claim %v, want %s", p, provider.ProtocolOAuth2RefreshToken)
	}
	mu.Lock()
	if !slices.Equal(seen, []string{provider.ProtocolOIDCBasicProfile, provider.ProtocolOAuth2RefreshToken}) {
		t.Errorf("rule ran in %v, want [%s %s]", seen, provider.ProtocolOIDCBasicProfile, provider.ProtocolOAuth2RefreshToken)
	}
	denyRefresh = true
	mu.Unlock()

	// Deny on refresh: invalid_grant with the rule's message.
	_, err = refresh(t.Context(), conf, tok2.RefreshToken)
	wantRetrieveError(t, err, http.StatusBadRequest, "invalid_grant")
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && !strings.Contains(re.ErrorDescription, "suspended") {
		t.Errorf("got description %q, want the rule's message", re.ErrorDescription)
	}
}

// TestRuleFailures: a denying rule ends the login with access_denied and
// its message; a failing, panicking, slow or badly behaved one with
// server_error; no code is issued either way.
func TestRuleFailures(t *testing.T) {
	tests := []struct {
		name     string
		run      func(ctx context.Context, rc *provider.RuleContext) error
		wantCode string
		wantDesc string
	}{
		{"deny", func(context.Context, *provider.RuleContext) error { return provider.Deny("No logins on Sundays.") }, "access_denied", "No logins on Sundays."},
		{"error", func(context.Context, *provider.RuleContext) error { return errors.New("directory unreachable") }, "server_error", ""},
		{"panic", func(context.Context, *provider.RuleContext) error { panic("boom") }, "server_error", ""},
		{"timeout", func(ctx context.Context, _ *provider.RuleContext) error {
			<-ctx.Done()
			time.Sleep(50 * time.Millisecond)
			return nil
		}, "server_error", ""},
		{"claim not namespaced", func(_ context.Context, rc *provider.RuleContext) error { rc.IDToken["role"] = "admin"; return nil }, "server_error", ""},
		{"registered claim", func(_ context.Context, rc *provider.RuleContext) error { rc.AccessToken["sub"] = "mallory"; return nil }, "server_error", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts := newTestServer(t, serverOptions{
				Rules:       []provider.Rule{{Name: tc.name, Run: tc.run}},
				RuleTimeout: 100 * time.Millisecond,
			})
			b := newBrowser(t, ts)
			ar := newAuthRequest(ts.oauth2Config(nativeClient, ts.loopbackRedirect(), allScopes))
			p := b.authorize(t, ar.URL)
			if p.Callback == nil {
				t.Fatalf("got status %d at %s, want a redirect to the client", p.Status, p.URL)
			}
			q := p.Callback.Query()
			if q.Get("error") != tc.wantCode || q.Get("code") != "" {
				t.Fatalf("got %v, want error=%s and no code", q, tc.wantCode)
			}
			if tc.wantDesc != "" && !strings.Contains(q.Get("error_description"), tc.wantDesc) {
				t.Errorf("got description %q, want the rule's message %q", q.Get("error_description"), tc.wantDesc)
			}
			if tc.wantCode == "server_error" && strings.Contains(q.Get("error_description"), "boom") {
				t.Errorf("description %q leaks the rule's internals", q.Get("error_description"))
			}
		})
	}
}

// TestRefreshGracePeriod: within the grace period a rotated refresh token
// may be used again (a mobile app whose response got lost); after it,
// using it again is a replay that revokes the family. TestRefreshGraceBounded
// checks the bounds of the reuse.
func TestRefreshGracePeriod(t *testing.T) {
	t.Parallel()
	const grace = time.Second
	ts := newTestServer(t, serverOptions{GracePeriod: grace})
	conf := ts.oauth2Config(nativeClient, ts.loopbackRedirect(), allScopes)
	_, tok := newBrowser(t, ts).tokens(t, conf)
	first, err := refresh(t.Context(), conf, tok.RefreshToken)
	if err != nil {
		t.Fatalf("first refresh: %v", err)
	}
	rotatedAt := time.Now()
	// The response was "lost": the app uses the old token again.
	second, err := refresh(t.Context(), conf, tok.RefreshToken)
	if err != nil {
		t.Fatalf("reuse within the grace period: got %v, want new tokens", err)
	}
	if second.RefreshToken == first.RefreshToken || second.AccessToken == first.AccessToken {
		t.Error("reuse within the grace period returned the same tokens")
	}
	if r := ts.userinfo(t, "Bearer "+second.AccessToken); r.Status != http.StatusOK {
		t.Errorf("userinfo with the tokens of the reuse: got %d, want 200", r.Status)
	}

	time.Sleep(time.Until(rotatedAt.Add(grace + 100*time.Millisecond)))
	_, err = refresh(t.Context(), conf, tok.RefreshToken)
	wantRetrieveError(t, err, http.StatusBadRequest, "invalid_grant")
	// A replay after the period revokes the family.
	_, err = refresh(t.Context(), conf, second.RefreshToken)
	wantRetrieveError(t, err, http.StatusBadRequest, "invalid_grant")
}

// TestNoGracePeriodByDefault: without a grace period, the very next use of
// a rotated refresh token is refused and revokes the family.
func TestNoGracePeriodByDefault(t *testing.T) {
	ts := sharedServer(t)
	conf := ts.oauth2Config(nativeClient, ts.loopbackRedirect(), allScopes)
	_, tok := newBrowser(t, ts).tokens(t, conf)
	next, err := refresh(t.Context(), conf, tok.RefreshToken)
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	_, err = refresh(t.Context(), conf, tok.RefreshToken)
	wantRetrieveError(t, err, http.StatusBadRequest, "invalid_grant")
	_, err = refresh(t.Context(), conf, next.RefreshToken)
	wantRetrieveError(t, err, http.StatusBadRequest, "invalid_grant")
}

// TestAccessTokenAlg: access tokens are signed with ES256 by default, or
// with Config.AccessTokenAlg, or with their API's API.AccessTokenAlg; ID
// tokens with IDTokenAlg (RS256 by default) whatever the access token's.
// Every token verifies against the JWKS, as an API would verify it, and
// the one for the issuer opens userinfo.
func TestAccessTokenAlg(t *testing.T) {
	rsAPI := apiOptions()
	rsAPI.APIs[0].AccessTokenAlg = provider.RS256
	global := apiOptions()
	global.AccessTokenAlg = provider.RS256
	global.APIs[0].AccessTokenAlg = provider.ES256
	tests := []struct {
		name           string
		opts           serverOptions
		api            bool // ask for messagesAPI
		wantAT, wantID string
	}{
		{"default", apiOptions(), false, provider.ES256, provider.RS256},
		{"default, for an API", apiOptions(), true, provider.ES256, provider.RS256},
		{"API chooses RS256", rsAPI, true, provider.RS256, provider.RS256},
		{"API default stays ES256 without the API", rsAPI, false, provider.ES256, provider.RS256},
		{"Config RS256", global, false, provider.RS256, provider.RS256},
		{"Config RS256, API ES256", global, true, provider.ES256, provider.RS256},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts := newTestServer(t, tc.opts)
			scopes := "openid"
			if tc.api {
				scopes = "openid read:messages"
			}
			ar := newAuthRequest(ts.oauth2Config(apiClientID, ts.loopbackRedirect(), scopes))
			if tc.api {
				ar.URL += "&" + url.Values{"resource": {messagesAPI}}.Encode()
			}
			tok, err := ar.exchange(t.Context(), newBrowser(t, ts).code(t, ar))
			if err != nil {
				t.Fatalf("exchange: %v", err)
			}
			if alg := jwtHeader(t, tok.AccessToken)["alg"]; alg != tc.wantAT {
				t.Errorf("access token: got alg %v, want %s", alg, tc.wantAT)
			}
			if alg := jwtHeader(t, tok.Extra("id_token").(string))["alg"]; alg != tc.wantID {
				t.Errorf("ID token: got alg %v, want %s", alg, tc.wantID)
			}
			accessClaims(t, ts, tok.AccessToken) // verifies against the JWKS
			if r := ts.userinfo(t, "Bearer "+tok.AccessToken); r.Status != http.StatusOK {
				t.Errorf("userinfo: got %d, want 200", r.Status)
			}
		})
	}
}
