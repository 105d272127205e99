package provider

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pixieauth/pixie/store"
	"github.com/pixieauth/pixie/store/sqlstore"
	"github.com/pixieauth/pixie/store/sqlstore/sqlite"
)

// TestClientCacheReplicas: two replicas on one SQLite file. A client's
// registration, changed through one store handle, reaches the replica that
// cached it once Config.ClientCacheTTL has passed, and not before; a
// replica with the cache turned off sees it at once.
func TestClientCacheReplicas(t *testing.T) {
	ctx := t.Context()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "pixie.db"), sqlstore.Config{KeySecret: []byte("client cache test key secret, 32+ bytes")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	client := &store.Client{ID: "app", Native: true, RedirectURIs: []string{"http://127.0.0.1/one"}, Scopes: []string{"openid"}}
	if err := st.AddClient(ctx, client); err != nil {
		t.Fatal(err)
	}
	clock := newFakeClock()
	replica := func(ttl time.Duration) *Provider {
		p, err := New(ctx, Config{
			Issuer: testIssuer, Clients: st, Users: st, Grants: st, Keys: st,
			ClientCacheTTL: ttl, Now: clock.Now, Logger: slog.New(slog.DiscardHandler),
		})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	cached, uncached := replica(0), replica(-1)
	redirects := func(p *Provider) []string {
		t.Helper()
		c, err := p.client(ctx, "app")
		if err != nil {
			t.Fatalf("Client: %v", err)
		}
		return c.RedirectURIs
	}
	one, two := []string{"http://127.0.0.1/one"}, []string{"http://127.0.0.1/two"}
	if got := redirects(cached); !slices.Equal(got, one) {
		t.Fatalf("got %v, want %v", got, one)
	}
	// A caller may modify what it gets: the cache keeps its own copy.
	c, _ := cached.client(ctx, "app")
	c.RedirectURIs[0] = "https://evil.example/"

	client.RedirectURIs = two
	if err := st.PutClient(ctx, client); err != nil {
		t.Fatal(err)
	}
	if got := redirects(uncached); !slices.Equal(got, two) {
		t.Errorf("without a cache: got %v, want %v at once", got, two)
	}
	clock.Advance(defaultClientCacheTTL - time.Millisecond)
	if got := redirects(cached); !slices.Equal(got, one) {
		t.Errorf("within the TTL: got %v, want the cached %v", got, one)
	}
	clock.Advance(time.Millisecond)
	if got := redirects(cached); !slices.Equal(got, two) {
		t.Errorf("after the TTL: got %v, want %v", got, two)
	}
}

// countingClients counts lookups and fails them on demand.
type countingClients struct {
	store.Clients
	mu    sync.Mutex
	calls int
	down  bool
}

func (c *countingClients) Client(ctx context.Context, id string) (*store.Client, error) {
	c.mu.Lock()
	c.calls++
	down := c.down
	c.mu.Unlock()
	if down {
		return nil, errStoreDown
	}
	return c.Clients.Client(ctx, id)
}

// TestClientCacheBounds: the cache holds at most its maximum, keeps neither
// unknown clients nor store failures, and reads the store again after the
// TTL.
func TestClientCacheBounds(t *testing.T) {
	e := newTestEnv(t, nil)
	ctx := t.Context()
	for _, id := range []string{"c1", "c2", "c3", "c4", "c5"} {
		if err := e.mem.AddClient(t.Context(), &store.Client{ID: id, Native: true, RedirectURIs: []string{"http://127.0.0.1/cb"}}); err != nil {
			t.Fatal(err)
		}
	}
	clock := newFakeClock()
	st := &countingClients{Clients: e.mem}
	cc := newClientCache(st, time.Second, 3, clock.Now).(*clientCache)
	for range 2 {
		for _, id := range []string{"c1", "c2", "c3", "c4", "c5"} {
			if _, err := cc.Client(ctx, id); err != nil {
				t.Fatal(err)
			}
		}
	}
	if n := len(cc.m); n > 3 {
		t.Errorf("cache holds %d clients, want at most 3", n)
	}
	st.calls = 0
	cc.Client(ctx, "c5") // the last one read is cached
	if st.calls != 0 {
		t.Errorf("cached client: got %d store reads, want 0", st.calls)
	}
	for range 2 {
		if _, err := cc.Client(ctx, "nobody"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unknown client: got %v, want ErrNotFound", err)
		}
	}
	if st.calls != 2 {
		t.Errorf("unknown client twice: got %d store reads, want 2 (not cached)", st.calls)
	}
	clock.Advance(time.Second)
	st.down = true
	for range 2 {
		if _, err := cc.Client(ctx, "c5"); !errors.Is(err, errStoreDown) {
			t.Fatalf("expired entry, store down: got %v, want the store's error", err)
		}
	}
	st.down = false
	if _, err := cc.Client(ctx, "c5"); err != nil {
		t.Errorf("store back: got %v, want the client", err)
	}
}
