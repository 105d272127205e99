package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/pixieauth/pixie/store"
)

// Consent returns the consent of subject to clientID for audience, its
// scopes in the order saved, or an error wrapping [store.ErrNotFound]. It
// implements [store.Consents]: an expired consent is returned until
// [Store.DeleteExpired] removes it; the caller checks ExpiresAt.
func (s *Store) Consent(ctx context.Context, subject, clientID, audience string) (*store.Consent, error) {
	var scopes string
	var exp int64
	err := s.stmt(ctx, s.stmts.consentGet).QueryRowContext(ctx, subject, clientID, audience).Scan(&scopes, &exp)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, fmt.Errorf("sqlstore: consent: %w", store.ErrNotFound)
	case err != nil:
		return nil, fmt.Errorf("sqlstore: consent: %w", err)
	}
	l, err := decodeList(scopes)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: consent: scopes: %w", err)
	}
	return &store.Consent{Subject: subject, ClientID: clientID, Audience: audience, Scopes: l, ExpiresAt: fromMicro(exp)}, nil
}

// SaveConsent stores c, replacing the consent with the same subject, client
// and audience, in one upsert (INSERT … ON CONFLICT DO UPDATE). It
// implements [store.Consents]. The row's updated_at is set to the current
// time, for operators; pixie does not read it.
func (s *Store) SaveConsent(ctx context.Context, c *store.Consent) error {
	if c == nil {
		return errors.New("sqlstore: save consent: nil consent")
	}
	l, err := encodeList(c.Scopes)
	if err != nil {
		return fmt.Errorf("sqlstore: save consent: %w", err)
	}
	if _, err := s.stmt(ctx, s.stmts.consentSave).ExecContext(ctx,
		c.Subject, c.ClientID, c.Audience, l, toMicro(c.ExpiresAt), toMicro(time.Now())); err != nil {
		return fmt.Errorf("sqlstore: save consent: %w", err)
	}
	return nil
}
