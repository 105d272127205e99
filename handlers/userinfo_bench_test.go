package handlers_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// BenchmarkUserInfo measures GET /userinfo in process, through the real
// http.Handler, with one access token used again and again, as an app polls
// it: the path a load test of the endpoint exercises. It reports requests/s
// for each storage backend (PostgreSQL with PIXIE_TEST_POSTGRES_DSN set) and
// access token algorithm. Run:
//
//	go test -run '^$' -bench UserInfo -benchtime 2s ./handlers/
func BenchmarkUserInfo(b *testing.B) {
	for _, be := range benchBackends {
		for _, alg := range []string{"RS256", "ES256"} {
			b.Run(be.name+"/"+alg, func(b *testing.B) {
				f := newBenchFlow(b, alg, be.open(b))
				auth := "Bearer " + f.run(b).AccessToken
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					f.userinfo(b, auth)
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
			})
		}
	}
}

// BenchmarkUserInfoParallel is BenchmarkUserInfo from GOMAXPROCS goroutines
// at once, each with an access token of its own.
func BenchmarkUserInfoParallel(b *testing.B) {
	for _, be := range benchBackends {
		for _, alg := range []string{"RS256", "ES256"} {
			b.Run(be.name+"/"+alg, func(b *testing.B) {
				f := newBenchFlow(b, alg, be.open(b))
				tokens := make(chan string, 256)
				for range cap(tokens) {
					tokens <- "Bearer " + f.run(b).AccessToken
				}
				b.ReportAllocs()
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					auth := <-tokens
					for pb.Next() {
						f.userinfo(b, auth)
					}
				})
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
			})
		}
	}
}

// userinfo performs one GET /userinfo with the given Authorization header
// and checks that it answers alice's claims.
func (f *benchFlow) userinfo(b *testing.B, authorization string) {
	req := httptest.NewRequest(http.MethodGet, "http://127.0.0.1:8080/userinfo", nil)
	req.Header.Set("Authorization", authorization)
	rec := f.do(req)
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"sub":"alice"`) {
		b.Fatalf("userinfo: got %d %s, want 200 with alice's claims", rec.Code, rec.Body)
	}
}

// BenchmarkUserInfoFloor is BenchmarkUserInfo's request served by a handler
// that only writes a fixed JSON body: the floor of the in-process harness,
// which BenchmarkUserInfo's figures compare with (issue 9's target is
// against a hello world).
func BenchmarkUserInfoFloor(b *testing.B) {
	f := &benchFlow{h: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		_, _ = w.Write([]byte(`{"sub":"alice"}` + "\n"))
	})}
	b.ReportAllocs()
	for b.Loop() {
		f.userinfo(b, "Bearer x")
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}
