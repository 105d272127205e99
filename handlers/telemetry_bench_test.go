package handlers_test

import (
	"testing"

	"github.com/pixieauth/pixie/internal/telemetry"
	"github.com/pixieauth/pixie/store/memory"
)

// BenchmarkFlowTelemetry measures what instrumentation costs when the host
// sets up nothing: BenchmarkFlow's flow (memory store, ES256) with pixie's
// spans, metrics and events compiled in but the OpenTelemetry providers the
// global no-op ones ("noop", the default of an unconfigured provider), and
// the same with instrumentation bypassed altogether ("off", as a build
// without it: telemetry.Off). Both in the same run; the issue allows at
// most 3% between them.
//
//	go test -run '^$' -bench FlowTelemetry -benchmem -count 6 ./handlers/
func BenchmarkFlowTelemetry(b *testing.B) {
	for _, mode := range []string{"off", "noop"} {
		b.Run(mode, func(b *testing.B) {
			telemetry.Off(mode == "off")
			st := memory.New()
			f := newBenchFlow(b, "ES256", benchStore{st, st.AddClient, st.AddUser})
			telemetry.Off(false)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				f.run(b)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "flows/s")
		})
	}
}
