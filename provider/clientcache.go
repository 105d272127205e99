package provider

import (
	"context"
	"sync"
	"time"

	"github.com/pixieauth/pixie/store"
)

// clientCache is a store.Clients that reuses each registration it read for
// a while (Config.ClientCacheTTL): a flow reads its client at the
// authorization endpoint and again at the token endpoint, and for a
// database each read is a round trip. It holds at most max registrations;
// when full, it drops one entry, whichever the map yields first. Only found
// clients are kept: an unknown ID or a store failure is asked again every
// time. Every lookup returns a copy of its own.
type clientCache struct {
	st  store.Clients
	ttl time.Duration
	max int
	now func() time.Time

	mu sync.RWMutex
	m  map[string]cachedClient
}

type cachedClient struct {
	c       *store.Client
	expires time.Time
}

func newClientCache(st store.Clients, ttl time.Duration, max int, now func() time.Time) store.Clients {
	if ttl <= 0 {
		return st
	}
	return &clientCache{st: st, ttl: ttl, max: max, now: now, m: map[string]cachedClient{}}
}

func (cc *clientCache) Client(ctx context.Context, id string) (*store.Client, error) {
	now := cc.now()
	cc.mu.RLock()
	e, ok := cc.m[id]
	cc.mu.RUnlock()
	if ok && now.Before(e.expires) {
		return e.c.Clone(), nil
	}
	c, err := cc.st.Client(ctx, id)
	if err != nil {
		return nil, err
	}
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if _, ok := cc.m[id]; !ok && len(cc.m) >= cc.max {
		for k := range cc.m {
			delete(cc.m, k)
			break
		}
	}
	cc.m[id] = cachedClient{c: c.Clone(), expires: now.Add(cc.ttl)}
	return c, nil
}
