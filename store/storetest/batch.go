package storetest

import (
	"fmt"
	"slices"
	"testing"

	"github.com/pixieauth/pixie/store"
)

// batchRacers is the number of goroutines whose batches race to consume one
// record.
const batchRacers = 20

// batchTests are the behaviours of [store.Batcher], run when Stores.Grants
// has it.
func batchTests() []test {
	return []test{
		{"Applies", fresh(testBatchApplies)},
		{"Empty", fresh(testBatchEmpty)},
		{"ConsumedWritesNothing", fresh(testBatchConsumedWritesNothing)},
		{"MissingWritesNothing", fresh(testBatchMissingWritesNothing)},
		{"DuplicateCreateWritesNothing", fresh(testBatchDuplicateWritesNothing)},
		{"RevokeSparesCreates", fresh(testBatchRevokeSparesCreates)},
		{"ConcurrentConsume", fresh(testBatchConcurrentConsume)},
	}
}

// needBatcher returns the grant store as a [store.Batcher], or skips t.
func needBatcher(t *testing.T, s Stores) (store.Grants, store.Batcher) {
	t.Helper()
	grants := needGrants(t, s)
	b, ok := grants.(store.Batcher)
	if !ok {
		t.Skip("Stores.Grants is not a store.Batcher")
	}
	return grants, b
}

// wantGrant checks every field of the record of want's kind and signature.
func wantGrant(t *testing.T, grants store.Grants, want *store.Grant) {
	t.Helper()
	got, err := grants.Grant(t.Context(), want.Kind, want.Signature)
	mustOK(t, err)
	checkGrant(t, got, want)
}

// wantMissing checks that no record of that kind and signature exists.
func wantMissing(t *testing.T, grants store.Grants, kind store.Kind, signature string) {
	t.Helper()
	_, err := grants.Grant(t.Context(), kind, signature)
	mustErrIs(t, err, store.ErrNotFound)
}

// exchange seeds what a refresh-token exchange finds, the refresh token
// rt-1 and the access token at-1 of req-1 and the access token at-9 of
// another request, and returns the batch of that exchange: consume rt-1,
// revoke req-1's access tokens, create at-2 and rt-2 of req-1.
func exchange(t *testing.T, grants store.Grants) *store.GrantBatch {
	t.Helper()
	for _, g := range []*store.Grant{
		newGrant(store.KindRefreshToken, "rt-1", "req-1"),
		newGrant(store.KindAccessToken, "at-1", "req-1"),
		newGrant(store.KindAccessToken, "at-9", "req-9"),
	} {
		mustOK(t, grants.CreateGrant(t.Context(), g))
	}
	return &store.GrantBatch{
		Consume: []store.GrantKey{{Kind: store.KindRefreshToken, Signature: "rt-1"}},
		Revoke:  []store.GrantFamily{{Kind: store.KindAccessToken, RequestID: "req-1"}},
		Create: []*store.Grant{
			newGrant(store.KindAccessToken, "at-2", "req-1"),
			newGrant(store.KindRefreshToken, "rt-2", "req-1"),
		},
	}
}

// wantUntouched checks that nothing of exchange's batch was written.
func wantUntouched(t *testing.T, grants store.Grants) {
	t.Helper()
	wantActive(t, grants, store.KindRefreshToken, "rt-1", true)
	wantActive(t, grants, store.KindAccessToken, "at-1", true)
	wantActive(t, grants, store.KindAccessToken, "at-9", true)
	wantMissing(t, grants, store.KindAccessToken, "at-2")
	wantMissing(t, grants, store.KindRefreshToken, "rt-2")
}

func testBatchApplies(t *testing.T, s Stores) {
	grants, batcher := needBatcher(t, s)
	ctx := t.Context()
	b := exchange(t, grants)
	// The records of b.Create are stored active whatever they say, with
	// their data byte for byte, and the store keeps its own copies.
	b.Create[0].Active = false
	b.Create[0].Data = append(b.Create[0].Data, 0x00, 0xff, 0xfe)
	b.Create[1].Subject = ""
	want := []*store.Grant{b.Create[0].Clone(), b.Create[1].Clone()}
	want[0].Active = true
	mustOK(t, batcher.ApplyGrants(ctx, b))
	b.Create[1].Data[0] = 'X'

	wantActive(t, grants, store.KindRefreshToken, "rt-1", false) // consumed
	wantActive(t, grants, store.KindAccessToken, "at-1", false)  // revoked
	wantActive(t, grants, store.KindAccessToken, "at-9", true)   // another request
	for _, g := range want {
		wantGrant(t, grants, g)
	}
	// The consumed refresh token is consumed as Consume would have done it.
	mustErrIs(t, grants.Consume(ctx, store.KindRefreshToken, "rt-1"), store.ErrConsumed)
	// A second batch of the same exchange loses: nothing of it is written.
	again := &store.GrantBatch{
		Consume: b.Consume,
		Create:  []*store.Grant{newGrant(store.KindAccessToken, "at-3", "req-1")},
	}
	mustErrIs(t, batcher.ApplyGrants(ctx, again), store.ErrConsumed)
	wantMissing(t, grants, store.KindAccessToken, "at-3")
}

func testBatchEmpty(t *testing.T, s Stores) {
	grants, batcher := needBatcher(t, s)
	mustOK(t, grants.CreateGrant(t.Context(), newGrant(store.KindAccessToken, "at-1", "req-1")))
	mustOK(t, batcher.ApplyGrants(t.Context(), &store.GrantBatch{}))
	// Revoking a request without records is not an error either.
	mustOK(t, batcher.ApplyGrants(t.Context(), &store.GrantBatch{
		Revoke: []store.GrantFamily{{Kind: store.KindAccessToken, RequestID: "no-such-request"}},
	}))
	wantActive(t, grants, store.KindAccessToken, "at-1", true)
}

func testBatchConsumedWritesNothing(t *testing.T, s Stores) {
	grants, batcher := needBatcher(t, s)
	b := exchange(t, grants)
	mustOK(t, grants.CreateGrant(t.Context(), newGrant(store.KindAuthorizeCode, "code-1", "req-1")))
	mustOK(t, grants.Consume(t.Context(), store.KindAuthorizeCode, "code-1"))
	// One of two records to consume is consumed already.
	b.Consume = append(b.Consume, store.GrantKey{Kind: store.KindAuthorizeCode, Signature: "code-1"})
	mustErrIs(t, batcher.ApplyGrants(t.Context(), b), store.ErrConsumed)
	wantUntouched(t, grants)
}

func testBatchMissingWritesNothing(t *testing.T, s Stores) {
	grants, batcher := needBatcher(t, s)
	b := exchange(t, grants)
	// One of two records to consume does not exist.
	b.Consume = append(b.Consume, store.GrantKey{Kind: store.KindAuthorizeCode, Signature: "no-such-code"})
	mustErrIs(t, batcher.ApplyGrants(t.Context(), b), store.ErrNotFound)
	wantUntouched(t, grants)

	// The same with the missing record alone.
	b.Consume = b.Consume[1:]
	mustErrIs(t, batcher.ApplyGrants(t.Context(), b), store.ErrNotFound)
	wantUntouched(t, grants)
}

func testBatchDuplicateWritesNothing(t *testing.T, s Stores) {
	grants, batcher := needBatcher(t, s)
	ctx := t.Context()
	// Each case: the record whose key the batch's second create takes.
	for _, tc := range []struct {
		name     string
		existing *store.Grant
		consumed bool // whether it is inactive
	}{
		{"Active", newGrant(store.KindRefreshToken, "rt-taken", "req-5"), false},
		{"Inactive", newGrant(store.KindRefreshToken, "rt-spent", "req-5"), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := exchange(t, grants)
			mustOK(t, grants.CreateGrant(ctx, tc.existing))
			if tc.consumed {
				mustOK(t, grants.Consume(ctx, tc.existing.Kind, tc.existing.Signature))
			}
			b.Create[1] = newGrant(tc.existing.Kind, tc.existing.Signature, "req-1")
			mustErrIs(t, batcher.ApplyGrants(ctx, b), store.ErrAlreadyExists)
			wantUntouched(t, grants)
			want := tc.existing.Clone()
			want.Active = !tc.consumed
			wantGrant(t, grants, want) // the original, not the duplicate

			// Each subtest seeds the same records: remove them.
			for _, k := range []store.GrantKey{
				{Kind: store.KindRefreshToken, Signature: "rt-1"},
				{Kind: store.KindAccessToken, Signature: "at-1"},
				{Kind: store.KindAccessToken, Signature: "at-9"},
			} {
				mustOK(t, grants.Delete(ctx, k.Kind, k.Signature))
			}
		})
	}
}

func testBatchRevokeSparesCreates(t *testing.T, s Stores) {
	grants, batcher := needBatcher(t, s)
	ctx := t.Context()
	for _, g := range []*store.Grant{
		newGrant(store.KindAccessToken, "at-1", "req-1"),
		newGrant(store.KindRefreshToken, "rt-1", "req-1"),
		newGrant(store.KindAuthorizeCode, "code-1", "req-1"),
	} {
		mustOK(t, grants.CreateGrant(ctx, g))
	}
	// Revoke both kinds of req-1 and create one of each kind for req-1:
	// only the records stored before the call are revoked. No consume: the
	// revocation happens without one too.
	mustOK(t, batcher.ApplyGrants(ctx, &store.GrantBatch{
		Revoke: []store.GrantFamily{
			{Kind: store.KindAccessToken, RequestID: "req-1"},
			{Kind: store.KindRefreshToken, RequestID: "req-1"},
		},
		Create: []*store.Grant{
			newGrant(store.KindAccessToken, "at-2", "req-1"),
			newGrant(store.KindRefreshToken, "rt-2", "req-1"),
		},
	}))
	wantActive(t, grants, store.KindAccessToken, "at-1", false)
	wantActive(t, grants, store.KindRefreshToken, "rt-1", false)
	wantActive(t, grants, store.KindAuthorizeCode, "code-1", true) // another kind
	wantActive(t, grants, store.KindAccessToken, "at-2", true)
	wantActive(t, grants, store.KindRefreshToken, "rt-2", true)
}

func testBatchConcurrentConsume(t *testing.T, s Stores) {
	grants, batcher := needBatcher(t, s)
	ctx := t.Context()
	mustOK(t, grants.CreateGrant(ctx, newGrant(store.KindAuthorizeCode, "contested", "req-1")))
	mustOK(t, grants.CreateGrant(ctx, newGrant(store.KindPKCE, "contested", "req-1")))
	// Each racer redeems the code: consume it, and for even racers its
	// PKCE record too, and store an access token and a refresh token of
	// its own.
	errs := Race(batchRacers, func(i int) error {
		b := &store.GrantBatch{
			Consume: []store.GrantKey{{Kind: store.KindAuthorizeCode, Signature: "contested"}},
			Create: []*store.Grant{
				newGrant(store.KindAccessToken, fmt.Sprintf("at-%d", i), "req-1"),
				newGrant(store.KindRefreshToken, fmt.Sprintf("rt-%d", i), "req-1"),
			},
		}
		if i%2 == 0 {
			b.Consume = append(b.Consume, store.GrantKey{Kind: store.KindPKCE, Signature: "contested"})
		}
		return batcher.ApplyGrants(ctx, b)
	})
	ExactlyOneWins(t, errs, store.ErrConsumed)
	wantActive(t, grants, store.KindAuthorizeCode, "contested", false)
	// The PKCE record is consumed if the winner's batch named it, and only
	// then: a losing batch consumes none of its records.
	winner := slices.Index(errs, nil)
	wantActive(t, grants, store.KindPKCE, "contested", winner%2 != 0)
	// The winner's tokens exist, active; no loser's does.
	for i, err := range errs {
		for _, k := range []store.GrantKey{
			{Kind: store.KindAccessToken, Signature: fmt.Sprintf("at-%d", i)},
			{Kind: store.KindRefreshToken, Signature: fmt.Sprintf("rt-%d", i)},
		} {
			if err == nil {
				wantActive(t, grants, k.Kind, k.Signature, true)
			} else {
				wantMissing(t, grants, k.Kind, k.Signature)
			}
		}
	}
}
