package provider

import (
	"context"
	"errors"
	"net/http"

	"github.com/ory/fosite"

	"github.com/pixieauth/pixie/internal/storetimeout"
	"github.com/pixieauth/pixie/store"
)

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
	cause           error
}

func (e *Error) Error() string {
	if e.Description == "" {
		return e.Code
	}
	return e.Code + ": " + e.Description
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.cause }

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

// oauthError turns a fosite or storage error into an *Error, logging what the
// client must not see: server errors at Error, client mistakes at Debug.
// Losing a compare-and-set on a code or refresh token (a concurrent or
// repeated redemption) is invalid_grant, not fosite's server_error.
func (p *Provider) oauthError(ctx context.Context, op string, err error) *Error {
	if errors.Is(err, store.ErrConsumed) {
		p.log().WarnContext(ctx, "grant redeemed twice; refused", "op", op)
		return &Error{Code: CodeInvalidGrant, Description: "The authorization code or refresh token has already been used.", Status: http.StatusBadRequest, cause: err}
	}
	if storetimeout.Is(err) {
		// Before fosite's classification: whatever error fosite folded it
		// into, a store too slow to answer is the server's fault.
		p.log().ErrorContext(ctx, "store timed out", "op", op, "error", storeCause(err))
		return unavailable(err)
	}
	var internal *internalError
	if errors.As(err, &internal) {
		p.log().ErrorContext(ctx, "request failed", "op", op, "error", internal.err)
		return &Error{Code: CodeServerError, Description: "The server could not complete the request.", Status: http.StatusInternalServerError, cause: err}
	}
	rfc := fosite.ErrorToRFC6749Error(err)
	e := &Error{Code: rfc.ErrorField, Description: rfc.GetDescription(), Status: rfc.CodeField, cause: err}
	if e.Status >= 500 || e.Code == fosite.ErrServerError.ErrorField || e.Code == "error" {
		// fosite reports storage failures as server_error; keep the cause for
		// the operator and give the client nothing of it.
		cause := ""
		if c := rfc.Cause(); c != nil {
			cause = c.Error() // the message: slog would print fosite's stack trace
		}
		p.log().ErrorContext(ctx, "request failed", "op", op, "error", rfc.Debug(), "cause", cause)
		return &Error{Code: CodeServerError, Description: "The server could not complete the request.", Status: http.StatusInternalServerError, cause: err}
	}
	p.log().DebugContext(ctx, "request refused", "op", op, "error_code", e.Code, "description", e.Description)
	return e
}

// unavailable is the answer to a store that timed out: 503 server_error.
// It carries no Retry-After: how long the database will hang is unknown.
func unavailable(cause error) *Error {
	return &Error{Code: CodeServerError, Description: "The server could not complete the request in time.", Status: http.StatusServiceUnavailable, cause: cause}
}

// storeCause returns the message of the storage error within err, without
// fosite's wrapping (whose stack trace slog would print).
func storeCause(err error) string {
	var e *storetimeout.Error
	if errors.As(err, &e) {
		return e.Error()
	}
	return err.Error()
}
