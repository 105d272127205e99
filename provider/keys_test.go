package provider

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v3"
	"github.com/lestrrat-go/jwx/v2/jwk"

	"github.com/pixieauth/pixie/store"
	"github.com/pixieauth/pixie/store/memory"
)

// newBareProvider builds a provider on st, with no clients or users: enough
// for the key tests.
func newBareProvider(t *testing.T, st *memory.Store) (*Provider, error) {
	t.Helper()
	return New(t.Context(), Config{Issuer: testIssuer, Clients: st, Users: st, Grants: st, Keys: st})
}

// jwksMembers returns the keys of a JWK Set as raw JSON members.
func jwksMembers(t *testing.T, doc []byte) []map[string]string {
	t.Helper()
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(doc, &set); err != nil {
		t.Fatalf("JWKS %s: %v", doc, err)
	}
	var out []map[string]string
	for _, k := range set.Keys {
		m := map[string]string{}
		for name, v := range k {
			s, ok := v.(string)
			if !ok {
				t.Fatalf("JWK member %q is %T, want a string", name, v)
			}
			m[name] = s
		}
		out = append(out, m)
	}
	return out
}

// rfc7638 computes the JWK thumbprint (RFC 7638 §3) from the required
// members of a public JWK, by hand: their JSON in lexicographic order,
// without whitespace, hashed with SHA-256.
func rfc7638(t *testing.T, k map[string]string) string {
	t.Helper()
	var canon string
	switch k["kty"] {
	case "RSA":
		canon = `{"e":"` + k["e"] + `","kty":"RSA","n":"` + k["n"] + `"}`
	case "EC":
		canon = `{"crv":"` + k["crv"] + `","kty":"EC","x":"` + k["x"] + `","y":"` + k["y"] + `"}`
	default:
		t.Fatalf("unexpected kty %q", k["kty"])
	}
	sum := sha256.Sum256([]byte(canon))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// jwxThumbprint computes the kid of a public key with jwx, as store.Key
// documents it: the base64url RFC 7638 SHA-256 thumbprint.
func jwxThumbprint(t *testing.T, pub crypto.PublicKey) string {
	t.Helper()
	k, err := jwk.FromRaw(pub)
	if err != nil {
		t.Fatal(err)
	}
	tp, err := k.Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(tp)
}

// storeKey encodes a private key as a store.Key with its thumbprint as ID.
func storeKey(t *testing.T, priv crypto.Signer, alg string, created time.Time) store.Key {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return store.Key{ID: jwxThumbprint(t, priv.Public()), Algorithm: alg, Private: der, CreatedAt: created}
}

func newRSAKey(t *testing.T, bits int) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newECKey(t *testing.T, c elliptic.Curve) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// jwtHeader decodes the JOSE header of a compact JWS.
func jwtHeader(t *testing.T, token string) map[string]any {
	t.Helper()
	head, _, ok := strings.Cut(token, ".")
	if !ok {
		t.Fatalf("%q is not a compact JWS", token)
	}
	b, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		t.Fatalf("JWS header %q: %v", head, err)
	}
	var h map[string]any
	if err := json.Unmarshal(b, &h); err != nil {
		t.Fatalf("JWS header %s: %v", b, err)
	}
	return h
}

// TestNewGeneratesKeys: on an empty store New generates an RS256 key, an
// ES256 key and a token secret, and stores them; a second New on the same
// store (a restart, or another replica) reuses them.
func TestNewGeneratesKeys(t *testing.T) {
	st := memory.New()
	p1, err := newBareProvider(t, st)
	if err != nil {
		t.Fatalf("New: got error %v, want nil", err)
	}
	keys, err := st.Keys(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 3 {
		t.Fatalf("got %d stored keys, want 3 (RS256, ES256, token secret)", len(keys))
	}
	byAlg := map[string]store.Key{}
	for _, k := range keys {
		byAlg[k.Algorithm] = k
	}

	rk, err := x509.ParsePKCS8PrivateKey(byAlg[RS256].Private)
	if rsaKey, ok := rk.(*rsa.PrivateKey); err != nil || !ok || rsaKey.N.BitLen() != 2048 {
		t.Errorf("RS256 key: got %T (%v), want a 2048-bit *rsa.PrivateKey in PKCS #8", rk, err)
	} else if got, want := byAlg[RS256].ID, jwxThumbprint(t, rsaKey.Public()); got != want {
		t.Errorf("RS256 key ID: got %q, want its thumbprint %q", got, want)
	}
	ek, err := x509.ParsePKCS8PrivateKey(byAlg[ES256].Private)
	if ecKey, ok := ek.(*ecdsa.PrivateKey); err != nil || !ok || ecKey.Curve != elliptic.P256() {
		t.Errorf("ES256 key: got %T (%v), want a P-256 *ecdsa.PrivateKey in PKCS #8", ek, err)
	} else if got, want := byAlg[ES256].ID, jwxThumbprint(t, ecKey.Public()); got != want {
		t.Errorf("ES256 key ID: got %q, want its thumbprint %q", got, want)
	}
	if s := byAlg[secretAlg]; len(s.Private) != 32 || s.ID == "" {
		t.Errorf("token secret: got ID %q and %d bytes, want an ID and 32 bytes", s.ID, len(s.Private))
	}
	for _, k := range keys {
		if k.CreatedAt.IsZero() {
			t.Errorf("key %q has no CreatedAt", k.ID)
		}
	}

	p2, err := newBareProvider(t, st)
	if err != nil {
		t.Fatalf("second New: got error %v, want nil", err)
	}
	again, err := st.Keys(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(again) != 3 {
		t.Errorf("after a second New: got %d stored keys, want the same 3", len(again))
	}
	if !bytes.Equal(p1.JWKS(t.Context()), p2.JWKS(t.Context())) {
		t.Errorf("second New: got JWKS %s, want the first provider's %s", p2.JWKS(t.Context()), p1.JWKS(t.Context()))
	}
}

// TestJWKS checks the published key set: one RSA and one P-256 key, each
// with kid equal to its RFC 7638 thumbprint, alg and use=sig, and no private
// member; the token secret is not published.
func TestJWKS(t *testing.T) {
	st := memory.New()
	p, err := newBareProvider(t, st)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	stored, err := st.Keys(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	storedKIDs := map[string]string{} // kid → alg
	for _, k := range stored {
		storedKIDs[k.ID] = k.Algorithm
	}

	members := jwksMembers(t, p.JWKS(t.Context()))
	if len(members) != 2 {
		t.Fatalf("got %d keys in the JWKS, want 2: %s", len(members), p.JWKS(t.Context()))
	}
	var algs []string
	for _, k := range members {
		algs = append(algs, k["alg"])
		if got, want := k["kid"], rfc7638(t, k); got != want {
			t.Errorf("%s key: got kid %q, want its RFC 7638 thumbprint %q", k["alg"], got, want)
		}
		if storedKIDs[k["kid"]] != k["alg"] {
			t.Errorf("%s key: kid %q is not the ID of a stored %s key", k["alg"], k["kid"], k["alg"])
		}
		if k["use"] != "sig" {
			t.Errorf("%s key: got use %q, want sig", k["alg"], k["use"])
		}
		for _, private := range []string{"d", "p", "q", "dp", "dq", "qi", "k"} {
			if _, ok := k[private]; ok {
				t.Errorf("%s key: published private member %q", k["alg"], private)
			}
		}
		switch k["alg"] {
		case RS256:
			if k["kty"] != "RSA" || k["e"] == "" || k["n"] == "" {
				t.Errorf("RS256 key: got %v, want an RSA key", k)
			}
		case ES256:
			if k["kty"] != "EC" || k["crv"] != "P-256" {
				t.Errorf("ES256 key: got %v, want an EC P-256 key", k)
			}
		}
	}
	slices.Sort(algs)
	if want := []string{ES256, RS256}; !slices.Equal(algs, want) {
		t.Errorf("got algorithms %v, want %v", algs, want)
	}
}

// TestNewRefusesBadKeys: New refuses a stored key it cannot trust, and the
// error names the key.
func TestNewRefusesBadKeys(t *testing.T) {
	now := time.Now()
	tests := []struct {
		name string
		key  func(t *testing.T) store.Key
	}{
		{"IDNotThumbprint", func(t *testing.T) store.Key {
			k := storeKey(t, newECKey(t, elliptic.P256()), ES256, now)
			k.ID = "my-key-2024"
			return k
		}},
		{"RSAKeyLabelledES256", func(t *testing.T) store.Key {
			return storeKey(t, newRSAKey(t, 2048), ES256, now)
		}},
		{"ECKeyLabelledRS256", func(t *testing.T) store.Key {
			return storeKey(t, newECKey(t, elliptic.P256()), RS256, now)
		}},
		{"P384KeyAsES256", func(t *testing.T) store.Key {
			return storeKey(t, newECKey(t, elliptic.P384()), ES256, now)
		}},
		{"RSA1024", func(t *testing.T) store.Key {
			return storeKey(t, newRSAKey(t, 1024), RS256, now)
		}},
		{"Ed25519AsRS256", func(t *testing.T) store.Key {
			_, priv, err := ed25519.GenerateKey(rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			return storeKey(t, priv, RS256, now)
		}},
		{"NotPKCS8", func(t *testing.T) store.Key {
			return store.Key{ID: "garbage", Algorithm: RS256, Private: []byte("not a key"), CreatedAt: now}
		}},
		{"ShortTokenSecret", func(t *testing.T) store.Key {
			return store.Key{ID: "secret-short", Algorithm: secretAlg, Private: make([]byte, 16), CreatedAt: now}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := memory.New()
			k := tc.key(t)
			if err := st.AddKey(t.Context(), k); err != nil {
				t.Fatal(err)
			}
			_, err := newBareProvider(t, st)
			if err == nil {
				t.Fatalf("New with key %q: got nil error, want one", k.ID)
			}
			if !strings.Contains(err.Error(), k.ID) {
				t.Errorf("got error %q, want it to name the key %q", err, k.ID)
			}
		})
	}
}

// TestKeyRotation adds a newer RS256 key to the store: a provider built
// afterwards signs ID tokens with it, publishes both keys, and still
// verifies tokens signed with the old one.
func TestKeyRotation(t *testing.T) {
	e := newTestEnv(t, nil)
	old := e.login(t, nativeID).id
	oldKID, _ := jwtHeader(t, old)["kid"].(string)
	if oldKID == "" {
		t.Fatalf("ID token header %v has no kid", jwtHeader(t, old))
	}

	newer := storeKey(t, newRSAKey(t, 2048), RS256, time.Now())
	if err := e.mem.AddKey(t.Context(), newer); err != nil {
		t.Fatal(err)
	}
	e2 := newTestEnvOn(t, e.mem, nil)
	fresh := e2.login(t, nativeID).id
	h := jwtHeader(t, fresh)
	if h["kid"] != newer.ID || h["alg"] != RS256 {
		t.Errorf("after rotation: got ID token header kid %v alg %v, want kid %q alg RS256", h["kid"], h["alg"], newer.ID)
	}

	var kids []string
	for _, k := range jwksMembers(t, e2.p.JWKS(t.Context())) {
		kids = append(kids, k["kid"])
	}
	for _, want := range []string{oldKID, newer.ID} {
		if !slices.Contains(kids, want) {
			t.Errorf("after rotation: JWKS kids %v lack %q", kids, want)
		}
	}

	signer := newJWTSigner(e2.p.keys, RS256)
	tok, err := signer.Decode(t.Context(), old)
	if err != nil {
		t.Fatalf("Decode of a token signed with the old key: got error %v, want nil", err)
	}
	if tok.Header["kid"] != oldKID {
		t.Errorf("Decode: got kid %v, want %q", tok.Header["kid"], oldKID)
	}
	if _, err := signer.Decode(t.Context(), fresh); err != nil {
		t.Errorf("Decode of a token signed with the new key: got error %v, want nil", err)
	}
}

// TestIDTokenAlg: ID tokens are signed with Config.IDTokenAlg unless the
// client asks for another algorithm, with the active key of that algorithm.
func TestIDTokenAlg(t *testing.T) {
	tests := []struct {
		name      string
		configAlg string // Config.IDTokenAlg
		clientAlg string // store.Client.IDTokenAlg
		want      string
	}{
		{"Default", "", "", RS256},
		{"ConfigES256", ES256, "", ES256},
		{"ClientOverridesToES256", "", ES256, ES256},
		{"ClientOverridesToRS256", ES256, RS256, RS256},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv(t, func(c *Config) { c.IDTokenAlg = tc.configAlg })
			err := e.mem.AddClient(t.Context(), &store.Client{ID: "alg-client", Native: true, IDTokenAlg: tc.clientAlg,
				RedirectURIs: []string{nativeRedirect}, Scopes: []string{"openid"}})
			if err != nil {
				t.Fatal(err)
			}
			verifier, challenge := pkcePair(t)
			q := authorizeQuery(challenge, "S256")
			q.Set("client_id", "alg-client")
			q.Set("scope", "openid")
			areq, err := e.p.parseAuthorizeRequest(t.Context(), authorizeRequest(q))
			if err != nil {
				t.Fatalf("ParseAuthorizeRequest: %v", err)
			}
			to, err := e.p.issueCode(t.Context(), areq, Login{Subject: testSubject})
			if err != nil {
				t.Fatalf("IssueCode: %v", err)
			}
			u, err := url.Parse(to)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := e.redeem(t.Context(), issued{code: u.Query().Get("code"), verifier: verifier, clientID: "alg-client", redirectURI: nativeRedirect})
			if err != nil {
				t.Fatalf("Token: %v", err)
			}
			id, _ := resp["id_token"].(string)
			h := jwtHeader(t, id)
			if h["alg"] != tc.want {
				t.Errorf("got ID token alg %v, want %s", h["alg"], tc.want)
			}
			if want := e.p.keys.signer(tc.want).kid; h["kid"] != want {
				t.Errorf("got kid %v, want the active %s key %q", h["kid"], tc.want, want)
			}
			if _, err := newJWTSigner(e.p.keys, tc.want).Decode(t.Context(), id); err != nil {
				t.Errorf("Decode: got error %v, want nil", err)
			}
		})
	}
}

// TestDecodeRefuses: the verifier accepts only tokens signed by one of the
// provider's keys with that key's algorithm.
func TestDecodeRefuses(t *testing.T) {
	st := memory.New()
	p, err := newBareProvider(t, st)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := st.Keys(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var rsaKID string
	var rsaPriv, ecPriv any
	for _, k := range keys {
		switch k.Algorithm {
		case RS256:
			rsaKID = k.ID
			if rsaPriv, err = x509.ParsePKCS8PrivateKey(k.Private); err != nil {
				t.Fatal(err)
			}
		case ES256:
			if ecPriv, err = x509.ParsePKCS8PrivateKey(k.Private); err != nil {
				t.Fatal(err)
			}
		}
	}
	claims := []byte(`{"iss":"` + testIssuer + `","sub":"` + testSubject + `","exp":` + jsonTime(time.Now().Add(time.Hour)) + `}`)
	sign := func(t *testing.T, alg jose.SignatureAlgorithm, key any, kid string) string {
		t.Helper()
		s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key},
			(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", kid))
		if err != nil {
			t.Fatal(err)
		}
		jws, err := s.Sign(claims)
		if err != nil {
			t.Fatal(err)
		}
		out, err := jws.CompactSerialize()
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	good := sign(t, jose.ES256, ecPriv, p.keys.signer(ES256).kid)
	head, rest, _ := strings.Cut(good, ".")
	_, sig, _ := strings.Cut(rest, ".")

	tests := []struct {
		name  string
		token func(t *testing.T) string
	}{
		{"UnknownKey", func(t *testing.T) string {
			return sign(t, jose.ES256, newECKey(t, elliptic.P256()), "stranger")
		}},
		{"KnownKIDOtherKey", func(t *testing.T) string {
			return sign(t, jose.ES256, newECKey(t, elliptic.P256()), p.keys.signer(ES256).kid)
		}},
		{"AlgDoesNotMatchKey", func(t *testing.T) string {
			// Signed by the EC key but naming the RSA key.
			return sign(t, jose.ES256, ecPriv, rsaKID)
		}},
		{"OtherAlgSameKey", func(t *testing.T) string {
			// The provider's own RSA key, but with an algorithm it does
			// not sign with: only the alg check stops it.
			return sign(t, jose.PS256, rsaPriv, rsaKID)
		}},
		{"TamperedPayload", func(t *testing.T) string {
			forged := base64.RawURLEncoding.EncodeToString([]byte(`{"iss":"` + testIssuer + `","sub":"admin"}`))
			return head + "." + forged + "." + sig
		}},
		{"AlgNone", func(t *testing.T) string {
			h := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","kid":"` + rsaKID + `"}`))
			return h + "." + base64.RawURLEncoding.EncodeToString(claims) + "."
		}},
	}
	signer := newJWTSigner(p.keys, ES256)
	if _, err := signer.Decode(t.Context(), good); err != nil {
		t.Fatalf("Decode of a well-signed token: got error %v, want nil", err)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := signer.Decode(t.Context(), tc.token(t)); err == nil {
				t.Error("Decode: got nil error, want one")
			}
		})
	}
}

func jsonTime(t time.Time) string {
	b, _ := json.Marshal(t.Unix())
	return string(b)
}

// TestDeriveKey: derived keys are 32 bytes, the same for every provider on
// one key store, and different per purpose and per store.
func TestDeriveKey(t *testing.T) {
	st := memory.New()
	p1, err := newBareProvider(t, st)
	if err != nil {
		t.Fatal(err)
	}
	p2, err := newBareProvider(t, st)
	if err != nil {
		t.Fatal(err)
	}
	other, err := newBareProvider(t, memory.New())
	if err != nil {
		t.Fatal(err)
	}
	derive := func(p *Provider, purpose string) []byte {
		t.Helper()
		k, err := p.deriveKey(purpose)
		if err != nil {
			t.Fatalf("DeriveKey(%q): %v", purpose, err)
		}
		if len(k) != 32 {
			t.Fatalf("DeriveKey(%q): got %d bytes, want 32", purpose, len(k))
		}
		return k
	}
	a := derive(p1, "login cookie mac")
	if b := derive(p1, "login cookie mac"); !bytes.Equal(a, b) {
		t.Errorf("same provider, same purpose: got %x and %x, want equal", a, b)
	}
	if b := derive(p2, "login cookie mac"); !bytes.Equal(a, b) {
		t.Errorf("same store, same purpose: got %x and %x, want equal", a, b)
	}
	if b := derive(p1, "login cookie encryption"); bytes.Equal(a, b) {
		t.Errorf("different purposes: both got %x, want different keys", a)
	}
	if b := derive(other, "login cookie mac"); bytes.Equal(a, b) {
		t.Errorf("different stores: both got %x, want different keys", a)
	}
	secret, _ := p1.keys.tokenSecrets()
	if bytes.Equal(a, secret) {
		t.Error("DeriveKey returned the token secret itself")
	}
}

// fakeClock is an injected Config.Now that tests move by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

// newFakeClock starts hours behind the wall clock: fosite reads the wall
// clock, and refuses an ID token whose auth_time (taken from Config.Now) is
// in its future, so the fake clock must never overtake it.
func newFakeClock() *fakeClock { return &fakeClock{now: time.Now().Add(-12 * time.Hour)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// withClock makes a testEnv run on clk. The periodic cleanup is off: it
// compares fosite's wall-clock expiries with Config.Now.
func withClock(clk *fakeClock, more func(*Config)) func(*Config) {
	return func(c *Config) {
		c.Now = clk.Now
		c.CleanupInterval = -1
		if more != nil {
			more(c)
		}
	}
}

func idTokenKID(t *testing.T, e *testEnv) string {
	t.Helper()
	kid, _ := jwtHeader(t, e.login(t, nativeID).id)["kid"].(string)
	return kid
}

func jwksKIDs(t *testing.T, p *Provider) []string {
	t.Helper()
	var kids []string
	for _, k := range jwksMembers(t, p.JWKS(t.Context())) {
		kids = append(kids, k["kid"])
	}
	slices.Sort(kids)
	return kids
}

// TestRotateKeys: the new keys are published at once by the replica that
// rotates and within Config.KeyRefreshInterval by another sharing the key
// store, and sign on both from two intervals after the rotation: by then
// every replica, and every client caching the JWKS for at most an interval,
// has them. No sleeping: the clock is injected.
func TestRotateKeys(t *testing.T) {
	tests := []struct {
		name string
		// beforeRotation is how long after the replicas started the
		// rotation happens.
		beforeRotation time.Duration
		interval       time.Duration // Config.KeyRefreshInterval; 0: default
	}{
		{"Default", time.Hour, 0},
		{"ShortInterval", time.Hour, 2 * time.Second},
		// Also when the clock has not moved since the keys it replaces were
		// made (a frozen test clock, or a store that truncates timestamps).
		{"SameInstant", 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := newFakeClock()
			edit := withClock(clk, func(c *Config) { c.KeyRefreshInterval = tc.interval })
			a := newTestEnv(t, edit)
			b := newTestEnvOn(t, a.mem, edit)
			interval := tc.interval
			if interval == 0 {
				interval = defaultKeyRefreshInterval
			}
			oldKID := idTokenKID(t, a)
			if got := idTokenKID(t, b); got != oldKID {
				t.Fatalf("replicas on one store: got kids %q and %q, want the same", oldKID, got)
			}

			clk.Advance(tc.beforeRotation)
			_ = a.p.JWKS(t.Context()) // a rereads the store now, if it is due
			_ = b.p.JWKS(t.Context())
			if err := b.p.RotateKeys(t.Context()); err != nil {
				t.Fatalf("RotateKeys: %v", err)
			}
			keys, err := a.mem.Keys(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if len(keys) != 5 {
				t.Errorf("after RotateKeys: got %d stored keys, want 5 (2 old, 2 new, the secret)", len(keys))
			}
			if got := idTokenKID(t, b); got != oldKID {
				t.Errorf("right after RotateKeys: the rotating replica signs with %q, want the old key %q until every replica has published the new one", got, oldKID)
			}
			if kids := jwksKIDs(t, b.p); len(kids) != 4 {
				t.Errorf("right after RotateKeys: the rotating replica publishes %d keys, want 4 (old and new)", len(kids))
			}

			clk.Advance(interval)
			if kids := jwksKIDs(t, a.p); len(kids) != 4 || !slices.Contains(kids, oldKID) {
				t.Errorf("a refresh interval after: the other replica publishes %v, want the old and the new keys", kids)
			}
			if got := idTokenKID(t, a); got != oldKID {
				t.Errorf("a refresh interval after: the other replica signs with %q, want the old key %q", got, oldKID)
			}

			clk.Advance(interval - time.Nanosecond)
			if got := idTokenKID(t, b); got != oldKID {
				t.Errorf("just before two intervals: signs with %q, want the old key %q", got, oldKID)
			}
			clk.Advance(time.Nanosecond)
			newKID := idTokenKID(t, b)
			if newKID == oldKID {
				t.Fatalf("two refresh intervals after RotateKeys: the rotating replica signs with the old key %q, want a new one", oldKID)
			}
			if got := idTokenKID(t, a); got != newKID {
				t.Errorf("two refresh intervals after: the other replica signs with %q, want the new key %q", got, newKID)
			}
			kids := jwksKIDs(t, a.p)
			for _, want := range []string{oldKID, newKID} {
				if !slices.Contains(kids, want) {
					t.Errorf("JWKS kids %v lack %q", kids, want)
				}
			}
		})
	}
}

// TestRetiredKeysUnpublished: a replaced key stays in the JWKS for the
// longest token lifespan plus a margin after its replacement, then leaves
// it.
func TestRetiredKeysUnpublished(t *testing.T) {
	tests := []struct {
		name   string
		edit   func(*Config)
		retire time.Duration // how long the replaced keys stay published
	}{
		{"Defaults", nil, time.Hour + 5*time.Minute},
		{"LongIDTokens", func(c *Config) { c.IDTokenLifespan = 3 * time.Hour }, 3*time.Hour + 5*time.Minute},
		{"LongAccessTokens", func(c *Config) { c.AccessTokenLifespan = 2 * time.Hour }, 2*time.Hour + 5*time.Minute},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := newFakeClock()
			st := memory.New()
			cfg := Config{Issuer: testIssuer, Clients: st, Users: st, Grants: st, Keys: st}
			withClock(clk, tc.edit)(&cfg)
			p, err := New(t.Context(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			before := jwksKIDs(t, p)
			clk.Advance(time.Minute)
			if err := p.RotateKeys(t.Context()); err != nil {
				t.Fatal(err)
			}
			all := jwksKIDs(t, p)
			if len(all) != 4 {
				t.Fatalf("after RotateKeys: got %d published keys, want 4", len(all))
			}
			// The old keys are replaced when the new ones start signing, two
			// refresh intervals after the rotation.
			activation := 2 * defaultKeyRefreshInterval
			clk.Advance(activation + tc.retire - time.Second)
			if got := jwksKIDs(t, p); !slices.Equal(got, all) {
				t.Errorf("%v after the rotation: got kids %v, want all four %v", activation+tc.retire-time.Second, got, all)
			}
			// The JWKS is recomputed when the keys are reread: at most a
			// refresh interval after the retirement.
			clk.Advance(defaultKeyRefreshInterval + time.Second)
			after := activation + tc.retire + defaultKeyRefreshInterval
			got := jwksKIDs(t, p)
			if len(got) != 2 {
				t.Fatalf("%v after the rotation: got %d published keys, want the 2 new ones", after, len(got))
			}
			for _, kid := range before {
				if slices.Contains(got, kid) {
					t.Errorf("%v after the rotation: retired key %q is still published", after, kid)
				}
			}
		})
	}
}
