package middleware_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/pixieauth/pixie/middleware"
)

const (
	testIssuer   = "https://auth.example.com"
	testAudience = "https://api.example.com"
)

// t0 is the tests' fixed "now".
var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// testKey is a signing key as the provider makes them: RS256 or ES256, kid
// the RFC 7638 thumbprint, published with alg and use.
type testKey struct {
	alg  string
	kid  string
	priv crypto.Signer
	pub  jwk.Key // public, with kid, alg and use
}

// keyCache holds generated keys, so that the tests, fuzzers and benchmarks
// don't spend their time generating RSA keys. Keys are read-only.
var keyCache struct {
	sync.Mutex
	keys map[string]*testKey
}

// sharedKey returns the test key named name, generating it on first use.
func sharedKey(tb testing.TB, name, alg string) *testKey {
	tb.Helper()
	keyCache.Lock()
	defer keyCache.Unlock()
	if k, ok := keyCache.keys[name]; ok {
		return k
	}
	if keyCache.keys == nil {
		keyCache.keys = map[string]*testKey{}
	}
	k := newKey(tb, alg)
	keyCache.keys[name] = k
	return k
}

// newKey generates a fresh key for alg ("RS256" or "ES256").
func newKey(tb testing.TB, alg string) *testKey {
	tb.Helper()
	var priv crypto.Signer
	var err error
	switch alg {
	case "RS256", "PS256":
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	case "ES256":
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	default:
		tb.Fatalf("newKey: unsupported alg %q", alg)
	}
	if err != nil {
		tb.Fatal(err)
	}
	pub, err := jwk.FromRaw(priv.Public())
	if err != nil {
		tb.Fatal(err)
	}
	tp, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		tb.Fatal(err)
	}
	kid := base64.RawURLEncoding.EncodeToString(tp)
	for k, v := range map[string]any{jwk.KeyIDKey: kid, jwk.AlgorithmKey: jwa.SignatureAlgorithm(alg), jwk.KeyUsageKey: "sig"} {
		if err := pub.Set(k, v); err != nil {
			tb.Fatal(err)
		}
	}
	return &testKey{alg: alg, kid: kid, priv: priv, pub: pub}
}

// jwksOf returns the public JWK Set of keys, as JSON.
func jwksOf(tb testing.TB, keys ...*testKey) []byte {
	tb.Helper()
	b, err := json.Marshal(setOf(tb, keys...))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// setOf returns the public JWK Set of keys.
func setOf(tb testing.TB, keys ...*testKey) jwk.Set {
	tb.Helper()
	set := jwk.NewSet()
	for _, k := range keys {
		if err := set.AddKey(k.pub); err != nil {
			tb.Fatal(err)
		}
	}
	return set
}

// claimsAt returns the claims of a valid access token issued at now.
func claimsAt(now time.Time) map[string]any {
	return map[string]any{
		"iss":                       testIssuer,
		"sub":                       "user-42",
		"aud":                       []string{testAudience, "https://other.example.com"},
		"exp":                       now.Add(time.Hour).Unix(),
		"iat":                       now.Unix(),
		"auth_time":                 now.Add(-time.Minute).Unix(),
		"jti":                       "jti-1",
		"client_id":                 "native-app",
		"scope":                     "openid profile read",
		"https://example.com/roles": []string{"admin"},
	}
}

// header returns the JOSE header the provider writes for k.
func header(k *testKey) map[string]any {
	return map[string]any{"alg": k.alg, "typ": "at+jwt", "kid": k.kid}
}

// b64json returns the base64url encoding of v as JSON.
func b64json(tb testing.TB, v any) string {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// sign returns the compact JWS of hdr and claims, signed by key with
// hdr["alg"] through jwx's signer; key may be a crypto.Signer or []byte
// (HMAC).
func sign(tb testing.TB, key any, hdr, claims map[string]any) string {
	tb.Helper()
	alg, _ := hdr["alg"].(string)
	return signRaw(tb, key, alg, b64json(tb, hdr)+"."+b64json(tb, claims))
}

// signRaw appends to a signing input the signature of key with alg.
func signRaw(tb testing.TB, key any, alg, input string) string {
	tb.Helper()
	s, err := jws.NewSigner(jwa.SignatureAlgorithm(alg))
	if err != nil {
		tb.Fatal(err)
	}
	sig, err := s.Sign([]byte(input), key)
	if err != nil {
		tb.Fatal(err)
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// token returns a valid access token signed by k, issued at now.
func token(tb testing.TB, k *testKey, now time.Time) string {
	tb.Helper()
	return sign(tb, k.priv, header(k), claimsAt(now))
}

// clock is an adjustable Config.Now.
type clock struct{ ns atomic.Int64 }

func newClock(t time.Time) *clock {
	c := &clock{}
	c.ns.Store(t.UnixNano())
	return c
}

func (c *clock) Now() time.Time          { return time.Unix(0, c.ns.Load()).UTC() }
func (c *clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }
func fixed(t time.Time) func() time.Time { return func() time.Time { return t } }
func discard() *slog.Logger              { return slog.New(slog.DiscardHandler) }
func bufferLogger(buf *syncBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// syncBuffer is a bytes.Buffer safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// jwksServer serves a JWK Set that tests can change, over real HTTP, and
// counts the requests.
type jwksServer struct {
	*httptest.Server
	doc      atomic.Pointer[[]byte]
	status   atomic.Int32 // 0: 200
	requests atomic.Int64
}

func newJWKSServer(tb testing.TB, keys ...*testKey) *jwksServer {
	tb.Helper()
	s := &jwksServer{}
	s.set(tb, keys...)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		if code := s.status.Load(); code != 0 {
			http.Error(w, "down", int(code))
			return
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		_, _ = w.Write(*s.doc.Load())
	}))
	tb.Cleanup(s.Close)
	return s
}

func (s *jwksServer) set(tb testing.TB, keys ...*testKey) {
	tb.Helper()
	doc := jwksOf(tb, keys...)
	s.doc.Store(&doc)
}

func (s *jwksServer) url() string { return s.URL + "/.well-known/jwks.json" }

// newVerifier makes a Verifier and closes it at the end of the test.
func newVerifier(tb testing.TB, cfg middleware.Config) *middleware.Verifier {
	tb.Helper()
	if cfg.Issuer == "" {
		cfg.Issuer = testIssuer
	}
	if cfg.Audience == "" {
		cfg.Audience = testAudience
	}
	if cfg.Logger == nil {
		cfg.Logger = discard()
	}
	v, err := middleware.NewVerifier(context.Background(), cfg)
	if err != nil {
		tb.Fatalf("NewVerifier: %v", err)
	}
	tb.Cleanup(v.Close)
	return v
}
