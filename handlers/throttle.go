package handlers

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/pixieauth/pixie/store"
)

// Defaults of [Backoff], for logins ([Config.LoginBackoff]) and client
// authentication ([Config.ClientAuthBackoff]) alike unless named for one.
const (
	defaultFreeFailures          = 5
	defaultBackoffDelay          = time.Second
	defaultMaxBackoffDelay       = 15 * time.Minute
	defaultLoginFailuresPerName  = 100  // per username
	defaultClientFailuresPerName = 1000 // per client ID
	defaultFailuresPerAddress    = 100
	defaultFailureWindow         = time.Hour
)

// knownAddressWindow is how long an address from which a user logged in
// stays exempt, for that user, from the PerName and PerAddress budgets.
const knownAddressWindow = 30 * 24 * time.Hour

// addressConcurrency is how many password checks from one address a server
// runs at once; a username's are run one at a time.
const addressConcurrency = 4

// Backoff throttles failed attempts (wrong passwords, wrong client secrets)
// without giving an attacker a switch that locks the owner out. It counts
// failures three ways, each in a window of Window that opens with the
// first failure it counts:
//
//   - per name (username or client ID) and address: FreeFailures failures
//     cost nothing; after that each attempt waits, from the latest failure,
//     Delay, then twice as long after each further failure, up to MaxDelay;
//   - per name, from all addresses: after PerName failures, attempts for
//     the name wait until the window ends;
//   - per address, for all names: after PerAddress failures, attempts from
//     the address wait until the window ends.
//
// For logins, the two budgets do not apply to a username from an address
// it has logged in from in the last 30 days: they hold up strangers, not
// the user at home or at the office. An attempt that must wait is refused
// before the password or secret is checked, with 429 and Retry-After. A
// right password or secret never counts as a failure; a login, or a client
// answered with 200, clears the backoff of its name and address. A field
// left zero takes its default.
type Backoff struct {
	// FreeFailures is how many failures one name may have from one address
	// before attempts wait. Default 5.
	FreeFailures int
	// Delay is the first wait, doubled by each further failure. Default
	// 1 second; at least a millisecond.
	Delay time.Duration
	// MaxDelay caps the wait. Default 15 minutes; not less
	// than Delay.
	MaxDelay time.Duration
	// PerName is how many failures one name may have from all addresses in
	// a window. Default 100 for logins, 1000 for clients.
	PerName int
	// PerAddress is how many failures one address may have for all names in
	// a window. Default 100.
	PerAddress int
	// Window is how long failures are counted. Default
	// 1 hour; at least a second.
	Window time.Duration
}

// withDefaults fills the zero fields and validates; field names the Config
// field in errors.
func (b Backoff) withDefaults(field string, perName int) (Backoff, error) {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	def(&b.FreeFailures, defaultFreeFailures)
	def(&b.PerName, perName)
	def(&b.PerAddress, defaultFailuresPerAddress)
	defDur(&b.Delay, defaultBackoffDelay)
	defDur(&b.MaxDelay, defaultMaxBackoffDelay)
	defDur(&b.Window, defaultFailureWindow)
	switch {
	case b.FreeFailures < 0:
		return b, fmt.Errorf("handlers: Config.%s.FreeFailures %d is negative", field, b.FreeFailures)
	case b.PerName < 0:
		return b, fmt.Errorf("handlers: Config.%s.PerName %d is negative", field, b.PerName)
	case b.PerAddress < 0:
		return b, fmt.Errorf("handlers: Config.%s.PerAddress %d is negative", field, b.PerAddress)
	case b.Delay < time.Millisecond:
		return b, fmt.Errorf("handlers: Config.%s.Delay %v is shorter than a millisecond", field, b.Delay)
	case b.MaxDelay < b.Delay:
		return b, fmt.Errorf("handlers: Config.%s.MaxDelay %v is shorter than Delay %v", field, b.MaxDelay, b.Delay)
	case b.Window < time.Second:
		return b, fmt.Errorf("handlers: Config.%s.Window %v is shorter than a second", field, b.Window)
	}
	return b, nil
}

// delay is the wait after the k-th failure beyond the free ones (k >= 1).
func (b Backoff) delay(k int) time.Duration {
	d := b.Delay
	for i := 1; i < k && d < b.MaxDelay; i++ {
		if d > b.MaxDelay/2 {
			return b.MaxDelay // and no overflow
		}
		d *= 2
	}
	return min(d, b.MaxDelay)
}

// limiter applies a Backoff to one kind of attempt.
type limiter struct {
	st    store.Throttle
	b     Backoff
	kind  string // key prefix: "l" logins, "c" clients
	key   []byte // HMAC key of the throttle keys
	now   func() time.Time
	known bool // exempt a name from the budgets where it succeeded before
	// names and addrs run the attempts of one name one at a time, and of
	// one address addressConcurrency at a time, on this server, so that a
	// burst of concurrent guesses cannot all pass one check before any
	// failure is counted. Nil: not serialized (clients).
	names, addrs *keyedSemaphore
}

// attempt is one attempt's throttle keys and what check read.
type attempt struct {
	pair, name, addr, known string
	pairHits                store.Hits
}

// attempt returns the keys of an attempt by name from addr: digests keyed
// with a secret every replica derives alike, so that the throttle store
// holds neither names nor addresses, nor digests that a dictionary reverses.
func (l *limiter) attempt(name, addr string) *attempt {
	digest := func(part string, fields ...string) string {
		m := hmac.New(sha256.New, l.key)
		for _, f := range fields {
			m.Write([]byte(strconv.Itoa(len(f)) + ":" + f))
		}
		return l.kind + part + ":" + base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:18])
	}
	return &attempt{
		pair:  digest("p", name, addr),
		name:  digest("n", name),
		addr:  digest("a", addr),
		known: digest("k", name, addr),
	}
}

// admit decides whether the attempt may be made now, returning how long
// it must wait otherwise. When wait is 0 and err nil the attempt holds its
// turn (see limiter.names) until the caller calls release, after recording
// the outcome; release is never nil. A throttled attempt is answered
// without waiting its turn, so that a flood of them does not hold up the
// others.
func (l *limiter) admit(ctx context.Context, a *attempt) (wait time.Duration, release func(), err error) {
	release = func() {}
	if wait, err = l.check(ctx, a); err != nil || wait > 0 || l.names == nil {
		return wait, release, err
	}
	unlockName, err := l.names.acquire(ctx, a.name)
	if err != nil {
		return 0, release, err
	}
	unlockAddr, err := l.addrs.acquire(ctx, a.addr)
	if err != nil {
		unlockName()
		return 0, release, err
	}
	// Checked again: the failures of the attempts before this one count.
	if wait, err = l.check(ctx, a); err != nil || wait > 0 {
		unlockAddr()
		unlockName()
		return wait, release, err
	}
	return 0, func() { unlockAddr(); unlockName() }, nil
}

// check returns how long the attempt must wait before it may be made: 0 if
// it may be made now.
func (l *limiter) check(ctx context.Context, a *attempt) (time.Duration, error) {
	now := l.now()
	var until time.Time
	later := func(t time.Time) {
		if t.After(until) {
			until = t
		}
	}
	pair, err := l.st.Hits(ctx, a.pair, now)
	if err != nil {
		return 0, err
	}
	a.pairHits = pair
	if pair.Count >= l.b.FreeFailures {
		t := pair.Last.Add(l.b.delay(pair.Count - l.b.FreeFailures + 1))
		if t.After(pair.Expires) {
			t = pair.Expires // a new window starts afresh
		}
		later(t)
	}
	addr, err := l.st.Hits(ctx, a.addr, now)
	if err != nil {
		return 0, err
	}
	name, err := l.st.Hits(ctx, a.name, now)
	if err != nil {
		return 0, err
	}
	overAddr, overName := addr.Count >= l.b.PerAddress, name.Count >= l.b.PerName
	if (overAddr || overName) && l.known {
		// The budgets hold up strangers, not the user where they have
		// logged in before.
		k, err := l.st.Hits(ctx, a.known, now)
		if err != nil {
			return 0, err
		}
		if k.Count > 0 {
			overAddr, overName = false, false
		}
	}
	if overAddr {
		later(addr.Expires)
	}
	if overName {
		later(name.Expires)
	}
	return max(until.Sub(now), 0), nil
}

// failed counts a failed attempt: against the name from the address, the
// name, and the address.
func (l *limiter) failed(ctx context.Context, a *attempt) error {
	now := l.now()
	for _, k := range []string{a.pair, a.name, a.addr} {
		if _, err := l.st.AddHit(ctx, k, now, l.b.Window); err != nil {
			return err
		}
	}
	return nil
}

// succeeded clears the backoff of the name from the address and, for
// logins, remembers the address as one the user logs in from.
func (l *limiter) succeeded(ctx context.Context, a *attempt) error {
	if a.pairHits.Count > 0 {
		if err := l.st.ResetHits(ctx, a.pair); err != nil {
			return err
		}
	}
	if l.known {
		if _, err := l.st.AddHit(ctx, a.known, l.now(), knownAddressWindow); err != nil {
			return err
		}
	}
	return nil
}

// retryAfter sets Retry-After (RFC 9110 §10.2.3) to wait in whole seconds,
// rounded up, and returns them.
func retryAfter(w http.ResponseWriter, wait time.Duration) int {
	secs := int((wait + time.Second - 1) / time.Second)
	secs = max(secs, 1)
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	return secs
}

// waitText says how long secs seconds is, for a person.
func waitText(secs int) string {
	n, unit := secs, "second"
	if secs >= 60 {
		n, unit = (secs+59)/60, "minute"
	}
	if n == 1 {
		return "1 " + unit
	}
	return strconv.Itoa(n) + " " + unit + "s"
}

// keyedSemaphore lets at most size holders per key at once. It holds an
// entry only while a key has holders or waiters.
type keyedSemaphore struct {
	size int
	mu   sync.Mutex
	held map[string]*semaphore
}

type semaphore struct {
	slots chan struct{}
	refs  int // holders and waiters
}

func newKeyedSemaphore(size int) *keyedSemaphore {
	return &keyedSemaphore{size: size, held: make(map[string]*semaphore)}
}

// acquire waits for a slot of key, or for ctx to end. The caller must call
// the returned function to give the slot back.
func (k *keyedSemaphore) acquire(ctx context.Context, key string) (func(), error) {
	k.mu.Lock()
	s := k.held[key]
	if s == nil {
		s = &semaphore{slots: make(chan struct{}, k.size)}
		k.held[key] = s
	}
	s.refs++
	k.mu.Unlock()
	select {
	case s.slots <- struct{}{}:
		return func() {
			<-s.slots
			k.unref(key, s)
		}, nil
	case <-ctx.Done():
		k.unref(key, s)
		return nil, ctx.Err()
	}
}

func (k *keyedSemaphore) unref(key string, s *semaphore) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if s.refs--; s.refs == 0 {
		delete(k.held, key)
	}
}

// remoteIP is the client address of a direct connection. Behind a proxy,
// set Config.ClientIP to read the address the proxy forwards.
func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
