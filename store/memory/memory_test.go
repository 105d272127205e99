package memory_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/pixieauth/pixie/store"
	"github.com/pixieauth/pixie/store/memory"
	"github.com/pixieauth/pixie/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Stores {
		s := memory.New()
		return storetest.Stores{
			Clients:   s,
			Users:     s,
			Grants:    s,
			Keys:      s,
			Consents:  s,
			Throttle:  s,
			Sessions:  s,
			AddClient: s.AddClient,
			AddUser:   s.AddUser,
		}
	})
}

// TestAddClient covers the registration helper, which no interface declares.
func TestAddClient(t *testing.T) {
	s := memory.New()
	c := &store.Client{ID: "web", RedirectURIs: []string{"https://app.example.com/cb"}}
	if err := s.AddClient(t.Context(), c); err != nil {
		t.Fatalf("AddClient: got error %v, want nil", err)
	}
	// The store keeps its own copy.
	c.RedirectURIs[0] = "https://evil.example/cb"
	got, err := s.Client(t.Context(), "web")
	if err != nil {
		t.Fatalf("Client: got error %v, want nil", err)
	}
	if want := "https://app.example.com/cb"; got.RedirectURIs[0] != want {
		t.Errorf("got redirect URI %q, want %q", got.RedirectURIs[0], want)
	}

	tests := []struct {
		name    string
		client  *store.Client
		wantErr error // nil: any error
	}{
		{"Duplicate", &store.Client{ID: "web"}, store.ErrAlreadyExists},
		{"Nil", nil, nil},
		{"EmptyID", &store.Client{}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := s.AddClient(t.Context(), tc.client)
			if err == nil || tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("got error %v, want %v", err, tc.wantErr)
			}
		})
	}
}

// TestAddUser covers the registration helper's rejections, which cost no
// password hash except for the one user registered.
func TestAddUser(t *testing.T) {
	s := memory.New()
	if err := s.AddUser(t.Context(), &store.User{Subject: "sub-1"}, "alice", "pw"); err != nil {
		t.Fatalf("AddUser: got error %v, want nil", err)
	}
	tests := []struct {
		name     string
		user     *store.User
		username string
		wantErr  error // nil: any error
	}{
		{"DuplicateSubject", &store.User{Subject: "sub-1"}, "bob", store.ErrAlreadyExists},
		{"DuplicateUsername", &store.User{Subject: "sub-2"}, "alice", store.ErrAlreadyExists},
		{"Nil", nil, "carol", nil},
		{"EmptySubject", &store.User{}, "carol", nil},
		{"EmptyUsername", &store.User{Subject: "sub-3"}, "", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := s.AddUser(t.Context(), tc.user, tc.username, "pw")
			if err == nil || tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("got error %v, want %v", err, tc.wantErr)
			}
		})
	}
}

// TestInvalidKind checks that a kind outside the defined ones is an
// operational error, neither a panic nor a sentinel that would pass for a
// missing or consumed record.
func TestInvalidKind(t *testing.T) {
	const bad = store.Kind("bogus")
	s := memory.New()
	ctx := t.Context()
	_, grantErr := s.Grant(ctx, bad, "sig")
	tests := []struct {
		name string
		err  error
	}{
		{"CreateGrant", s.CreateGrant(ctx, &store.Grant{Kind: bad, Signature: "sig"})},
		{"CreateGrantNil", s.CreateGrant(ctx, nil)},
		{"Grant", grantErr},
		{"Consume", s.Consume(ctx, bad, "sig")},
		{"Delete", s.Delete(ctx, bad, "sig")},
		{"Revoke", s.Revoke(ctx, bad, "req")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.err == nil {
				t.Fatal("got nil error, want one")
			}
			for _, sentinel := range []error{store.ErrNotFound, store.ErrConsumed, store.ErrAlreadyExists} {
				if errors.Is(tc.err, sentinel) {
					t.Errorf("got error %v, want one not wrapping %v", tc.err, sentinel)
				}
			}
		})
	}
}

// TestAddKeyKeepsCopy checks that the store copies the key bytes it is given.
func TestAddKeyKeepsCopy(t *testing.T) {
	s := memory.New()
	k := store.Key{ID: "kid-1", Algorithm: "ES256", Private: []byte("secret"), CreatedAt: time.Now()}
	if err := s.AddKey(t.Context(), k); err != nil {
		t.Fatalf("AddKey: got error %v, want nil", err)
	}
	k.Private[0] = 'X'
	keys, err := s.Keys(t.Context())
	if err != nil {
		t.Fatalf("Keys: got error %v, want nil", err)
	}
	if len(keys) != 1 || string(keys[0].Private) != "secret" {
		t.Errorf("got keys %+v, want one with Private %q", keys, "secret")
	}
}

// TestDeleteExpiredThrottle checks that DeleteExpired also forgets the
// throttle keys whose window has ended, and does not count them.
func TestDeleteExpiredThrottle(t *testing.T) {
	s := memory.New()
	ctx := t.Context()
	start := time.Date(2031, 1, 2, 3, 4, 5, 0, time.UTC)
	const window = 10 * time.Minute
	// Each key: when its window opens, and whether DeleteExpired at
	// start+window removes it.
	keys := []struct {
		key      string
		start    time.Time
		wantGone bool
	}{
		{"ended-long-ago", start.Add(-time.Hour), true},
		{"ended", start.Add(-time.Second), true},
		{"ends-now", start, true}, // its window is [start, start+window)
		{"open", start.Add(time.Minute), false},
	}
	for _, k := range keys {
		if _, err := s.AddHit(ctx, k.key, k.start, window); err != nil {
			t.Fatalf("AddHit: got error %v, want nil", err)
		}
	}
	n, err := s.DeleteExpired(ctx, start.Add(window))
	if err != nil || n != 0 {
		t.Fatalf("DeleteExpired: got %d, %v, want 0 grants and no error", n, err)
	}
	for _, k := range keys {
		// Read at the key's start, when its window was open: a forgotten
		// key reads as never counted.
		got, err := s.Hits(ctx, k.key, k.start)
		if err != nil {
			t.Fatalf("Hits: got error %v, want nil", err)
		}
		if want := map[bool]int{true: 0, false: 1}[k.wantGone]; got.Count != want {
			t.Errorf("%s: got count %d, want %d", k.key, got.Count, want)
		}
	}
}

// TestSessionsBounded: the login-session records stay within the bound,
// the oldest going first, and expired ones go at the next login without
// waiting for DeleteExpired.
func TestSessionsBounded(t *testing.T) {
	ctx := t.Context()
	s := memory.New()
	memory.SetMaxSessions(s, 3)
	start := time.Date(2031, 4, 5, 6, 7, 8, 0, time.UTC)
	create := func(id string, created time.Time, lifetime time.Duration) {
		t.Helper()
		err := s.CreateSession(ctx, &store.Session{ID: id, Subject: "alice", CreatedAt: created,
			ExpiresAt: created.Add(lifetime), LastUsed: created})
		if err != nil {
			t.Fatalf("CreateSession(%s): got error %v, want nil", id, err)
		}
	}
	present := func(id string, want bool) {
		t.Helper()
		_, err := s.Session(ctx, id)
		switch {
		case want && err != nil:
			t.Errorf("Session(%s): got error %v, want the record", id, err)
		case !want && !errors.Is(err, store.ErrNotFound):
			t.Errorf("Session(%s): got error %v, want ErrNotFound", id, err)
		}
	}
	for i, id := range []string{"s1", "s2", "s3", "s4", "s5"} {
		create(id, start.Add(time.Duration(i)*time.Second), time.Hour)
	}
	for id, want := range map[string]bool{"s1": false, "s2": false, "s3": true, "s4": true, "s5": true} {
		present(id, want)
	}

	// A login after s3 and s4 expired removes them, though under the bound.
	create("s6", start.Add(time.Hour+4*time.Second), 10*time.Hour)
	for id, want := range map[string]bool{"s3": false, "s4": false, "s5": true, "s6": true} {
		present(id, want)
	}
	// DeleteExpired removes the rest once they expire.
	if _, err := s.DeleteExpired(ctx, start.Add(24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	present("s5", false)
	present("s6", false)

	// Many logins never hold more than the bound.
	for i := range 1000 {
		create(fmt.Sprintf("many-%d", i), start.Add(48*time.Hour), time.Hour)
	}
	kept := 0
	for i := range 1000 {
		if _, err := s.Session(ctx, fmt.Sprintf("many-%d", i)); err == nil {
			kept++
		}
	}
	if kept != 3 {
		t.Errorf("after 1000 logins: got %d records, want 3 (the bound)", kept)
	}
	present("many-999", true)
}
