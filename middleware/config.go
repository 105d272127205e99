package middleware

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/pixieauth/pixie/internal/httpauth"
)

// Defaults and bounds of [Config] and [IntrospectionConfig].
const (
	defaultRefreshInterval    = 15 * time.Minute
	minRefreshInterval        = time.Minute
	defaultMinRefetchInterval = 10 * time.Second
	defaultLeeway             = 30 * time.Second
	maxLeeway                 = 5 * time.Minute
	defaultHTTPTimeout        = 10 * time.Second
	defaultCacheTTL           = 30 * time.Second
	defaultCacheSize          = 10000
	defaultDPoPReplayMax      = 100_000
)

// supportedAlgs lists the asymmetric JWS algorithms (RFC 7518 §3.1,
// RFC 8037) a Verifier can be configured for. "none" and HS256/384/512 are
// absent on purpose: a resource server holds no shared secret, and
// accepting them is how public keys get misused as HMAC secrets
// (RFC 8725 §2.1, §3.1).
const supportedAlgs = "RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA"

func isSupportedAlg(alg string) bool {
	switch alg {
	case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA":
		return true
	}
	return false
}

// Config configures a [Verifier]. Only Issuer, Audience and one key source
// are required; every other field's zero value is the secure default given
// in its comment. [NewVerifier] validates it and names the bad field.
type Config struct {
	// Issuer is the expected iss claim, exactly as the authorization server
	// writes it, e.g. "https://auth.example.com" (RFC 9068 §4). Required.
	Issuer string

	// Audience is this resource server's identifier: the aud claim must
	// contain it (RFC 9068 §3, §4), e.g. "https://api.example.com".
	// Required.
	Audience string

	// KeySet supplies the verification keys in process, for an API served
	// by the same program as the authorization server: use
	// [ProviderKeys](p) with a *provider.Provider, or [StaticKeys].
	// Exactly one of KeySet and JWKSURL is required, unless Introspection
	// is set (then both may be empty and every token is introspected).
	KeySet KeySet

	// JWKSURL is where the authorization server publishes its JWK Set
	// (RFC 7517 §5), e.g. "https://auth.example.com/.well-known/jwks.json".
	// It must be https, except on a loopback host (127.0.0.1, [::1],
	// localhost) or with InsecureAllowHTTP. The set is fetched once by
	// NewVerifier, refreshed every RefreshInterval in the background, and
	// refetched when a token names an unknown kid (at most once per
	// MinRefetchInterval), so that keys the server rotates in are picked up
	// without a restart.
	JWKSURL string

	// HTTPClient fetches JWKSURL, and calls the introspection endpoint
	// unless Introspection.HTTPClient is set. Default: a client of its own
	// with a 10s timeout.
	HTTPClient *http.Client

	// RefreshInterval is how often the JWK Set at JWKSURL is refetched in
	// the background. Default 15m; at least 1m.
	RefreshInterval time.Duration

	// MinRefetchInterval limits the refetches of JWKSURL that tokens with an
	// unknown kid trigger: at most one per interval, however many such
	// tokens arrive, so that a flood of forged tokens cannot turn into a
	// flood of requests to the authorization server. Default 10s.
	MinRefetchInterval time.Duration

	// Algorithms is the allow-list of JWS algorithms (RFC 8725 §3.1).
	// Default ["RS256", "ES256"], pixie's two. Allowed values: RS256, RS384,
	// RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA; "none" and
	// HS256/HS384/HS512 are refused.
	Algorithms []string

	// Leeway is the clock skew tolerated when checking exp, nbf and iat
	// (RFC 7519 §4.1.4). Default 30s; at most 5m.
	Leeway time.Duration

	// SignatureCacheSize is how many verified tokens the Verifier remembers,
	// so that a token met again (an app calls its API many times with one
	// token) skips the signature check; its claims are checked every time,
	// and it counts only while its key is still published. Default 10000;
	// negative turns the cache off.
	SignatureCacheSize int

	// Realm is the realm of the WWW-Authenticate challenge (RFC 6750 §3).
	// Default: Audience. It may not contain '"', '\' or control characters.
	Realm string

	// InsecureAllowHTTP accepts an http JWKSURL or introspection endpoint on
	// a non-loopback host. Keys or answers fetched over plain HTTP can be
	// replaced by anyone on the path; use it only inside a trusted network.
	InsecureAllowHTTP bool

	// Now is the clock. Default time.Now.
	Now func() time.Time

	// Logger receives outages at Error and refused tokens at Debug; it
	// never receives a token. Default: slog.Default() at the time of
	// logging.
	Logger *slog.Logger

	// PublicURL is this resource server's base URL as clients see it, e.g.
	// "https://api.example.com", for the htu check of DPoP proofs
	// (RFC 9449 §4.3): a proof must name PublicURL followed by the path of
	// the request line (r.RequestURI, so that http.StripPrefix does not
	// change it). Set it behind a TLS-terminating proxy or load balancer,
	// and include the path prefix a proxy strips. Default: "https://" when
	// r.TLS is set, else "http://", then r.Host. An absolute http(s) URL
	// without query or fragment.
	PublicURL string

	// DPoPReplay records the jti of every accepted DPoP proof so that a
	// proof is accepted only once (RFC 9449 §11.1); it returns first=false
	// for a key seen before, and an error (answered with 503) if it cannot
	// tell. Set a shared one when several instances serve the API behind a
	// load balancer. Default: an in-process store of at most 100 000
	// proofs, each kept for 5 minutes after its iat; when that many live
	// proofs are held, new ones get 503 rather than a forgotten jti.
	DPoPReplay func(ctx context.Context, key string, expiresAt time.Time) (first bool, err error)

	// Introspection, when set, checks opaque (non-JWT) tokens at an RFC 7662
	// introspection endpoint. With a key source as well, tokens shaped like
	// a JWS (three dot-separated segments) are verified locally and the
	// others introspected; without one, every token is introspected.
	Introspection *IntrospectionConfig
}

// IntrospectionConfig configures token introspection (RFC 7662).
//
// The token is POSTed with token_type_hint=access_token. The answer must
// say active=true; its token_type, iss, aud, exp and nbf are checked when
// present (only active is required, RFC 7662 §2.2): token_type must be
// Bearer, so a refresh token cannot open the API; iss must be
// Config.Issuer; aud must contain Config.Audience. Answers, active or not,
// are cached by the SHA-256 of the token (never the token itself). An
// endpoint that cannot be reached, refuses the client's credentials or
// answers anything but a JSON object with a boolean active gives
// [ErrUnavailable]: HTTP 503, never invalid_token.
type IntrospectionConfig struct {
	// Endpoint is the introspection endpoint, e.g.
	// "https://auth.example.com/oauth/introspect". Required. https unless on
	// a loopback host or with Config.InsecureAllowHTTP.
	Endpoint string

	// ClientID and ClientSecret are this resource server's credentials at
	// the authorization server (RFC 7662 §2.1), sent with HTTP Basic after
	// form-encoding each (RFC 6749 §2.3.1). Required: pixie answers only
	// authenticated confidential clients.
	ClientID     string
	ClientSecret string

	// CacheTTL is how long an answer is reused for the same token, never
	// beyond the token's exp: it is also how long a revoked token may still
	// be accepted. Default 30s; negative disables the cache.
	CacheTTL time.Duration

	// CacheSize bounds the number of cached answers. Default 10000.
	CacheSize int

	// HTTPClient calls the endpoint. Default: Config.HTTPClient, or a
	// client with a 10s timeout.
	HTTPClient *http.Client
}

// LogValue implements [slog.LogValuer]: the configuration without the
// client secret.
func (c IntrospectionConfig) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("endpoint", c.Endpoint),
		slog.String("client_id", c.ClientID),
		slog.String("client_secret", "REDACTED"),
		slog.Duration("cache_ttl", c.CacheTTL),
	)
}

// withDefaults validates c and returns a copy with the defaults filled in.
func (c Config) withDefaults() (Config, error) {
	for _, step := range []func(*Config) error{
		(*Config).checkSources, (*Config).defaultIntervals, (*Config).checkAlgorithms,
		(*Config).checkRealmAndURL, (*Config).defaultIntrospection,
	} {
		if err := step(&c); err != nil {
			return c, err
		}
	}
	if c.HTTPClient == nil {
		c.HTTPClient = defaultHTTPClient()
	}
	if c.Introspection != nil && c.Introspection.HTTPClient == nil {
		c.Introspection.HTTPClient = c.HTTPClient
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c, nil
}

// checkSources checks Issuer, Audience and where tokens are checked:
// exactly one key source, or introspection.
func (c *Config) checkSources() error {
	if strings.TrimSpace(c.Issuer) == "" {
		return errors.New("middleware: Config.Issuer is required")
	}
	if strings.TrimSpace(c.Audience) == "" {
		return errors.New("middleware: Config.Audience is required")
	}
	switch {
	case c.KeySet != nil && c.JWKSURL != "":
		return errors.New("middleware: set only one of Config.KeySet and Config.JWKSURL")
	case c.KeySet == nil && c.JWKSURL == "" && c.Introspection == nil:
		return errors.New("middleware: one of Config.KeySet, Config.JWKSURL or Config.Introspection is required")
	}
	if c.JWKSURL != "" {
		if err := checkURL(c.JWKSURL, c.InsecureAllowHTTP); err != nil {
			return fmt.Errorf("middleware: Config.JWKSURL: %w", err)
		}
	}
	return nil
}

// defaultIntervals sets and bounds RefreshInterval, MinRefetchInterval and
// Leeway.
func (c *Config) defaultIntervals() error {
	switch {
	case c.RefreshInterval == 0:
		c.RefreshInterval = defaultRefreshInterval
	case c.RefreshInterval < minRefreshInterval:
		return fmt.Errorf("middleware: Config.RefreshInterval %s is below the minimum of %s", c.RefreshInterval, minRefreshInterval)
	}
	switch {
	case c.MinRefetchInterval == 0:
		c.MinRefetchInterval = defaultMinRefetchInterval
	case c.MinRefetchInterval < 0:
		return fmt.Errorf("middleware: Config.MinRefetchInterval %s is negative", c.MinRefetchInterval)
	}
	switch {
	case c.Leeway == 0:
		c.Leeway = defaultLeeway
	case c.Leeway < 0 || c.Leeway > maxLeeway:
		return fmt.Errorf("middleware: Config.Leeway %s is outside 0 to %s", c.Leeway, maxLeeway)
	}
	return nil
}

// checkAlgorithms defaults Algorithms and refuses none, HMAC and anything
// unsupported.
func (c *Config) checkAlgorithms() error {
	if len(c.Algorithms) == 0 {
		c.Algorithms = []string{"RS256", "ES256"}
	} else {
		c.Algorithms = slices.Clone(c.Algorithms)
	}
	for _, alg := range c.Algorithms {
		switch {
		case strings.EqualFold(alg, "none"):
			return errors.New(`middleware: Config.Algorithms: "none" is never accepted (RFC 8725 §3.2)`)
		case strings.HasPrefix(strings.ToUpper(alg), "HS"):
			return fmt.Errorf("middleware: Config.Algorithms: %q is an HMAC algorithm, never accepted by a resource server (RFC 8725 §3.1)", alg)
		case !isSupportedAlg(alg):
			return fmt.Errorf("middleware: Config.Algorithms: unsupported algorithm %q (use %s)", alg, supportedAlgs)
		}
	}
	return nil
}

// checkRealmAndURL defaults Realm and checks it and PublicURL.
func (c *Config) checkRealmAndURL() error {
	if c.Realm == "" {
		c.Realm = c.Audience
	}
	for i := 0; i < len(c.Realm); i++ {
		if ch := c.Realm[i]; ch < 0x20 || ch > 0x7e || ch == '"' || ch == '\\' {
			return fmt.Errorf("middleware: Config.Realm %q (by default Config.Audience) may only hold printable ASCII without '\"' and '\\'", c.Realm)
		}
	}
	if c.PublicURL != "" {
		u, err := url.Parse(c.PublicURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			return fmt.Errorf("middleware: Config.PublicURL %q is not an absolute http(s) URL without query or fragment", c.PublicURL)
		}
		c.PublicURL = strings.TrimRight(c.PublicURL, "/")
	}
	return nil
}

// defaultIntrospection checks and defaults a copy of Introspection, if set.
func (c *Config) defaultIntrospection() error {
	if c.Introspection == nil {
		return nil
	}
	in := *c.Introspection
	if in.Endpoint == "" {
		return errors.New("middleware: Config.Introspection.Endpoint is required")
	}
	if err := checkURL(in.Endpoint, c.InsecureAllowHTTP); err != nil {
		return fmt.Errorf("middleware: Config.Introspection.Endpoint: %w", err)
	}
	if in.ClientID == "" {
		return errors.New("middleware: Config.Introspection.ClientID is required")
	}
	if in.ClientSecret == "" {
		return errors.New("middleware: Config.Introspection.ClientSecret is required")
	}
	if in.CacheTTL == 0 {
		in.CacheTTL = defaultCacheTTL
	}
	switch {
	case in.CacheSize == 0:
		in.CacheSize = defaultCacheSize
	case in.CacheSize < 0:
		return fmt.Errorf("middleware: Config.Introspection.CacheSize %d is negative", in.CacheSize)
	}
	c.Introspection = &in
	return nil
}

// checkURL checks that u is an absolute https URL, or http on a loopback
// host or when allowed.
func checkURL(raw string, allowHTTP bool) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("not a URL: %w", err)
	}
	if u.Host == "" {
		return fmt.Errorf("%q is not an absolute URL", raw)
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && (allowHTTP || httpauth.IsLoopbackHost(u.Hostname())):
	default:
		return fmt.Errorf("%q must use https (http only on a loopback host, or with InsecureAllowHTTP)", raw)
	}
	return nil
}

// defaultHTTPClient returns a client with a timeout and a transport of its
// own, so that Close can drop its idle connections.
func defaultHTTPClient() *http.Client {
	c := &http.Client{Timeout: defaultHTTPTimeout}
	if t, ok := http.DefaultTransport.(*http.Transport); ok {
		c.Transport = t.Clone()
	}
	return c
}
