package provider

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/ory/fosite/token/jwt"
)

// Generate signs claims as a compact JWS (RFC 7515 §7.1) with the keyring's
// signing key of the signer's algorithm, and returns the token and its
// signature part. The header is header's members with typ JWT unless it
// names another, then alg and kid, which header cannot override.
//
// It replaces fosite's, which goes through go-jose's reflective builder
// and its JSON encoder: a third of the allocations of a flow for its two
// signatures. The bytes signed are the same construction (base64url of the
// header's JSON, '.', base64url of the claims' JSON), and ES256 signatures
// are the fixed-length R || S of RFC 7518 §3.4.
func (s *jwtSigner) Generate(ctx context.Context, claims jwt.MapClaims, header jwt.Mapper) (string, string, error) {
	if claims == nil || header == nil {
		return "", "", errors.New("provider: sign a JWT: claims or header is nil")
	}
	s.ring.refresh(ctx)
	k := s.ring.signer(s.alg)
	if k == nil {
		return "", "", fmt.Errorf("provider: no %s key", s.alg)
	}
	h := map[string]any{"typ": "JWT"}
	for name, v := range header.ToMap() {
		h[name] = v
	}
	h["alg"], h["kid"] = k.alg, k.kid
	var buf bytes.Buffer
	if err := appendJSONPart(&buf, h); err != nil {
		return "", "", err
	}
	buf.WriteByte('.')
	if err := appendJSONPart(&buf, map[string]any(claims)); err != nil {
		return "", "", err
	}
	digest := sha256.Sum256(buf.Bytes())
	var sig []byte
	switch priv := k.jwk.Key.(type) {
	case *rsa.PrivateKey:
		var err error
		if sig, err = rsa.SignPKCS1v15(nil, priv, crypto.SHA256, digest[:]); err != nil {
			return "", "", fmt.Errorf("provider: sign a JWT: %w", err)
		}
	case *ecdsa.PrivateKey:
		r, ss, err := ecdsa.Sign(rand.Reader, priv, digest[:])
		if err != nil {
			return "", "", fmt.Errorf("provider: sign a JWT: %w", err)
		}
		sig = make([]byte, 64)
		r.FillBytes(sig[:32])
		ss.FillBytes(sig[32:])
	default:
		return "", "", fmt.Errorf("provider: sign a JWT: unsupported key type %T", k.jwk.Key)
	}
	signature := base64.RawURLEncoding.EncodeToString(sig)
	buf.WriteByte('.')
	buf.WriteString(signature)
	return buf.String(), signature, nil
}

// appendJSONPart appends the base64url encoding of v's JSON to buf.
func appendJSONPart(buf *bytes.Buffer, v any) error {
	var js bytes.Buffer
	enc := json.NewEncoder(&js)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("provider: encode a JWT: %w", err)
	}
	raw := bytes.TrimSuffix(js.Bytes(), []byte("\n"))
	out := buf.AvailableBuffer()
	out = base64.RawURLEncoding.AppendEncode(out, raw)
	buf.Write(out)
	return nil
}
