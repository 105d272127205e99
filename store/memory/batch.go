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
// [store.Batcher]: it first checks that there is room for b.Create (see
// [MaxGrants]), that every record b.Consume names is present and active
// and that no record of b.Create exists, and writes nothing if one is not
// (an error wrapping [ErrFull], [store.ErrNotFound], [store.ErrConsumed] or
// [store.ErrAlreadyExists], for the first such record in the order
// Consume, Create); then it consumes, revokes and creates, in that order,
// so that b.Revoke does not touch b.Create's records. Invalid kinds, a nil
// record and two entries naming one record are errors, and nothing is
// written.
func (s *Store) ApplyGrants(_ context.Context, b *store.GrantBatch) error {
	if b == nil {
		return errors.New("memory: apply grants: nil batch")
	}
	kinds, err := checkBatch(b)
	if err != nil {
		return fmt.Errorf("memory: apply grants: %w", err)
	}
	room := store.KindAccessToken // the bound of records of issued grants
	for _, g := range b.Create {
		if g.Kind == store.KindAuthorizeCode {
			room = g.Kind // the bound of new grants
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	// Make room first: it may remove expired records, so it must not come
	// between the checks and the writes.
	if err := s.makeRoom(room, len(b.Create)); err != nil {
		return fmt.Errorf("memory: apply grants: %w", err)
	}
	consumed := make([]*record, len(b.Consume))
	for i, k := range b.Consume {
		r := s.find(kinds.consume[i], k.Signature)
		switch {
		case r == nil:
			return fmt.Errorf("memory: apply grants: consume %s: %w", k.Kind, store.ErrNotFound)
		case !r.active:
			return fmt.Errorf("memory: apply grants: consume %s: %w", k.Kind, store.ErrConsumed)
		}
		consumed[i] = r
	}
	for i, g := range b.Create {
		if s.find(kinds.create[i], g.Signature) != nil {
			return fmt.Errorf("memory: apply grants: create %s: %w", g.Kind, store.ErrAlreadyExists)
		}
	}
	// Nothing can fail from here on.
	for _, r := range consumed {
		r.active = false
	}
	for i, f := range b.Revoke {
		s.revoke(kinds.revoke[i], f.RequestID)
	}
	for i, g := range b.Create {
		s.insert(kinds.create[i], g)
	}
	return nil
}

// batchKinds are the kind indexes of a batch's entries.
type batchKinds struct {
	consume, revoke, create []byte
}

// checkBatch reports what makes b invalid whatever the store holds: an
// invalid kind, a nil or oversized record, or two entries naming one
// record. It returns the kind indexes of b's entries.
func checkBatch(b *store.GrantBatch) (batchKinds, error) {
	var kinds batchKinds
	seen := make(map[store.GrantKey]bool, len(b.Consume)+len(b.Create))
	for _, k := range b.Consume {
		i, ok := kindIndex(k.Kind)
		if !ok {
			return kinds, fmt.Errorf("consume: invalid kind %q", k.Kind)
		}
		if seen[k] {
			return kinds, fmt.Errorf("consume %s: the batch names the record twice", k.Kind)
		}
		seen[k] = true
		kinds.consume = append(kinds.consume, i)
	}
	for _, f := range b.Revoke {
		i, ok := kindIndex(f.Kind)
		if !ok {
			return kinds, fmt.Errorf("revoke: invalid kind %q", f.Kind)
		}
		kinds.revoke = append(kinds.revoke, i)
	}
	for _, g := range b.Create {
		i, err := checkGrant(g)
		if err != nil {
			return kinds, fmt.Errorf("create: %w", err)
		}
		k := store.GrantKey{Kind: g.Kind, Signature: g.Signature}
		if seen[k] {
			return kinds, fmt.Errorf("create %s: the batch names the record twice", g.Kind)
		}
		seen[k] = true
		kinds.create = append(kinds.create, i)
	}
	return kinds, nil
}
