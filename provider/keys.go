package provider

import (
	"cmp"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v3"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/ory/fosite/token/jwt"

	"github.com/pixieauth/pixie/store"
)

// signingAlgs returns the JWS algorithms pixie signs with, in the order it
// publishes them: it keeps a key of each.
func signingAlgs() []string { return []string{RS256, ES256} }

// secretAlg marks the stored 256-bit secret that keys the HMAC of codes and
// opaque tokens and from which the login-cookie keys are derived. It is never
// published.
const secretAlg = "HS256"

// signingKey is one private key ready for use.
type signingKey struct {
	kid     string
	alg     string
	created time.Time        // it signs from then on, until a newer key's time comes
	jwk     *jose.JSONWebKey // private; what fosite's signer takes
	pub     crypto.PublicKey
}

// keyring holds the provider's keys, loaded from a store.Keys. The newest key
// of each algorithm signs; every key verifies; a key is published in the
// JWKS while it signs and, once a newer key replaced it, for as long as a
// token it signed may still be valid. The keyring rereads the store when it
// is older than the refresh interval, so that a replica picks up a key
// another replica rotated in.
type keyring struct {
	st       store.Keys
	now      func() time.Time
	interval time.Duration // how stale the keys may get
	retire   time.Duration // how long a replaced key stays published
	log      func() *slog.Logger

	mu     sync.RWMutex
	byAlg  map[string][]*signingKey // newest first
	byKID  map[string]*signingKey
	jwks   []byte    // the public JWK Set, marshalled once per load
	secret []byte    // the newest token secret
	olds   [][]byte  // older token secrets, still accepted
	loaded time.Time // when the store was last read

	refreshing sync.Mutex // held by the one goroutine rereading the store
}

// firstSecretID is the ID of the token secret stored on the first start of
// an empty key store. Every replica starting on an empty store tries to
// store its own secret under this one ID; the store's unique IDs let exactly
// one win, and every replica then uses the winner's (secrets stored at
// random IDs by earlier versions keep working).
const firstSecretID = "secret-first"

// bootstrapWait bounds how long a replica that lost the race to store the
// first token secret waits for the winner's signing keys before storing
// keys of its own (the winner may have died in between).
const bootstrapWait = 10 * time.Second

// load reads the keys from the keyring's store, generating and storing
// whatever is missing: an RS256 key, an ES256 key and the token secret.
//
// On an empty store, several replicas may start at the same instant. They
// must end with one token secret (it keys codes, refresh tokens and the
// login cookie: two would make each replica refuse the other's) and, so that
// each publishes what the others sign with, one key per algorithm. The
// secret is the lock: the replica whose first secret the store accepts
// generates the signing keys; the others wait for them.
func (kr *keyring) load(ctx context.Context) error {
	keys, err := kr.st.Keys(ctx)
	if err != nil {
		return fmt.Errorf("provider: load keys: %w", err)
	}
	won := false
	if !hasAlg(keys, secretAlg) {
		k, err := generateKey(secretAlg, kr.now())
		if err != nil {
			return err
		}
		k.ID = firstSecretID
		err = kr.st.AddKey(ctx, k)
		if err != nil && !errors.Is(err, store.ErrAlreadyExists) {
			return fmt.Errorf("provider: store the token secret: %w", err)
		}
		won = err == nil
	}
	if !won && !(hasAlg(keys, RS256) && hasAlg(keys, ES256)) {
		// Another replica holds the secret and may be generating the
		// signing keys right now.
		if keys, err = kr.awaitSigningKeys(ctx); err != nil {
			return err
		}
	}
	if err := kr.addMissing(ctx, keys); err != nil {
		return err
	}
	if keys, err = kr.st.Keys(ctx); err != nil {
		return fmt.Errorf("provider: load keys: %w", err)
	}
	return kr.set(keys)
}

// addMissing generates and stores a signing key for each algorithm keys
// has none of.
func (kr *keyring) addMissing(ctx context.Context, keys []store.Key) error {
	for _, alg := range signingAlgs() {
		if hasAlg(keys, alg) {
			continue
		}
		k, err := generateKey(alg, kr.now())
		if err != nil {
			return err
		}
		if err := kr.st.AddKey(ctx, k); err != nil && !errors.Is(err, store.ErrAlreadyExists) {
			return fmt.Errorf("provider: store %s key: %w", alg, err)
		}
	}
	return nil
}

// awaitSigningKeys rereads the store until it holds a key of each signing
// algorithm, or bootstrapWait has passed, and returns what it read last.
func (kr *keyring) awaitSigningKeys(ctx context.Context) ([]store.Key, error) {
	deadline := time.Now().Add(bootstrapWait)
	for {
		keys, err := kr.st.Keys(ctx)
		if err != nil {
			return nil, fmt.Errorf("provider: load keys: %w", err)
		}
		if (hasAlg(keys, RS256) && hasAlg(keys, ES256)) || time.Now().After(deadline) {
			return keys, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("provider: wait for the signing keys: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func hasAlg(keys []store.Key, alg string) bool {
	return slices.ContainsFunc(keys, func(k store.Key) bool { return k.Algorithm == alg })
}

// rotate adds a new RS256 and ES256 key and reloads. The new keys are
// published at once but sign only from two refresh intervals later: by then
// every replica has reread the store and published them, and every client
// that caches the JWKS for at most an interval has fetched them, so no one
// meets a token signed by a key they have not seen.
func (kr *keyring) rotate(ctx context.Context) error {
	keys, err := kr.st.Keys(ctx)
	if err != nil {
		return fmt.Errorf("provider: load keys: %w", err)
	}
	for _, alg := range signingAlgs() {
		// Newer than every key it replaces, even on a clock that has not
		// moved or in a store that keeps whole seconds: the newest signs.
		created := kr.now().Add(2 * kr.interval)
		for _, old := range keys {
			if old.Algorithm == alg && !created.After(old.CreatedAt) {
				created = old.CreatedAt.Truncate(time.Second).Add(time.Second)
			}
		}
		k, err := generateKey(alg, created)
		if err != nil {
			return err
		}
		if err := kr.st.AddKey(ctx, k); err != nil {
			return fmt.Errorf("provider: store %s key: %w", alg, err)
		}
	}
	return kr.load(ctx)
}

// refresh rereads the store if the keys are older than the refresh
// interval. Only one caller rereads; the others go on with the keys they
// have. A failure is logged and retried after another interval: signing
// goes on with the keys already loaded.
func (kr *keyring) refresh(ctx context.Context) {
	kr.mu.RLock()
	fresh := kr.now().Sub(kr.loaded) < kr.interval
	kr.mu.RUnlock()
	if fresh || !kr.refreshing.TryLock() {
		return
	}
	defer kr.refreshing.Unlock()
	keys, err := kr.st.Keys(ctx)
	if err == nil {
		err = kr.set(keys)
	}
	if err != nil {
		kr.log().ErrorContext(ctx, "refresh signing keys", "error", err)
		kr.mu.Lock()
		kr.loaded = kr.now()
		kr.mu.Unlock()
	}
}

// set replaces the keyring's contents with keys.
func (kr *keyring) set(keys []store.Key) error {
	now := kr.now()
	// Newest first. Ties broken by ID, so that every replica picks the same
	// key.
	slices.SortFunc(keys, func(a, b store.Key) int {
		return cmp.Or(b.CreatedAt.Compare(a.CreatedAt), strings.Compare(a.ID, b.ID))
	})
	byAlg := map[string][]*signingKey{}
	byKID := map[string]*signingKey{}
	var secrets [][]byte
	pub := jwk.NewSet()
	for _, k := range keys {
		if k.Algorithm == secretAlg {
			if len(k.Private) < 32 {
				return fmt.Errorf("provider: token secret %q is shorter than 32 bytes", k.ID)
			}
			secrets = append(secrets, k.Private)
			continue
		}
		sk, err := parseKey(k)
		if err != nil {
			return err
		}
		byKID[sk.kid] = sk
		newer := byAlg[sk.alg]
		byAlg[sk.alg] = append(newer, sk)
		// Published: a key not signing yet (it will soon), the key that
		// signs (the newest whose time has come), and a key replaced less
		// than the retire period ago (tokens it signed may still be valid).
		if len(newer) > 0 {
			if replacedAt := newer[len(newer)-1].created; !replacedAt.After(now) && now.Sub(replacedAt) >= kr.retire {
				continue
			}
		}
		if err := publishKey(pub, k.ID, sk); err != nil {
			return err
		}
	}
	for _, alg := range signingAlgs() {
		if len(byAlg[alg]) == 0 {
			return fmt.Errorf("provider: no %s signing key in the key store", alg)
		}
	}
	if len(secrets) == 0 {
		return errors.New("provider: no token secret in the key store")
	}
	doc, err := json.Marshal(pub)
	if err != nil {
		return fmt.Errorf("provider: marshal JWKS: %w", err)
	}
	kr.mu.Lock()
	defer kr.mu.Unlock()
	kr.byAlg, kr.byKID, kr.jwks = byAlg, byKID, doc
	kr.secret, kr.olds = secrets[0], secrets[1:]
	kr.loaded = now
	return nil
}

// publishKey adds the public half of sk to the JWKS, so that clients and
// resource servers can verify what it signs; id names the stored key in errors.
func publishKey(pub jwk.Set, id string, sk *signingKey) error {
	pk, err := jwk.FromRaw(sk.pub)
	if err != nil {
		return fmt.Errorf("provider: key %q: %w", id, err)
	}
	_ = pk.Set(jwk.KeyIDKey, sk.kid)
	_ = pk.Set(jwk.AlgorithmKey, jwa.SignatureAlgorithm(sk.alg))
	_ = pk.Set(jwk.KeyUsageKey, jwk.ForSignature)
	if err := pub.AddKey(pk); err != nil {
		return fmt.Errorf("provider: key %q: %w", id, err)
	}
	return nil
}

// generateKey makes a new key of the algorithm.
func generateKey(alg string, now time.Time) (store.Key, error) {
	var priv crypto.Signer
	var err error
	switch alg {
	case RS256:
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	case ES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case secretAlg:
		secret := make([]byte, 32)
		if _, err := rand.Read(secret); err != nil {
			return store.Key{}, fmt.Errorf("provider: generate secret: %w", err)
		}
		id := make([]byte, 12)
		if _, err := rand.Read(id); err != nil {
			return store.Key{}, fmt.Errorf("provider: generate secret: %w", err)
		}
		return store.Key{ID: "secret-" + base64.RawURLEncoding.EncodeToString(id), Algorithm: alg, Private: secret, CreatedAt: now.UTC()}, nil
	default:
		return store.Key{}, fmt.Errorf("provider: unsupported key algorithm %q", alg)
	}
	if err != nil {
		return store.Key{}, fmt.Errorf("provider: generate %s key: %w", alg, err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return store.Key{}, fmt.Errorf("provider: encode %s key: %w", alg, err)
	}
	kid, err := thumbprint(priv.Public())
	if err != nil {
		return store.Key{}, err
	}
	return store.Key{ID: kid, Algorithm: alg, Private: der, CreatedAt: now.UTC()}, nil
}

// thumbprint returns the RFC 7638 SHA-256 thumbprint of a public key,
// base64url-encoded: the key's kid.
func thumbprint(pub crypto.PublicKey) (string, error) {
	k, err := jwk.FromRaw(pub)
	if err != nil {
		return "", fmt.Errorf("provider: key thumbprint: %w", err)
	}
	tp, err := k.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("provider: key thumbprint: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(tp), nil
}

// parseKey decodes a stored key and checks that its algorithm and ID fit it.
func parseKey(k store.Key) (*signingKey, error) {
	raw, err := x509.ParsePKCS8PrivateKey(k.Private)
	if err != nil {
		return nil, fmt.Errorf("provider: key %q: %w", k.ID, err)
	}
	var pub crypto.PublicKey
	switch priv := raw.(type) {
	case *rsa.PrivateKey:
		if k.Algorithm != RS256 || priv.N.BitLen() < 2048 {
			return nil, fmt.Errorf("provider: key %q: an RSA key of %d bits does not fit algorithm %q", k.ID, priv.N.BitLen(), k.Algorithm)
		}
		pub = priv.Public()
	case *ecdsa.PrivateKey:
		if k.Algorithm != ES256 || priv.Curve != elliptic.P256() {
			return nil, fmt.Errorf("provider: key %q: an ECDSA %s key does not fit algorithm %q", k.ID, priv.Curve.Params().Name, k.Algorithm)
		}
		pub = priv.Public()
	default:
		return nil, fmt.Errorf("provider: key %q: unsupported key type %T", k.ID, raw)
	}
	kid, err := thumbprint(pub)
	if err != nil {
		return nil, err
	}
	if kid != k.ID {
		return nil, fmt.Errorf("provider: key %q: ID is not the key's RFC 7638 thumbprint", k.ID)
	}
	return &signingKey{
		kid:     kid,
		alg:     k.Algorithm,
		created: k.CreatedAt,
		pub:     pub,
		jwk:     &jose.JSONWebKey{Key: raw, KeyID: kid, Algorithm: k.Algorithm, Use: "sig"},
	}, nil
}

// signer returns the key that signs with alg.
func (kr *keyring) signer(alg string) *signingKey {
	now := kr.now()
	kr.mu.RLock()
	defer kr.mu.RUnlock()
	keys := kr.byAlg[alg]
	for _, k := range keys {
		if !k.created.After(now) {
			return k
		}
	}
	if len(keys) == 0 {
		return nil
	}
	return keys[len(keys)-1] // every key is in the future: a clock gone back
}

// verifier returns the key with the given kid, or nil.
func (kr *keyring) verifier(kid string) *signingKey {
	kr.mu.RLock()
	defer kr.mu.RUnlock()
	return kr.byKID[kid]
}

// publicJWKS returns the JSON JWK Set of every public key.
func (kr *keyring) publicJWKS() []byte {
	kr.mu.RLock()
	defer kr.mu.RUnlock()
	return kr.jwks
}

// tokenSecrets returns the active token secret and the older ones.
func (kr *keyring) tokenSecrets() ([]byte, [][]byte) {
	kr.mu.RLock()
	defer kr.mu.RUnlock()
	return kr.secret, kr.olds
}

// jwtSigner is fosite's jwt.Signer over the keyring: it signs with the active
// key of one algorithm (see Generate) and verifies with whichever key the
// token's kid names, so tokens signed before a rotation still verify.
type jwtSigner struct {
	jwt.DefaultSigner
	ring *keyring
	alg  string
}

// newJWTSigner returns the signer of alg. Its embedded DefaultSigner has no
// key: the methods that would use one (Generate, Validate, Decode) are
// jwtSigner's own; GetSignature and Hash need none.
func newJWTSigner(ring *keyring, alg string) *jwtSigner {
	return &jwtSigner{ring: ring, alg: alg}
}

// Decode parses and verifies a JWT signed by any of the provider's keys.
func (s *jwtSigner) Decode(_ context.Context, token string) (*jwt.Token, error) {
	return jwt.ParseWithClaims(token, jwt.MapClaims{}, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		k := s.ring.verifier(kid)
		if k == nil {
			return nil, fmt.Errorf("provider: unknown kid %q", kid)
		}
		if alg, _ := t.Header["alg"].(string); alg != k.alg {
			return nil, fmt.Errorf("provider: token alg %q does not match key %q", alg, kid)
		}
		return k.pub, nil
	})
}

// Validate verifies a JWT and returns its signature.
func (s *jwtSigner) Validate(ctx context.Context, token string) (string, error) {
	if _, err := s.Decode(ctx, token); err != nil {
		return "", err
	}
	return s.GetSignature(ctx, token)
}
