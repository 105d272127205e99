package middleware_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/pixieauth/pixie/middleware"
)

// BenchmarkVerify measures Verify on one core: the key lookup and JWK Set
// are prepared once, so a validation is a header decode, a map lookup, the
// signature check and a claims decode. "first" turns the signature cache
// off, so every validation checks the signature, as for a token met the
// first time; "again" is the same token met again (an app calling its API
// with one access token), whose signature check the cache skips.
func BenchmarkVerify(b *testing.B) {
	for _, alg := range []string{"RS256", "ES256"} {
		for _, mode := range []struct {
			name  string
			cache int
		}{{"first", -1}, {"again", 0}} {
			b.Run(alg+"/"+mode.name, func(b *testing.B) {
				k := sharedKey(b, "bench-"+alg, alg)
				v := newVerifier(b, middleware.Config{KeySet: middleware.StaticKeys(setOf(b, k)), Now: fixed(t0), SignatureCacheSize: mode.cache})
				tok := token(b, k, t0)
				ctx := b.Context()
				b.ReportAllocs()
				n := 0
				for b.Loop() {
					if _, err := v.Verify(ctx, tok); err != nil {
						b.Fatal(err)
					}
					n++
				}
				b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "validations/s")
			})
		}
	}
}

// BenchmarkVerifyRemote is BenchmarkVerify with the keys of a JWKS
// endpoint: the hot path reads the table the last fetch built, nothing more.
func BenchmarkVerifyRemote(b *testing.B) {
	k := sharedKey(b, "bench-ES256", "ES256")
	srv := newJWKSServer(b, k)
	v := newVerifier(b, middleware.Config{JWKSURL: srv.url(), Now: fixed(t0)})
	tok := token(b, k, t0)
	ctx := b.Context()
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		if _, err := v.Verify(ctx, tok); err != nil {
			b.Fatal(err)
		}
		n++
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "validations/s")
	if srv.requests.Load() != 1 {
		b.Fatalf("JWKS requests: %d", srv.requests.Load())
	}
}

// BenchmarkVerifyParallel uses every core (GOMAXPROCS).
func BenchmarkVerifyParallel(b *testing.B) {
	for _, alg := range []string{"RS256", "ES256"} {
		b.Run(alg, func(b *testing.B) {
			k := sharedKey(b, "bench-"+alg, alg)
			v := newVerifier(b, middleware.Config{KeySet: middleware.StaticKeys(setOf(b, k)), Now: fixed(t0)})
			tok := token(b, k, t0)
			ctx := b.Context()
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := v.Verify(ctx, tok); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "validations/s")
		})
	}
}

// BenchmarkRequireToken goes through the http middleware: header parsing,
// Verify, the scope check and the context value.
func BenchmarkRequireToken(b *testing.B) {
	for _, alg := range []string{"RS256", "ES256"} {
		b.Run(alg, func(b *testing.B) {
			k := sharedKey(b, "bench-"+alg, alg)
			v := newVerifier(b, middleware.Config{KeySet: middleware.StaticKeys(setOf(b, k)), Now: fixed(t0)})
			h := middleware.RequireToken(v, "read")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if _, ok := middleware.TokenFrom(r.Context()); !ok {
					b.Fatal("no token")
				}
			}))
			req := httptest.NewRequest(http.MethodGet, "/api", nil)
			req.Header.Set("Authorization", "Bearer "+token(b, k, t0))
			w := httptest.NewRecorder()
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				h.ServeHTTP(w, req)
				n++
			}
			if w.Code != http.StatusOK {
				b.Fatalf("status %d", w.Code)
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "requests/s")
		})
	}
}

// BenchmarkSignature is the floor under BenchmarkVerify: jwx's signature
// check of the same tokens and nothing else (SHA-256 and the public-key
// operation of crypto/rsa or crypto/ecdsa).
func BenchmarkSignature(b *testing.B) {
	for _, alg := range []string{"RS256", "ES256"} {
		b.Run(alg, func(b *testing.B) {
			k := sharedKey(b, "bench-"+alg, alg)
			tok := token(b, k, t0)
			dot := strings.LastIndexByte(tok, '.')
			sig, err := base64.RawURLEncoding.DecodeString(tok[dot+1:])
			if err != nil {
				b.Fatal(err)
			}
			v, err := jws.NewVerifier(jwa.SignatureAlgorithm(alg))
			if err != nil {
				b.Fatal(err)
			}
			pub := k.priv.Public()
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				if err := v.Verify([]byte(tok[:dot]), sig, pub); err != nil {
					b.Fatal(err)
				}
				n++
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "validations/s")
		})
	}
}

// BenchmarkRequireTokenDPoP compares in one run a call with an ES256 access
// token as Bearer and the same call with a DPoP-bound token and a proof
// (RFC 9449 §7: the proof's signature, claims and jti replay check on top
// of the token's). The proofs are made ahead, a batch at a time with the
// timer stopped: that is the client's work.
//
//	go test -run '^$' -bench RequireTokenDPoP -count 6 ./middleware/
func BenchmarkRequireTokenDPoP(b *testing.B) {
	const target = "http://api.example.com/api"
	k := sharedKey(b, "bench-ES256", "ES256")
	dkey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	for _, mode := range []string{"Bearer", "DPoP"} {
		b.Run(mode, func(b *testing.B) {
			v := newVerifier(b, middleware.Config{KeySet: middleware.StaticKeys(setOf(b, k)), Now: fixed(t0)})
			h := middleware.RequireToken(v, "read")(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
			tok := token(b, k, t0)
			if mode == "DPoP" {
				tok = boundToken(b, k, jkt(b, dkey))
			}
			var proofs []string
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				req := httptest.NewRequest(http.MethodGet, target, nil)
				req.Header.Set("Authorization", mode+" "+tok)
				if mode == "DPoP" {
					if len(proofs) == 0 {
						b.StopTimer()
						for range 2000 {
							proofs = append(proofs, proof(b, dkey, proofOpts{htu: target, token: tok}))
						}
						b.StartTimer()
					}
					req.Header.Set("DPoP", proofs[len(proofs)-1])
					proofs = proofs[:len(proofs)-1]
				}
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				if w.Code != http.StatusOK {
					b.Fatalf("status %d: %s", w.Code, w.Header().Get("WWW-Authenticate"))
				}
				n++
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "requests/s")
		})
	}
}
