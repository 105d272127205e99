// Command server is an ordinary Go web app (its own / page and /healthz) with
// pixie mounted on its mux: the code to copy into a service that should log
// users in with OAuth 2.0 + PKCE and OpenID Connect.
//
//	go run ./example/server
//
// then, in another terminal, log in as a native app would:
//
//	go run ./example/client
//
// It registers a demo user alice (password printed at start unless
// -demo-password is given), the public native clients example-native (first
// party) and example-other, and the confidential client example-api, which
// may call the introspection endpoint. Grants and signing keys are kept in the
// SQLite file pixie.db (-db), or in PostgreSQL (-postgres), or in memory
// (-memory); the demo user and clients are declared in code.
//
// It also registers the demo API, the resource server example/api, as
// provider.Config.APIs: its identifier is -api-audience (default
// https://api.example.com), its scopes read:messages and write:messages, and
// both app clients may ask access tokens for it. To see a token for it used
// and refused, run the API in a third terminal before the client:
//
//	go run ./example/api
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/pixieauth/pixie/handlers"
	"github.com/pixieauth/pixie/provider"
	"github.com/pixieauth/pixie/store/memory"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, nil); err != nil {
		fmt.Fprintln(os.Stderr, "server:", err)
		os.Exit(1)
	}
}

// run starts the server and serves until ctx is done, then shuts it down and
// returns nil. ready, if not nil, is called with the issuer URL once the
// server accepts connections; with -addr 127.0.0.1:0 that is how a test
// learns the port.
func run(ctx context.Context, args []string, getenv func(string) string, out io.Writer, ready func(issuer string)) error {
	opts, err := parseOptions(args, getenv, out)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: opts.logLevel}))

	// Listen first, so that the default issuer has the real port even for
	// -addr 127.0.0.1:0.
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", opts.addr)
	if err != nil {
		return err
	}
	defer ln.Close() // for the early returns; Serve closes it otherwise
	if opts.issuer == "" {
		opts.issuer = defaultIssuer(ln.Addr())
	}

	// pixie's storage. Users and clients: the app's own, here the demo's,
	// declared in code (demo.go). Grants, signing keys and login sessions:
	// a SQLite file by default, PostgreSQL for replicas (storage.go), so
	// that refresh tokens, keys and sessions survive a restart.
	demo := memory.New()
	if err := registerDemo(demo, opts, out); err != nil {
		return err
	}
	st, err := openStore(ctx, opts, out)
	if err != nil {
		return err
	}
	defer st.Close()

	// Traces and metrics, when -trace or -metrics-addr asks (observability.go).
	tel, err := setupTelemetry(ctx, opts, out, logger)
	if err != nil {
		return err
	}
	defer func() {
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := tel.shutdown(shutdownCtx); err != nil {
			logger.Warn("stop telemetry", "error", err)
		}
	}()

	// The provider: the issuer and the stores. Everything else has a secure default.
	p, err := provider.New(ctx, provider.Config{
		Issuer:  opts.issuer,
		Clients: demo, Users: demo, Grants: st, Keys: st,
		IDTokenAlg:            opts.idTokenAlg,
		AccessTokenAlg:        opts.accessTokenAlg,
		AuthorizeCodeLifespan: opts.codeLifespan,
		AccessTokenLifespan:   opts.accessTokenLifespan,
		APIs:                  demoAPIs(opts), // the demo API, example/api (demo.go)
		RequirePAR:            opts.requirePAR,
		RequireDPoP:           opts.requireDPoP,
		DPoPNonce:             opts.dpopNonce,
		Logger:                logger,
		TracerProvider:        tel.tracer, // nil: the global one, a no-op
		MeterProvider:         tel.meter,  // nil: the global one, a no-op
		Events:                auditLog(logger),
	})
	if err != nil {
		return err
	}

	// The app's own mux and routes...
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", home)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	// ...and pixie on it: /authorize, /oauth/token, /userinfo, /.well-known/…
	// Consents, the login throttle and login sessions in the store too, so
	// that they survive a restart and every replica shares them (a logout
	// on one ends the session on all).
	hcfg := handlers.Config{Consents: st, Throttle: st, Sessions: st}
	if opts.login == "company" {
		// The app's own login instead of pixie's page (companylogin.go).
		hcfg.LoginURL = "/company/login"
	}
	pixie, err := handlers.New(p, hcfg)
	if err != nil {
		return err
	}
	pixie.Register(mux)
	// Readiness, for a load balancer or Kubernetes: the database answers
	// and the signing keys are loaded. /healthz stays the liveness check.
	mux.Handle("GET /readyz", pixie.Ready())
	if opts.login == "company" {
		mountCompanyLogin(mux, pixie, opts)
	}

	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	logger.InfoContext(ctx, "listening", "addr", ln.Addr().String(), "issuer", opts.issuer)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	if ready != nil {
		ready(opts.issuer)
	}
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	logger.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return err
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func home(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = io.WriteString(w, "This is the example app. Its login server is at /.well-known/openid-configuration.\n")
}

// defaultIssuer is http://<the listener's address>. A wildcard address
// (-addr :8080) becomes 127.0.0.1, where a browser on this machine reaches
// the server (Go's wildcard "tcp" listeners accept IPv4 too) and which the
// example client uses by default; for other hosts, set -issuer.
func defaultIssuer(addr net.Addr) string {
	ap, err := netip.ParseAddrPort(addr.String())
	if err != nil {
		return "http://" + addr.String()
	}
	if ap.Addr().IsUnspecified() {
		ap = netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), ap.Port())
	}
	return "http://" + ap.String()
}
