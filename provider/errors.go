package provider

import (
	"context"
	"errors"
	"net/http"

	"github.com/ory/fosite"

	"github.com/pixieauth/pixie/internal/engine"
	"github.com/pixieauth/pixie/internal/storetimeout"
	"github.com/pixieauth/pixie/store"
)

// oauthError turns a fosite or storage error into an *engine.Error, logging what the
// client must not see: server errors at Error, client mistakes at Debug.
// Losing a compare-and-set on a code or refresh token (a concurrent or
// repeated redemption) is invalid_grant, not fosite's server_error.
func (p *Provider) oauthError(ctx context.Context, op string, err error) *engine.Error {
	if errors.Is(err, store.ErrConsumed) {
		p.log().WarnContext(ctx, "grant redeemed twice; refused", "op", op)
		return &engine.Error{Code: engine.CodeInvalidGrant, Description: "The authorization code or refresh token has already been used.", Status: http.StatusBadRequest, Cause: err}
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
		return &engine.Error{Code: engine.CodeServerError, Description: "The server could not complete the request.", Status: http.StatusInternalServerError, Cause: err}
	}
	rfc := fosite.ErrorToRFC6749Error(err)
	e := &engine.Error{Code: rfc.ErrorField, Description: rfc.GetDescription(), Status: rfc.CodeField, Cause: err}
	if e.Status >= 500 || e.Code == fosite.ErrServerError.ErrorField || e.Code == "error" {
		// fosite reports storage failures as server_error; keep the cause for
		// the operator and give the client nothing of it.
		cause := ""
		if c := rfc.Cause(); c != nil {
			cause = c.Error() // the message: slog would print fosite's stack trace
		}
		p.log().ErrorContext(ctx, "request failed", "op", op, "error", rfc.Debug(), "cause", cause)
		return &engine.Error{Code: engine.CodeServerError, Description: "The server could not complete the request.", Status: http.StatusInternalServerError, Cause: err}
	}
	p.log().DebugContext(ctx, "request refused", "op", op, "error_code", e.Code, "description", e.Description)
	return e
}

// unavailable is the answer to a store that timed out: 503 server_error.
// It carries no Retry-After: how long the database will hang is unknown.
func unavailable(cause error) *engine.Error {
	return &engine.Error{Code: engine.CodeServerError, Description: "The server could not complete the request in time.", Status: http.StatusServiceUnavailable, Cause: cause}
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
