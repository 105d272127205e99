package handlers_test

import (
	"context"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/pixieauth/pixie/handlers"
	"github.com/pixieauth/pixie/provider"
)

// eventRecorder is a Config.Events that keeps every event.
type eventRecorder struct {
	mu     sync.Mutex
	events []provider.Event
}

func (r *eventRecorder) record(_ context.Context, e provider.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

func (r *eventRecorder) all() []provider.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

// observedServer is a test server whose provider records into in-memory
// OpenTelemetry exporters, an event recorder and a debug log, behind a host
// middleware that starts an HTTP span for every request, as a host app
// instrumented with OpenTelemetry does.
type observedServer struct {
	*testServer
	spans  *tracetest.InMemoryExporter
	reader *sdkmetric.ManualReader
	events *eventRecorder
	logs   *syncBuffer
}

func newObservedServer(t *testing.T, clientID bool) *observedServer {
	t.Helper()
	o := &observedServer{spans: tracetest.NewInMemoryExporter(), reader: sdkmetric.NewManualReader(), events: &eventRecorder{}, logs: &syncBuffer{}}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(o.spans))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(o.reader))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()); _ = mp.Shutdown(context.Background()) })
	host := tp.Tracer("host")
	o.testServer = newTestServer(t, serverOptions{
		Logger: slog.New(slog.NewTextHandler(o.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Provider: func(c *provider.Config) {
			c.TracerProvider, c.MeterProvider, c.Events, c.MetricsClientID = tp, mp, o.events.record, clientID
		},
		Middleware: func(h http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				ctx, span := host.Start(r.Context(), "host "+r.Method+" "+r.URL.Path)
				defer span.End()
				h.ServeHTTP(w, r.WithContext(ctx))
			})
		},
	})
	return o
}

// secrets is what a scenario handled that must never be recorded.
type secrets []string

func (s *secrets) add(v ...string) {
	for _, x := range v {
		if x != "" {
			*s = append(*s, x)
		}
	}
}

// scenario runs what the issue lists: a failed login, a full flow, a
// refresh, the replay of the rotated refresh token and of the code, a
// consent denied then given, a revocation, a logout and a key rotation. It
// returns every credential it handled.
func (o *observedServer) scenario(t *testing.T) secrets {
	t.Helper()
	var sec secrets
	sec.add(alicePassword, aliceEmail, apiSecret)
	b := newBrowser(t, o.testServer)

	conf := o.oauth2Config(nativeClient, o.loopbackRedirect(), allScopes)
	ar := newAuthRequest(conf)
	sec.add(ar.Verifier)
	p := b.get(t, ar.URL)
	if !p.IsLogin() {
		t.Fatalf("authorize: got status %d at %s, want the login page", p.Status, p.URL)
	}
	const wrong = "wrong-password-typed-in-username-field"
	sec.add(wrong)
	p = b.submitLogin(t, p, wrong, wrong)
	if !p.IsLogin() {
		t.Fatalf("failed login: got status %d at %s, want the login page again", p.Status, p.URL)
	}
	p = b.submitLogin(t, p, aliceUsername, alicePassword)
	if p.Callback == nil {
		t.Fatalf("login: got status %d at %s, want a redirect with a code", p.Status, p.URL)
	}
	code := p.Callback.Query().Get("code")
	sec.add(code)
	tok, err := ar.exchange(t.Context(), code)
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	idt, _ := tok.Extra("id_token").(string)
	sec.add(tok.AccessToken, tok.RefreshToken, idt)

	tok2, err := refresh(t.Context(), conf, tok.RefreshToken)
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	idt2, _ := tok2.Extra("id_token").(string)
	sec.add(tok2.AccessToken, tok2.RefreshToken, idt2)
	_, err = refresh(t.Context(), conf, tok.RefreshToken)
	wantRetrieveError(t, err, http.StatusBadRequest, "invalid_grant")
	_, err = ar.exchange(t.Context(), code)
	wantRetrieveError(t, err, http.StatusBadRequest, "invalid_grant")

	// Consent: a client that is not first party.
	other := o.oauth2Config(otherClient, o.loopbackRedirect(), "openid profile")
	oar := newAuthRequest(other)
	sec.add(oar.Verifier)
	p = b.decide(t, b.parseConsent(t, b.get(t, oar.URL)), "deny")
	if p.Callback == nil || p.Callback.Query().Get("error") != "access_denied" {
		t.Fatalf("consent denied: got status %d, Location %q; want access_denied", p.Status, p.Location)
	}
	oar = newAuthRequest(other)
	sec.add(oar.Verifier)
	p = b.decide(t, b.parseConsent(t, b.get(t, oar.URL)), "allow")
	if p.Callback == nil || p.Callback.Query().Get("code") == "" {
		t.Fatalf("consent given: got status %d, Location %q; want a code", p.Status, p.Location)
	}
	ocode := p.Callback.Query().Get("code")
	sec.add(ocode)
	otok, err := oar.exchange(t.Context(), ocode)
	if err != nil {
		t.Fatalf("exchange for %s: %v", otherClient, err)
	}
	sec.add(otok.AccessToken)
	res := o.postForm(t, handlers.PathRevoke, url.Values{"token": {otok.AccessToken}, "client_id": {otherClient}}, nil)
	if res.Status != http.StatusOK {
		t.Fatalf("revoke: got %d %s, want 200", res.Status, res.Body)
	}

	p = b.get(t, o.logoutURL(url.Values{"id_token_hint": {idt2}}))
	if logoutPageKind(p) == confirm {
		f := b.parseForm(t, p)
		p = b.post(t, f.Action, f.Fields, "")
	}
	if logoutPageKind(p) != signedOut {
		t.Fatalf("logout: got status %d at %s, want the signed-out page", p.Status, p.URL)
	}
	if err := o.Provider.RotateKeys(t.Context()); err != nil {
		t.Fatalf("RotateKeys: %v", err)
	}
	return sec
}

// TestTelemetryEvents: each audit event of the scenario fires once, in
// order, with its subject, client, address and request ID, and no more.
func TestTelemetryEvents(t *testing.T) {
	o := newObservedServer(t, false)
	o.scenario(t)
	// want is one expected event: its type and the fields it must carry.
	type want struct {
		typ       provider.EventType
		subject   string
		client    string
		grantType string
		reason    string
		inRequest bool // made by a request: Address and RequestID set
	}
	wants := []want{
		{typ: provider.EventLoginFailed, client: nativeClient, reason: "wrong_credentials", inRequest: true},
		{typ: provider.EventLoginSucceeded, subject: "alice", client: nativeClient, inRequest: true},
		{typ: provider.EventTokensIssued, subject: "alice", client: nativeClient, grantType: "authorization_code", inRequest: true},
		{typ: provider.EventTokensIssued, subject: "alice", client: nativeClient, grantType: "refresh_token", inRequest: true},
		{typ: provider.EventRefreshReuseDetected, subject: "alice", client: nativeClient, grantType: "refresh_token", inRequest: true},
		{typ: provider.EventCodeReplayDetected, subject: "alice", client: nativeClient, grantType: "authorization_code", inRequest: true},
		{typ: provider.EventConsentDenied, subject: "alice", client: otherClient, inRequest: true},
		{typ: provider.EventConsentGiven, subject: "alice", client: otherClient, inRequest: true},
		{typ: provider.EventTokensIssued, subject: "alice", client: otherClient, grantType: "authorization_code", inRequest: true},
		{typ: provider.EventTokenRevoked, client: otherClient, inRequest: true},
		{typ: provider.EventLogout, subject: "alice", client: nativeClient, inRequest: true},
		{typ: provider.EventKeyRotated},
	}
	got := o.events.all()
	for i, e := range got {
		t.Logf("event %d: %+v", i, e)
	}
	if len(got) != len(wants) {
		t.Fatalf("got %d events, want %d", len(got), len(wants))
	}
	for i, w := range wants {
		e := got[i]
		if e.Type != w.typ || e.Subject != w.subject || e.ClientID != w.client || e.GrantType != w.grantType || e.Reason != w.reason {
			t.Errorf("event %d: got %+v, want type %s, subject %q, client %q, grant type %q, reason %q", i, e, w.typ, w.subject, w.client, w.grantType, w.reason)
		}
		if e.Time.IsZero() {
			t.Errorf("event %d (%s): no time", i, e.Type)
		}
		switch {
		case w.inRequest && e.Address != "127.0.0.1":
			t.Errorf("event %d (%s): got address %q, want 127.0.0.1", i, e.Type, e.Address)
		case w.inRequest && !isTraceID(e.RequestID):
			t.Errorf("event %d (%s): got request ID %q, want the trace ID of the host's span", i, e.Type, e.RequestID)
		case !w.inRequest && (e.Address != "" || e.RequestID != ""):
			t.Errorf("event %d (%s): got address %q and request ID %q outside a request, want none", i, e.Type, e.Address, e.RequestID)
		}
	}
}

func isTraceID(s string) bool {
	b, err := hex.DecodeString(s)
	return err == nil && len(b) == 16 && strings.Trim(s, "0") != ""
}

// TestTelemetrySpans: a flow's requests produce pixie's spans nested under
// the host's HTTP span, with their bounded attributes, store spans under
// them, and fosite's spans under pixie's.
func TestTelemetrySpans(t *testing.T) {
	o := newObservedServer(t, true)
	o.scenario(t)
	spans := o.spans.GetSpans()
	byID := map[trace.SpanID]tracetest.SpanStub{}
	for _, s := range spans {
		byID[s.SpanContext.SpanID()] = s
	}
	attrs := func(s tracetest.SpanStub) map[attribute.Key]string {
		m := map[attribute.Key]string{}
		for _, kv := range s.Attributes {
			m[kv.Key] = kv.Value.Emit()
		}
		return m
	}
	// endpoint returns the pixie endpoint span a span is (or is under).
	endpoint := func(s tracetest.SpanStub) (tracetest.SpanStub, bool) {
		for {
			if strings.HasPrefix(s.Name, "pixie.") && !strings.HasPrefix(s.Name, "pixie.store") {
				return s, true
			}
			p, ok := byID[s.Parent.SpanID()]
			if !ok {
				return s, false
			}
			s = p
		}
	}
	count := map[string]int{}
	var storeSpans, fositeSpans int
	for _, s := range spans {
		switch {
		case strings.HasPrefix(s.Name, "pixie.store "):
			storeSpans++
			if attrs(s)["pixie.store.operation"] == "" || attrs(s)["pixie.store.outcome"] == "" {
				t.Errorf("store span %s: attributes %v, want operation and outcome", s.Name, attrs(s))
			}
			if _, ok := endpoint(s); !ok {
				t.Errorf("store span %s is not under a pixie endpoint span", s.Name)
			}
		case strings.HasPrefix(s.Name, "Fosite."):
			fositeSpans++
			if _, ok := endpoint(s); !ok {
				t.Errorf("fosite span %s is not under a pixie endpoint span", s.Name)
			}
		case strings.HasPrefix(s.Name, "pixie."):
			count[s.Name]++
			parent, ok := byID[s.Parent.SpanID()]
			if !ok || !strings.HasPrefix(parent.Name, "host ") || parent.SpanContext.TraceID() != s.SpanContext.TraceID() {
				t.Errorf("span %s: parent %q, want the host's HTTP span", s.Name, parent.Name)
			}
			if got := attrs(s)["pixie.endpoint"]; "pixie."+got != s.Name {
				t.Errorf("span %s: pixie.endpoint %q", s.Name, got)
			}
		}
	}
	for _, name := range []string{"pixie.authorize", "pixie.login", "pixie.token", "pixie.consent", "pixie.revoke", "pixie.logout"} {
		if count[name] == 0 {
			t.Errorf("no %s span; got %v", name, count)
		}
	}
	if storeSpans == 0 || fositeSpans == 0 {
		t.Errorf("got %d store spans and %d fosite spans, want some of each", storeSpans, fositeSpans)
	}
	// The first token request: a code exchange by a public client.
	var tokenSpans []tracetest.SpanStub
	for _, s := range spans {
		if s.Name == "pixie.token" {
			tokenSpans = append(tokenSpans, s)
		}
	}
	if len(tokenSpans) != 5 {
		t.Fatalf("got %d token spans, want 5 (exchange, refresh, replayed refresh, replayed code, the other client's exchange)", len(tokenSpans))
	}
	a := attrs(tokenSpans[0])
	if a["pixie.grant_type"] != "authorization_code" || a["pixie.client_type"] != "public" || a["pixie.error_code"] != "" {
		t.Errorf("code exchange span attributes: %v", a)
	}
	if a := attrs(tokenSpans[2]); a["pixie.grant_type"] != "refresh_token" || a["pixie.error_code"] != "invalid_grant" {
		t.Errorf("replayed refresh span attributes: %v", a)
	}
}

// TestTelemetryMetrics: the scenario's counters, the store histogram and
// the key age, read with the SDK's ManualReader.
func TestTelemetryMetrics(t *testing.T) {
	o := newObservedServer(t, true)
	o.scenario(t)
	// And a code redeemed with a DPoP header that is no proof.
	conf := o.oauth2Config(nativeClient, o.loopbackRedirect(), allScopes)
	ar := newAuthRequest(conf)
	code := newBrowser(t, o.testServer).code(t, ar)
	res := o.postForm(t, handlers.PathToken, url.Values{
		"grant_type": {"authorization_code"}, "code": {code}, "code_verifier": {ar.Verifier},
		"redirect_uri": {conf.RedirectURL}, "client_id": {nativeClient},
	}, http.Header{"Dpop": {"not-a-proof"}})
	res.wantOAuthError(t, http.StatusBadRequest, "invalid_dpop_proof")
	// And client IDs nobody registered, which must not become attributes
	// (anyone could make series without end).
	const unknown = "client-nobody-registered"
	res = o.postForm(t, handlers.PathToken, url.Values{
		"grant_type": {"authorization_code"}, "code": {"x"}, "code_verifier": {ar.Verifier}, "client_id": {unknown},
	}, nil)
	res.wantOAuthError(t, http.StatusUnauthorized, "invalid_client")
	if p := newBrowser(t, o.testServer).get(t, o.authorizeURL(url.Values{"client_id": {unknown}, "response_type": {"code"}})); p.Status != http.StatusBadRequest {
		t.Fatalf("authorize for an unknown client: got %d, want the error page", p.Status)
	}
	var rm metricdata.ResourceMetrics
	if err := o.reader.Collect(t.Context(), &rm); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string            // the metric
		attrs map[string]string // the data point's attributes (a subset)
		want  int64             // its count
	}{
		{"pixie.tokens.issued", map[string]string{"pixie.grant_type": "authorization_code", "pixie.token_kind": "access_token", "oauth.client_id": nativeClient}, 1},
		{"pixie.tokens.issued", map[string]string{"pixie.grant_type": "authorization_code", "pixie.token_kind": "id_token"}, 2},
		{"pixie.tokens.issued", map[string]string{"pixie.grant_type": "refresh_token", "pixie.token_kind": "refresh_token"}, 1},
		{"pixie.token.errors", map[string]string{"pixie.error_code": "invalid_grant"}, 2},
		{"pixie.authorize.outcomes", map[string]string{"pixie.outcome": "login_shown"}, 2},
		{"pixie.authorize.outcomes", map[string]string{"pixie.outcome": "consent_shown"}, 2},
		{"pixie.authorize.outcomes", map[string]string{"pixie.outcome": "code_issued"}, 3},
		{"pixie.authorize.outcomes", map[string]string{"pixie.outcome": "error"}, 2}, // the consent denied, the unknown client
		{"pixie.authorize.outcomes", map[string]string{"pixie.outcome": "error", "oauth.client_id": otherClient}, 1},
		{"pixie.token.errors", map[string]string{"pixie.error_code": "invalid_client"}, 1},
		{"pixie.token.errors", map[string]string{"oauth.client_id": unknown}, 0},
		{"pixie.authorize.outcomes", map[string]string{"oauth.client_id": unknown}, 0},
		{"pixie.login.attempts", map[string]string{"pixie.result": "wrong_credentials"}, 1},
		{"pixie.login.attempts", map[string]string{"pixie.result": "success"}, 2},
		{"pixie.refresh.reuse", map[string]string{"pixie.reuse": "replay", "oauth.client_id": nativeClient}, 1},
		{"pixie.code.replay", map[string]string{"oauth.client_id": nativeClient}, 1},
		{"pixie.dpop.rejections", map[string]string{"pixie.endpoint": "token", "pixie.error_code": "invalid_dpop_proof"}, 1},
		{"pixie.token.errors", map[string]string{"pixie.error_code": "invalid_dpop_proof", "oauth.client_id": nativeClient}, 1},
		{"pixie.store.duration", map[string]string{"pixie.store.operation": "Batcher.ApplyGrants", "pixie.store.outcome": "ok"}, 3},
		{"pixie.store.duration", map[string]string{"pixie.store.operation": "Users.Authenticate", "pixie.store.outcome": "refused"}, 1},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.name, tt.attrs), func(t *testing.T) {
			if got := metricCount(rm, tt.name, tt.attrs); got != tt.want {
				t.Errorf("got %d, want %d", got, tt.want)
			}
		})
	}
	if n := metricCount(rm, "pixie.keys.age", nil); n != 2 {
		t.Errorf("pixie.keys.age: got %d data points, want 2 (RS256, ES256)", n)
	}
}

// metricCount sums, over the data points of metric name whose attributes
// include attrs, the counter values or histogram counts; for a gauge it
// counts the data points.
func metricCount(rm metricdata.ResourceMetrics, name string, attrs map[string]string) int64 {
	match := func(set attribute.Set) bool {
		for k, v := range attrs {
			if got, ok := set.Value(attribute.Key(k)); !ok || got.Emit() != v {
				return false
			}
		}
		return true
	}
	var n int64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, dp := range d.DataPoints {
					if match(dp.Attributes) {
						n += dp.Value
					}
				}
			case metricdata.Histogram[float64]:
				for _, dp := range d.DataPoints {
					if match(dp.Attributes) {
						n += int64(dp.Count)
					}
				}
			case metricdata.Gauge[float64]:
				for _, dp := range d.DataPoints {
					if match(dp.Attributes) {
						n++
					}
				}
			}
		}
	}
	return n
}

// TestTelemetryRedaction: no token, code, verifier, password, secret or
// e-mail address of the scenario appears in a span (name, attribute,
// event, status), a metric attribute, an audit event or a log line.
func TestTelemetryRedaction(t *testing.T) {
	o := newObservedServer(t, true)
	sec := o.scenario(t)
	var recorded []string // every string recorded, with where
	for _, s := range o.spans.GetSpans() {
		recorded = append(recorded, "span name: "+s.Name, "span status: "+s.Status.Description)
		for _, kv := range s.Attributes {
			recorded = append(recorded, "span "+s.Name+" attribute "+string(kv.Key)+"="+kv.Value.Emit())
		}
		for _, ev := range s.Events {
			recorded = append(recorded, "span "+s.Name+" event "+ev.Name)
			for _, kv := range ev.Attributes {
				recorded = append(recorded, "span "+s.Name+" event attribute "+string(kv.Key)+"="+kv.Value.Emit())
			}
		}
	}
	var rm metricdata.ResourceMetrics
	if err := o.reader.Collect(t.Context(), &rm); err != nil {
		t.Fatal(err)
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			recorded = append(recorded, fmt.Sprintf("metric %s: %+v", m.Name, m.Data))
		}
	}
	for _, e := range o.events.all() {
		recorded = append(recorded, fmt.Sprintf("event: %+v", e))
	}
	for line := range strings.Lines(o.logs.String()) {
		recorded = append(recorded, "log: "+line)
	}
	if len(recorded) < 100 {
		t.Fatalf("only %d records: the scenario recorded too little to check", len(recorded))
	}
	for _, r := range recorded {
		for _, s := range sec {
			if strings.Contains(r, s) {
				t.Errorf("a credential (%.6s…) is recorded: %.300s", s, r)
			}
		}
	}
}

// TestTelemetryNoClientID: without Config.MetricsClientID no metric or span
// carries the client ID.
func TestTelemetryNoClientID(t *testing.T) {
	o := newObservedServer(t, false)
	o.scenario(t)
	for _, s := range o.spans.GetSpans() {
		for _, kv := range s.Attributes {
			if kv.Key == "oauth.client_id" {
				t.Errorf("span %s has oauth.client_id", s.Name)
			}
		}
	}
	var rm metricdata.ResourceMetrics
	if err := o.reader.Collect(t.Context(), &rm); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(fmt.Sprintf("%+v", rm), "oauth.client_id") {
		t.Error("a metric has oauth.client_id")
	}
	if n := metricCount(rm, "pixie.tokens.issued", nil); n == 0 {
		t.Error("no tokens counted: the check above checked nothing")
	}
}
