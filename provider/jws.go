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
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/ory/fosite/token/jwt"
	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/crypto/cryptobyte/asn1"
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
// are the fixed-length R || S of RFC 7518 §3.4. The JSON and the signing
// input are built in pooled buffers (see jwsBuffer), and the signature
// returned is the tail of the token.
func (s *jwtSigner) Generate(ctx context.Context, claims jwt.MapClaims, header jwt.Mapper) (string, string, error) {
	if claims == nil || header == nil {
		return "", "", errors.New("provider: sign a JWT: claims or header is nil")
	}
	s.ring.refresh(ctx)
	k := s.ring.signer(s.alg)
	if k == nil {
		return "", "", fmt.Errorf("provider: no %s key", s.alg)
	}
	buf := jwsBuffers.Get().(*jwsBuffer)
	defer buf.release()
	var err error
	if buf.raw, err = appendJWTHeader(buf.raw[:0], header, k.alg, k.kid); err != nil {
		return "", "", fmt.Errorf("provider: encode a JWT: %w", err)
	}
	input := base64.RawURLEncoding.AppendEncode(buf.input[:0], buf.raw)
	input = append(input, '.')
	if buf.raw, err = appendJSONObject(buf.raw[:0], claims); err != nil {
		return "", "", fmt.Errorf("provider: encode a JWT: %w", err)
	}
	input = base64.RawURLEncoding.AppendEncode(input, buf.raw)
	buf.input = input
	digest := sha256.Sum256(input)
	var sigBuf [64]byte
	sig, err := signDigest(sigBuf[:0], k.jwk.Key, digest[:])
	if err != nil {
		return "", "", err
	}
	var tok strings.Builder
	n := base64.RawURLEncoding.EncodedLen(len(sig))
	tok.Grow(len(input) + 1 + n)
	tok.Write(input)
	tok.WriteByte('.')
	var encBuf [512]byte
	tok.Write(base64.RawURLEncoding.AppendEncode(encBuf[:0], sig))
	token := tok.String()
	return token, token[len(token)-n:], nil
}

// jwsBuffer holds the scratch space of one Generate call: the JSON of the
// header or the claims, and the signing input. Both hold claims (a
// user's name and email), so release zeroes what was written before the
// buffer goes back to the pool: a later call, for another user, starts from
// zeros and sees only what it writes.
type jwsBuffer struct{ raw, input []byte }

var jwsBuffers = sync.Pool{New: func() any {
	return &jwsBuffer{raw: make([]byte, 0, 1024), input: make([]byte, 0, 2048)}
}}

// release zeroes b and puts it back in the pool. A buffer grown past 64 KiB
// (claims far larger than any flow's) is dropped instead, so the pool
// does not pin it.
func (b *jwsBuffer) release() {
	if cap(b.raw) > 64<<10 || cap(b.input) > 64<<10 {
		return
	}
	clear(b.raw[:cap(b.raw)])
	clear(b.input[:cap(b.input)])
	b.raw, b.input = b.raw[:0], b.input[:0]
	jwsBuffers.Put(b)
}

// signDigest appends to b the JWS signature of a SHA-256 digest with priv:
// RSASSA-PKCS1-v1_5 (RS256), or ECDSA P-256 as R || S, each 32 bytes
// (ES256, RFC 7518 §3.4).
func signDigest(b []byte, priv any, digest []byte) ([]byte, error) {
	switch priv := priv.(type) {
	case *rsa.PrivateKey:
		sig, err := rsa.SignPKCS1v15(nil, priv, crypto.SHA256, digest)
		if err != nil {
			return nil, fmt.Errorf("provider: sign a JWT: %w", err)
		}
		return append(b, sig...), nil
	case *ecdsa.PrivateKey:
		der, err := ecdsa.SignASN1(rand.Reader, priv, digest)
		if err != nil {
			return nil, fmt.Errorf("provider: sign a JWT: %w", err)
		}
		return appendRS(b, der, (priv.Curve.Params().BitSize+7)/8)
	}
	return nil, fmt.Errorf("provider: sign a JWT: unsupported key type %T", priv)
}

// appendRS appends the ASN.1 ECDSA-Sig-Value der (SEQUENCE of the INTEGERs
// r and s) as r || s, each left-padded to size bytes: what ecdsa.Sign's
// big.Int results and FillBytes made, without the big.Ints.
func appendRS(b, der []byte, size int) ([]byte, error) {
	in := cryptobyte.String(der)
	var seq, r, s cryptobyte.String
	if !in.ReadASN1(&seq, asn1.SEQUENCE) || !in.Empty() ||
		!seq.ReadASN1(&r, asn1.INTEGER) || !seq.ReadASN1(&s, asn1.INTEGER) || !seq.Empty() {
		return nil, errors.New("provider: sign a JWT: malformed ECDSA signature")
	}
	for _, v := range []cryptobyte.String{r, s} {
		for len(v) > 0 && v[0] == 0 {
			v = v[1:]
		}
		if len(v) > size {
			return nil, errors.New("provider: sign a JWT: malformed ECDSA signature")
		}
		b = append(b, make([]byte, size-len(v))...)
		b = append(b, v...)
	}
	return b, nil
}

// appendJWTHeader appends the JOSE header as a JSON object, its members
// sorted by name: typ (JWT unless header names another), header's other
// members, then alg and kid, which header cannot override.
func appendJWTHeader(b []byte, header jwt.Mapper, alg, kid string) ([]byte, error) {
	var extra map[string]any
	if h, ok := header.(*jwt.Headers); ok {
		extra = h.Extra // what its ToMap copies, less alg, skipped below
	} else {
		extra = header.ToMap()
	}
	var namesBuf [8]string
	names := append(namesBuf[:0], "alg", "kid")
	if _, ok := extra["typ"]; !ok {
		names = append(names, "typ")
	}
	for name := range extra {
		if name != "alg" && name != "kid" {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	b = append(b, '{')
	for i, name := range names {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, name)
		b = append(b, ':')
		v, ok := extra[name]
		switch {
		case name == "alg":
			b = appendJSONString(b, alg)
		case name == "kid":
			b = appendJSONString(b, kid)
		case !ok: // typ
			b = appendJSONString(b, "JWT")
		default:
			var err error
			if b, err = appendJSONValue(b, v); err != nil {
				return nil, err
			}
		}
	}
	return append(b, '}'), nil
}

// appendJSONObject appends m as a JSON object, its members sorted by name
// (as encoding/json writes a map). Strings, integers, booleans and string
// lists, what claims and headers hold, are written directly; any other
// value goes through encoding/json, whose map encoding costs two
// allocations per member.
func appendJSONObject(b []byte, m map[string]any) ([]byte, error) {
	var namesBuf [24]string
	names := namesBuf[:0]
	for k := range m {
		names = append(names, k)
	}
	slices.Sort(names)
	b = append(b, '{')
	for i, k := range names {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, k)
		b = append(b, ':')
		var err error
		if b, err = appendJSONValue(b, m[k]); err != nil {
			return nil, err
		}
	}
	return append(b, '}'), nil
}

func appendJSONValue(b []byte, v any) ([]byte, error) {
	switch v := v.(type) {
	case string:
		return appendJSONString(b, v), nil
	case int64:
		return strconv.AppendInt(b, v, 10), nil
	case int:
		return strconv.AppendInt(b, int64(v), 10), nil
	case bool:
		return strconv.AppendBool(b, v), nil
	case []string:
		if v == nil {
			return append(b, "null"...), nil
		}
		b = append(b, '[')
		for i, s := range v {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, s)
		}
		return append(b, ']'), nil
	case map[string]any:
		if v == nil {
			return append(b, "null"...), nil
		}
		return appendJSONObject(b, v)
	}
	var js bytes.Buffer
	enc := json.NewEncoder(&js)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return append(b, bytes.TrimSuffix(js.Bytes(), []byte("\n"))...), nil
}

// appendJSONString appends s as a JSON string (RFC 8259 §7): quotation
// mark, reverse solidus and control characters escaped, invalid UTF-8
// replaced by U+FFFD, as encoding/json does; <, > and & left as they are.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, "\\ufffd"...)
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
