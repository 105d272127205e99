// Package storetimeout bounds every call pixie makes to a store with a
// per-operation timeout (provider.Config.StoreTimeout), so that a database
// that hangs makes requests fail quickly as the server's fault instead of
// holding them, and their goroutines, for as long as it hangs.
//
// The bound travels in the context: a store honours it as database/sql and
// its drivers do, by giving up when the context is done. Each wrapper here
// is one line per method around [Call]; a new store interface gets its own
// wrapper the same way, and its owner wraps it where it is configured.
package storetimeout

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"sync/atomic"
	"time"

	"github.com/pixieauth/pixie/internal/telemetry"
	"github.com/pixieauth/pixie/store"
)

// Error is a store call that did not finish within its timeout. It wraps
// the store's own error and [context.DeadlineExceeded].
type Error struct {
	Op      string        // the store method, e.g. "Grants.Consume"
	Timeout time.Duration // the bound it exceeded
	err     error         // what the store returned
}

func (e *Error) Error() string {
	return fmt.Sprintf("store: %s did not finish within %v: %v", e.Op, e.Timeout, e.err)
}

// Unwrap returns the store's error and context.DeadlineExceeded.
func (e *Error) Unwrap() []error { return []error{e.err, context.DeadlineExceeded} }

// Is reports whether err is, or wraps, a store call that timed out.
func Is(err error) bool {
	var e *Error
	return errors.As(err, &e)
}

// Call runs f with ctx bounded by d (no bound when d <= 0). An error that f
// returns once the bounded context's deadline has passed is reported as an
// [*Error]: whoever set the deadline (this call, an enclosing transaction,
// the HTTP server), the store was too slow.
func Call(ctx context.Context, d time.Duration, op string, f func(context.Context) error) error {
	_, err := Value(ctx, d, op, func(ctx context.Context) (struct{}, error) { return struct{}{}, f(ctx) })
	return err
}

// Value is [Call] for a function that returns a value.
func Value[T any](ctx context.Context, d time.Duration, op string, f func(context.Context) (T, error)) (T, error) {
	if skip(ctx) {
		var zero T
		return zero, &Error{Op: op, Timeout: d, err: errEarlier}
	}
	ctx, call := telemetry.StartStore(ctx, op)
	if d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	v, err := f(ctx)
	err = classify(ctx, op, d, err)
	call.End(ctx, outcome(err))
	return v, err
}

// outcome names the outcome of a store call for its span and the latency
// histogram (see internal/telemetry).
func outcome(err error) string {
	switch {
	case err == nil:
		return telemetry.StoreOK
	case errors.Is(err, store.ErrNotFound):
		return telemetry.StoreNotFound
	case errors.Is(err, store.ErrConsumed):
		return telemetry.StoreConsumed
	case errors.Is(err, store.ErrInvalidCredentials):
		return telemetry.StoreRefused
	case Is(err):
		return telemetry.StoreTimeout
	}
	return telemetry.StoreError
}

// skip reports whether an earlier store call of ctx's request timed out
// (see PerRequest).
func skip(ctx context.Context) bool {
	timedOut, _ := ctx.Value(requestKey{}).(*atomic.Bool)
	return timedOut != nil && timedOut.Load()
}

// classify returns err as an *Error if the call failed past ctx's
// deadline, and records a timeout for the request (see PerRequest).
func classify(ctx context.Context, op string, d time.Duration, err error) error {
	if err == nil {
		return nil
	}
	if !Is(err) && pastDeadline(ctx) {
		err = &Error{Op: op, Timeout: d, err: err}
	}
	if timedOut, _ := ctx.Value(requestKey{}).(*atomic.Bool); timedOut != nil && Is(err) {
		timedOut.Store(true)
	}
	return err
}

// pastDeadline reports whether ctx's deadline has passed. A driver may fail
// on its own deadline (pgx sets it on the socket) a moment before the
// context's timer fires, so ctx.Err() alone would miss it.
func pastDeadline(ctx context.Context) bool {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return true
	}
	dl, ok := ctx.Deadline()
	return ok && !time.Now().Before(dl)
}

// errEarlier is the error of a store call skipped by [PerRequest].
var errEarlier = errors.New("an earlier store call of this request timed out")

// requestKey is the context key of a request's flag: one of its store calls
// timed out.
type requestKey struct{}

// PerRequest gives every request h serves a budget of one timeout: once a
// store call made with the request's context has timed out, its later store
// calls fail at once with an [*Error] instead of waiting out their own
// timeouts. A request that makes several store calls (a fallback after a
// failed lookup, a page that looks the client up before the user) then
// answers within about one timeout of a hung database, not several.
func PerRequest(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r.WithContext(Request(r.Context())))
	})
}

// Request returns ctx with the budget [PerRequest] gives a request, for a
// handler that makes the request's context itself.
func Request(ctx context.Context) context.Context {
	return context.WithValue(ctx, requestKey{}, new(atomic.Bool))
}

// Clients bounds every call to c by d.
func Clients(c store.Clients, d time.Duration) store.Clients { return clients{c, d} }

type clients struct {
	c store.Clients
	d time.Duration
}

func (b clients) Client(ctx context.Context, id string) (*store.Client, error) {
	return Value(ctx, b.d, "Clients.Client", func(ctx context.Context) (*store.Client, error) { return b.c.Client(ctx, id) })
}

// Users bounds every call to u by d.
func Users(u store.Users, d time.Duration) store.Users { return users{u, d} }

type users struct {
	u store.Users
	d time.Duration
}

func (b users) Authenticate(ctx context.Context, username, password string) (string, error) {
	return Value(ctx, b.d, "Users.Authenticate", func(ctx context.Context) (string, error) { return b.u.Authenticate(ctx, username, password) })
}

func (b users) User(ctx context.Context, subject string) (*store.User, error) {
	return Value(ctx, b.d, "Users.User", func(ctx context.Context) (*store.User, error) { return b.u.User(ctx, subject) })
}

// Keys bounds every call to k by d.
func Keys(k store.Keys, d time.Duration) store.Keys { return keys{k, d} }

type keys struct {
	k store.Keys
	d time.Duration
}

func (b keys) Keys(ctx context.Context) ([]store.Key, error) {
	return Value(ctx, b.d, "Keys.Keys", b.k.Keys)
}

func (b keys) AddKey(ctx context.Context, k store.Key) error {
	return Call(ctx, b.d, "Keys.AddKey", func(ctx context.Context) error { return b.k.AddKey(ctx, k) })
}

// Grants bounds every call to g by d. When g is a [store.Transactor], so is
// the result, and a transaction is bounded by d as a whole, from BeginTx to
// Commit or Rollback, besides each call in it. When g is a [store.Batcher],
// so is the result, and each ApplyGrants is bounded by d. Optional
// capabilities other than these two (store.ExpiredDeleter) are not passed
// on: reach them on g.
func Grants(g store.Grants, d time.Duration) store.Grants {
	b := grants{g, d}
	tx, isTx := g.(store.Transactor)
	bt, isBatcher := g.(store.Batcher)
	switch {
	case isTx && isBatcher:
		return txBatchGrants{txGrants{b, tx}, batcher{bt, d}}
	case isTx:
		return txGrants{b, tx}
	case isBatcher:
		return batchGrants{b, batcher{bt, d}}
	}
	return b
}

type grants struct {
	g store.Grants
	d time.Duration
}

func (b grants) CreateGrant(ctx context.Context, g *store.Grant) error {
	return Call(ctx, b.d, "Grants.CreateGrant", func(ctx context.Context) error { return b.g.CreateGrant(ctx, g) })
}

func (b grants) Grant(ctx context.Context, kind store.Kind, signature string) (*store.Grant, error) {
	return Value(ctx, b.d, "Grants.Grant", func(ctx context.Context) (*store.Grant, error) { return b.g.Grant(ctx, kind, signature) })
}

func (b grants) Consume(ctx context.Context, kind store.Kind, signature string) error {
	return Call(ctx, b.d, "Grants.Consume", func(ctx context.Context) error { return b.g.Consume(ctx, kind, signature) })
}

func (b grants) Delete(ctx context.Context, kind store.Kind, signature string) error {
	return Call(ctx, b.d, "Grants.Delete", func(ctx context.Context) error { return b.g.Delete(ctx, kind, signature) })
}

func (b grants) Revoke(ctx context.Context, kind store.Kind, requestID string) error {
	return Call(ctx, b.d, "Grants.Revoke", func(ctx context.Context) error { return b.g.Revoke(ctx, kind, requestID) })
}

type txGrants struct {
	grants
	tx store.Transactor
}

// batcher bounds ApplyGrants by d.
type batcher struct {
	bt store.Batcher
	d  time.Duration
}

func (b batcher) ApplyGrants(ctx context.Context, gb *store.GrantBatch) error {
	return Call(ctx, b.d, "Batcher.ApplyGrants", func(ctx context.Context) error { return b.bt.ApplyGrants(ctx, gb) })
}

// batchGrants is grants over a store.Batcher.
type batchGrants struct {
	grants
	batcher
}

// txBatchGrants is grants over a store that is both a store.Transactor and
// a store.Batcher.
type txBatchGrants struct {
	txGrants
	batcher
}

// txCancel is the context key of the function that releases a
// transaction's deadline.
type txCancel struct{}

func (b txGrants) BeginTx(ctx context.Context) (context.Context, error) {
	if skip(ctx) {
		return ctx, &Error{Op: "Transactor.BeginTx", Timeout: b.d, err: errEarlier}
	}
	bounded, cancel := ctx, context.CancelFunc(func() {})
	if b.d > 0 {
		bounded, cancel = context.WithTimeout(ctx, b.d)
	}
	txCtx, err := b.tx.BeginTx(bounded)
	if err != nil {
		defer cancel()
		return ctx, classify(bounded, "Transactor.BeginTx", b.d, err)
	}
	return context.WithValue(txCtx, txCancel{}, cancel), nil
}

// Commit releases the transaction's deadline once it committed; after a
// failed commit the caller rolls back, which releases it.
func (b txGrants) Commit(ctx context.Context) error {
	err := b.tx.Commit(ctx)
	if err == nil {
		release(ctx)
	}
	return classify(ctx, "Transactor.Commit", b.d, err)
}

func (b txGrants) Rollback(ctx context.Context) error {
	defer release(ctx)
	return b.tx.Rollback(ctx)
}

// release ends the deadline of the transaction ctx carries.
func release(ctx context.Context) {
	if cancel, ok := ctx.Value(txCancel{}).(context.CancelFunc); ok {
		cancel()
	}
}

// Consents bounds every call to c by d.
func Consents(c store.Consents, d time.Duration) store.Consents { return consents{c, d} }

type consents struct {
	c store.Consents
	d time.Duration
}

func (b consents) Consent(ctx context.Context, subject, clientID, audience string) (*store.Consent, error) {
	return Value(ctx, b.d, "Consents.Consent", func(ctx context.Context) (*store.Consent, error) {
		return b.c.Consent(ctx, subject, clientID, audience)
	})
}

func (b consents) SaveConsent(ctx context.Context, c *store.Consent) error {
	return Call(ctx, b.d, "Consents.SaveConsent", func(ctx context.Context) error { return b.c.SaveConsent(ctx, c) })
}

// Throttle bounds every call to t by d.
func Throttle(t store.Throttle, d time.Duration) store.Throttle { return throttle{t, d} }

type throttle struct {
	t store.Throttle
	d time.Duration
}

func (b throttle) AddHit(ctx context.Context, key string, now time.Time, window time.Duration) (store.Hits, error) {
	return Value(ctx, b.d, "Throttle.AddHit", func(ctx context.Context) (store.Hits, error) { return b.t.AddHit(ctx, key, now, window) })
}

func (b throttle) Hits(ctx context.Context, key string, now time.Time) (store.Hits, error) {
	return Value(ctx, b.d, "Throttle.Hits", func(ctx context.Context) (store.Hits, error) { return b.t.Hits(ctx, key, now) })
}

func (b throttle) ResetHits(ctx context.Context, key string) error {
	return Call(ctx, b.d, "Throttle.ResetHits", func(ctx context.Context) error { return b.t.ResetHits(ctx, key) })
}

// Sessions bounds every call to s by d.
func Sessions(s store.Sessions, d time.Duration) store.Sessions { return sessions{s, d} }

type sessions struct {
	s store.Sessions
	d time.Duration
}

func (b sessions) CreateSession(ctx context.Context, s *store.Session) error {
	return Call(ctx, b.d, "Sessions.CreateSession", func(ctx context.Context) error { return b.s.CreateSession(ctx, s) })
}

func (b sessions) Session(ctx context.Context, id string) (*store.Session, error) {
	return Value(ctx, b.d, "Sessions.Session", func(ctx context.Context) (*store.Session, error) { return b.s.Session(ctx, id) })
}

func (b sessions) TouchSession(ctx context.Context, id string, at time.Time) error {
	return Call(ctx, b.d, "Sessions.TouchSession", func(ctx context.Context) error { return b.s.TouchSession(ctx, id, at) })
}

func (b sessions) RevokeSession(ctx context.Context, id string) error {
	return Call(ctx, b.d, "Sessions.RevokeSession", func(ctx context.Context) error { return b.s.RevokeSession(ctx, id) })
}

func (b sessions) RevokeSessions(ctx context.Context, subject string) error {
	return Call(ctx, b.d, "Sessions.RevokeSessions", func(ctx context.Context) error { return b.s.RevokeSessions(ctx, subject) })
}

// Ping pings, each bounded by d, those of stores that are [store.Pinger]s
// (seen through this package's wrappers), for readiness checks; the same
// store given twice is pinged once. It returns the first failure.
func Ping(ctx context.Context, d time.Duration, stores ...any) error {
	var seen []store.Pinger
	for _, s := range stores {
		p, ok := unwrap(s).(store.Pinger)
		if !ok || slices.ContainsFunc(seen, func(q store.Pinger) bool { return samePinger(p, q) }) {
			continue
		}
		seen = append(seen, p)
		if err := Call(ctx, d, "Pinger.Ping", p.Ping); err != nil {
			return err
		}
	}
	return nil
}

// samePinger reports whether p and q are the same store, without
// comparing values other than pointers (which could panic).
func samePinger(p, q store.Pinger) bool {
	if reflect.TypeOf(p) != reflect.TypeOf(q) || reflect.TypeOf(p).Kind() != reflect.Pointer {
		return false
	}
	return p == q
}

// unwrap returns the store one of this package's wrappers bounds.
func unwrap(s any) any {
	switch w := s.(type) {
	case clients:
		return w.c
	case users:
		return w.u
	case keys:
		return w.k
	case grants:
		return w.g
	case txGrants:
		return w.g
	case batchGrants:
		return w.g
	case txBatchGrants:
		return w.g
	case consents:
		return w.c
	case throttle:
		return w.t
	case sessions:
		return w.s
	}
	return s
}
