package handlers

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/pixieauth/pixie/internal/engine"
	"github.com/pixieauth/pixie/internal/telemetry"
	"github.com/pixieauth/pixie/provider"
	"github.com/pixieauth/pixie/store"
)

// engineOps is what the Server calls of its provider: the operations the
// endpoints serve, which are not part of provider's public API and come
// through [engine.Handlers] (see providerOps).
type engineOps interface {
	Issuer() string
	JWKS(ctx context.Context) []byte
	JWKSMaxAge() time.Duration
	Metadata() map[string]any
	Ready(ctx context.Context) error
	Authenticate(ctx context.Context, username, password string) (string, error)
	Client(ctx context.Context, id string) (*store.Client, error)

	Logger() *slog.Logger
	Now() time.Time
	StoreTimeout() time.Duration
	Telemetry() *telemetry.T
	DeriveKey(purpose string) ([]byte, error)

	ParseAuthorizeRequest(ctx context.Context, r *http.Request) (*engine.AuthorizeRequest, error)
	IssueCode(ctx context.Context, areq *engine.AuthorizeRequest, login provider.Login) (string, error)
	Refuse(ctx context.Context, areq *engine.AuthorizeRequest, code, description string) string
	PushAuthorizeRequest(ctx context.Context, r *http.Request) (map[string]any, error)
	Token(ctx context.Context, r *http.Request) (map[string]any, error)
	Revoke(ctx context.Context, r *http.Request) error
	Introspect(ctx context.Context, r *http.Request) (map[string]any, error)
	UserInfoJSON(ctx context.Context, r *http.Request) ([]byte, error)
	VerifyIDTokenHint(ctx context.Context, raw string) (*engine.IDTokenHint, error)
	ClientCredentials(r *http.Request) (clientID string, withSecret bool, err error)
}

// providerOps returns p's operations for the endpoints. The assertion
// cannot fail in a build whose tests pass (TestProviderOps checks it), but
// an error beats a panic if it ever did.
func providerOps(p *provider.Provider) (engineOps, error) {
	ops, ok := engine.Handlers(p).(engineOps)
	if !ok {
		return nil, errors.New("handlers: the provider does not offer the operations the endpoints need")
	}
	return ops, nil
}
