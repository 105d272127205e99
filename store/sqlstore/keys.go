package sqlstore

import (
	"context"
	"fmt"

	"github.com/pixieauth/pixie/store"
)

// Keys returns every stored signing key, oldest first, decrypted. It
// implements [store.Keys]. A key that does not decrypt under the Store's
// [Config.KeySecret] makes it fail with an error wrapping [ErrDecrypt]
// rather than return fewer keys.
func (s *Store) Keys(ctx context.Context) ([]store.Key, error) {
	rows, err := s.stmt(ctx, s.stmts.keysAll).QueryContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: keys: %w", err)
	}
	defer rows.Close()
	var keys []store.Key
	for rows.Next() {
		var k store.Key
		var enc []byte
		var created int64
		if err := rows.Scan(&k.ID, &k.Algorithm, &enc, &created); err != nil {
			return nil, fmt.Errorf("sqlstore: keys: %w", err)
		}
		if k.Private, err = s.openKey(k.ID, k.Algorithm, enc); err != nil {
			return nil, fmt.Errorf("sqlstore: keys: key %q: %w", k.ID, err)
		}
		k.CreatedAt = fromMicro(created)
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlstore: keys: %w", err)
	}
	return keys, nil
}

// AddKey stores k, its private key encrypted with AES-256-GCM under the
// key derived from [Config.KeySecret]. It implements [store.Keys]. A key with
// the same ID already present yields an error wrapping
// [store.ErrAlreadyExists].
func (s *Store) AddKey(ctx context.Context, k store.Key) error {
	enc, err := s.sealKey(k.ID, k.Algorithm, k.Private)
	if err != nil {
		return fmt.Errorf("sqlstore: add key %q: %w", k.ID, err)
	}
	res, err := s.stmt(ctx, s.stmts.keyAdd).ExecContext(ctx, k.ID, k.Algorithm, enc, toMicro(k.CreatedAt))
	if err := inserted(res, err); err != nil {
		return fmt.Errorf("sqlstore: add key %q: %w", k.ID, err)
	}
	return nil
}
