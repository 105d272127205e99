// Package dpoptest writes DPoP proofs (RFC 9449 §4.2) for pixie's tests
// with go-jose, a JOSE library independent of the jwx that package
// internal/dpop verifies them with, so that a test proves interoperation
// rather than agreement with itself.
package dpoptest

import (
	"crypto"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"testing"

	"github.com/go-jose/go-jose/v4"
)

// Signer returns a signer of proofs: alg with key, typ dpop+jwt, and the
// key's public half in the jwk header member.
func Signer(tb testing.TB, alg jose.SignatureAlgorithm, key any) jose.Signer {
	tb.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, (&jose.SignerOptions{EmbedJWK: true}).WithType("dpop+jwt"))
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// Sign returns claims, encoded as JSON, signed by signer in the compact
// serialization.
func Sign(tb testing.TB, signer jose.Signer, claims any) string {
	tb.Helper()
	payload, err := json.Marshal(claims)
	if err != nil {
		tb.Fatal(err)
	}
	obj, err := signer.Sign(payload)
	if err != nil {
		tb.Fatal(err)
	}
	s, err := obj.CompactSerialize()
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// Thumbprint returns the RFC 7638 SHA-256 thumbprint of the public key
// pub, base64url without padding: what cnf.jkt and dpop_jkt hold.
func Thumbprint(tb testing.TB, pub any) string {
	tb.Helper()
	tp, err := (&jose.JSONWebKey{Key: pub}).Thumbprint(crypto.SHA256)
	if err != nil {
		tb.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(tp)
}

// ATH returns the ath claim of a proof sent with token: base64url of its
// SHA-256.
func ATH(token string) string {
	sum := sha256.Sum256([]byte(token))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}
