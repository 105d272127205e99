package memory

import (
	"context"
	"errors"
	"fmt"

	"github.com/pixieauth/pixie/store"
)

// The memory store applies a token exchange's writes at once.
var _ store.Batcher = (*Store)(nil)

// ApplyGrants applies b under the store's lock, all or none. It implements
// [store.Batcher]: it first checks that every record b.Consume names is
// present and active and that no record of b.Create exists, and writes
// nothing if one is not (an error wrapping [store.ErrNotFound],
// [store.ErrConsumed] or [store.ErrAlreadyExists], for the first such
// record in the order Consume, Create); then it consumes, revokes and
// creates, in that order, so that b.Revoke does not touch b.Create's
// records. Invalid kinds, a nil record and two entries naming one record
// are errors, and nothing is written.
func (s *Store) ApplyGrants(_ context.Context, b *store.GrantBatch) error {
	if b == nil {
		return errors.New("memory: apply grants: nil batch")
	}
	if err := checkBatch(b); err != nil {
		return fmt.Errorf("memory: apply grants: %w", err)
	}
	creates := make([]*store.Grant, len(b.Create))
	for i, g := range b.Create {
		creates[i] = g.Clone()
		creates[i].Active = true
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	consumed := make([]*store.Grant, len(b.Consume))
	for i, k := range b.Consume {
		g, ok := s.grants[grantKey{k.Kind, k.Signature}]
		switch {
		case !ok:
			return fmt.Errorf("memory: apply grants: consume %s: %w", k.Kind, store.ErrNotFound)
		case !g.Active:
			return fmt.Errorf("memory: apply grants: consume %s: %w", k.Kind, store.ErrConsumed)
		}
		consumed[i] = g
	}
	for _, g := range creates {
		if _, ok := s.grants[grantKey{g.Kind, g.Signature}]; ok {
			return fmt.Errorf("memory: apply grants: create %s: %w", g.Kind, store.ErrAlreadyExists)
		}
	}
	// Nothing can fail from here on.
	for _, g := range consumed {
		g.Active = false
	}
	for _, f := range b.Revoke {
		for sig := range s.byRequest[requestKey{f.Kind, f.RequestID}] {
			s.grants[grantKey{f.Kind, sig}].Active = false
		}
	}
	for _, g := range creates {
		s.insertGrant(g)
	}
	return nil
}

// insertGrant stores g, which the caller owns no more, and indexes it. The
// caller holds s.mu for writing and has checked that its key is free.
func (s *Store) insertGrant(g *store.Grant) {
	s.grants[grantKey{g.Kind, g.Signature}] = g
	rk := requestKey{g.Kind, g.RequestID}
	sigs := s.byRequest[rk]
	if sigs == nil {
		sigs = make(map[string]struct{})
		s.byRequest[rk] = sigs
	}
	sigs[g.Signature] = struct{}{}
}

// checkBatch reports what makes b invalid whatever the store holds: an
// invalid kind, a nil record, or two entries naming one record.
func checkBatch(b *store.GrantBatch) error {
	seen := make(map[grantKey]bool, len(b.Consume)+len(b.Create))
	for _, k := range b.Consume {
		if !k.Kind.Valid() {
			return fmt.Errorf("consume: invalid kind %q", k.Kind)
		}
		if seen[grantKey{k.Kind, k.Signature}] {
			return fmt.Errorf("consume %s: the batch names the record twice", k.Kind)
		}
		seen[grantKey{k.Kind, k.Signature}] = true
	}
	for _, f := range b.Revoke {
		if !f.Kind.Valid() {
			return fmt.Errorf("revoke: invalid kind %q", f.Kind)
		}
	}
	for _, g := range b.Create {
		if g == nil {
			return errors.New("create: nil grant")
		}
		if !g.Kind.Valid() {
			return fmt.Errorf("create: invalid kind %q", g.Kind)
		}
		if seen[grantKey{g.Kind, g.Signature}] {
			return fmt.Errorf("create %s: the batch names the record twice", g.Kind)
		}
		seen[grantKey{g.Kind, g.Signature}] = true
	}
	return nil
}
