package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/pixieauth/pixie/internal/engine"
)

// token serves the token endpoint.
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	s.clientJSON(w, r, s.p.Token, http.StatusOK)
}

// par serves the pushed authorization request endpoint (RFC 9126): the
// client authenticates as at the token endpoint, with the same backoff,
// and gets 201 with request_uri and expires_in.
func (s *Server) par(w http.ResponseWriter, r *http.Request) {
	s.clientJSON(w, r, s.p.PushAuthorizeRequest, http.StatusCreated)
}

// clientJSON serves an endpoint where the client authenticates, behind the
// client-authentication backoff, answering call's JSON with status.
func (s *Server) clientJSON(w http.ResponseWriter, r *http.Request, call func(context.Context, *http.Request) (map[string]any, error), status int) {
	noStore(w.Header())
	att, ok := s.admitClient(w, r)
	if !ok {
		return
	}
	resp, err := call(r.Context(), r)
	s.clientOutcome(r, att, err)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, status, resp)
}

// revoke serves the revocation endpoint.
func (s *Server) revoke(w http.ResponseWriter, r *http.Request) {
	noStore(w.Header())
	att, ok := s.admitClient(w, r)
	if !ok {
		return
	}
	err := s.p.Revoke(r.Context(), r)
	s.clientOutcome(r, att, err)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// introspect serves the introspection endpoint.
func (s *Server) introspect(w http.ResponseWriter, r *http.Request) {
	noStore(w.Header())
	att, ok := s.admitClient(w, r)
	if !ok {
		return
	}
	resp, err := s.p.Introspect(r.Context(), r)
	s.clientOutcome(r, att, err)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// admitClient applies Config.ClientAuthBackoff to a request in which a
// client presents a secret, before the provider checks it. It returns the
// attempt (nil if the request presents no secret) and whether the request
// may go on; if not, it has answered: 429 with Retry-After once the budget
// is spent.
func (s *Server) admitClient(w http.ResponseWriter, r *http.Request) (*attempt, bool) {
	id, withSecret, err := s.p.ClientCredentials(r)
	if err != nil {
		s.writeError(w, r, err) // what the provider answers
		return nil, false
	}
	if !withSecret {
		return nil, true // no secret is guessed
	}
	ctx := r.Context()
	att := s.clients.attempt(id, s.clientIP(r))
	wait, err := s.clients.check(ctx, att)
	if err != nil {
		s.p.Logger().ErrorContext(ctx, "read client throttle", "error", err)
		s.writeError(w, r, &engine.Error{Code: engine.CodeServerError, Description: "The server could not complete the request.", Status: http.StatusInternalServerError})
		return nil, false
	}
	if wait > 0 {
		secs := retryAfter(w, wait)
		s.p.Logger().WarnContext(ctx, "client authentication throttled", "retry_after", secs)
		s.writeError(w, r, &engine.Error{
			Code:        errCodeTemporarilyUnavailable,
			Description: fmt.Sprintf("Too many failed client authentications. Try again in %d seconds.", secs),
			Status:      http.StatusTooManyRequests,
		})
		return nil, false
	}
	return att, true
}

// errCodeTemporarilyUnavailable is the error of a throttled client
// authentication (RFC 6749 §4.1.2.1 defines it for a server that cannot
// take the request now; §5.2 has no code for it).
const errCodeTemporarilyUnavailable = "temporarily_unavailable"

// clientOutcome records how the provider judged the client of an admitted
// attempt: invalid_client is a failure; an answer of 200 proves the secret,
// and clears the backoff. Other errors may come before or after client
// authentication, so they count neither way.
func (s *Server) clientOutcome(r *http.Request, att *attempt, err error) {
	if att == nil {
		return
	}
	ctx := r.Context()
	var e *engine.Error
	switch {
	case err == nil:
		if err := s.clients.succeeded(ctx, att); err != nil {
			s.p.Logger().ErrorContext(ctx, "record client authentication in throttle", "error", err)
		}
	case errors.As(err, &e) && e.Code == engine.CodeInvalidClient:
		if err := s.clients.failed(ctx, att); err != nil {
			s.p.Logger().ErrorContext(ctx, "record client authentication failure", "error", err)
		}
	}
}

// userinfo serves the UserInfo endpoint. The token comes in the
// Authorization header (RFC 6750 §2.1, or with DPoP, RFC 9449 §7.1) or, in
// a POST, in the form body (RFC 6750 §2.2), as the provider reads it.
func (s *Server) userinfo(w http.ResponseWriter, r *http.Request) {
	noStore(w.Header())
	body, err := s.p.UserInfoJSON(r.Context(), r)
	if err == nil {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		_, _ = w.Write(body)
		return
	}
	s.writeError(w, r, err)
}

// writeError writes an OAuth error response (RFC 6749 §5.2).
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var e *engine.Error
	if !errors.As(err, &e) {
		s.p.Logger().ErrorContext(r.Context(), "unexpected error", "error", err)
		e = &engine.Error{Code: engine.CodeServerError, Status: http.StatusInternalServerError}
	}
	if e.Code == engine.CodeInvalidClient && e.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="pixie"`)
	}
	if e.WWWAuthenticate != "" {
		w.Header().Set("WWW-Authenticate", e.WWWAuthenticate)
	}
	if e.DPoPNonce != "" {
		w.Header().Set("DPoP-Nonce", e.DPoPNonce) // RFC 9449 §8
	}
	if e.Status == http.StatusMethodNotAllowed {
		w.Header().Set("Allow", http.MethodPost)
	}
	body := map[string]string{"error": e.Code}
	if e.Description != "" {
		body["error_description"] = e.Description
	}
	writeJSON(w, e.Status, body)
}

// writeJSON answers v as JSON, as json.Encoder writes it. A flat object of
// plain strings, integers and booleans (a token response) is written
// directly: encoding/json's map encoder costs two allocations per member.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	if m, ok := v.(map[string]any); ok {
		if b, ok := appendFlatJSON(make([]byte, 0, 2048), m); ok {
			_, _ = w.Write(b)
			return
		}
	}
	_ = json.NewEncoder(w).Encode(v)
}

// appendFlatJSON appends m as json.Encoder writes it (members sorted by
// name, a newline after), and reports whether it could: only when every
// value is a string, an int, an int64 or a bool, and every string (names
// too) is printable ASCII that encoding/json writes as it is, so that
// nothing here needs escaping. Anything else is left to encoding/json.
func appendFlatJSON(b []byte, m map[string]any) ([]byte, bool) {
	var namesBuf [16]string
	names := namesBuf[:0]
	for k := range m {
		if !plainJSON(k) {
			return nil, false
		}
		names = append(names, k)
	}
	slices.Sort(names)
	b = append(b, '{')
	for i, k := range names {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(append(append(b, '"'), k...), '"', ':')
		switch v := m[k].(type) {
		case string:
			if !plainJSON(v) {
				return nil, false
			}
			b = append(append(append(b, '"'), v...), '"')
		case int64:
			b = strconv.AppendInt(b, v, 10)
		case int:
			b = strconv.AppendInt(b, int64(v), 10)
		case bool:
			b = strconv.AppendBool(b, v)
		default:
			return nil, false
		}
	}
	return append(b, '}', '\n'), true
}

// plainJSON reports whether encoding/json writes s between its quotes as it
// is: printable ASCII other than the quotation mark, the reverse solidus
// and the <, > and & it escapes for HTML.
func plainJSON(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20 || c >= 0x7f:
			return false
		case c == '"' || c == '\\' || c == '<' || c == '>' || c == '&':
			return false
		}
	}
	return true
}

// discovery serves the provider metadata (OIDC Discovery 1.0 §3, RFC 8414 §2).
func (s *Server) discovery(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Cache-Control", "public, max-age=300")
	writeJSON(w, http.StatusOK, s.p.Metadata())
}

// jwks serves the public signing keys.
func (s *Server) jwks(w http.ResponseWriter, r *http.Request) {
	// No longer than the provider waits before a new key signs.
	w.Header().Set("Cache-Control", fmt.Sprintf("public, max-age=%d", int(s.p.JWKSMaxAge()/time.Second)))
	w.Header().Set("Content-Type", "application/jwk-set+json")
	_, _ = w.Write(s.p.JWKS(r.Context()))
}
