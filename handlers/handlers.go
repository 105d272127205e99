package handlers

import (
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gorilla/securecookie"
	"github.com/gorilla/sessions"

	"github.com/pixieauth/pixie/internal/paths"
	"github.com/pixieauth/pixie/internal/storetimeout"
	"github.com/pixieauth/pixie/internal/telemetry"
	"github.com/pixieauth/pixie/provider"
	"github.com/pixieauth/pixie/store"
	"github.com/pixieauth/pixie/store/memory"
)

// Paths of the endpoints, relative to the issuer URL.
const (
	PathAuthorize   = paths.Authorize
	PathToken       = paths.Token
	PathUserInfo    = paths.UserInfo
	PathRevoke      = paths.Revoke
	PathIntrospect  = paths.Introspect
	PathOIDCConfig  = "/.well-known/openid-configuration"
	PathOAuthConfig = "/.well-known/oauth-authorization-server"
	PathJWKS        = paths.JWKS
	PathLogin       = "/login"
	PathLogout      = paths.Logout
	PathConsent     = "/consent"
)

// pathPAR is the pushed authorization request endpoint (RFC 9126),
// relative to the issuer URL, as the paths above.
const pathPAR = paths.PAR

// defaultSessionLifetime is how long a login session lasts by default.
const defaultSessionLifetime = 12 * time.Hour

// defaultConsentLifetime is how long a consent is remembered by default.
const defaultConsentLifetime = 365 * 24 * time.Hour

// defaultSessionIdleTimeout is how long a login session may go unused by
// default before it ends (OWASP's Session Management Cheat Sheet suggests
// 15 to 30 minutes for low-risk applications; Keycloak's default is 30).
const defaultSessionIdleTimeout = 30 * time.Minute

// maxTouchInterval bounds how often a session's last use is written: at
// most once a minute (less for idle timeouts shorter than 10 minutes).
const maxTouchInterval = time.Minute

// Router is what Mount registers on. *http.ServeMux and chi.Router have
// this method and take the patterns as they are: Go 1.22 method syntax
// ("GET /authorize"), or a path alone for a route that takes every method
// ("/oauth/token"). gorilla/mux, gin and echo need a few lines of adapter
// that split a pattern into method and path (example/frameworks has one
// for each), or the [Server] itself, an http.Handler, on a catch-all route.
type Router interface {
	Handle(pattern string, h http.Handler)
}

// Config customizes a [Server]. The zero value is ready to use. Every call
// to the stores it names is bounded by the provider's
// provider.Config.StoreTimeout, as the provider's own stores are.
type Config struct {
	// Templates overrides any subset of the default pages by file name:
	// login.html ([LoginPage]), consent.html ([ConsentPage]), error.html
	// ([ErrorPage]), logout.html
	// ([LogoutPage]) and base.html (the shared "head" template). Files it
	// does not have fall back to the embedded defaults. Default nil.
	Templates fs.FS
	// SessionLifetime is how long a login session lasts before the user must
	// sign in again, counted from the login however much the session is
	// used meanwhile (the absolute timeout). At least a minute. Default 12
	// hours.
	SessionLifetime time.Duration
	// SessionIdleTimeout ends a login session that has not been used for
	// that long. A session is used when it lets an authorization request
	// through without a login; viewing the login, consent or logout page
	// does not count. The last use is recorded at most once a minute, so a
	// session may end up to a minute before the timeout. At least a minute
	// and at most SessionLifetime. Default 30 minutes, or SessionLifetime if
	// that is shorter.
	SessionIdleTimeout time.Duration
	// Sessions keeps the login sessions' records: the cookie carries only
	// a random session ID (and the forms' CSRF token), and the record says
	// who logged in, when, and whether the session was ended. Share it
	// between replicas (the SQL store implements it), so that a logout or
	// [Server.EndSessions] on one ends the session on all. Expired records
	// are removed by the store's DeleteExpired ([store.ExpiredDeleter]),
	// which the provider calls every provider.Config.CleanupInterval when
	// the same store holds its grants. Default: in memory (at most
	// [memory.MaxSessions], the oldest ending first), so a restart
	// logs everyone out.
	Sessions store.Sessions
	// LoginURL replaces pixie's login page with the host app's own: a user
	// who must log in is sent there, the authorization request in the
	// query. The app authenticates the user its own way (its session, its
	// SSO) and finishes with [Server.PendingLogin] and [Pending.Complete].
	// Default "": pixie's login page at /login.
	LoginURL string
	// Throttle counts failed logins and failed client authentications, for
	// LoginBackoff and ClientAuthBackoff. Share it between replicas (the SQL
	// store implements it). Default: in memory, holding at most
	// [memory.DefaultMaxThrottleKeys] keys and forgetting each once its
	// window ends.
	Throttle store.Throttle
	// LoginBackoff slows down guessing passwords at the login form: see
	// [Backoff]. Default: the Backoff defaults (5 free failures per username
	// and address, then waits from 1 second doubling up to 15 minutes; 100
	// failures per username and 100 per address an hour).
	LoginBackoff Backoff
	// ClientAuthBackoff slows down guessing client secrets at the token,
	// pushed authorization request, revocation and introspection
	// endpoints: see [Backoff]. Default: the
	// Backoff defaults, with PerName 1000 (failures per client ID an
	// hour).
	ClientAuthBackoff Backoff
	// ClientIP returns the address an attempt comes from, for the
	// throttle. Default: the connection's remote address; behind a reverse
	// proxy, return the address it forwards (and trust only it).
	ClientIP func(*http.Request) string

	// Consents remembers what users allowed clients that are not first
	// party, per API; share it between replicas (the SQL store implements
	// it). Default: in memory (at most memory.MaxConsents of them), so
	// users are asked again after a restart.
	Consents store.Consents
	// ConsentLifetime is how long a consent is remembered: after it, the
	// user is asked again (and prompt=none answers consent_required). It
	// runs from when the user allowed the scopes: allowing one more scope
	// later does not extend the consent to the others. Default 365 days;
	// at least a minute.
	ConsentLifetime time.Duration
}

// Server serves pixie's endpoints. It is an http.Handler, for mounting under
// a prefix, and can register its routes on a [Router]. It is safe for
// concurrent use.
type Server struct {
	p        engineOps // the provider's operations
	pages    *pages
	cookies  *sessions.CookieStore
	cookie   string // cookie name
	base     string // the issuer's path, prefixed to every link
	mux      *http.ServeMux
	routes   []route
	lifetime time.Duration
	loginURL string // where users log in
	consents store.Consents
	// consentLifetime is how long a consent lasts (Config.ConsentLifetime).
	consentLifetime time.Duration
	logins          *limiter // wrong passwords
	clients         *limiter // wrong client secrets
	clientIP        func(*http.Request) string

	// The login sessions' records, their idle timeout (lifetime is the
	// absolute one), and how often, at most, a session's use is recorded.
	sessions   store.Sessions
	idle       time.Duration
	touchEvery time.Duration

	tel *telemetry.T // the provider's instruments; nil: none (see telemetry.go)
}

type route struct {
	pattern string
	h       http.Handler
}

// Mount registers pixie's endpoints on r with the default [Config]. It is
// [New] followed by [Server.Register]. The paths, relative to the issuer:
//
//	GET|POST /authorize                              authorization endpoint (RFC 6749 §3.1)
//	POST     /oauth/token                            token endpoint (RFC 6749 §3.2)
//	POST     /oauth/par                              pushed authorization requests (RFC 9126)
//	GET|POST /userinfo                               UserInfo endpoint (OIDC Core §5.3; POST form token, RFC 6750 §2.2)
//	POST     /oauth/revoke                           revocation (RFC 7009)
//	POST     /oauth/introspect                       introspection (RFC 7662), confidential clients only
//	GET      /.well-known/openid-configuration       discovery (OIDC Discovery 1.0)
//	GET      /.well-known/oauth-authorization-server metadata (RFC 8414)
//	GET      /.well-known/jwks.json                  public signing keys (RFC 7517)
//	GET|POST /login                                  login page (unless Config.LoginURL replaces it)
//	GET|POST /consent                                consent page (clients that are not first party)
//	GET|POST /logout                                 end_session_endpoint (RP-Initiated Logout 1.0)
//	POST     /logout/confirm                         the logout confirmation form
func Mount(r Router, p *provider.Provider) error {
	s, err := New(p, Config{})
	if err != nil {
		return err
	}
	s.Register(r)
	return nil
}

// New builds a Server: it parses the pages once and derives the login-cookie
// keys from the provider's key store, so every replica sharing that store
// reads the same cookies.
func New(prov *provider.Provider, cfg Config) (*Server, error) {
	if prov == nil {
		return nil, errors.New("handlers: provider is nil")
	}
	p, err := providerOps(prov)
	if err != nil {
		return nil, err
	}
	pg, err := parsePages(cfg.Templates)
	if err != nil {
		return nil, err
	}
	iss, err := url.Parse(p.Issuer())
	if err != nil {
		return nil, fmt.Errorf("handlers: issuer: %w", err)
	}
	if err := sessionDefaults(&cfg); err != nil {
		return nil, err
	}
	secure := iss.Scheme == "https"
	cs, err := newCookieStore(p, cfg.SessionLifetime, secure)
	if err != nil {
		return nil, err
	}
	s := &Server{
		p:        p,
		pages:    pg,
		cookies:  cs,
		cookie:   "pixie_session",
		base:     strings.TrimSuffix(iss.Path, "/"),
		mux:      http.NewServeMux(),
		lifetime: cfg.SessionLifetime,
		tel:      p.Telemetry(),
	}
	s.idle = cfg.SessionIdleTimeout
	// A tenth of the idle timeout at most, so that recording uses less
	// often shortens it by 10% at most.
	s.touchEvery = min(maxTouchInterval, cfg.SessionIdleTimeout/10)
	if err := s.useStores(p, cfg); err != nil {
		return nil, err
	}
	if err := s.setLoginURL(cfg.LoginURL); err != nil {
		return nil, err
	}
	if secure {
		// __Host-: the browser refuses it unless Secure, Path=/ and no
		// Domain, so no sibling subdomain can plant or read it.
		s.cookie = "__Host-pixie_session"
	}
	s.routes = s.routeTable(cfg.LoginURL == "")
	for i := range s.routes {
		s.routes[i].h = s.perRequest(s.routes[i].pattern, s.routes[i].h)
		s.mux.Handle(s.routes[i].pattern, s.routes[i].h)
	}
	return s, nil
}

// sessionDefaults settles how long a login session may last and go unused,
// so that New refuses a Config whose sessions could not work as documented.
func sessionDefaults(cfg *Config) error {
	if cfg.SessionLifetime == 0 {
		cfg.SessionLifetime = defaultSessionLifetime
	} else if cfg.SessionLifetime < time.Minute {
		return fmt.Errorf("handlers: Config.SessionLifetime %v is shorter than a minute", cfg.SessionLifetime)
	}
	switch {
	case cfg.SessionIdleTimeout == 0:
		cfg.SessionIdleTimeout = min(defaultSessionIdleTimeout, cfg.SessionLifetime)
	case cfg.SessionIdleTimeout < time.Minute || cfg.SessionIdleTimeout > cfg.SessionLifetime:
		return fmt.Errorf("handlers: Config.SessionIdleTimeout %v must be at least a minute and at most SessionLifetime (%v)",
			cfg.SessionIdleTimeout, cfg.SessionLifetime)
	}
	return nil
}

// newCookieStore makes the store of the login cookies, keyed from the
// provider's key store so that every replica sharing it reads them.
func newCookieStore(p engineOps, lifetime time.Duration, secure bool) (*sessions.CookieStore, error) {
	hashKey, err := p.DeriveKey("login cookie mac")
	if err != nil {
		return nil, err
	}
	blockKey, err := p.DeriveKey("login cookie encryption")
	if err != nil {
		return nil, err
	}
	cs := sessions.NewCookieStore(hashKey, blockKey)
	cs.Options = &sessions.Options{
		Path:     "/",
		MaxAge:   int(lifetime / time.Second),
		HttpOnly: true,
		Secure:   secure,
		SameSite: http.SameSiteLaxMode,
	}
	cs.MaxAge(cs.Options.MaxAge)
	for _, c := range cs.Codecs {
		if sc, ok := c.(*securecookie.SecureCookie); ok {
			sc.SetSerializer(cookieValues{})
		}
	}
	return cs, nil
}

// useStores sets where the Server keeps consents (and how long they last),
// sessions and throttle counts: the configured stores, or one in-memory
// store for all those not configured.
func (s *Server) useStores(p engineOps, cfg Config) error {
	var mem *memory.Store // the in-memory default of whatever is not configured
	inMemory := func() *memory.Store {
		if mem == nil {
			mem = memory.New()
		}
		return mem
	}
	s.consents = cfg.Consents
	if s.consents == nil {
		s.consents = inMemory()
	}
	s.consentLifetime = cfg.ConsentLifetime
	if s.consentLifetime == 0 {
		s.consentLifetime = defaultConsentLifetime
	} else if s.consentLifetime < time.Minute {
		return fmt.Errorf("handlers: Config.ConsentLifetime %v is shorter than a minute", cfg.ConsentLifetime)
	}
	s.sessions = cfg.Sessions
	if s.sessions == nil {
		s.sessions = inMemory()
	}
	thr := cfg.Throttle
	if thr == nil {
		thr = inMemory()
	}
	// Bounded like the provider's store calls (StoreTimeout), as are the
	// consents and sessions below.
	thr = storetimeout.Throttle(thr, p.StoreTimeout())
	if err := s.useLimiters(p, cfg, thr); err != nil {
		return err
	}
	s.consents = storetimeout.Consents(s.consents, p.StoreTimeout())
	s.sessions = storetimeout.Sessions(s.sessions, p.StoreTimeout())
	return nil
}

// useLimiters sets up the throttling of failed logins and failed client
// authentications on thr, which slows down guessing passwords and secrets.
func (s *Server) useLimiters(p engineOps, cfg Config, thr store.Throttle) error {
	login, err := cfg.LoginBackoff.withDefaults("LoginBackoff", defaultLoginFailuresPerName)
	if err != nil {
		return err
	}
	client, err := cfg.ClientAuthBackoff.withDefaults("ClientAuthBackoff", defaultClientFailuresPerName)
	if err != nil {
		return err
	}
	throttleKey, err := p.DeriveKey("throttle keys")
	if err != nil {
		return err
	}
	s.logins = &limiter{st: thr, b: login, kind: "l", key: throttleKey, now: p.Now, known: true,
		names: newKeyedSemaphore(1), addrs: newKeyedSemaphore(addressConcurrency)}
	s.clients = &limiter{st: thr, b: client, kind: "c", key: throttleKey, now: p.Now}
	s.clientIP = cfg.ClientIP
	if s.clientIP == nil {
		s.clientIP = remoteIP
	}
	return nil
}

// setLoginURL sets where users who must log in are sent: pixie's login
// page, or the host app's own (Config.LoginURL).
func (s *Server) setLoginURL(loginURL string) error {
	s.loginURL = s.link(PathLogin)
	if u, err := url.Parse(loginURL); err != nil || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("handlers: Config.LoginURL %q must be a URL without query or fragment", loginURL)
	}
	if loginURL != "" {
		s.loginURL = loginURL
	}
	return nil
}

// routeTable lists the endpoints the Server serves, each with its handler,
// for New to register; ownLogin adds pixie's login page.
func (s *Server) routeTable(ownLogin bool) []route {
	forms := http.NewCrossOriginProtection()
	// Every route goes through bounded: one request-size rule for all.
	api := func(pattern string, h http.HandlerFunc) route { return route{pattern, s.bounded(h, true)} }
	page := func(pattern string, h http.Handler) route { return route{pattern, s.bounded(h, false)} }
	routes := []route{
		page("GET "+PathAuthorize, http.HandlerFunc(s.authorize)),
		page("POST "+PathAuthorize, http.HandlerFunc(s.authorize)),
		// Every method, so that a GET gets an OAuth error, not a bare 405.
		api(PathToken, s.token),
		api(pathPAR, s.par),
		api("GET "+PathUserInfo, s.userinfo),
		api("POST "+PathUserInfo, s.userinfo),
		api("POST "+PathRevoke, s.revoke),
		api("POST "+PathIntrospect, s.introspect),
		api("GET "+PathOIDCConfig, s.discovery),
		api("GET "+PathOAuthConfig, s.discovery),
		api("GET "+PathJWKS, s.jwks),
		page("GET "+PathConsent, http.HandlerFunc(s.consentPage)),
		page("POST "+PathConsent, forms.Handler(http.HandlerFunc(s.consentSubmit))),
		// RP-initiated logout may be a GET or a form POST from the app's page.
		page("GET "+PathLogout, http.HandlerFunc(s.logout)),
		page("POST "+PathLogout, http.HandlerFunc(s.logout)),
		page("POST "+PathLogout+"/confirm", forms.Handler(http.HandlerFunc(s.logoutConfirm))),
	}
	if ownLogin {
		// With the host app's own login, pixie's login page is not served
		// at all: it must not accept passwords the app does not check.
		routes = append(routes,
			page("GET "+PathLogin, http.HandlerFunc(s.loginPage)),
			page("POST "+PathLogin, forms.Handler(http.HandlerFunc(s.loginSubmit))))
	}
	return routes
}

// Register registers the endpoints on r (see [Mount] for the list).
func (s *Server) Register(r Router) {
	for _, rt := range s.routes {
		r.Handle(rt.pattern, rt.h)
	}
}

// ServeHTTP serves the endpoints, for mounting under a prefix:
// mux.Handle("/auth/", http.StripPrefix("/auth", srv)) with the issuer
// ending in /auth.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mux.ServeHTTP(w, r)
}

// failureStatus is the status of a page answering a store failure: 503 when
// the store timed out (provider.Config.StoreTimeout), 500 otherwise.
func failureStatus(err error) int {
	if storetimeout.Is(err) {
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// link returns the path of one of pixie's routes as the browser sees it.
func (s *Server) link(path string) string { return s.base + path }
