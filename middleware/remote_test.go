package middleware_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pixieauth/pixie/middleware"
)

// TestRemoteKeyRotation: the authorization server rotates in key B; a
// token signed with B is refused while the published set lacks B, and
// accepted after the next (rate-limited) refetch — no restart.
func TestRemoteKeyRotation(t *testing.T) {
	a, b := sharedKey(t, "rsa-a", "RS256"), sharedKey(t, "ec-b", "ES256")
	srv := newJWKSServer(t, a)
	clk := newClock(t0)
	v := newVerifier(t, middleware.Config{JWKSURL: srv.url(), Now: clk.Now, MinRefetchInterval: 10 * time.Second})
	wantRequests := func(n int64) {
		t.Helper()
		if got := srv.requests.Load(); got != n {
			t.Fatalf("JWKS requests: got %d, want %d", got, n)
		}
	}
	wantRequests(1) // NewVerifier fetched once

	if _, err := v.Verify(t.Context(), token(t, a, clk.Now())); err != nil {
		t.Fatalf("token signed with A: %v", err)
	}
	wantRequests(1) // known kid: no fetch

	tokB := token(t, b, clk.Now())
	if _, err := v.Verify(t.Context(), tokB); !errors.Is(err, middleware.ReasonUnknownKey) {
		t.Fatalf("B before it is published: got %v, want ReasonUnknownKey", err)
	}
	wantRequests(2) // one refetch, which did not have B

	srv.set(t, a, b) // the server rotates B in
	if _, err := v.Verify(t.Context(), tokB); !errors.Is(err, middleware.ReasonUnknownKey) {
		t.Fatalf("B within MinRefetchInterval of the last refetch: got %v, want ReasonUnknownKey", err)
	}
	wantRequests(2) // rate-limited

	clk.Advance(10 * time.Second)
	tok, err := v.Verify(t.Context(), tokB)
	if err != nil {
		t.Fatalf("B after MinRefetchInterval: %v", err)
	}
	if tok.Subject != "user-42" {
		t.Errorf("Subject: got %q", tok.Subject)
	}
	wantRequests(3)
	for range 5 {
		if _, err := v.Verify(t.Context(), tokB); err != nil {
			t.Fatalf("B again: %v", err)
		}
		if _, err := v.Verify(t.Context(), token(t, a, clk.Now())); err != nil {
			t.Fatalf("A still published: %v", err)
		}
	}
	wantRequests(3) // B is known now

	// The server retires A; a refetch (triggered by an unknown kid) drops
	// it, and tokens A signed are refused from then on.
	srv.set(t, b)
	clk.Advance(10 * time.Second)
	if _, err := v.Verify(t.Context(), token(t, sharedKey(t, "rsa-evil", "RS256"), clk.Now())); !errors.Is(err, middleware.ReasonUnknownKey) {
		t.Fatalf("unknown key: got %v", err)
	}
	wantRequests(4)
	if _, err := v.Verify(t.Context(), token(t, a, clk.Now())); !errors.Is(err, middleware.ReasonUnknownKey) {
		t.Fatalf("retired A: got %v, want ReasonUnknownKey", err)
	}
}

// TestRemoteUnknownKidFlood: however many tokens with unknown kids arrive
// at once, the JWKS endpoint sees at most one refetch per interval.
func TestRemoteUnknownKidFlood(t *testing.T) {
	a := sharedKey(t, "rsa-a", "RS256")
	evil := sharedKey(t, "ec-evil", "ES256")
	srv := newJWKSServer(t, a)
	clk := newClock(t0)
	v := newVerifier(t, middleware.Config{JWKSURL: srv.url(), Now: clk.Now})

	// Tokens with many different unknown kids, signed by a real key.
	var forged []string
	for i := range 50 {
		h := header(evil)
		h["kid"] = "forged-" + strings.Repeat("x", i)
		forged = append(forged, sign(t, evil.priv, h, claimsAt(t0)))
	}
	flood := func() {
		t.Helper()
		var wg sync.WaitGroup
		var accepted atomic.Int64
		for g := range 20 {
			wg.Go(func() {
				for i := range forged {
					if _, err := v.Verify(t.Context(), forged[(g+i)%len(forged)]); err == nil {
						accepted.Add(1)
					} else if !errors.Is(err, middleware.ReasonUnknownKey) {
						t.Errorf("forged kid: got %v, want ReasonUnknownKey", err)
					}
				}
			})
		}
		wg.Wait()
		if accepted.Load() != 0 {
			t.Fatalf("%d forged tokens accepted", accepted.Load())
		}
	}

	flood()
	if got := srv.requests.Load(); got != 2 {
		t.Fatalf("after 1000 unknown-kid tokens: %d JWKS requests, want 2 (start + one refetch)", got)
	}
	clk.Advance(5 * time.Second)
	flood()
	if got := srv.requests.Load(); got != 2 {
		t.Fatalf("within the interval: %d JWKS requests, want still 2", got)
	}
	clk.Advance(5 * time.Second) // 10s (the default) since the refetch
	flood()
	if got := srv.requests.Load(); got != 3 {
		t.Fatalf("after the interval: %d JWKS requests, want 3", got)
	}
}

func TestRemoteFailFast(t *testing.T) {
	a := sharedKey(t, "rsa-a", "RS256")
	down := newJWKSServer(t, a)
	down.status.Store(http.StatusInternalServerError)
	unusable := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Only a symmetric key: never usable by a resource server.
		_, _ = w.Write([]byte(`{"keys":[{"kty":"oct","kid":"k1","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA"}]}`))
	}))
	t.Cleanup(unusable.Close)
	notJSON := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`<html>`))
	}))
	t.Cleanup(notJSON.Close)
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()

	for name, u := range map[string]string{
		"500":                down.url(),
		"only HMAC key":      unusable.URL,
		"not JSON":           notJSON.URL,
		"connection refused": closed.URL,
	} {
		t.Run(name, func(t *testing.T) {
			_, err := middleware.NewVerifier(t.Context(), middleware.Config{
				Issuer: testIssuer, Audience: testAudience, JWKSURL: u, Logger: discard(),
			})
			if err == nil || !strings.Contains(err.Error(), "Config.JWKSURL") {
				t.Errorf("got %v, want an error naming Config.JWKSURL", err)
			}
		})
	}

	// ctx bounds the first fetch.
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}))
	t.Cleanup(slow.Close)
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := middleware.NewVerifier(ctx, middleware.Config{Issuer: testIssuer, Audience: testAudience, JWKSURL: slow.URL, Logger: discard()}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("slow server: got %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("NewVerifier took %s despite its context", d)
	}
	slow.CloseClientConnections()
}

// TestRemoteOutage: once running, a JWKS endpoint outage does not affect
// known keys, and an unknown kid then gets 503, not invalid_token.
func TestRemoteOutage(t *testing.T) {
	a, b := sharedKey(t, "rsa-a", "RS256"), sharedKey(t, "ec-b", "ES256")
	srv := newJWKSServer(t, a)
	clk := newClock(t0)
	logs := &syncBuffer{}
	v := newVerifier(t, middleware.Config{JWKSURL: srv.url(), Now: clk.Now, Logger: bufferLogger(logs)})
	srv.status.Store(http.StatusBadGateway)

	if _, err := v.Verify(t.Context(), token(t, a, clk.Now())); err != nil {
		t.Fatalf("known key during the outage: %v", err)
	}
	tokB := token(t, b, clk.Now())
	_, err := v.Verify(t.Context(), tokB)
	var e *middleware.Error
	if !errors.Is(err, middleware.ErrUnavailable) || !errors.As(err, &e) || e.Status != http.StatusServiceUnavailable {
		t.Fatalf("unknown kid during the outage: got %v, want ErrUnavailable with 503", err)
	}
	if _, err := v.Verify(t.Context(), tokB); !errors.Is(err, middleware.ErrUnavailable) {
		t.Fatalf("unknown kid again, within the interval: got %v, want ErrUnavailable", err)
	}
	if got := srv.requests.Load(); got != 2 {
		t.Errorf("JWKS requests: got %d, want 2", got)
	}
	if !strings.Contains(logs.String(), "refetch jwks") || !strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("outage not logged at Error:\n%s", logs)
	}

	// Through the middleware: 503, no challenge, temporarily_unavailable.
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.Header.Set("Authorization", "Bearer "+tokB)
	middleware.RequireToken(v)(http.NotFoundHandler()).ServeHTTP(rec, req)
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("WWW-Authenticate") != "" || !strings.Contains(rec.Body.String(), `"error":"temporarily_unavailable"`) {
		t.Errorf("got %d %q %s, want 503 without WWW-Authenticate", rec.Code, rec.Header().Get("WWW-Authenticate"), rec.Body)
	}

	// Recovery: B is published and the endpoint is back.
	srv.set(t, a, b)
	srv.status.Store(0)
	clk.Advance(10 * time.Second)
	if _, err := v.Verify(t.Context(), tokB); err != nil {
		t.Fatalf("after recovery: %v", err)
	}
}

// TestRemoteClose: after Close, the verifier keeps its keys but fetches
// nothing more.
func TestRemoteClose(t *testing.T) {
	a, b := sharedKey(t, "rsa-a", "RS256"), sharedKey(t, "ec-b", "ES256")
	srv := newJWKSServer(t, a, b)
	v := newVerifier(t, middleware.Config{JWKSURL: srv.url(), Now: fixed(t0)})
	v.Close()
	v.Close() // idempotent
	if _, err := v.Verify(t.Context(), token(t, a, t0)); err != nil {
		t.Fatalf("known key after Close: %v", err)
	}
	if _, err := v.Verify(t.Context(), token(t, sharedKey(t, "rsa-evil", "RS256"), t0)); !errors.Is(err, middleware.ReasonUnknownKey) {
		t.Fatalf("unknown key after Close: got %v", err)
	}
	if got := srv.requests.Load(); got != 1 {
		t.Errorf("JWKS requests: got %d, want 1", got)
	}
}

// TestRemoteCanceledRequest: a client that goes away while its unknown kid
// is being refetched spends no refetch budget.
func TestRemoteCanceledRequest(t *testing.T) {
	a, b := sharedKey(t, "rsa-a", "RS256"), sharedKey(t, "ec-b", "ES256")
	srv := newJWKSServer(t, a)
	clk := newClock(t0)
	v := newVerifier(t, middleware.Config{JWKSURL: srv.url(), Now: clk.Now})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := v.Verify(ctx, token(t, b, t0)); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled request: got %v, want context.Canceled", err)
	}
	srv.set(t, a, b)
	if _, err := v.Verify(t.Context(), token(t, b, t0)); err != nil {
		t.Fatalf("next request: %v", err)
	}
}

// TestProviderKeys: in process, keys the provider rotates in or retires
// count at once, with no fetch and no rate limit.
func TestProviderKeys(t *testing.T) {
	a, b := sharedKey(t, "rsa-a", "RS256"), sharedKey(t, "ec-b", "ES256")
	p := &fakeProvider{}
	p.set(jwksOf(t, a))
	v := newVerifier(t, middleware.Config{KeySet: middleware.ProviderKeys(p), Now: fixed(t0)})

	if _, err := v.Verify(t.Context(), token(t, a, t0)); err != nil {
		t.Fatalf("A: %v", err)
	}
	if _, err := v.Verify(t.Context(), token(t, b, t0)); !errors.Is(err, middleware.ReasonUnknownKey) {
		t.Fatalf("B before rotation: got %v", err)
	}
	p.set(jwksOf(t, a, b))
	if _, err := v.Verify(t.Context(), token(t, b, t0)); err != nil {
		t.Fatalf("B after rotation: %v", err)
	}
	p.set(jwksOf(t, b))
	if _, err := v.Verify(t.Context(), token(t, a, t0)); !errors.Is(err, middleware.ReasonUnknownKey) {
		t.Fatalf("A after retirement: got %v", err)
	}
	// A broken key source is an outage, not a bad token.
	p.set([]byte("{"))
	if _, err := v.Verify(t.Context(), token(t, b, t0)); !errors.Is(err, middleware.ErrUnavailable) {
		t.Fatalf("broken JWKS: got %v, want ErrUnavailable", err)
	}
	p.set(nil)
	if _, err := v.Verify(t.Context(), token(t, b, t0)); !errors.Is(err, middleware.ErrUnavailable) {
		t.Fatalf("empty JWKS: got %v, want ErrUnavailable", err)
	}
}

// fakeProvider has the JWKS method of *provider.Provider.
type fakeProvider struct{ doc atomic.Pointer[[]byte] }

func (p *fakeProvider) set(doc []byte) { p.doc.Store(&doc) }

func (p *fakeProvider) JWKS(context.Context) []byte { return *p.doc.Load() }

// TestRemoteBackgroundRefresh runs in a synctest bubble, so that minutes
// pass instantly: the set is refreshed every RefreshInterval without any
// token asking, and refetches for unknown kids do not add periodic fetches
// (with jwk.Cache, which this package used before its own refresh loop,
// each Refresh did). The JWKS endpoint is a
// handler behind an in-memory transport: real sockets would not let the
// bubble's clock advance.
func TestRemoteBackgroundRefresh(t *testing.T) {
	a, b := sharedKey(t, "rsa-a", "RS256"), sharedKey(t, "ec-b", "ES256")
	evil := sharedKey(t, "rsa-evil", "RS256")
	synctest.Test(t, func(t *testing.T) {
		var requests atomic.Int64
		var doc atomic.Pointer[[]byte]
		setDoc := func(keys ...*testKey) { d := jwksOf(t, keys...); doc.Store(&d) }
		setDoc(a)
		client := &http.Client{Transport: handlerTransport{http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			requests.Add(1)
			_, _ = w.Write(*doc.Load())
		})}}
		v, err := middleware.NewVerifier(t.Context(), middleware.Config{
			Issuer: testIssuer, Audience: testAudience,
			JWKSURL:         "https://auth.example.com/.well-known/jwks.json",
			HTTPClient:      client,
			RefreshInterval: time.Minute,
			Logger:          discard(),
		})
		if err != nil {
			t.Fatal(err)
		}
		defer v.Close()

		// Five refetches for forged kids, 10s apart.
		for range 5 {
			if _, err := v.Verify(t.Context(), token(t, evil, time.Now())); !errors.Is(err, middleware.ReasonUnknownKey) {
				t.Fatalf("forged kid: got %v", err)
			}
			time.Sleep(10 * time.Second)
		}
		if got := requests.Load(); got < 6 || got > 7 { // start, 5 refetches, maybe 1 periodic
			t.Fatalf("requests after the refetches: got %d, want 6 or 7", got)
		}

		// The server rotates: B in, A out. Within 1¼ intervals the verifier
		// knows, with no token asking.
		setDoc(b)
		time.Sleep(75 * time.Second)
		synctest.Wait()
		if _, err := v.Verify(t.Context(), token(t, a, time.Now())); !errors.Is(err, middleware.ReasonUnknownKey) {
			t.Fatalf("A after the background refresh: got %v, want ReasonUnknownKey", err)
		}
		before := requests.Load()
		if _, err := v.Verify(t.Context(), token(t, b, time.Now())); err != nil {
			t.Fatalf("B after the background refresh: %v", err)
		}
		if requests.Load() != before {
			t.Fatal("B needed a refetch: the background refresh did not install it")
		}

		// Ten more minutes: about ten periodic fetches, not six per minute.
		before = requests.Load()
		time.Sleep(10 * time.Minute)
		synctest.Wait()
		if got := requests.Load() - before; got < 8 || got > 12 {
			t.Fatalf("periodic fetches in 10 minutes: got %d, want about 10", got)
		}

		// After Close, nothing more.
		v.Close()
		before = requests.Load()
		time.Sleep(10 * time.Minute)
		synctest.Wait()
		if got := requests.Load() - before; got != 0 {
			t.Fatalf("fetches after Close: %d", got)
		}
	})
}

// handlerTransport serves requests with a handler, in memory.
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	t.h.ServeHTTP(rec, r)
	return rec.Result(), nil
}
