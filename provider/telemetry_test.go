package provider

import (
	"context"
	"net/url"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// TestTelemetryWithoutHandlers: a host that calls the provider's methods
// from its own handlers gets pixie's endpoint spans under its own span,
// events with the connection's address and its X-Request-Id, and the
// refresh-token grace reuses counted apart from replays.
func TestTelemetryWithoutHandlers(t *testing.T) {
	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	var mu sync.Mutex
	var events []Event
	e := newTestEnv(t, func(c *Config) {
		c.TracerProvider, c.MeterProvider = tp, mp
		c.RefreshTokenGracePeriod = time.Minute
		c.Events = func(_ context.Context, ev Event) {
			mu.Lock()
			defer mu.Unlock()
			events = append(events, ev)
		}
	})
	ctx, host := tp.Tracer("host").Start(t.Context(), "host POST /oauth/token")
	c := e.issueCode(t, nativeID)
	r := formRequest("/oauth/token", authenticate(url.Values{
		"grant_type": {"authorization_code"}, "code": {c.code}, "redirect_uri": {c.redirectURI}, "code_verifier": {c.verifier},
	}, nativeID))
	r.Header.Set("X-Request-Id", "req-42")
	resp, err := e.p.token(ctx, r)
	if err != nil {
		t.Fatalf("Token: %v", err)
	}
	host.End()
	rt := tokensOf(t, resp).refresh
	if _, err := e.refresh(t.Context(), nativeID, rt); err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if _, err := e.refresh(t.Context(), nativeID, rt); err != nil {
		t.Fatalf("refresh again within the grace period: %v", err)
	}
	if _, err := e.refresh(t.Context(), nativeID, rt); err == nil {
		t.Fatal("a third use of the rotated refresh token: got tokens, want invalid_grant")
	}

	var token sdktrace.ReadOnlySpan
	for _, s := range spans.GetSpans().Snapshots() {
		if s.Name() == "pixie.token" && s.Parent().SpanID() == host.SpanContext().SpanID() {
			token = s
		}
	}
	if token == nil {
		t.Fatal("no pixie.token span under the host's span")
	}

	mu.Lock()
	defer mu.Unlock()
	var types []EventType
	for _, ev := range events {
		types = append(types, ev.Type)
	}
	want := []EventType{EventTokensIssued, EventTokensIssued, EventTokensIssued, EventRefreshReuseDetected}
	if len(types) != len(want) {
		t.Fatalf("events %v, want %v", types, want)
	}
	for i := range want {
		if types[i] != want[i] {
			t.Fatalf("events %v, want %v", types, want)
		}
	}
	if ev := events[0]; ev.Address != "192.0.2.1" || ev.RequestID != "req-42" || ev.Subject != testSubject || ev.ClientID != nativeID {
		t.Errorf("first event: %+v, want address 192.0.2.1 (httptest's), request ID req-42, subject and client", ev)
	}

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(t.Context(), &rm); err != nil {
		t.Fatal(err)
	}
	reuse := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != "pixie.refresh.reuse" {
				continue
			}
			for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
				v, _ := dp.Attributes.Value(attribute.Key("pixie.reuse"))
				reuse[v.AsString()] += dp.Value
			}
		}
	}
	if reuse["grace"] != 1 || reuse["replay"] != 1 {
		t.Errorf("pixie.refresh.reuse: got %v, want grace 1 and replay 1", reuse)
	}
}
