package middleware_test

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pixieauth/pixie/middleware"
)

// verifyTest is one request through RequireToken, and the same token
// through Verify.
type verifyTest struct {
	name string
	// auth builds the Authorization header values; nil sends none.
	auth func(tb testing.TB, f *fixture) []string
	// scopes are the scopes the route requires.
	scopes []string
	// wantStatus is the response status; 200 means the handler ran.
	wantStatus int
	// wantErr is the sentinel or unexported reason the refusal wraps (from
	// Verify when the header parses, else from ParseBearer); nil for
	// success.
	wantErr error
	// wantChallenge is the exact WWW-Authenticate value; "" means the
	// header must be absent.
	wantChallenge string
	// wantCode is the "error" member of the JSON body ("" if absent).
	wantCode string
}

// fixture holds the keys and the verifier of the table test.
type fixture struct {
	rsa, ec   *testKey // published, alg RS256 and ES256
	ps        *testKey // published RSA key whose JWK says alg PS256
	evilRSA   *testKey // not published
	evilEC    *testKey // not published
	v         *middleware.Verifier
	logs      *syncBuffer
	tokensOut []string // every token sent, to check none is logged
}

func newFixture(tb testing.TB) *fixture {
	f := &fixture{
		rsa:     sharedKey(tb, "rsa-a", "RS256"),
		ec:      sharedKey(tb, "ec-b", "ES256"),
		ps:      sharedKey(tb, "rsa-ps", "PS256"),
		evilRSA: sharedKey(tb, "rsa-evil", "RS256"),
		evilEC:  sharedKey(tb, "ec-evil", "ES256"),
		logs:    &syncBuffer{},
	}
	f.v = newVerifier(tb, middleware.Config{
		KeySet: middleware.StaticKeys(setOf(tb, f.rsa, f.ec, f.ps)),
		Now:    fixed(t0),
		Logger: bufferLogger(f.logs),
	})
	return f
}

// bearer returns an auth func sending "Bearer <tok>".
func bearer(mk func(tb testing.TB, f *fixture) string) func(testing.TB, *fixture) []string {
	return func(tb testing.TB, f *fixture) []string {
		tok := mk(tb, f)
		f.tokensOut = append(f.tokensOut, tok)
		return []string{"Bearer " + tok}
	}
}

// raw returns an auth func sending exactly the given header values.
func raw(values ...string) func(testing.TB, *fixture) []string {
	return func(testing.TB, *fixture) []string { return values }
}

// withClaims returns a token signed by the fixture's RSA key with claims
// changed by edit.
func withClaims(edit func(c map[string]any)) func(testing.TB, *fixture) string {
	return func(tb testing.TB, f *fixture) string {
		c := claimsAt(t0)
		edit(c)
		return sign(tb, f.rsa.priv, header(f.rsa), c)
	}
}

// withHeader returns a token signed by the fixture's RSA key with its JOSE
// header changed by edit.
func withHeader(edit func(h map[string]any)) func(testing.TB, *fixture) string {
	return func(tb testing.TB, f *fixture) string {
		h := header(f.rsa)
		edit(h)
		return signRaw(tb, f.rsa.priv, "RS256", b64json(tb, h)+"."+b64json(tb, claimsAt(t0)))
	}
}

const (
	realm           = `Bearer realm="` + testAudience + `"`
	invalidTokenFmt = realm + `, error="invalid_token", error_description="`
)

func TestRequireToken(t *testing.T) {
	tests := []verifyTest{
		// Accepted.
		{name: "valid RS256", auth: bearer(func(tb testing.TB, f *fixture) string { return token(tb, f.rsa, t0) }), wantStatus: 200},
		{name: "valid ES256", auth: bearer(func(tb testing.TB, f *fixture) string { return token(tb, f.ec, t0) }), wantStatus: 200},
		{name: "typ application/at+jwt", auth: bearer(withHeader(func(h map[string]any) { h["typ"] = "application/at+jwt" })), wantStatus: 200},
		{name: "typ in upper case", auth: bearer(withHeader(func(h map[string]any) { h["typ"] = "AT+JWT" })), wantStatus: 200},
		{name: "aud a single string", auth: bearer(withClaims(func(c map[string]any) { c["aud"] = testAudience })), wantStatus: 200},
		{name: "expired but within leeway", auth: bearer(withClaims(func(c map[string]any) { c["exp"] = t0.Add(-10 * time.Second).Unix() })), wantStatus: 200},
		{name: "iat slightly ahead, within leeway", auth: bearer(withClaims(func(c map[string]any) { c["iat"] = t0.Add(10 * time.Second).Unix() })), wantStatus: 200},
		{name: "scheme in lower case", auth: func(tb testing.TB, f *fixture) []string { return []string{"bearer " + token(tb, f.rsa, t0)} }, wantStatus: 200},
		// RFC 6750 §2.1: credentials = "Bearer" 1*SP b64token.
		{name: "two spaces before the token", auth: func(tb testing.TB, f *fixture) []string { return []string{"Bearer  " + token(tb, f.rsa, t0)} }, wantStatus: 200},
		{name: "required scope held", auth: bearer(func(tb testing.TB, f *fixture) string { return token(tb, f.rsa, t0) }), scopes: []string{"read"}, wantStatus: 200},
		{name: "several required scopes held", auth: bearer(func(tb testing.TB, f *fixture) string { return token(tb, f.rsa, t0) }), scopes: []string{"read", "profile"}, wantStatus: 200},

		// No credentials: RFC 6750 §3.1, no error code.
		{name: "no Authorization header", auth: nil, wantStatus: 401, wantErr: middleware.ErrNoToken, wantChallenge: realm},
		{name: "Basic scheme", auth: raw("Basic xyz"), wantStatus: 401, wantErr: middleware.ErrNoToken, wantChallenge: realm},
		{name: "scheme glued to token", auth: raw("Bearerabc"), wantStatus: 401, wantErr: middleware.ErrNoToken, wantChallenge: realm},

		// Malformed header: 400 invalid_request.
		{name: "Bearer alone", auth: raw("Bearer"), wantStatus: 400, wantErr: middleware.ErrMalformedHeader, wantCode: "invalid_request",
			wantChallenge: realm + `, error="invalid_request", error_description="The Authorization header has no bearer token."`},
		{name: "Bearer and two spaces", auth: raw("Bearer  "), wantStatus: 400, wantErr: middleware.ErrMalformedHeader, wantCode: "invalid_request"},
		{name: "space inside the token", auth: raw("Bearer abc def"), wantStatus: 400, wantErr: middleware.ErrMalformedHeader, wantCode: "invalid_request"},
		{name: "non-ASCII token", auth: raw("Bearer tökén"), wantStatus: 400, wantErr: middleware.ErrMalformedHeader, wantCode: "invalid_request"},
		{name: "quote in token", auth: raw(`Bearer "abc"`), wantStatus: 400, wantErr: middleware.ErrMalformedHeader, wantCode: "invalid_request"},
		{name: "two Authorization headers", auth: func(tb testing.TB, f *fixture) []string {
			tok := token(tb, f.rsa, t0)
			return []string{"Bearer " + tok, "Bearer " + tok}
		}, wantStatus: 400, wantErr: middleware.ErrMalformedHeader, wantCode: "invalid_request"},

		// Malformed tokens.
		{name: "Bearer a.b", auth: raw("Bearer a.b"), wantStatus: 401, wantErr: middleware.ReasonMalformedToken, wantCode: "invalid_token",
			wantChallenge: invalidTokenFmt + `The access token is not a JWT: it needs three dot-separated parts."`},
		{name: "four segments", auth: bearer(func(tb testing.TB, f *fixture) string { return token(tb, f.rsa, t0) + ".x" }), wantStatus: 401, wantErr: middleware.ReasonMalformedToken, wantCode: "invalid_token"},
		{name: "header not base64url", auth: raw("Bearer a+b.c.d"), wantStatus: 401, wantErr: middleware.ReasonMalformedToken, wantCode: "invalid_token"},
		{name: "header JSON null", auth: bearer(func(tb testing.TB, f *fixture) string {
			tok := token(tb, f.rsa, t0)
			return b64json(tb, nil) + tok[strings.IndexByte(tok, '.'):]
		}), wantStatus: 401, wantErr: middleware.ReasonMalformedToken, wantCode: "invalid_token"},
		{name: "crit header", auth: bearer(withHeader(func(h map[string]any) { h["crit"] = []string{"exp"}; h["exp"] = 1 })), wantStatus: 401, wantErr: middleware.ReasonMalformedToken, wantCode: "invalid_token"},
		{name: "b64 false header", auth: bearer(withHeader(func(h map[string]any) { h["b64"] = false })), wantStatus: 401, wantErr: middleware.ReasonMalformedToken, wantCode: "invalid_token"},
		{name: "scope an array", auth: bearer(withClaims(func(c map[string]any) { c["scope"] = []string{"read"} })), wantStatus: 401, wantErr: middleware.ReasonMalformedToken, wantCode: "invalid_token"},
		{name: "aud a number", auth: bearer(withClaims(func(c map[string]any) { c["aud"] = 7 })), wantStatus: 401, wantErr: middleware.ReasonMalformedToken, wantCode: "invalid_token"},
		{name: "exp a string", auth: bearer(withClaims(func(c map[string]any) { c["exp"] = "tomorrow" })), wantStatus: 401, wantErr: middleware.ReasonMalformedToken, wantCode: "invalid_token"},
		{name: "sub a number", auth: bearer(withClaims(func(c map[string]any) { c["sub"] = 42 })), wantStatus: 401, wantErr: middleware.ReasonMalformedToken, wantCode: "invalid_token"},
		{name: "claims not an object", auth: bearer(func(tb testing.TB, f *fixture) string {
			return signRaw(tb, f.rsa.priv, "RS256", b64json(tb, header(f.rsa))+"."+b64json(tb, []string{"x"}))
		}), wantStatus: 401, wantErr: middleware.ReasonMalformedToken, wantCode: "invalid_token"},

		// Algorithms.
		{name: "alg none, empty signature", auth: bearer(func(tb testing.TB, f *fixture) string {
			return b64json(tb, map[string]any{"alg": "none", "typ": "at+jwt"}) + "." + b64json(tb, claimsAt(t0)) + "."
		}), wantStatus: 401, wantErr: middleware.ReasonAlgorithm, wantCode: "invalid_token",
			wantChallenge: invalidTokenFmt + `The access token's signature algorithm is not accepted."`},
		{name: "alg none with a kid and a stolen signature", auth: bearer(func(tb testing.TB, f *fixture) string {
			tok := token(tb, f.rsa, t0)
			return b64json(tb, map[string]any{"alg": "none", "typ": "at+jwt", "kid": f.rsa.kid}) + tok[strings.IndexByte(tok, '.'):]
		}), wantStatus: 401, wantErr: middleware.ReasonAlgorithm, wantCode: "invalid_token"},
		{name: "alg NONE", auth: bearer(func(tb testing.TB, f *fixture) string {
			return b64json(tb, map[string]any{"alg": "NONE", "typ": "at+jwt", "kid": f.rsa.kid}) + "." + b64json(tb, claimsAt(t0)) + "."
		}), wantStatus: 401, wantErr: middleware.ReasonAlgorithm, wantCode: "invalid_token"},
		{name: "no alg", auth: bearer(withHeader(func(h map[string]any) { delete(h, "alg") })), wantStatus: 401, wantErr: middleware.ReasonAlgorithm, wantCode: "invalid_token"},
		{name: "HS256 keyed with the RSA public key PEM (key confusion)", auth: bearer(func(tb testing.TB, f *fixture) string {
			der, err := x509.MarshalPKIXPublicKey(f.rsa.priv.Public())
			if err != nil {
				tb.Fatal(err)
			}
			secret := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
			return sign(tb, secret, map[string]any{"alg": "HS256", "typ": "at+jwt", "kid": f.rsa.kid}, claimsAt(t0))
		}), wantStatus: 401, wantErr: middleware.ReasonAlgorithm, wantCode: "invalid_token"},
		{name: "HS256 keyed with the published JWK (key confusion)", auth: bearer(func(tb testing.TB, f *fixture) string {
			secret, err := json.Marshal(f.rsa.pub)
			if err != nil {
				tb.Fatal(err)
			}
			return sign(tb, secret, map[string]any{"alg": "HS256", "typ": "at+jwt", "kid": f.rsa.kid}, claimsAt(t0))
		}), wantStatus: 401, wantErr: middleware.ReasonAlgorithm, wantCode: "invalid_token"},
		{name: "PS256 not in the allow-list", auth: bearer(func(tb testing.TB, f *fixture) string {
			return sign(tb, f.ps.priv, map[string]any{"alg": "PS256", "typ": "at+jwt", "kid": f.ps.kid}, claimsAt(t0))
		}), wantStatus: 401, wantErr: middleware.ReasonAlgorithm, wantCode: "invalid_token"},

		// Token type.
		{name: "typ JWT (an ID token)", auth: bearer(withHeader(func(h map[string]any) { h["typ"] = "JWT" })), wantStatus: 401, wantErr: middleware.ReasonTokenType, wantCode: "invalid_token"},
		{name: "no typ", auth: bearer(withHeader(func(h map[string]any) { delete(h, "typ") })), wantStatus: 401, wantErr: middleware.ReasonTokenType, wantCode: "invalid_token"},

		// Keys.
		{name: "unknown kid", auth: bearer(func(tb testing.TB, f *fixture) string { return token(tb, f.evilRSA, t0) }), wantStatus: 401, wantErr: middleware.ReasonUnknownKey, wantCode: "invalid_token"},
		{name: "no kid", auth: bearer(withHeader(func(h map[string]any) { delete(h, "kid") })), wantStatus: 401, wantErr: middleware.ReasonUnknownKey, wantCode: "invalid_token"},
		{name: "ES256 token naming the RSA key's kid", auth: bearer(func(tb testing.TB, f *fixture) string {
			return sign(tb, f.evilEC.priv, map[string]any{"alg": "ES256", "typ": "at+jwt", "kid": f.rsa.kid}, claimsAt(t0))
		}), wantStatus: 401, wantErr: middleware.ReasonKeyMismatch, wantCode: "invalid_token"},
		{name: "RS256 token naming the EC key's kid", auth: bearer(func(tb testing.TB, f *fixture) string {
			return sign(tb, f.evilRSA.priv, map[string]any{"alg": "RS256", "typ": "at+jwt", "kid": f.ec.kid}, claimsAt(t0))
		}), wantStatus: 401, wantErr: middleware.ReasonKeyMismatch, wantCode: "invalid_token"},
		{name: "RS256 token naming an RSA key published for PS256", auth: bearer(func(tb testing.TB, f *fixture) string {
			return sign(tb, f.ps.priv, map[string]any{"alg": "RS256", "typ": "at+jwt", "kid": f.ps.kid}, claimsAt(t0))
		}), wantStatus: 401, wantErr: middleware.ReasonKeyMismatch, wantCode: "invalid_token"},

		// Signatures.
		{name: "tampered payload", auth: bearer(func(tb testing.TB, f *fixture) string {
			tok := token(tb, f.rsa, t0)
			parts := strings.Split(tok, ".")
			c := claimsAt(t0)
			c["sub"] = "admin"
			return parts[0] + "." + b64json(tb, c) + "." + parts[2]
		}), wantStatus: 401, wantErr: middleware.ReasonSignature, wantCode: "invalid_token"},
		{name: "tampered header", auth: bearer(func(tb testing.TB, f *fixture) string {
			tok := token(tb, f.rsa, t0)
			h := header(f.rsa)
			h["typ"] = "application/at+jwt"
			return b64json(tb, h) + tok[strings.IndexByte(tok, '.'):]
		}), wantStatus: 401, wantErr: middleware.ReasonSignature, wantCode: "invalid_token"},
		{name: "signed by another key under a known kid", auth: bearer(func(tb testing.TB, f *fixture) string {
			return sign(tb, f.evilRSA.priv, header(f.rsa), claimsAt(t0))
		}), wantStatus: 401, wantErr: middleware.ReasonSignature, wantCode: "invalid_token"},
		{name: "ES256 signed by another key under a known kid", auth: bearer(func(tb testing.TB, f *fixture) string {
			return sign(tb, f.evilEC.priv, header(f.ec), claimsAt(t0))
		}), wantStatus: 401, wantErr: middleware.ReasonSignature, wantCode: "invalid_token"},
		{name: "empty signature", auth: bearer(func(tb testing.TB, f *fixture) string {
			tok := token(tb, f.rsa, t0)
			return tok[:strings.LastIndexByte(tok, '.')+1]
		}), wantStatus: 401, wantErr: middleware.ReasonSignature, wantCode: "invalid_token"},
		{name: "signature with non-canonical base64url", auth: bearer(func(tb testing.TB, f *fixture) string {
			tok := token(tb, f.ec, t0) // 64-byte signature: 86 chars, the last holding 4 spare bits
			last := tok[len(tok)-1]
			flipped := strings.IndexByte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", last) ^ 1
			return tok[:len(tok)-1] + string("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[flipped])
		}), wantStatus: 401, wantErr: middleware.ReasonSignature, wantCode: "invalid_token"},

		// Claims.
		{name: "expired", auth: bearer(withClaims(func(c map[string]any) { c["exp"] = t0.Add(-time.Hour).Unix() })), wantStatus: 401, wantErr: middleware.ErrExpired, wantCode: "invalid_token",
			wantChallenge: invalidTokenFmt + `The access token has expired."`},
		{name: "nbf in the future", auth: bearer(withClaims(func(c map[string]any) { c["nbf"] = t0.Add(time.Hour).Unix() })), wantStatus: 401, wantErr: middleware.ReasonNotYetValid, wantCode: "invalid_token"},
		{name: "iat in the future", auth: bearer(withClaims(func(c map[string]any) { c["iat"] = t0.Add(time.Hour).Unix() })), wantStatus: 401, wantErr: middleware.ReasonIssuedInFuture, wantCode: "invalid_token"},
		{name: "wrong aud", auth: bearer(withClaims(func(c map[string]any) { c["aud"] = []string{"https://other.example.com"} })), wantStatus: 401, wantErr: middleware.ReasonAudience, wantCode: "invalid_token"},
		{name: "aud with a trailing slash", auth: bearer(withClaims(func(c map[string]any) { c["aud"] = testAudience + "/" })), wantStatus: 401, wantErr: middleware.ReasonAudience, wantCode: "invalid_token"},
		{name: "wrong iss", auth: bearer(withClaims(func(c map[string]any) { c["iss"] = "https://evil.example.com" })), wantStatus: 401, wantErr: middleware.ReasonIssuer, wantCode: "invalid_token"},
		{name: "missing exp", auth: bearer(withClaims(func(c map[string]any) { delete(c, "exp") })), wantStatus: 401, wantErr: middleware.ReasonMissingClaim, wantCode: "invalid_token"},
		{name: "missing iss", auth: bearer(withClaims(func(c map[string]any) { delete(c, "iss") })), wantStatus: 401, wantErr: middleware.ReasonMissingClaim, wantCode: "invalid_token"},
		{name: "missing aud", auth: bearer(withClaims(func(c map[string]any) { delete(c, "aud") })), wantStatus: 401, wantErr: middleware.ReasonMissingClaim, wantCode: "invalid_token"},

		// Scopes: RFC 6750 §3.1, 403 with the scopes needed.
		{name: "missing scope", auth: bearer(func(tb testing.TB, f *fixture) string { return token(tb, f.rsa, t0) }), scopes: []string{"write"},
			wantStatus: 403, wantErr: middleware.ReasonInsufficientScope, wantCode: "insufficient_scope",
			wantChallenge: realm + `, error="insufficient_scope", error_description="The access token lacks a scope this request needs.", scope="write"`},
		{name: "one of several scopes missing", auth: bearer(func(tb testing.TB, f *fixture) string { return token(tb, f.rsa, t0) }), scopes: []string{"read", "write", "admin:all"},
			wantStatus: 403, wantErr: middleware.ReasonInsufficientScope, wantCode: "insufficient_scope",
			wantChallenge: realm + `, error="insufficient_scope", error_description="The access token lacks a scope this request needs.", scope="read write admin:all"`},
		{name: "scope matching is case-sensitive", auth: bearer(func(tb testing.TB, f *fixture) string { return token(tb, f.rsa, t0) }), scopes: []string{"READ"},
			wantStatus: 403, wantErr: middleware.ReasonInsufficientScope, wantCode: "insufficient_scope"},
		{name: "scope prefix is not the scope", auth: bearer(withClaims(func(c map[string]any) { c["scope"] = "readonly" })), scopes: []string{"read"},
			wantStatus: 403, wantErr: middleware.ReasonInsufficientScope, wantCode: "insufficient_scope"},
		{name: "no scope claim", auth: bearer(withClaims(func(c map[string]any) { delete(c, "scope") })), scopes: []string{"read"},
			wantStatus: 403, wantErr: middleware.ReasonInsufficientScope, wantCode: "insufficient_scope"},
	}

	f := newFixture(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.run(t, f)
		})
	}
	// Nothing logged a token, or even a token's signature.
	logs := f.logs.String()
	if !strings.Contains(logs, "bearer token refused") {
		t.Errorf("refusals were not logged at Debug; logs:\n%s", logs)
	}
	for _, tok := range f.tokensOut {
		sig := tok[strings.LastIndexByte(tok, '.')+1:]
		if len(sig) > 8 && strings.Contains(logs, sig) {
			t.Errorf("a token was logged:\n%s", logs)
			break
		}
	}
}

func (tc verifyTest) run(t *testing.T, f *fixture) {
	var values []string
	if tc.auth != nil {
		values = tc.auth(t, f)
	}
	var seen *middleware.Token
	h := middleware.RequireToken(f.v, tc.scopes...)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := middleware.TokenFrom(r.Context())
		if !ok {
			t.Error("TokenFrom: no token in the handler's context")
		}
		seen = tok
		w.WriteHeader(http.StatusOK)
	}))
	req := httptest.NewRequest(http.MethodGet, "/api", nil)
	for _, v := range values {
		req.Header.Add("Authorization", v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)

	if rec.Code != tc.wantStatus {
		t.Fatalf("status: got %d, want %d (body %s)", rec.Code, tc.wantStatus, rec.Body)
	}
	if tc.wantStatus == http.StatusOK {
		if seen == nil {
			t.Fatal("handler did not run")
		}
		checkToken(t, seen)
		if len(values) == 1 {
			// Verify agrees.
			tok, err := f.v.Verify(t.Context(), strings.TrimLeft(values[0][len("Bearer"):], " "))
			if err != nil || tok == nil {
				t.Fatalf("Verify: got %v, %v; want a token", tok, err)
			}
		}
		return
	}
	if seen != nil {
		t.Fatal("handler ran for a refused request")
	}

	gotChallenge := rec.Header().Get("WWW-Authenticate")
	if tc.wantChallenge != "" && gotChallenge != tc.wantChallenge {
		t.Errorf("WWW-Authenticate:\n got %s\nwant %s", gotChallenge, tc.wantChallenge)
	}
	if gotChallenge == "" {
		t.Error("no WWW-Authenticate header")
	} else if tc.wantCode != "" && !strings.Contains(gotChallenge, `error="`+tc.wantCode+`"`) {
		t.Errorf("WWW-Authenticate %q lacks error=%q", gotChallenge, tc.wantCode)
	} else if tc.wantCode == "" && strings.Contains(gotChallenge, "error=") {
		t.Errorf("WWW-Authenticate %q has an error code; RFC 6750 §3.1 wants none without credentials", gotChallenge)
	}
	if got := rec.Header().Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control: got %q, want no-store", got)
	}
	if got := rec.Header().Get("Content-Type"); got != "application/json" {
		t.Errorf("Content-Type: got %q, want application/json", got)
	}
	var body struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("body %q: %v", rec.Body, err)
	}
	if body.Error != tc.wantCode {
		t.Errorf("body error: got %q, want %q", body.Error, tc.wantCode)
	}
	if body.Description == "" {
		t.Error("body has no error_description")
	}

	// The same refusal, from the functions themselves.
	var err error
	if len(values) == 1 {
		var tokStr string
		if tokStr, err = middleware.ParseBearer(values[0]); err == nil {
			var tok *middleware.Token
			tok, err = f.v.Verify(t.Context(), tokStr)
			if err == nil && tc.wantErr == middleware.ReasonInsufficientScope {
				for _, s := range tc.scopes {
					if !tok.HasScope(s) {
						err = middleware.ReasonInsufficientScope
					}
				}
			} else if err == nil {
				t.Fatalf("Verify accepted a token RequireToken refused")
			} else if tok != nil {
				t.Errorf("Verify returned a token with error %v", err)
			}
		}
	} else if len(values) == 0 {
		_, err = middleware.ParseBearer("")
	} else {
		err = middleware.ErrMalformedHeader
	}
	if !errors.Is(err, tc.wantErr) {
		t.Errorf("error: got %v, want %v", err, tc.wantErr)
	}
	// Every invalid_token refusal is ErrInvalidToken, whatever its reason,
	// and no other refusal is.
	if got := errors.Is(err, middleware.ErrInvalidToken); got != (tc.wantCode == "invalid_token") {
		t.Errorf("errors.Is(%v, ErrInvalidToken) = %v, want %v", err, got, !got)
	}
	var me *middleware.Error
	if err != middleware.ReasonInsufficientScope && err != middleware.ErrMalformedHeader && !errors.As(err, &me) {
		t.Errorf("error %v is not a *middleware.Error", err)
	}
}

// checkToken checks the fields of a token made from claimsAt(t0) (or a
// variant).
func checkToken(t *testing.T, tok *middleware.Token) {
	t.Helper()
	if tok.Subject != "user-42" || tok.ClientID != "native-app" || tok.Issuer != testIssuer || tok.JTI != "jti-1" {
		t.Errorf("token: got sub %q client_id %q iss %q jti %q", tok.Subject, tok.ClientID, tok.Issuer, tok.JTI)
	}
	if len(tok.Audience) == 0 || tok.Audience[0] != testAudience {
		t.Errorf("Audience: got %q", tok.Audience)
	}
	if !tok.IssuedAt.IsZero() && !tok.IssuedAt.Equal(t0) && !tok.IssuedAt.Equal(t0.Add(10*time.Second)) {
		t.Errorf("IssuedAt: got %v", tok.IssuedAt)
	}
	if !tok.AuthTime.Equal(t0.Add(-time.Minute)) {
		t.Errorf("AuthTime: got %v, want %v", tok.AuthTime, t0.Add(-time.Minute))
	}
	if tok.ExpiresAt.IsZero() {
		t.Error("ExpiresAt is zero")
	}
	if tok.Claims["https://example.com/roles"] == nil {
		t.Errorf("custom claim missing from Claims: %v", tok.Claims)
	}
}

func TestVerifyValidToken(t *testing.T) {
	f := newFixture(t)
	for _, k := range []*testKey{f.rsa, f.ec} {
		tok, err := f.v.Verify(t.Context(), token(t, k, t0))
		if err != nil {
			t.Fatalf("%s: %v", k.alg, err)
		}
		checkToken(t, tok)
		want := []string{"openid", "profile", "read"}
		if !reflect.DeepEqual(tok.Scopes, want) {
			t.Errorf("Scopes: got %q, want %q", tok.Scopes, want)
		}
		if !tok.HasScope("profile") || tok.HasScope("write") || tok.HasScope("") {
			t.Errorf("HasScope wrong for scopes %q", tok.Scopes)
		}
		if !tok.ExpiresAt.Equal(t0.Add(time.Hour)) {
			t.Errorf("ExpiresAt: got %v, want %v", tok.ExpiresAt, t0.Add(time.Hour))
		}
		if got := tok.Claims["scope"]; got != "openid profile read" {
			t.Errorf(`Claims["scope"]: got %v`, got)
		}
	}
	var nilTok *middleware.Token
	if nilTok.HasScope("x") {
		t.Error("nil Token has a scope")
	}
	if _, ok := middleware.TokenFrom(context.Background()); ok {
		t.Error("TokenFrom found a token in an empty context")
	}
}

func TestVerifyLeewayBounds(t *testing.T) {
	f := newFixture(t)
	// Expired by exactly the leeway: refused (exp is exclusive, RFC 7519
	// §4.1.4: "on or after").
	c := claimsAt(t0)
	c["exp"] = t0.Add(-30 * time.Second).Unix()
	if _, err := f.v.Verify(t.Context(), sign(t, f.rsa.priv, header(f.rsa), c)); !errors.Is(err, middleware.ErrExpired) {
		t.Errorf("exp = now - leeway: got %v, want ErrExpired", err)
	}
	c["exp"] = t0.Add(-29 * time.Second).Unix()
	if _, err := f.v.Verify(t.Context(), sign(t, f.rsa.priv, header(f.rsa), c)); err != nil {
		t.Errorf("exp = now - leeway + 1s: got %v, want success", err)
	}
	// Fractional NumericDates are allowed (RFC 7519 §2).
	c["exp"] = float64(t0.Add(time.Hour).Unix()) + 0.5
	tok, err := f.v.Verify(t.Context(), sign(t, f.rsa.priv, header(f.rsa), c))
	if err != nil || !tok.ExpiresAt.Equal(t0.Add(time.Hour+500*time.Millisecond)) {
		t.Errorf("fractional exp: got %v, %v", tok, err)
	}
	// A NumericDate beyond year 9999 is malformed, not an overflow.
	c["exp"] = 1e300
	if _, err := f.v.Verify(t.Context(), sign(t, f.rsa.priv, header(f.rsa), c)); !errors.Is(err, middleware.ReasonMalformedToken) {
		t.Errorf("exp 1e300: got %v, want ReasonMalformedToken", err)
	}
}

func TestVerifyTooLarge(t *testing.T) {
	f := newFixture(t)
	c := claimsAt(t0)
	c["padding"] = strings.Repeat("x", 20<<10)
	_, err := f.v.Verify(t.Context(), sign(t, f.rsa.priv, header(f.rsa), c))
	if !errors.Is(err, middleware.ReasonMalformedToken) {
		t.Errorf("got %v, want ReasonMalformedToken", err)
	}
	if _, err := f.v.Verify(t.Context(), ""); !errors.Is(err, middleware.ReasonMalformedToken) {
		t.Errorf("empty token: got %v, want ReasonMalformedToken", err)
	}
}
