package provider

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/pixieauth/pixie/store"

	"github.com/pixieauth/pixie/internal/httpauth"
)

// Lifespan defaults and limits.
const (
	DefaultAuthorizeCodeLifespan = 10 * time.Minute
	maxAuthorizeCodeLifespan     = 10 * time.Minute // RFC 6749 §4.1.2: "maximum … of 10 minutes"
	DefaultAccessTokenLifespan   = time.Hour
	defaultIDTokenLifespan       = time.Hour
	defaultRefreshTokenLifespan  = 30 * 24 * time.Hour
	defaultKeyRefreshInterval    = 30 * time.Second
	maxRefreshTokenGracePeriod   = 5 * time.Minute
	// defaultRefreshTokenGraceReuses and maxRefreshTokenGraceReuses bound
	// Config.RefreshTokenGraceReuses.
	defaultRefreshTokenGraceReuses = 1
	maxRefreshTokenGraceReuses     = 3
	// defaultClientCacheTTL is Config.ClientCacheTTL's default, and
	// maxCachedClients the most registrations the client cache holds.
	defaultClientCacheTTL = 5 * time.Second
	maxCachedClients      = 10000
	// defaultStoreTimeout and minStoreTimeout: Config.StoreTimeout.
	defaultStoreTimeout = 5 * time.Second
	minStoreTimeout     = 10 * time.Millisecond
	// defaultUserInfoCacheTTL and maxUserInfoCacheTTL bound
	// Config.UserInfoCacheTTL; defaultUserInfoCacheSize is the default of
	// Config.UserInfoCacheSize.
	defaultUserInfoCacheTTL  = 5 * time.Second
	maxUserInfoCacheTTL      = time.Minute
	defaultUserInfoCacheSize = 10000
)

// Signing algorithms pixie signs with. Both are always available; the
// provider publishes a key for each. fosite's at_hash is SHA-256, which is
// correct for exactly these.
const (
	RS256 = "RS256" // RSA-2048 PKCS #1 v1.5 with SHA-256: the OIDC default, for interoperability
	ES256 = "ES256" // ECDSA P-256 with SHA-256: about 8× faster to sign than RS256
)

// Config configures a [Provider]. The zero value of every optional field is
// the secure default. [New] validates it and names the offending field.
type Config struct {
	// Issuer is the issuer identifier (OIDC Core §2, RFC 8414): the https URL
	// the provider's endpoints are mounted under, without a trailing slash,
	// query or fragment. Required. http is accepted only for a loopback host
	// (127.0.0.1, [::1], localhost) or with InsecureAllowHTTPIssuer.
	Issuer string

	// Clients looks up registered clients. Required.
	Clients store.Clients
	// ClientCacheTTL is how long a client registration read from Clients is
	// reused before it is read again: how long a change to a client (a new
	// redirect URI, a rotated secret, a deleted client) may take to reach
	// this replica. Default 5 seconds; negative: every lookup reads the
	// store. The cache holds at most 10,000 registrations.
	ClientCacheTTL time.Duration
	// Users authenticates people and returns their claims. Required.
	Users store.Users
	// Grants stores codes and tokens (as signatures). Required.
	Grants store.Grants
	// Keys stores the signing keys and the token secret; on first start New
	// generates an RS256 and an ES256 key and a 256-bit secret and stores
	// them, so that every replica sharing the store signs alike. Required.
	Keys store.Keys

	// StoreTimeout bounds each call pixie makes to a store (Clients, Users,
	// Grants, Keys, and the stores of package handlers), through its
	// context; a transaction is bounded by it as a whole. A call that
	// exceeds it fails the request as the server's fault: 503 with
	// server_error, logged at Error. Stores must give up when their context
	// is done, as database/sql does. Default 5 seconds; at least 10
	// milliseconds. Expired-record cleanup has its own bound of a minute.
	StoreTimeout time.Duration

	// APIs are the resource servers pixie issues access tokens for. Default
	// none: access tokens are then for the userinfo endpoint only (their aud
	// is the issuer).
	APIs []API
	// OpaqueAccessTokens issues opaque access tokens, which resource servers
	// check with the introspection endpoint, instead of RFC 9068 JWTs, which
	// they check with the JWKS (package middleware). Default false: JWTs.
	OpaqueAccessTokens bool

	// Rules run, in order, whenever tokens are issued (see [Rule]). Default
	// none.
	Rules []Rule
	// RuleTimeout is the time budget of each rule. Default 2 seconds.
	RuleTimeout time.Duration

	// IDTokenAlg is the default JWS algorithm of ID tokens, RS256 or ES256; a
	// client may override it with [store.Client.IDTokenAlg]. Default RS256.
	IDTokenAlg string
	// AccessTokenAlg is the JWS algorithm of JWT access tokens, RS256 or
	// ES256; an API may choose its own with [API.AccessTokenAlg]. Default
	// ES256: an ES256 signature costs about a twentieth of an RS256 one, and
	// access tokens are read by the APIs of the same deployment (package
	// middleware verifies both), not by arbitrary OIDC clients. Set RS256 for
	// APIs whose JWT library lacks ES256. ID tokens stay RS256 unless
	// IDTokenAlg says otherwise. Ignored with OpaqueAccessTokens.
	AccessTokenAlg string

	// AuthorizeCodeLifespan is how long an authorization code may be redeemed.
	// Default 10 minutes, which is also the maximum.
	AuthorizeCodeLifespan time.Duration
	// AccessTokenLifespan defaults to 1 hour.
	AccessTokenLifespan time.Duration
	// IDTokenLifespan defaults to 1 hour.
	IDTokenLifespan time.Duration
	// RefreshTokenLifespan defaults to 30 days.
	RefreshTokenLifespan time.Duration

	// RefreshTokenGracePeriod is how long a rotated refresh token may be
	// redeemed again, for mobile apps whose refresh response got lost on a
	// flaky network. Only to recover that response: a reuse revokes the
	// refresh token the lost response carried (the family stays one chain),
	// the grace ends as soon as a newer token of the family is used, and at
	// most RefreshTokenGraceReuses reuses are allowed. Any other use of a
	// rotated token is a replay and revokes the whole family. Default 0: no
	// reuse at all. At most 5 minutes.
	RefreshTokenGracePeriod time.Duration
	// RefreshTokenGraceReuses is how many times, within the grace period, a
	// rotated refresh token may be redeemed again. Default 1; at most 3.
	RefreshTokenGraceReuses int

	// KeyRefreshInterval is how long a key change takes to reach every
	// replica and client: the provider rereads the key store this often
	// (so that it signs with and publishes a key another replica rotated
	// in), the JWKS is served with this max-age, and a rotated-in key is
	// published at once but signs only two intervals later, once every
	// replica and every client caching the JWKS has it. Default 30
	// seconds; at least a second.
	KeyRefreshInterval time.Duration

	// CleanupInterval is the least time between two deletions of expired
	// grant records, when the grant store is a store.ExpiredDeleter. There
	// is no timer: a token request starts one in the background when the
	// interval has passed since the last, so an idle server deletes
	// nothing until its next token request. Default 1 hour; negative
	// disables it (call Provider.DeleteExpired yourself, e.g. from a cron).
	CleanupInterval time.Duration

	// UserInfoCacheTTL is how long the userinfo endpoint may answer from
	// memory for an access token it has verified, without checking its
	// signature, reading its record or reading the user again; never past
	// the token's expiry, which is checked on every request. It is the
	// staleness of the endpoint: a token revoked on another replica (by the
	// revocation endpoint, a refresh, or the replay of a code or refresh
	// token), a deleted client or user, and a changed profile show there
	// within this time. A revocation made by this provider shows at once.
	// Default 5 seconds; at most a minute; negative disables the cache.
	UserInfoCacheTTL time.Duration
	// UserInfoCacheSize is how many access tokens the userinfo cache holds
	// at most (each entry holds the answer in JSON: with a full profile
	// about 700 bytes, 7 MB at the default); the oldest make room for new
	// ones. Default 10,000.
	UserInfoCacheSize int

	// PushedRequestLifespan is how long a pushed authorization request
	// (RFC 9126) may be used at the authorization endpoint, its login and
	// consent steps included: the request_uri expires after it. Default 60
	// seconds; at least 5 seconds and at most 10 minutes.
	PushedRequestLifespan time.Duration
	// RequirePAR makes every client push its authorization requests (RFC
	// 9126): the authorization endpoint refuses a request without a
	// request_uri, and discovery says require_pushed_authorization_requests.
	// Default false: [store.Client.RequirePAR] requires it of one client.
	RequirePAR bool

	// ACRValues are the authentication context class references (acr, OIDC
	// Core §2) that the host app's own login may report in [Login.ACR],
	// besides [ACRPassword] and [ACRUnspecified], which pixie produces
	// itself. They are published in acr_values_supported; a login that
	// reports another value fails with server_error. Each must be non-empty
	// and hold no white space (acr_values is space-separated). Default none.
	ACRValues []string

	// RequireDPoP makes every public client use DPoP (RFC 9449): a token
	// request from one without a DPoP proof is refused with
	// invalid_dpop_proof, so its access and refresh tokens are always bound
	// to the app's key. Default false: a public client gets DPoP-bound
	// tokens when it sends a proof, bearer tokens otherwise, unless its
	// [store.Client.RequireDPoP] is set.
	RequireDPoP bool
	// DPoPNonce makes the token endpoint require a server nonce in DPoP
	// proofs (RFC 9449 §8): a proof without a current one is refused with
	// use_dpop_nonce and a fresh nonce in the DPoP-Nonce header, which the
	// client puts in its next proof. It limits proofs made in advance by
	// someone who has stolen the key. Default false: the proof's iat and
	// jti replay check alone bound its use. Nonces need no storage; every
	// replica sharing the key store accepts those of the others.
	DPoPNonce bool
	// InsecureAllowPlainPKCE accepts code_challenge_method=plain. Default false: only
	// S256 is accepted. plain gives no protection when the authorization
	// request can be observed; enable it only for legacy clients that cannot
	// compute SHA-256.
	InsecureAllowPlainPKCE bool
	// InsecureAllowHTTPIssuer accepts an http issuer on a non-loopback host.
	// Never set it in production: tokens and passwords would cross the network
	// in clear text.
	InsecureAllowHTTPIssuer bool

	// TracerProvider makes the spans of pixie's endpoints and store calls
	// (see the README's Observability section), each nested under the span
	// the request's context carries, such as the host's HTTP span. Nil
	// means otel.GetTracerProvider(), looked up once in New: a no-op until
	// the host registers an SDK with otel.SetTracerProvider (which it may
	// do after New: the global provider delegates).
	TracerProvider trace.TracerProvider
	// MeterProvider makes pixie's metrics (pixie.tokens.issued, …; see the
	// README). Nil means otel.GetMeterProvider(), looked up once in New: a
	// no-op until the host registers an SDK with otel.SetMeterProvider.
	MeterProvider metric.MeterProvider
	// MetricsClientID adds the client ID (oauth.client_id) to the metrics
	// and spans that concern one client. Default false: every client's
	// counts are summed, so the number of time series does not grow with
	// the number of clients. Turn it on when the clients are few.
	MetricsClientID bool
	// Events receives the audit events ([Event]): logins, consents, tokens
	// issued, replays detected, revocations, logouts and key rotations. It
	// is called synchronously, on the request's goroutine, so it must be
	// quick: hand the event to a log or a buffered queue (see the README).
	// An event never holds a token, code, secret, password or e-mail
	// address. Default nil: none.
	Events func(context.Context, Event)

	// Logger receives the provider's logs. Nil means [slog.Default], looked up
	// at each call. Tokens, codes, secrets and passwords are never logged.
	Logger *slog.Logger
	// Now returns the current time. Nil means [time.Now]. pixie uses it for
	// its own decisions (auth_time, key creation, the age of a userinfo
	// cache entry); fosite reads the wall clock for token expiry, and so
	// does the userinfo cache.
	Now func() time.Time
}

// validate checks the Config and fills in the defaults of the fields left
// zero, group by group, stopping at the first error.
func (c *Config) validate() error {
	for _, step := range []func() error{
		c.validateIssuer,
		c.validateStores,
		c.validateAlgorithms,
		c.validateLogin,
		c.validateRefresh,
		c.validateCaches,
		c.validateLifespans,
	} {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}

// validateIssuer rejects an issuer that clients could not use as the base
// of every URL pixie publishes, or that would travel in clear text.
func (c *Config) validateIssuer() error {
	u, err := url.Parse(c.Issuer)
	switch {
	case c.Issuer == "":
		return errors.New("provider: Config.Issuer is empty")
	case err != nil:
		return fmt.Errorf("provider: Config.Issuer: %w", err)
	case u.Hostname() == "" || strings.ContainsAny(c.Issuer, "?#") || u.User != nil || strings.HasSuffix(c.Issuer, "/"):
		return fmt.Errorf("provider: Config.Issuer %q must be an absolute URL with no query, fragment, user or trailing slash", c.Issuer)
	case u.Scheme == "https":
	case u.Scheme == "http" && (httpauth.IsLoopbackHost(u.Hostname()) || c.InsecureAllowHTTPIssuer):
	default:
		return fmt.Errorf("provider: Config.Issuer %q must use https (http only on a loopback host, or with InsecureAllowHTTPIssuer)", c.Issuer)
	}
	return nil
}

// validateStores requires every store the provider cannot run without.
func (c *Config) validateStores() error {
	switch {
	case c.Clients == nil:
		return errors.New("provider: Config.Clients is nil")
	case c.Users == nil:
		return errors.New("provider: Config.Users is nil")
	case c.Grants == nil:
		return errors.New("provider: Config.Grants is nil")
	case c.Keys == nil:
		return errors.New("provider: Config.Keys is nil")
	}
	return nil
}

// validateAlgorithms accepts only the algorithms pixie signs tokens with,
// the provider's and each API's (checked with the rest of the APIs).
func (c *Config) validateAlgorithms() error {
	switch c.AccessTokenAlg {
	case "", RS256, ES256:
	default:
		return fmt.Errorf("provider: Config.AccessTokenAlg %q is not RS256 or ES256", c.AccessTokenAlg)
	}
	if err := validateAPIs(c.APIs); err != nil {
		return err
	}
	switch c.IDTokenAlg {
	case "":
		c.IDTokenAlg = RS256
	case RS256, ES256:
	default:
		return fmt.Errorf("provider: Config.IDTokenAlg %q is not RS256 or ES256", c.IDTokenAlg)
	}
	if c.AccessTokenAlg == "" {
		c.AccessTokenAlg = ES256
	}
	return nil
}

// validateLogin checks what decides how a login ends: the extra acr
// values and the rules run after it.
func (c *Config) validateLogin() error {
	for i, v := range c.ACRValues {
		if v == "" || strings.ContainsFunc(v, unicode.IsSpace) || v == ACRPassword || v == ACRUnspecified || slices.Contains(c.ACRValues[:i], v) {
			return fmt.Errorf("provider: Config.ACRValues[%d] %q is empty, holds white space, or is listed twice or built in", i, v)
		}
	}
	for i, r := range c.Rules {
		if r.Run == nil {
			return fmt.Errorf("provider: Config.Rules[%d] (%q) has no Run function", i, r.Name)
		}
	}
	if c.RuleTimeout == 0 {
		c.RuleTimeout = defaultRuleTimeout
	} else if c.RuleTimeout < 0 {
		return errors.New("provider: Config.RuleTimeout is negative")
	}
	return nil
}

// validateRefresh bounds how long, and how often, a rotated refresh token
// may still be used.
func (c *Config) validateRefresh() error {
	if c.RefreshTokenGracePeriod < 0 || c.RefreshTokenGracePeriod > maxRefreshTokenGracePeriod {
		return fmt.Errorf("provider: Config.RefreshTokenGracePeriod %v is not between 0 and %v", c.RefreshTokenGracePeriod, maxRefreshTokenGracePeriod)
	}
	switch {
	case c.RefreshTokenGraceReuses == 0:
		c.RefreshTokenGraceReuses = defaultRefreshTokenGraceReuses
	case c.RefreshTokenGraceReuses < 0 || c.RefreshTokenGraceReuses > maxRefreshTokenGraceReuses:
		return fmt.Errorf("provider: Config.RefreshTokenGraceReuses %d is not between 1 and %d", c.RefreshTokenGraceReuses, maxRefreshTokenGraceReuses)
	}
	return nil
}

// validateCaches settles the store timeout, the cleanup interval and the
// client and userinfo caches.
func (c *Config) validateCaches() error {
	switch {
	case c.StoreTimeout == 0:
		c.StoreTimeout = defaultStoreTimeout
	case c.StoreTimeout < minStoreTimeout:
		return fmt.Errorf("provider: Config.StoreTimeout %v is shorter than %v", c.StoreTimeout, minStoreTimeout)
	}
	if c.CleanupInterval == 0 {
		c.CleanupInterval = defaultCleanupInterval
	}
	if c.ClientCacheTTL == 0 {
		c.ClientCacheTTL = defaultClientCacheTTL
	}
	switch {
	case c.UserInfoCacheTTL == 0:
		c.UserInfoCacheTTL = defaultUserInfoCacheTTL
	case c.UserInfoCacheTTL > maxUserInfoCacheTTL:
		return fmt.Errorf("provider: Config.UserInfoCacheTTL %v exceeds the maximum %v", c.UserInfoCacheTTL, maxUserInfoCacheTTL)
	}
	switch {
	case c.UserInfoCacheSize == 0:
		c.UserInfoCacheSize = defaultUserInfoCacheSize
	case c.UserInfoCacheSize < 0:
		return errors.New("provider: Config.UserInfoCacheSize is negative")
	}
	return nil
}

// validateLifespans bounds how long pushed requests, codes and tokens live,
// and how often the key store is reread.
func (c *Config) validateLifespans() error {
	switch {
	case c.PushedRequestLifespan == 0:
		c.PushedRequestLifespan = defaultPushedRequestLifespan
	case c.PushedRequestLifespan < minPushedRequestLifespan || c.PushedRequestLifespan > maxPushedRequestLifespan:
		return fmt.Errorf("provider: Config.PushedRequestLifespan %v is not between %v and %v", c.PushedRequestLifespan, minPushedRequestLifespan, maxPushedRequestLifespan)
	}
	for _, l := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
		max  time.Duration
	}{
		{"AuthorizeCodeLifespan", &c.AuthorizeCodeLifespan, DefaultAuthorizeCodeLifespan, maxAuthorizeCodeLifespan},
		{"AccessTokenLifespan", &c.AccessTokenLifespan, DefaultAccessTokenLifespan, 0},
		{"IDTokenLifespan", &c.IDTokenLifespan, defaultIDTokenLifespan, 0},
		{"RefreshTokenLifespan", &c.RefreshTokenLifespan, defaultRefreshTokenLifespan, 0},
		{"KeyRefreshInterval", &c.KeyRefreshInterval, defaultKeyRefreshInterval, 0},
	} {
		switch {
		case *l.v == 0:
			*l.v = l.def
		case *l.v < time.Second:
			return fmt.Errorf("provider: Config.%s %v is shorter than a second", l.name, *l.v)
		case l.max != 0 && *l.v > l.max:
			return fmt.Errorf("provider: Config.%s %v exceeds the maximum %v", l.name, *l.v, l.max)
		}
	}
	return nil
}
