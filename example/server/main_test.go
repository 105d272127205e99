package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/pixieauth/pixie/internal/testbrowser"
)

// syncBuffer is the server's output: written by its goroutines (slog, the
// demo banner), read by the test.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// server is the example server running in this process.
type server struct {
	url  string // the issuer, as reported to run's ready callback
	out  *syncBuffer
	stop context.CancelFunc // cancels run's context
	wait func() error       // waits for run to return and returns its result
}

// start runs the example server on 127.0.0.1:0 with args, environment env,
// and returns once it accepts connections. Cleanup stops it and fails t if
// run then returns an error.
func start(t *testing.T, env map[string]string, args ...string) *server {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	out := &syncBuffer{}
	ready := make(chan string, 1)
	done := make(chan error, 1)
	args = append([]string{"-addr", "127.0.0.1:0", "-db", filepath.Join(t.TempDir(), "pixie.db")}, args...)
	go func() {
		done <- run(ctx, args, func(k string) string { return env[k] }, out, func(iss string) { ready <- iss })
	}()
	s := &server{out: out, stop: cancel, wait: sync.OnceValue(func() error { return <-done })}
	select {
	case s.url = <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("run returned before listening: %v\noutput:\n%s", err, out)
	}
	t.Cleanup(func() {
		cancel()
		if err := s.wait(); err != nil {
			t.Errorf("run: got %v, want nil after cancel\noutput:\n%s", err, out)
		}
	})
	return s
}

// get GETs path on s and returns the status and body.
func (s *server) get(t *testing.T, path string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, s.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return resp.StatusCode, string(body)
}

// app returns the configuration of the demo's native app, redirecting to its
// custom scheme: nothing follows the redirect, the test reads the code.
func (s *server) app() *oauth2.Config {
	return &oauth2.Config{
		ClientID: "example-native",
		Endpoint: oauth2.Endpoint{
			AuthURL:   s.url + "/authorize",
			TokenURL:  s.url + "/oauth/token",
			AuthStyle: oauth2.AuthStyleInParams,
		},
		RedirectURL: "com.example.app:/oauth2redirect",
		Scopes:      []string{"openid", "profile"},
	}
}

// login signs alice in with password in a fresh browser and returns the
// authorization code and its PKCE verifier.
func (s *server) login(t *testing.T, password string) (code, verifier string, err error) {
	t.Helper()
	verifier = oauth2.GenerateVerifier()
	state := oauth2.GenerateVerifier()
	authURL := s.app().AuthCodeURL(state, oauth2.S256ChallengeOption(verifier))
	to, err := testbrowser.Login(t.Context(), testbrowser.NewClient(), authURL, "alice", password)
	if err != nil {
		return "", "", err
	}
	q := to.Query()
	if got, want := to.Scheme+":"+to.Path, "com.example.app:/oauth2redirect"; got != want {
		t.Fatalf("redirected to %s, want %s", got, want)
	}
	if q.Get("state") != state || q.Get("code") == "" {
		t.Fatalf("redirect: got %s, want our state and a code", to.Redacted())
	}
	return q.Get("code"), verifier, nil
}

func TestRoutes(t *testing.T) {
	t.Parallel()
	s := start(t, nil)
	tests := []struct {
		path       string
		wantStatus int
		wantBody   string // a substring
	}{
		{"/healthz", http.StatusOK, "ok\n"},
		{"/readyz", http.StatusOK, "ok\n"},
		{"/", http.StatusOK, "This is the example app."},
		{"/nothing-here", http.StatusNotFound, ""}, // "/" matches only itself
		{"/.well-known/openid-configuration", http.StatusOK, `"issuer":"` + s.url + `"`},
		{"/.well-known/jwks.json", http.StatusOK, `"keys"`},
	}
	for _, tt := range tests {
		status, body := s.get(t, tt.path)
		if status != tt.wantStatus || !strings.Contains(body, tt.wantBody) {
			t.Errorf("GET %s: got %d %q, want %d with %q", tt.path, status, body, tt.wantStatus, tt.wantBody)
		}
	}
}

// TestRequirePAR: discovery names the pushed endpoint, and says pushing
// is required with -require-par and optional without it (the provider's
// tests cover what RequirePAR then refuses).
func TestRequirePAR(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string // in the discovery document
	}{
		{nil, `"require_pushed_authorization_requests":false`},
		{[]string{"-require-par"}, `"require_pushed_authorization_requests":true`},
	} {
		s := start(t, nil, tc.args...)
		if _, body := s.get(t, "/.well-known/openid-configuration"); !strings.Contains(body, tc.want) ||
			!strings.Contains(body, `"pushed_authorization_request_endpoint":"`+s.url+`/oauth/par"`) {
			t.Errorf("%v: discovery %s, want %s and the pushed endpoint", tc.args, body, tc.want)
		}
	}
}

// TestRequireDPoP: with -require-dpop the demo's native app gets no
// tokens without a DPoP proof; discovery lists the proof algorithms
// either way.
func TestRequireDPoP(t *testing.T) {
	t.Parallel()
	const password = "pw-dpop"
	s := start(t, nil, "-demo-password", password, "-require-dpop")
	if _, body := s.get(t, "/.well-known/openid-configuration"); !strings.Contains(body, `"dpop_signing_alg_values_supported":["ES256","RS256","PS256","EdDSA"]`) {
		t.Errorf("discovery %s: want dpop_signing_alg_values_supported", body)
	}
	code, verifier, err := s.login(t, password)
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.app().Exchange(t.Context(), code, oauth2.VerifierOption(verifier))
	if re := (*oauth2.RetrieveError)(nil); !errors.As(err, &re) || re.ErrorCode != "invalid_dpop_proof" {
		t.Errorf("exchange without a proof under -require-dpop: got %v, want invalid_dpop_proof", err)
	}
}

// TestIssuerFromListener checks that without -issuer the issuer is the
// address actually listened on, port included, and that discovery and every
// endpoint agree.
func TestIssuerFromListener(t *testing.T) {
	t.Parallel()
	s := start(t, nil)
	if strings.HasSuffix(s.url, ":0") || !strings.HasPrefix(s.url, "http://127.0.0.1:") {
		t.Fatalf("issuer: got %q, want http://127.0.0.1:<the port>", s.url)
	}
	_, body := s.get(t, "/.well-known/openid-configuration")
	var doc struct {
		Issuer        string `json:"issuer"`
		Authorization string `json:"authorization_endpoint"`
		Token         string `json:"token_endpoint"`
	}
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatalf("discovery: %v", err)
	}
	if doc.Issuer != s.url {
		t.Errorf("discovery issuer: got %q, want %q", doc.Issuer, s.url)
	}
	if want := s.url + "/authorize"; doc.Authorization != want {
		t.Errorf("authorization_endpoint: got %q, want %q", doc.Authorization, want)
	}
	if want := s.url + "/oauth/token"; doc.Token != want {
		t.Errorf("token_endpoint: got %q, want %q", doc.Token, want)
	}
}

func TestDefaultIssuer(t *testing.T) {
	tests := []struct {
		addr string
		want string
	}{
		{"127.0.0.1:8080", "http://127.0.0.1:8080"},
		{"[::1]:8080", "http://[::1]:8080"},
		// A wildcard address: the loopback address, where the example
		// client looks by default.
		{"0.0.0.0:8080", "http://127.0.0.1:8080"},
		{"[::]:8080", "http://127.0.0.1:8080"},
	}
	for _, tt := range tests {
		addr, err := net.ResolveTCPAddr("tcp", tt.addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := defaultIssuer(addr); got != tt.want {
			t.Errorf("defaultIssuer(%s): got %q, want %q", tt.addr, got, tt.want)
		}
	}
}

// TestDemoPassword logs in with the password given by -demo-password and
// checks that the secrets given to the server appear in its output only on
// the lines that announce them, even at -log-level debug.
func TestDemoPassword(t *testing.T) {
	t.Parallel()
	const password = "pw-Xq7vR2mK9sLt"
	const apiSecret = "api-secret-Hn4wZ8pD"
	s := start(t, map[string]string{"PIXIE_DEMO_API_SECRET": apiSecret},
		"-demo-password", password, "-log-level", "debug")

	// The wrong password contains the right one: were a failed attempt
	// logged, the count below would catch it too.
	if _, _, err := s.login(t, "wrong-"+password); err == nil || !strings.Contains(err.Error(), "incorrect") {
		t.Errorf("login with a wrong password: got %v, want the login refused as incorrect", err)
	}
	code, verifier, err := s.login(t, password)
	if err != nil {
		t.Fatalf("login with -demo-password: %v\noutput:\n%s", err, s.out)
	}
	tok, err := s.app().Exchange(t.Context(), code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("code exchange: %v", err)
	}
	if id, _ := tok.Extra("id_token").(string); id == "" {
		t.Errorf("token response: got no id_token, want one for scope openid")
	}

	out := s.out.String()
	for _, secret := range []struct{ value, line string }{
		{password, "demo user:   alice / " + password + "\n"},
		{apiSecret, "api client:  example-api / " + apiSecret + " (may introspect)\n"},
	} {
		if n := strings.Count(out, secret.value); n != 1 {
			t.Errorf("secret %q: got %d occurrences in the output, want 1:\n%s", secret.value, n, out)
		}
		if !strings.Contains(out, secret.line) {
			t.Errorf("output: got no line %q, want it in:\n%s", secret.line, out)
		}
	}
}

// TestCodeLifespan checks -code-lifespan: a code is redeemable at once, and
// no longer once the lifespan has passed. It sleeps: fosite checks code
// expiry against the wall clock, over a real network connection.
func TestCodeLifespan(t *testing.T) {
	t.Parallel()
	const lifespan = time.Second
	const password = "pw-lifespan"
	s := start(t, nil, "-demo-password", password, "-code-lifespan", lifespan.String())

	code, verifier, err := s.login(t, password)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.app().Exchange(t.Context(), code, oauth2.VerifierOption(verifier)); err != nil {
		t.Fatalf("exchanging a fresh code: %v", err)
	}

	code, verifier, err = s.login(t, password)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(lifespan + 200*time.Millisecond)
	_, err = s.app().Exchange(t.Context(), code, oauth2.VerifierOption(verifier))
	if re := (*oauth2.RetrieveError)(nil); !errors.As(err, &re) || re.ErrorCode != "invalid_grant" {
		t.Errorf("exchanging a code older than -code-lifespan: got %v, want invalid_grant", err)
	}
}

// TestShutdown cancels run's context: run must return nil, having stopped
// listening.
func TestShutdown(t *testing.T) {
	t.Parallel()
	s := start(t, nil)
	if status, _ := s.get(t, "/healthz"); status != http.StatusOK {
		t.Fatalf("GET /healthz: got %d, want 200", status)
	}
	s.stop()
	if err := s.wait(); err != nil {
		t.Errorf("run after cancel: got %v, want nil", err)
	}
	if !strings.Contains(s.out.String(), `msg="shutting down"`) {
		t.Errorf("output: got no shutdown log line, want one in:\n%s", s.out)
	}
	resp, err := http.Get(s.url + "/healthz")
	if err == nil {
		resp.Body.Close()
		t.Errorf("GET /healthz after shutdown: got %s, want a connection error", resp.Status)
	}
}

// TestStartErrors checks that bad configuration stops the server before it
// serves, with an error naming the problem, and that it leaves the port free.
func TestStartErrors(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string // a substring
	}{
		{
			// RFC 6749 §4.1.2: at most 10 minutes; the provider refuses more.
			name:    "code lifespan over 10m",
			args:    []string{"-code-lifespan", "11m"},
			wantErr: "AuthorizeCodeLifespan 11m0s exceeds the maximum 10m0s",
		},
		{
			name:    "unknown id token alg",
			args:    []string{"-id-token-alg", "HS256"},
			wantErr: `IDTokenAlg "HS256"`,
		},
		{
			name:    "bad log level",
			args:    []string{"-log-level", "loud"},
			wantErr: "-log-level",
		},
		{
			// The metrics tell who uses the server how: not on every
			// interface.
			name:    "metrics on a non-loopback address",
			args:    []string{"-metrics-addr", ":9090"},
			wantErr: "only a loopback address",
		},
		{
			name:    "unknown trace exporter",
			args:    []string{"-trace", "jaeger"},
			wantErr: `-trace "jaeger"`,
		},
		{
			// Not silently the default.
			name:    "bad duration in the environment",
			env:     map[string]string{"PIXIE_CODE_LIFESPAN": "soon"},
			wantErr: "PIXIE_CODE_LIFESPAN",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A port known to be free, so that we can see it freed again.
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			addr := ln.Addr().String()
			ln.Close()

			var out syncBuffer
			args := append([]string{"-addr", addr, "-db", filepath.Join(t.TempDir(), "pixie.db")}, tt.args...)
			err = run(t.Context(), args, func(k string) string { return tt.env[k] }, &out, func(string) {
				t.Error("the server became ready")
			})
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("run: got error %v, want one containing %q\noutput:\n%s", err, tt.wantErr, out.String())
			}
			ln, err = net.Listen("tcp", addr)
			if err != nil {
				t.Fatalf("listening on the port after run failed: got %v, want it free", err)
			}
			ln.Close()
		})
	}
}

func TestEnvironmentDurationFlagWins(t *testing.T) {
	o, err := parseOptions([]string{"-code-lifespan", "2m"}, func(k string) string {
		return map[string]string{"PIXIE_CODE_LIFESPAN": "soon"}[k]
	}, io.Discard)
	if err != nil {
		t.Fatalf("parseOptions: got %v, want the flag to override the bad environment variable", err)
	}
	if o.codeLifespan != 2*time.Minute {
		t.Errorf("codeLifespan: got %v, want 2m0s", o.codeLifespan)
	}
}
