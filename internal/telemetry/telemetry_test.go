package telemetry

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	mnoop "go.opentelemetry.io/otel/metric/noop"
	tnoop "go.opentelemetry.io/otel/trace/noop"
)

func TestRequestID(t *testing.T) {
	tests := []struct {
		name   string
		header string // X-Request-Id
		want   string
	}{
		{"absent", "", ""},
		{"a uuid", "3f2c1e9a-6d4b-4c8e-9a1f-0b2d3c4e5f60", "3f2c1e9a-6d4b-4c8e-9a1f-0b2d3c4e5f60"},
		{"too long: dropped, not cut", strings.Repeat("a", maxRequestIDLen+1), ""},
		{"longest kept", strings.Repeat("a", maxRequestIDLen), strings.Repeat("a", maxRequestIDLen)},
		{"white space: dropped", "a b", ""},
		{"not ASCII: dropped", "é", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			if tt.header != "" {
				r.Header.Set("X-Request-Id", tt.header)
			}
			if got := RequestID(r); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// TestNilRecordsNothing: every method of a nil *T (instrumentation off)
// is safe and leaves the context alone.
func TestNilRecordsNothing(t *testing.T) {
	var tel *T
	ctx := context.Background()
	got, span := tel.Endpoint(ctx, "token", "127.0.0.1", "id")
	if got != ctx || From(got) != nil {
		t.Error("a nil *T changed the context")
	}
	span.SetAttributes(KeyGrantType.String("x"))
	span.Fail("invalid_grant")
	span.End()
	tel.TokensIssued(ctx, "authorization_code", "c", "access_token")
	tel.TokenError(ctx, "invalid_grant", "c")
	tel.AuthorizeOutcome(ctx, OutcomeError, "c")
	tel.LoginAttempt(ctx, LoginSuccess)
	tel.RefreshReuse(ctx, ReuseReplay, "c")
	tel.CodeReplay(ctx, "c")
	tel.DPoPRejection(ctx, "token", "invalid_dpop_proof")
	tel.Emit(ctx, Event{Type: "logout"})
	if tel.Emits() {
		t.Error("a nil *T emits")
	}
	_, call := StartStore(ctx, "Grants.Grant")
	call.End(ctx, StoreOK)
}

// TestOff: after Off(true), New returns nil; Off(false) restores it.
func TestOff(t *testing.T) {
	o := Options{Tracer: tnoop.NewTracerProvider(), Meter: mnoop.NewMeterProvider(), KeyAges: func() map[string]time.Duration { return nil }}
	Off(true)
	tel, err := New(o)
	Off(false)
	if err != nil || tel != nil {
		t.Fatalf("with Off(true): got %v, %v; want nil, nil", tel, err)
	}
	if tel, err = New(o); err != nil || tel == nil {
		t.Fatalf("after Off(false): got %v, %v; want instruments", tel, err)
	}
	// The scope: the provider's endpoint reuses the span handlers began.
	ctx, span := tel.Endpoint(context.Background(), "token", "", "")
	defer span.End()
	if From(ctx) != tel {
		t.Fatal("the context does not carry the instruments")
	}
	if again, inner := tel.Endpoint(ctx, "token", "", ""); again != ctx || inner.owned {
		t.Error("a second Endpoint in the same scope started a new span")
	}
}
