package middleware

import (
	"strings"

	"github.com/pixieauth/pixie/internal/httpauth"
)

// ParseBearer extracts the token from the value of an Authorization header
// (RFC 6750 §2.1):
//
//	credentials = "Bearer" 1*SP b64token
//	b64token    = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
//
// The scheme is case-insensitive (RFC 9110 §11.1) and, as the grammar says,
// one or more spaces may separate it from the token. The error is an
// [*Error]: wrapping [ErrNoToken] (no error code, HTTP 401) when h is empty
// or uses another scheme such as Basic, and [ErrMalformedHeader]
// (invalid_request, HTTP 400) when the scheme is Bearer but the rest does
// not follow the grammar — no token, stray characters, non-ASCII, or a
// token longer than 16 KiB.
//
// ParseBearer is a pure function, safe for concurrent use.
func ParseBearer(h string) (string, error) {
	if h == "" {
		return "", errNoToken()
	}
	scheme, rest, found := strings.Cut(h, " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", errNoToken() // another scheme: no bearer credentials
	}
	if !found {
		return "", errMalformedHeader("The Authorization header has no bearer token.")
	}
	tok := strings.TrimLeft(rest, " ")
	if !httpauth.IsB64Token(tok) {
		return "", errMalformedHeader("The bearer token does not follow the b64token syntax of RFC 6750 section 2.1.")
	}
	if len(tok) > httpauth.MaxTokenLen {
		return "", errMalformedHeader("The bearer token is too large.")
	}
	return tok, nil
}
