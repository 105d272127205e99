package handlers_test

import (
	"testing"
	"time"

	"github.com/pixieauth/pixie/internal/telemetry"
	"github.com/pixieauth/pixie/store/memory"
)

// BenchmarkFlowTelemetry measures what instrumentation costs when the host
// sets up nothing: BenchmarkFlow's flow (memory store, ES256) with pixie's
// spans, metrics and events compiled in but the OpenTelemetry providers the
// global no-op ones ("noop", the default of an unconfigured provider), and
// the same with instrumentation bypassed altogether ("off", as a build
// without it: telemetry.Off). Both in the same run; the issue allows at
// most 3% between them. "alternating" runs the two in turn, for a
// comparison the order of the runs cannot skew.
//
//	go test -run '^$' -bench FlowTelemetry -benchmem -count 6 ./handlers/
func BenchmarkFlowTelemetry(b *testing.B) {
	newFlow := func(b *testing.B, off bool) *benchFlow {
		telemetry.Off(off)
		defer telemetry.Off(false)
		st := memory.New()
		return newBenchFlow(b, "ES256", benchStore{st, st.AddClient, st.AddUser})
	}
	for _, mode := range []string{"off", "noop"} {
		b.Run(mode, func(b *testing.B) {
			f := newFlow(b, mode == "off")
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				f.run(b)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "flows/s")
		})
	}
	// Both flows in turn, each timed, the one going first alternating:
	// what the machine does meanwhile falls on both alike. Run one after
	// the other, the later runs are slower whichever goes second: -count
	// runs "off" six times and then "noop" six times, and every run's
	// memory store stays alive (its janitor's timer holds it while it has
	// grants), so each run starts with a larger heap for the garbage
	// collector to mark than the one before. It reports each one's ns per
	// flow and the overhead of noop in percent.
	b.Run("alternating", func(b *testing.B) {
		flows := [2]*benchFlow{newFlow(b, true), newFlow(b, false)}
		var spent [2]time.Duration
		i := 0
		for b.Loop() {
			for k := range 2 {
				j := (i + k) % 2
				start := time.Now()
				flows[j].run(b)
				spent[j] += time.Since(start)
			}
			i++
		}
		n := float64(b.N)
		b.ReportMetric(float64(spent[0].Nanoseconds())/n, "off-ns/flow")
		b.ReportMetric(float64(spent[1].Nanoseconds())/n, "noop-ns/flow")
		b.ReportMetric(100*(float64(spent[1])/float64(spent[0])-1), "overhead-%")
	})
}
