package provider

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/ory/fosite"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"

	"github.com/pixieauth/pixie/internal/engine"
	"github.com/pixieauth/pixie/internal/storetimeout"
	"github.com/pixieauth/pixie/internal/telemetry"
	"github.com/pixieauth/pixie/store"
)

// newTelemetry makes the provider's instruments from Config.TracerProvider,
// MeterProvider, MetricsClientID and Events (nil providers: the global
// ones, no-op until the host registers an SDK).
func (p *Provider) newTelemetry() (*telemetry.T, error) {
	tp, mp := p.cfg.TracerProvider, p.cfg.MeterProvider
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	return telemetry.New(telemetry.Options{
		Tracer:   tp,
		Meter:    mp,
		ClientID: p.cfg.MetricsClientID,
		Events:   eventSink(p.cfg.Events),
		Now:      p.now,
		KeyAges:  p.keyAges,
	})
}

// keyAges reports the age of the key that signs, per algorithm.
func (p *Provider) keyAges() map[string]time.Duration {
	now := p.now()
	ages := map[string]time.Duration{}
	for _, alg := range signingAlgs() {
		if k := p.keys.signer(alg); k != nil {
			ages[alg] = now.Sub(k.created)
		}
	}
	return ages
}

// endpoint starts the span of one of the provider's endpoints, unless
// package handlers already did (see telemetry.T.Endpoint).
func (p *Provider) endpoint(ctx context.Context, r *http.Request, name string) (context.Context, telemetry.Span) {
	if p.tel == nil {
		return ctx, telemetry.Span{}
	}
	if telemetry.From(ctx) == p.tel {
		return p.tel.Endpoint(ctx, name, "", "")
	}
	return p.tel.Endpoint(ctx, name, remoteAddr(r), telemetry.RequestID(r))
}

// remoteAddr is the host of the connection's remote address.
func remoteAddr(r *http.Request) string {
	if r == nil {
		return ""
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// clientType is the pixie.client_type attribute of a client.
func clientType(c fosite.Client) attribute.KeyValue {
	if c != nil && c.IsPublic() {
		return telemetry.KeyClientType.String("public")
	}
	return telemetry.KeyClientType.String("confidential")
}

// tokenFailed records a refusal of the token endpoint, if *errp is set
// (deferred with Token's named result).
func (p *Provider) tokenFailed(ctx context.Context, span telemetry.Span, r *http.Request, errp *error) {
	if p.tel == nil || *errp == nil {
		return
	}
	code := errorCode(*errp)
	span.Fail(code)
	id := ""
	if p.tel.ClientIDs() {
		id, _, _ = clientCredentials(r)
	}
	p.tel.TokenError(ctx, code, p.knownClient(ctx, id))
}

// knownClient returns id, a client ID a request names, when the host opted
// in to client IDs in metrics and the request's memo holds that client (it
// was looked up and is registered), else "": an unknown client_id, which
// anyone may send, must not make a new time series.
func (p *Provider) knownClient(ctx context.Context, id string) string {
	if id == "" || !p.tel.ClientIDs() || memoFrom(ctx).client(id) == nil {
		return ""
	}
	return id
}

// tokensIssued records a token response.
func (p *Provider) tokensIssued(ctx context.Context, ar fosite.AccessRequester, grantType string, m map[string]any) {
	if p.tel == nil {
		return
	}
	kinds := [3]string{"access_token"}
	n := 1
	if _, ok := m["refresh_token"]; ok {
		kinds[n] = "refresh_token"
		n++
	}
	if _, ok := m["id_token"]; ok {
		kinds[n] = "id_token"
		n++
	}
	id := ar.GetClient().GetID()
	p.tel.TokensIssued(ctx, grantType, id, kinds[:n]...)
	if p.tel.Emits() {
		e := telemetry.Event{Type: string(EventTokensIssued), ClientID: id, GrantType: grantType}
		if sess, err := sessionFrom(ar); err == nil {
			e.Subject = sess.Subject
		}
		p.tel.Emit(ctx, e)
	}
}

// failed marks an endpoint's span failed with *errp's OAuth error code,
// if it is set (deferred with the endpoint's named result).
func (p *Provider) failed(span telemetry.Span, errp *error) {
	if *errp == nil || !span.Recording() {
		return
	}
	span.Fail(errorCode(*errp))
}

// errorCode is the OAuth error code of an endpoint's failure: that of its
// *engine.Error or *engine.AuthorizeError, server_error for anything else.
func errorCode(err error) string {
	var e *engine.Error
	var ae *engine.AuthorizeError
	switch {
	case errors.As(err, &ae):
		return ae.Err.Code
	case errors.As(err, &e):
		return e.Code
	}
	return engine.CodeServerError
}

// revoked records an accepted revocation request.
func (p *Provider) revoked(ctx context.Context, r *http.Request) {
	if !p.tel.Emits() {
		return
	}
	id, _, _ := clientCredentials(r)
	p.tel.Emit(ctx, telemetry.Event{Type: string(EventTokenRevoked), ClientID: id})
}

// The kinds of refresh token reuse, for replayed.
const (
	reuseGrace  = telemetry.ReuseGrace
	reuseReplay = telemetry.ReuseReplay
)

// replayed records the reuse of a code (reuse "") or of a rotated refresh
// token (telemetry.ReuseGrace or ReuseReplay): a metric, and for a replay
// an audit event.
func (p *Provider) replayed(ctx context.Context, g *store.Grant, grantType, reuse string) {
	if p.tel == nil {
		return
	}
	typ := EventRefreshReuseDetected
	switch reuse {
	case "":
		typ = EventCodeReplayDetected
		p.tel.CodeReplay(ctx, g.ClientID)
	default:
		p.tel.RefreshReuse(ctx, reuse, g.ClientID)
	}
	if reuse != telemetry.ReuseGrace {
		p.tel.Emit(ctx, telemetry.Event{Type: string(typ), Subject: g.Subject, ClientID: g.ClientID, GrantType: grantType})
	}
}

// authorizeFailed records a refusal of ParseAuthorizeRequest, if *errp is
// set.
func (p *Provider) authorizeFailed(ctx context.Context, span telemetry.Span, r *http.Request, errp *error) {
	if p.tel == nil || *errp == nil {
		return
	}
	p.authorizeDone(ctx, span, p.knownClient(ctx, r.Form.Get("client_id")), false, errp)
}

// authorizeDone records the end of ParseAuthorizeRequest (issued false:
// only its failure is an outcome) or of IssueCode.
func (p *Provider) authorizeDone(ctx context.Context, span telemetry.Span, clientID string, issued bool, errp *error) {
	if p.tel == nil {
		return
	}
	switch {
	case *errp != nil:
		p.failed(span, errp)
		p.tel.AuthorizeOutcome(ctx, telemetry.OutcomeError, clientID)
	case issued:
		p.tel.AuthorizeOutcome(ctx, telemetry.OutcomeCodeIssued, clientID)
	}
}

// ready reports whether the provider can serve requests, for a readiness
// check (package handlers' Server.Ready): every configured store that is a
// [store.Pinger] answers within Config.StoreTimeout, and a signing key of
// each algorithm is loaded. It returns the first failure.
func (p *Provider) ready(ctx context.Context) error {
	if err := storetimeout.Ping(ctx, p.cfg.StoreTimeout, p.cfg.Clients, p.cfg.Users, p.cfg.Grants, p.cfg.Keys); err != nil {
		return fmt.Errorf("provider: store: %w", err)
	}
	for _, alg := range signingAlgs() {
		if p.keys.signer(alg) == nil {
			return fmt.Errorf("provider: no %s signing key loaded", alg)
		}
	}
	return nil
}
