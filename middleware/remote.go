package middleware

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
)

const (
	// maxJWKSSize bounds a fetched JWK Set.
	maxJWKSSize = 1 << 20
	// fetchTimeout bounds one background JWKS fetch even with an
	// HTTPClient that has no timeout.
	fetchTimeout = 30 * time.Second
)

// remoteKeys is the key set at Config.JWKSURL: fetched at start, refetched
// every RefreshInterval by a goroutine of its own (refreshLoop), and once
// more when a token names an unknown kid, at most once per minRefetch.
// Fetches take turns (fetching), so the table is always that of the
// fetch that ran last and a slow one never replaces a newer one.
type remoteKeys struct {
	url        string
	client     *http.Client
	table      atomic.Pointer[keyTable] // the newest fetch's
	minRefetch time.Duration
	now        func() time.Time
	log        func() *slog.Logger
	closed     atomic.Bool

	// fetching is held by the fetch under way; last and lastErr, of the
	// refetches for unknown kids, are guarded by it.
	fetching chan struct{}
	last     time.Time // when the last refetch started (Config.Now); zero: none yet
	lastErr  error     // how it failed, if it did
}

// newRemoteKeys fetches the set once with ctx and starts its periodic
// refresh, which lives until stop is called.
func newRemoteKeys(ctx context.Context, cfg Config, log func() *slog.Logger) (_ *remoteKeys, stop func(), err error) {
	r := &remoteKeys{
		url:        cfg.JWKSURL,
		client:     cfg.HTTPClient,
		minRefetch: cfg.MinRefetchInterval,
		now:        cfg.Now,
		log:        log,
		fetching:   make(chan struct{}, 1),
	}
	r.fetching <- struct{}{}
	err = r.fetch(ctx)
	<-r.fetching
	if err != nil {
		return nil, nil, fmt.Errorf("middleware: fetch the JWK Set at Config.JWKSURL: %w", err)
	}
	// The refresh gets a context of its own, never the caller's: it ends
	// with stop, not with ctx.
	bg, cancel := context.WithCancel(context.Background())
	go r.refreshLoop(bg, cfg.RefreshInterval)
	return r, func() {
		r.closed.Store(true)
		cancel()
	}, nil
}

// refreshLoop refetches the set every interval until ctx ends. A failed
// fetch is logged; the keys already fetched stay in use.
func (r *remoteKeys) refreshLoop(ctx context.Context, interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		select {
		case <-ctx.Done():
			return
		case r.fetching <- struct{}{}:
		}
		fctx, cancel := context.WithTimeout(ctx, fetchTimeout)
		err := r.fetch(fctx)
		cancel()
		<-r.fetching
		if err != nil && ctx.Err() == nil {
			r.log().ErrorContext(ctx, "refresh jwks", "error", err)
		}
	}
}

// fetch GETs, parses and installs the set. The caller holds fetching. A set
// without a usable key is an error, and the previous table stays.
func (r *remoteKeys) fetch(ctx context.Context) error {
	body, err := fetchJWKS(ctx, r.client, r.url)
	if err != nil {
		return err
	}
	set, err := jwk.Parse(body)
	if err != nil {
		return fmt.Errorf("middleware: parse the JWK Set at %s: %w", r.url, err)
	}
	t, err := buildTable(set)
	if err != nil {
		return err
	}
	r.table.Store(t)
	return nil
}

// get returns the key kid names in the current table, or nil.
func (r *remoteKeys) get(kid string) *verifyKey {
	if t := r.table.Load(); t != nil {
		return t.byKID[kid]
	}
	return nil
}

// lookup returns the key kid names, refetching the set once if it is
// unknown and no refetch happened within minRefetch.
func (r *remoteKeys) lookup(ctx context.Context, kid string) (*verifyKey, *Error) {
	if k := r.get(kid); k != nil {
		return k, nil
	}
	if r.closed.Load() {
		return nil, refuseUnknownKey()
	}
	select {
	case r.fetching <- struct{}{}:
		defer func() { <-r.fetching }()
	case <-ctx.Done():
		return nil, unavailable(ctx.Err())
	}
	// Whoever fetched before may just have fetched the key.
	if k := r.get(kid); k != nil {
		return k, nil
	}
	now := r.now()
	if !r.last.IsZero() && now.Sub(r.last) < r.minRefetch {
		if r.lastErr != nil {
			return nil, unavailable(r.lastErr)
		}
		return nil, refuseUnknownKey()
	}
	prev := r.last
	r.last = now
	if err := r.fetch(ctx); err != nil {
		if ctx.Err() != nil {
			// The caller gave up: that says nothing about the server, so
			// it costs no refetch budget.
			r.last = prev
			return nil, unavailable(ctx.Err())
		}
		r.lastErr = err
		r.log().ErrorContext(ctx, "refetch jwks", "error", err)
		return nil, unavailable(err)
	}
	r.lastErr = nil
	if k := r.get(kid); k != nil {
		return k, nil
	}
	return nil, refuseUnknownKey()
}

func refuseUnknownKey() *Error {
	return refuse(errUnknownKey, "The access token is signed with an unknown key.")
}

// fetchJWKS GETs the JWK Set at u: 200 only, at most 1 MiB.
func fetchJWKS(ctx context.Context, client *http.Client, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("middleware: JWKS request: %w", err)
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	res, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("middleware: JWKS request: %w", err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, maxJWKSSize+1))
	if err != nil {
		return nil, fmt.Errorf("middleware: read the JWK Set: %w", err)
	}
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("middleware: the JWKS endpoint %s answered %s", u, res.Status)
	}
	if len(body) > maxJWKSSize {
		return nil, errors.New("middleware: the JWK Set is larger than 1 MiB")
	}
	return body, nil
}
