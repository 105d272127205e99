package middleware

import (
	"errors"
	"net/http"
	"strings"

	"github.com/pixieauth/pixie/internal/dpop"
	"github.com/pixieauth/pixie/internal/httpauth"
)

// Error codes of RFC 6750 §3.1, and the one this package adds for outages.
const (
	// CodeInvalidRequest: the Authorization header is malformed or
	// repeated (RFC 6750 §3.1). HTTP 400.
	CodeInvalidRequest = "invalid_request"
	// CodeInvalidToken: the token is malformed, expired, revoked, not
	// signed by a trusted key or not meant for this resource server
	// (RFC 6750 §3.1). HTTP 401.
	CodeInvalidToken = "invalid_token"
	// CodeInsufficientScope: the token is valid but lacks a scope the
	// request needs (RFC 6750 §3.1). HTTP 403.
	CodeInsufficientScope = "insufficient_scope"
	// CodeTemporarilyUnavailable: the token could not be checked because
	// the key set or the introspection endpoint could not be reached. RFC
	// 6750 defines no code for this; the name is RFC 6749 §4.1.2.1's. HTTP
	// 503, without a WWW-Authenticate challenge: the client's token may be
	// fine, and it should retry rather than throw the token away.
	CodeTemporarilyUnavailable = "temporarily_unavailable"
)

// Reasons a token or request is refused. Every error [Verifier.Verify],
// [ParseBearer] and [RequireToken] produce is an [*Error] that wraps exactly
// one of these, so callers can branch with [errors.Is].
var (
	// ErrNoToken: the request carries no bearer credentials, or credentials
	// of another scheme (RFC 6750 §3.1: no error code is sent).
	ErrNoToken = errors.New("middleware: no bearer token")
	// ErrMalformedHeader: the Authorization header names the Bearer scheme
	// but does not follow RFC 6750 §2.1, or is repeated.
	ErrMalformedHeader = errors.New("middleware: malformed Authorization header")
	// ErrMalformedToken: the token is not a compact JWS (RFC 7515 §7.1),
	// a segment is not base64url, the header or claims are not JSON
	// objects, a claim has the wrong type, or the token is too large.
	ErrMalformedToken = errors.New("middleware: malformed token")
	// ErrTokenType: the JOSE header's typ is missing or is not "at+jwt"
	// (RFC 9068 §2.1, §4): for instance an ID token presented as an
	// access token.
	ErrTokenType = errors.New("middleware: not an access token (typ)")
	// ErrAlgorithm: the token's alg is not in Config.Algorithms; "none" and
	// the HMAC algorithms never are (RFC 8725 §3.1, §3.2).
	ErrAlgorithm = errors.New("middleware: signature algorithm not allowed")
	// ErrUnknownKey: no key in the key set has the token's kid (or the
	// token has none), even after refetching the key set.
	ErrUnknownKey = errors.New("middleware: unknown signing key")
	// ErrKeyMismatch: the key the kid names is for another algorithm than
	// the token's alg (its JWK alg differs, or its type or curve does not
	// fit), RFC 8725 §3.1.
	ErrKeyMismatch = errors.New("middleware: key does not match the algorithm")
	// ErrSignature: the signature does not verify.
	ErrSignature = errors.New("middleware: invalid signature")
	// ErrMissingClaim: a required claim (iss, aud or exp) is absent
	// (RFC 9068 §2.2).
	ErrMissingClaim = errors.New("middleware: required claim missing")
	// ErrIssuer: iss is not Config.Issuer (RFC 9068 §4).
	ErrIssuer = errors.New("middleware: wrong issuer")
	// ErrAudience: aud does not contain Config.Audience (RFC 9068 §4).
	ErrAudience = errors.New("middleware: wrong audience")
	// ErrExpired: exp is past, beyond Config.Leeway (RFC 7519 §4.1.4).
	ErrExpired = errors.New("middleware: token expired")
	// ErrNotYetValid: nbf is in the future, beyond Config.Leeway
	// (RFC 7519 §4.1.5).
	ErrNotYetValid = errors.New("middleware: token not yet valid")
	// ErrIssuedInFuture: iat is in the future, beyond Config.Leeway
	// (RFC 7519 §4.1.6).
	ErrIssuedInFuture = errors.New("middleware: token issued in the future")
	// ErrWrongTokenType: introspection says the token is not an access
	// token (for instance a refresh token, RFC 7662 §2.2 token_type).
	ErrWrongTokenType = errors.New("middleware: not an access token (token_type)")
	// ErrInactive: the introspection endpoint answered active=false
	// (RFC 7662 §2.2): the token is expired, revoked or unknown.
	ErrInactive = errors.New("middleware: token inactive")
	// ErrInsufficientScope: the token lacks a scope RequireToken needs
	// (RFC 6750 §3.1).
	ErrInsufficientScope = errors.New("middleware: insufficient scope")
	// ErrUnavailable: the key set or the introspection endpoint could not
	// be reached or answered nonsense, so the token could not be checked.
	ErrUnavailable = errors.New("middleware: token check unavailable")
	// ErrDPoP: the DPoP binding of the request does not hold (RFC 9449):
	// the proof is missing or refused (error invalid_dpop_proof), a
	// DPoP-bound token came with the Bearer scheme, or a token that is not
	// DPoP-bound came with the DPoP scheme (both invalid_token).
	ErrDPoP = errors.New("middleware: DPoP proof or binding refused")
)

// Error is the refusal of a request or token, ready to be rendered as an
// RFC 6750 §3 bearer challenge: [RequireToken] sends Status, a
// WWW-Authenticate header made by [Error.Challenge] (except for 5xx) and a
// JSON body {"error": Code, "error_description": Description}.
//
// Code is one of the Code… constants, or "" when the request simply has no
// bearer token (RFC 6750 §3.1 sends no error code then). Description is a
// fixed, human-readable sentence for the client's developer; it never
// contains the token, a claim value, or internal details. Scope is set for
// insufficient_scope: the space-separated scopes the request needs.
//
// Errors from this package wrap one of the Err… sentinels (and, for
// outages, the underlying cause): test them with [errors.Is].
type Error struct {
	Code        string
	Description string
	Scope       string
	Status      int

	reason error // one of the Err… sentinels
	cause  error // for outages: what failed
	dpop   bool  // the request used the DPoP scheme: challenge with DPoP
}

// Error returns the code, the description and, for outages, the cause:
// for logs, not for clients.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("middleware: ")
	if e.Code != "" {
		b.WriteString(e.Code)
	} else {
		b.WriteString("no_token")
	}
	if e.Description != "" {
		b.WriteString(": ")
		b.WriteString(e.Description)
	}
	if e.cause != nil {
		b.WriteString(": ")
		b.WriteString(e.cause.Error())
	}
	return b.String()
}

// Unwrap returns the sentinel the error wraps and, for outages, the cause.
func (e *Error) Unwrap() []error {
	switch {
	case e.reason != nil && e.cause != nil:
		return []error{e.reason, e.cause}
	case e.reason != nil:
		return []error{e.reason}
	case e.cause != nil:
		return []error{e.cause}
	}
	return nil
}

// Challenge returns the value of the WWW-Authenticate header for the error
// (RFC 6750 §3): `Bearer realm="…"` alone when the request had no token,
// else with error, error_description and, for insufficient_scope, scope.
// Realm may be empty, and then is left out. Characters that RFC 6750 §3
// does not allow in a quoted attribute are dropped.
//
// For a request that used the DPoP scheme, and for a DPoP-bound token sent
// with the Bearer scheme, it is the DPoP challenge of RFC 9449 §7.1
// instead: `DPoP algs="ES256 RS256 PS256 EdDSA"` followed by the same
// error attributes, without realm.
func (e *Error) Challenge(realm string) string {
	scheme, attrs := "Bearer", []string{"realm", realm}
	if e.dpop {
		scheme, attrs = "DPoP", []string{"algs", strings.Join(dpop.Algs(), " ")}
	}
	if e.Code != "" {
		attrs = append(attrs, "error", e.Code, "error_description", e.Description, "scope", e.Scope)
	}
	return httpauth.Challenge(scheme, attrs...)
}

// refuse returns the *Error of a refused token: 401 invalid_token.
func refuse(reason error, description string) *Error {
	return &Error{Code: CodeInvalidToken, Description: description, Status: http.StatusUnauthorized, reason: reason}
}

// unavailable returns the *Error of an outage: 503, with its cause.
func unavailable(cause error) *Error {
	return &Error{
		Code:        CodeTemporarilyUnavailable,
		Description: "The access token could not be checked right now; retry later.",
		Status:      http.StatusServiceUnavailable,
		reason:      ErrUnavailable,
		cause:       cause,
	}
}

func errNoToken() *Error {
	return &Error{Description: "The request has no bearer access token.", Status: http.StatusUnauthorized, reason: ErrNoToken}
}

func errMalformedHeader(description string) *Error {
	return &Error{Code: CodeInvalidRequest, Description: description, Status: http.StatusBadRequest, reason: ErrMalformedHeader}
}

func malformed(description string) *Error { return refuse(ErrMalformedToken, description) }

// errDPoP returns the *Error of a refused DPoP binding, challenged with
// the DPoP scheme: code is invalid_dpop_proof or invalid_token.
func errDPoP(code, description string) *Error {
	return &Error{Code: code, Description: description, Status: http.StatusUnauthorized, reason: ErrDPoP, dpop: true}
}

// asDPoP returns a copy of err (an *Error) challenged with the DPoP
// scheme; other errors are returned as they are.
func asDPoP(err error) error {
	var e *Error
	if !errors.As(err, &e) {
		return err
	}
	c := *e
	c.dpop = true
	return &c
}
