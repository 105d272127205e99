package memory

import (
	"runtime"
	"time"
)

// janitorPeriod is how often the janitor looks for entries to forget while
// there are any.
const janitorPeriod = time.Minute

// janitorBatch is how many grant records the janitor removes while holding
// the lock: it lets other calls in between batches.
const janitorBatch = 4096

// The janitor forgets what has expired without waiting for a call to do it:
// a timer armed when the Store gains an entry that expires, re-armed after
// each sweep only while such entries remain. An empty Store has no timer and
// no goroutine, and a Store dropped by its user is collected once its
// entries have expired; there is nothing to close.

// observe records the callers' clock: the Store judges expiry by the times
// its callers pass (an injected clock, in tests), and the janitor by that
// clock moved on by the wall-clock time since. s.mu must be held for
// writing.
func (s *Store) observe(now time.Time) {
	s.clockOffset = now.Sub(time.Now())
}

// now is the callers' clock as observe last saw it. s.mu must be held.
func (s *Store) now() time.Time {
	return time.Now().Add(s.clockOffset)
}

// armJanitor starts the janitor's timer unless it is running or there is
// nothing for it to do. s.mu must be held for writing.
func (s *Store) armJanitor() {
	if s.janitor == nil && s.needsSweep() {
		s.janitor = time.AfterFunc(janitorPeriod, s.runJanitor)
	}
}

// needsSweep reports whether the Store holds entries that expire. s.mu must
// be held.
func (s *Store) needsSweep() bool {
	return len(s.throttle.byKey) > 0 || len(s.consents) > 0 || len(s.grants) > 0
}

// runJanitor is the janitor's timer: it sweeps, and re-arms while entries
// remain. It removes expired grant records janitorBatch at a time,
// releasing the lock in between, so that a sweep of many does not stall
// the Store.
func (s *Store) runJanitor() {
	s.mu.Lock()
	now := s.now()
	s.sweepThrottle(now)
	s.sweepConsents(now)
	for s.sweepGrants(now, janitorBatch) == janitorBatch {
		s.mu.Unlock()
		runtime.Gosched()
		s.mu.Lock()
	}
	s.compactGrants()
	s.janitor = nil
	s.armJanitor()
	s.mu.Unlock()
}
