// Package dpop validates DPoP proofs (RFC 9449): the one validator that
// pixie's token endpoint, its /userinfo endpoint and package middleware
// share, so that all three refuse the same proofs for the same reasons.
//
// A [Checker] checks the DPoP header values of one request against a
// [Request] (method, URL, access token, expected key thumbprint), following
// RFC 9449 §4.3:
//
//   - exactly one DPoP header, holding a compact JWS of at most 8 KiB;
//   - protected header: typ exactly "dpop+jwt"; alg one of [Algs] (so
//     "none", the HMAC algorithms and everything else are refused); no crit
//     and no b64 member; a jwk member holding a public key only (a private
//     or symmetric member d, p, q, dp, dq, qi, oth or k refuses the proof,
//     as does kty "oct"), whose type fits alg: EC P-256 for ES256, RSA of
//     2048 to 8192 bits for RS256 and PS256, OKP Ed25519 for EdDSA;
//   - the signature, verified with that key;
//   - claims: jti a non-empty string of at most 256 characters; htm equal
//     to the request's method (case-sensitive); htu equal to the request's
//     URL once both are normalized (scheme and host lower case, the default
//     port :443 for https and :80 for http removed, an empty path read as
//     "/", query and fragment dropped); iat a number within
//     [now-Window, now+Window]; ath equal to [AccessTokenHash] of the access
//     token when one is given (RFC 9449 §4.3 step 12, §7.1); the server
//     nonce when [Checker.NonceKey] is set (§8);
//   - the key's RFC 7638 thumbprint against [Request.Thumbprint], when set
//     (the token's cnf.jkt, §6);
//   - and last, once everything else holds, the jti against
//     [Checker.Replay] (§11.1).
//
// Every refusal is an [*Error] whose Description is safe to send to the
// client: it never quotes the proof. A Checker is safe for concurrent use
// as long as its fields are not changed after the first call.
package dpop

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
)

// Error codes of RFC 9449 §7.1 and §8.
const (
	// CodeInvalidProof is the error code of a proof that is missing,
	// malformed, wrongly signed, or does not match the request.
	CodeInvalidProof = "invalid_dpop_proof"
	// CodeUseNonce is the error code of a proof without the server nonce
	// the server requires, or with a stale or forged one: the caller
	// answers with a fresh [Checker.Nonce] in a DPoP-Nonce header.
	CodeUseNonce = "use_dpop_nonce"
)

// Error is a refused proof. Code is [CodeInvalidProof] or [CodeUseNonce];
// Description is safe to send to the client (it never echoes the proof).
type Error struct{ Code, Description string }

// Error returns "dpop: <code>: <description>".
func (e *Error) Error() string { return "dpop: " + e.Code + ": " + e.Description }

func refuse(format string, args ...any) *Error {
	return &Error{Code: CodeInvalidProof, Description: fmt.Sprintf(format, args...)}
}

// Algs returns the accepted JWS algorithms, in a stable order: ES256,
// RS256, PS256, EdDSA. The slice is fresh; the caller may change it.
func Algs() []string { return []string{"ES256", "RS256", "PS256", "EdDSA"} }

// Request is what the server expects of a proof.
type Request struct {
	// Method is the HTTP method the proof must name (htm), e.g. "POST".
	Method string
	// URL is the absolute URL of the endpoint (htu). Query and fragment
	// are ignored on both sides.
	URL string
	// AccessToken is the access token presented with the proof at a
	// protected resource: the proof's ath must then be
	// base64url(SHA-256(AccessToken)). Leave it "" at the token endpoint;
	// an ath claim, if present, is then ignored.
	AccessToken string
	// Thumbprint, if non-empty, is the RFC 7638 SHA-256 thumbprint
	// (base64url without padding) that the proof's key must have, compared
	// in constant time: the cnf.jkt of a DPoP-bound token.
	Thumbprint string
}

// Proof is a verified proof.
type Proof struct {
	// Thumbprint is the RFC 7638 SHA-256 thumbprint of the proof's public
	// key, base64url without padding: the value of cnf.jkt (RFC 9449 §6.1).
	Thumbprint string
	// JTI is the proof's jti claim.
	JTI string
	// IssuedAt is the proof's iat claim.
	IssuedAt time.Time
}

// Checker validates DPoP proofs. Its zero value checks everything but
// replays and nonces; set Replay.
type Checker struct {
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Window bounds iat: a proof is accepted while
	// now-Window <= iat <= now+Window, so a client clock up to Window ahead
	// of the server's is tolerated as well as a proof up to Window old.
	// 0 means 5 minutes.
	Window time.Duration
	// Replay records a verified proof so that it is accepted once. It is
	// called only after everything else about the proof holds, with a key
	// that is a digest of the proof's key thumbprint and jti (never the raw
	// jti) and expiresAt = iat+Window, after which the proof is stale
	// anyway. It returns first=false if the key was recorded before; an
	// error is returned by [Checker.Check] as is (not as an [*Error]), so the
	// caller can answer server_error. Nil means no replay detection: callers
	// must set it (see [NewMemoryReplay]).
	Replay func(ctx context.Context, key string, expiresAt time.Time) (first bool, err error)
	// NonceKey, when non-empty, makes a server nonce required (RFC 9449
	// §8): a proof without one, or with a stale or forged one, is refused
	// with [CodeUseNonce], and the caller sends a fresh [Checker.Nonce] in a
	// DPoP-Nonce header. Use at least 32 random bytes, shared by every
	// server instance that checks the nonces. Nil means no nonce.
	NonceKey []byte
}

const (
	maxProofLen   = 8 << 10
	maxJTILen     = 256
	minRSABits    = 2048
	maxRSABits    = 8192
	defaultWindow = 5 * time.Minute
	nonceStep     = time.Minute
)

func (c *Checker) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *Checker) window() time.Duration {
	if c.Window > 0 {
		return c.Window
	}
	return defaultWindow
}

// object decodes a JSON object into its members, whose names are then
// matched exactly (encoding/json would match struct fields regardless of
// case).
func object(b []byte) (map[string]json.RawMessage, bool) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil || m == nil {
		return nil, false
	}
	return m, true
}

// str returns the string member name of m: present reports whether it is
// there, ok whether it is absent or a string.
func str(m map[string]json.RawMessage, name string) (v string, present, ok bool) {
	raw, present := m[name]
	if !present {
		return "", false, true
	}
	if err := json.Unmarshal(raw, &v); err != nil || len(raw) == 0 || raw[0] != '"' {
		return "", true, false
	}
	return v, true, true
}

// privateMembers are the JWK members (RFC 7518 §6.2.2, §6.3.2, §6.4.1;
// RFC 8037 §2) that only a private or symmetric key has.
var privateMembers = []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"}

var b64 = base64.RawURLEncoding.Strict()

// Check validates the DPoP header values of one request (pass
// r.Header.Values("DPoP")) against req and returns the verified proof.
// No value is refused as "missing", more than one as well (RFC 9449 §4.3
// step 1); every refusal is an [*Error]. An error of [Checker.Replay], or
// a req.URL that is not an absolute http(s) URL, is returned as a plain
// error: the server's fault, not the client's.
func (c *Checker) Check(ctx context.Context, headers []string, req Request) (*Proof, error) {
	want, err := normalizeURL(req.URL)
	if err != nil {
		return nil, fmt.Errorf("dpop: Request.URL is not an absolute http(s) URL")
	}
	p, derr := parse(headers)
	if derr != nil {
		return nil, derr
	}
	alg, pub, thumb, derr := checkHeader(p.header)
	if derr != nil {
		return nil, derr
	}
	verifier, err := jws.NewVerifier(jwa.SignatureAlgorithm(alg))
	if err != nil {
		return nil, refuse("DPoP proof alg is not supported")
	}
	if err := verifier.Verify(p.signingInput, p.sig, pub); err != nil {
		return nil, refuse("DPoP proof signature does not verify with its jwk")
	}
	proof, derr := c.checkClaims(p.claims, req, want)
	if derr != nil {
		return nil, derr
	}
	if req.Thumbprint != "" && subtle.ConstantTimeCompare([]byte(thumb), []byte(req.Thumbprint)) != 1 {
		return nil, refuse("DPoP proof key does not match the key the access token is bound to")
	}
	proof.Thumbprint = thumb
	if c.Replay != nil {
		first, err := c.Replay(ctx, replayKey(thumb, proof.JTI), proof.IssuedAt.Add(c.window()))
		if err != nil {
			return nil, err
		}
		if !first {
			return nil, refuse("DPoP proof replayed")
		}
	}
	return proof, nil
}

// compact is a DPoP proof split into its parts (RFC 7515 §7.1), not yet
// verified.
type compact struct {
	header, claims []byte // decoded JSON
	signingInput   []byte // what the signature is over, as received
	sig            []byte
}

// parse takes the one DPoP header value of a request apart (RFC 9449 §4.3
// steps 1 and 2).
func parse(headers []string) (*compact, *Error) {
	switch {
	case len(headers) > 1:
		return nil, refuse("more than one DPoP header")
	case len(headers) == 0 || headers[0] == "":
		return nil, refuse("missing DPoP proof")
	case len(headers[0]) > maxProofLen:
		return nil, refuse("DPoP proof longer than %d bytes", maxProofLen)
	}
	raw := headers[0]
	parts := strings.Split(raw, ".")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" {
		return nil, refuse("DPoP proof is not a compact JWS")
	}
	hb, err1 := b64.DecodeString(parts[0])
	pb, err2 := b64.DecodeString(parts[1])
	sig, err3 := b64.DecodeString(parts[2])
	if err1 != nil || err2 != nil || err3 != nil {
		return nil, refuse("DPoP proof is not a compact JWS")
	}
	return &compact{header: hb, claims: pb, signingInput: []byte(raw[:len(parts[0])+1+len(parts[1])]), sig: sig}, nil
}

// checkHeader checks a proof's JOSE header (RFC 9449 §4.3 steps 4 to 6)
// and returns its alg, the public key of its jwk and the key's thumbprint.
func checkHeader(hb []byte) (alg string, pub any, thumb string, derr *Error) {
	h, ok := object(hb)
	if !ok {
		return "", nil, "", refuse("DPoP proof header is not a JSON object")
	}
	if typ, _, _ := str(h, "typ"); typ != "dpop+jwt" {
		return "", nil, "", refuse(`DPoP proof typ is not "dpop+jwt"`)
	}
	alg, _, _ = str(h, "alg")
	if !algAccepted(alg) {
		return "", nil, "", refuse("DPoP proof alg is not one of %s", strings.Join(Algs(), ", "))
	}
	if _, crit := h["crit"]; crit {
		return "", nil, "", refuse("DPoP proof header has crit, which is not supported")
	}
	if _, b64opt := h["b64"]; b64opt {
		return "", nil, "", refuse("DPoP proof header has b64, which is not supported")
	}
	jwkRaw, ok := h["jwk"]
	if !ok || string(jwkRaw) == "null" {
		return "", nil, "", refuse("DPoP proof header has no jwk")
	}
	pub, thumb, derr = publicKey(jwkRaw, alg)
	return alg, pub, thumb, derr
}

// checkClaims checks a verified proof's claims (RFC 9449 §4.3 steps 7 to
// 12, and the nonce of §8) against the request, whose normalized URL is
// want. The Proof it returns has no thumbprint yet.
func (c *Checker) checkClaims(pb []byte, req Request, want string) (*Proof, *Error) {
	cl, ok := object(pb)
	if !ok {
		return nil, refuse("DPoP proof claims are not a JSON object")
	}
	jti, _, ok := str(cl, "jti")
	switch {
	case !ok || jti == "":
		return nil, refuse("DPoP proof has no jti string")
	case len(jti) > maxJTILen:
		return nil, refuse("DPoP proof jti is longer than %d characters", maxJTILen)
	}
	if htm, _, _ := str(cl, "htm"); htm != req.Method {
		return nil, refuse("DPoP proof htm does not match the request method")
	}
	htu, present, ok := str(cl, "htu")
	if !present || !ok {
		return nil, refuse("DPoP proof has no htu string")
	}
	if got, err := normalizeURL(htu); err != nil || got != want {
		return nil, refuse("DPoP proof htu does not match the request URL")
	}
	iat, ok := numericDate(cl["iat"])
	if !ok {
		return nil, refuse("DPoP proof iat is missing or not a number")
	}
	now, win := c.now(), c.window()
	switch {
	case iat.Before(now.Add(-win)):
		return nil, refuse("DPoP proof is too old (iat)")
	case iat.After(now.Add(win)):
		return nil, refuse("DPoP proof iat is in the future")
	}
	if req.AccessToken != "" {
		ath, present, ok := str(cl, "ath")
		if !present || !ok {
			return nil, refuse("DPoP proof has no ath string")
		}
		if subtle.ConstantTimeCompare([]byte(ath), []byte(AccessTokenHash(req.AccessToken))) != 1 {
			return nil, refuse("DPoP proof ath does not match the access token")
		}
	}
	if len(c.NonceKey) > 0 {
		if nonce, _, _ := str(cl, "nonce"); nonce == "" {
			return nil, &Error{Code: CodeUseNonce, Description: "the server requires a nonce in the DPoP proof (see the DPoP-Nonce header)"}
		} else if !c.nonceValid(nonce, now) {
			return nil, &Error{Code: CodeUseNonce, Description: "DPoP proof nonce is stale or invalid"}
		}
	}
	return &Proof{JTI: jti, IssuedAt: iat}, nil
}

func algAccepted(alg string) bool {
	for _, a := range Algs() {
		if a == alg {
			return true
		}
	}
	return false
}

// publicKey parses the jwk header member, refusing private and symmetric
// keys and keys that do not fit alg, and returns the public key and its
// RFC 7638 thumbprint.
func publicKey(raw json.RawMessage, alg string) (any, string, *Error) {
	members, ok := object(raw)
	if !ok {
		return nil, "", refuse("DPoP proof jwk is not a JSON object")
	}
	for _, m := range privateMembers {
		if _, ok := members[m]; ok {
			return nil, "", refuse("DPoP proof jwk is not a public key")
		}
	}
	key, err := jwk.ParseKey(raw)
	if err != nil {
		return nil, "", refuse("DPoP proof jwk is not a valid key")
	}
	var rawKey any
	if err := key.Raw(&rawKey); err != nil {
		return nil, "", refuse("DPoP proof jwk is not a valid key")
	}
	switch k := rawKey.(type) {
	case *ecdsa.PublicKey:
		if alg != "ES256" || key.KeyType() != jwa.EC {
			return nil, "", refuse("DPoP proof jwk does not fit alg %s", alg)
		}
		ek, ok := key.(jwk.ECDSAPublicKey)
		if !ok || ek.Crv() != jwa.P256 || k.Curve == nil || k.Curve.Params().Name != "P-256" {
			return nil, "", refuse("DPoP proof jwk is not a P-256 key")
		}
		if _, err := k.ECDH(); err != nil {
			return nil, "", refuse("DPoP proof jwk is not a valid P-256 point")
		}
		x, y := make([]byte, 32), make([]byte, 32)
		k.X.FillBytes(x)
		k.Y.FillBytes(y)
		return k, thumbprint(`{"crv":"P-256","kty":"EC","x":"` + b64.EncodeToString(x) + `","y":"` + b64.EncodeToString(y) + `"}`), nil
	case *rsa.PublicKey:
		if (alg != "RS256" && alg != "PS256") || key.KeyType() != jwa.RSA {
			return nil, "", refuse("DPoP proof jwk does not fit alg %s", alg)
		}
		if k.N == nil || k.N.BitLen() < minRSABits || k.N.BitLen() > maxRSABits {
			return nil, "", refuse("DPoP proof RSA key is not %d to %d bits", minRSABits, maxRSABits)
		}
		if k.E < 3 || k.E%2 == 0 {
			return nil, "", refuse("DPoP proof RSA key has an invalid exponent")
		}
		e := big.NewInt(int64(k.E)).Bytes()
		return k, thumbprint(`{"e":"` + b64.EncodeToString(e) + `","kty":"RSA","n":"` + b64.EncodeToString(k.N.Bytes()) + `"}`), nil
	case ed25519.PublicKey:
		if alg != "EdDSA" || key.KeyType() != jwa.OKP {
			return nil, "", refuse("DPoP proof jwk does not fit alg %s", alg)
		}
		ok, isOKP := key.(jwk.OKPPublicKey)
		if !isOKP || ok.Crv() != jwa.Ed25519 || len(k) != ed25519.PublicKeySize {
			return nil, "", refuse("DPoP proof jwk is not an Ed25519 key")
		}
		return k, thumbprint(`{"crv":"Ed25519","kty":"OKP","x":"` + b64.EncodeToString(k) + `"}`), nil
	default:
		return nil, "", refuse("DPoP proof jwk does not fit alg %s", alg)
	}
}

// thumbprint hashes the canonical JSON of RFC 7638 §3.2 (members in
// lexicographic order, no whitespace; base64url values need no escaping).
func thumbprint(canonical string) string {
	sum := sha256.Sum256([]byte(canonical))
	return b64.EncodeToString(sum[:])
}

// numericDate reads a JSON number of seconds since the epoch (RFC 7519 §2),
// fractions allowed.
func numericDate(raw json.RawMessage) (time.Time, bool) {
	s := string(raw)
	if s == "" || (s[0] != '-' && (s[0] < '0' || s[0] > '9')) {
		return time.Time{}, false
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || math.Abs(f) > 1e11 {
		return time.Time{}, false
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), true
}

// normalizeURL returns the htu comparison form of an absolute http(s) URL:
// scheme and host lower case, default port removed, empty path "/", no
// query, fragment or user info.
func normalizeURL(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil {
		return "", err
	}
	scheme := strings.ToLower(u.Scheme)
	if (scheme != "https" && scheme != "http") || u.Opaque != "" || u.Host == "" {
		return "", errors.New("not an absolute http(s) URL")
	}
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if host == "" {
		return "", errors.New("no host")
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" && !(scheme == "https" && port == "443") && !(scheme == "http" && port == "80") {
		host += ":" + port
	}
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	return scheme + "://" + host + path, nil
}

// replayKey is the key given to Replay: a digest of the thumbprint and the
// jti, so that one client cannot spend another's jti and no raw jti is
// stored.
func replayKey(thumb, jti string) string {
	h := sha256.New()
	h.Write([]byte(thumb))
	h.Write([]byte{0})
	h.Write([]byte(jti))
	return b64.EncodeToString(h.Sum(nil))
}

// AccessTokenHash returns the ath value for a token (RFC 9449 §4.2):
// base64url(SHA-256(token)) without padding.
func AccessTokenHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return b64.EncodeToString(sum[:])
}

// Nonce returns a fresh server nonce (RFC 9449 §8), or "" when NonceKey is
// empty. It is stateless: the current one-minute time step and an
// HMAC-SHA256 of it under NonceKey, base64url. A nonce is accepted during
// the step it was made in and the next one, so for one to two minutes;
// servers that share NonceKey accept each other's nonces.
func (c *Checker) Nonce() string {
	if len(c.NonceKey) == 0 {
		return ""
	}
	return c.nonceAt(c.now().Unix() / int64(nonceStep/time.Second))
}

func (c *Checker) nonceAt(step int64) string {
	buf := make([]byte, 8, 8+sha256.Size)
	binary.BigEndian.PutUint64(buf, uint64(step))
	return b64.EncodeToString(append(buf, c.nonceMAC(buf)...))
}

func (c *Checker) nonceMAC(step []byte) []byte {
	m := hmac.New(sha256.New, c.NonceKey)
	m.Write([]byte("pixie dpop nonce\x00"))
	m.Write(step)
	return m.Sum(nil)
}

func (c *Checker) nonceValid(nonce string, now time.Time) bool {
	b, err := b64.DecodeString(nonce)
	if err != nil || len(b) != 8+sha256.Size {
		return false
	}
	if !hmac.Equal(b[8:], c.nonceMAC(b[:8])) {
		return false
	}
	step := int64(binary.BigEndian.Uint64(b[:8]))
	cur := now.Unix() / int64(nonceStep/time.Second)
	return step == cur || step == cur-1
}
