// Package httpauth holds the rules that the authorization server (package
// provider, for /userinfo) and the resource-server middleware share about
// HTTP authentication: the grammar of the Authorization header's Bearer
// (RFC 6750 §2.1) and DPoP (RFC 9449 §7.1) credentials, the
// WWW-Authenticate challenges answering them, and which hosts count as
// loopback for plain-http URLs.
package httpauth

import (
	"net"
	"strings"
)

// MaxTokenLen bounds the tokens looked at. A pixie access token is well
// under 2 KiB; custom claims may add some.
const MaxTokenLen = 16 << 10

// Credentials splits the value of an Authorization header,
//
//	credentials = auth-scheme 1*SP b64token
//	b64token    = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
//
// into its scheme, as written (compare it with strings.EqualFold: schemes
// are case-insensitive, RFC 9110 §11.1), and its token. ok is false when
// what follows the scheme is not one b64token of at most MaxTokenLen bytes;
// scheme is still set then, so that a caller can tell a malformed Bearer
// header from another scheme.
func Credentials(h string) (scheme, token string, ok bool) {
	scheme, rest, found := strings.Cut(h, " ")
	if !found {
		return scheme, "", false
	}
	token = strings.TrimLeft(rest, " ")
	if len(token) > MaxTokenLen || !IsB64Token(token) {
		return scheme, "", false
	}
	return scheme, token, true
}

// IsB64Token reports whether s is an RFC 6750 §2.1 b64token (the token68 of
// RFC 9110 §11.2).
func IsB64Token(s string) bool {
	body := strings.TrimRight(s, "=")
	if body == "" {
		return false
	}
	for i := 0; i < len(body); i++ {
		switch c := body[i]; {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		case c == '-', c == '.', c == '_', c == '~', c == '+', c == '/':
		default:
			return false
		}
	}
	return true
}

// Challenge returns a WWW-Authenticate challenge (RFC 9110 §11.6.1): the
// scheme, then each name and value pair of attrs whose value is not empty,
// the value as a quoted string holding only what RFC 6750 §3 allows in one
// (printable ASCII but '"' and '\'; other bytes are dropped).
func Challenge(scheme string, attrs ...string) string {
	var b strings.Builder
	b.WriteString(scheme)
	sep := " "
	for i := 0; i+1 < len(attrs); i += 2 {
		name, value := attrs[i], attrs[i+1]
		if value == "" {
			continue
		}
		b.WriteString(sep)
		b.WriteString(name)
		b.WriteString(`="`)
		for j := 0; j < len(value); j++ {
			// %x20-21 / %x23-5B / %x5D-7E.
			if c := value[j]; c >= 0x20 && c <= 0x7e && c != '"' && c != '\\' {
				b.WriteByte(c)
			}
		}
		b.WriteByte('"')
		sep = ", "
	}
	return b.String()
}

// IsLoopbackHost reports whether host (without port or brackets) names the
// local machine: localhost, in any case, or a loopback IP address.
func IsLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
