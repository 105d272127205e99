package memory

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
	"testing/synctest"
	"time"
	"unsafe"

	"github.com/pixieauth/pixie/store"
)

// checkGrantIndexes checks that the grants, the families and the expiry
// heap hold exactly the same records, each where it says it is.
func checkGrantIndexes(t *testing.T, s *Store) {
	t.Helper()
	s.mu.RLock()
	defer s.mu.RUnlock()
	if len(s.grantExpiry) != len(s.grants) {
		t.Fatalf("heap holds %d records, map %d", len(s.grantExpiry), len(s.grants))
	}
	for i, r := range s.grantExpiry {
		if int(r.heapIndex) != i || s.grants[r.text[:r.keyLen]] != r {
			t.Fatalf("heap entry %d (index %d) is not the map's", i, r.heapIndex)
		}
		if i > 0 && s.grantExpiry[(i-1)/2].expiresAt().After(r.expiresAt()) {
			t.Fatalf("heap entry %d expires before its parent", i)
		}
	}
	chained := 0
	for id, f := range s.families {
		if f.requestID() != id || f.empty() {
			t.Fatalf("family %q: keyed %q, empty %v", f.requestID(), id, f.empty())
		}
		for k, r := range f.newest {
			if r != nil && r.newer != nil {
				t.Fatalf("family %q: the newest record of kind %d has a newer one", id, k)
			}
			for ; r != nil; r = r.older {
				chained++
				if r.fam != f || int(r.kind()) != k || s.grants[r.text[:r.keyLen]] != r {
					t.Fatalf("family %q: record of kind %d is not the map's", id, k)
				}
				if r.older != nil && r.older.newer != r {
					t.Fatalf("family %q: kind %d: broken chain", id, k)
				}
			}
		}
	}
	if chained != len(s.grants) {
		t.Fatalf("families chain %d records, map holds %d", chained, len(s.grants))
	}
}

// modelKey is the key of a record in TestGrantsModel's model.
type modelKey struct {
	kind store.Kind
	sig  string
}

// TestGrantsModel runs random operations on a Store and on a plain map of
// the records they should leave, and compares every answer and, after
// each operation, the indexes.
func TestGrantsModel(t *testing.T) {
	ctx := t.Context()
	rng := rand.New(rand.NewPCG(1, 2))
	s := New()
	model := map[modelKey]*store.Grant{}
	base := time.Date(2031, 1, 2, 3, 4, 5, 0, time.UTC)
	pick := func(xs ...string) string { return xs[rng.IntN(len(xs))] }
	var kinds []store.Kind
	for i := range byte(numKinds) {
		kinds = append(kinds, kindOf(i))
	}
	// Data that are deltas of one another, so that records hold deltas
	// against bases whose records come and go.
	near := bytes.Repeat([]byte("x"), 1300)
	near[600] = 'y'
	var text []byte
	for i := range 60 {
		text = fmt.Appendf(text, `{"n":%d,"at":"2031-01-02T03:04:05Z"}`, i)
	}
	datas := [][]byte{nil, []byte("request one"), []byte("request two"), bytes.Repeat([]byte("x"), 1300), near,
		text, bytes.ReplaceAll(text, []byte("03:04"), []byte("04:04")), append(bytes.Clone(text), "more"...)}
	for step := range 3000 {
		kind := kinds[rng.IntN(len(kinds))]
		sig := pick("s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8")
		req := pick("r1", "r2", "r3")
		k := modelKey{kind, sig}
		switch op := rng.IntN(6); op {
		case 0, 1: // create
			g := &store.Grant{Kind: kind, Signature: sig, RequestID: req,
				ClientID: pick("app", "web"), Subject: pick("alice", "bob", ""),
				ExpiresAt: base.Add(time.Duration(rng.IntN(100)) * time.Second),
				Active:    rng.IntN(2) == 0, Data: bytes.Clone(datas[rng.IntN(len(datas))])}
			err := s.CreateGrant(ctx, g)
			if _, exists := model[k]; exists {
				if !errors.Is(err, store.ErrAlreadyExists) {
					t.Fatalf("step %d: CreateGrant of a present record: got %v, want ErrAlreadyExists", step, err)
				}
				break
			}
			if err != nil {
				t.Fatalf("step %d: CreateGrant: %v", step, err)
			}
			g = g.Clone()
			g.Active = true
			if len(g.Data) == 0 {
				g.Data = nil
			}
			model[k] = g
		case 2: // consume
			err := s.Consume(ctx, kind, sig)
			want := model[k]
			switch {
			case want == nil && !errors.Is(err, store.ErrNotFound),
				want != nil && !want.Active && !errors.Is(err, store.ErrConsumed),
				want != nil && want.Active && err != nil:
				t.Fatalf("step %d: Consume: got %v", step, err)
			}
			if want != nil {
				want.Active = false
			}
		case 3: // delete
			err := s.Delete(ctx, kind, sig)
			if _, ok := model[k]; ok != (err == nil) || !ok && !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("step %d: Delete: got %v, present %v", step, err, ok)
			}
			delete(model, k)
		case 4: // revoke
			if err := s.Revoke(ctx, kind, req); err != nil {
				t.Fatal(err)
			}
			for _, g := range model {
				if g.Kind == kind && g.RequestID == req {
					g.Active = false
				}
			}
		case 5: // delete expired, now and then
			if rng.IntN(10) != 0 {
				break
			}
			before := base.Add(time.Duration(rng.IntN(100)) * time.Second)
			n, err := s.DeleteExpired(ctx, before)
			want := 0
			for k, g := range model {
				if g.ExpiresAt.Before(before) {
					delete(model, k)
					want++
				}
			}
			if err != nil || n != want {
				t.Fatalf("step %d: DeleteExpired: got %d, %v, want %d", step, n, err, want)
			}
		}
		checkGrantIndexes(t, s)
		if n := grantCount(s); n != len(model) {
			t.Fatalf("step %d: store holds %d records, model %d", step, n, len(model))
		}
		for k, want := range model {
			got, err := s.Grant(ctx, k.kind, k.sig)
			if err != nil {
				t.Fatalf("step %d: Grant(%s, %s): %v", step, k.kind, k.sig, err)
			}
			if !got.ExpiresAt.Equal(want.ExpiresAt) || got.ExpiresAt.Location() != time.UTC {
				t.Fatalf("step %d: Grant: ExpiresAt %v, want %v in UTC", step, got.ExpiresAt, want.ExpiresAt)
			}
			if got.Kind != want.Kind || got.Signature != want.Signature || got.RequestID != want.RequestID ||
				got.ClientID != want.ClientID || got.Subject != want.Subject || got.Active != want.Active ||
				!bytes.Equal(got.Data, want.Data) || (got.Data == nil) != (want.Data == nil) {
				t.Fatalf("step %d: Grant:\n got %+v\nwant %+v", step, got, want)
			}
		}
	}
}

// TestKindIndex: every valid kind has an index, and kindOf maps it back.
func TestKindIndex(t *testing.T) {
	seen := map[byte]bool{}
	for _, k := range []store.Kind{store.KindAuthorizeCode, store.KindPKCE, store.KindOIDC,
		store.KindAccessToken, store.KindRefreshToken, store.KindRefreshGrace} {
		i, ok := kindIndex(k)
		if !ok || !k.Valid() || i >= numKinds || seen[i] || kindOf(i) != k {
			t.Errorf("kind %s: index %d, %v", k, i, ok)
		}
		seen[i] = true
	}
	if _, ok := kindIndex("bogus"); ok {
		t.Error("kindIndex(bogus): ok")
	}
}

// TestGrantTimes: ExpiresAt comes back equal, in UTC, for the zero time,
// times before 1970 and after 2262, and times with nanoseconds.
func TestGrantTimes(t *testing.T) {
	s := New()
	times := []time.Time{
		{},
		time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC),
		time.Date(1969, 12, 31, 23, 59, 59, 999_999_999, time.UTC),
		time.Date(2031, 4, 5, 6, 7, 8, 9, time.FixedZone("x", 3600)),
		time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC),
	}
	for i, at := range times {
		sig := fmt.Sprint("sig-", i)
		err := s.CreateGrant(t.Context(), &store.Grant{Kind: store.KindAccessToken, Signature: sig, RequestID: "r", ExpiresAt: at})
		if err != nil {
			t.Fatal(err)
		}
		g, err := s.Grant(t.Context(), store.KindAccessToken, sig)
		if err != nil || !g.ExpiresAt.Equal(at) || g.ExpiresAt.IsZero() != at.IsZero() {
			t.Errorf("ExpiresAt %v: got %v, %v", at, g.ExpiresAt, err)
		}
	}
	// The zero time counts as expired, and goes first.
	if n, _ := s.DeleteExpired(t.Context(), time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC)); n != 1 {
		t.Errorf("DeleteExpired(0001-01-01 00:00:00.000000001): removed %d, want the zero time's only", n)
	}
}

// TestGrantDataShared: two records of one request with equal Data keep
// one copy of it, and each still reads back whole, as a fresh copy, when
// the caller changes its own slices or the other record is deleted.
func TestGrantDataShared(t *testing.T) {
	ctx := t.Context()
	s := New()
	data := bytes.Repeat([]byte("session "), 160)
	exp := time.Now().Add(time.Hour)
	mk := func(kind store.Kind, sig, req string, d []byte) {
		t.Helper()
		err := s.CreateGrant(ctx, &store.Grant{Kind: kind, Signature: sig, RequestID: req, ClientID: "app", Subject: "alice", ExpiresAt: exp, Data: d})
		if err != nil {
			t.Fatal(err)
		}
	}
	at, rt, other := bytes.Clone(data), bytes.Clone(data), bytes.Clone(data)
	mk(store.KindAccessToken, "at", "req", at)
	mk(store.KindRefreshToken, "rt", "req", rt)
	mk(store.KindRefreshToken, "rt2", "req-2", other) // another request: not shared
	same := func(a, b string) bool {
		s.mu.RLock()
		defer s.mu.RUnlock()
		return unsafe.StringData(s.find(3, a).data) == unsafe.StringData(s.find(4, b).data)
	}
	if !same("at", "rt") {
		t.Error("the access and refresh tokens of one request hold two copies of equal Data")
	}
	if same("at", "rt2") {
		t.Error("records of two requests share Data")
	}
	at[0], rt[0] = 'X', 'Y'
	g, err := s.Grant(ctx, store.KindRefreshToken, "rt")
	if err != nil || !bytes.Equal(g.Data, data) {
		t.Fatalf("Grant after the caller changed its slices: got %q, %v", g.Data, err)
	}
	g.Data[0] = 'Z'
	if err := s.Delete(ctx, store.KindAccessToken, "at"); err != nil {
		t.Fatal(err)
	}
	g, err = s.Grant(ctx, store.KindRefreshToken, "rt")
	if err != nil || !bytes.Equal(g.Data, data) {
		t.Errorf("Grant after the other record's deletion: got %q, %v", g.Data, err)
	}
	// A record whose client or subject is not its family's keeps its own.
	err = s.CreateGrant(ctx, &store.Grant{Kind: store.KindRefreshGrace, Signature: "rt", RequestID: "req", ExpiresAt: exp, Data: []byte{}})
	if err != nil {
		t.Fatal(err)
	}
	g, err = s.Grant(ctx, store.KindRefreshGrace, "rt")
	if err != nil || g.ClientID != "" || g.Subject != "" || g.Data != nil {
		t.Errorf("grace record: got %+v, %v; want no client, subject or Data", g, err)
	}
	checkGrantIndexes(t, s)
}

// TestGrantStringsOwnTheirBytes: the strings of a returned Grant are not
// part of the allocation that holds the record's Data, so that a caller
// keeping one does not keep the Data too.
func TestGrantStringsOwnTheirBytes(t *testing.T) {
	s := New()
	exp := time.Now().Add(time.Hour)
	for _, g := range []*store.Grant{
		{Kind: store.KindAccessToken, Signature: "at", RequestID: "req", ClientID: "app", Subject: "alice", ExpiresAt: exp, Data: bytes.Repeat([]byte("a"), 1000)},
		// Its own client ID and subject, not the family's.
		{Kind: store.KindRefreshToken, Signature: "rt", RequestID: "req", ClientID: "web", Subject: "bob", ExpiresAt: exp, Data: bytes.Repeat([]byte("b"), 1000)},
	} {
		if err := s.CreateGrant(t.Context(), g); err != nil {
			t.Fatal(err)
		}
		got, err := s.Grant(t.Context(), g.Kind, string([]byte(g.Signature)))
		if err != nil || got.ClientID != g.ClientID || got.Subject != g.Subject || got.RequestID != g.RequestID {
			t.Fatalf("Grant(%s): got %+v, %v", g.Kind, got, err)
		}
		k, _ := kindIndex(g.Kind)
		s.mu.RLock()
		r := s.find(k, g.Signature)
		start := uintptr(unsafe.Pointer(unsafe.StringData(r.text)))
		end := start + uintptr(len(r.text)+len(r.data))
		s.mu.RUnlock()
		for name, x := range map[string]string{"Signature": got.Signature, "RequestID": got.RequestID,
			"ClientID": got.ClientID, "Subject": got.Subject} {
			if p := uintptr(unsafe.Pointer(unsafe.StringData(x))); p >= start && p < end {
				t.Errorf("%s: the returned %s is part of the record's text and Data", g.Kind, name)
			}
		}
	}
}

// TestGrantsExpireOnTheirOwn: with no call but the ones that store them
// (a flow and a rotation), the Store forgets grant records once they have
// expired, active or not, those held as deltas and their bases too,
// keeps the others until then, and frees their memory: nothing is left in
// its indexes, the janitor stops, and the heap falls back to what it was.
func TestGrantsExpireOnTheirOwn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		before := liveHeapBytes()
		s := New()
		start := time.Now()
		const flows = 4000
		data := bytes.Repeat([]byte("d"), 1000)
		for i := range flows {
			req := fmt.Sprint("req-", i)
			mk := func(kind store.Kind, sig string, life time.Duration, change string) {
				err := s.CreateGrant(ctx, &store.Grant{Kind: kind, Signature: sig, RequestID: req, ClientID: "app",
					Subject: "alice", ExpiresAt: start.Add(life), Data: append(append(bytes.Clone(data), req...), change...)})
				if err != nil {
					t.Fatal(err)
				}
			}
			mk(store.KindAuthorizeCode, "code-"+req, 10*time.Minute, "")
			mk(store.KindAccessToken, "at-"+req, time.Hour, "")
			mk(store.KindRefreshToken, "rt-"+req, 2*time.Hour, "")
			// A rotation, whose tokens keep a delta against the Data
			// above.
			for _, err := range []error{
				s.Consume(ctx, store.KindAuthorizeCode, "code-"+req),
				s.Consume(ctx, store.KindRefreshToken, "rt-"+req),
				s.Revoke(ctx, store.KindAccessToken, req),
			} {
				if err != nil {
					t.Fatal(err)
				}
			}
			mk(store.KindAccessToken, "at2-"+req, time.Hour, "rotated")
			mk(store.KindRefreshToken, "rt2-"+req, 2*time.Hour, "rotated")
		}
		s.mu.RLock()
		if r := s.find(4, "rt2-req-0"); r.ref == "" {
			t.Error("the rotated refresh token holds its Data whole, want a delta")
		}
		s.mu.RUnlock()
		peak := liveHeapBytes()
		present := func(kind store.Kind, sig string) bool {
			t.Helper()
			_, err := s.Grant(ctx, kind, sig)
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				t.Fatal(err)
			}
			return err == nil
		}

		time.Sleep(11*time.Minute + janitorPeriod/2) // between two sweeps
		synctest.Wait()
		if present(store.KindAuthorizeCode, "code-req-0") || !present(store.KindAccessToken, "at-req-0") {
			t.Error("11 minutes on: want the consumed codes gone and the access tokens kept")
		}
		checkGrantIndexes(t, s)
		s.mu.RLock()
		held := len(s.grants)
		s.mu.RUnlock()
		if held != 4*flows {
			t.Errorf("11 minutes on: %d records held, want %d", held, 4*flows)
		}

		time.Sleep(2 * time.Hour)
		synctest.Wait()
		if present(store.KindRefreshToken, "rt-req-0") {
			t.Error("after every expiry: a refresh token is still held")
		}
		checkGrantIndexes(t, s)
		s.mu.RLock()
		left, families, heap, janitor := len(s.grants), len(s.families), len(s.grantExpiry), s.janitor
		s.mu.RUnlock()
		if left != 0 || families != 0 || heap != 0 || janitor != nil {
			t.Errorf("after every expiry: %d records, %d families, %d heap entries, janitor armed %v; want none",
				left, families, heap, janitor != nil)
		}
		after := liveHeapBytes()
		runtime.KeepAlive(s)
		// The store took peak-before; what it keeps must be a small
		// fraction of that (the maps of other kinds, allocator slack).
		kept, took := int64(after)-int64(before), int64(peak)-int64(before)
		t.Logf("the Store took %d bytes for %d flows, and keeps %d once they expired", took, flows, kept)
		if kept > took/20 {
			t.Errorf("the Store took %d bytes for %d flows and keeps %d after they all expired; want under 5%%", took, flows, kept)
		}
	})
}

// grantCount returns how many grant records s holds.
func grantCount(s *Store) int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.grants)
}

// liveHeapBytes returns the bytes of live heap after a collection.
func liveHeapBytes() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestGrantsBounded: a full Store refuses new authorization codes and
// pushed requests, still
// stores the tokens of grants already issued up to a quarter more, then
// refuses everything; it evicts nothing, and makes room by removing the
// records that have expired.
func TestGrantsBounded(t *testing.T) {
	ctx := t.Context()
	s := New()
	if s.maxGrants != MaxGrants {
		t.Fatalf("New: bound %d, want MaxGrants (%d)", s.maxGrants, MaxGrants)
	}
	SetMaxGrants(s, 8) // tokens up to 10
	live := time.Now().Add(time.Hour)
	create := func(kind store.Kind, sig string, exp time.Time) error {
		return s.CreateGrant(ctx, &store.Grant{Kind: kind, Signature: sig, RequestID: "req-" + sig, ExpiresAt: exp})
	}
	for i := range 8 {
		if err := create(store.KindAuthorizeCode, fmt.Sprint("code-", i), live); err != nil {
			t.Fatalf("code %d: %v", i, err)
		}
	}
	if err := create(store.KindAuthorizeCode, "code-8", live); !errors.Is(err, ErrFull) {
		t.Fatalf("a code beyond the bound: got %v, want ErrFull", err)
	}
	if err := create(store.KindPushedRequest, "pushed-0", live); !errors.Is(err, ErrFull) {
		t.Fatalf("a pushed request beyond the bound: got %v, want ErrFull (it is a new authorization, like a code)", err)
	}
	for i, kind := range []store.Kind{store.KindAccessToken, store.KindRefreshToken} {
		if err := create(kind, fmt.Sprint("token-", i), live); err != nil {
			t.Fatalf("a %s within the headroom: %v", kind, err)
		}
	}
	err := create(store.KindRefreshToken, "token-2", live)
	if !errors.Is(err, ErrFull) || errors.Is(err, store.ErrAlreadyExists) {
		t.Fatalf("a token beyond the headroom: got %v, want ErrFull", err)
	}
	// Nothing was evicted.
	for _, sig := range []string{"code-0", "code-7"} {
		if _, err := s.Grant(ctx, store.KindAuthorizeCode, sig); err != nil {
			t.Errorf("%s: %v", sig, err)
		}
	}
	if n := grantCount(s); n != 10 {
		t.Errorf("%d records held, want 10", n)
	}

	// Records that have expired make room.
	s2 := New()
	SetMaxGrants(s2, 4)
	for i := range 4 {
		err := s2.CreateGrant(ctx, &store.Grant{Kind: store.KindAuthorizeCode, Signature: fmt.Sprint(i), RequestID: "r", ExpiresAt: time.Now().Add(-time.Minute)})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := s2.CreateGrant(ctx, &store.Grant{Kind: store.KindAuthorizeCode, Signature: "new", RequestID: "r", ExpiresAt: live}); err != nil {
		t.Fatalf("a code into a store full of expired records: %v", err)
	}
	if n := grantCount(s2); n != 1 {
		t.Errorf("%d records held, want the new one only", n)
	}
	checkGrantIndexes(t, s2)
}
