package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// AddFailure records a failure for key at time at and returns the number of
// failures in the key's current window, this one included. The window starts
// at the first failure and ends window later: a failure at or after its end
// starts a new window, counting 1. It implements [store.Throttle]; a window
// that is not positive is an error.
//
// It is one statement, INSERT … ON CONFLICT (key) DO UPDATE … RETURNING
// count, that both decides whether the window has ended and counts: of N
// concurrent calls on one key, on any number of connections or replicas,
// each gets a different count and the key ends with N more. Times are kept
// to the microsecond.
//
// The row lives until [Store.ResetFailures], or until [Store.DeleteExpired]
// finds its window ended.
func (s *Store) AddFailure(ctx context.Context, key string, at time.Time, window time.Duration) (int, error) {
	w, err := windowMicros(window)
	if err != nil {
		return 0, fmt.Errorf("sqlstore: add failure: %w", err)
	}
	now := toMicro(at)
	ended := now - w // a window that started then or before has ended at now
	var count int
	err = s.stmt(ctx, s.stmts.failureAdd).QueryRowContext(ctx, key, now, now+w, ended, ended, ended, w).Scan(&count)
	if err != nil {
		return 0, fmt.Errorf("sqlstore: add failure: %w", err)
	}
	return count, nil
}

// Failures returns the number of failures of key in a window still open at
// time at: one that started less than window before it. Otherwise it
// returns 0. It implements [store.Throttle]; a window that is not positive
// is an error.
func (s *Store) Failures(ctx context.Context, key string, at time.Time, window time.Duration) (int, error) {
	w, err := windowMicros(window)
	if err != nil {
		return 0, fmt.Errorf("sqlstore: failures: %w", err)
	}
	var count int
	err = s.stmt(ctx, s.stmts.failureGet).QueryRowContext(ctx, key, toMicro(at)-w).Scan(&count)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return 0, nil
	case err != nil:
		return 0, fmt.Errorf("sqlstore: failures: %w", err)
	}
	return count, nil
}

// ResetFailures forgets the failures of key. It implements [store.Throttle];
// it is not an error if there are none.
func (s *Store) ResetFailures(ctx context.Context, key string) error {
	if _, err := s.stmt(ctx, s.stmts.failureReset).ExecContext(ctx, key); err != nil {
		return fmt.Errorf("sqlstore: reset failures: %w", err)
	}
	return nil
}

// windowMicros returns a throttle window in microseconds, the unit of the
// throttle table. A window shorter than a microsecond is an error: it would
// make every failure the first of its window and disable throttling.
func windowMicros(window time.Duration) (int64, error) {
	w := window.Microseconds()
	if w <= 0 {
		return 0, fmt.Errorf("window %v is not positive", window)
	}
	return w, nil
}
