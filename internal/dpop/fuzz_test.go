package dpop_test

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/pixieauth/pixie/internal/dpop"
)

// FuzzCheck feeds arbitrary DPoP header values to the checker: it must
// never panic, and whatever it accepts must carry a thumbprint and a jti.
// Each input is a whole header value, plus a protected header and claims
// as plain JSON that are also tried base64url-encoded in front of the
// value's signature, so that the fuzzer can reach the JSON and JWK parsing
// without having to mutate base64.
func FuzzCheck(f *testing.F) {
	now := time.Now()
	enc := base64.RawURLEncoding
	add := func(proof string) {
		parts := strings.Split(proof, ".")
		if len(parts) != 3 {
			f.Add(proof, []byte(`{}`), []byte(`{}`))
			return
		}
		h, _ := enc.DecodeString(parts[0])
		p, _ := enc.DecodeString(parts[1])
		f.Add(proof, h, p)
	}
	valid := write(f, spec{now: now})
	add(valid)
	add(write(f, spec{alg: jose.RS256, key: rsaKey, now: now}))
	add(write(f, spec{alg: jose.PS256, key: rsaKey, now: now, claims: map[string]any{"ath": ath("t"), "nonce": "n"}}))
	add(write(f, spec{alg: jose.EdDSA, key: edKey, now: now}))
	add(write(f, spec{jwk: jose.JSONWebKey{Key: ecKey}, now: now}))
	add(write(f, spec{alg: jose.RS256, key: rsaKey, jwk: jose.JSONWebKey{Key: ecKey.Public()}, now: now}))
	add(write(f, spec{claims: map[string]any{"iat": 1e300}, now: now}))
	add(unsigned(f))
	parts := strings.Split(valid, ".")
	add(parts[0] + "." + parts[1] + ".")
	add(parts[0] + ".." + parts[2])
	add(valid + "." + parts[2])
	add("e30.e30.e30")
	add(`{"protected":"` + parts[0] + `","payload":"` + parts[1] + `","signature":"` + parts[2] + `"}`)
	add("")
	c := &dpop.Checker{Now: func() time.Time { return now }}
	check := func(t *testing.T, proof string) {
		p, err := c.Check(t.Context(), []string{proof}, dpop.Request{Method: "POST", URL: tokenURL})
		if err == nil && (p == nil || p.Thumbprint == "" || p.JTI == "") {
			t.Fatalf("accepted without a thumbprint or jti: %+v", p)
		}
	}
	f.Fuzz(func(t *testing.T, proof string, header, claims []byte) {
		check(t, proof)
		sig := proof[strings.LastIndexByte(proof, '.')+1:]
		check(t, enc.EncodeToString(header)+"."+enc.EncodeToString(claims)+"."+sig)
	})
}
