package memory_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/pixieauth/pixie/store"
	"github.com/pixieauth/pixie/store/memory"
)

// The sizes of the serialized Data of the records of one flow, as the
// provider wrote them when this was measured (an ES256 flow with scope
// openid profile email offline_access): the authorization code, its OIDC
// and PKCE companions, and the access and refresh tokens, which the
// provider serializes from one request and so with equal bytes.
const (
	codeDataLen  = 1150
	oidcDataLen  = 1129
	pkceDataLen  = 467
	tokenDataLen = 1290
)

// fakeData returns n bytes of Data, distinct for each seed, shaped like
// the provider's (JSON text), in a slice of its own.
func fakeData(seed string, n int) []byte {
	b := make([]byte, 0, n)
	for len(b) < n {
		b = append(b, `{"id":"`...)
		b = append(b, seed...)
		b = append(b, `","scope":["openid","profile","email","offline_access"]}`...)
	}
	return b[:n]
}

// signature returns a random grant signature, 43 characters as the
// provider's HMAC-SHA256 signatures are.
func signature() string {
	var b [32]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// flowRecords does to s what one authorization-code flow followed by one
// refresh does (refresh-token rotation without a grace period): it stores
// a code with its OIDC and PKCE records, redeems the code (consuming it and
// deleting the companions), stores an access and a refresh token, then
// rotates the refresh token: the old one consumed, the old access token
// revoked, a new pair stored. It leaves five records: the consumed code
// (kept for replay detection), the revoked access token, the rotated
// refresh token (kept for reuse detection) and the live pair. It returns
// how many bytes of Data the store must keep for them: the distinct
// contents, since the two tokens of a pair have equal Data.
func flowRecords(tb testing.TB, s *memory.Store, now time.Time, i int) int {
	return flowRecordsScaled(tb, s, now, i, 1)
}

// flowRecordsScaled is flowRecords with each Data divided by div.
func flowRecordsScaled(tb testing.TB, s *memory.Store, now time.Time, i, div int) int {
	ctx := context.Background()
	req := fmt.Sprintf("%08x-f672-4d48-80ac-4cf21258da1e", i)
	mk := func(kind store.Kind, sig string, data []byte, life time.Duration) {
		// Fresh strings, as the provider's are (decoded per request).
		err := s.CreateGrant(ctx, &store.Grant{Kind: kind, Signature: sig, RequestID: strings.Clone(req),
			ClientID: strings.Clone("app"), Subject: strings.Clone("alice"), ExpiresAt: now.Add(life), Data: data})
		if err != nil {
			tb.Fatal(err)
		}
	}
	must := func(err error) {
		if err != nil {
			tb.Fatal(err)
		}
	}
	code, oidc, rt := signature(), signature(), signature()
	mk(store.KindAuthorizeCode, code, fakeData(req+"c", codeDataLen/div), 10*time.Minute)
	mk(store.KindOIDC, oidc, fakeData(req+"o", oidcDataLen/div), 10*time.Minute)
	mk(store.KindPKCE, code, fakeData(req+"p", pkceDataLen/div), 10*time.Minute)
	must(s.Consume(ctx, store.KindAuthorizeCode, code))
	must(s.Delete(ctx, store.KindPKCE, code))
	must(s.Delete(ctx, store.KindOIDC, oidc))
	mk(store.KindAccessToken, signature(), fakeData(req+"t", tokenDataLen/div), time.Hour)
	mk(store.KindRefreshToken, rt, fakeData(req+"t", tokenDataLen/div), 30*24*time.Hour)
	// Rotation.
	must(s.Consume(ctx, store.KindRefreshToken, rt))
	must(s.Revoke(ctx, store.KindAccessToken, req))
	mk(store.KindAccessToken, signature(), fakeData(req+"u", tokenDataLen/div), time.Hour)
	mk(store.KindRefreshToken, signature(), fakeData(req+"u", tokenDataLen/div), 30*24*time.Hour)
	return codeDataLen/div + 2*(tokenDataLen/div)
}

// liveHeap returns the bytes of live heap after a collection.
func liveHeap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// BenchmarkGrantFootprint measures the heap a Store takes for the records
// of many flows (see flowRecords: five records a flow, 3,730 bytes of
// distinct Data). It reports the bytes of heap per flow, and the Store's
// own overhead per record: the heap beyond the Data it must keep. Run:
//
//	go test -run '^$' -bench GrantFootprint -benchtime 1x -count 5 ./store/memory/
func BenchmarkGrantFootprint(b *testing.B) {
	// The Data of today, and a quarter of it, for smaller Data to come.
	for _, div := range []int{1, 4} {
		b.Run(fmt.Sprintf("Data÷%d", div), func(b *testing.B) {
			const flows, records = 20_000, 5
			now := time.Now()
			var perFlow, overhead float64
			for b.Loop() {
				b.StopTimer()
				before := liveHeap()
				s := memory.New()
				data := 0
				b.StartTimer()
				for i := range flows {
					data += flowRecordsScaled(b, s, now, i, div)
				}
				b.StopTimer()
				heap := float64(liveHeap()) - float64(before)
				runtime.KeepAlive(s)
				perFlow = heap / flows
				overhead = (heap - float64(data)) / (flows * records)
				b.StartTimer()
			}
			b.ReportMetric(perFlow, "B/flow")
			b.ReportMetric(overhead, "overhead-B/record")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// TestFlowRecordsShape checks that flowRecords leaves what it says: the
// consumed code, a revoked and a live access token, a rotated and a live
// refresh token, and no PKCE record.
func TestFlowRecordsShape(t *testing.T) {
	s := memory.New()
	flowRecords(t, s, time.Now(), 1)
	n, err := s.DeleteExpired(t.Context(), time.Now().Add(365*24*time.Hour))
	if err != nil || n != 5 {
		t.Fatalf("DeleteExpired: got %d, %v; want 5 records", n, err)
	}
}

// BenchmarkGrantFlow measures the time and allocations of the Store's part
// of one flow and one refresh (see flowRecords), on a Store that holds the
// records of the flows before it. The Data and signatures the benchmark
// makes count too; they are the same before and after a change to the
// Store. Run:
//
//	go test -run '^$' -bench GrantFlow -count 5 ./store/memory/
func BenchmarkGrantFlow(b *testing.B) {
	s := memory.New()
	now := time.Now()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		flowRecords(b, s, now, i)
		i++
	}
}
