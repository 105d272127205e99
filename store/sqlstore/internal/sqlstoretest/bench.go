package sqlstoretest

import (
	"context"
	"database/sql"
	"fmt"
	"testing"

	"github.com/pixieauth/pixie/store"
	"github.com/pixieauth/pixie/store/sqlstore"
)

// Bench measures the store calls of a token exchange, with the statements
// New prepares ("prepared") and with the same SQL sent through
// [sql.DB.QueryRowContext] and [sql.DB.ExecContext] ("unprepared", which on
// pgx still uses pgx's own statement cache), and parallel reads with one
// connection and with four.
func Bench(b *testing.B, be Backend) {
	ctx := b.Context()
	s, db := openBench(b, be)
	mustOKB(b, s.CreateGrant(ctx, newGrant(store.KindAccessToken, "at-read", "req-1")))

	getSQL := be.q(`SELECT request_id, client_id, subject, expires_at, active, data FROM grants WHERE kind = ? AND signature = ?`)
	insertSQL := be.q(`INSERT INTO grants (kind, signature, request_id, client_id, subject, expires_at, active, data)
VALUES (?, ?, ?, ?, ?, ?, TRUE, ?) ON CONFLICT DO NOTHING`)
	consumeSQL := be.q(`UPDATE grants SET active = FALSE WHERE kind = ? AND signature = ? AND active`)

	b.Run("Grant/prepared", func(b *testing.B) {
		for b.Loop() {
			if _, err := s.Grant(ctx, store.KindAccessToken, "at-read"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Grant/unprepared", func(b *testing.B) {
		for b.Loop() {
			var rid, cid, sub string
			var exp int64
			var active bool
			var data []byte
			if err := db.QueryRowContext(ctx, getSQL, string(store.KindAccessToken), "at-read").
				Scan(&rid, &cid, &sub, &exp, &active, &data); err != nil {
				b.Fatal(err)
			}
		}
	})
	i := 0 // makes signatures unique, however often each function runs
	b.Run("CreateConsume/prepared", func(b *testing.B) {
		for b.Loop() {
			i++
			sig := fmt.Sprintf("p-%d", i)
			if err := s.CreateGrant(ctx, newGrant(store.KindAuthorizeCode, sig, "req-1")); err != nil {
				b.Fatal(err)
			}
			if err := s.Consume(ctx, store.KindAuthorizeCode, sig); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("CreateConsume/unprepared", func(b *testing.B) {
		for b.Loop() {
			i++
			sig := fmt.Sprintf("u-%d", i)
			g := newGrant(store.KindAuthorizeCode, sig, "req-1")
			if _, err := db.ExecContext(ctx, insertSQL, string(g.Kind), g.Signature, g.RequestID, g.ClientID,
				g.Subject, g.ExpiresAt.UnixMicro(), g.Data); err != nil {
				b.Fatal(err)
			}
			if _, err := db.ExecContext(ctx, consumeSQL, string(g.Kind), g.Signature); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, conns := range []int{1, 4} {
		b.Run(fmt.Sprintf("GrantParallel/conns=%d", conns), func(b *testing.B) {
			db.SetMaxOpenConns(conns)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := s.Grant(context.Background(), store.KindAccessToken, "at-read"); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// openBench opens a Store on a fresh database.
func openBench(b *testing.B, be Backend) (*sqlstore.Store, *sql.DB) {
	s, db, err := be.NewDatabase(b)(be.Config())
	mustOKB(b, err)
	return s, db
}

func mustOKB(b *testing.B, err error) {
	b.Helper()
	if err != nil {
		b.Fatal(err)
	}
}
