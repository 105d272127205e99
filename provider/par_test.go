package provider

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pixieauth/pixie/store"
	"github.com/pixieauth/pixie/store/memory"
)

// pushRequest returns POST /oauth/par with form as its body.
func pushRequest(form url.Values) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/oauth/par", strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return r
}

// TestPushedRequestRoundTrip: what a client pushes comes out of
// ParseAuthorizeRequest exactly as the same request sent directly would,
// every form value included (dpop_jkt, which a later feature reads, and
// parameters pixie does not know), but the client's secret; the record is
// keyed by a digest of the request_uri, holds neither it nor the secret,
// and expires with the lifespan.
func TestPushedRequestRoundTrip(t *testing.T) {
	mem := memory.New()
	hash, err := store.HashSecret(webSecret)
	if err != nil {
		t.Fatal(err)
	}
	const api = "https://api.example.com"
	if err := mem.AddClient(t.Context(), &store.Client{ID: webID, SecretHash: hash, RedirectURIs: []string{webRedirect},
		Scopes: []string{"openid", "profile", "read"}, APIs: []string{api}}); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	e := newTestEnvOn(t, mem, func(c *Config) {
		c.APIs = []API{{Identifier: api, Scopes: []string{"read"}}}
		c.Now = func() time.Time { return now }
	})
	_, challenge := pkcePair(t)
	params := url.Values{
		"client_id":             {webID},
		"response_type":         {"code"},
		"redirect_uri":          {webRedirect},
		"scope":                 {"openid profile read"},
		"state":                 {testState},
		"nonce":                 {testNonce},
		"code_challenge":        {challenge},
		"code_challenge_method": {"S256"},
		"resource":              {api},
		"prompt":                {"consent"},
		"max_age":               {"300"},
		"login_hint":            {"alice"},
		"acr_values":            {"urn:example:mfa"},
		"claims":                {`{"id_token":{"email":null}}`},
		"dpop_jkt":              {"0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"},
		"ui_locales":            {"de"},
		"x_custom":              {"kept"},
	}
	pushed := url.Values{}
	for k, v := range params {
		pushed[k] = v
	}
	pushed.Set("client_secret", webSecret)
	resp, err := e.p.pushAuthorizeRequest(t.Context(), pushRequest(pushed))
	if err != nil {
		t.Fatalf("PushAuthorizeRequest: %v", err)
	}
	uri, _ := resp["request_uri"].(string)
	if resp["expires_in"] != 60 || !strings.HasPrefix(uri, requestURIPrefix) {
		t.Fatalf("got %v, want a request_uri and expires_in 60", resp)
	}

	g, err := mem.Grant(t.Context(), store.KindPushedRequest, digest(uri))
	if err != nil {
		t.Fatalf("the pushed request is not stored under the request_uri's digest: %v", err)
	}
	if _, err := mem.Grant(t.Context(), store.KindPushedRequest, uri); err == nil {
		t.Error("the pushed request is stored under the raw request_uri")
	}
	if g.ClientID != webID || !g.Active || !g.ExpiresAt.Equal(now.Add(documentedPushedLifespan).UTC()) {
		t.Errorf("got record client %q, active %v, expiry %v; want %q, active, %v", g.ClientID, g.Active, g.ExpiresAt, webID, now.Add(documentedPushedLifespan))
	}
	for _, secret := range []string{webSecret, uri, strings.TrimPrefix(uri, requestURIPrefix)} {
		if bytes.Contains(g.Data, []byte(secret)) {
			t.Errorf("the record holds %q", secret)
		}
	}

	direct, err := e.p.parseAuthorizeRequest(t.Context(), authorizeRequest(params))
	if err != nil {
		t.Fatalf("ParseAuthorizeRequest, direct: %v", err)
	}
	got, err := e.p.parseAuthorizeRequest(t.Context(), authorizeRequest(url.Values{"client_id": {webID}, "request_uri": {uri}}))
	if err != nil {
		t.Fatalf("ParseAuthorizeRequest, pushed: %v", err)
	}
	if f := got.ar.GetRequestForm(); !reflect.DeepEqual(f, direct.ar.GetRequestForm()) {
		t.Errorf("pushed request's form:\n%v\nwant the direct request's:\n%v", f, direct.ar.GetRequestForm())
	}
	if got.ar.GetRequestForm().Has("client_secret") {
		t.Error("the pushed request's form has client_secret")
	}
	// max_age counts from the push (to the second, as auth_time), with
	// half a second of slack.
	if want := direct.MaxAge + now.Sub(now.Truncate(time.Second)) + time.Second/2; got.MaxAge != want {
		t.Errorf("got MaxAge %v, want %v", got.MaxAge, want)
	}
	got.MaxAge = direct.MaxAge
	opts := []string{"Client", "Scopes", "State", "Prompt", "MaxAge", "LoginHint", "API", "ACRValues", "ACREssential"}
	gv, dv := reflect.ValueOf(*got), reflect.ValueOf(*direct)
	for _, name := range opts {
		if a, b := gv.FieldByName(name).Interface(), dv.FieldByName(name).Interface(); !reflect.DeepEqual(a, b) {
			t.Errorf("%s: got %v, want %v as for the direct request", name, a, b)
		}
	}
	if got.API != api || got.ar.GetRedirectURI().String() != webRedirect || got.ar.GetState() != testState {
		t.Errorf("got API %q, redirect %v, state %q", got.API, got.ar.GetRedirectURI(), got.ar.GetState())
	}
	if !reflect.DeepEqual(got.idTokenClaims, direct.idTokenClaims) {
		t.Errorf("claims parameter: got %v, want %v", got.idTokenClaims, direct.idTokenClaims)
	}
}

// documentedPushedLifespan is the documented default of
// Config.PushedRequestLifespan, written out.
const documentedPushedLifespan = 60 * time.Second

// TestPushedRequestLifespanConfig: Config.PushedRequestLifespan defaults to
// 60 seconds and is refused out of its bounds.
func TestPushedRequestLifespanConfig(t *testing.T) {
	tests := []struct {
		name string
		in   time.Duration // the configured value
		want time.Duration // after validate; 0: refused
	}{
		{"default", 0, documentedPushedLifespan},
		{"a minute and a half", 90 * time.Second, 90 * time.Second},
		{"the minimum", 5 * time.Second, 5 * time.Second},
		{"the maximum", 10 * time.Minute, 10 * time.Minute},
		{"too short", time.Second, 0},
		{"negative", -time.Minute, 0},
		{"too long", 11 * time.Minute, 0},
	}
	mem := memory.New()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := Config{Issuer: testIssuer, Clients: mem, Users: mem, Grants: mem, Keys: mem, PushedRequestLifespan: tc.in}
			err := c.validate()
			switch {
			case tc.want == 0 && err == nil:
				t.Errorf("validate accepted %v", tc.in)
			case tc.want == 0:
				if !strings.Contains(err.Error(), "PushedRequestLifespan") {
					t.Errorf("got error %v, want one naming PushedRequestLifespan", err)
				}
			case err != nil:
				t.Errorf("validate: %v", err)
			case c.PushedRequestLifespan != tc.want:
				t.Errorf("got %v, want %v", c.PushedRequestLifespan, tc.want)
			}
		})
	}
}
