package handlers_test

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pixieauth/pixie/handlers"
	"github.com/pixieauth/pixie/store"
	"github.com/pixieauth/pixie/store/memory"
)

// Tests of the failed-login throttle (handlers.Config.LoginBackoff): the
// backoff per username and address, the budgets per username and per
// address, Retry-After, and that right passwords are never refused as
// failures.

// throttledMessage is the start of the login page's message for a refused
// attempt.
const throttledMessage = "Too many failed attempts. Try again in "

// throttleServer is a test server with a small failed-login budget, an
// injected clock, addresses taken from clientIPHeader, and counted password
// checks.
type throttleServer struct {
	*testServer
	clock  *testClock
	checks *countingUsers
}

// newThrottleServer starts a server whose login throttle is b. thr is the
// throttle store (nil: the handlers' default) and st the store to serve
// (nil: a fresh one).
func newThrottleServer(t *testing.T, b handlers.Backoff, thr store.Throttle, st *memory.Store) *throttleServer {
	t.Helper()
	ts := &throttleServer{clock: &testClock{}}
	ts.testServer = newTestServer(t, serverOptions{
		Now:   ts.clock.Now,
		Store: st,
		Users: func(u store.Users) store.Users { ts.checks = &countingUsers{Users: u}; return ts.checks },
		Handlers: &handlers.Config{
			Throttle:     thr,
			LoginBackoff: b,
			ClientIP:     clientIPFromHeader,
		},
	})
	return ts
}

// loginAttempt is one login form submitted by a fresh browser.
type loginAttempt struct {
	b      *browser
	ar     *authRequest
	p      *page // the answer to the form
	checks int64 // password checks the attempt caused
}

// tryLogin opens an authorization request for example-native from addr in
// a fresh browser and submits the login form with username and password.
func (ts *throttleServer) tryLogin(t *testing.T, addr, username, password string) *loginAttempt {
	t.Helper()
	b := newBrowser(t, ts.testServer).from(addr)
	ar := newAuthRequest(ts.oauth2Config(nativeClient, ts.loopbackRedirect(), "openid"))
	p := b.get(t, ar.URL)
	if !p.IsLogin() {
		t.Fatalf("got status %d at %s, want the login page", p.Status, p.URL)
	}
	before := ts.checks.n.Load()
	p = b.submitLogin(t, p, username, password)
	return &loginAttempt{b: b, ar: ar, p: p, checks: ts.checks.n.Load() - before}
}

// wantIncorrect checks that the attempt was refused as a wrong password,
// after one password check.
func (a *loginAttempt) wantIncorrect(t *testing.T) {
	t.Helper()
	if a.p.Status != http.StatusOK || a.p.Callback != nil {
		t.Fatalf("got status %d, Location %q; want 200 and the login page again", a.p.Status, a.p.Location)
	}
	if msg := a.b.parseLoginForm(t, a.p).Error; !strings.Contains(msg, "incorrect") {
		t.Errorf("got message %q, want the wrong-credentials one", msg)
	}
	if a.checks != 1 {
		t.Errorf("got %d password checks, want 1", a.checks)
	}
}

// wantThrottled checks that the attempt was refused with 429, Retry-After
// (retryAfter seconds, or any if 0) and the login page's throttle message
// naming the wait, without checking the password or starting a session.
func (a *loginAttempt) wantThrottled(t *testing.T, retryAfter int, wait string) {
	t.Helper()
	if a.p.Status != http.StatusTooManyRequests || a.p.Callback != nil {
		t.Fatalf("got status %d, Location %q; want 429 and the login page", a.p.Status, a.p.Location)
	}
	if a.p.URL.Path != handlers.PathLogin {
		t.Errorf("got page %s, want the login page", a.p.URL)
	}
	got, err := strconv.Atoi(a.p.Header.Get("Retry-After"))
	if err != nil || got < 1 || (retryAfter != 0 && got != retryAfter) {
		t.Errorf("got Retry-After %q, want %d seconds", a.p.Header.Get("Retry-After"), retryAfter)
	}
	if msg := a.b.parseLoginForm(t, a.p).Error; !strings.HasPrefix(msg, throttledMessage) || !strings.Contains(msg, wait) {
		t.Errorf("got message %q, want %q… naming %q", msg, throttledMessage, wait)
	}
	if a.checks != 0 {
		t.Errorf("got %d password checks, want none while throttled", a.checks)
	}
	// No session: the request still asks for the login.
	if p := a.b.get(t, a.ar.URL); !p.IsLogin() {
		t.Errorf("after the refused attempt: got status %d at %s, Location %q; want the login page (no session)", p.Status, p.URL, p.Location)
	}
}

// wantCode checks that the attempt logged the user in: the browser is sent
// back to the app with a code.
func (a *loginAttempt) wantCode(t *testing.T) {
	t.Helper()
	if a.p.Callback == nil {
		msg := ""
		if a.p.URL.Path == handlers.PathLogin {
			msg = a.b.parseForm(t, a.p).Error
		}
		t.Fatalf("got status %d at %s (message %q), want a redirect to the app with a code", a.p.Status, a.p.URL, msg)
	}
	if q := a.p.Callback.Query(); q.Get("code") == "" || q.Get("state") != a.ar.State {
		t.Errorf("got %s, want a code and state %q", a.p.Location, a.ar.State)
	}
}

// t0 is where the throttle tests freeze the clock: in the past, so that
// moving it on never runs it ahead of the wall clock (see testClock).
func t0() time.Time { return time.Now().Add(-24 * time.Hour).Truncate(time.Second) }

// TestLoginBackoff: the first failures of a username from an address cost
// nothing; then each attempt waits, the wait doubling with each failure up
// to its cap, with Retry-After and the page naming the wait; once it has
// passed the right password works, and clears the backoff. The backoff is
// the address's: the user logs in from another one meanwhile, so an
// attacker's guesses do not lock them out.
func TestLoginBackoff(t *testing.T) {
	t.Parallel()
	ts := newThrottleServer(t, handlers.Backoff{
		FreeFailures: 2,
		Delay:        time.Minute,
		MaxDelay:     4 * time.Minute,
		PerName:      1000,
		PerAddress:   1000,
	}, nil, nil)
	start := t0()
	const attacker, user = "192.0.2.66", "198.51.100.1"
	// Each step: the clock, who tries, with the right password or not, and
	// the answer: incorrect, a code, or throttled with that Retry-After.
	type want int
	const (
		incorrect want = iota
		code
		throttled
	)
	steps := []struct {
		at         time.Duration
		addr       string
		right      bool
		want       want
		retryAfter int
		wait       string
	}{
		{0, attacker, false, incorrect, 0, ""},
		{0, attacker, false, incorrect, 0, ""}, // the free ones
		{0, attacker, true, throttled, 60, "1 minute"},
		{59 * time.Second, attacker, true, throttled, 1, "1 second"},
		{59 * time.Second, user, true, code, 0, ""}, // another address is not held up
		{time.Minute, attacker, false, incorrect, 0, ""},
		{time.Minute, attacker, false, throttled, 120, "2 minutes"}, // doubled
		{3 * time.Minute, attacker, false, incorrect, 0, ""},
		{3 * time.Minute, attacker, true, throttled, 240, "4 minutes"},
		{7 * time.Minute, attacker, false, incorrect, 0, ""},
		{7 * time.Minute, attacker, true, throttled, 240, "4 minutes"}, // the cap
		{11 * time.Minute, attacker, true, code, 0, ""},                // the wait is over
		// The success cleared the backoff: free failures again.
		{11 * time.Minute, attacker, false, incorrect, 0, ""},
		{11 * time.Minute, attacker, false, incorrect, 0, ""},
		{11 * time.Minute, attacker, true, throttled, 60, "1 minute"},
	}
	for i, st := range steps {
		ts.clock.Freeze(start.Add(st.at))
		password := "wrong password"
		if st.right {
			password = alicePassword
		}
		a := ts.tryLogin(t, st.addr, aliceUsername, password)
		t.Logf("step %d: at %v from %s, right password %v: status %d", i, st.at, st.addr, st.right, a.p.Status)
		switch st.want {
		case incorrect:
			a.wantIncorrect(t)
		case code:
			a.wantCode(t)
		case throttled:
			a.wantThrottled(t, st.retryAfter, st.wait)
		}
	}
}

// TestLoginThrottlePerUsername: after PerName failures for a username from
// any number of addresses, attempts for it wait until the window ends, even
// with the right password, which is not checked; but not from an address
// the user has logged in from. Unknown usernames count alike, so the
// throttle does not reveal which exist, and usernames count without regard
// to case.
func TestLoginThrottlePerUsername(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// failAs is the username of the failed attempts; then tryAs tries
		// with alice's password.
		failAs, tryAs string
	}{
		{"known user", aliceUsername, aliceUsername},
		{"unknown user", "mallory", "mallory"},
		{"username case does not matter", strings.ToUpper(aliceUsername), aliceUsername},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			const perName = 3
			ts := newThrottleServer(t, handlers.Backoff{PerName: perName, PerAddress: 1000, Window: time.Hour}, nil, nil)
			start := t0()
			ts.clock.Freeze(start)
			// alice logs in from home.
			const home = "198.51.100.1"
			ts.tryLogin(t, home, aliceUsername, alicePassword).wantCode(t)
			for i := range perName {
				addr := "192.0.2." + strconv.Itoa(i+1)
				ts.tryLogin(t, addr, tt.failAs, "wrong password "+strconv.Itoa(i)).wantIncorrect(t)
			}
			ts.clock.Freeze(start.Add(20 * time.Minute))
			// The username waits for the window's end, whatever the
			// address, but alice's home is exempt.
			ts.tryLogin(t, "192.0.2.1", tt.tryAs, alicePassword).wantThrottled(t, 40*60, "40 minutes")
			ts.tryLogin(t, "203.0.113.9", tt.tryAs, alicePassword).wantThrottled(t, 40*60, "40 minutes")
			if tt.tryAs == aliceUsername {
				ts.tryLogin(t, home, aliceUsername, alicePassword).wantCode(t)
			} else {
				// Another user is not throttled.
				ts.tryLogin(t, "192.0.2.1", aliceUsername, alicePassword).wantCode(t)
			}
			// After the window, the username is free again.
			ts.clock.Freeze(start.Add(time.Hour))
			a := ts.tryLogin(t, "203.0.113.9", tt.tryAs, alicePassword)
			if tt.tryAs == aliceUsername {
				a.wantCode(t)
			} else {
				a.wantIncorrect(t)
			}
		})
	}
}

// countingThrottle counts the throttle keys written.
type countingThrottle struct {
	store.Throttle
	writes atomic.Int64
}

func (c *countingThrottle) AddHit(ctx context.Context, key string, now time.Time, window time.Duration) (store.Hits, error) {
	c.writes.Add(1)
	return c.Throttle.AddHit(ctx, key, now, window)
}

// TestLoginThrottlePerAddress: after PerAddress failures from one address,
// whatever the usernames, attempts from it wait until the window ends; they
// check no password and write nothing to the throttle store, so an address
// that tries ever new usernames does not grow it. Another address is not
// throttled, nor a user at an address they have logged in from before.
func TestLoginThrottlePerAddress(t *testing.T) {
	t.Parallel()
	const perAddress = 3
	thr := &countingThrottle{Throttle: memory.New()}
	ts := newThrottleServer(t, handlers.Backoff{PerName: 1000, PerAddress: perAddress, Window: time.Hour}, thr, nil)
	ts.clock.Freeze(t0())
	const office, cafe = "198.51.100.7", "203.0.113.7"
	ts.tryLogin(t, office, aliceUsername, alicePassword).wantCode(t)
	for _, addr := range []string{office, cafe} {
		for i := range perAddress {
			ts.tryLogin(t, addr, "guess"+strconv.Itoa(i), "wrong password").wantIncorrect(t)
		}
	}
	writes := thr.writes.Load()
	for i := range 20 {
		ts.tryLogin(t, cafe, "new-guess"+strconv.Itoa(i), "wrong password").wantThrottled(t, 3600, "60 minutes")
	}
	ts.tryLogin(t, office, "new-guess", "wrong password").wantThrottled(t, 3600, "60 minutes")
	ts.tryLogin(t, cafe, aliceUsername, alicePassword).wantThrottled(t, 3600, "60 minutes")
	if got := thr.writes.Load() - writes; got != 0 {
		t.Errorf("throttled attempts wrote %d throttle keys, want none", got)
	}
	// alice has logged in from the office before: the budget does not hold
	// her up there.
	ts.tryLogin(t, office, aliceUsername, alicePassword).wantCode(t)
	ts.tryLogin(t, "198.51.100.8", aliceUsername, alicePassword).wantCode(t)
}

// TestLoginThrottleSharedBetweenServers: two handler instances (two
// providers on one store, as two replicas) sharing one store.Throttle count
// failures together: failures on A and on B add up, and throttle on both.
func TestLoginThrottleSharedBetweenServers(t *testing.T) {
	t.Parallel()
	thr := memory.New()
	b := handlers.Backoff{FreeFailures: 2, Delay: time.Minute}
	srvA := newThrottleServer(t, b, thr, nil)
	srvB := newThrottleServer(t, b, thr, srvA.Store)
	at := t0()
	srvA.clock.Freeze(at)
	srvB.clock.Freeze(at)
	srvA.tryLogin(t, "192.0.2.1", aliceUsername, "wrong password").wantIncorrect(t)
	srvB.tryLogin(t, "192.0.2.1", aliceUsername, "wrong password").wantIncorrect(t)
	for name, srv := range map[string]*throttleServer{"A": srvA, "B": srvB} {
		t.Run(name, func(t *testing.T) {
			srv.tryLogin(t, "192.0.2.1", aliceUsername, alicePassword).wantThrottled(t, 60, "1 minute")
		})
	}
}

// postConcurrently opens the login form in n fresh browsers, fills each
// with username and password(i), then posts them all at once, and returns
// the statuses of the answers.
func postConcurrently(t *testing.T, ts *testServer, n int, username string, password func(i int) string) []int {
	t.Helper()
	conf := ts.oauth2Config(nativeClient, ts.loopbackRedirect(), "openid")
	type prepared struct {
		b *browser
		f *loginForm
	}
	forms := make([]prepared, n)
	for i := range forms {
		b := newBrowser(t, ts)
		p := b.get(t, newAuthRequest(conf).URL)
		if !p.IsLogin() {
			t.Fatalf("got status %d at %s, want the login page", p.Status, p.URL)
		}
		f := b.parseLoginForm(t, p)
		f.Fields.Set("username", username)
		f.Fields.Set("password", password(i))
		forms[i] = prepared{b.noFollow(), f}
	}
	statuses := make([]int, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, pf := range forms {
		wg.Go(func() {
			<-start
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, pf.f.Action, strings.NewReader(pf.f.Fields.Encode()))
			if err != nil {
				t.Error(err)
				return
			}
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Origin", ts.URL)
			resp, err := pf.b.client.Do(req)
			if err != nil {
				t.Errorf("post login form: %v", err)
				return
			}
			resp.Body.Close()
			statuses[i] = resp.StatusCode
		})
	}
	close(start)
	wg.Wait()
	return statuses
}

// TestLoginConcurrentRightPasswords: sixteen browsers logging in as one
// user at once from one address, all with the right password, all log in,
// with the default throttle: a right password never counts as a failure.
func TestLoginConcurrentRightPasswords(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, serverOptions{})
	statuses := postConcurrently(t, ts, 16, aliceUsername, func(int) string { return alicePassword })
	for i, st := range statuses {
		if st != http.StatusSeeOther {
			t.Errorf("login %d: got status %d, want 303 (logged in); all: %v", i, st, statuses)
		}
	}
}

// TestLoginConcurrentWrongPasswords: a burst of concurrent wrong guesses
// for one user from one address gets no more password checks than the free
// failures: the checks of one username run one at a time, each seeing the
// failures before it.
func TestLoginConcurrentWrongPasswords(t *testing.T) {
	t.Parallel()
	const attempts, free = 8, 3
	ts := newThrottleServer(t, handlers.Backoff{FreeFailures: free, Delay: time.Minute}, nil, nil)
	ts.clock.Freeze(t0())
	statuses := postConcurrently(t, ts.testServer, attempts, aliceUsername, func(i int) string { return "wrong password " + strconv.Itoa(i) })
	if got := ts.checks.n.Load(); got != free {
		t.Errorf("got %d password checks from %d concurrent attempts (statuses %v), want %d", got, attempts, statuses, free)
	}
	refused := 0
	for _, st := range statuses {
		if st == http.StatusTooManyRequests {
			refused++
		}
	}
	if refused != attempts-free {
		t.Errorf("got %d attempts refused with 429 (statuses %v), want %d", refused, statuses, attempts-free)
	}
}

// TestBackoffConfig: New refuses a Backoff that makes no sense, naming the
// field.
func TestBackoffConfig(t *testing.T) {
	t.Parallel()
	p := sharedServer(t).Provider
	tests := []struct {
		name  string
		cfg   handlers.Config
		field string
	}{
		{"negative free failures", handlers.Config{LoginBackoff: handlers.Backoff{FreeFailures: -1}}, "LoginBackoff.FreeFailures"},
		{"negative per name", handlers.Config{ClientAuthBackoff: handlers.Backoff{PerName: -1}}, "ClientAuthBackoff.PerName"},
		{"negative per address", handlers.Config{LoginBackoff: handlers.Backoff{PerAddress: -5}}, "LoginBackoff.PerAddress"},
		{"delay under a millisecond", handlers.Config{LoginBackoff: handlers.Backoff{Delay: time.Microsecond}}, "LoginBackoff.Delay"},
		{"max delay under delay", handlers.Config{LoginBackoff: handlers.Backoff{Delay: time.Hour}}, "LoginBackoff.MaxDelay"},
		{"window under a second", handlers.Config{ClientAuthBackoff: handlers.Backoff{Window: time.Millisecond}}, "ClientAuthBackoff.Window"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := handlers.New(p, tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.field) {
				t.Errorf("got error %v, want one naming %s", err, tt.field)
			}
		})
	}
}
