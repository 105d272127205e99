package memory

import (
	"container/heap"
	"context"
	"fmt"
	"time"

	"github.com/pixieauth/pixie/store"
)

// DefaultMaxThrottleKeys is how many throttle keys a Store holds at most.
// At about 200 bytes a key that is some 20 MB. A new key beyond it first
// makes the Store forget the keys whose window has ended, then those whose
// window ends soonest.
const DefaultMaxThrottleKeys = 100_000

// hitWindow is the count of one throttle key.
type hitWindow struct {
	key   string
	hits  store.Hits
	index int // in the throttle's heap
}

// throttle holds the throttle keys: a map to find them and a min-heap of
// their window ends to forget them. Guarded by Store.mu.
type throttle struct {
	byKey map[string]*hitWindow
	ends  expiryHeap[*hitWindow]
	max   int // at most this many keys
}

func (w *hitWindow) expiresAt() time.Time { return w.hits.Expires }
func (w *hitWindow) setIndex(i int)       { w.index = i }

func newThrottle() throttle {
	return throttle{byKey: make(map[string]*hitWindow), max: DefaultMaxThrottleKeys}
}

// remove forgets w.
func (t *throttle) remove(w *hitWindow) {
	heap.Remove(&t.ends, w.index)
	delete(t.byKey, w.key)
}

// AddHit counts an event for key at time now and returns the key's Hits
// after it. It implements [store.Throttle]: a window opens with the first
// event of a key and ends window later, and a window shorter than a
// microsecond is an error.
//
// Keys are forgotten once their window has ended, without any further call
// (a timer armed while the Store holds keys does it, about once a minute),
// and there are at most [DefaultMaxThrottleKeys]: a new key beyond that
// makes the Store forget the keys whose window ends soonest.
func (s *Store) AddHit(_ context.Context, key string, now time.Time, window time.Duration) (store.Hits, error) {
	if window < time.Microsecond {
		return store.Hits{}, fmt.Errorf("memory: add hit: window %v is shorter than a microsecond", window)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.observe(now)
	t := &s.throttle
	w, ok := t.byKey[key]
	if ok && !now.Before(w.hits.Expires) {
		t.remove(w)
		ok = false
	}
	if ok {
		w.hits.Count++
		if now.After(w.hits.Last) {
			w.hits.Last = now
		}
		return w.hits, nil
	}
	if len(t.byKey) >= t.max {
		s.sweepThrottle(now)
		for len(t.byKey) >= t.max {
			t.remove(t.ends[0])
		}
	}
	w = &hitWindow{key: key, hits: store.Hits{Count: 1, Last: now, Expires: now.Add(window)}}
	t.byKey[key] = w
	heap.Push(&t.ends, w)
	s.armJanitor()
	return w.hits, nil
}

// Hits returns the key's Hits if its window is open at now, else the zero
// Hits. It implements [store.Throttle].
func (s *Store) Hits(_ context.Context, key string, now time.Time) (store.Hits, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	w, ok := s.throttle.byKey[key]
	if !ok || !now.Before(w.hits.Expires) {
		return store.Hits{}, nil
	}
	return w.hits, nil
}

// ResetHits forgets key. It implements [store.Throttle]; it is not an error
// if the key has no window.
func (s *Store) ResetHits(_ context.Context, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if w, ok := s.throttle.byKey[key]; ok {
		s.throttle.remove(w)
	}
	return nil
}

// sweepThrottle forgets the throttle keys whose window has ended at now.
// s.mu must be held for writing.
func (s *Store) sweepThrottle(now time.Time) {
	t := &s.throttle
	for len(t.ends) > 0 && !now.Before(t.ends[0].hits.Expires) {
		t.remove(t.ends[0])
	}
}
