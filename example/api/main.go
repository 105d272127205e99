// Command api is a resource server that accepts the access tokens pixie
// issues: the API a native app calls once its user has logged in. It
// verifies each token with package middleware, in remote mode: the RFC 9068
// JWT's signature against the issuer's published keys (fetched at start,
// refreshed in the background, refetched when a token names a key it has not
// seen, so pixie's key rotation needs no restart here), then its typ, iss,
// aud, exp, and the scope the route needs.
//
//	GET  /api/public    no token needed
//	GET  /api/messages  the caller's messages; needs read:messages
//	POST /api/messages  {"text": "…"} adds one; needs write:messages
//
// Messages are kept in memory, per user (the token's sub). A refused request
// gets the RFC 6750 §3 answer: 401 with `WWW-Authenticate: Bearer realm=…`
// without a token, 401 invalid_token for a token that is not for this API
// (another aud), expired or forged, 403 insufficient_scope naming the scope
// that was missing. A DPoP-bound access token (RFC 9449) is accepted as
// `Authorization: DPoP <token>` with its DPoP proof, and refused as Bearer;
// the API listens without a proxy, so the proofs' htu is checked against the
// address it serves (behind one, set middleware.Config.PublicURL).
//
// Run the three programs, each in its own terminal, in this order (the API
// fetches the server's keys when it starts):
//
//	go run ./example/server
//	go run ./example/api
//	go run ./example/client
//
// The client logs in as alice, asks for a token for this API (its -audience)
// with read:messages, reads the messages, and is refused when it tries to
// post one, since its token lacks write:messages.
//
// Flags, each also read from the environment variable in parentheses:
//
//	-addr       listen address (PIXIE_API_ADDR, default 127.0.0.1:8081)
//	-issuer     the authorization server, the tokens' iss (PIXIE_ISSUER,
//	            default http://127.0.0.1:8080)
//	-audience   this API's identifier, the tokens' aud (PIXIE_AUDIENCE,
//	            default https://api.example.com, example/server's
//	            -api-audience)
//	-jwks       the issuer's JWK Set (PIXIE_JWKS, default
//	            <issuer>/.well-known/jwks.json); https, or http on a
//	            loopback host only
//	-log-level  debug, info, warn or error (PIXIE_LOG_LEVEL); debug logs why
//	            each token is refused
//
// Tokens are never logged.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/pixieauth/pixie/middleware"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, nil); err != nil {
		fmt.Fprintln(os.Stderr, "api:", err)
		os.Exit(1)
	}
}

// run starts the API and serves until ctx is done, then shuts it down and
// returns nil. ready, if not nil, is called with the API's base URL
// (http://<address listened on>) once it accepts connections; with -addr
// 127.0.0.1:0 that is how a test learns the port.
func run(ctx context.Context, args []string, getenv func(string) string, out io.Writer, ready func(baseURL string)) error {
	opts, err := parseOptions(args, getenv, out)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: opts.logLevel}))

	// The verifier: which issuer, which audience (this API), where the keys
	// are. An http JWKS URL is accepted for a loopback host only (the
	// middleware's rule; InsecureAllowHTTP would widen it to any host, which
	// this example never needs). NewVerifier fetches the keys now and fails
	// if it cannot: better here than on every request.
	v, err := middleware.NewVerifier(ctx, middleware.Config{
		Issuer:   opts.issuer,
		Audience: opts.audience,
		JWKSURL:  opts.jwks,
		Logger:   logger,
	})
	if err != nil {
		return fmt.Errorf("%w (is example/server running at %s?)", err, opts.issuer)
	}
	defer v.Close()

	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", opts.addr)
	if err != nil {
		return err
	}
	defer ln.Close() // for the early returns; Serve closes it otherwise
	baseURL := "http://" + ln.Addr().String()

	mux := http.NewServeMux()
	newAPI(logger).routes(mux, v)
	srv := &http.Server{
		Handler:           accessLog(logger, mux),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	logger.InfoContext(ctx, "listening", "url", baseURL, "issuer", opts.issuer, "audience", opts.audience, "jwks", opts.jwks)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	if ready != nil {
		ready(baseURL)
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

// accessLog logs each request's method, path, status and duration. Not its
// query or headers: a token could be in either.
func accessLog(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(sw, r)
		log.InfoContext(r.Context(), "request",
			"method", r.Method, "path", r.URL.Path, "status", sw.status,
			"duration_ms", time.Since(start).Milliseconds())
	})
}

// statusWriter records the status code a handler writes.
type statusWriter struct {
	http.ResponseWriter
	status      int
	wroteHeader bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wroteHeader {
		w.status, w.wroteHeader = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
