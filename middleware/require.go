package middleware

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/pixieauth/pixie/internal/dpop"
	"github.com/pixieauth/pixie/internal/httpauth"
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
// valid access token (Authorization header) that holds every one of
// scopes; the handler finds the token with [TokenFrom]. The token comes
// either as a bearer token (RFC 6750 §2.1, `Bearer <token>`) or, if it is
// DPoP-bound (cnf.jkt, RFC 9449 §6), as `DPoP <token>` with a DPoP header
// holding a proof of possession of that key (RFC 9449 §7.1). Otherwise it
// answers as RFC 6750 §3 and RFC 9449 §7.1 say, with Cache-Control:
// no-store and a JSON body {"error", "error_description"}:
//
//   - no Authorization header, or another scheme: 401 with two
//     challenges, `WWW-Authenticate: Bearer realm="…"` and
//     `WWW-Authenticate: DPoP algs="ES256 RS256 PS256 EdDSA"`, and no
//     error code (RFC 6750 §3.1, RFC 9449 §7.2);
//   - a malformed or repeated Authorization header: 400 invalid_request;
//   - a token [Verifier.Verify] refuses: 401 invalid_token;
//   - a DPoP-bound token with the Bearer scheme, or a token that is not
//     DPoP-bound with the DPoP scheme: 401 invalid_token with the DPoP
//     challenge (a bearer token gains nothing from a proof, and accepting
//     it would let clients believe their tokens are bound when they are
//     not);
//   - with the DPoP scheme, a missing, repeated or refused proof (its
//     signature, typ, alg, jwk, htm, htu, iat, ath, jti replay, or a key
//     other than cnf.jkt): 401 invalid_dpop_proof with the DPoP challenge;
//   - a valid token without a required scope: 403 insufficient_scope, with
//     scope="…" listing all the scopes the request needs;
//   - keys, introspection or the DPoP replay store unavailable: 503
//     temporarily_unavailable, without WWW-Authenticate (the token may be
//     fine; retry).
//
// A refusal of a request with the DPoP scheme is challenged with the DPoP
// scheme: `DPoP algs="…", error="…", error_description="…"`. The proof's
// htu must be Config.PublicURL (or the URL the request reached) followed by
// the request's path; its htm the request's method; its ath the hash of
// the token; and each proof is accepted once, see Config.DPoPReplay.
//
// Refusals are logged at Debug with their error code and reason, never
// the token or the proof. Tokens in the query or form (RFC 6750 §2.2,
// §2.3) are not accepted: they leak into logs and histories.
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
							Code:        codeInsufficientScope,
							Description: "The access token lacks a scope this request needs.",
							Scope:       scopeAttr,
							Status:      http.StatusForbidden,
							reason:      errInsufficientScope,
							dpop:        tok.JKT != "",
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

// authenticate reads and verifies the request's access token and, for the
// DPoP scheme, its proof.
func (v *Verifier) authenticate(r *http.Request) (*Token, error) {
	values := r.Header.Values("Authorization")
	if len(values) > 1 {
		return nil, errMalformedHeader("The request has more than one Authorization header.")
	}
	var h string
	if len(values) == 1 {
		h = values[0]
	}
	if scheme, rest, _ := strings.Cut(h, " "); strings.EqualFold(scheme, "DPoP") {
		return v.authenticateDPoP(r, rest)
	}
	raw, err := ParseBearer(h)
	if err != nil {
		return nil, err
	}
	tok, err := v.Verify(r.Context(), raw)
	if err != nil {
		return nil, err
	}
	if tok.JKT != "" {
		return nil, refuseDPoP(codeInvalidToken, "The access token is DPoP-bound: send it with the DPoP authorization scheme and a DPoP proof (RFC 9449 section 7.1).")
	}
	return tok, nil
}

// authenticateDPoP checks `DPoP <token>` (rest is what follows the
// scheme) and the request's DPoP proof (RFC 9449 §7.1).
func (v *Verifier) authenticateDPoP(r *http.Request, rest string) (*Token, error) {
	raw := strings.TrimLeft(rest, " ")
	if len(raw) > httpauth.MaxTokenLen {
		return nil, asDPoP(errMalformedHeader("The access token is too large."))
	}
	if !httpauth.IsB64Token(raw) {
		return nil, asDPoP(errMalformedHeader("The DPoP authorization header has no access token in the token68 syntax (RFC 9449 section 7.1)."))
	}
	tok, err := v.Verify(r.Context(), raw)
	if err != nil {
		return nil, asDPoP(err)
	}
	if tok.JKT == "" {
		return nil, refuseDPoP(codeInvalidToken, "The access token is not DPoP-bound: send it with the Bearer authorization scheme.")
	}
	u, ok := v.requestURL(r)
	if !ok {
		return nil, refuseDPoP(dpop.CodeInvalidProof, "The request's URL cannot be determined for the DPoP proof's htu.")
	}
	_, err = v.dpop.Check(r.Context(), r.Header.Values("DPoP"), dpop.Request{
		Method:      r.Method,
		URL:         u,
		AccessToken: raw,
		Thumbprint:  tok.JKT,
	})
	var pe *dpop.Error
	switch {
	case errors.As(err, &pe):
		return nil, refuseDPoP(pe.Code, pe.Description)
	case err != nil:
		return nil, unavailable(err)
	}
	return tok, nil
}

// requestURL returns the absolute URL of r that a DPoP proof's htu must
// name: Config.PublicURL, or the scheme and Host the request reached,
// followed by the path of the request line.
func (v *Verifier) requestURL(r *http.Request) (string, bool) {
	base := v.cfg.PublicURL
	if base == "" {
		if r.Host == "" {
			return "", false
		}
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		base = scheme + "://" + r.Host
	}
	path := r.URL.EscapedPath()
	if ru := r.RequestURI; strings.HasPrefix(ru, "/") {
		path, _, _ = strings.Cut(ru, "?")
	} else if u, err := url.ParseRequestURI(ru); err == nil && u.Host != "" {
		path = u.EscapedPath() // absolute-form request target
	}
	if path == "" {
		path = "/"
	}
	return base + path, true
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
		if errors.Is(e, ErrNoToken) {
			// Both schemes are offered (RFC 9449 §7.2).
			h.Add("WWW-Authenticate", (&Error{dpop: true}).Challenge(""))
		}
	}
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(e.Status)
	_ = json.NewEncoder(w).Encode(errorBody{Error: e.Code, Description: e.Description})
}

// reasonText is the reason's message, which names the check that
// failed, for logs.
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
