package middleware

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// tokenKey is the context key of the validated token.
type tokenKey struct{}

// TokenFrom returns the token [RequireToken] validated for the request
// whose context ctx is (r.Context()), and whether there is one.
func TokenFrom(ctx context.Context) (*Token, bool) {
	t, ok := ctx.Value(tokenKey{}).(*Token)
	return t, ok && t != nil
}

// RequireToken returns middleware that lets a request through only with a
// valid bearer access token (RFC 6750 §2.1, Authorization header) that
// holds every one of scopes; the handler finds the token with [TokenFrom].
// Otherwise it answers as RFC 6750 §3 says, with Cache-Control: no-store
// and a JSON body {"error", "error_description"}:
//
//   - no Authorization header, or another scheme: 401 with
//     `WWW-Authenticate: Bearer realm="…"` and no error code (§3.1);
//   - a malformed or repeated Authorization header: 400 invalid_request;
//   - a token [Verifier.Verify] refuses: 401 invalid_token;
//   - a valid token without a required scope: 403 insufficient_scope, with
//     scope="…" listing all the scopes the request needs;
//   - keys or introspection unavailable: 503 temporarily_unavailable,
//     without WWW-Authenticate (the token may be fine; retry).
//
// Refusals are logged at Debug with their error code and reason, never
// the token. Tokens in the query or form (RFC 6750 §2.2, §2.3) are not
// accepted: they leak into logs and histories.
//
// RequireToken panics if v is nil or a scope is not an RFC 6749 §3.3
// scope-token (non-empty, printable ASCII without space, '"' or '\'):
// both are programming errors, caught at start-up. The middleware is safe
// for concurrent use.
func RequireToken(v *Verifier, scopes ...string) func(http.Handler) http.Handler {
	if v == nil {
		panic("middleware: RequireToken: nil *Verifier")
	}
	for _, s := range scopes {
		if !isScopeToken(s) {
			panic(fmt.Sprintf("middleware: RequireToken: %q is not a scope-token (RFC 6749 section 3.3)", s))
		}
	}
	required := slices.Clone(scopes)
	scopeAttr := strings.Join(required, " ")
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			tok, err := v.authenticate(r)
			if err == nil {
				for _, s := range required {
					if !tok.HasScope(s) {
						err = &Error{
							Code:        CodeInsufficientScope,
							Description: "The access token lacks a scope this request needs.",
							Scope:       scopeAttr,
							Status:      http.StatusForbidden,
							reason:      ErrInsufficientScope,
						}
						break
					}
				}
			}
			if err != nil {
				v.writeError(w, r, err)
				return
			}
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), tokenKey{}, tok)))
		})
	}
}

// authenticate reads and verifies the request's bearer token.
func (v *Verifier) authenticate(r *http.Request) (*Token, error) {
	values := r.Header.Values("Authorization")
	if len(values) > 1 {
		return nil, errMalformedHeader("The request has more than one Authorization header.")
	}
	var h string
	if len(values) == 1 {
		h = values[0]
	}
	raw, err := ParseBearer(h)
	if err != nil {
		return nil, err
	}
	return v.Verify(r.Context(), raw)
}

// errorBody is the JSON body of a refusal.
type errorBody struct {
	Error       string `json:"error,omitempty"`
	Description string `json:"error_description,omitempty"`
}

// writeError answers a refused request.
func (v *Verifier) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var e *Error
	if !errors.As(err, &e) {
		v.log().ErrorContext(r.Context(), "verify bearer token", "error", err)
		e = unavailable(err)
	}
	if e.Status == 0 {
		e = &Error{Code: e.Code, Description: e.Description, Scope: e.Scope, Status: http.StatusUnauthorized, reason: e.reason, cause: e.cause}
	}
	if e.Status < http.StatusInternalServerError {
		v.log().DebugContext(r.Context(), "bearer token refused",
			"error_code", e.Code, "reason", e.reasonText(), "status", e.Status)
	}
	h := w.Header()
	if e.Status < http.StatusInternalServerError {
		h.Set("WWW-Authenticate", e.Challenge(v.cfg.Realm))
	}
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(e.Status)
	_ = json.NewEncoder(w).Encode(errorBody{Error: e.Code, Description: e.Description})
}

// reasonText is the sentinel's message, for logs.
func (e *Error) reasonText() string {
	if e.reason != nil {
		return e.reason.Error()
	}
	return ""
}

// isScopeToken reports whether s is an RFC 6749 §3.3 scope-token:
// 1*( %x21 / %x23-5B / %x5D-7E ).
func isScopeToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}
