package memory

import (
	"strconv"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pixieauth/pixie/store"
)

// throttleSize returns how many throttle keys s holds, checking that its
// map and heap agree.
func throttleSize(t *testing.T, s *Store) int {
	t.Helper()
	s.mu.RLock()
	defer s.mu.RUnlock()
	if len(s.throttle.byKey) != len(s.throttle.ends) {
		t.Fatalf("throttle map has %d keys, heap %d", len(s.throttle.byKey), len(s.throttle.ends))
	}
	for i, w := range s.throttle.ends {
		if w.index != i || s.throttle.byKey[w.key] != w {
			t.Fatalf("heap entry %d (%q) is out of place", i, w.key)
		}
	}
	return len(s.throttle.byKey)
}

// TestThrottleCap: however many distinct keys are counted, the store holds
// at most its cap, forgetting ended windows first, then those ending
// soonest.
func TestThrottleCap(t *testing.T) {
	s := New()
	s.throttle.max = 100
	ctx := t.Context()
	start := time.Date(2031, 1, 2, 3, 4, 5, 0, time.UTC)
	// 100 keys with a one-minute window, then, ten minutes later, 1000 new
	// keys with a one-hour window each a second after the last.
	for i := range 100 {
		if _, err := s.AddHit(ctx, "short-"+strconv.Itoa(i), start, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	later := start.Add(10 * time.Minute)
	for i := range 1000 {
		at := later.Add(time.Duration(i) * time.Second)
		if _, err := s.AddHit(ctx, "long-"+strconv.Itoa(i), at, time.Hour); err != nil {
			t.Fatal(err)
		}
		if n := throttleSize(t, s); n > 100 {
			t.Fatalf("after %d keys: got %d held, want at most 100", i+1, n)
		}
	}
	end := later.Add(1000 * time.Second)
	// The last 100 are kept: they end latest.
	for i := range 1000 {
		h, err := s.Hits(ctx, "long-"+strconv.Itoa(i), end)
		if err != nil {
			t.Fatal(err)
		}
		if want := map[bool]int{true: 1, false: 0}[i >= 900]; h.Count != want {
			t.Errorf("long-%d: got count %d, want %d", i, h.Count, want)
		}
	}
	// A key already held is counted without evicting anything.
	if h, err := s.AddHit(ctx, "long-999", end, time.Hour); err != nil || h.Count != 2 {
		t.Errorf("AddHit on a held key: got %+v, %v, want count 2", h, err)
	}
	if n := throttleSize(t, s); n != 100 {
		t.Errorf("got %d keys held, want 100", n)
	}
}

// TestThrottleForgetsWithoutCalls: keys are forgotten once their window has
// ended with no further call to the store, and an empty store keeps no
// timer. It runs in a synctest bubble: the store's clock and timer are the
// bubble's.
func TestThrottleForgetsWithoutCalls(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := New()
		if s.janitor != nil {
			t.Fatal("a new store has a timer armed")
		}
		ctx := t.Context()
		const window = 10 * time.Minute
		for i := range 1000 {
			if _, err := s.AddHit(ctx, "user:"+strconv.Itoa(i), time.Now(), window); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(window / 2)
		synctest.Wait()
		if n := throttleSize(t, s); n != 1000 {
			t.Fatalf("before the window ends: got %d keys, want 1000", n)
		}
		time.Sleep(window/2 + janitorPeriod)
		synctest.Wait()
		if n := throttleSize(t, s); n != 0 {
			t.Errorf("after the window ended: got %d keys, want 0", n)
		}
		s.mu.RLock()
		armed := s.janitor != nil
		s.mu.RUnlock()
		if armed {
			t.Error("an empty store still has its timer armed")
		}
	})
}

// TestThrottleJanitorFollowsCallersClock: the janitor judges expiry by the
// clock the callers pass, not the wall clock, so a caller with a clock in
// the past (an injected test clock) keeps its keys for their window.
func TestThrottleJanitorFollowsCallersClock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := New()
		past := time.Now().Add(-24 * time.Hour)
		if _, err := s.AddHit(t.Context(), "k", past, 10*time.Minute); err != nil {
			t.Fatal(err)
		}
		time.Sleep(janitorPeriod + time.Second)
		synctest.Wait()
		if n := throttleSize(t, s); n != 1 {
			t.Errorf("a minute into a ten-minute window: got %d keys, want 1", n)
		}
		time.Sleep(10 * time.Minute)
		synctest.Wait()
		if n := throttleSize(t, s); n != 0 {
			t.Errorf("after the window: got %d keys, want 0", n)
		}
	})
}

// TestJanitorForgetsConsents: the janitor forgets expired consents too,
// without a further write, and stops once the Store is empty.
func TestJanitorForgetsConsents(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := New()
		c := &store.Consent{Subject: "sub-1", ClientID: "web", Scopes: []string{"openid"}, ExpiresAt: time.Now().Add(10 * time.Minute)}
		if err := s.SaveConsent(t.Context(), c); err != nil {
			t.Fatal(err)
		}
		held := func() (int, bool) {
			s.mu.RLock()
			defer s.mu.RUnlock()
			return len(s.consents), s.janitor != nil
		}
		if n, armed := held(); n != 1 || !armed {
			t.Fatalf("after SaveConsent: got %d consents, timer armed %v; want 1, armed", n, armed)
		}
		time.Sleep(10*time.Minute + janitorPeriod + time.Second)
		synctest.Wait()
		if n, armed := held(); n != 0 || armed {
			t.Errorf("after the consent expired: got %d consents, timer armed %v; want 0, not armed", n, armed)
		}
	})
}
