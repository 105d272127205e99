// Package paths holds the paths, relative to the issuer, of the endpoints
// that both package handlers (which serves them) and package provider
// (which checks the URL a DPoP proof names, RFC 9449 §4.3) need to know.
package paths

// Paths relative to the issuer URL.
const (
	Token    = "/oauth/token"
	UserInfo = "/userinfo"
)
