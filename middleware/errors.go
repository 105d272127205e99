package middleware

import (
	"errors"
	"net/http"
	"strings"

	"github.com/pixieauth/pixie/internal/dpop"
	"github.com/pixieauth/pixie/internal/httpauth"
)

// Error codes of RFC 6750 §3.1, and the one this package adds for outages.
// They are unexported: a caller branches on the sentinels below, one per
// answer, and Error.Code's doc lists the values, which the RFCs fix.
const (
	// codeInvalidRequest: the Authorization header is malformed or
	// repeated (RFC 6750 §3.1). HTTP 400.
	codeInvalidRequest = "invalid_request"
	// codeInvalidToken: the token is malformed, expired, revoked, not
	// signed by a trusted key or not meant for this resource server
	// (RFC 6750 §3.1). HTTP 401.
	codeInvalidToken = "invalid_token"
	// codeInsufficientScope: the token is valid but lacks a scope the
	// request needs (RFC 6750 §3.1). HTTP 403.
	codeInsufficientScope = "insufficient_scope"
	// codeTemporarilyUnavailable: the token could not be checked because
	// the key set or the introspection endpoint could not be reached. RFC
	// 6750 defines no code for this; the name is RFC 6749 §4.1.2.1's. HTTP
	// 503, without a WWW-Authenticate challenge: the client's token may be
	// fine, and it should retry rather than throw the token away.
	codeTemporarilyUnavailable = "temporarily_unavailable"
)

// The answers to a refused token or request, one sentinel each. Every
// error [Verifier.Verify] and [ParseBearer] return is an [*Error] that
// wraps exactly one of them (ErrExpired also wraps ErrInvalidToken), so
// callers branch with [errors.Is]. The precise reason (wrong audience, bad
// signature, unknown key, …) is in the Error's Description and message,
// and in RequireToken's Debug log; it is not exported, because nothing a
// caller does depends on it.
var (
	// ErrNoToken: the request carries no bearer credentials, or credentials
	// of another scheme (RFC 6750 §3.1: no error code is sent). A caller
	// answers 401 with a bare challenge, or serves the request anonymously
	// where that is allowed.
	ErrNoToken = errors.New("middleware: no bearer token")
	// ErrMalformedHeader: the Authorization header names the Bearer scheme
	// but does not follow RFC 6750 §2.1, or is repeated. A caller answers
	// 400 invalid_request: the client sent a broken request, not a bad
	// token.
	ErrMalformedHeader = errors.New("middleware: malformed Authorization header")
	// ErrInvalidToken: the token is refused, and the answer is 401
	// invalid_token whatever the reason: it is malformed or too large, not
	// an access token (typ, or introspection's token_type), signed with an
	// algorithm not in Config.Algorithms, with an unknown key or one for
	// another algorithm, or with a bad signature; iss, aud or exp is
	// missing, iss or aud is wrong, it is expired, not yet valid (nbf) or
	// issued in the future (iat); or introspection says it is inactive.
	// The checks are [Verifier.Verify]'s.
	ErrInvalidToken = errors.New("middleware: invalid token")
	// ErrExpired: exp is past, beyond Config.Leeway (RFC 7519 §4.1.4). It
	// wraps ErrInvalidToken, and is the one reason kept apart because a
	// caller acts on it: a server that holds the token itself (a gateway,
	// a backend for a frontend) refreshes it and retries.
	ErrExpired error = errExpired
	// ErrUnavailable: the key set or the introspection endpoint could not
	// be reached or answered nonsense, so the token could not be checked.
	// A caller answers 503 without a challenge: the token may be fine, and
	// the client should retry with it.
	ErrUnavailable = errors.New("middleware: token check unavailable")
)

// The reasons within ErrInvalidToken, unexported: each wraps
// ErrInvalidToken, and its message, which RequireToken logs at Debug,
// names the check that failed.
var (
	// errMalformedToken: the token is not a compact JWS (RFC 7515 §7.1),
	// a segment is not base64url, the header or claims are not JSON
	// objects, a claim has the wrong type, or the token is too large.
	errMalformedToken = &tokenReason{"middleware: malformed token"}
	// errTokenType: the JOSE header's typ is missing or is not "at+jwt"
	// (RFC 9068 §2.1, §4): for instance an ID token presented as an
	// access token.
	errTokenType = &tokenReason{"middleware: not an access token (typ)"}
	// errAlgorithm: the token's alg is not in Config.Algorithms; "none" and
	// the HMAC algorithms never are (RFC 8725 §3.1, §3.2).
	errAlgorithm = &tokenReason{"middleware: signature algorithm not allowed"}
	// errUnknownKey: no key in the key set has the token's kid (or the
	// token has none), even after refetching the key set.
	errUnknownKey = &tokenReason{"middleware: unknown signing key"}
	// errKeyMismatch: the key the kid names is for another algorithm than
	// the token's alg (its JWK alg differs, or its type or curve does not
	// fit), RFC 8725 §3.1.
	errKeyMismatch = &tokenReason{"middleware: key does not match the algorithm"}
	// errSignature: the signature does not verify.
	errSignature = &tokenReason{"middleware: invalid signature"}
	// errMissingClaim: a required claim (iss, aud or exp) is absent
	// (RFC 9068 §2.2).
	errMissingClaim = &tokenReason{"middleware: required claim missing"}
	// errIssuer: iss is not Config.Issuer (RFC 9068 §4).
	errIssuer = &tokenReason{"middleware: wrong issuer"}
	// errAudience: aud does not contain Config.Audience (RFC 9068 §4).
	errAudience = &tokenReason{"middleware: wrong audience"}
	// errNotYetValid: nbf is in the future, beyond Config.Leeway
	// (RFC 7519 §4.1.5).
	errNotYetValid = &tokenReason{"middleware: token not yet valid"}
	// errIssuedInFuture: iat is in the future, beyond Config.Leeway
	// (RFC 7519 §4.1.6).
	errIssuedInFuture = &tokenReason{"middleware: token issued in the future"}
	// errWrongTokenType: introspection says the token is not an access
	// token (for instance a refresh token, RFC 7662 §2.2 token_type).
	errWrongTokenType = &tokenReason{"middleware: not an access token (token_type)"}
	// errInactive: the introspection endpoint answered active=false
	// (RFC 7662 §2.2): the token is expired, revoked or unknown.
	errInactive = &tokenReason{"middleware: token inactive"}
	// errExpired is ErrExpired, typed for refuse.
	errExpired = &tokenReason{"middleware: token expired"}
)

// The reasons only RequireToken produces. No exported function returns
// them (RequireToken answers the request itself), so they need no
// exported sentinel; their messages are logged at Debug.
var (
	// errInsufficientScope: the token lacks a scope RequireToken needs
	// (RFC 6750 §3.1). 403 insufficient_scope.
	errInsufficientScope = errors.New("middleware: insufficient scope")
	// errDPoP: the DPoP binding of the request does not hold (RFC
	// 9449): the proof is missing or refused (error invalid_dpop_proof), a
	// DPoP-bound token came with the Bearer scheme, or a token that is not
	// DPoP-bound came with the DPoP scheme (both invalid_token). 401 with
	// the DPoP challenge.
	errDPoP = errors.New("middleware: DPoP proof or binding refused")
)

// tokenReason is a reason within ErrInvalidToken: its message is the
// detail, and it unwraps to ErrInvalidToken, the answer.
type tokenReason struct{ msg string }

func (r *tokenReason) Error() string { return r.msg }

func (r *tokenReason) Unwrap() error { return ErrInvalidToken }

// Error is the refusal of a request or token, ready to be rendered as an
// RFC 6750 §3 bearer challenge: [RequireToken] sends Status, a
// WWW-Authenticate header made by [Error.Challenge] (except for 5xx) and a
// JSON body {"error": Code, "error_description": Description}.
//
// Code is the RFC 6750 §3.1 error code: "invalid_request" (HTTP 400),
// "invalid_token" (401), "insufficient_scope" (403), RFC 9449 §7.1's
// "invalid_dpop_proof" (401), "temporarily_unavailable" (503, a name this
// package borrows from RFC 6749 §4.1.2.1), or "" when the request simply
// has no bearer token (RFC 6750 §3.1 sends no error code then). Description is a
// fixed, human-readable sentence for the client's developer; it never
// contains the token, a claim value, or internal details. Scope is set for
// insufficient_scope: the space-separated scopes the request needs.
//
// Errors from this package wrap one of the Err… sentinels (and, for
// outages, the underlying cause): test them with [errors.Is] rather than
// compare Code.
type Error struct {
	Code        string
	Description string
	Scope       string
	Status      int

	reason error // an Err… sentinel, or an unexported reason (errAudience, errDPoP, …)
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

// Unwrap returns the reason the error wraps (an Err… sentinel, or a
// detailed reason that wraps ErrInvalidToken) and, for outages, the cause.
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

// refuse returns the *Error of a refused token: 401 invalid_token. reason
// is a *tokenReason, so that every such refusal wraps ErrInvalidToken.
func refuse(reason *tokenReason, description string) *Error {
	return &Error{Code: codeInvalidToken, Description: description, Status: http.StatusUnauthorized, reason: reason}
}

// unavailable returns the *Error of an outage: 503, with its cause.
func unavailable(cause error) *Error {
	return &Error{
		Code:        codeTemporarilyUnavailable,
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
	return &Error{Code: codeInvalidRequest, Description: description, Status: http.StatusBadRequest, reason: ErrMalformedHeader}
}

func malformed(description string) *Error { return refuse(errMalformedToken, description) }

// refuseDPoP returns the *Error of a refused DPoP binding, challenged
// with the DPoP scheme: code is invalid_dpop_proof or invalid_token.
func refuseDPoP(code, description string) *Error {
	return &Error{Code: code, Description: description, Status: http.StatusUnauthorized, reason: errDPoP, dpop: true}
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
