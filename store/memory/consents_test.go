package memory

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/pixieauth/pixie/store"
)

// consentFor returns a consent of subject to the client web for no API,
// expiring at exp.
func consentFor(subject string, exp time.Time) *store.Consent {
	return &store.Consent{Subject: subject, ClientID: "web", Scopes: []string{"openid"}, ExpiresAt: exp}
}

// has reports whether s holds the consent of subject to web, failing the
// test on any error other than not found.
func has(t *testing.T, s *Store, subject string) bool {
	t.Helper()
	_, err := s.Consent(t.Context(), subject, "web", "")
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		t.Fatal(err)
	}
	return err == nil
}

// checkIndexes checks that the expiry heap holds exactly the consents.
func checkIndexes(t *testing.T, s *Store) {
	t.Helper()
	s.mu.RLock()
	defer s.mu.RUnlock()
	if len(s.byExpiry) != len(s.consents) {
		t.Fatalf("heap holds %d consents, map %d", len(s.byExpiry), len(s.consents))
	}
	for i, e := range s.byExpiry {
		if e.index != i || s.consents[e.key] != e {
			t.Fatalf("heap entry %d (index %d) is not the map's", i, e.index)
		}
		if i > 0 && s.byExpiry[(i-1)/2].c.ExpiresAt.After(e.c.ExpiresAt) {
			t.Fatalf("heap entry %d expires before its parent", i)
		}
	}
}

// TestConsentsSweptOnWrite: saving a consent removes the ones that expired,
// and keeps the others.
func TestConsentsSweptOnWrite(t *testing.T) {
	s := New()
	now := time.Now()
	mustSave(t, s, consentFor("expired", now.Add(-time.Minute)))
	mustSave(t, s, consentFor("live", now.Add(time.Hour)))
	if has(t, s, "expired") || !has(t, s, "live") {
		t.Errorf("after a write: expired kept %v, live kept %v; want false, true", has(t, s, "expired"), has(t, s, "live"))
	}
	checkIndexes(t, s)

	// What a janitor does: sweep by a time.
	s.mu.Lock()
	s.sweepConsents(now.Add(2 * time.Hour))
	s.mu.Unlock()
	if has(t, s, "live") {
		t.Error("sweepConsents after its expiry kept the consent")
	}
	checkIndexes(t, s)
}

// TestConsentsCap: a full store evicts the consent that expires soonest to
// make room, and a replacement evicts nothing.
func TestConsentsCap(t *testing.T) {
	s := New()
	if s.maxConsents != MaxConsents {
		t.Fatalf("New: cap %d, want MaxConsents (%d)", s.maxConsents, MaxConsents)
	}
	s.maxConsents = 3
	now := time.Now()
	mustSave(t, s, consentFor("b", now.Add(2*time.Hour)))
	mustSave(t, s, consentFor("a", now.Add(time.Hour)))
	mustSave(t, s, consentFor("c", now.Add(3*time.Hour)))
	mustSave(t, s, consentFor("a", now.Add(4*time.Hour))) // replaces a: no eviction
	for _, sub := range []string{"a", "b", "c"} {
		if !has(t, s, sub) {
			t.Errorf("consent of %s evicted by a replacement", sub)
		}
	}
	mustSave(t, s, consentFor("d", now.Add(5*time.Hour))) // evicts b, the soonest
	for sub, want := range map[string]bool{"a": true, "b": false, "c": true, "d": true} {
		if got := has(t, s, sub); got != want {
			t.Errorf("consent of %s: held %v, want %v", sub, got, want)
		}
	}
	checkIndexes(t, s)

	// Many more than the cap, each saved later and expiring later, as
	// with one lifetime for all: the store keeps the latest.
	s.maxConsents = 100
	for i := range 1000 {
		mustSave(t, s, consentFor(fmt.Sprint("user-", i), now.Add(time.Duration(10+i)*time.Hour)))
		if len(s.consents) > s.maxConsents {
			t.Fatalf("after %d saves: %d consents held, cap %d", i+1, len(s.consents), s.maxConsents)
		}
	}
	checkIndexes(t, s)
	if len(s.consents) != 100 || has(t, s, "user-899") || !has(t, s, "user-900") || !has(t, s, "user-999") {
		t.Errorf("held %d consents; want the 100 latest, user-900 to user-999", len(s.consents))
	}
}

func mustSave(t *testing.T, s *Store, c *store.Consent) {
	t.Helper()
	if err := s.SaveConsent(t.Context(), c); err != nil {
		t.Fatal(err)
	}
}
