package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// TestShutdownUnderLoad runs the example server as a real process under
// concurrent load (refresh-token rotations, userinfo and discovery calls) and
// sends it SIGTERM mid-load. Requests in flight at that moment finish, none
// with a 5xx or a cut connection; new connections are refused; the process
// exits 0. Started again on the same database, it shows that no refresh the
// clients lost was carried out: every refresh token a client still holds
// works, whatever became of the request that would have rotated it.
func TestShutdownUnderLoad(t *testing.T) {
	dir, bin := buildServer(t)
	addr := "127.0.0.1:" + freePort(t)
	issuer := "http://" + addr
	const password = "pw-shutdown-3xQv8"
	args := []string{"-addr", addr, "-db", filepath.Join(dir, "pixie.db"), "-demo-password", password, "-demo-api-secret", "api-secret-shutdown-Lp4"}
	app := &oauth2.Config{
		ClientID:    "example-native",
		Endpoint:    oauth2.Endpoint{AuthURL: issuer + "/authorize", TokenURL: issuer + "/oauth/token", AuthStyle: oauth2.AuthStyleInParams},
		RedirectURL: "http://127.0.0.1:" + freePort(t) + "/callback",
		Scopes:      []string{"openid", "profile", "offline_access"},
	}
	proc := startProcess(t, bin, args...)

	// Each worker is an app with its own refresh-token chain and its own
	// connections; two more hold a token request open across the SIGTERM,
	// its body half sent.
	const workers, slow = 6, 2
	chains := make([]*chain, workers+slow)
	for i := range chains {
		tok, _ := signIn(t, app, password)
		chains[i] = &chain{refresh: tok.RefreshToken, access: tok.AccessToken}
	}

	stop := make(chan struct{}) // closed when the load stops
	var wg sync.WaitGroup
	results := make(chan outcome, 1<<14)
	for _, c := range chains[:workers] {
		wg.Go(func() { c.load(t.Context(), app, issuer, stop, results) })
	}
	release := make(chan struct{}) // lets the slow requests send the rest of their bodies
	started := make(chan struct{}, slow)
	for _, c := range chains[workers:] {
		wg.Go(func() { c.slowRefresh(t.Context(), app, started, release, results) })
	}
	for range slow {
		<-started
	}
	time.Sleep(300 * time.Millisecond) // the load runs, the slow requests are in the server

	if err := proc.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	// While the slow requests are still open, the server refuses new
	// connections: it is shutting down, not cutting off.
	time.Sleep(200 * time.Millisecond)
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Errorf("dial %s during the shutdown: got a connection, want it refused", addr)
	} else if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("dial %s during the shutdown: got %v, want connection refused", addr, err)
	}
	select {
	case <-proc.done:
		t.Errorf("the server exited with requests in flight (%v)", proc.err)
	default:
	}
	close(release)
	time.Sleep(100 * time.Millisecond)
	close(stop)
	wg.Wait()
	close(results)
	select {
	case <-proc.done:
	case <-time.After(15 * time.Second):
		t.Fatalf("the server did not exit within 15s of SIGTERM\noutput:\n%s", proc.out)
	}
	if proc.err != nil {
		t.Errorf("server exit after SIGTERM: got %v, want status 0\noutput:\n%s", proc.err, proc.out)
	}

	counts := map[string]int{}
	for r := range results {
		counts[r.kind]++
		switch {
		case r.status >= 500:
			t.Errorf("%s: got %d during the shutdown, want no 5xx", r.what, r.status)
		case r.status == 0 && r.slow:
			t.Errorf("%s: a request in flight at SIGTERM failed: %v", r.what, r.err)
		case r.status == 0 && !errors.Is(r.err, syscall.ECONNREFUSED) && !errors.Is(r.err, syscall.ECONNRESET) && !errors.Is(r.err, io.EOF):
			t.Errorf("%s: got %v, want a response or a refused connection", r.what, r.err)
		case r.status == 0:
			counts["refused or reset"]++
		}
	}
	t.Logf("outcomes: %v", counts)
	if counts["refresh ok"] < workers {
		t.Errorf("got %d refreshes answered before the shutdown, want at least one per worker: the load did not run", counts["refresh ok"])
	}
	if counts["slow ok"] != slow {
		t.Errorf("got %d of the %d requests held open across SIGTERM answered with new tokens", counts["slow ok"], slow)
	}

	// Started again: every chain's refresh token (the last one its app
	// received) works. A refresh the server carried out but whose answer it
	// cut off would have rotated it away.
	startProcess(t, bin, args...)
	for i, c := range chains {
		if _, err := app.TokenSource(t.Context(), &oauth2.Token{RefreshToken: c.refresh}).Token(); err != nil {
			t.Errorf("app %d after the restart: refresh with the last refresh token it received: %v", i, err)
		}
	}
}

// chain is one app's tokens.
type chain struct {
	refresh, access string
}

// outcome is what one request got: a status, or an error.
type outcome struct {
	kind   string // for the tally: "refresh ok", "userinfo ok", …
	what   string // the request, for messages
	status int    // 0 when err is set
	err    error
	slow   bool // held open across SIGTERM: it must be answered
}

// load rotates c's refresh token and calls userinfo and discovery in a loop
// until stop is closed or a connection is refused (the server is gone), on
// connections of its own, kept alive as an app's are.
func (c *chain) load(ctx context.Context, app *oauth2.Config, issuer string, stop <-chan struct{}, results chan<- outcome) {
	client := &http.Client{Transport: &http.Transport{}, Timeout: 20 * time.Second}
	defer client.CloseIdleConnections()
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		var o outcome
		switch i % 3 {
		case 0:
			o = c.rotate(ctx, app, client, nil)
		case 1:
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, issuer+"/userinfo", nil)
			req.Header.Set("Authorization", "Bearer "+c.access)
			o = do(client, req, "userinfo")
		case 2:
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, issuer+"/.well-known/openid-configuration", nil)
			o = do(client, req, "discovery")
		}
		results <- o
		if errors.Is(o.err, syscall.ECONNREFUSED) {
			return
		}
	}
}

// slowRefresh sends a refresh request whose body stops halfway until release
// is closed, and reports on started once the first half is sent.
func (c *chain) slowRefresh(ctx context.Context, app *oauth2.Config, started chan<- struct{}, release <-chan struct{}, results chan<- outcome) {
	client := &http.Client{Transport: &http.Transport{}, Timeout: 20 * time.Second}
	defer client.CloseIdleConnections()
	body := &heldBody{started: started, release: release}
	o := c.rotate(ctx, app, client, body)
	o.slow = true
	if o.kind == "refresh ok" {
		o.kind = "slow ok"
	}
	results <- o
}

// rotate redeems c's refresh token; on success c holds the new tokens. With
// held set, the body is sent through it.
func (c *chain) rotate(ctx context.Context, app *oauth2.Config, client *http.Client, held *heldBody) outcome {
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {c.refresh}, "client_id": {app.ClientID}}.Encode()
	var body io.Reader = strings.NewReader(form)
	if held != nil {
		held.data = form
		body = held
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, app.Endpoint.TokenURL, body)
	req.ContentLength = int64(len(form))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := client.Do(req)
	if err != nil {
		return outcome{kind: "refresh error", what: "refresh", err: err}
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
	}
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return outcome{kind: "refresh error", what: "refresh: read the response", err: err}
	}
	if resp.StatusCode != http.StatusOK {
		return outcome{kind: "refresh refused", what: fmt.Sprintf("refresh (%s)", raw), status: resp.StatusCode}
	}
	if err := json.Unmarshal(raw, &tok); err != nil || tok.RefreshToken == "" {
		return outcome{kind: "refresh error", what: "refresh: a token response without a refresh token", err: fmt.Errorf("%s: %v", raw, err)}
	}
	c.refresh, c.access = tok.RefreshToken, tok.AccessToken
	return outcome{kind: "refresh ok", what: "refresh", status: resp.StatusCode}
}

// do sends a request and drains the response.
func do(client *http.Client, req *http.Request, what string) outcome {
	resp, err := client.Do(req)
	if err != nil {
		return outcome{kind: what + " error", what: what, err: err}
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return outcome{kind: what + " error", what: what + ": read the response", err: err}
	}
	return outcome{kind: what + " ok", what: what, status: resp.StatusCode}
}

// heldBody is a request body that sends its first half, reports on started,
// and sends the rest once release is closed.
type heldBody struct {
	data    string
	sent    int
	held    bool // the first half is sent and the wait is over
	started chan<- struct{}
	release <-chan struct{}
}

func (b *heldBody) Read(p []byte) (int, error) {
	half := len(b.data) / 2
	if b.sent == half && !b.held {
		b.started <- struct{}{}
		<-b.release
		b.held = true
	}
	end := len(b.data)
	if b.sent < half {
		end = half
	}
	if b.sent == len(b.data) {
		return 0, io.EOF
	}
	n := copy(p, b.data[b.sent:end])
	b.sent += n
	return n, nil
}
