package middleware

import (
	"container/list"
	"crypto/sha256"
	"sync"
	"time"
)

// tokenCache remembers values by the SHA-256 of a token, never the token
// itself: the verifier's verified signatures (sigCache) and the
// introspection answers. Each value lives until its expiry (zero: for as
// long as there is room). It holds at most max values: a put when full
// first drops the expired ones at the old end, then the oldest. Safe for
// concurrent use.
type tokenCache[V any] struct {
	max   int
	mu    sync.Mutex
	items map[[sha256.Size]byte]*list.Element
	order *list.List // of *cached[V], oldest first
}

type cached[V any] struct {
	key   [sha256.Size]byte
	v     V
	until time.Time
}

func newTokenCache[V any](max int) *tokenCache[V] {
	return &tokenCache[V]{max: max, items: make(map[[sha256.Size]byte]*list.Element, min(max, 1024)), order: list.New()}
}

// expired reports whether e is past its expiry at now.
func (e *cached[V]) expired(now time.Time) bool {
	return !e.until.IsZero() && !now.Before(e.until)
}

// get returns the value under key unless it has expired at now.
func (c *tokenCache[V]) get(key [sha256.Size]byte, now time.Time) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var zero V
	e, ok := c.items[key]
	if !ok {
		return zero, false
	}
	a := e.Value.(*cached[V]) //nolint:forcetypeassert // only *cached[V] goes in
	if a.expired(now) {
		c.order.Remove(e)
		delete(c.items, key)
		return zero, false
	}
	return a.v, true
}

// put remembers v under key until until (zero: no expiry); one already
// expired at now is not kept.
func (c *tokenCache[V]) put(key [sha256.Size]byte, v V, until, now time.Time) {
	a := &cached[V]{key: key, v: v, until: until}
	if a.expired(now) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[key]; ok {
		c.order.Remove(e)
		delete(c.items, key)
	}
	for e := c.order.Front(); e != nil && e.Value.(*cached[V]).expired(now); e = c.order.Front() { //nolint:forcetypeassert // only *cached[V] goes in
		c.order.Remove(e)
		delete(c.items, e.Value.(*cached[V]).key) //nolint:forcetypeassert // as above
	}
	for len(c.items) >= c.max {
		oldest := c.order.Front()
		c.order.Remove(oldest)
		delete(c.items, oldest.Value.(*cached[V]).key) //nolint:forcetypeassert // as above
	}
	c.items[key] = c.order.PushBack(a)
}
