// Package engine is package handlers' way into the operations of a
// provider.Provider that only pixie's own endpoints call (serving a token
// request, parsing an authorization request, issuing its code, …), and the
// types those operations take and return. Being internal, none of it is
// part of pixie's public API: a user of the library mounts the endpoints
// with package handlers and never calls these.
//
// It imports nothing of pixie but store, so that both package provider
// (which implements the operations) and package handlers (which calls
// them) can import it.
package engine

import (
	"time"

	"github.com/pixieauth/pixie/store"
)

// handlers is what Register was given: the one link from package provider.
var handlers func(p any) any

// Register is called once, by package provider's init, with the function
// that returns the operations a *provider.Provider offers package handlers;
// a second call panics. It is a link between two of pixie's packages that
// cannot import each other both ways, as grpc-go's internal package links
// its own: set before any code of the program's runs, never changed after,
// so it holds no state that could differ from one use to the next.
func Register(f func(p any) any) {
	if handlers != nil {
		panic("engine: Register called twice")
	}
	handlers = f
}

// Handlers returns the operations p (a *provider.Provider) offers package
// handlers, as a value of an unexported type of package provider whose
// exported methods are those operations; package handlers asserts it to an
// interface of its own.
func Handlers(p any) any { return handlers(p) }

// Error is an OAuth 2.0 error response (RFC 6749 §4.1.2.1, §5.2; RFC 6750
// §3). Code and Description are safe to send to the client: they never carry
// internals. Unwrap gives the underlying cause for logging.
type Error struct {
	Code        string // error, e.g. invalid_grant
	Description string // error_description, for developers
	Status      int    // HTTP status for a direct response
	// DPoPNonce, when set, goes in a DPoP-Nonce header (RFC 9449 §8): the
	// nonce the client must put in its next DPoP proof (use_dpop_nonce).
	DPoPNonce string
	// WWWAuthenticate, when set, is the WWW-Authenticate header of the
	// answer: the DPoP challenge of a protected resource (RFC 9449 §7.1).
	WWWAuthenticate string
	// Cause is the underlying error, for the operator's log only.
	Cause error
}

func (e *Error) Error() string {
	if e.Description == "" {
		return e.Code
	}
	return e.Code + ": " + e.Description
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Cause }

// OAuth error codes pixie answers with, besides fosite's own.
const (
	CodeInvalidToken      = "invalid_token"      // RFC 6750 §3.1
	CodeInsufficientScope = "insufficient_scope" // RFC 6750 §3.1
	CodeServerError       = "server_error"
	CodeInvalidClient     = "invalid_client"
	CodeInvalidRequest    = "invalid_request"
	CodeInvalidGrant      = "invalid_grant"
	CodeAccessDenied      = "access_denied"
	// CodeUnmetAuthenticationRequirements: the login cannot meet an
	// essential acr (OpenID Connect Core Error Code
	// unmet_authentication_requirements 1.0, §1; OIDC Core §5.5.1.1).
	CodeUnmetAuthenticationRequirements = "unmet_authentication_requirements"
)

// AuthorizeRequest is a validated authorization request (RFC 6749 §4.1.1,
// OIDC Core §3.1.2.1) waiting for the user to log in. Its client and redirect
// URI have been checked, and its PKCE challenge, scopes and response type
// accepted.
type AuthorizeRequest struct {
	Client    *store.Client // the registered client (a copy)
	Scopes    []string      // the requested scopes, and those of claims the claims parameter asks for (what the user allows)
	State     string        // the client's state
	Prompt    []string      // prompt values (OIDC Core §3.1.2.1)
	MaxAge    time.Duration // max_age; negative when absent
	LoginHint string        // login_hint
	API       string        // the API asked for (audience or resource), or ""
	// ACRValues are the authentication context classes (acr) asked for, in
	// order of preference: those of an essential acr claim of the claims
	// parameter (OIDC Core §5.5.1.1) or else acr_values (§3.1.2.1) and
	// voluntary ones of the claims parameter.
	ACRValues []string
	// ACREssential is set when the claims parameter makes acr essential:
	// a login whose acr is not among ACRValues then fails with
	// unmet_authentication_requirements. Voluntary acr values never fail a
	// request; the ID token tells the acr the login achieved.
	ACREssential bool

	// Engine is the provider's own state of the request (the fosite
	// request, the claims parameter's outcome, the pushed request it came
	// from), opaque outside package provider, which set it.
	Engine any
}

// AuthorizeError is a refused authorization request. When RedirectURL is
// set, the client and redirect URI checked out and the error must be sent
// there (RFC 6749 §4.1.2.1), with state and iss already added. When it is
// empty, the client or redirect URI is invalid and the user must be shown the
// error instead: a bad redirect URI is never redirected to.
type AuthorizeError struct {
	Err         *Error // the OAuth error
	RedirectURL string // where to send it, or empty: show it to the user
}

func (e *AuthorizeError) Error() string { return e.Err.Error() }

// Unwrap returns the OAuth error.
func (e *AuthorizeError) Unwrap() error { return e.Err }

// IDTokenHint is what an id_token_hint (OpenID Connect RP-Initiated Logout
// 1.0 §2) says, once its signature checks out.
type IDTokenHint struct {
	Subject  string   // sub: the user the app believes is logged in
	Audience []string // aud: the client(s) the token was issued to
}

// MaxIDTokenHintLen is the longest id_token_hint pixie reads, at the
// authorization endpoint and at logout: an ID token pixie issued is far
// shorter, and a longer value is not parsed at all.
const MaxIDTokenHintLen = 8192
