package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/pixieauth/pixie/internal/testbrowser"
	"github.com/pixieauth/pixie/store/sqlstore"
	"github.com/pixieauth/pixie/store/sqlstore/sqlite"
)

// buildServer builds the example server into a fresh temporary directory
// and returns the directory and the binary, or skips the test without the go
// command.
func buildServer(t *testing.T) (dir, bin string) {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("%s builds the server with the go command, which is not in PATH: %v", t.Name(), err)
	}
	dir = t.TempDir()
	bin = filepath.Join(dir, "server")
	buildCtx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(buildCtx, goBin, "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return dir, bin
}

// loopbackApp returns the demo's native app at issuer as a real app
// configures it: a loopback redirect on another free port, where the app
// would listen, and offline_access for a refresh token.
func loopbackApp(t *testing.T, issuer string) *oauth2.Config {
	return &oauth2.Config{
		ClientID: "example-native",
		Endpoint: oauth2.Endpoint{
			AuthURL:   issuer + "/authorize",
			TokenURL:  issuer + "/oauth/token",
			AuthStyle: oauth2.AuthStyleInParams,
		},
		RedirectURL: "http://127.0.0.1:" + freePort(t) + "/callback",
		Scopes:      []string{"openid", "profile", "offline_access"},
	}
}

// TestRestartKeepsTokens runs the example server as a real process on a
// SQLite file, kills it (SIGKILL: no shutdown, as in a crash) and starts it
// again on the same file and port: the tokens it issued, its signing keys and
// its demo registrations survive, without being duplicated.
func TestRestartKeepsTokens(t *testing.T) {
	dir, bin := buildServer(t)

	addr := "127.0.0.1:" + freePort(t)
	issuer := "http://" + addr
	db := filepath.Join(dir, "pixie.db")
	const password = "pw-restart-7fKq2"
	args := func(password string) []string {
		return []string{"-addr", addr, "-db", db, "-demo-password", password, "-demo-api-secret", "api-secret-restart-Jd3"}
	}
	app := loopbackApp(t, issuer)
	verifier := func(t *testing.T) *oidc.IDTokenVerifier {
		t.Helper()
		op, err := oidc.NewProvider(t.Context(), issuer) // discovery and JWKS of the running process
		if err != nil {
			t.Fatalf("oidc.NewProvider(%s): %v", issuer, err)
		}
		return op.Verifier(&oidc.Config{ClientID: app.ClientID})
	}

	// First start: log in, get tokens.
	first := startProcess(t, bin, args(password)...)
	tok, nonce := signIn(t, app, password)
	if tok.RefreshToken == "" {
		t.Fatal("token response: got no refresh token, want one for offline_access")
	}
	oldID := idToken(t, tok)
	if _, err := verifier(t).Verify(t.Context(), oldID); err != nil {
		t.Fatalf("verify the ID token: %v", err)
	}
	first.kill(t)

	// Second start, same flags: the tokens, the keys and the password survive.
	second := startProcess(t, bin, args(password)...)
	if out := second.out.String(); strings.Contains(out, "created "+db+".key") {
		t.Errorf("second start: created a new key secret file, want the first one reused; output:\n%s", out)
	}
	v := verifier(t)
	idt, err := v.Verify(t.Context(), oldID)
	if err != nil {
		t.Fatalf("verify the ID token issued before the restart against the restarted server's JWKS: %v", err)
	}
	if idt.Nonce != nonce || idt.Subject != "alice" {
		t.Errorf("ID token issued before the restart: got sub %q nonce %q, want alice and %q", idt.Subject, idt.Nonce, nonce)
	}
	if status := userinfo(t, issuer, tok.AccessToken); status != http.StatusOK {
		t.Errorf("userinfo with the access token issued before the restart: got %d, want 200", status)
	}
	tok2, err := app.TokenSource(t.Context(), &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
	if err != nil {
		t.Fatalf("refresh after the restart with the refresh token issued before it: %v\noutput:\n%s", err, second.out)
	}
	if tok2.RefreshToken == "" || tok2.RefreshToken == tok.RefreshToken || tok2.AccessToken == tok.AccessToken {
		t.Errorf("refresh after the restart: got no new tokens")
	}
	newID := idToken(t, tok2)
	if _, err := v.Verify(t.Context(), newID); err != nil {
		t.Errorf("verify the ID token issued after the restart: %v", err)
	}
	if oldKid, newKid := kid(t, oldID), kid(t, newID); oldKid != newKid {
		t.Errorf("kid: got %q before the restart and %q after, want the same key", oldKid, newKid)
	}
	// Registering the demo user and clients again on start did not break
	// them: alice still signs in with the same password.
	signIn(t, app, password)
	second.kill(t)

	// Third start with another password: the new one works, the old one no
	// longer does.
	const newPassword = "pw-restart-changed-9Wz"
	third := startProcess(t, bin, args(newPassword)...)
	signIn(t, app, newPassword)
	ar := app.AuthCodeURL("state-"+oauth2.GenerateVerifier(), oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))
	if _, err := testbrowser.Login(t.Context(), testbrowser.NewClient(), ar, "alice", password); err == nil || !strings.Contains(err.Error(), "incorrect") {
		t.Errorf("login with the password of the earlier starts: got %v, want it refused as incorrect", err)
	}

	third.kill(t)

	// Three starts made one set of keys (RS256, ES256 and the token
	// secret), which decrypt with the secret the first start created.
	if keys := storedKeys(t, db); len(keys) != 3 {
		t.Errorf("keys after three starts: got %d (%v), want 3: none generated again", len(keys), keys)
	}
}

// process is the example server running as a child process.
type process struct {
	cmd  *exec.Cmd
	out  *syncBuffer   // its stdout and stderr
	done chan struct{} // closed when it has exited
	err  error         // what Wait returned, once done is closed
}

// startProcess starts the server binary with args and waits until it
// answers /healthz on the address of its -addr flag. Cleanup kills it.
func startProcess(t *testing.T, bin string, args ...string) *process {
	t.Helper()
	var addr string
	for i, a := range args {
		if a == "-addr" && i+1 < len(args) {
			addr = args[i+1]
		}
	}
	cmd := exec.Command(bin, args...)
	// The environment without PIXIE_ settings, which the server would read.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PIXIE_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	p := &process{cmd: cmd, out: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() { p.kill(t) })

	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := client.Get("http://" + addr + "/healthz")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		select {
		case <-p.done:
			t.Fatalf("server exited before answering /healthz: %v\noutput:\n%s", p.err, p.out)
		case <-time.After(20 * time.Millisecond): // polling a process that is starting
		}
		if time.Now().After(deadline) {
			t.Fatalf("server did not answer /healthz within 30s (last error %v)\noutput:\n%s", err, p.out)
		}
	}
}

// kill sends SIGKILL and waits for the process to exit. Killing an exited
// process does nothing.
func (p *process) kill(t *testing.T) {
	t.Helper()
	select {
	case <-p.done:
		return
	default:
	}
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("kill the server: %v", err)
	}
	<-p.done
}

// freePort returns a TCP port of 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, err := net.SplitHostPort(ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// signIn runs the native app's flow as alice with password: PKCE, a nonce, a
// fresh browser. It returns the tokens and the nonce.
func signIn(t *testing.T, app *oauth2.Config, password string) (*oauth2.Token, string) {
	t.Helper()
	verifier, state, nonce := oauth2.GenerateVerifier(), oauth2.GenerateVerifier(), oauth2.GenerateVerifier()
	authURL := app.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("nonce", nonce))
	to, err := testbrowser.Login(t.Context(), testbrowser.NewClient(), authURL, "alice", password)
	if err != nil {
		t.Fatalf("sign in: %v", err)
	}
	if got := to.Scheme + "://" + to.Host + to.Path; got != app.RedirectURL {
		t.Fatalf("sign in: redirected to %s, want %s", got, app.RedirectURL)
	}
	q := to.Query()
	if q.Get("state") != state || q.Get("code") == "" {
		t.Fatalf("sign in: redirect %s has not our state and a code", to.Redacted())
	}
	tok, err := app.Exchange(t.Context(), q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("code exchange: %v", err)
	}
	return tok, nonce
}

// idToken returns the token response's ID token.
func idToken(t *testing.T, tok *oauth2.Token) string {
	t.Helper()
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		t.Fatal("token response: got no id_token, want one for scope openid")
	}
	return raw
}

// kid returns the kid of a compact JWS, unverified.
func kid(t *testing.T, token string) string {
	t.Helper()
	h, _, _ := strings.Cut(token, ".")
	raw, err := base64.RawURLEncoding.DecodeString(h)
	if err != nil {
		t.Fatalf("JWS header: %v", err)
	}
	var hdr struct {
		Kid string `json:"kid"`
	}
	if err := json.Unmarshal(raw, &hdr); err != nil {
		t.Fatalf("JWS header: %v", err)
	}
	return hdr.Kid
}

// userinfo calls the UserInfo endpoint with an access token and returns the
// status.
func userinfo(t *testing.T, issuer, accessToken string) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, issuer+"/userinfo", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+accessToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET /userinfo: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// storedKeys opens the server's database file, with the key secret the
// server created beside it, and returns the ID and algorithm of every stored
// key.
func storedKeys(t *testing.T, db string) []string {
	t.Helper()
	secret, err := os.ReadFile(db + ".key")
	if err != nil {
		t.Fatalf("read the key secret file: %v", err)
	}
	st, err := sqlite.Open(t.Context(), db, sqlstore.Config{KeySecret: secret})
	if err != nil {
		t.Fatalf("open the server's database: %v", err)
	}
	defer st.Close()
	keys, err := st.Keys(t.Context())
	if err != nil {
		t.Fatalf("read the stored keys with the server's secret: %v", err)
	}
	var ids []string
	for _, k := range keys {
		ids = append(ids, k.Algorithm+" "+k.ID)
	}
	return ids
}
