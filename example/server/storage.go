package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/pixieauth/pixie/store"
	"github.com/pixieauth/pixie/store/memory"
	"github.com/pixieauth/pixie/store/sqlstore"
	"github.com/pixieauth/pixie/store/sqlstore/postgres"
	"github.com/pixieauth/pixie/store/sqlstore/sqlite"
)

// durable is where the example keeps what must survive a restart and be
// shared by replicas: grants (codes, refresh tokens), signing keys,
// consents, the login throttle and login sessions.
type durable interface {
	store.Grants
	store.Keys
	store.Consents // what users allowed example-other
	store.Throttle // failed logins and client authentications, shared by replicas
	store.Sessions // login sessions: a logout on one replica ends them on all
	Close() error
}

// openStore opens the store the flags choose for grants and keys:
// PostgreSQL with -postgres, memory with -memory, and otherwise the SQLite
// file -db (default pixie.db).
func openStore(ctx context.Context, o options, out io.Writer) (durable, error) {
	switch {
	case o.memory:
		return memDurable{memory.New()}, nil
	case o.postgres != "":
		if o.keySecret == "" {
			return nil, errors.New("-postgres needs -key-secret (or PIXIE_KEY_SECRET): the secret that encrypts the signing keys, shared by every replica")
		}
		st, err := postgres.Open(ctx, o.postgres, sqlstore.Config{KeySecret: []byte(o.keySecret)})
		if err != nil {
			return nil, err
		}
		return st, nil
	default:
		secret := o.keySecret
		if secret == "" {
			var err error
			if secret, err = fileSecret(o.db+".key", out); err != nil {
				return nil, err
			}
		}
		st, err := sqlite.Open(ctx, o.db, sqlstore.Config{KeySecret: []byte(secret)})
		if err != nil {
			return nil, err
		}
		return st, nil
	}
}

// fileSecret reads the key-encryption secret from path, creating it (mode
// 0600) on first start. A convenience of the demo: in production pass
// -key-secret from your secret manager, and keep it apart from the database.
func fileSecret(path string, out io.Writer) (string, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		if len(b) < sqlstore.MinKeySecretLen {
			return "", fmt.Errorf("key secret file %s is shorter than %d bytes", path, sqlstore.MinKeySecretLen)
		}
		return string(b), nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", err
	}
	secret := base64.RawURLEncoding.EncodeToString(raw)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) { // another process made it first
		return fileSecret(path, out)
	} else if err != nil {
		return "", err
	}
	if _, err := f.WriteString(secret); err != nil {
		f.Close()
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	fmt.Fprintf(out, "created %s: the secret that encrypts the signing keys in the database\n", path)
	return secret, nil
}

type memDurable struct{ *memory.Store }

func (memDurable) Close() error { return nil }
