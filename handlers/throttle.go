package handlers

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/pixieauth/pixie/store"
)

// Brute-force defaults: failed logins allowed per window before the login
// form refuses to check passwords for that username or address until the
// window ends.
const (
	DefaultLoginFailuresPerUser = 5
	DefaultLoginFailuresPerIP   = 50
	DefaultLoginFailureWindow   = 15 * time.Minute
)

// throttle applies the login failure budget.
type throttle struct {
	st      store.Throttle
	perUser int
	perIP   int
	window  time.Duration
	now     func() time.Time
	ip      func(*http.Request) string
}

// keys returns the throttle keys of a login attempt: digests, so that the
// throttle store holds neither usernames nor addresses.
func (t *throttle) keys(r *http.Request, username string) (user, ip string) {
	digest := func(s string) string {
		sum := sha256.Sum256([]byte(s))
		return base64.RawURLEncoding.EncodeToString(sum[:])
	}
	return "user:" + digest(strings.ToLower(username)), "ip:" + digest(t.ip(r))
}

// admit decides whether a login attempt may have its password checked. It
// counts the attempt against the username first, atomically, so that
// concurrent guesses cannot get more checks than the budget (a success
// forgets the count); then it checks the address's failures.
func (t *throttle) admit(ctx context.Context, userKey, ipKey string) (bool, error) {
	now := t.now()
	n, err := t.st.AddFailure(ctx, userKey, now, t.window)
	if err != nil || n > t.perUser {
		return false, err
	}
	n, err = t.st.Failures(ctx, ipKey, now, t.window)
	return err == nil && n < t.perIP, err
}

// failed records a failed attempt against the address (the username's
// count already holds it).
func (t *throttle) failed(ctx context.Context, ipKey string) error {
	_, err := t.st.AddFailure(ctx, ipKey, t.now(), t.window)
	return err
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
