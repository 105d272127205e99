package memory_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pixieauth/pixie/store"
	"github.com/pixieauth/pixie/store/memory"
)

// flowSample is testdata/flow-records.json: the Data of the records of a
// real flow and refresh, as the provider wrote them (provider's
// TestFlowRecordsSample checks that it still does, and rewrites the file
// with -update-flow-records).
type flowSample struct {
	RequestID string `json:"request_id"`
	Records   []struct {
		Kind store.Kind `json:"kind"`
		Data string     `json:"data"`
	} `json:"records"`
}

var loadSample = sync.OnceValues(func() (*flowSample, error) {
	js, err := os.ReadFile("testdata/flow-records.json")
	if err != nil {
		return nil, err
	}
	var s flowSample
	if err := json.Unmarshal(js, &s); err != nil {
		return nil, err
	}
	// code, access and refresh token, rotated access and refresh token.
	if len(s.Records) != 5 || s.Records[1].Data != s.Records[2].Data || s.Records[3].Data != s.Records[4].Data {
		return nil, fmt.Errorf("testdata/flow-records.json: want a code and two pairs of tokens with equal Data")
	}
	return &s, nil
})

// sample returns the Data of the code, of the first tokens and of the
// rotated ones.
func sample(tb testing.TB) (code, tokens, rotated string, requestID string) {
	s, err := loadSample()
	if err != nil {
		tb.Fatal(err)
	}
	return s.Records[0].Data, s.Records[1].Data, s.Records[3].Data, s.RequestID
}

// rotating matches the times in the provider's Data that a rotation
// changes: the request's, the new tokens' issue and expiry times. The
// login's (auth_time, rat) and the code's expiry stay.
var rotating = regexp.MustCompile(`("(?:requested_at|access_token|refresh_token|iat|exp)":")(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z)`)

// shifted returns data with the times a rotation changes d later, in the
// same layout: the Data of a later rotation.
func shifted(data string, d time.Duration) string {
	return rotating.ReplaceAllStringFunc(data, func(s string) string {
		m := rotating.FindStringSubmatch(s)
		t, err := time.Parse(time.RFC3339Nano, m[2])
		if err != nil {
			return s
		}
		layout := "2006-01-02T15:04:05Z"
		if strings.Contains(m[2], ".") {
			layout = "2006-01-02T15:04:05." + strings.Repeat("0", len(m[2])-len("2006-01-02T15:04:05.Z")) + "Z"
		}
		return m[1] + t.Add(d).UTC().Format(layout)
	})
}

// signature returns a random grant signature, 43 characters as the
// provider's HMAC-SHA256 signatures are.
func signature() string {
	var b [32]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// grant is one grant being issued and refreshed on a Store, with the Data
// of the sample, its request ID replaced by the grant's own.
type grant struct {
	tb      testing.TB
	s       *memory.Store
	req     string
	tokens  string // the Data of the latest rotation
	refresh string // the signature of the live refresh token
}

// mk stores a record of the grant.
func (g *grant) mk(kind store.Kind, sig, data string, exp time.Time) {
	// Fresh strings and bytes, as the provider's are (decoded per request).
	err := g.s.CreateGrant(context.Background(), &store.Grant{Kind: kind, Signature: sig, RequestID: strings.Clone(g.req),
		ClientID: strings.Clone("native"), Subject: strings.Clone("248289761001"), ExpiresAt: exp, Data: []byte(data)})
	if err != nil {
		g.tb.Fatal(err)
	}
}

func (g *grant) must(err error) {
	if err != nil {
		g.tb.Fatal(err)
	}
}

// login does what an authorization-code flow does at now: it stores the
// code, redeems it (consuming it) and stores an access and a refresh
// token, with the provider's lifespans (10 minutes, 1 hour, 30 days).
func login(tb testing.TB, s *memory.Store, now time.Time, i int) *grant {
	code, tokens, _, sampleID := sample(tb)
	req := fmt.Sprintf("%08x-f672-4d48-80ac-4cf21258da1e", i)
	g := &grant{tb: tb, s: s, req: req}
	codeSig := signature()
	g.mk(store.KindAuthorizeCode, codeSig, strings.ReplaceAll(code, sampleID, req), now.Add(10*time.Minute))
	g.must(s.Consume(context.Background(), store.KindAuthorizeCode, codeSig))
	g.tokens = strings.ReplaceAll(tokens, sampleID, req)
	g.refresh = signature()
	g.mk(store.KindAccessToken, signature(), g.tokens, now.Add(time.Hour))
	g.mk(store.KindRefreshToken, g.refresh, g.tokens, now.Add(30*24*time.Hour))
	return g
}

// rotate does what a refresh at now does (rotation without a grace period):
// the live refresh token consumed, the access tokens revoked, a new pair
// stored with data.
func (g *grant) rotate(now time.Time, data string) {
	ctx := context.Background()
	g.must(g.s.Consume(ctx, store.KindRefreshToken, g.refresh))
	g.must(g.s.Revoke(ctx, store.KindAccessToken, g.req))
	g.tokens, g.refresh = data, signature()
	g.mk(store.KindAccessToken, signature(), data, now.Add(time.Hour))
	g.mk(store.KindRefreshToken, g.refresh, data, now.Add(30*24*time.Hour))
}

// flowRecords does to s what one flow followed by one refresh does. It
// leaves five records: the consumed code (kept for replay detection), the
// revoked access token, the rotated refresh token (kept for reuse
// detection) and the live pair.
func flowRecords(tb testing.TB, s *memory.Store, now time.Time, i int) {
	_, _, rotated, sampleID := sample(tb)
	g := login(tb, s, now, i)
	g.rotate(now, strings.ReplaceAll(rotated, sampleID, g.req))
}

// liveHeap returns the bytes of live heap after a collection.
func liveHeap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// heapOf returns the heap a new Store takes once fill has run on it.
func heapOf(b *testing.B, fill func(s *memory.Store)) float64 {
	b.StopTimer()
	defer b.StartTimer()
	before := liveHeap()
	s := memory.New()
	b.StartTimer()
	fill(s)
	b.StopTimer()
	heap := float64(liveHeap()) - float64(before)
	runtime.KeepAlive(s)
	return heap
}

// BenchmarkGrantFootprint measures the heap a Store takes for the records
// the provider writes (testdata/flow-records.json). Flow: per flow and
// refresh (see flowRecords: five records). Hourly: per grant refreshed every
// hour for a day or a week, once what has expired is gone (the code, the
// revoked access tokens): the live pair and the rotated refresh tokens,
// which are kept until they expire (30 days) to detect their reuse;
// B/rotated is what each of these costs, B/grant-1h what a grant costs an
// hour after its login, before its first refresh. Run:
//
//	go test -run '^$' -bench GrantFootprint -benchtime 1x -count 5 ./store/memory/
func BenchmarkGrantFootprint(b *testing.B) {
	b.Run("Flow", func(b *testing.B) {
		const flows = 20_000
		now := time.Now()
		var heap float64
		for b.Loop() {
			heap = heapOf(b, func(s *memory.Store) {
				for i := range flows {
					flowRecords(b, s, now, i)
				}
			})
		}
		b.ReportMetric(heap/flows, "B/flow")
		b.ReportMetric(0, "ns/op")
	})
	// A grant refreshed hourly for hours hours, pruned as the janitor would.
	hourly := func(b *testing.B, grants, hours int) float64 {
		_, _, rotated, sampleID := sample(b)
		data := make([]string, hours) // the Data of each rotation, once
		for h := range data {
			data[h] = shifted(rotated, time.Duration(h)*time.Hour)
		}
		now := time.Now()
		return heapOf(b, func(s *memory.Store) {
			for i := range grants {
				g := login(b, s, now, i)
				for h := 1; h < hours; h++ {
					g.rotate(now.Add(time.Duration(h)*time.Hour), strings.ReplaceAll(data[h], sampleID, g.req))
				}
			}
			if _, err := s.DeleteExpired(context.Background(), now.Add(time.Duration(hours)*time.Hour)); err != nil {
				b.Fatal(err)
			}
		}) / float64(grants)
	}
	for _, hours := range []int{24, 168} {
		b.Run(fmt.Sprintf("Hourly/%dh", hours), func(b *testing.B) {
			var one, many float64
			for b.Loop() {
				one = hourly(b, 1000, 1)
				many = hourly(b, 100_000/hours, hours)
			}
			b.ReportMetric(one, "B/grant-1h")
			b.ReportMetric(many, "B/grant")
			b.ReportMetric((many-one)/float64(hours-1), "B/rotated")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// TestFlowRecordsShape checks that flowRecords leaves what it says: the
// consumed code, a revoked and a live access token, a rotated and a live
// refresh token.
func TestFlowRecordsShape(t *testing.T) {
	s := memory.New()
	flowRecords(t, s, time.Now(), 1)
	n, err := s.DeleteExpired(t.Context(), time.Now().Add(365*24*time.Hour))
	if err != nil || n != 5 {
		t.Fatalf("DeleteExpired: got %d, %v; want 5 records", n, err)
	}
}

// TestShifted checks that shifted moves the times of the sample's Data a
// rotation changes, and keeps its layout and length.
func TestShifted(t *testing.T) {
	_, _, rotated, _ := sample(t)
	got := shifted(rotated, time.Hour)
	if len(got) != len(rotated) || got == rotated {
		t.Fatalf("shifted: got %d bytes, want %d, changed", len(got), len(rotated))
	}
	was, now := rotating.FindAllStringSubmatch(rotated, -1), rotating.FindAllStringSubmatch(got, -1)
	if len(was) != 5 || len(now) != len(was) {
		t.Fatalf("got %d times, want 5 (requested_at, access and refresh token expiry, iat, exp)", len(now))
	}
	for i := range was {
		a, _ := time.Parse(time.RFC3339Nano, was[i][2])
		b, _ := time.Parse(time.RFC3339Nano, now[i][2])
		if b.Sub(a) != time.Hour {
			t.Errorf("%s shifted to %s", was[i][0], now[i][0])
		}
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
