package provider

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/pixieauth/pixie/internal/engine"
	"github.com/pixieauth/pixie/internal/telemetry"
	"github.com/pixieauth/pixie/store"
)

// The operations only package handlers calls reach it through
// [engine.Handlers], not as methods of Provider: they are not part of the
// public API, and a user mounts them with package handlers.
func init() {
	engine.Register(func(p any) any { return handlerView{p.(*Provider)} })
}

// handlerView is what package handlers sees of a Provider: the endpoints'
// operations, and what the endpoints share with the provider (its clock,
// logger, instruments, store timeout, derived keys). Its methods are
// exported so that an interface of package handlers can name them; the
// type is not, so no user can.
type handlerView struct{ p *Provider }

// Issuer is [Provider.Issuer].
func (v handlerView) Issuer() string { return v.p.Issuer() }

// JWKS is [Provider.JWKS].
func (v handlerView) JWKS(ctx context.Context) []byte { return v.p.JWKS(ctx) }

// Authenticate is [Provider.Authenticate].
func (v handlerView) Authenticate(ctx context.Context, username, password string) (string, error) {
	return v.p.Authenticate(ctx, username, password)
}

// Client returns a copy of the registered client with the given id, after
// the checks every endpoint applies ([ValidateClient]); see Provider.client.
func (v handlerView) Client(ctx context.Context, id string) (*store.Client, error) {
	return v.p.client(ctx, id)
}

// Metadata is the discovery document; see Provider.metadata.
func (v handlerView) Metadata() map[string]any { return v.p.metadata() }

// Ready is the readiness check; see Provider.ready.
func (v handlerView) Ready(ctx context.Context) error { return v.p.ready(ctx) }

// JWKSMaxAge is how long clients may cache the JWKS: Config.KeyRefreshInterval.
func (v handlerView) JWKSMaxAge() time.Duration { return v.p.cfg.KeyRefreshInterval }

// Logger returns the configured logger, or slog.Default().
func (v handlerView) Logger() *slog.Logger { return v.p.log() }

// Now returns the current time from Config.Now.
func (v handlerView) Now() time.Time { return v.p.now() }

// StoreTimeout returns Config.StoreTimeout (its default applied): package
// handlers bounds its own stores' calls by it too.
func (v handlerView) StoreTimeout() time.Duration { return v.p.cfg.StoreTimeout }

// Telemetry returns the provider's instruments, through which package
// handlers records the spans, metrics and audit events of its own pages
// (login, consent, logout); nil when instrumentation is turned off.
func (v handlerView) Telemetry() *telemetry.T { return v.p.tel }

// DeriveKey returns a key derived from the stored token secret, bound to
// purpose: how package handlers seals the login cookie; see
// Provider.deriveKey.
func (v handlerView) DeriveKey(purpose string) ([]byte, error) { return v.p.deriveKey(purpose) }

// ParseAuthorizeRequest validates an authorization request; see
// Provider.parseAuthorizeRequest. On failure it returns an
// *engine.AuthorizeError.
func (v handlerView) ParseAuthorizeRequest(ctx context.Context, r *http.Request) (*engine.AuthorizeRequest, error) {
	areq, err := v.p.parseAuthorizeRequest(ctx, r)
	if err != nil {
		return nil, err
	}
	return areq.AuthorizeRequest, nil
}

// IssueCode grants a request ParseAuthorizeRequest returned to the
// logged-in user; see Provider.issueCode.
func (v handlerView) IssueCode(ctx context.Context, areq *engine.AuthorizeRequest, login Login) (string, error) {
	return v.p.issueCode(ctx, areq.Engine.(*authzRequest), login)
}

// Refuse ends a request ParseAuthorizeRequest returned with an OAuth
// error; see Provider.refuse.
func (v handlerView) Refuse(ctx context.Context, areq *engine.AuthorizeRequest, code, description string) string {
	return v.p.refuse(ctx, areq.Engine.(*authzRequest), code, description)
}

// PushAuthorizeRequest serves the pushed authorization request endpoint;
// see Provider.pushAuthorizeRequest.
func (v handlerView) PushAuthorizeRequest(ctx context.Context, r *http.Request) (map[string]any, error) {
	return v.p.pushAuthorizeRequest(ctx, r)
}

// Token serves a token request; see Provider.token.
func (v handlerView) Token(ctx context.Context, r *http.Request) (map[string]any, error) {
	return v.p.token(ctx, r)
}

// Revoke serves a revocation request; see Provider.revoke.
func (v handlerView) Revoke(ctx context.Context, r *http.Request) error { return v.p.revoke(ctx, r) }

// Introspect serves an introspection request; see Provider.introspect.
func (v handlerView) Introspect(ctx context.Context, r *http.Request) (map[string]any, error) {
	return v.p.introspect(ctx, r)
}

// UserInfoJSON serves a request to the userinfo endpoint; see
// Provider.userInfoJSON.
func (v handlerView) UserInfoJSON(ctx context.Context, r *http.Request) ([]byte, error) {
	return v.p.userInfoJSON(ctx, r)
}

// VerifyIDTokenHint checks the id_token_hint of a logout request; see
// Provider.verifyIDTokenHint.
func (v handlerView) VerifyIDTokenHint(ctx context.Context, raw string) (*engine.IDTokenHint, error) {
	return v.p.verifyIDTokenHint(ctx, raw)
}

// ClientCredentials returns the client ID that a token, revocation or
// introspection request names, and whether it presents a secret (HTTP Basic
// or client_secret in the form, RFC 6749 §2.3.1), so that a throttle in
// front of Token, Revoke or Introspect can refuse an attempt before the
// secret is checked. It parses the form as those methods do: for a request
// they refuse before authenticating the client (not a form POST, an
// unreadable body, Basic credentials that are not form-encoded) it returns
// the *engine.Error they return.
func (v handlerView) ClientCredentials(r *http.Request) (clientID string, withSecret bool, err error) {
	id, secret, e := clientCredentials(r)
	if e != nil {
		return "", false, e
	}
	return id, secret != "", nil
}
