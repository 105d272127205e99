package provider

import (
	"context"
	"time"

	"github.com/pixieauth/pixie/internal/telemetry"
)

// EventType names the kind of an audit [Event].
type EventType string

// The audit events, as Config.Events receives them. Those of the login,
// consent and logout pages come from package handlers.
const (
	EventLoginSucceeded       EventType = "login_succeeded"        // the login form accepted a user; Subject set
	EventLoginFailed          EventType = "login_failed"           // wrong credentials or throttled (Reason); no Subject, no username
	EventConsentGiven         EventType = "consent_given"          // the user allowed a client
	EventConsentDenied        EventType = "consent_denied"         // the user refused a client
	EventTokensIssued         EventType = "tokens_issued"          // a token response; GrantType set
	EventRefreshReuseDetected EventType = "refresh_reuse_detected" // a rotated refresh token used again outside the grace: its family is revoked
	EventCodeReplayDetected   EventType = "code_replay_detected"   // a code redeemed again: its tokens are revoked
	EventTokenRevoked         EventType = "token_revoked"          // a revocation request (RFC 7009) accepted
	EventLogout               EventType = "logout"                 // a login session ended at the logout endpoint
	EventKeyRotated           EventType = "key_rotated"            // Provider.RotateKeys stored new signing keys
)

// Event is an audit event. It never holds a token, code, secret, password,
// PKCE verifier or e-mail address; a failed login does not hold the
// username typed either (it may be a password typed in the wrong field).
type Event struct {
	Type    EventType
	Time    time.Time // from Config.Now
	Subject string    // the user's subject identifier, when known
	// ClientID is the client concerned, when there is one.
	ClientID string
	// Address is the address the request came from: package handlers'
	// Config.ClientIP, or the connection's remote address when the
	// provider is called without package handlers. Empty for events
	// outside a request (key rotation).
	Address string
	// RequestID identifies the HTTP request: the host's X-Request-Id
	// header when it has a short printable one, else the trace ID of the
	// request's span when it is being traced, else empty.
	RequestID string
	// GrantType is the grant of EventTokensIssued and of the replay
	// events: authorization_code or refresh_token.
	GrantType string
	// Reason details EventLoginFailed: "wrong_credentials" or "throttled".
	Reason string
}

// eventSink adapts Config.Events to internal/telemetry.
func eventSink(f func(context.Context, Event)) func(context.Context, telemetry.Event) {
	if f == nil {
		return nil
	}
	return func(ctx context.Context, e telemetry.Event) {
		f(ctx, Event{Type: EventType(e.Type), Time: e.Time, Subject: e.Subject, ClientID: e.ClientID,
			Address: e.Address, RequestID: e.RequestID, GrantType: e.GrantType, Reason: e.Reason})
	}
}
