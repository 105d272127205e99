package handlers

import (
	"context"
	"net/http"
	"strings"

	"github.com/pixieauth/pixie/internal/storetimeout"
	"github.com/pixieauth/pixie/internal/telemetry"
	"github.com/pixieauth/pixie/provider"
)

// endpointNames names each route's span and pixie.endpoint attribute, by
// path.
var endpointNames = map[string]string{
	PathAuthorize:           "authorize",
	PathToken:               "token",
	pathPAR:                 "par",
	PathUserInfo:            "userinfo",
	PathRevoke:              "revoke",
	PathIntrospect:          "introspect",
	PathOIDCConfig:          "discovery",
	PathOAuthConfig:         "discovery",
	PathJWKS:                "jwks",
	PathLogin:               "login",
	PathLogout:              "logout",
	PathLogout + "/confirm": "logout",
	PathConsent:             "consent",
}

// perRequest gives each request the store-timeout budget of
// storetimeout.PerRequest and, with instruments, starts its span (nested
// under the host's HTTP span in the request's context) and gives it the
// scope the provider's spans, store spans and audit events read: the
// address (Config.ClientIP) and request ID. One context and one request
// copy for both.
func (s *Server) perRequest(pattern string, h http.Handler) http.Handler {
	if s.tel == nil {
		return storetimeout.PerRequest(h)
	}
	path := pattern
	if i := strings.IndexByte(pattern, ' '); i >= 0 {
		path = pattern[i+1:]
	}
	name, ok := endpointNames[path]
	if !ok {
		name = "other"
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, span := s.tel.Endpoint(r.Context(), name, s.clientIP(r), telemetry.RequestID(r))
		defer span.End()
		h.ServeHTTP(w, r.WithContext(storetimeout.Request(ctx)))
	})
}

// emit records an audit event of the login, consent or logout pages.
func (s *Server) emit(ctx context.Context, typ provider.EventType, subject, clientID string) {
	s.tel.Emit(ctx, telemetry.Event{Type: string(typ), Subject: subject, ClientID: clientID})
}

// loginAttempt records an attempt at the login form: the metric, and
// EventLoginSucceeded or EventLoginFailed. A failed attempt's event holds
// no username: it may be a password typed in the wrong field.
func (s *Server) loginAttempt(ctx context.Context, result, subject, request string) {
	if s.tel == nil {
		return
	}
	s.tel.LoginAttempt(ctx, result)
	if !s.tel.Emits() {
		return
	}
	e := telemetry.Event{Type: string(provider.EventLoginFailed), ClientID: queryValue(request, "client_id"), Reason: result}
	if result == telemetry.LoginSuccess {
		e.Type, e.Subject, e.Reason = string(provider.EventLoginSucceeded), subject, ""
	}
	if len(e.ClientID) > 256 {
		e.ClientID = "" // not a registered client: those are checked at /authorize
	}
	s.tel.Emit(ctx, e)
}

// eventLogout is provider.EventLogout, for logout.go.
const eventLogout = provider.EventLogout
