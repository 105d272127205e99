package memory

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/pixieauth/pixie/store"
)

// MaxSessions is how many login-session records a Store holds at
// most: past it, [Store.CreateSession] removes the oldest records, which
// ends those sessions early (their users sign in again). A record takes
// about 600 bytes (measured with one user per session), so a full table
// about 60 MB.
const MaxSessions = 100_000

// sessionTable holds the login-session records of a Store. Store.mu guards
// it.
type sessionTable struct {
	byID      map[string]*store.Session
	bySubject map[string]map[string]struct{} // subject → IDs
	// order lists IDs in the order created, for removing the oldest. It may
	// hold IDs already removed; they are skipped, and the list compacted
	// when they are most of it.
	order []string
	max   int
}

func newSessionTable() sessionTable {
	return sessionTable{
		byID:      make(map[string]*store.Session),
		bySubject: make(map[string]map[string]struct{}),
		max:       MaxSessions,
	}
}

// CreateSession stores a copy of sess. A record with the same ID already
// present yields an error wrapping [store.ErrAlreadyExists]. It implements
// [store.Sessions].
//
// It keeps the store bounded: it first removes the oldest records while
// they expired before sess.CreatedAt, then, while there are more than
// [MaxSessions], the oldest whatever their expiry. [Store.DeleteExpired]
// removes every expired record.
func (s *Store) CreateSession(_ context.Context, sess *store.Session) error {
	if sess == nil || sess.ID == "" {
		return errors.New("memory: create session: missing session or ID")
	}
	sess = sess.Clone()
	s.mu.Lock()
	defer s.mu.Unlock()
	t := &s.sessions
	if _, ok := t.byID[sess.ID]; ok {
		return fmt.Errorf("memory: create session: %w", store.ErrAlreadyExists)
	}
	t.byID[sess.ID] = sess
	ids := t.bySubject[sess.Subject]
	if ids == nil {
		ids = make(map[string]struct{})
		t.bySubject[sess.Subject] = ids
	}
	ids[sess.ID] = struct{}{}
	t.order = append(t.order, sess.ID)
	t.trim(sess.CreatedAt)
	return nil
}

// trim removes the oldest records while they expired before now or the
// table is over its bound, and compacts the order list.
func (t *sessionTable) trim(now time.Time) {
	i := 0
	for ; i < len(t.order); i++ {
		old, ok := t.byID[t.order[i]]
		if !ok {
			continue // removed already
		}
		if len(t.byID) <= t.max && !old.ExpiresAt.Before(now) {
			break
		}
		t.remove(old)
	}
	t.order = t.order[i:]
	if len(t.order) > 2*len(t.byID)+64 {
		kept := make([]string, 0, len(t.byID))
		for _, id := range t.order {
			if _, ok := t.byID[id]; ok {
				kept = append(kept, id)
			}
		}
		t.order = kept
	}
}

// remove deletes a record and its index entry.
func (t *sessionTable) remove(sess *store.Session) {
	delete(t.byID, sess.ID)
	ids := t.bySubject[sess.Subject]
	delete(ids, sess.ID)
	if len(ids) == 0 {
		delete(t.bySubject, sess.Subject)
	}
}

// deleteExpired removes the records whose ExpiresAt is before before.
func (t *sessionTable) deleteExpired(before time.Time) {
	for _, sess := range t.byID {
		if sess.ExpiresAt.Before(before) {
			t.remove(sess)
		}
	}
	t.trim(time.Time{})
}

// Session returns a copy of the record with that ID, revoked or expired or
// not, or an error wrapping [store.ErrNotFound]. It implements
// [store.Sessions].
func (s *Store) Session(_ context.Context, id string) (*store.Session, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	sess, ok := s.sessions.byID[id]
	if !ok {
		return nil, fmt.Errorf("memory: session: %w", store.ErrNotFound)
	}
	return sess.Clone(), nil
}

// TouchSession sets the record's LastUsed to at if that is later. A missing
// record yields an error wrapping [store.ErrNotFound]. It implements
// [store.Sessions].
func (s *Store) TouchSession(_ context.Context, id string, at time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.sessions.byID[id]
	if !ok {
		return fmt.Errorf("memory: touch session: %w", store.ErrNotFound)
	}
	if at.After(sess.LastUsed) {
		sess.LastUsed = at
	}
	return nil
}

// RevokeSession marks the record revoked; a missing one is not an error. It
// implements [store.Sessions].
func (s *Store) RevokeSession(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sess, ok := s.sessions.byID[id]; ok {
		sess.Revoked = true
	}
	return nil
}

// RevokeSessions marks every record of the subject revoked. It implements
// [store.Sessions].
func (s *Store) RevokeSessions(_ context.Context, subject string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id := range s.sessions.bySubject[subject] {
		s.sessions.byID[id].Revoked = true
	}
	return nil
}
