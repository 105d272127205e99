package sqlstoretest

import (
	"fmt"
	"testing"

	"github.com/pixieauth/pixie/store"
	"github.com/pixieauth/pixie/store/sqlstore"
	"github.com/pixieauth/pixie/store/storetest"
)

// The tests of [sqlstore.Store.ApplyGrants] beyond the conformance suite's.

// testBatchTwoPools races batches redeeming one code from two connection
// pools, as two replicas would: exactly one is applied.
func testBatchTwoPools(t *testing.T, b Backend) {
	pools := twoPools(t, b)
	ctx := t.Context()
	for round := range 3 {
		code := fmt.Sprintf("code-%d", round)
		mustOK(t, pools[0].CreateGrant(ctx, newGrant(store.KindAuthorizeCode, code, "req-1")))
		errs := storetest.Race(20, func(i int) error {
			return pools[i%2].ApplyGrants(ctx, &store.GrantBatch{
				Consume: []store.GrantKey{{Kind: store.KindAuthorizeCode, Signature: code}},
				Create:  []*store.Grant{newGrant(store.KindAccessToken, fmt.Sprintf("at-%d-%d", round, i), "req-1")},
			})
		})
		storetest.ExactlyOneWins(t, errs, store.ErrConsumed)
		for i, err := range errs {
			_, gerr := pools[1].Grant(ctx, store.KindAccessToken, fmt.Sprintf("at-%d-%d", round, i))
			if (err == nil) != (gerr == nil) {
				t.Errorf("round %d, batch %d: got error %v and, reading its access token, %v; want both nil or neither", round, i, err, gerr)
			}
		}
	}
}

// testBatchRefusesTx checks that ApplyGrants refuses a context carrying a
// transaction, writes nothing, and leaves the transaction usable.
func testBatchRefusesTx(t *testing.T, b Backend) {
	s, _ := fresh(t, b)
	ctx := t.Context()
	mustOK(t, s.CreateGrant(ctx, newGrant(store.KindAuthorizeCode, "code-1", "req-1")))
	tx, err := s.BeginTx(ctx)
	mustOK(t, err)
	err = s.ApplyGrants(tx, &store.GrantBatch{
		Consume: []store.GrantKey{{Kind: store.KindAuthorizeCode, Signature: "code-1"}},
	})
	if err == nil {
		t.Fatal("ApplyGrants in a transaction: got nil error, want one")
	}
	wantActive(t, s, tx, store.KindAuthorizeCode, "code-1", true)
	mustOK(t, s.Consume(tx, store.KindAuthorizeCode, "code-1"))
	mustOK(t, s.Commit(tx))
	wantActive(t, s, ctx, store.KindAuthorizeCode, "code-1", false)
}

// testBatchInvalid checks that a batch the contract forbids is an error
// that is no sentinel, and writes nothing.
func testBatchInvalid(t *testing.T, b Backend) {
	s, _ := fresh(t, b)
	ctx := t.Context()
	mustOK(t, s.CreateGrant(ctx, newGrant(store.KindAuthorizeCode, "code-1", "req-1")))
	code := store.GrantKey{Kind: store.KindAuthorizeCode, Signature: "code-1"}
	// Each case: a batch that consumes the code and is invalid otherwise.
	for _, tc := range []struct {
		name  string
		batch *store.GrantBatch
	}{
		{"ConsumeKind", &store.GrantBatch{Consume: []store.GrantKey{code, {Kind: "nonsense", Signature: "x"}}}},
		{"ConsumeTwice", &store.GrantBatch{Consume: []store.GrantKey{code, code}}},
		{"RevokeKind", &store.GrantBatch{Consume: []store.GrantKey{code}, Revoke: []store.GrantFamily{{Kind: "nonsense", RequestID: "req-1"}}}},
		{"CreateNil", &store.GrantBatch{Consume: []store.GrantKey{code}, Create: []*store.Grant{nil}}},
		{"CreateKind", &store.GrantBatch{Consume: []store.GrantKey{code}, Create: []*store.Grant{newGrant("nonsense", "x", "req-1")}}},
		{"CreateConsumed", &store.GrantBatch{Consume: []store.GrantKey{code}, Create: []*store.Grant{newGrant(store.KindAuthorizeCode, "code-1", "req-1")}}},
		{"CreateTwice", &store.GrantBatch{Consume: []store.GrantKey{code}, Create: []*store.Grant{
			newGrant(store.KindAccessToken, "at-1", "req-1"), newGrant(store.KindAccessToken, "at-1", "req-1"),
		}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			notSentinel(t, "ApplyGrants", s.ApplyGrants(ctx, tc.batch))
			wantActive(t, s, ctx, store.KindAuthorizeCode, "code-1", true)
			_, err := s.Grant(ctx, store.KindAccessToken, "at-1")
			mustErrIs(t, err, store.ErrNotFound)
		})
	}
	if err := s.ApplyGrants(ctx, nil); err == nil {
		t.Error("ApplyGrants(nil): got nil error, want one")
	}
}

// testBatchRevokeOverlapsConsume revokes the family of the refresh token the
// batch consumes: both are inactive afterwards, and the batch succeeds (on
// PostgreSQL, one statement must not change one row twice).
func testBatchRevokeOverlapsConsume(t *testing.T, b Backend) {
	s, _ := fresh(t, b)
	ctx := t.Context()
	mustOK(t, s.CreateGrant(ctx, newGrant(store.KindRefreshToken, "rt-1", "req-1")))
	mustOK(t, s.CreateGrant(ctx, newGrant(store.KindRefreshToken, "rt-0", "req-1")))
	mustOK(t, s.ApplyGrants(ctx, &store.GrantBatch{
		Consume: []store.GrantKey{{Kind: store.KindRefreshToken, Signature: "rt-1"}},
		Revoke:  []store.GrantFamily{{Kind: store.KindRefreshToken, RequestID: "req-1"}},
		Create:  []*store.Grant{newGrant(store.KindRefreshToken, "rt-2", "req-1")},
	}))
	wantActive(t, s, ctx, store.KindRefreshToken, "rt-1", false)
	wantActive(t, s, ctx, store.KindRefreshToken, "rt-0", false)
	wantActive(t, s, ctx, store.KindRefreshToken, "rt-2", true)
}

// testBatchTablePrefix checks that ApplyGrants writes the tables of its own
// installation only.
func testBatchTablePrefix(t *testing.T, b Backend) {
	o := b.NewDatabase(t)
	plain, _ := open(t, o, b.Config())
	cfg := b.Config()
	cfg.TablePrefix = "px_"
	prefixed, _ := open(t, o, cfg)
	ctx := t.Context()
	for _, st := range []*sqlstore.Store{plain, prefixed} {
		mustOK(t, st.CreateGrant(ctx, newGrant(store.KindAuthorizeCode, "code-1", "req-1")))
		mustOK(t, st.CreateGrant(ctx, newGrant(store.KindAccessToken, "at-0", "req-1")))
	}
	mustOK(t, prefixed.ApplyGrants(ctx, &store.GrantBatch{
		Consume: []store.GrantKey{{Kind: store.KindAuthorizeCode, Signature: "code-1"}},
		Revoke:  []store.GrantFamily{{Kind: store.KindAccessToken, RequestID: "req-1"}},
		Create:  []*store.Grant{newGrant(store.KindAccessToken, "at-1", "req-1")},
	}))
	wantActive(t, prefixed, ctx, store.KindAuthorizeCode, "code-1", false)
	wantActive(t, prefixed, ctx, store.KindAccessToken, "at-0", false)
	wantActive(t, prefixed, ctx, store.KindAccessToken, "at-1", true)
	wantActive(t, plain, ctx, store.KindAuthorizeCode, "code-1", true)
	wantActive(t, plain, ctx, store.KindAccessToken, "at-0", true)
	_, err := plain.Grant(ctx, store.KindAccessToken, "at-1")
	mustErrIs(t, err, store.ErrNotFound)
}

// BenchBatch measures the writes of a refresh-token exchange (consume the
// refresh token, revoke the access tokens of its request, store a new
// access token and refresh token): as single calls in a transaction
// ("tx", what the provider does with [store.Transactor]) and as one
// [sqlstore.Store.ApplyGrants] ("batch").
func BenchBatch(b *testing.B, be Backend) {
	ctx := b.Context()
	s, _ := openBench(b, be)
	n := 0 // the exchanges so far, across both ways and every run
	tokens := func(n int) (*store.Grant, *store.Grant) {
		req := fmt.Sprintf("req-%d", n)
		return newGrant(store.KindAccessToken, fmt.Sprintf("at-%d", n), req),
			newGrant(store.KindRefreshToken, fmt.Sprintf("rt-%d", n), req)
	}
	at, rt := tokens(0)
	mustOKB(b, s.CreateGrant(ctx, at))
	mustOKB(b, s.CreateGrant(ctx, rt))
	b.Run("tx", func(b *testing.B) {
		for b.Loop() {
			n++
			at, rt := tokens(n)
			tx, err := s.BeginTx(ctx)
			mustOKB(b, err)
			mustOKB(b, s.Consume(tx, store.KindRefreshToken, fmt.Sprintf("rt-%d", n-1)))
			mustOKB(b, s.Revoke(tx, store.KindAccessToken, fmt.Sprintf("req-%d", n-1)))
			mustOKB(b, s.CreateGrant(tx, at))
			mustOKB(b, s.CreateGrant(tx, rt))
			mustOKB(b, s.Commit(tx))
		}
	})
	b.Run("batch", func(b *testing.B) {
		for b.Loop() {
			n++
			at, rt := tokens(n)
			mustOKB(b, s.ApplyGrants(ctx, &store.GrantBatch{
				Consume: []store.GrantKey{{Kind: store.KindRefreshToken, Signature: fmt.Sprintf("rt-%d", n-1)}},
				Revoke:  []store.GrantFamily{{Kind: store.KindAccessToken, RequestID: fmt.Sprintf("req-%d", n-1)}},
				Create:  []*store.Grant{at, rt},
			}))
		}
	})
}
