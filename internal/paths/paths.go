// Package paths holds the paths, relative to the issuer, of the endpoints
// that both package handlers (which serves them) and package provider
// (which checks the URL a DPoP proof names, RFC 9449 §4.3, and writes the
// discovery document) need to know.
package paths

// Paths relative to the issuer URL.
const (
	Authorize  = "/authorize"
	Token      = "/oauth/token"
	PAR        = "/oauth/par"
	UserInfo   = "/userinfo"
	Revoke     = "/oauth/revoke"
	Introspect = "/oauth/introspect"
	JWKS       = "/.well-known/jwks.json"
	Logout     = "/logout"
)
