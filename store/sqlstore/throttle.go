package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/pixieauth/pixie/store"
)

// AddHit counts an event for key at time now and returns the key's Hits
// after it. It implements [store.Throttle]: a window opens with the key's
// first event and ends window later, later events do not move its end, and
// a window shorter than a microsecond is an error. Times are kept to the
// microsecond.
//
// It is one statement, INSERT … ON CONFLICT (key) DO UPDATE … RETURNING,
// that both decides whether the window has ended and counts: of N
// concurrent calls on one key, on any number of connections or replicas,
// each gets a different count and the key ends with N more.
//
// The row lives until [Store.ResetHits], or until [Store.DeleteExpired]
// finds its window ended.
func (s *Store) AddHit(ctx context.Context, key string, now time.Time, window time.Duration) (store.Hits, error) {
	w := window.Microseconds()
	if w <= 0 {
		return store.Hits{}, fmt.Errorf("sqlstore: add hit: window %v is shorter than a microsecond", window)
	}
	at := toMicro(now)
	var h store.Hits
	var last, expires int64
	err := s.stmt(ctx, s.stmts.hitAdd).QueryRowContext(ctx, key, at, at+w, at, at, at).Scan(&h.Count, &last, &expires)
	if err != nil {
		return store.Hits{}, fmt.Errorf("sqlstore: add hit: %w", err)
	}
	h.Last, h.Expires = fromMicro(last), fromMicro(expires)
	return h, nil
}

// Hits returns the key's Hits if its window is open at now (ends after it),
// else the zero Hits. It implements [store.Throttle].
func (s *Store) Hits(ctx context.Context, key string, now time.Time) (store.Hits, error) {
	var h store.Hits
	var last, expires int64
	err := s.stmt(ctx, s.stmts.hitGet).QueryRowContext(ctx, key, toMicro(now)).Scan(&h.Count, &last, &expires)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return store.Hits{}, nil
	case err != nil:
		return store.Hits{}, fmt.Errorf("sqlstore: hits: %w", err)
	}
	h.Last, h.Expires = fromMicro(last), fromMicro(expires)
	return h, nil
}

// ResetHits forgets key. It implements [store.Throttle]; it is not an error
// if the key has no row.
func (s *Store) ResetHits(ctx context.Context, key string) error {
	if _, err := s.stmt(ctx, s.stmts.hitReset).ExecContext(ctx, key); err != nil {
		return fmt.Errorf("sqlstore: reset hits: %w", err)
	}
	return nil
}
