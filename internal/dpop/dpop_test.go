package dpop_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/pixieauth/pixie/internal/dpop"
	"github.com/pixieauth/pixie/internal/dpoptest"
)

// Proofs in these tests are written with go-jose, a JOSE library
// independent of the jwx the checker uses.

const (
	tokenURL = "https://auth.example.com/token"
	apiURL   = "https://api.example.com/v1/things"
)

var (
	keysOnce sync.Once
	ecKey    *ecdsa.PrivateKey
	p384Key  *ecdsa.PrivateKey
	rsaKey   *rsa.PrivateKey
	rsaKey2  *rsa.PrivateKey
	edKey    ed25519.PrivateKey
)

func keys(t testing.TB) {
	t.Helper()
	keysOnce.Do(func() {
		var err error
		if ecKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			panic(err)
		}
		if p384Key, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader); err != nil {
			panic(err)
		}
		if rsaKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
		if rsaKey2, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
		if _, edKey, err = ed25519.GenerateKey(rand.Reader); err != nil {
			panic(err)
		}
	})
}

// spec describes one proof to write.
type spec struct {
	alg jose.SignatureAlgorithm // default ES256
	key any                     // signing key; default ecKey
	typ string                  // default "dpop+jwt"; "-" omits it
	// jwk replaces the embedded jwk header member: nil embeds the signing
	// key's public key, "-" omits the member, anything else is put as is.
	jwk any
	// claims override the defaults (jti, htm POST, htu tokenURL, iat now);
	// a nil value deletes the claim.
	claims map[string]any
	// header holds extra protected header members.
	header map[jose.HeaderKey]any
	now    time.Time
}

func freshJTI() string {
	var b [12]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func write(t testing.TB, s spec) string {
	t.Helper()
	keys(t)
	if s.alg == "" {
		s.alg = jose.ES256
	}
	if s.key == nil {
		s.key = ecKey
	}
	if s.now.IsZero() {
		s.now = time.Now()
	}
	opts := &jose.SignerOptions{}
	switch s.typ {
	case "":
		opts.WithType("dpop+jwt")
	case "-":
	default:
		opts.WithType(jose.ContentType(s.typ))
	}
	switch s.jwk {
	case nil:
		opts.EmbedJWK = true
	case "-":
	default:
		opts.WithHeader("jwk", s.jwk)
	}
	for k, v := range s.header {
		opts.WithHeader(k, v)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: s.alg, Key: s.key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	cl := map[string]any{
		"jti": freshJTI(),
		"htm": "POST",
		"htu": tokenURL,
		"iat": s.now.Unix(),
	}
	for k, v := range s.claims {
		if v == nil {
			delete(cl, k)
		} else {
			cl[k] = v
		}
	}
	return dpoptest.Sign(t, signer, cl)
}

// unsigned writes {"alg":"none"} proofs by hand: go-jose refuses to.
func unsigned(t testing.TB) string {
	keys(t)
	jwkJSON, err := json.Marshal(jose.JSONWebKey{Key: ecKey.Public()})
	if err != nil {
		t.Fatal(err)
	}
	h := `{"alg":"none","typ":"dpop+jwt","jwk":` + string(jwkJSON) + `}`
	p := `{"jti":"x1","htm":"POST","htu":"` + tokenURL + `","iat":` + big.NewInt(time.Now().Unix()).String() + `}`
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(h)) + "." + enc([]byte(p)) + "."
}

func thumb(t testing.TB, pub any) string { return dpoptest.Thumbprint(t, pub) }

func ath(token string) string { return dpoptest.ATH(token) }

func TestCheck(t *testing.T) {
	keys(t)
	now := time.Now()
	nonceKey := []byte("0123456789abcdef0123456789abcdef")
	nonceAt := func(at time.Time) string {
		return (&dpop.Checker{NonceKey: nonceKey, Now: func() time.Time { return at }}).Nonce()
	}
	forged := (&dpop.Checker{NonceKey: []byte("another key, another key, another"), Now: func() time.Time { return now }}).Nonce()
	smallRSA := jose.JSONWebKey{Key: &rsa.PublicKey{N: new(big.Int).Lsh(big.NewInt(1), 1023).Or(new(big.Int).Lsh(big.NewInt(1), 1023), big.NewInt(1)), E: 65537}}

	// replayed is a proof already spent in the shared replay below.
	replay := dpop.NewMemoryReplay(100)
	replayed := write(t, spec{})
	if _, err := (&dpop.Checker{Now: func() time.Time { return now }, Replay: replay}).Check(t.Context(), []string{replayed}, dpop.Request{Method: "POST", URL: tokenURL}); err != nil {
		t.Fatalf("first use of the replayed proof: %v", err)
	}

	type testCase struct {
		name string
		// headers are the DPoP header values of the request.
		headers []string
		// req is what the server expects; zero means POST tokenURL.
		req dpop.Request
		// nonce makes the checker require a server nonce.
		nonce bool
		// wantCode is the refusal's code, "" for acceptance.
		wantCode string
		// wantDesc is a substring of the refusal's description.
		wantDesc string
		// wantThumb is the thumbprint of an accepted proof's key.
		wantThumb string
	}
	tests := []testCase{
		{name: "ES256 accepted", headers: []string{write(t, spec{})}, wantThumb: thumb(t, ecKey.Public())},
		{name: "RS256 accepted", headers: []string{write(t, spec{alg: jose.RS256, key: rsaKey})}, wantThumb: thumb(t, rsaKey.Public())},
		{name: "PS256 accepted", headers: []string{write(t, spec{alg: jose.PS256, key: rsaKey})}, wantThumb: thumb(t, rsaKey.Public())},
		{name: "EdDSA accepted", headers: []string{write(t, spec{alg: jose.EdDSA, key: edKey})}, wantThumb: thumb(t, edKey.Public())},
		{name: "fractional iat accepted", headers: []string{write(t, spec{claims: map[string]any{"iat": float64(now.Unix()) + 0.5}})}},

		{name: "no header", headers: nil, wantCode: dpop.CodeInvalidProof, wantDesc: "missing"},
		{name: "empty header", headers: []string{""}, wantCode: dpop.CodeInvalidProof, wantDesc: "missing"},
		{name: "two headers", headers: []string{write(t, spec{}), write(t, spec{})}, wantCode: dpop.CodeInvalidProof, wantDesc: "more than one"},
		{name: "garbage", headers: []string{"not a jws"}, wantCode: dpop.CodeInvalidProof, wantDesc: "compact JWS"},
		{name: "garbage base64", headers: []string{"a.b.c"}, wantCode: dpop.CodeInvalidProof, wantDesc: "compact JWS"},
		{name: "too long", headers: []string{strings.Repeat("a", 9000) + ".b.c"}, wantCode: dpop.CodeInvalidProof, wantDesc: "longer"},
		{name: "alg none", headers: []string{unsigned(t)}, wantCode: dpop.CodeInvalidProof, wantDesc: "alg"},
		// An HMAC proof naming a public key: a confused checker would use
		// the public key as the HMAC secret.
		{name: "HS256", headers: []string{write(t, spec{alg: jose.HS256, key: []byte("0123456789abcdef0123456789abcdef"), jwk: jose.JSONWebKey{Key: ecKey.Public()}})}, wantCode: dpop.CodeInvalidProof, wantDesc: "alg"},
		{name: "ES384 not accepted", headers: []string{write(t, spec{alg: jose.ES384, key: p384Key})}, wantCode: dpop.CodeInvalidProof, wantDesc: "alg"},
		{name: "wrong typ", headers: []string{write(t, spec{typ: "JWT"})}, wantCode: dpop.CodeInvalidProof, wantDesc: "typ"},
		{name: "TYP is not typ", headers: []string{write(t, spec{typ: "-", header: map[jose.HeaderKey]any{"TYP": "dpop+jwt"}})}, wantCode: dpop.CodeInvalidProof, wantDesc: "typ"},
		{name: "crit refused", headers: []string{write(t, spec{header: map[jose.HeaderKey]any{"crit": []string{"exp"}, "exp": 1}})}, wantCode: dpop.CodeInvalidProof, wantDesc: "crit"},
		{name: "no typ", headers: []string{write(t, spec{typ: "-"})}, wantCode: dpop.CodeInvalidProof, wantDesc: "typ"},
		{name: "missing jwk", headers: []string{write(t, spec{jwk: "-"})}, wantCode: dpop.CodeInvalidProof, wantDesc: "no jwk"},
		{name: "EC private key in jwk", headers: []string{write(t, spec{jwk: jose.JSONWebKey{Key: ecKey}})}, wantCode: dpop.CodeInvalidProof, wantDesc: "not a public key"},
		{name: "RSA private key in jwk", headers: []string{write(t, spec{alg: jose.RS256, key: rsaKey, jwk: jose.JSONWebKey{Key: rsaKey}})}, wantCode: dpop.CodeInvalidProof, wantDesc: "not a public key"},
		{name: "symmetric jwk", headers: []string{write(t, spec{jwk: jose.JSONWebKey{Key: []byte("0123456789abcdef")}})}, wantCode: dpop.CodeInvalidProof, wantDesc: "not a public key"},
		{name: "RSA key under 2048 bits", headers: []string{write(t, spec{alg: jose.RS256, key: rsaKey, jwk: smallRSA})}, wantCode: dpop.CodeInvalidProof, wantDesc: "bits"},
		{name: "EC key for RS256", headers: []string{write(t, spec{alg: jose.RS256, key: rsaKey, jwk: jose.JSONWebKey{Key: ecKey.Public()}})}, wantCode: dpop.CodeInvalidProof, wantDesc: "does not fit"},
		{name: "P-384 key for ES256", headers: []string{write(t, spec{jwk: jose.JSONWebKey{Key: p384Key.Public()}})}, wantCode: dpop.CodeInvalidProof, wantDesc: "P-256"},
		// ed25519.Verify panics on a public key of the wrong length.
		{name: "short Ed25519 key", headers: []string{write(t, spec{alg: jose.EdDSA, key: edKey, jwk: map[string]string{"kty": "OKP", "crv": "Ed25519", "x": "AAAA"}})}, wantCode: dpop.CodeInvalidProof, wantDesc: "key"},
		{name: "EC point not on the curve", headers: []string{write(t, spec{jwk: map[string]string{"kty": "EC", "crv": "P-256", "x": "AQ", "y": "AQ"}})}, wantCode: dpop.CodeInvalidProof, wantDesc: "P-256"},
		{name: "jwk of another key", headers: []string{write(t, spec{alg: jose.RS256, key: rsaKey, jwk: jose.JSONWebKey{Key: rsaKey2.Public()}})}, wantCode: dpop.CodeInvalidProof, wantDesc: "signature"},

		{name: "no jti", headers: []string{write(t, spec{claims: map[string]any{"jti": nil}})}, wantCode: dpop.CodeInvalidProof, wantDesc: "jti"},
		{name: "jti too long", headers: []string{write(t, spec{claims: map[string]any{"jti": strings.Repeat("j", 257)}})}, wantCode: dpop.CodeInvalidProof, wantDesc: "jti"},
		{name: "jti not a string", headers: []string{write(t, spec{claims: map[string]any{"jti": 7}})}, wantCode: dpop.CodeInvalidProof, wantDesc: "jti"},
		{name: "claim names are case-sensitive", headers: []string{write(t, spec{claims: map[string]any{"htm": nil, "HTM": "POST"}})}, wantCode: dpop.CodeInvalidProof, wantDesc: "htm"},
		{name: "wrong htm", headers: []string{write(t, spec{claims: map[string]any{"htm": "GET"}})}, wantCode: dpop.CodeInvalidProof, wantDesc: "htm"},
		{name: "htm lower case", headers: []string{write(t, spec{claims: map[string]any{"htm": "post"}})}, wantCode: dpop.CodeInvalidProof, wantDesc: "htm"},
		{name: "htu other path", headers: []string{write(t, spec{claims: map[string]any{"htu": "https://auth.example.com/authorize"}})}, wantCode: dpop.CodeInvalidProof, wantDesc: "htu"},
		{name: "htu other host", headers: []string{write(t, spec{claims: map[string]any{"htu": "https://evil.example.com/token"}})}, wantCode: dpop.CodeInvalidProof, wantDesc: "htu"},
		{name: "htu http instead of https", headers: []string{write(t, spec{claims: map[string]any{"htu": "http://auth.example.com/token"}})}, wantCode: dpop.CodeInvalidProof, wantDesc: "htu"},
		{name: "htu other port", headers: []string{write(t, spec{claims: map[string]any{"htu": "https://auth.example.com:8443/token"}})}, wantCode: dpop.CodeInvalidProof, wantDesc: "htu"},
		{name: "htu relative", headers: []string{write(t, spec{claims: map[string]any{"htu": "/token"}})}, wantCode: dpop.CodeInvalidProof, wantDesc: "htu"},
		{name: "htu missing", headers: []string{write(t, spec{claims: map[string]any{"htu": nil}})}, wantCode: dpop.CodeInvalidProof, wantDesc: "htu"},
		{name: "htu with query and fragment accepted", headers: []string{write(t, spec{claims: map[string]any{"htu": tokenURL + "?a=b#frag"}})}},
		{name: "htu with default port and upper case accepted", headers: []string{write(t, spec{claims: map[string]any{"htu": "HTTPS://Auth.Example.COM:443/token"}})}},
		{name: "request URL with query accepted", headers: []string{write(t, spec{})}, req: dpop.Request{Method: "POST", URL: tokenURL + "?x=1"}},
		{name: "empty path is /", headers: []string{write(t, spec{claims: map[string]any{"htu": "http://localhost:80"}})}, req: dpop.Request{Method: "POST", URL: "http://localhost/"}},
		{name: "stale iat", headers: []string{write(t, spec{now: now.Add(-6 * time.Minute)})}, wantCode: dpop.CodeInvalidProof, wantDesc: "too old"},
		{name: "future iat", headers: []string{write(t, spec{now: now.Add(6 * time.Minute)})}, wantCode: dpop.CodeInvalidProof, wantDesc: "future"},
		{name: "small future skew accepted", headers: []string{write(t, spec{now: now.Add(time.Minute)})}},
		{name: "iat a string", headers: []string{write(t, spec{claims: map[string]any{"iat": "1700000000"}})}, wantCode: dpop.CodeInvalidProof, wantDesc: "iat"},
		{name: "no iat", headers: []string{write(t, spec{claims: map[string]any{"iat": nil}})}, wantCode: dpop.CodeInvalidProof, wantDesc: "iat"},

		{name: "ath accepted", headers: []string{write(t, spec{claims: map[string]any{"htm": "GET", "htu": apiURL, "ath": ath("tok-1")}})}, req: dpop.Request{Method: "GET", URL: apiURL, AccessToken: "tok-1"}},
		{name: "missing ath", headers: []string{write(t, spec{claims: map[string]any{"htm": "GET", "htu": apiURL}})}, req: dpop.Request{Method: "GET", URL: apiURL, AccessToken: "tok-1"}, wantCode: dpop.CodeInvalidProof, wantDesc: "no ath"},
		{name: "wrong ath", headers: []string{write(t, spec{claims: map[string]any{"htm": "GET", "htu": apiURL, "ath": ath("tok-2")}})}, req: dpop.Request{Method: "GET", URL: apiURL, AccessToken: "tok-1"}, wantCode: dpop.CodeInvalidProof, wantDesc: "ath"},
		{name: "ath ignored at the token endpoint", headers: []string{write(t, spec{claims: map[string]any{"ath": ath("whatever")}})}},

		{name: "replayed jti", headers: []string{replayed}, wantCode: dpop.CodeInvalidProof, wantDesc: "replayed"},

		{name: "nonce required, none sent", headers: []string{write(t, spec{})}, nonce: true, wantCode: dpop.CodeUseNonce},
		{name: "good nonce accepted", headers: []string{write(t, spec{claims: map[string]any{"nonce": nonceAt(now)}})}, nonce: true},
		{name: "nonce of the previous step accepted", headers: []string{write(t, spec{claims: map[string]any{"nonce": nonceAt(now.Add(-time.Minute))}})}, nonce: true},
		{name: "nonce from 2 steps ago refused", headers: []string{write(t, spec{claims: map[string]any{"nonce": nonceAt(now.Add(-2 * time.Minute))}})}, nonce: true, wantCode: dpop.CodeUseNonce},
		{name: "nonce from the next step refused", headers: []string{write(t, spec{claims: map[string]any{"nonce": nonceAt(now.Add(time.Minute))}})}, nonce: true, wantCode: dpop.CodeUseNonce},
		{name: "forged nonce refused", headers: []string{write(t, spec{claims: map[string]any{"nonce": forged}})}, nonce: true, wantCode: dpop.CodeUseNonce},
		{name: "garbage nonce refused", headers: []string{write(t, spec{claims: map[string]any{"nonce": "abc"}})}, nonce: true, wantCode: dpop.CodeUseNonce},
		{name: "nonce ignored when not required", headers: []string{write(t, spec{claims: map[string]any{"nonce": "abc"}})}},

		{name: "thumbprint matches", headers: []string{write(t, spec{})}, req: dpop.Request{Method: "POST", URL: tokenURL, Thumbprint: thumb(t, ecKey.Public())}},
		{name: "thumbprint mismatch", headers: []string{write(t, spec{})}, req: dpop.Request{Method: "POST", URL: tokenURL, Thumbprint: thumb(t, rsaKey.Public())}, wantCode: dpop.CodeInvalidProof, wantDesc: "bound"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := &dpop.Checker{Now: func() time.Time { return now }, Replay: replay}
			if tc.nonce {
				c.NonceKey = nonceKey
			}
			req := tc.req
			if req.Method == "" {
				req = dpop.Request{Method: "POST", URL: tokenURL}
			}
			p, err := c.Check(t.Context(), tc.headers, req)
			if tc.wantCode == "" {
				if err != nil {
					t.Fatalf("Check: %v", err)
				}
				if p.JTI == "" || p.IssuedAt.IsZero() {
					t.Errorf("proof = %+v: no jti or iat", p)
				}
				if tc.wantThumb != "" && p.Thumbprint != tc.wantThumb {
					t.Errorf("thumbprint = %q, go-jose says %q", p.Thumbprint, tc.wantThumb)
				}
				return
			}
			var de *dpop.Error
			if !errors.As(err, &de) {
				t.Fatalf("Check = %v, %v; want *dpop.Error %s", p, err, tc.wantCode)
			}
			if de.Code != tc.wantCode || !strings.Contains(de.Description, tc.wantDesc) {
				t.Errorf("Check: %q %q, want %q containing %q", de.Code, de.Description, tc.wantCode, tc.wantDesc)
			}
			for _, h := range tc.headers {
				if len(h) > 20 && strings.Contains(de.Error(), h[:20]) {
					t.Errorf("error %q echoes the proof", de)
				}
			}
		})
	}
}

// TestReplayError: a Replay failure is the server's, not an *Error.
func TestReplayError(t *testing.T) {
	boom := errors.New("store down")
	var gotKey string
	var gotExp time.Time
	now := time.Now()
	c := &dpop.Checker{Now: func() time.Time { return now }, Replay: func(_ context.Context, key string, exp time.Time) (bool, error) {
		gotKey, gotExp = key, exp
		return false, boom
	}}
	jti := "the-jti"
	_, err := c.Check(t.Context(), []string{write(t, spec{claims: map[string]any{"jti": jti}, now: now})}, dpop.Request{Method: "POST", URL: tokenURL})
	if !errors.Is(err, boom) {
		t.Fatalf("Check = %v, want the Replay error", err)
	}
	var de *dpop.Error
	if errors.As(err, &de) {
		t.Errorf("Replay error became a *dpop.Error")
	}
	if gotKey == "" || strings.Contains(gotKey, jti) {
		t.Errorf("Replay key %q: empty or holds the raw jti", gotKey)
	}
	if want := time.Unix(now.Unix(), 0).Add(5 * time.Minute); !gotExp.Equal(want) {
		t.Errorf("expiresAt = %v, want iat+5m = %v", gotExp, want)
	}
}

// TestReplayOnlyAfterSignature: Replay is not called for a proof whose
// signature fails, so forged proofs cannot fill the replay store.
func TestReplayOnlyAfterSignature(t *testing.T) {
	keys(t)
	called := false
	c := &dpop.Checker{Replay: func(context.Context, string, time.Time) (bool, error) { called = true; return true, nil }}
	bad := write(t, spec{alg: jose.RS256, key: rsaKey, jwk: jose.JSONWebKey{Key: rsaKey2.Public()}})
	if _, err := c.Check(t.Context(), []string{bad}, dpop.Request{Method: "POST", URL: tokenURL}); err == nil {
		t.Fatal("forged proof accepted")
	}
	if called {
		t.Error("Replay called for a proof whose signature does not verify")
	}
}

func TestBadRequestURL(t *testing.T) {
	c := &dpop.Checker{}
	_, err := c.Check(t.Context(), []string{write(t, spec{})}, dpop.Request{Method: "POST", URL: "/token"})
	var de *dpop.Error
	if err == nil || errors.As(err, &de) {
		t.Fatalf("Check with a relative Request.URL = %v, want a plain error", err)
	}
}

func TestMemoryReplay(t *testing.T) {
	ctx := t.Context()
	r := dpop.NewMemoryReplay(2)
	live := time.Now().Add(time.Minute)
	for _, step := range []struct {
		key       string
		exp       time.Time
		wantFirst bool
		wantErr   bool
	}{
		{"a", live, true, false},
		{"a", live, false, false},                        // replay
		{"b", time.Now().Add(-time.Second), true, false}, // recorded, already expired
		{"c", live, true, false},                         // b is forgotten first, so c fits
		{"d", live, false, true},                         // full of live keys: refused
		{"a", live, false, false},                        // still remembered
		{"b", time.Now().Add(time.Minute), false, true},  // b was forgotten, but no room
	} {
		first, err := r(ctx, step.key, step.exp)
		if first != step.wantFirst || (err != nil) != step.wantErr {
			t.Errorf("record(%q) = %v, %v; want first=%v err=%v", step.key, first, err, step.wantFirst, step.wantErr)
		}
	}
}

func TestAlgsFresh(t *testing.T) {
	a := dpop.Algs()
	if strings.Join(a, " ") != "ES256 RS256 PS256 EdDSA" {
		t.Fatalf("Algs = %v", a)
	}
	a[0] = "none"
	if dpop.Algs()[0] != "ES256" {
		t.Error("Algs shares its slice")
	}
}

func TestNonce(t *testing.T) {
	if n := (&dpop.Checker{}).Nonce(); n != "" {
		t.Errorf("Nonce without NonceKey = %q", n)
	}
	n := (&dpop.Checker{NonceKey: []byte("k")}).Nonce()
	for _, r := range n {
		// RFC 9449 §8.1: NQCHAR, and base64url in practice.
		if !strings.ContainsRune("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", r) {
			t.Fatalf("nonce %q has %q", n, r)
		}
	}
}

func TestAccessTokenHash(t *testing.T) {
	// RFC 9449 §7.1's example: the ath of this access token.
	const tok = "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"
	if got, want := dpop.AccessTokenHash(tok), "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"; got != want {
		t.Errorf("AccessTokenHash = %q, want %q", got, want)
	}
}
