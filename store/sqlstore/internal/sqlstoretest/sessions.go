package sqlstoretest

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/pixieauth/pixie/store"
	"github.com/pixieauth/pixie/store/storetest"
)

// ---- login sessions ----

// testSessionsTwoPools checks that replicas share login sessions: a
// session created through one pool is ended through the other; of
// concurrent creations of one ID through both, exactly one wins; and
// concurrent touches through both leave the latest time.
func testSessionsTwoPools(t *testing.T, b Backend) {
	pools := twoPools(t, b)
	ctx := t.Context()
	start := time.Now().UTC().Truncate(time.Second)
	errs := storetest.Race(20, func(i int) error {
		return pools[i%2].CreateSession(ctx, &store.Session{ID: "sid-1", Subject: "sub-1",
			CreatedAt: start, ExpiresAt: start.Add(time.Hour), LastUsed: start})
	})
	storetest.ExactlyOneWins(t, errs, store.ErrAlreadyExists)

	const n = 40
	errs = storetest.Race(n, func(i int) error {
		return pools[i%2].TouchSession(ctx, "sid-1", start.Add(time.Duration(i+1)*time.Millisecond))
	})
	for i, err := range errs {
		if err != nil {
			t.Errorf("touch %d: got error %v, want nil", i, err)
		}
	}
	for i, s := range pools {
		got, err := s.Session(ctx, "sid-1")
		mustOK(t, err)
		if want := start.Add(n * time.Millisecond); !got.LastUsed.Equal(want) {
			t.Errorf("pool %d: got LastUsed %v, want the latest touch %v", i, got.LastUsed, want)
		}
	}

	mustOK(t, pools[1].RevokeSessions(ctx, "sub-1"))
	got, err := pools[0].Session(ctx, "sid-1")
	mustOK(t, err)
	if !got.Revoked {
		t.Error("a session revoked through one pool is live through the other")
	}
}

// testSessionValues checks what storetest leaves open: times kept to the
// microsecond and read back in UTC whatever location they were given in,
// and AMR lists of every length.
func testSessionValues(t *testing.T, b Backend) {
	s, _ := fresh(t, b)
	ctx := t.Context()
	loc := time.FixedZone("UTC+5:30", 5*3600+1800)
	at := time.Date(2031, 4, 5, 6, 7, 8, 123456789, loc)
	for i, amr := range [][]string{nil, {"pwd"}, {"pwd", "otp", "hwk"}} {
		id := fmt.Sprintf("sid-%d", i)
		want := &store.Session{ID: id, Subject: "sub-1", AuthTime: at.Add(-time.Minute), AMR: amr,
			CreatedAt: at, ExpiresAt: at.Add(12 * time.Hour), LastUsed: at.Add(time.Microsecond), Revoked: i == 1}
		mustOK(t, s.CreateSession(ctx, want))
		got, err := s.Session(ctx, id)
		mustOK(t, err)
		for _, tm := range []struct {
			name      string
			got, want time.Time
		}{
			{"AuthTime", got.AuthTime, want.AuthTime},
			{"CreatedAt", got.CreatedAt, want.CreatedAt},
			{"ExpiresAt", got.ExpiresAt, want.ExpiresAt},
			{"LastUsed", got.LastUsed, want.LastUsed},
		} {
			if !tm.got.Equal(tm.want.Truncate(time.Microsecond)) || tm.got.Location() != time.UTC {
				t.Errorf("%s: got %s %v, want %v in UTC", id, tm.name, tm.got, tm.want.Truncate(time.Microsecond).UTC())
			}
		}
		if !slices.Equal(got.AMR, amr) || got.Revoked != want.Revoked || got.Subject != "sub-1" {
			t.Errorf("%s: got %+v, want %+v", id, got, want)
		}
	}
	// A touch a microsecond later counts; one within the same microsecond
	// does not move LastUsed.
	mustOK(t, s.TouchSession(ctx, "sid-0", at.Add(2*time.Microsecond)))
	mustOK(t, s.TouchSession(ctx, "sid-0", at.Add(2*time.Microsecond+100*time.Nanosecond)))
	got, err := s.Session(ctx, "sid-0")
	mustOK(t, err)
	if want := at.Add(2 * time.Microsecond).Truncate(time.Microsecond); !got.LastUsed.Equal(want) {
		t.Errorf("after touching: got LastUsed %v, want %v", got.LastUsed, want)
	}
}
