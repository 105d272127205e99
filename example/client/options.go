package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"
)

// options configures run. parseFlags fills it from the command line; a test
// can build one directly.
type options struct {
	// issuer is the OpenID Provider's issuer URL; discovery is fetched from
	// issuer + "/.well-known/openid-configuration". Required.
	issuer string
	// clientID is the public client's ID. Required.
	clientID string
	// scopes are requested in the authorization request. Required; without
	// "openid" there is no ID token and no UserInfo call.
	scopes []string
	// refresh, if true, uses the refresh token once after the login and then
	// shows that the old refresh token is refused (rotation).
	refresh bool
	// openBrowser, if true, makes the default onAuthURL try to open the
	// system browser. Ignored when onAuthURL is set.
	openBrowser bool
	// timeout is how long to wait for the browser redirect. Required (> 0).
	timeout time.Duration
	// audience, if not empty, is the identifier of the API the access token
	// is asked for (the audience authorization parameter): its aud. Empty
	// asks for no API: the token is then for the issuer's userinfo only.
	audience string
	// api, if not empty, is the base URL of example/api: after the login
	// its /api/messages is read (GET) and written (POST) with the access
	// token, and the answers printed.
	api string
	// dpop, if true, makes a DPoP key (RFC 9449) and sends proofs of it at
	// the token endpoint, UserInfo and the API, so that the tokens are bound
	// to it.
	dpop bool
	// par, if true, pushes the authorization request to the server's
	// pushed_authorization_request_endpoint first (RFC 9126) and sends the
	// browser with only client_id and the request_uri it returns.
	par bool
	// onAuthURL is called with the authorize URL once the loopback listener
	// is ready. nil means: print the URL to the output and, if openBrowser,
	// try to open it in the system browser. A test sets it to drive the
	// login itself.
	onAuthURL func(authURL string)
}

const (
	defaultIssuer   = "http://127.0.0.1:8080"
	defaultClientID = "example-native"
	defaultScopes   = "openid profile email offline_access read:messages"
	// defaultOIDCScopes are the default scopes with -audience "": without an
	// API, pixie grants no API scope.
	defaultOIDCScopes = "openid profile email offline_access"
	defaultAudience   = "https://api.example.com" // example/server's -api-audience
	defaultAPI        = "http://127.0.0.1:8081"   // example/api's -addr
	defaultTimeout    = 5 * time.Minute
)

// errFlagsReported is returned by parseFlags for a flag syntax error that the
// flag package has already printed.
var errFlagsReported = errors.New("invalid flags")

// parseFlags parses args (without the program name). getenv supplies the
// PIXIE_* fallbacks for the string flags; usage and flag errors go to stderr.
// It returns flag.ErrHelp for -h and errFlagsReported for a flag syntax
// error.
func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (options, error) {
	envOr := func(key, def string) string {
		if v := getenv(key); v != "" {
			return v
		}
		return def
	}

	fs := flag.NewFlagSet("client", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: client [flags]\n\n"+
			"Logs in to a pixie server like a native app would (authorization code + PKCE,\n"+
			"loopback redirect) and prints a transcript with tokens redacted.\n\nFlags:\n")
		fs.PrintDefaults()
	}

	var o options
	var scopes string
	fs.StringVar(&o.issuer, "issuer", envOr("PIXIE_ISSUER", defaultIssuer), "issuer URL; endpoints come from its discovery document (env PIXIE_ISSUER)")
	fs.StringVar(&o.clientID, "client-id", envOr("PIXIE_CLIENT_ID", defaultClientID), "public client ID (env PIXIE_CLIENT_ID)")
	fs.StringVar(&scopes, "scopes", envOr("PIXIE_SCOPES", defaultScopes), "space-separated scopes to request (env PIXIE_SCOPES; with -audience \"\" the default leaves out read:messages)")
	fs.StringVar(&o.audience, "audience", envOr("PIXIE_AUDIENCE", defaultAudience), "identifier of the API to ask an access token for, sent as the audience parameter; \"\" asks for none (env PIXIE_AUDIENCE)")
	fs.BoolVar(&o.refresh, "refresh", false, "after the login, use the refresh token once and show that the old one is refused")
	fs.BoolVar(&o.dpop, "dpop", false, "make an ES256 key and bind the tokens to it with DPoP (RFC 9449): proofs at the token endpoint, UserInfo, the refresh and the API")
	fs.BoolVar(&o.openBrowser, "open", true, "try to open the authorize URL in the system browser")
	fs.DurationVar(&o.timeout, "timeout", defaultTimeout, "how long to wait for the browser redirect")
	fs.BoolVar(&o.par, "par", false, "push the authorization request first (RFC 9126): the browser gets only client_id and a request_uri")
	fs.StringVar(&o.api, "api", envOr("PIXIE_API", defaultAPI), "base URL of example/api, called with the access token after the login; \"\" skips it (env PIXIE_API)")

	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return options{}, err
		}
		return options{}, errFlagsReported // fs has printed the error and usage
	}
	if fs.NArg() > 0 {
		return options{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	scopesGiven := getenv("PIXIE_SCOPES") != ""
	fs.Visit(func(f *flag.Flag) { scopesGiven = scopesGiven || f.Name == "scopes" })
	if o.audience == "" && !scopesGiven {
		scopes = defaultOIDCScopes // read:messages needs the API
	}
	o.scopes = strings.Fields(scopes)
	if err := o.validate(); err != nil {
		return options{}, err
	}
	return o, nil
}

// validate reports the first invalid field, naming its flag.
func (o options) validate() error {
	if o.issuer == "" {
		return errors.New("-issuer is required")
	}
	if u, err := url.Parse(o.issuer); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("-issuer %q is not an absolute http(s) URL", o.issuer)
	}
	if o.clientID == "" {
		return errors.New("-client-id is required")
	}
	if len(o.scopes) == 0 {
		return errors.New("-scopes is empty")
	}
	if o.timeout <= 0 {
		return fmt.Errorf("-timeout %v must be positive", o.timeout)
	}
	if o.api != "" {
		if u, err := url.Parse(o.api); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("-api %q is not an absolute http(s) URL", o.api)
		}
	}
	return nil
}
