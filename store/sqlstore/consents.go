package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Consent returns the scopes the user last allowed the client, in the order
// saved, or an empty list and no error if none. It implements
// [store.Consents].
func (s *Store) Consent(ctx context.Context, subject, clientID string) ([]string, error) {
	var scopes string
	err := s.stmt(ctx, s.stmts.consentGet).QueryRowContext(ctx, subject, clientID).Scan(&scopes)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("sqlstore: consent: %w", err)
	}
	l, err := decodeList(scopes)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: consent: scopes: %w", err)
	}
	return l, nil
}

// SaveConsent records the scopes the user allows the client, replacing what
// was recorded before, in one upsert (INSERT … ON CONFLICT DO UPDATE). It
// implements [store.Consents]. The row's updated_at is set to the current
// time, for operators; pixie does not read it.
func (s *Store) SaveConsent(ctx context.Context, subject, clientID string, scopes []string) error {
	l, err := encodeList(scopes)
	if err != nil {
		return fmt.Errorf("sqlstore: save consent: %w", err)
	}
	if _, err := s.stmt(ctx, s.stmts.consentSave).ExecContext(ctx, subject, clientID, l, toMicro(time.Now())); err != nil {
		return fmt.Errorf("sqlstore: save consent: %w", err)
	}
	return nil
}
