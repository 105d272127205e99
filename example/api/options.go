package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strings"
)

// Defaults of the flags: they match example/server's defaults (its -addr
// and -api-audience), so the three programs work together unconfigured.
const (
	defaultAddr     = "127.0.0.1:8081"
	defaultIssuer   = "http://127.0.0.1:8080"
	defaultAudience = "https://api.example.com"
	jwksPath        = "/.well-known/jwks.json"
)

// options are the command-line flags; each also reads an environment
// variable, the flag winning. PIXIE_ISSUER and PIXIE_AUDIENCE are the ones
// example/server and example/client read too, so one export configures all
// three; the listen address is PIXIE_API_ADDR, not the server's PIXIE_ADDR.
type options struct {
	addr     string
	issuer   string
	audience string
	jwks     string
	logLevel slog.Level
}

func parseOptions(args []string, getenv func(string) string, out io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("api", flag.ContinueOnError)
	fs.SetOutput(out)
	env := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	fs.StringVar(&o.addr, "addr", env("PIXIE_API_ADDR", defaultAddr), "listen address (env PIXIE_API_ADDR)")
	fs.StringVar(&o.issuer, "issuer", env("PIXIE_ISSUER", defaultIssuer), "issuer whose access tokens are accepted: their iss (env PIXIE_ISSUER)")
	fs.StringVar(&o.audience, "audience", env("PIXIE_AUDIENCE", defaultAudience), "this API's identifier, registered at the issuer: the aud tokens must carry (env PIXIE_AUDIENCE)")
	fs.StringVar(&o.jwks, "jwks", env("PIXIE_JWKS", ""), "URL of the issuer's JWK Set (env PIXIE_JWKS; default <issuer>"+jwksPath+")")
	level := env("PIXIE_LOG_LEVEL", "info")
	fs.Func("log-level", "log level: debug (shows why tokens are refused), info, warn, error (env PIXIE_LOG_LEVEL; default info)", func(s string) error { level = s; return nil })
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if err := o.logLevel.UnmarshalText([]byte(level)); err != nil {
		return o, fmt.Errorf("-log-level: %w", err)
	}
	if u, err := url.Parse(o.issuer); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return o, fmt.Errorf("-issuer %q is not an absolute http(s) URL", o.issuer)
	}
	if o.audience == "" {
		return o, errors.New("-audience is required")
	}
	if o.jwks == "" {
		o.jwks = strings.TrimSuffix(o.issuer, "/") + jwksPath
	}
	return o, nil
}
