package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/pixieauth/pixie/internal/pgtest"
	"github.com/pixieauth/pixie/store"
	"github.com/pixieauth/pixie/store/sqlstore"
	"github.com/pixieauth/pixie/store/sqlstore/internal/sqlstoretest"
)

// queryCounter is a pgx tracer that counts the statements sent (queries,
// BEGIN and COMMIT included) and the preparations, each a round trip.
type queryCounter struct {
	mu       sync.Mutex
	queries  int
	prepares int
}

func (c *queryCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.queries++
	return ctx
}

func (c *queryCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (c *queryCounter) TracePrepareStart(ctx context.Context, _ *pgx.Conn, _ pgx.TracePrepareStartData) context.Context {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.prepares++
	return ctx
}

func (c *queryCounter) TracePrepareEnd(context.Context, *pgx.Conn, pgx.TracePrepareEndData) {}

// take returns the counts since the last call and resets them.
func (c *queryCounter) take() (queries, prepares int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	queries, prepares = c.queries, c.prepares
	c.queries, c.prepares = 0, 0
	return queries, prepares
}

// TestApplyGrantsOneStatement counts what ApplyGrants sends to PostgreSQL:
// one statement, whether the batch is applied or refused, and no
// preparation once its shape has been seen on the connection.
func TestApplyGrantsOneStatement(t *testing.T) {
	connCfg, err := pgx.ParseConfig(pgtest.FreshSchema(t))
	if err != nil {
		t.Fatal(err)
	}
	counter := &queryCounter{}
	connCfg.Tracer = counter
	db := stdlib.OpenDB(*connCfg)
	t.Cleanup(func() { _ = db.Close() })
	db.SetMaxOpenConns(1) // one connection: its statement cache is the one measured
	ctx := t.Context()
	s, err := sqlstore.New(ctx, db, sqlstore.Config{Dialect: sqlstore.Postgres, KeySecret: sqlstoretest.Secret})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })

	// refresh is the batch of a refresh-token exchange: consume rt-n,
	// revoke the request's access tokens, store at-n+1 and rt-n+1.
	refresh := func(n int) *store.GrantBatch {
		return &store.GrantBatch{
			Consume: []store.GrantKey{{Kind: store.KindRefreshToken, Signature: fmt.Sprintf("rt-%d", n)}},
			Revoke:  []store.GrantFamily{{Kind: store.KindAccessToken, RequestID: "req-1"}},
			Create: []*store.Grant{
				{Kind: store.KindAccessToken, Signature: fmt.Sprintf("at-%d", n+1), RequestID: "req-1", ClientID: "app", Data: []byte("at")},
				{Kind: store.KindRefreshToken, Signature: fmt.Sprintf("rt-%d", n+1), RequestID: "req-1", ClientID: "app", Data: []byte("rt")},
			},
		}
	}
	counter.take() // New's migrations and preparations
	if err := s.CreateGrant(ctx, &store.Grant{Kind: store.KindRefreshToken, Signature: "rt-0", RequestID: "req-1", ClientID: "app"}); err != nil {
		t.Fatal(err)
	}
	if err := s.ApplyGrants(ctx, refresh(0)); err != nil { // the first of its shape
		t.Fatal(err)
	}
	// CreateGrant's statement and the batch's; the batch's preparation.
	if q, p := counter.take(); q != 2 || p != 1 {
		t.Errorf("CreateGrant and a first batch: got %d statements and %d preparations, want 2 and 1", q, p)
	}

	// Each case: the batch, the error it yields.
	for _, tc := range []struct {
		name  string
		batch *store.GrantBatch
		want  error
	}{
		{"Applied", refresh(1), nil},
		{"Consumed", refresh(0), store.ErrConsumed},
		{"Missing", refresh(7), store.ErrNotFound},
		{"Duplicate", func() *store.GrantBatch { b := refresh(2); b.Create[0].Signature = "at-1"; return b }(), store.ErrAlreadyExists},
	} {
		counter.take()
		err := s.ApplyGrants(ctx, tc.batch)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: got error %v, want %v", tc.name, err, tc.want)
		}
		if q, p := counter.take(); q != 1 || p != 0 {
			t.Errorf("%s: got %d statements and %d preparations, want 1 and 0", tc.name, q, p)
		}
	}
}

// BenchmarkApplyGrants compares a refresh-token exchange's writes in a
// transaction and in one ApplyGrants. Run:
//
//	go test -run '^$' -bench ApplyGrants ./store/sqlstore/postgres/
func BenchmarkApplyGrants(b *testing.B) {
	pgtest.DSN(b)
	sqlstoretest.BenchBatch(b, backend)
}
