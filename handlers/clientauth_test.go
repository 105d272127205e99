package handlers_test

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/pixieauth/pixie/handlers"
)

// Tests of client authentication at the token, revocation and
// introspection endpoints: its timing does not tell which client IDs
// exist, and failures are throttled per client and per address
// (handlers.Config.ClientAuthBackoff).

// clientEndpoints are the endpoints where a client authenticates, each with
// a form that is valid but for the client: an answer other than
// invalid_client means the client authenticated.
var clientEndpoints = []struct {
	name, path string
	form       url.Values
}{
	{"token", handlers.PathToken, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"no-such-token"}}},
	{"revoke", handlers.PathRevoke, url.Values{"token": {"no-such-token"}}},
	{"introspect", handlers.PathIntrospect, url.Values{"token": {"no-such-token"}}},
}

// postAsClient posts form to path authenticating with HTTP Basic as id with
// secret, from addr.
func postAsClient(t *testing.T, ts *testServer, path string, form url.Values, id, secret, addr string) *httpResult {
	t.Helper()
	h := http.Header{}
	h.Set("Authorization", basicAuth(id, secret))
	h.Set(clientIPHeader, addr)
	return ts.postForm(t, path, form, h)
}

// TestClientAuthTiming: an unknown client ID presented with a secret is
// refused in about the time a known confidential client with a wrong secret
// is (an argon2id check), at every endpoint where clients authenticate.
// Medians of several requests, compared within a generous factor: without
// the dummy check an unknown client answers some 40 times faster.
func TestClientAuthTiming(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, serverOptions{Handlers: &handlers.Config{
		ClientAuthBackoff: handlers.Backoff{FreeFailures: 1000, PerName: 1000, PerAddress: 1000},
	}})
	const rounds = 7
	median := func(ds []time.Duration) time.Duration {
		slices.Sort(ds)
		return ds[len(ds)/2]
	}
	for _, ep := range clientEndpoints {
		t.Run(ep.name, func(t *testing.T) {
			var unknown, wrong []time.Duration
			timed := func(id string) time.Duration {
				start := time.Now()
				res := postAsClient(t, ts, ep.path, ep.form, id, "a wrong secret", "192.0.2.1")
				d := time.Since(start)
				if res.Status != http.StatusUnauthorized || res.JSON(t)["error"] != "invalid_client" {
					t.Fatalf("client %s: got status %d, body %s; want 401 invalid_client", id, res.Status, res.Body)
				}
				return d
			}
			for range rounds {
				unknown = append(unknown, timed("no-such-client"))
				wrong = append(wrong, timed(webClient))
			}
			mu, mw := median(unknown), median(wrong)
			t.Logf("median refusal: unknown client %v, wrong secret %v", mu, mw)
			if mu*5 < mw {
				t.Errorf("an unknown client is refused in %v, a wrong secret in %v: more than 5 times faster", mu, mw)
			}
		})
	}
}

// TestClientAuthWithoutSecret: a confidential client that presents no
// secret is refused, as an unknown client is, and without a secret check
// (fosite would check the empty secret against the client's hash): no
// request without a secret is an unthrottled way to spend the server's CPU,
// and none tells by its time whether the client exists. The check is that
// the refusal is several times faster than that of a wrong secret (medians,
// a generous factor).
func TestClientAuthWithoutSecret(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, serverOptions{Handlers: &handlers.Config{
		ClientAuthBackoff: handlers.Backoff{FreeFailures: 1000, PerName: 1000, PerAddress: 1000},
	}})
	form := func(id string) url.Values {
		return url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"no-such-token"}, "client_id": {id}}
	}
	refused := func(res *httpResult, what string) {
		t.Helper()
		if res.Status != http.StatusUnauthorized || res.JSON(t)["error"] != "invalid_client" {
			t.Fatalf("%s: got status %d, body %s; want 401 invalid_client", what, res.Status, res.Body)
		}
	}
	const rounds = 7
	var none, wrong []time.Duration
	for range rounds {
		for _, id := range []string{webClient, "no-such-client"} {
			start := time.Now()
			refused(ts.postForm(t, handlers.PathToken, form(id), nil), id+" without a secret")
			if id == webClient {
				none = append(none, time.Since(start))
			}
		}
		start := time.Now()
		refused(postAsClient(t, ts, handlers.PathToken, form(webClient), webClient, "a wrong secret", "192.0.2.1"), "wrong secret")
		wrong = append(wrong, time.Since(start))
	}
	slices.Sort(none)
	slices.Sort(wrong)
	mn, mw := none[rounds/2], wrong[rounds/2]
	t.Logf("median refusal: no secret %v, wrong secret %v", mn, mw)
	if mn*3 > mw {
		t.Errorf("a confidential client without a secret is refused in %v, with a wrong one in %v: want no secret check", mn, mw)
	}
}

// wantClientThrottled checks a 429 with Retry-After and an OAuth error body.
func wantClientThrottled(t *testing.T, res *httpResult, retryAfter int) {
	t.Helper()
	if res.Status != http.StatusTooManyRequests {
		t.Fatalf("got status %d, body %s; want 429", res.Status, res.Body)
	}
	if got := res.Header.Get("Retry-After"); got != strconv.Itoa(retryAfter) {
		t.Errorf("got Retry-After %q, want %d", got, retryAfter)
	}
	body := res.JSON(t)
	if body["error"] != "temporarily_unavailable" || body["error_description"] == "" {
		t.Errorf("got body %s, want error temporarily_unavailable with a description", res.Body)
	}
	if cc := res.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("got Cache-Control %q, want no-store", cc)
	}
}

// TestClientAuthBackoff: after FreeFailures wrong secrets of a client from
// an address, its attempts from there are refused with 429 and Retry-After
// without checking the secret, even the right one; another address is not
// held up; once the wait has passed the right secret works and clears the
// backoff. Unknown client IDs count alike.
func TestClientAuthBackoff(t *testing.T) {
	t.Parallel()
	for _, ep := range clientEndpoints {
		t.Run(ep.name, func(t *testing.T) {
			t.Parallel()
			clock := &testClock{}
			ts := newTestServer(t, serverOptions{Now: clock.Now, Handlers: &handlers.Config{
				ClientAuthBackoff: handlers.Backoff{FreeFailures: 2, Delay: time.Minute, PerName: 1000, PerAddress: 1000},
				ClientIP:          clientIPFromHeader,
			}})
			start := t0()
			clock.Freeze(start)
			const attacker, server = "192.0.2.66", "198.51.100.1"
			authenticated := func(res *httpResult) {
				t.Helper()
				if res.Status == http.StatusUnauthorized || res.Status == http.StatusTooManyRequests {
					t.Fatalf("with the right secret: got status %d, body %s; want the client authenticated", res.Status, res.Body)
				}
			}
			for _, id := range []string{apiClient, "no-such-client"} {
				for range 2 {
					res := postAsClient(t, ts, ep.path, ep.form, id, "a wrong secret", attacker)
					if res.Status != http.StatusUnauthorized {
						t.Fatalf("%s, wrong secret: got status %d, body %s; want 401", id, res.Status, res.Body)
					}
				}
				wantClientThrottled(t, postAsClient(t, ts, ep.path, ep.form, id, apiSecret, attacker), 60)
			}
			// The client's own address is not held up.
			authenticated(postAsClient(t, ts, ep.path, ep.form, apiClient, apiSecret, server))
			clock.Freeze(start.Add(59 * time.Second))
			wantClientThrottled(t, postAsClient(t, ts, ep.path, ep.form, apiClient, apiSecret, attacker), 1)
			clock.Freeze(start.Add(time.Minute))
			authenticated(postAsClient(t, ts, ep.path, ep.form, apiClient, apiSecret, attacker))
			if ep.path == handlers.PathToken {
				return // invalid_grant: only a token answered clears the backoff
			}
			// The success cleared the backoff: two free failures again.
			for range 2 {
				if res := postAsClient(t, ts, ep.path, ep.form, apiClient, "a wrong secret", attacker); res.Status != http.StatusUnauthorized {
					t.Fatalf("after the success, wrong secret: got status %d; want 401", res.Status)
				}
			}
			wantClientThrottled(t, postAsClient(t, ts, ep.path, ep.form, apiClient, apiSecret, attacker), 60)
		})
	}
}

// TestClientAuthBudgets: PerName failures of one client from any addresses
// throttle it everywhere until the window ends, and PerAddress failures from
// one address, whatever the clients, throttle the address.
func TestClientAuthBudgets(t *testing.T) {
	t.Parallel()
	clock := &testClock{}
	ts := newTestServer(t, serverOptions{Now: clock.Now, Handlers: &handlers.Config{
		ClientAuthBackoff: handlers.Backoff{FreeFailures: 1000, PerName: 3, PerAddress: 4, Window: time.Hour},
		ClientIP:          clientIPFromHeader,
	}})
	start := t0()
	clock.Freeze(start)
	ep := clientEndpoints[2] // introspect
	for i := range 3 {
		postAsClient(t, ts, ep.path, ep.form, webClient, "wrong", "192.0.2."+strconv.Itoa(i+1))
	}
	clock.Freeze(start.Add(15 * time.Minute))
	wantClientThrottled(t, postAsClient(t, ts, ep.path, ep.form, webClient, apiSecret, "203.0.113.5"), 45*60)
	if res := postAsClient(t, ts, ep.path, ep.form, apiClient, apiSecret, "203.0.113.5"); res.Status != http.StatusOK {
		t.Errorf("another client: got status %d, body %s; want 200", res.Status, res.Body)
	}

	// Four failures from one address, each for another client.
	for i := range 4 {
		postAsClient(t, ts, ep.path, ep.form, "client-"+strconv.Itoa(i), "wrong", "198.51.100.9")
	}
	wantClientThrottled(t, postAsClient(t, ts, ep.path, ep.form, apiClient, apiSecret, "198.51.100.9"), 3600)
	if res := postAsClient(t, ts, ep.path, ep.form, apiClient, apiSecret, "198.51.100.10"); res.Status != http.StatusOK {
		t.Errorf("another address: got status %d, body %s; want 200", res.Status, res.Body)
	}
	clock.Freeze(start.Add(time.Hour + 15*time.Minute))
	if res := postAsClient(t, ts, ep.path, ep.form, webClient, apiSecret, "198.51.100.9"); res.Status != http.StatusUnauthorized {
		// webClient may not introspect, but it authenticated: 401 all the same.
		t.Logf("after the window: status %d", res.Status)
	}
	if res := postAsClient(t, ts, ep.path, ep.form, apiClient, apiSecret, "198.51.100.9"); res.Status != http.StatusOK {
		t.Errorf("after the window: got status %d, body %s; want 200", res.Status, res.Body)
	}
}
