package provider

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pixieauth/pixie/store"
	"github.com/pixieauth/pixie/store/memory"
)

// validConfig returns a config that passes validation, on a fresh memory
// store.
func validConfig() Config {
	st := memory.New()
	return Config{Issuer: testIssuer, Clients: st, Users: st, Grants: st, Keys: st}
}

// TestConfigValidate: validation accepts what Config documents and refuses
// the rest with an error that names the field.
func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(c *Config)
		// wantField is the field the error must name; empty when the
		// config is valid.
		wantField string
	}{
		// Issuer: an https URL without trailing slash, query or fragment.
		{"HTTPSIssuer", func(c *Config) {}, ""},
		{"HTTPSIssuerWithPath", func(c *Config) { c.Issuer = "https://example.com/tenant1" }, ""},
		{"HTTPSIssuerWithPort", func(c *Config) { c.Issuer = "https://id.example.com:8443" }, ""},
		{"EmptyIssuer", func(c *Config) { c.Issuer = "" }, "Issuer"},
		{"RelativeIssuer", func(c *Config) { c.Issuer = "/oauth" }, "Issuer"},
		{"IssuerWithoutScheme", func(c *Config) { c.Issuer = "id.example.com" }, "Issuer"},
		{"IssuerTrailingSlash", func(c *Config) { c.Issuer = "https://id.example.com/" }, "Issuer"},
		{"IssuerPathTrailingSlash", func(c *Config) { c.Issuer = "https://example.com/tenant1/" }, "Issuer"},
		{"IssuerQuery", func(c *Config) { c.Issuer = "https://id.example.com?tenant=1" }, "Issuer"},
		{"IssuerFragment", func(c *Config) { c.Issuer = "https://id.example.com#top" }, "Issuer"},
		// An empty query or fragment is still a query or fragment
		// component (RFC 3986 §3.4, §3.5), which RFC 8414 §2 forbids.
		{"IssuerEmptyQuery", func(c *Config) { c.Issuer = "https://id.example.com?" }, "Issuer"},
		{"IssuerEmptyFragment", func(c *Config) { c.Issuer = "https://id.example.com#" }, "Issuer"},
		{"IssuerUserinfo", func(c *Config) { c.Issuer = "https://admin@id.example.com" }, "Issuer"},
		{"IssuerNoHost", func(c *Config) { c.Issuer = "https:///oauth" }, "Issuer"},
		// A port is not a host.
		{"IssuerPortOnly", func(c *Config) { c.Issuer = "https://:8443" }, "Issuer"},
		{"IssuerOpaque", func(c *Config) { c.Issuer = "https:id.example.com" }, "Issuer"},
		{"IssuerUnparsable", func(c *Config) { c.Issuer = "https://id.example.com:port" }, "Issuer"},
		{"IssuerOtherScheme", func(c *Config) { c.Issuer = "ftp://id.example.com" }, "Issuer"},
		// http: only on loopback, or with the insecure switch.
		{"HTTPNonLoopback", func(c *Config) { c.Issuer = "http://id.example.com" }, "Issuer"},
		{"HTTPLocalhostLookalike", func(c *Config) { c.Issuer = "http://localhost.example.com" }, "Issuer"},
		{"HTTPPrivateAddress", func(c *Config) { c.Issuer = "http://192.168.1.10:8080" }, "Issuer"},
		{"HTTP127001", func(c *Config) { c.Issuer = "http://127.0.0.1:8080" }, ""},
		{"HTTPIPv6Loopback", func(c *Config) { c.Issuer = "http://[::1]:8080" }, ""},
		{"HTTPLocalhost", func(c *Config) { c.Issuer = "http://localhost:8080" }, ""},
		{"HTTPInsecureAllowed", func(c *Config) {
			c.Issuer = "http://id.internal:8080"
			c.InsecureAllowHTTPIssuer = true
		}, ""},
		{"InsecureSwitchKeepsOtherRules", func(c *Config) {
			c.Issuer = "http://id.internal:8080/"
			c.InsecureAllowHTTPIssuer = true
		}, "Issuer"},
		// Stores.
		{"NilClients", func(c *Config) { c.Clients = nil }, "Clients"},
		{"NilUsers", func(c *Config) { c.Users = nil }, "Users"},
		{"NilGrants", func(c *Config) { c.Grants = nil }, "Grants"},
		{"NilKeys", func(c *Config) { c.Keys = nil }, "Keys"},
		// IDTokenAlg.
		{"IDTokenAlgRS256", func(c *Config) { c.IDTokenAlg = RS256 }, ""},
		{"IDTokenAlgES256", func(c *Config) { c.IDTokenAlg = ES256 }, ""},
		{"IDTokenAlgHS256", func(c *Config) { c.IDTokenAlg = "HS256" }, "IDTokenAlg"},
		{"AccessTokenAlgHS256", func(c *Config) { c.AccessTokenAlg = "HS256" }, "AccessTokenAlg"},
		{"IDTokenAlgNone", func(c *Config) { c.IDTokenAlg = "none" }, "IDTokenAlg"},
		{"IDTokenAlgLowercase", func(c *Config) { c.IDTokenAlg = "rs256" }, "IDTokenAlg"},
		// Lifespans: at least a second; codes at most 10 minutes.
		{"CodeLifespanMax", func(c *Config) { c.AuthorizeCodeLifespan = 10 * time.Minute }, ""},
		{"CodeLifespanOverMax", func(c *Config) { c.AuthorizeCodeLifespan = 10*time.Minute + time.Second }, "AuthorizeCodeLifespan"},
		{"CodeLifespanOneSecond", func(c *Config) { c.AuthorizeCodeLifespan = time.Second }, ""},
		{"CodeLifespanUnderASecond", func(c *Config) { c.AuthorizeCodeLifespan = 999 * time.Millisecond }, "AuthorizeCodeLifespan"},
		{"CodeLifespanNegative", func(c *Config) { c.AuthorizeCodeLifespan = -time.Minute }, "AuthorizeCodeLifespan"},
		{"AccessTokenLifespanLong", func(c *Config) { c.AccessTokenLifespan = 24 * time.Hour }, ""},
		{"AccessTokenLifespanUnderASecond", func(c *Config) { c.AccessTokenLifespan = time.Millisecond }, "AccessTokenLifespan"},
		{"IDTokenLifespanNegative", func(c *Config) { c.IDTokenLifespan = -time.Hour }, "IDTokenLifespan"},
		{"RefreshTokenLifespanUnderASecond", func(c *Config) { c.RefreshTokenLifespan = time.Nanosecond }, "RefreshTokenLifespan"},
		// Background work.
		{"KeyRefreshIntervalOneSecond", func(c *Config) { c.KeyRefreshInterval = time.Second }, ""},
		{"KeyRefreshIntervalUnderASecond", func(c *Config) { c.KeyRefreshInterval = time.Millisecond }, "KeyRefreshInterval"},
		{"KeyRefreshIntervalNegative", func(c *Config) { c.KeyRefreshInterval = -time.Second }, "KeyRefreshInterval"},
		{"CleanupDisabled", func(c *Config) { c.CleanupInterval = -1 }, ""},
		{"CleanupEveryMinute", func(c *Config) { c.CleanupInterval = time.Minute }, ""},
		// Refresh grace.
		{"GracePeriodMax", func(c *Config) { c.RefreshTokenGracePeriod = 5 * time.Minute }, ""},
		{"GracePeriodOverMax", func(c *Config) { c.RefreshTokenGracePeriod = 6 * time.Minute }, "RefreshTokenGracePeriod"},
		{"GraceReusesMax", func(c *Config) { c.RefreshTokenGraceReuses = 3 }, ""},
		{"GraceReusesOverMax", func(c *Config) { c.RefreshTokenGraceReuses = 4 }, "RefreshTokenGraceReuses"},
		{"GraceReusesNegative", func(c *Config) { c.RefreshTokenGraceReuses = -1 }, "RefreshTokenGraceReuses"},
		// ACRValues: non-empty, no white space, not twice, not built in.
		{"ACRValues", func(c *Config) { c.ACRValues = []string{"urn:example:mfa", "urn:example:hw"} }, ""},
		{"ACRValueEmpty", func(c *Config) { c.ACRValues = []string{""} }, "ACRValues"},
		{"ACRValueWithSpace", func(c *Config) { c.ACRValues = []string{"urn:a urn:b"} }, "ACRValues"},
		{"ACRValueWithTab", func(c *Config) { c.ACRValues = []string{"urn:a\turn:b"} }, "ACRValues"},
		{"ACRValueTwice", func(c *Config) { c.ACRValues = []string{"urn:a", "urn:a"} }, "ACRValues"},
		{"ACRValueBuiltIn", func(c *Config) { c.ACRValues = []string{ACRPassword} }, "ACRValues"},
		// An API may not define an OpenID Connect scope.
		{"APIDefinesAddress", func(c *Config) {
			c.APIs = []API{{Identifier: "https://api.example.com", Scopes: []string{"address"}}}
		}, "APIs"},
		// StoreTimeout: at least 10 ms, never disabled.
		{"StoreTimeoutMinimum", func(c *Config) { c.StoreTimeout = 10 * time.Millisecond }, ""},
		{"StoreTimeoutLong", func(c *Config) { c.StoreTimeout = time.Minute }, ""},
		{"StoreTimeoutTooShort", func(c *Config) { c.StoreTimeout = time.Millisecond }, "StoreTimeout"},
		{"StoreTimeoutNegative", func(c *Config) { c.StoreTimeout = -1 }, "StoreTimeout"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := validConfig()
			tc.edit(&c)
			err := c.validate()
			switch {
			case tc.wantField == "" && err != nil:
				t.Errorf("Issuer %q: got error %v, want nil", c.Issuer, err)
			case tc.wantField != "" && err == nil:
				t.Errorf("Issuer %q: got nil error, want one naming Config.%s", c.Issuer, tc.wantField)
			case tc.wantField != "" && !strings.Contains(err.Error(), "Config."+tc.wantField):
				t.Errorf("got error %q, want it to name Config.%s", err, tc.wantField)
			case err != nil && !strings.HasPrefix(err.Error(), "provider: "):
				t.Errorf("got error %q, want the package prefix \"provider: \"", err)
			}
		})
	}
}

// TestNewRefusesInvalidConfig: New validates before it touches the stores.
func TestNewRefusesInvalidConfig(t *testing.T) {
	st := memory.New()
	_, err := New(t.Context(), Config{Issuer: "http://id.example.com", Clients: st, Users: st, Grants: st, Keys: st})
	if err == nil || !strings.Contains(err.Error(), "Config.Issuer") {
		t.Fatalf("got error %v, want one naming Config.Issuer", err)
	}
	if keys, _ := st.Keys(t.Context()); len(keys) != 0 {
		t.Errorf("a refused config stored %d keys, want none", len(keys))
	}
}

// TestConfigDefaults: validation fills in the documented defaults and keeps
// what was set.
func TestConfigDefaults(t *testing.T) {
	c := validConfig()
	if err := c.validate(); err != nil {
		t.Fatal(err)
	}
	for _, d := range []struct {
		field     string
		got, want any
	}{
		{"IDTokenAlg", c.IDTokenAlg, RS256},
		{"AuthorizeCodeLifespan", c.AuthorizeCodeLifespan, 10 * time.Minute},
		{"AccessTokenLifespan", c.AccessTokenLifespan, time.Hour},
		{"IDTokenLifespan", c.IDTokenLifespan, time.Hour},
		{"RefreshTokenLifespan", c.RefreshTokenLifespan, 30 * 24 * time.Hour},
		{"KeyRefreshInterval", c.KeyRefreshInterval, 30 * time.Second},
		{"CleanupInterval", c.CleanupInterval, time.Hour},
		{"RefreshTokenGraceReuses", c.RefreshTokenGraceReuses, 1},
		{"StoreTimeout", c.StoreTimeout, 5 * time.Second},
		{"InsecureAllowPlainPKCE", c.InsecureAllowPlainPKCE, false},
		{"InsecureAllowHTTPIssuer", c.InsecureAllowHTTPIssuer, false},
	} {
		if d.got != d.want {
			t.Errorf("default %s: got %v, want %v", d.field, d.got, d.want)
		}
	}
	// The exported constants are the documented values.
	for _, d := range []struct {
		name      string
		got, want time.Duration
	}{
		{"DefaultAuthorizeCodeLifespan", DefaultAuthorizeCodeLifespan, 10 * time.Minute},
		{"maxAuthorizeCodeLifespan", maxAuthorizeCodeLifespan, 10 * time.Minute},
		{"DefaultAccessTokenLifespan", DefaultAccessTokenLifespan, time.Hour},
		{"defaultIDTokenLifespan", defaultIDTokenLifespan, time.Hour},
		{"defaultRefreshTokenLifespan", defaultRefreshTokenLifespan, 30 * 24 * time.Hour},
		{"defaultKeyRefreshInterval", defaultKeyRefreshInterval, 30 * time.Second},
		{"defaultCleanupInterval", defaultCleanupInterval, time.Hour},
		{"defaultStoreTimeout", defaultStoreTimeout, 5 * time.Second},
	} {
		if d.got != d.want {
			t.Errorf("%s: got %v, want %v", d.name, d.got, d.want)
		}
	}

	set := validConfig()
	set.IDTokenAlg = ES256
	set.AccessTokenLifespan = 5 * time.Minute
	if err := set.validate(); err != nil {
		t.Fatal(err)
	}
	if set.IDTokenAlg != ES256 || set.AccessTokenLifespan != 5*time.Minute {
		t.Errorf("got IDTokenAlg %s and AccessTokenLifespan %v, want the values set: ES256, 5m0s", set.IDTokenAlg, set.AccessTokenLifespan)
	}
}

// TestLifespansInEffect checks the lifespans through a real flow: the
// token response's expires_in, the ID token's exp − iat, and the expiry of
// the stored code and refresh token.
func TestLifespansInEffect(t *testing.T) {
	tests := []struct {
		name      string
		edit      func(c *Config)
		code      time.Duration // authorization code
		access    time.Duration // access token: expires_in
		id        time.Duration // ID token: exp − iat
		refresh   time.Duration // refresh token
		wantIDAlg string
	}{
		{"Defaults", nil, DefaultAuthorizeCodeLifespan, DefaultAccessTokenLifespan, defaultIDTokenLifespan, defaultRefreshTokenLifespan, RS256},
		{"Configured", func(c *Config) {
			c.AuthorizeCodeLifespan = time.Minute
			c.AccessTokenLifespan = 5 * time.Minute
			c.IDTokenLifespan = 2 * time.Minute
			c.RefreshTokenLifespan = 48 * time.Hour
			c.IDTokenAlg = ES256
		}, time.Minute, 5 * time.Minute, 2 * time.Minute, 48 * time.Hour, ES256},
	}
	// Expiries are computed from the wall clock at issue; allow for the
	// time the flow takes.
	const slack = 30 * time.Second
	near := func(got time.Time, want time.Time) bool {
		return got.After(want.Add(-slack)) && got.Before(want.Add(slack))
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv(t, tc.edit)
			ctx := t.Context()
			start := time.Now()
			c := e.issueCode(t, nativeID)
			g, err := e.mem.Grant(ctx, store.KindAuthorizeCode, hmacSignature(t, c.code))
			if err != nil {
				t.Fatal(err)
			}
			if want := start.Add(tc.code); !near(g.ExpiresAt, want) {
				t.Errorf("code expires at %v, want about %v", g.ExpiresAt, want)
			}

			resp, err := e.redeem(ctx, c)
			if err != nil {
				t.Fatalf("Token: %v", err)
			}
			tk := tokensOf(t, resp)
			if got := time.Duration(tk.expiresIn) * time.Second; got > tc.access || got < tc.access-slack {
				t.Errorf("got expires_in %v, want about %v", got, tc.access)
			}
			g, err = e.mem.Grant(ctx, store.KindRefreshToken, hmacSignature(t, tk.refresh))
			if err != nil {
				t.Fatal(err)
			}
			if want := start.Add(tc.refresh); !near(g.ExpiresAt, want) {
				t.Errorf("refresh token expires at %v, want about %v", g.ExpiresAt, want)
			}

			tok, err := newJWTSigner(e.p.keys, tc.wantIDAlg).Decode(ctx, tk.id)
			if err != nil {
				t.Fatalf("Decode ID token: %v", err)
			}
			if tok.Header["alg"] != tc.wantIDAlg {
				t.Errorf("got ID token alg %v, want %s", tok.Header["alg"], tc.wantIDAlg)
			}
			claims := tok.Claims
			exp, iat := unixClaim(t, claims["exp"]), unixClaim(t, claims["iat"])
			if got := time.Duration(exp-iat) * time.Second; got < tc.id || got > tc.id+time.Second {
				t.Errorf("got ID token exp − iat = %v, want %v", got, tc.id)
			}
			if claims["iss"] != testIssuer {
				t.Errorf("got iss %v, want %q", claims["iss"], testIssuer)
			}
		})
	}
}

// TestIssuerInResponses: the configured issuer is what the provider reports
// and what it adds to the authorization response (RFC 9207).
func TestIssuerInResponses(t *testing.T) {
	const issuer = "http://127.0.0.1:9000/auth"
	e := newTestEnv(t, func(c *Config) { c.Issuer = issuer })
	if got := e.p.Issuer(); got != issuer {
		t.Errorf("Issuer(): got %q, want %q", got, issuer)
	}
	_, challenge := pkcePair(t)
	areq, err := e.p.parseAuthorizeRequest(t.Context(), authorizeRequest(authorizeQuery(challenge, "S256")))
	if err != nil {
		t.Fatal(err)
	}
	to, err := e.p.issueCode(t.Context(), areq, Login{Subject: testSubject})
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(to)
	if err != nil {
		t.Fatal(err)
	}
	if got := u.Query().Get("iss"); got != issuer {
		t.Errorf("got iss %q in the redirect, want %q", got, issuer)
	}
}

// unixClaim reads a NumericDate claim as decoded from JSON.
func unixClaim(t *testing.T, v any) int64 {
	t.Helper()
	switch n := v.(type) {
	case float64:
		return int64(n)
	case int64:
		return n
	case json.Number:
		i, err := n.Int64()
		if err != nil {
			t.Fatalf("claim %v: %v", v, err)
		}
		return i
	}
	t.Fatalf("claim %v is %T, want a number", v, v)
	return 0
}
