package main

import (
	"crypto/rand"
	"encoding/base64"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/pixieauth/pixie/provider"
)

// options are the command-line flags; each also reads PIXIE_<NAME> from the
// environment (e.g. PIXIE_DEMO_PASSWORD), the flag winning.
type options struct {
	addr                string
	issuer              string
	demoPassword        string
	demoAPISecret       string
	codeLifespan        time.Duration
	accessTokenLifespan time.Duration
	idTokenAlg          string
	accessTokenAlg      string
	db                  string
	postgres            string
	memory              bool
	keySecret           string
	login               string
	apiAudience         string
	requirePAR          bool
	requireDPoP         bool
	dpopNonce           bool
	logLevel            slog.Level
	metricsAddr         string
	trace               string
}

func parseOptions(args []string, getenv func(string) string, out io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	fs.SetOutput(out)
	env := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	// envErrs[flag name] is why the flag's environment variable could not
	// be used; it matters only if the flag is not given.
	envErrs := map[string]error{}
	envDur := func(flagName, name string, def time.Duration) time.Duration {
		v := getenv(name)
		if v == "" {
			return def
		}
		d, err := time.ParseDuration(v)
		if err != nil {
			envErrs[flagName] = fmt.Errorf("%s: %w", name, err)
			return def
		}
		return d
	}
	fs.StringVar(&o.addr, "addr", env("PIXIE_ADDR", "127.0.0.1:8080"), "listen address")
	fs.StringVar(&o.issuer, "issuer", env("PIXIE_ISSUER", ""), "issuer URL (default http://<the address listened on>)")
	fs.StringVar(&o.demoPassword, "demo-password", env("PIXIE_DEMO_PASSWORD", ""), "password of the demo user alice (default: random, printed)")
	fs.StringVar(&o.demoAPISecret, "demo-api-secret", env("PIXIE_DEMO_API_SECRET", ""), "client secret of example-api (default: random, printed)")
	fs.DurationVar(&o.codeLifespan, "code-lifespan", envDur("code-lifespan", "PIXIE_CODE_LIFESPAN", provider.DefaultAuthorizeCodeLifespan), "authorization code lifespan (at most 10m)")
	fs.DurationVar(&o.accessTokenLifespan, "access-token-lifespan", envDur("access-token-lifespan", "PIXIE_ACCESS_TOKEN_LIFESPAN", provider.DefaultAccessTokenLifespan), "access token lifespan")
	fs.StringVar(&o.idTokenAlg, "id-token-alg", env("PIXIE_ID_TOKEN_ALG", provider.RS256), "ID token signing algorithm: RS256 or ES256")
	fs.StringVar(&o.accessTokenAlg, "access-token-alg", env("PIXIE_ACCESS_TOKEN_ALG", provider.ES256), "JWT access token signing algorithm: ES256 or RS256")
	fs.StringVar(&o.db, "db", env("PIXIE_DB", "pixie.db"), "SQLite database file")
	fs.StringVar(&o.postgres, "postgres", env("PIXIE_POSTGRES", ""), "PostgreSQL DSN (instead of -db), e.g. postgres://user@host/db")
	fs.BoolVar(&o.memory, "memory", env("PIXIE_MEMORY", "") == "true", "keep everything in memory (instead of -db)")
	fs.StringVar(&o.keySecret, "key-secret", env("PIXIE_KEY_SECRET", ""), "secret (≥ 32 bytes) encrypting the signing keys in the database (default for SQLite: the file <db>.key, created on first start)")
	fs.StringVar(&o.login, "login", env("PIXIE_LOGIN", "pixie"), "who logs users in: pixie (its login page) or company (this app's own, through handlers.PendingLogin)")
	fs.BoolVar(&o.requireDPoP, "require-dpop", env("PIXIE_REQUIRE_DPOP", "") == "true", "every public client must send DPoP proofs at the token endpoint (RFC 9449): its tokens are always bound to its key")
	fs.BoolVar(&o.dpopNonce, "dpop-nonce", env("PIXIE_DPOP_NONCE", "") == "true", "the token endpoint asks for a server nonce in DPoP proofs (use_dpop_nonce, RFC 9449 §8)")
	fs.BoolVar(&o.requirePAR, "require-par", env("PIXIE_REQUIRE_PAR", "") == "true", "every client must push its authorization requests to /oauth/par first (RFC 9126)")
	fs.StringVar(&o.apiAudience, "api-audience", env("PIXIE_API_AUDIENCE", defaultAPIAudience), "identifier (aud) of the demo API, example/api, that the example apps may ask access tokens for")
	fs.StringVar(&o.metricsAddr, "metrics-addr", env("PIXIE_METRICS_ADDR", ""), "serve Prometheus metrics at http://<this address>/metrics, a loopback address only (default: off)")
	fs.StringVar(&o.trace, "trace", env("PIXIE_TRACE", ""), "export traces: stdout, or otlp (OTLP/HTTP, set by the OTEL_EXPORTER_OTLP_* variables) (default: off)")
	level := env("PIXIE_LOG_LEVEL", "info")
	fs.Func("log-level", "log level: debug, info, warn, error (default info)", func(s string) error { level = s; return nil })
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	fs.Visit(func(f *flag.Flag) { delete(envErrs, f.Name) })
	for _, name := range slices.Sorted(maps.Keys(envErrs)) {
		return o, envErrs[name]
	}
	if o.login != "pixie" && o.login != "company" {
		return o, fmt.Errorf("-login %q: want pixie or company", o.login)
	}
	if o.trace != "" && o.trace != "stdout" && o.trace != "otlp" {
		return o, fmt.Errorf("-trace %q: want stdout or otlp", o.trace)
	}
	if o.metricsAddr != "" {
		if err := checkMetricsAddr(o.metricsAddr); err != nil {
			return o, err
		}
	}
	if err := o.logLevel.UnmarshalText([]byte(level)); err != nil {
		return o, fmt.Errorf("-log-level: %w", err)
	}
	var err error
	if o.demoPassword == "" {
		if o.demoPassword, err = randomSecret(); err != nil {
			return o, err
		}
	}
	if o.demoAPISecret == "" {
		if o.demoAPISecret, err = randomSecret(); err != nil {
			return o, err
		}
	}
	return o, nil
}

func randomSecret() (string, error) {
	b := make([]byte, 18)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
