package provider

import (
	"crypto/sha256"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// userInfoShards is how many independently locked parts the userinfo cache
// has, so that concurrent requests seldom wait for one another.
const userInfoShards = 16

// userInfoCache remembers, for Config.UserInfoCacheTTL, the userinfo
// endpoint's answer for an access token it has verified: the claims of
// the user's profile as read then, for the scopes granted and the claims
// requested, in JSON, with the token's grant (request ID) and expiry. A hit spares
// the token's signature check, the read and decoding of its record, and
// the read of the user; those are what make a revocation, a deleted client
// or a changed profile visible, so each entry is stale by at most the TTL.
//
// Only successful answers are remembered; a token that fails any check is
// verified afresh every time. Entries are keyed by the SHA-256 of the token,
// never the token. The cache holds at most Config.UserInfoCacheSize entries:
// each shard drops its oldest one to make room (its entries all live for
// the same TTL, so the oldest is the next to go stale anyway).
//
// forget drops the entries of a grant at once: the provider calls it
// whenever it revokes a grant's access tokens, so that a revocation is
// visible at once on the replica that made it. Other replicas see it when
// their entries go stale. A nil *userInfoCache caches nothing. It is safe
// for concurrent use.
type userInfoCache struct {
	ttl   time.Duration
	clock func() time.Time // Config.Now, which times the TTL; nil: the wall clock
	// epoch counts the calls to forget. An answer is remembered only if
	// no forget began since its verification did: the revocation that
	// forget follows may have come after the token's record was read.
	epoch  atomic.Uint64
	shards []userInfoShard
}

// userInfoShard is one part of the cache: the entries whose key's first
// byte falls to it, in a ring that holds the order they came in.
type userInfoShard struct {
	mu        sync.Mutex
	entries   map[[sha256.Size]byte]*userInfoEntry
	byRequest map[string][]*userInfoEntry // the entries of each grant
	ring      []*userInfoEntry            // nil: a free slot
	next      int                         // the slot the next entry takes
}

// userInfoEntry is what a verified access token answers at userinfo. It is
// never modified once stored.
type userInfoEntry struct {
	key       [sha256.Size]byte
	requestID string
	slot      int       // its place in the shard's ring
	stored    time.Time // Config.Now when its verification began
	expires   time.Time // the token's expiry, in whole seconds of the wall clock
	// body is the answer: the user's claims for the granted scopes and the
	// requested claims, sub included, in JSON with a newline. Callers get
	// copies.
	body []byte
	// jkt is the thumbprint of the DPoP key the token is bound to, or "".
	jkt string
}

// newUserInfoCache returns a cache of at most size entries living ttl, or
// nil (no cache) for a negative ttl. clock is Config.Now.
func newUserInfoCache(ttl time.Duration, size int, clock func() time.Time) *userInfoCache {
	if ttl < 0 || size <= 0 {
		return nil
	}
	n := min(userInfoShards, size)
	c := &userInfoCache{ttl: ttl, clock: clock, shards: make([]userInfoShard, n)}
	for i := range c.shards {
		c.shards[i] = userInfoShard{
			entries:   map[[sha256.Size]byte]*userInfoEntry{},
			byRequest: map[string][]*userInfoEntry{},
			ring:      make([]*userInfoEntry, size/n),
		}
	}
	return c
}

// userInfoKey returns the cache key of an access token: its SHA-256. A
// token of up to 2 KiB (a JWT access token is under one) is hashed from a
// copy on the stack rather than the heap.
func userInfoKey(token string) [sha256.Size]byte {
	var buf [2048]byte
	if len(token) <= len(buf) {
		return sha256.Sum256(append(buf[:0], token...))
	}
	return sha256.Sum256([]byte(token))
}

func (c *userInfoCache) shard(key [sha256.Size]byte) *userInfoShard {
	return &c.shards[int(key[0])%len(c.shards)]
}

// get returns the live entry of key, or nil: none, stale (older than the
// TTL by Config.Now, or stored in its future), or for a token expired by
// the wall clock, which is the clock fosite checks expiry against.
func (c *userInfoCache) get(key [sha256.Size]byte) *userInfoEntry {
	if c == nil {
		return nil
	}
	s := c.shard(key)
	s.mu.Lock()
	e := s.entries[key]
	s.mu.Unlock()
	if e == nil {
		return nil
	}
	wall := time.Now()
	if !wall.Before(e.expires) {
		return nil
	}
	now := wall
	if c.clock != nil {
		now = c.clock()
	}
	if now.Before(e.stored) || !now.Before(e.stored.Add(c.ttl)) {
		return nil
	}
	return e
}

// begin returns the epoch to pass to put for an answer whose verification
// starts now.
func (c *userInfoCache) begin() uint64 {
	if c == nil {
		return 0
	}
	return c.epoch.Load()
}

// put remembers e, stored at Config.Now and verified since begin returned
// epoch, unless a grant was forgotten since then. A token without an
// expiry is not remembered.
func (c *userInfoCache) put(epoch uint64, e *userInfoEntry) {
	if c == nil || e.expires.IsZero() {
		return
	}
	s := c.shard(e.key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.epoch.Load() != epoch {
		return
	}
	if old := s.entries[e.key]; old != nil {
		s.remove(old)
	}
	if victim := s.ring[s.next]; victim != nil {
		s.remove(victim)
	}
	e.slot = s.next
	s.ring[s.next] = e
	s.next = (s.next + 1) % len(s.ring)
	s.entries[e.key] = e
	s.byRequest[e.requestID] = append(s.byRequest[e.requestID], e)
}

// forget drops the entries of the grant requestID at once.
func (c *userInfoCache) forget(requestID string) {
	if c == nil {
		return
	}
	c.epoch.Add(1)
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		for _, e := range slices.Clone(s.byRequest[requestID]) {
			s.remove(e)
		}
		s.mu.Unlock()
	}
}

// remove unlinks e from the shard; s.mu must be held.
func (s *userInfoShard) remove(e *userInfoEntry) {
	delete(s.entries, e.key)
	if s.ring[e.slot] == e {
		s.ring[e.slot] = nil
	}
	rest := slices.DeleteFunc(s.byRequest[e.requestID], func(x *userInfoEntry) bool { return x == e })
	if len(rest) == 0 {
		delete(s.byRequest, e.requestID)
	} else {
		s.byRequest[e.requestID] = rest
	}
}
