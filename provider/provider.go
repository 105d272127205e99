package provider

import (
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/compose"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/handler/openid"
	"github.com/ory/fosite/token/jwt"

	"github.com/pixieauth/pixie/internal/dpop"
	"github.com/pixieauth/pixie/internal/storetimeout"
	"github.com/pixieauth/pixie/internal/telemetry"
	"github.com/pixieauth/pixie/store"
)

// keyRetireMargin is added to the token lifespan for how long a replaced key
// stays published, to cover clock skew between replicas and clients.
const keyRetireMargin = 5 * time.Minute

// Provider is an OAuth 2.0 / OpenID Connect authorization server for the
// Authorization Code grant with PKCE: the protocol engine behind the HTTP
// endpoints of package handlers. It is safe for concurrent use.
type Provider struct {
	cfg Config
	// The configured stores, each call bounded by Config.StoreTimeout
	// (clients also cached, see clientCache). cfg.Grants is the grant store
	// itself, for its optional capabilities.
	clients store.Clients
	users   store.Users
	grants  store.Grants
	keys    *keyring
	oauth2  fosite.OAuth2Provider
	codes   oauth2.AuthorizeCodeStrategy // for the signature of a raw code
	// userInfo remembers verified userinfo answers; nil when disabled.
	userInfo *userInfoCache
	// dpopToken checks the DPoP proofs of token requests, dpopResource
	// those at /userinfo (see newDPoPCheckers).
	dpopToken, dpopResource *dpop.Checker
	// tel records spans, metrics and audit events (see telemetry.go); nil
	// records nothing.
	tel *telemetry.T

	cleanMu   sync.Mutex
	cleaning  bool      // a cleanup is running
	lastClean time.Time // when the last one started; zero: at the first token request

	dummyOnce sync.Once
	dummy     string // a hash to check secrets of unknown clients against
}

// New validates cfg, loads (or on first start generates and stores) the
// signing keys, and composes the protocol engine: authorization code with
// PKCE, OpenID Connect, refresh tokens with rotation, revocation (RFC 7009),
// introspection (RFC 7662) and pushed authorization requests (RFC 9126).
// Nothing else: no implicit, hybrid, password
// or client-credentials grant.
func New(ctx context.Context, cfg Config) (*Provider, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	d := cfg.StoreTimeout
	p := &Provider{cfg: cfg, users: storetimeout.Users(cfg.Users, d), grants: storetimeout.Grants(cfg.Grants, d)}
	p.clients = newClientCache(storetimeout.Clients(cfg.Clients, d), cfg.ClientCacheTTL, maxCachedClients, p.now)
	p.userInfo = newUserInfoCache(cfg.UserInfoCacheTTL, cfg.UserInfoCacheSize, p.now)
	ring := &keyring{
		st:       storetimeout.Keys(cfg.Keys, d),
		now:      p.now,
		interval: cfg.KeyRefreshInterval,
		retire:   max(cfg.IDTokenLifespan, cfg.AccessTokenLifespan) + keyRetireMargin,
		log:      p.log,
	}
	if err := ring.load(ctx); err != nil {
		return nil, err
	}
	p.keys = ring
	tel, err := p.newTelemetry()
	if err != nil {
		return nil, fmt.Errorf("provider: telemetry: %w", err)
	}
	p.tel = tel
	dt, dr, err := p.newDPoPCheckers()
	if err != nil {
		return nil, err
	}
	p.dpopToken, p.dpopResource = dt, dr
	secret, olds := ring.tokenSecrets()

	fc := fositeConfig(cfg, secret, olds)
	strategy := p.tokenStrategy(fc, ring)
	p.oauth2 = composeEngine(fc, &fositeStorage{p: p}, strategy)
	return p, nil
}

// fositeConfig sets fosite to the protocol pixie serves: the configured
// issuer and lifespans, PKCE always, secrets hashed as pixie stores them.
func fositeConfig(cfg Config, secret []byte, olds [][]byte) *fosite.Config {
	return &fosite.Config{
		GlobalSecret:                   secret,
		RotatedGlobalSecrets:           olds,
		IDTokenIssuer:                  cfg.Issuer,
		AccessTokenIssuer:              cfg.Issuer,
		AuthorizeCodeLifespan:          cfg.AuthorizeCodeLifespan,
		AccessTokenLifespan:            cfg.AccessTokenLifespan,
		IDTokenLifespan:                cfg.IDTokenLifespan,
		RefreshTokenLifespan:           cfg.RefreshTokenLifespan,
		EnforcePKCE:                    true,
		EnforcePKCEForPublicClients:    true,
		EnablePKCEPlainChallengeMethod: cfg.InsecureAllowPlainPKCE,
		ScopeStrategy:                  fosite.ExactScopeStrategy,
		AudienceMatchingStrategy:       fosite.DefaultAudienceMatchingStrategy,
		RedirectSecureChecker:          fosite.IsRedirectURISecure,
		JWTScopeClaimKey:               jwt.JWTScopeFieldString,
		ClientSecretsHasher:            secretHasher{},
		MinParameterEntropy:            fosite.MinParameterEntropy,
		SendDebugMessagesToClients:     false,
		// RFC 9126. pixie resolves request_uri itself (see resolvePushed)
		// and enforces Config.RequirePAR per client, so fosite's own
		// enforcement stays off.
		PushedAuthorizeRequestURIPrefix: requestURIPrefix,
		PushedAuthorizeContextLifespan:  cfg.PushedRequestLifespan,
	}
}

// tokenStrategy makes the strategies that mint and check codes and tokens:
// HMAC codes and refresh tokens (kept in p.codes too, to sign raw codes),
// JWT or opaque access tokens, and ID tokens in either algorithm.
func (p *Provider) tokenStrategy(fc *fosite.Config, ring *keyring) *compose.CommonStrategy {
	idTokens := map[string]openid.OpenIDConnectTokenStrategy{}
	for _, alg := range signingAlgs() {
		idTokens[alg] = &openid.DefaultStrategy{Signer: newJWTSigner(ring, alg), Config: fc}
	}
	hmacs := compose.NewOAuth2HMACStrategy(fc)
	p.codes = hmacs
	var core oauth2.CoreStrategy = hmacs
	if !p.cfg.OpaqueAccessTokens {
		at := &accessTokenStrategy{p: p, byAlg: map[string]*oauth2.DefaultJWTStrategy{}}
		for _, alg := range signingAlgs() {
			at.byAlg[alg] = &oauth2.DefaultJWTStrategy{Signer: newJWTSigner(ring, alg), HMACSHAStrategy: core, Config: fc}
		}
		// Validation goes by the token's kid, whatever the algorithm.
		at.DefaultJWTStrategy = at.byAlg[p.cfg.AccessTokenAlg]
		core = at
	}
	return &compose.CommonStrategy{
		CoreStrategy:               core,
		OpenIDConnectTokenStrategy: &idTokenStrategy{byAlg: idTokens, def: p.cfg.IDTokenAlg},
		Signer:                     newJWTSigner(ring, p.cfg.IDTokenAlg),
	}
}

// composeEngine assembles fosite's handlers for the grants and endpoints
// pixie serves, and nothing else.
func composeEngine(fc *fosite.Config, st *fositeStorage, strategy *compose.CommonStrategy) fosite.OAuth2Provider {
	// Order matters: PKCE and OIDC read the code the authorize-code
	// handler issues, so they come after it.
	return compose.Compose(fc, st, strategy,
		compose.OAuth2AuthorizeExplicitFactory,
		compose.OAuth2RefreshTokenGrantFactory,
		compose.OpenIDConnectExplicitFactory,
		compose.OpenIDConnectRefreshFactory,
		compose.OAuth2TokenIntrospectionFactory,
		compose.OAuth2TokenRevocationFactory,
		compose.OAuth2PKCEFactory,
		compose.PushedAuthorizeHandlerFactory,
	)
}

// codeSignature is the storage key of an authorization code's record: the
// signature fosite's HMAC strategy takes from the code (its Signature,
// fosite v0.49: the part after the code's one '.', "" unless there is
// exactly one), without the strings.Split it costs there.
// TestCodeSignature holds the two to the same answers.
func (p *Provider) codeSignature(_ context.Context, code string) string {
	_, sig, ok := strings.Cut(code, ".")
	if !ok || strings.Contains(sig, ".") {
		return ""
	}
	return sig
}

// Issuer returns the issuer identifier.
func (p *Provider) Issuer() string { return p.cfg.Issuer }

// client returns a copy of the registered client with the given id, after
// the checks every endpoint applies ([ValidateClient]): a client the
// authorization endpoint would refuse is refused here too. An unknown client
// yields an error wrapping [store.ErrNotFound]; a registration that breaks
// the rules, or a store failure, another error.
func (p *Provider) client(ctx context.Context, id string) (*store.Client, error) {
	c, err := p.clients.Client(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("provider: client %q: %w", id, err)
	}
	if err := ValidateClient(c); err != nil {
		return nil, err
	}
	return c, nil
}

// Authenticate checks a username and password against Config.Users (the
// call bounded by Config.StoreTimeout) and returns the user's subject, or
// an error wrapping store.ErrInvalidCredentials. It is what pixie's login
// page calls; a host app with a login page of its own calls it, or its own
// user database, before handlers.Pending.Complete.
func (p *Provider) Authenticate(ctx context.Context, username, password string) (subject string, err error) {
	return p.users.Authenticate(ctx, username, password)
}

// JWKS returns the public JSON Web Key Set (RFC 7517) that verifies the
// provider's tokens, as served at /.well-known/jwks.json: the signing key of
// each algorithm and the keys they replaced, until every token those signed
// has expired. It rereads the key store when the keys are older than
// Config.KeyRefreshInterval.
func (p *Provider) JWKS(ctx context.Context) []byte {
	p.keys.refresh(ctx)
	return p.keys.publicJWKS()
}

// RotateKeys generates a new RS256 and a new ES256 key and stores them. They
// are published at once (here, and on the other replicas sharing the key
// store within Config.KeyRefreshInterval) and sign from two refresh
// intervals later, when every replica and every client caching the JWKS for
// at most an interval (the JWKS's Cache-Control max-age) has them. The
// replaced keys stay published until every token they signed has expired.
func (p *Provider) RotateKeys(ctx context.Context) error {
	if err := p.keys.rotate(ctx); err != nil {
		return err
	}
	p.tel.Emit(ctx, telemetry.Event{Type: string(EventKeyRotated)})
	return nil
}

// deriveKey returns a 32-byte key derived (HKDF-SHA256) from the provider's
// stored token secret, bound to purpose. Every replica sharing the key store
// derives the same key, which is how package handlers seals the login cookie
// without another secret to configure.
func (p *Provider) deriveKey(purpose string) ([]byte, error) {
	secret, _ := p.keys.tokenSecrets()
	k, err := hkdf.Key(sha256.New, secret, nil, "pixie "+purpose, 32)
	if err != nil {
		return nil, fmt.Errorf("provider: derive key: %w", err)
	}
	return k, nil
}

// dummyHash returns a secret hash made once, for equal-time refusals.
func (p *Provider) dummyHash() string {
	p.dummyOnce.Do(func() {
		p.dummy, _ = store.HashSecret("pixie: no such client")
	})
	return p.dummy
}

func (p *Provider) log() *slog.Logger {
	if p.cfg.Logger != nil {
		return p.cfg.Logger
	}
	return slog.Default()
}

func (p *Provider) now() time.Time {
	if p.cfg.Now != nil {
		return p.cfg.Now()
	}
	return time.Now()
}

// idTokenStrategy signs each ID token with the algorithm its client asks for.
type idTokenStrategy struct {
	byAlg map[string]openid.OpenIDConnectTokenStrategy
	def   string
}

func (s *idTokenStrategy) GenerateIDToken(ctx context.Context, lifespan time.Duration, r fosite.Requester) (string, error) {
	alg := s.def
	if c, ok := r.GetClient().(fositeClient); ok && c.c.IDTokenAlg != "" {
		alg = c.c.IDTokenAlg
	}
	st, ok := s.byAlg[alg]
	if !ok {
		return "", errors.New("provider: no ID token signer for " + alg)
	}
	return st.GenerateIDToken(ctx, lifespan, r)
}
