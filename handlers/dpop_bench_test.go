package handlers_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/pixieauth/pixie/store/memory"
)

// BenchmarkDPoP compares in one run what DPoP (RFC 9449) costs the server:
// BenchmarkFlow's flow and BenchmarkUserInfo's call with bearer tokens, and
// the same with a proof at the token endpoint and at /userinfo (checked,
// and its jti recorded in the grant store). Memory store, ES256. The
// proofs are written ahead, a batch at a time with the timer stopped: that
// is the app's work.
//
//	go test -run '^$' -bench DPoP -benchtime 2s -count 6 ./handlers/
func BenchmarkDPoP(b *testing.B) {
	const userinfoURL = "http://127.0.0.1:8080/userinfo"
	newFlow := func(b *testing.B, dpop bool) *benchFlow {
		st := memory.New()
		f := newBenchFlow(b, "ES256", benchStore{st, st.AddClient, st.AddUser})
		if dpop {
			f.key = newDPoPKey(b)
		}
		return f
	}
	for _, mode := range []string{"Bearer", "DPoP"} {
		b.Run("Flow/"+mode, func(b *testing.B) {
			f := newFlow(b, mode == "DPoP")
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				f.run(b)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "flows/s")
		})
	}
	for _, mode := range []string{"Bearer", "DPoP"} {
		b.Run("UserInfo/"+mode, func(b *testing.B) {
			f := newFlow(b, mode == "DPoP")
			tok := f.run(b).AccessToken
			var proofs []string
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				req := httptest.NewRequest(http.MethodGet, userinfoURL, nil)
				req.Header.Set("Authorization", mode+" "+tok)
				if f.key != nil {
					req.Header.Set("DPoP", f.key.nextProof(b, &proofs, http.MethodGet, userinfoURL, tok))
				}
				rec := f.do(req)
				if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"sub":"alice"`) {
					b.Fatalf("userinfo: got %d %s", rec.Code, rec.Body)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
		})
	}
}

// nextProof takes the next of the proofs made ahead for a request, making
// a new batch with the timer stopped when there are none left.
func (k *dpopKey) nextProof(b *testing.B, proofs *[]string, method, rawURL, token string) string {
	if len(*proofs) == 0 {
		b.StopTimer()
		for range 2000 {
			*proofs = append(*proofs, k.proof(b, method, rawURL, token))
		}
		b.StartTimer()
	}
	p := (*proofs)[len(*proofs)-1]
	*proofs = (*proofs)[:len(*proofs)-1]
	return p
}
