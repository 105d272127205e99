package middleware

import (
	"bytes"
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
	// fetchTimeout bounds one JWKS fetch even with an HTTPClient that has
	// no timeout: background fetches run on jwk.Cache workers, which pass
	// no context.
	fetchTimeout = 30 * time.Second
)

// remoteKeys is the key set at Config.JWKSURL.
//
// A jwk.Cache fetches it at start and refreshes it every RefreshInterval;
// each fetch replaces the lookup table (postFetch). A token with an unknown
// kid triggers one more fetch, at most once per minRefetch, which this type
// makes itself rather than with jwk.Cache.Refresh: in httprc v1.0.6 every
// Refresh schedules another periodic refresh chain besides the one already
// running, so refetches made through it would multiply the background
// requests, without bound under a stream of forged kids.
type remoteKeys struct {
	url        string
	client     *http.Client
	cache      *jwk.Cache
	table      atomic.Pointer[keyTable] // the newest fetch's
	minRefetch time.Duration
	now        func() time.Time
	log        func() *slog.Logger
	closed     atomic.Bool

	// epoch is the monotonic origin of keyTable.fetched, and bgStarted
	// when the cache's current fetch started (cache fetches of one URL
	// are serialized), so that a slow fetch never replaces the table of a
	// fetch that started after it.
	epoch     time.Time
	bgStarted atomic.Int64

	// sem serializes refetches; last and lastErr are guarded by it.
	sem     chan struct{}
	last    time.Time // when the last refetch started (Config.Now); zero: none yet
	lastErr error     // how it failed, if it did
}

// newRemoteKeys registers the URL with a jwk.Cache whose background work
// lives until stop is called, and fetches the set once with ctx.
func newRemoteKeys(ctx context.Context, cfg Config, log func() *slog.Logger) (_ *remoteKeys, stop func(), err error) {
	r := &remoteKeys{
		url:        cfg.JWKSURL,
		client:     cfg.HTTPClient,
		minRefetch: cfg.MinRefetchInterval,
		now:        cfg.Now,
		log:        log,
		epoch:      time.Now(),
		sem:        make(chan struct{}, 1),
	}
	// The cache's goroutines (refresh loop and fetch workers) get a context
	// of their own, never the caller's: they end with stop, not with ctx.
	bg, cancel := context.WithCancel(context.Background())
	stop = func() {
		r.closed.Store(true)
		cancel()
	}
	r.cache = jwk.NewCache(bg,
		// httprc checks which resources are due once per window; a quarter
		// of the interval keeps a refresh within 1¼ intervals.
		jwk.WithRefreshWindow(cfg.RefreshInterval/4),
		jwk.WithErrSink(errSink{log: log}),
	)
	err = r.cache.Register(r.url,
		jwk.WithHTTPClient(cacheClient{r: r, done: bg.Done()}),
		jwk.WithRefreshInterval(cfg.RefreshInterval),
		jwk.WithPostFetcher(jwk.PostFetchFunc(r.postFetch)),
	)
	if err == nil {
		// The one Refresh: it starts the periodic chain.
		_, err = r.cache.Refresh(ctx, r.url)
	}
	if err != nil {
		stop()
		return nil, nil, fmt.Errorf("middleware: fetch the JWK Set at Config.JWKSURL: %w", err)
	}
	return r, stop, nil
}

// postFetch runs after every successful fetch of the cache: it replaces
// the lookup table. A set without a usable key is an error, and the
// previous table stays.
func (r *remoteKeys) postFetch(_ string, set jwk.Set) (jwk.Set, error) {
	t, err := buildTable(set)
	if err != nil {
		return nil, err
	}
	t.fetched = time.Duration(r.bgStarted.Load())
	r.install(t)
	return set, nil
}

// install makes t the lookup table unless a fetch that started later
// already installed its own.
func (r *remoteKeys) install(t *keyTable) {
	for {
		cur := r.table.Load()
		if cur != nil && cur.fetched > t.fetched {
			return
		}
		if r.table.CompareAndSwap(cur, t) {
			return
		}
	}
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
		return nil, errUnknownKey()
	}
	select {
	case r.sem <- struct{}{}:
		defer func() { <-r.sem }()
	case <-ctx.Done():
		return nil, unavailable(ctx.Err())
	}
	// Whoever held sem before may just have fetched the key.
	if k := r.get(kid); k != nil {
		return k, nil
	}
	now := r.now()
	if !r.last.IsZero() && now.Sub(r.last) < r.minRefetch {
		if r.lastErr != nil {
			return nil, unavailable(r.lastErr)
		}
		return nil, errUnknownKey()
	}
	prev := r.last
	r.last = now
	if err := r.refetch(ctx); err != nil {
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
	return nil, errUnknownKey()
}

// refetch fetches the set now and installs it.
func (r *remoteKeys) refetch(ctx context.Context) error {
	started := time.Since(r.epoch)
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
	t.fetched = started
	r.install(t)
	return nil
}

func errUnknownKey() *Error {
	return refuse(ErrUnknownKey, "The access token is signed with an unknown key.")
}

// errSink logs the failures of background refreshes; the keys already
// fetched stay in use.
type errSink struct{ log func() *slog.Logger }

func (s errSink) Error(err error) {
	s.log().ErrorContext(context.Background(), "refresh jwks", "error", err)
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

// cacheClient is the jwk.Cache's HTTP client. It records when each fetch
// starts, bounds its time, and abandons it when the Verifier is closed
// (done).
type cacheClient struct {
	r    *remoteKeys
	done <-chan struct{}
}

func (c cacheClient) Get(u string) (*http.Response, error) {
	c.r.bgStarted.Store(int64(time.Since(c.r.epoch)))
	ctx, cancel := context.WithTimeout(context.Background(), fetchTimeout)
	defer cancel()
	go func() {
		select {
		case <-c.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	body, err := fetchJWKS(ctx, c.r.client, u)
	if err != nil {
		return nil, err
	}
	// jwk.Cache reads the body of a 200 response.
	return &http.Response{
		StatusCode: http.StatusOK,
		Status:     "200 OK",
		Header:     http.Header{},
		Body:       io.NopCloser(bytes.NewReader(body)),
	}, nil
}
