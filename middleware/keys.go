package middleware

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync/atomic"

	"github.com/lestrrat-go/jwx/v2/jwk"
)

// minRSABits is the smallest RSA modulus a key may have (RFC 7518 §3.3).
const minRSABits = 2048

// KeySet supplies verification keys in process (Config.KeySet).
//
// Keys is called for every JWT that [Verifier.Verify] checks, so it must be
// cheap, and safe for concurrent use. The Verifier derives a lookup table
// from the set and keeps it for as long as Keys returns the same Set value
// (compared with ==), so return the same value while the keys are
// unchanged and a new one when they change. An error makes Verify answer
// [ErrUnavailable].
type KeySet interface {
	Keys(ctx context.Context) (jwk.Set, error)
}

// JWKSSource is anything that returns its public JWK Set (RFC 7517 §5) as
// JSON. *provider.Provider satisfies it, so an API served by the same
// program as the authorization server needs no HTTP round trip for keys:
//
//	v, err := middleware.NewVerifier(ctx, middleware.Config{
//		Issuer:   p.Issuer(),
//		Audience: "https://api.example.com",
//		KeySet:   middleware.ProviderKeys(p),
//	})
//
// JWKS must not modify a slice it has returned.
type JWKSSource interface {
	JWKS(ctx context.Context) []byte
}

// ProviderKeys adapts a [JWKSSource] into a [KeySet]. It calls src.JWKS for
// every token and parses the JSON again only when it changed, so keys the
// provider rotates in (or retires) count at once. The result is safe for
// concurrent use.
func ProviderKeys(src JWKSSource) KeySet {
	return &jwksKeys{src: src}
}

type jwksKeys struct {
	src  JWKSSource
	last atomic.Pointer[parsedJWKS]
}

type parsedJWKS struct {
	raw []byte // a private copy
	set jwk.Set
}

func (k *jwksKeys) Keys(ctx context.Context) (jwk.Set, error) {
	raw := k.src.JWKS(ctx)
	if p := k.last.Load(); p != nil && bytes.Equal(p.raw, raw) {
		return p.set, nil
	}
	if len(raw) == 0 {
		return nil, errors.New("middleware: the key source returned no JWK Set")
	}
	set, err := jwk.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("middleware: parse the JWK Set: %w", err)
	}
	k.last.Store(&parsedJWKS{raw: bytes.Clone(raw), set: set})
	return set, nil
}

// StaticKeys returns a [KeySet] that always returns set: for keys that never
// change, and for tests. set must not be modified afterwards.
func StaticKeys(set jwk.Set) KeySet {
	return staticKeys{set: set}
}

type staticKeys struct{ set jwk.Set }

func (s staticKeys) Keys(context.Context) (jwk.Set, error) {
	if s.set == nil {
		return nil, errors.New("middleware: StaticKeys: nil jwk.Set")
	}
	return s.set, nil
}

// verifyKey is one usable public key.
type verifyKey struct {
	alg string // the JWK's alg (RFC 7517 §4.4); "" if it has none
	pub any    // *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey
}

// fits reports whether the key may verify a token signed with alg: its own
// alg, if it names one, must be alg, and its type and curve must suit alg
// (RFC 8725 §3.1). A JWK without alg is not a licence to use it with any
// algorithm.
func (k *verifyKey) fits(alg string) bool {
	if k.alg != "" && k.alg != alg {
		return false
	}
	switch pub := k.pub.(type) {
	case *rsa.PublicKey:
		return strings.HasPrefix(alg, "RS") || strings.HasPrefix(alg, "PS")
	case *ecdsa.PublicKey:
		switch alg {
		case "ES256":
			return pub.Curve == elliptic.P256()
		case "ES384":
			return pub.Curve == elliptic.P384()
		case "ES512":
			return pub.Curve == elliptic.P521()
		}
	case ed25519.PublicKey:
		return alg == "EdDSA"
	}
	return false
}

// keyTable is a key set ready for lookups by kid. It is never modified
// once built.
type keyTable struct {
	src        jwk.Set // what it was built from (KeySet mode)
	comparable bool    // src may be compared with ==
	byKID      map[string]*verifyKey
	skipped    int // keys left out: no kid, not for signatures, symmetric, too weak, duplicate kid
}

// from reports whether t was built from set.
func (t *keyTable) from(set jwk.Set) bool {
	// Comparing two interface values of one non-comparable dynamic type
	// panics; of different types it is false, which is safe.
	return t != nil && t.comparable && t.src == set
}

// buildTable extracts the usable public keys of set. Symmetric keys are
// never used, so a public key can never become an HMAC secret. It fails
// if no key is usable.
func buildTable(set jwk.Set) (*keyTable, error) {
	if set == nil {
		return nil, errors.New("middleware: nil JWK Set")
	}
	t := &keyTable{src: set, byKID: make(map[string]*verifyKey, set.Len())}
	t.comparable = reflect.TypeOf(set).Comparable()
	for i := range set.Len() {
		k, ok := set.Key(i)
		if !ok {
			continue
		}
		vk, ok := usableKey(k)
		if !ok {
			t.skipped++
			continue
		}
		if _, dup := t.byKID[k.KeyID()]; dup {
			// Two keys with one kid: which one a token meant is unknowable.
			delete(t.byKID, k.KeyID())
			t.skipped += 2
			continue
		}
		t.byKID[k.KeyID()] = vk
	}
	if len(t.byKID) == 0 {
		return nil, fmt.Errorf("middleware: the JWK Set has no usable signature key (of %d, %d skipped: each needs a unique kid, use \"sig\" or none, and an RSA (2048 bits or more), EC or Ed25519 public key)", set.Len(), t.skipped)
	}
	return t, nil
}

// usableKey returns the verification key k holds, if it is one.
func usableKey(k jwk.Key) (*verifyKey, bool) {
	if k.KeyID() == "" {
		return nil, false
	}
	if use := k.KeyUsage(); use != "" && use != string(jwk.ForSignature) {
		return nil, false
	}
	raw, err := jwk.PublicRawKeyOf(k)
	if err != nil {
		return nil, false
	}
	vk := &verifyKey{pub: raw}
	if a := k.Algorithm(); a != nil {
		vk.alg = a.String()
	}
	switch pub := raw.(type) {
	case *rsa.PublicKey:
		if pub.N == nil || pub.N.BitLen() < minRSABits {
			return nil, false
		}
	case *ecdsa.PublicKey:
		// Bytes fails for a point that is not on a supported curve.
		if _, err := pub.Bytes(); err != nil {
			return nil, false
		}
	case ed25519.PublicKey:
		if len(pub) != ed25519.PublicKeySize {
			return nil, false
		}
	default: // symmetric ([]byte), X25519, secp256k1…
		return nil, false
	}
	return vk, true
}
