package middleware

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/pixieauth/pixie/internal/dpop"
	"github.com/pixieauth/pixie/internal/httpauth"
)

// maxNumericDate is 9999-12-31T23:59:59Z: later NumericDates are refused
// as malformed rather than overflowing time.Time arithmetic.
const maxNumericDate = 253402300799

// Verifier validates access tokens: RFC 9068 JWTs against the issuer's keys
// and, if configured, opaque tokens by RFC 7662 introspection. Make one with
// [NewVerifier] at start-up and share it; it is safe for concurrent use.
type Verifier struct {
	cfg    Config                  // validated, defaults filled in
	algs   map[string]jws.Verifier // the allow-list, with jwx's verifier for each
	b64    *base64.Encoding        // unpadded base64url, refusing non-canonical input
	local  atomic.Pointer[keyTable]
	remote *remoteKeys
	sigs   *sigCache // nil when off
	intro  *introspector
	dpop   *dpop.Checker

	closeOnce sync.Once
	stop      func()       // ends the remote key set's background work
	ownClient *http.Client // the default client, whose idle connections Close drops
}

// NewVerifier validates cfg (the error names the bad field) and prepares the
// keys. ctx bounds only this call; background work is stopped by
// [Verifier.Close], never by ctx.
//
// With Config.JWKSURL, NewVerifier fetches the JWK Set once and fails if it
// cannot: a resource server that starts without keys would refuse every
// request, so it fails fast where the operator sees it. It then refreshes
// the set every Config.RefreshInterval in the background until Close;
// failed refreshes are logged and the keys already fetched stay in use.
//
// With Config.KeySet, NewVerifier calls Keys once and fails if it errs or
// holds no usable key.
//
// Either way it fails if no key fits any of Config.Algorithms, since every
// token would then be refused.
func NewVerifier(ctx context.Context, cfg Config) (*Verifier, error) {
	own := cfg.HTTPClient == nil
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	v := &Verifier{
		cfg:  c,
		algs: make(map[string]jws.Verifier, len(c.Algorithms)),
		b64:  base64.RawURLEncoding.Strict(),
	}
	switch {
	case c.SignatureCacheSize == 0:
		v.sigs = newSigCache(defaultSignatureCacheSize)
	case c.SignatureCacheSize > 0:
		v.sigs = newSigCache(c.SignatureCacheSize)
	}
	if own {
		v.ownClient = c.HTTPClient
	}
	for _, alg := range c.Algorithms {
		jv, err := jws.NewVerifier(jwa.SignatureAlgorithm(alg))
		if err != nil {
			return nil, fmt.Errorf("middleware: Config.Algorithms: %w", err)
		}
		v.algs[alg] = jv
	}

	if err := v.loadKeys(ctx); err != nil {
		v.Close()
		return nil, err
	}
	if c.Introspection != nil {
		v.intro = newIntrospector(c.Introspection)
	}
	replay := c.DPoPReplay
	if replay == nil {
		replay = dpop.NewMemoryReplay(defaultDPoPReplayMax)
	}
	v.dpop = &dpop.Checker{Now: c.Now, Replay: replay}
	return v, nil
}

// loadKeys loads the key set of Config.KeySet, or starts the refresh of
// Config.JWKSURL's, and checks that a key fits one of Config.Algorithms.
func (v *Verifier) loadKeys(ctx context.Context) error {
	c := v.cfg
	var t *keyTable
	switch {
	case c.KeySet != nil:
		set, err := c.KeySet.Keys(ctx)
		if err != nil {
			return fmt.Errorf("middleware: Config.KeySet: %w", err)
		}
		if t, err = buildTable(set); err != nil {
			return fmt.Errorf("middleware: Config.KeySet: %w", err)
		}
		v.local.Store(t)
	case c.JWKSURL != "":
		r, stop, err := newRemoteKeys(ctx, c, v.log)
		if err != nil {
			return err
		}
		v.remote, v.stop = r, stop
		t = r.table.Load()
	}
	if t != nil && !slices.ContainsFunc(c.Algorithms, func(alg string) bool {
		for _, k := range t.byKID {
			if k.fits(alg) {
				return true
			}
		}
		return false
	}) {
		return fmt.Errorf("middleware: no key in the JWK Set fits Config.Algorithms %v", c.Algorithms)
	}
	return nil
}

// Close stops the background refresh of a remote key set and drops the
// idle connections of the default HTTP client. Verify keeps working with
// the keys already fetched, but no longer refetches them. Close is
// idempotent and safe for concurrent use.
func (v *Verifier) Close() {
	v.closeOnce.Do(func() {
		if v.stop != nil {
			v.stop()
		}
		if v.ownClient != nil {
			v.ownClient.CloseIdleConnections()
		}
	})
}

func (v *Verifier) log() *slog.Logger {
	if v.cfg.Logger != nil {
		return v.cfg.Logger
	}
	return slog.Default()
}

// Verify validates an access token and returns its claims. The error is
// always an [*Error] wrapping [ErrInvalidToken] (401 invalid_token; also
// [ErrExpired] when the token expired) or [ErrUnavailable] (503). Its
// Description, and its message, say which check failed.
//
// A JWT (RFC 9068) is checked in this order:
//   - the compact JWS shape, base64url segments and JSON header;
//   - alg is in Config.Algorithms: never "none" nor HMAC;
//   - no crit or b64 header parameter, which this package does not
//     implement (RFC 7515 §4.1.11, RFC 7797);
//   - typ is "at+jwt" or "application/at+jwt", case-insensitively
//     (RFC 9068 §4), so an ID token cannot pass as an access token;
//   - kid names a key of the key set, after at most one rate-limited
//     refetch of a remote set;
//   - that key is for alg: its JWK alg, type and curve;
//   - the signature;
//   - the claims: iss, aud and exp present; iss equals Config.Issuer; aud
//     contains Config.Audience; exp not past ([ErrExpired]), nbf and iat
//     not in the future, each with Config.Leeway; sub, client_id, jti and
//     scope are strings and auth_time a NumericDate when present.
//
// With Config.Introspection, a token that is not shaped like a JWS (or
// every token, without a key source) is introspected instead (RFC 7662):
// it must be active and, when the answer has them, of token_type Bearer,
// for Config.Issuer and Config.Audience, and unexpired. An unreachable key
// set or introspection endpoint gives [ErrUnavailable] (HTTP 503), logged
// at Error.
//
// A token whose claims (or introspection answer) hold cnf.jkt is
// DPoP-bound (RFC 9449 §6): Verify returns it with [Token.JKT] set, and
// checks no DPoP proof, which [RequireToken] does. A cnf that is not an
// object with a string jkt makes the token invalid.
//
// Verify never checks scopes: [RequireToken] or [Token.HasScope] does.
// ctx bounds the refetch or introspection the call may make.
func (v *Verifier) Verify(ctx context.Context, raw string) (*Token, error) {
	if raw == "" {
		return nil, malformed("The access token is empty.")
	}
	if len(raw) > httpauth.MaxTokenLen {
		return nil, malformed("The access token is too large.")
	}
	if v.intro != nil && (strings.Count(raw, ".") != 2 || (v.remote == nil && v.cfg.KeySet == nil)) {
		if !httpauth.IsB64Token(raw) {
			return nil, malformed("The access token is not a b64token (RFC 6750 section 2.1).")
		}
		return v.introspect(ctx, raw)
	}
	return v.verifyJWT(ctx, raw)
}

// jwsHeader holds the JOSE header parameters Verify looks at.
type jwsHeader struct {
	Alg  string          `json:"alg"`
	Typ  string          `json:"typ"`
	Kid  string          `json:"kid"`
	Crit json.RawMessage `json:"crit"`
	B64  json.RawMessage `json:"b64"`
}

func (v *Verifier) verifyJWT(ctx context.Context, raw string) (*Token, error) {
	i, j := strings.IndexByte(raw, '.'), strings.LastIndexByte(raw, '.')
	if i < 0 || i == j || strings.IndexByte(raw[i+1:j], '.') >= 0 {
		return nil, malformed("The access token is not a JWT: it needs three dot-separated parts.")
	}
	hdr, err := v.b64.DecodeString(raw[:i])
	if err != nil {
		return nil, malformed("The access token's header is not base64url.")
	}
	var h jwsHeader
	// The '{' test refuses "null", which Unmarshal accepts.
	if err := json.Unmarshal(hdr, &h); err != nil || hdr[0] != '{' {
		return nil, malformed("The access token's header is not a JSON object.")
	}
	verifier, ok := v.algs[h.Alg]
	if !ok {
		return nil, refuse(errAlgorithm, "The access token's signature algorithm is not accepted.")
	}
	if h.Crit != nil || h.B64 != nil {
		return nil, malformed("The access token's header has parameters this server does not support (crit, b64).")
	}
	if !strings.EqualFold(h.Typ, "at+jwt") && !strings.EqualFold(h.Typ, "application/at+jwt") {
		return nil, refuse(errTokenType, "The token is not an access token: its typ header is not at+jwt (RFC 9068).")
	}
	if h.Kid == "" {
		return nil, refuse(errUnknownKey, "The access token names no signing key (kid).")
	}
	key, kerr := v.lookup(ctx, h.Kid)
	if kerr != nil {
		return nil, kerr
	}
	if !key.fits(h.Alg) {
		return nil, refuse(errKeyMismatch, "The access token's signing key is not for its signature algorithm.")
	}
	sum := sha256.Sum256([]byte(raw))
	if claims := v.sigs.claims(sum, key); claims != nil {
		return v.claimsToken(claims, v.cfg.Now(), true, true, true)
	}
	sig, err := v.b64.DecodeString(raw[j+1:])
	if err != nil || len(sig) == 0 {
		return nil, refuse(errSignature, "The access token's signature is invalid.")
	}
	if err := verifier.Verify([]byte(raw[:j]), sig, key.pub); err != nil {
		return nil, refuse(errSignature, "The access token's signature is invalid.")
	}
	// Only now, with the signature checked, are the claims worth reading.
	payload, err := v.b64.DecodeString(raw[i+1 : j])
	if err != nil {
		return nil, malformed("The access token's payload is not base64url.")
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil || claims == nil {
		return nil, malformed("The access token's claims are not a JSON object.")
	}
	tok, err := v.claimsToken(claims, v.cfg.Now(), true, true, true)
	if err == nil {
		v.sigs.add(sum, key, claims)
	}
	return tok, err
}

// lookup returns the key kid names.
func (v *Verifier) lookup(ctx context.Context, kid string) (*verifyKey, *Error) {
	if v.remote != nil {
		return v.remote.lookup(ctx, kid)
	}
	set, err := v.cfg.KeySet.Keys(ctx)
	if err != nil {
		v.log().ErrorContext(ctx, "load verification keys", "error", err)
		return nil, unavailable(err)
	}
	t := v.local.Load()
	if !t.from(set) {
		if t, err = buildTable(set); err != nil {
			v.log().ErrorContext(ctx, "load verification keys", "error", err)
			return nil, unavailable(err)
		}
		v.local.Store(t)
	}
	if k := t.byKID[kid]; k != nil {
		return k, nil
	}
	return nil, refuseUnknownKey()
}

// claimsToken checks the claims of a verified JWT or of an introspection
// answer and builds the Token. The need… flags say which of iss, aud and
// exp must be present.
func (v *Verifier) claimsToken(m map[string]any, now time.Time, needIss, needAud, needExp bool) (*Token, error) {
	t := &Token{Claims: m}
	var ok, has bool

	if t.Issuer, has, ok = stringClaim(m, "iss"); !ok {
		return nil, malformed("The iss claim is not a string.")
	} else if !has && needIss {
		return nil, refuse(errMissingClaim, "The access token has no iss claim.")
	} else if has && t.Issuer != v.cfg.Issuer {
		return nil, refuse(errIssuer, "The access token is from another issuer.")
	}

	if t.Audience, has, ok = audienceClaim(m); !ok {
		return nil, malformed("The aud claim is not a string or an array of strings.")
	} else if !has && needAud {
		return nil, refuse(errMissingClaim, "The access token has no aud claim.")
	} else if has && !slices.Contains(t.Audience, v.cfg.Audience) {
		return nil, refuse(errAudience, "The access token is not meant for this resource server (aud).")
	}

	leeway := v.cfg.Leeway
	if t.ExpiresAt, has, ok = numericDate(m, "exp"); !ok {
		return nil, malformed("The exp claim is not a NumericDate.")
	} else if !has && needExp {
		return nil, refuse(errMissingClaim, "The access token has no exp claim.")
	} else if has && !now.Before(t.ExpiresAt.Add(leeway)) {
		return nil, refuse(errExpired, "The access token has expired.")
	}
	if nbf, has, ok := numericDate(m, "nbf"); !ok {
		return nil, malformed("The nbf claim is not a NumericDate.")
	} else if has && now.Add(leeway).Before(nbf) {
		return nil, refuse(errNotYetValid, "The access token is not valid yet (nbf).")
	}
	if t.IssuedAt, has, ok = numericDate(m, "iat"); !ok {
		return nil, malformed("The iat claim is not a NumericDate.")
	} else if has && now.Add(leeway).Before(t.IssuedAt) {
		return nil, refuse(errIssuedInFuture, "The access token was issued in the future (iat).")
	}
	if t.AuthTime, _, ok = numericDate(m, "auth_time"); !ok {
		return nil, malformed("The auth_time claim is not a NumericDate.")
	}

	for _, c := range []struct {
		name string
		dst  *string
	}{{"sub", &t.Subject}, {"client_id", &t.ClientID}, {"jti", &t.JTI}} {
		if *c.dst, _, ok = stringClaim(m, c.name); !ok {
			return nil, malformed("The " + c.name + " claim is not a string.")
		}
	}
	if t.JKT, ok = confirmationJKT(m); !ok {
		return nil, malformed("The cnf claim is not an object with a string jkt (RFC 9449 section 6).")
	}
	scope, _, ok := stringClaim(m, "scope")
	if !ok {
		return nil, malformed("The scope claim is not a space-separated string (RFC 9068 section 2.2.3).")
	}
	t.Scopes = strings.Fields(scope)
	return t, nil
}

// stringClaim returns claim name of m: its value, whether present, and
// whether well-typed.
func stringClaim(m map[string]any, name string) (string, bool, bool) {
	x, has := m[name]
	if !has {
		return "", false, true
	}
	s, ok := x.(string)
	return s, true, ok
}

// confirmationJKT returns the jkt member of the cnf claim (RFC 7800 §3.1,
// RFC 9449 §6.1): the thumbprint of the key a DPoP-bound token is bound
// to, "" when there is none; ok is false when cnf is not an object or its
// jkt not a non-empty string. Other confirmation methods (x5t#S256 of
// RFC 8705) are not checked by this package.
func confirmationJKT(m map[string]any) (string, bool) {
	x, has := m["cnf"]
	if !has {
		return "", true
	}
	cnf, ok := x.(map[string]any)
	if !ok {
		return "", false
	}
	j, has := cnf["jkt"]
	if !has {
		return "", true
	}
	s, ok := j.(string)
	return s, ok && s != ""
}

// audienceClaim returns the aud claim (RFC 7519 §4.1.3): a string or an
// array of strings.
func audienceClaim(m map[string]any) ([]string, bool, bool) {
	x, has := m["aud"]
	if !has {
		return nil, false, true
	}
	switch aud := x.(type) {
	case string:
		return []string{aud}, true, true
	case []any:
		out := make([]string, len(aud))
		for i, a := range aud {
			s, ok := a.(string)
			if !ok {
				return nil, true, false
			}
			out[i] = s
		}
		return out, true, true
	}
	return nil, true, false
}

// numericDate returns claim name of m as a time (RFC 7519 §2 NumericDate:
// seconds since the epoch, possibly fractional), whether present, and
// whether well-formed.
func numericDate(m map[string]any, name string) (time.Time, bool, bool) {
	x, has := m[name]
	if !has {
		return time.Time{}, false, true
	}
	f, ok := x.(float64)
	if !ok || math.IsNaN(f) || f < 0 || f > maxNumericDate {
		return time.Time{}, true, false
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)).UTC(), true, true
}

// Token is a validated access token. Verify returns a new one for every
// call; the handler may keep or modify it.
type Token struct {
	// Subject is the sub claim: the resource owner, or the client for a
	// client-credentials token (RFC 9068 §2.2).
	Subject string
	// ClientID is the client_id claim: the client the token was issued to
	// (RFC 9068 §2.2, RFC 8693 §4.3).
	ClientID string
	// Issuer is the iss claim.
	Issuer string
	// Audience is the aud claim, as a list (RFC 7519 §4.1.3).
	Audience []string
	// Scopes are the scope claim split at spaces (RFC 9068 §2.2.3,
	// RFC 6749 §3.3).
	Scopes []string
	// ExpiresAt is the exp claim (zero only for an introspected token
	// without exp).
	ExpiresAt time.Time
	// IssuedAt is the iat claim; zero if absent.
	IssuedAt time.Time
	// AuthTime is the auth_time claim (RFC 9068 §2.2.1): when the user
	// last authenticated; zero if absent.
	AuthTime time.Time
	// JTI is the jti claim: the token's unique identifier (RFC 7519
	// §4.1.7).
	JTI string
	// JKT is the cnf.jkt claim of a DPoP-bound token (RFC 9449 §6): the
	// RFC 7638 SHA-256 thumbprint of the key whose DPoP proof
	// [RequireToken] checked; "" for a bearer token. [Verifier.Verify]
	// alone checks no proof: whoever calls it directly must refuse a token
	// with a JKT that comes without a valid proof.
	JKT string
	// Claims holds every claim as decoded by encoding/json (numbers are
	// float64), including namespaced custom ones that rules added, e.g.
	// Claims["https://example.com/roles"]. For an introspected token, it
	// is the introspection response (RFC 7662 §2.2).
	Claims map[string]any
}

// HasScope reports whether the token was granted scope s (exact,
// case-sensitive match, RFC 6749 §3.3).
func (t *Token) HasScope(s string) bool {
	return t != nil && slices.Contains(t.Scopes, s)
}
