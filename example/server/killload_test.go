package main

import (
	"cmp"
	"context"
	"errors"
	mathrand "math/rand/v2"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/pixieauth/pixie/internal/pgtest"
)

// TestKillUnderLoadKeepsTokens is issue 9's durability rule under
// concurrency: the example server, as a real process, answers refresh
// chains of many apps at once and is killed (SIGKILL) in the middle of
// them; restarted on the same store and port, it still honours every
// refresh token it answered with, and every token it signed verifies
// against its keys. On SQLite this is what group commit must keep: a
// caller is answered only after the COMMIT that holds its write.
func TestKillUnderLoadKeepsTokens(t *testing.T) {
	_, bin := buildServer(t)
	t.Run("sqlite", func(t *testing.T) {
		killUnderLoad(t, bin, "-db", filepath.Join(t.TempDir(), "pixie.db"))
	})
	t.Run("postgres", func(t *testing.T) {
		killUnderLoad(t, bin, "-postgres", pgtest.FreshSchema(t), "-key-secret", "key-secret-killtest-0123456789abcdef")
	})
}

// refreshChain is one app's refresh chain: its own sign-in, so its own token
// family, refreshed again and again with the refresh token of the answer
// before.
type refreshChain struct {
	last     string   // the refresh token of the last 200 answer
	answered int      // refreshes answered with 200
	signed   []string // the ID and access tokens of its 200 answers
	err      error    // what ended it: the kill, or a failure
}

// errNoRotation ends a chain whose refresh answered without a new refresh
// token.
var errNoRotation = errors.New("a refresh answered without a new refresh token, want one each time (rotation)")

// killUnderLoad runs the server on the store that storeArgs select, kills it
// under a load of concurrent refresh chains and checks what the restarted
// server makes of every chain's last refresh token.
func killUnderLoad(t *testing.T, bin string, storeArgs ...string) {
	const (
		chains   = 16
		password = "pw-killtest-Qm4vT"
	)
	addr := "127.0.0.1:" + freePort(t)
	issuer := "http://" + addr
	args := append([]string{"-addr", addr, "-demo-password", password, "-demo-api-secret", "api-secret-killtest-8Hs"}, storeArgs...)
	app := loopbackApp(t, issuer)

	first := startProcess(t, bin, args...)
	cs := make([]*refreshChain, chains)
	for i := range cs {
		tok, _ := signIn(t, app, password)
		if tok.RefreshToken == "" {
			t.Fatal("token response: got no refresh token, want one for offline_access")
		}
		cs[i] = &refreshChain{last: tok.RefreshToken, signed: []string{idToken(t, tok), tok.AccessToken}}
	}

	// The load: every chain refreshes as fast as the server answers, on a
	// client that keeps a connection per chain. The kill comes at a
	// random point after a few hundred answered refreshes.
	killAfter := int64(250 + mathrand.IntN(250))
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: chains}}
	defer client.CloseIdleConnections()
	ctx := context.WithValue(t.Context(), oauth2.HTTPClient, client)
	var total atomic.Int64
	killNow := make(chan struct{})
	var wg sync.WaitGroup
	start := time.Now()
	for _, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				tok, err := app.TokenSource(ctx, &oauth2.Token{RefreshToken: c.last}).Token()
				if err != nil {
					c.err = err
					return
				}
				if tok.RefreshToken == "" || tok.RefreshToken == c.last {
					c.err = errNoRotation
					return
				}
				id, _ := tok.Extra("id_token").(string)
				c.last, c.answered, c.signed = tok.RefreshToken, c.answered+1, append(c.signed, id, tok.AccessToken)
				if total.Add(1) == killAfter {
					// At once, from here: the sooner after an
					// answer, the likelier the kill catches that
					// answer's write before its commit, if it came
					// before.
					_ = first.cmd.Process.Kill() // first.kill below waits for the exit
					close(killNow)
				}
			}
		}()
	}
	select {
	case <-killNow:
	case <-time.After(15 * time.Second):
		t.Errorf("load: %d refreshes answered in 15s, want %d before the kill", total.Load(), killAfter)
	}
	first.kill(t)
	wg.Wait()
	t.Logf("killed after %d refreshes answered in %v (%d chains)", total.Load(), time.Since(start).Round(time.Millisecond), chains)
	for i, c := range cs {
		// Until the kill the server answered every refresh with 200:
		// a refusal it sent (a RetrieveError) is a failure.
		var re *oauth2.RetrieveError
		if errors.As(c.err, &re) || c.answered == 0 || errors.Is(c.err, errNoRotation) {
			t.Errorf("chain %d, after %d refreshes: %v, want the chain ended only by the kill", i, c.answered, c.err)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	second := startProcess(t, bin, args...)
	checkSigned(t, issuer, app.ClientID, cs)
	checkLastRefreshTokens(t, app, second, cs)
}

// checkSigned verifies every ID token and access token the chains received
// before the kill against the restarted server's discovery and JWKS.
func checkSigned(t *testing.T, issuer, clientID string, cs []*refreshChain) {
	t.Helper()
	op, err := oidc.NewProvider(t.Context(), issuer)
	if err != nil {
		t.Fatalf("oidc.NewProvider(%s) after the restart: %v", issuer, err)
	}
	ids := op.Verifier(&oidc.Config{ClientID: clientID})
	// JWT access tokens (RFC 9068) name the API, not the app, and are
	// ES256 by default.
	access := op.Verifier(&oidc.Config{SkipClientIDCheck: true, SupportedSigningAlgs: []string{oidc.ES256, oidc.RS256}})
	n := 0
	for i, c := range cs {
		// One error per chain and kind, with the count: a lost key
		// fails them all.
		var badID, badAccess int
		var firstID, firstAccess error
		for j := 0; j < len(c.signed); j += 2 {
			if _, err := ids.Verify(t.Context(), c.signed[j]); err != nil {
				badID++
				firstID = cmp.Or(firstID, err)
			}
			if _, err := access.Verify(t.Context(), c.signed[j+1]); err != nil {
				badAccess++
				firstAccess = cmp.Or(firstAccess, err)
			}
			n += 2
		}
		if badID > 0 {
			t.Errorf("chain %d: %d of %d ID tokens issued before the kill do not verify after the restart, the first: %v", i, badID, len(c.signed)/2, firstID)
		}
		if badAccess > 0 {
			t.Errorf("chain %d: %d of %d access tokens issued before the kill do not verify after the restart, the first: %v", i, badAccess, len(c.signed)/2, firstAccess)
		}
	}
	t.Logf("checked %d ID and access tokens issued before the kill against the restarted server's JWKS", n)
}

// checkLastRefreshTokens redeems every chain's last received refresh token
// on the restarted server, one chain at a time. The example server sets no
// refresh grace period (provider.Config.RefreshTokenGracePeriod 0), so the
// rules allow two outcomes only:
//   - 200 with a new refresh token: the token was stored and still current;
//   - the chain's refresh in flight at the kill had rotated it (committed,
//     its answer lost): then it is a rotated token used again, a replay,
//     refused as "already used" with invalid_grant, and the server reports
//     refresh_reuse_detected for it (and revokes its family). That can only
//     happen if the chain's last request reached the server: not if it was
//     refused a connection.
//
// A token the server answered with but lost (not found) fits neither.
func checkLastRefreshTokens(t *testing.T, app *oauth2.Config, server *process, cs []*refreshChain) {
	t.Helper()
	// The server's output reaches server.out through a pipe, after its
	// answer: wait for the events a refusal reports.
	reuses := func(want int) int {
		deadline := time.Now().Add(5 * time.Second)
		for {
			n := strings.Count(server.out.String(), "event=refresh_reuse_detected")
			if n >= want || time.Now().After(deadline) {
				return n
			}
			time.Sleep(10 * time.Millisecond) // polling a pipe
		}
	}
	redeemed, replayed := 0, 0
	for i, c := range cs {
		tok, err := app.TokenSource(t.Context(), &oauth2.Token{RefreshToken: c.last}).Token()
		var re *oauth2.RetrieveError
		switch {
		case err == nil:
			if tok.RefreshToken == "" || tok.RefreshToken == c.last {
				t.Errorf("chain %d: refresh after the restart answered without a new refresh token", i)
			}
			redeemed++
		case errors.As(err, &re) && re.ErrorCode == "invalid_grant" && strings.Contains(re.ErrorDescription, "already used"):
			replayed++
			if errors.Is(c.err, syscall.ECONNREFUSED) {
				t.Errorf("chain %d: last refresh token refused as already used after the restart, but the chain's last request never reached the server (%v)", i, c.err)
			}
			if n := reuses(replayed); n < replayed {
				t.Errorf("chain %d: last refresh token refused as already used, but the server reported %d refresh_reuse_detected events for %d such refusals", i, n, replayed)
			}
		default:
			t.Errorf("chain %d: the refresh token of its last 200 answer (after %d refreshes), redeemed after the restart: %v, want 200, or a replay refused if the kill interrupted a refresh that rotated it (the chain ended with: %v)",
				i, c.answered, err, c.err)
		}
	}
	if n := reuses(replayed); n != replayed {
		t.Errorf("after the restart: %d refresh_reuse_detected events, want one per replay refused, %d", n, replayed)
	}
	t.Logf("after the restart: %d last refresh tokens redeemed, %d rotated by the refresh the kill interrupted (replays)", redeemed, replayed)
}
