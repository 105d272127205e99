package middleware

import "strings"

// maxTokenLen bounds the tokens this package looks at. A pixie access
// token is well under 2 KiB; custom claims may add some.
const maxTokenLen = 16 << 10

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
	if !isB64Token(tok) {
		return "", errMalformedHeader("The bearer token does not follow the b64token syntax of RFC 6750 section 2.1.")
	}
	if len(tok) > maxTokenLen {
		return "", errMalformedHeader("The bearer token is too large.")
	}
	return tok, nil
}

// isB64Token reports whether s is an RFC 6750 §2.1 b64token.
func isB64Token(s string) bool {
	body := strings.TrimRight(s, "=")
	if body == "" {
		return false
	}
	for i := 0; i < len(body); i++ {
		c := body[i]
		switch {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		case c == '-', c == '.', c == '_', c == '~', c == '+', c == '/':
		default:
			return false
		}
	}
	return true
}
