package handlers

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gorilla/sessions"

	"github.com/pixieauth/pixie/internal/storetimeout"
	"github.com/pixieauth/pixie/provider"
	"github.com/pixieauth/pixie/store"
	"github.com/pixieauth/pixie/store/memory"
)

// Paths of the endpoints, relative to the issuer URL.
const (
	PathAuthorize   = "/authorize"
	PathToken       = "/oauth/token"
	PathUserInfo    = "/userinfo"
	PathRevoke      = "/oauth/revoke"
	PathIntrospect  = "/oauth/introspect"
	PathOIDCConfig  = "/.well-known/openid-configuration"
	PathOAuthConfig = "/.well-known/oauth-authorization-server"
	PathJWKS        = "/.well-known/jwks.json"
	PathLogin       = "/login"
	PathLogout      = "/logout"
	PathConsent     = "/consent"
)

// DefaultSessionLifetime is how long a login session lasts by default.
const DefaultSessionLifetime = 12 * time.Hour

// DefaultConsentLifetime is how long a consent is remembered by default.
const DefaultConsentLifetime = 365 * 24 * time.Hour

// Router is what Mount registers on: *http.ServeMux, chi.Router and
// gorilla/mux's Router all have this method. Patterns use Go 1.22 method
// syntax ("GET /authorize").
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
	Templates TemplateFS
	// SessionLifetime is how long a login session lasts before the user must
	// sign in again. Default 12 hours.
	SessionLifetime time.Duration
	// LoginURL replaces pixie's login page with the host app's own: a user
	// who must log in is sent there, the authorization request in the
	// query. The app authenticates the user its own way (its session, its
	// SSO) and finishes with [Server.PendingLogin] and [Pending.Complete].
	// Default "": pixie's login page at /login.
	LoginURL string
	// Throttle counts failed logins, so that guessing passwords is slow:
	// after LoginFailuresPerUser failures for a username, or
	// LoginFailuresPerIP from an address, within LoginFailureWindow, the
	// login form refuses to check passwords for them until the window ends.
	// Share it between replicas (the SQL store implements it). Default: in
	// memory.
	Throttle store.Throttle
	// LoginFailuresPerUser defaults to 5.
	LoginFailuresPerUser int
	// LoginFailuresPerIP defaults to 50.
	LoginFailuresPerIP int
	// LoginFailureWindow defaults to 15 minutes.
	LoginFailureWindow time.Duration
	// ClientIP returns the address a login attempt comes from, for the
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
	// later does not extend the consent to the others. Default
	// DefaultConsentLifetime (365 days); at least a minute.
	ConsentLifetime time.Duration
}

// Server serves pixie's endpoints. It is an http.Handler, for mounting under
// a prefix, and can register its routes on a [Router]. It is safe for
// concurrent use.
type Server struct {
	p        *provider.Provider
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
	throttle        *throttle
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
func New(p *provider.Provider, cfg Config) (*Server, error) {
	if p == nil {
		return nil, errors.New("handlers: provider is nil")
	}
	pg, err := parsePages(cfg.Templates)
	if err != nil {
		return nil, err
	}
	iss, err := url.Parse(p.Issuer())
	if err != nil {
		return nil, fmt.Errorf("handlers: issuer: %w", err)
	}
	if cfg.SessionLifetime == 0 {
		cfg.SessionLifetime = DefaultSessionLifetime
	} else if cfg.SessionLifetime < time.Minute {
		return nil, fmt.Errorf("handlers: Config.SessionLifetime %v is shorter than a minute", cfg.SessionLifetime)
	}
	hashKey, err := p.DeriveKey("login cookie mac")
	if err != nil {
		return nil, err
	}
	blockKey, err := p.DeriveKey("login cookie encryption")
	if err != nil {
		return nil, err
	}
	secure := iss.Scheme == "https"
	cs := sessions.NewCookieStore(hashKey, blockKey)
	cs.Options = &sessions.Options{
		Path:     "/",
		MaxAge:   int(cfg.SessionLifetime / time.Second),
		HttpOnly: true,
		Secure:   secure,
		SameSite: http.SameSiteLaxMode,
	}
	cs.MaxAge(cs.Options.MaxAge)
	s := &Server{
		p:        p,
		pages:    pg,
		cookies:  cs,
		cookie:   "pixie_session",
		base:     strings.TrimSuffix(iss.Path, "/"),
		mux:      http.NewServeMux(),
		lifetime: cfg.SessionLifetime,
	}
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
		s.consentLifetime = DefaultConsentLifetime
	} else if s.consentLifetime < time.Minute {
		return nil, fmt.Errorf("handlers: Config.ConsentLifetime %v is shorter than a minute", cfg.ConsentLifetime)
	}
	t := &throttle{st: cfg.Throttle, perUser: cfg.LoginFailuresPerUser, perIP: cfg.LoginFailuresPerIP,
		window: cfg.LoginFailureWindow, now: p.Now, ip: cfg.ClientIP}
	if t.st == nil {
		t.st = inMemory()
	}
	if t.perUser == 0 {
		t.perUser = DefaultLoginFailuresPerUser
	}
	if t.perIP == 0 {
		t.perIP = DefaultLoginFailuresPerIP
	}
	if t.window == 0 {
		t.window = DefaultLoginFailureWindow
	}
	if t.ip == nil {
		t.ip = remoteIP
	}
	if t.perUser < 0 || t.perIP < 0 || t.window < time.Second {
		return nil, errors.New("handlers: Config.LoginFailuresPerUser and LoginFailuresPerIP must not be negative, nor LoginFailureWindow shorter than a second")
	}
	// Every call to the handlers' own stores is bounded like the
	// provider's: wrap each one here.
	s.consents = storetimeout.Consents(s.consents, p.StoreTimeout())
	t.st = storetimeout.Throttle(t.st, p.StoreTimeout())
	s.throttle = t
	s.loginURL = s.link(PathLogin)
	if u, err := url.Parse(cfg.LoginURL); err != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("handlers: Config.LoginURL %q must be a URL without query or fragment", cfg.LoginURL)
	}
	if cfg.LoginURL != "" {
		s.loginURL = cfg.LoginURL
	}
	if secure {
		// __Host-: the browser refuses it unless Secure, Path=/ and no
		// Domain, so no sibling subdomain can plant or read it.
		s.cookie = "__Host-pixie_session"
	}
	forms := http.NewCrossOriginProtection()
	// Every route goes through bounded: one request-size rule for all.
	api := func(pattern string, h http.HandlerFunc) route { return route{pattern, s.bounded(h, true)} }
	page := func(pattern string, h http.Handler) route { return route{pattern, s.bounded(h, false)} }
	s.routes = []route{
		page("GET "+PathAuthorize, http.HandlerFunc(s.authorize)),
		page("POST "+PathAuthorize, http.HandlerFunc(s.authorize)),
		// Every method, so that a GET gets an OAuth error, not a bare 405.
		api(PathToken, s.token),
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
	if cfg.LoginURL == "" {
		// With the host app's own login, pixie's login page is not served
		// at all: it must not accept passwords the app does not check.
		s.routes = append(s.routes,
			page("GET "+PathLogin, http.HandlerFunc(s.loginPage)),
			page("POST "+PathLogin, forms.Handler(http.HandlerFunc(s.loginSubmit))))
	}
	for i := range s.routes {
		s.routes[i].h = storetimeout.PerRequest(s.routes[i].h)
		s.mux.Handle(s.routes[i].pattern, s.routes[i].h)
	}
	return s, nil
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
