// Package telemetry holds pixie's OpenTelemetry instruments (traces and
// metrics) and its audit-event sink, shared by package provider, which
// builds them from its Config, and by package handlers and
// internal/storetimeout, which record through them.
//
// Only the OpenTelemetry API is used here, never the SDK: with the no-op
// providers (nothing configured by the host) a span costs a context value
// and a metric nothing but an Enabled check. A nil *T records nothing at
// all: that is the build "without instrumentation" the benchmarks compare
// against (see Off).
//
// Attributes are bounded and never carry a credential: endpoint, grant
// type, client type, OAuth error code, store operation and outcome, and the
// client ID only when the host opts in.
package telemetry

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// ScopeName is the instrumentation scope of pixie's tracer and meter.
const ScopeName = "github.com/pixieauth/pixie"

// Attribute keys. Every value is one of a small set, except ClientID, which
// is recorded only when the host opts in (provider.Config.MetricsClientID).
const (
	KeyEndpoint   = attribute.Key("pixie.endpoint")
	KeyGrantType  = attribute.Key("pixie.grant_type")
	KeyTokenKind  = attribute.Key("pixie.token_kind")
	KeyClientType = attribute.Key("pixie.client_type")
	KeyErrorCode  = attribute.Key("pixie.error_code")
	KeyOutcome    = attribute.Key("pixie.outcome")
	KeyResult     = attribute.Key("pixie.result")
	KeyReuse      = attribute.Key("pixie.reuse")
	KeyStoreOp    = attribute.Key("pixie.store.operation")
	KeyStoreOut   = attribute.Key("pixie.store.outcome")
	KeyKeyAlg     = attribute.Key("pixie.key.alg")
	KeyClientID   = attribute.Key("oauth.client_id")
)

// Metric names.
const (
	MetricTokensIssued   = "pixie.tokens.issued"
	MetricTokenErrors    = "pixie.token.errors"
	MetricAuthorize      = "pixie.authorize.outcomes"
	MetricLoginAttempts  = "pixie.login.attempts"
	MetricRefreshReuse   = "pixie.refresh.reuse"
	MetricCodeReplay     = "pixie.code.replay"
	MetricDPoPRejections = "pixie.dpop.rejections"
	MetricStoreDuration  = "pixie.store.duration"
	MetricKeysAge        = "pixie.keys.age"
)

// off makes New return nil: see Off.
var off atomic.Bool

// Off, for benchmarks only, makes every provider built afterwards run
// without any instrumentation at all (a nil *T), as a build without it
// would; Off(false) restores the default.
func Off(v bool) { off.Store(v) }

// Event is an audit event as the provider hands it to Config.Events; package
// provider converts it to its exported Event.
type Event struct {
	Type      string
	Time      time.Time
	Subject   string
	ClientID  string
	Address   string
	RequestID string
	GrantType string
	Reason    string
}

// Options configures New.
type Options struct {
	Tracer   trace.TracerProvider
	Meter    metric.MeterProvider
	ClientID bool                                 // record client IDs as attributes
	Events   func(context.Context, Event)         // the audit sink, or nil
	Now      func() time.Time                     // for event times
	KeyAges  func() map[string]time.Duration      // age of each signing algorithm's current key
	Failed   func(ctx context.Context, err error) // told when an instrument cannot be made; nil: ignored
}

// T holds the instruments. A nil *T records nothing.
type T struct {
	tracer   trace.Tracer
	clientID bool
	events   func(context.Context, Event)
	now      func() time.Time

	tokens, tokenErrors, authorize, logins, refreshReuse, codeReplay, dpopRejections metric.Int64Counter
	storeDuration                                                                    metric.Float64Histogram
}

// New makes the instruments from the given providers (both required). It
// returns nil after Off(true).
func New(o Options) (*T, error) {
	if off.Load() {
		return nil, nil
	}
	t := &T{tracer: o.Tracer.Tracer(ScopeName), clientID: o.ClientID, events: o.Events, now: o.Now}
	if t.now == nil {
		t.now = time.Now
	}
	m := o.Meter.Meter(ScopeName)
	var errs []error
	counter := func(name, unit, desc string) metric.Int64Counter {
		c, err := m.Int64Counter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = append(errs, err)
		return c
	}
	t.tokens = counter(MetricTokensIssued, "{token}", "Tokens issued, by grant type and token kind.")
	t.tokenErrors = counter(MetricTokenErrors, "{error}", "Token endpoint refusals, by OAuth error code.")
	t.authorize = counter(MetricAuthorize, "{request}", "Authorization request outcomes: code_issued, login_shown, consent_shown, error.")
	t.logins = counter(MetricLoginAttempts, "{attempt}", "Login form attempts, by result: success, wrong_credentials, throttled.")
	t.refreshReuse = counter(MetricRefreshReuse, "{use}", "Rotated refresh tokens used again: replay (the family is revoked) or grace.")
	t.codeReplay = counter(MetricCodeReplay, "{use}", "Authorization codes redeemed again (the tokens issued from them are revoked).")
	t.dpopRejections = counter(MetricDPoPRejections, "{proof}", "DPoP proofs refused, by endpoint and OAuth error code.")
	h, err := m.Float64Histogram(MetricStoreDuration, metric.WithUnit("s"),
		metric.WithDescription("Duration of store calls, by operation and outcome."),
		metric.WithExplicitBucketBoundaries(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
	errs = append(errs, err)
	t.storeDuration = h
	if o.KeyAges != nil {
		g, err := m.Float64ObservableGauge(MetricKeysAge, metric.WithUnit("s"),
			metric.WithDescription("Age of the signing key in use, by algorithm."))
		errs = append(errs, err)
		if err == nil {
			_, err = m.RegisterCallback(func(_ context.Context, obs metric.Observer) error {
				for alg, age := range o.KeyAges() {
					obs.ObserveFloat64(g, age.Seconds(), metric.WithAttributes(KeyKeyAlg.String(alg)))
				}
				return nil
			}, g)
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return t, nil
}

// scopeKey is the context key of a request's scope.
type scopeKey struct{}

// scope is what a request carries: the instruments, and who made it.
type scope struct {
	t         *T
	address   string
	requestID string
}

// From returns the instruments ctx carries (see Endpoint), or nil.
func From(ctx context.Context) *T {
	switch s := ctx.Value(scopeKey{}).(type) {
	case *scope:
		return s.t
	case *T:
		return s // without an event sink, the scope is the instruments alone
	}
	return nil
}

// spanNames are the span names of the endpoints, made once.
var spanNames = func() map[string]string {
	m := map[string]string{}
	for _, e := range []string{"authorize", "token", "userinfo", "revoke", "introspect", "discovery", "jwks", "login", "logout", "consent", "other"} {
		m[e] = "pixie." + e
	}
	return m
}()

// Span is an endpoint's span, as Endpoint returns it. Its zero value does
// nothing.
type Span struct {
	span  trace.Span
	owned bool // started by this Endpoint call, which must end it
}

// Endpoint starts the span of endpoint ("token", "login", …) under the
// host's span in ctx, and returns ctx carrying it and the request's scope
// (address and request ID, for audit events). When ctx already carries this
// T's scope (package handlers began the endpoint, the provider serves it),
// it reuses that span: the returned Span's End then does nothing.
func (t *T) Endpoint(ctx context.Context, endpoint, address, requestID string) (context.Context, Span) {
	if t == nil {
		return ctx, Span{}
	}
	if From(ctx) == t {
		return ctx, Span{span: trace.SpanFromContext(ctx)}
	}
	name, ok := spanNames[endpoint]
	if !ok {
		name = "pixie." + endpoint
	}
	spanCtx, sp := t.tracer.Start(ctx, name)
	if sp.IsRecording() {
		sp.SetAttributes(KeyEndpoint.String(endpoint))
	}
	if sp.IsRecording() || sp.SpanContext().IsValid() {
		ctx = spanCtx
	}
	// Else no SDK is behind the tracer (a sampled-out span would still have
	// a valid context): the span carries nothing, and leaving it out of ctx
	// keeps what runs under it (fosite's spans) on the cheaper no-op path.
	if t.events == nil {
		return context.WithValue(ctx, scopeKey{}, t), Span{span: sp, owned: true}
	}
	if requestID == "" {
		if sc := sp.SpanContext(); sc.HasTraceID() {
			requestID = sc.TraceID().String()
		}
	}
	return context.WithValue(ctx, scopeKey{}, &scope{t: t, address: address, requestID: requestID}), Span{span: sp, owned: true}
}

// SetAttributes adds attributes to the span, if it records.
func (s Span) SetAttributes(kv ...attribute.KeyValue) {
	if s.span != nil && s.span.IsRecording() {
		s.span.SetAttributes(kv...)
	}
}

// Recording reports whether the span records: attributes that cost
// something to compute are worth it only then.
func (s Span) Recording() bool { return s.span != nil && s.span.IsRecording() }

// Fail marks the span failed with an OAuth error code.
func (s Span) Fail(code string) {
	if s.span != nil && s.span.IsRecording() {
		s.span.SetAttributes(KeyErrorCode.String(code))
		s.span.SetStatus(codes.Error, code)
	}
}

// End ends a span this Span started.
func (s Span) End() {
	if s.owned {
		s.span.End()
	}
}

// ClientIDs reports whether the host opted in to client IDs in metrics.
func (t *T) ClientIDs() bool { return t != nil && t.clientID }

// add adds 1 to c with attrs, plus the client ID when opted in. Nothing is
// built when no SDK listens.
func (t *T) add(ctx context.Context, c metric.Int64Counter, clientID string, attrs ...attribute.KeyValue) {
	if t == nil || !c.Enabled(ctx) {
		return
	}
	if t.clientID && clientID != "" {
		attrs = append(attrs, KeyClientID.String(clientID))
	}
	c.Add(ctx, 1, metric.WithAttributes(attrs...))
}

// TokensIssued counts the tokens of one token response.
func (t *T) TokensIssued(ctx context.Context, grantType, clientID string, kinds ...string) {
	if t == nil || !t.tokens.Enabled(ctx) {
		return
	}
	for _, k := range kinds {
		t.add(ctx, t.tokens, clientID, KeyGrantType.String(grantType), KeyTokenKind.String(k))
	}
}

// TokenError counts a refusal of the token endpoint.
func (t *T) TokenError(ctx context.Context, code, clientID string) {
	if t == nil {
		return
	}
	t.add(ctx, t.tokenErrors, clientID, KeyErrorCode.String(code))
}

// Authorize outcomes.
const (
	OutcomeCodeIssued   = "code_issued"
	OutcomeLoginShown   = "login_shown"
	OutcomeConsentShown = "consent_shown"
	OutcomeError        = "error"
)

// AuthorizeOutcome counts the outcome of an authorization request.
func (t *T) AuthorizeOutcome(ctx context.Context, outcome, clientID string) {
	if t == nil {
		return
	}
	t.add(ctx, t.authorize, clientID, KeyOutcome.String(outcome))
}

// Login attempt results.
const (
	LoginSuccess          = "success"
	LoginWrongCredentials = "wrong_credentials"
	LoginThrottled        = "throttled"
)

// LoginAttempt counts an attempt at the login form.
func (t *T) LoginAttempt(ctx context.Context, result string) {
	if t == nil {
		return
	}
	t.add(ctx, t.logins, "", KeyResult.String(result))
}

// Refresh token reuse kinds.
const (
	ReuseReplay = "replay"
	ReuseGrace  = "grace"
)

// RefreshReuse counts a rotated refresh token used again.
func (t *T) RefreshReuse(ctx context.Context, kind, clientID string) {
	if t == nil {
		return
	}
	t.add(ctx, t.refreshReuse, clientID, KeyReuse.String(kind))
}

// CodeReplay counts an authorization code redeemed again.
func (t *T) CodeReplay(ctx context.Context, clientID string) {
	if t == nil {
		return
	}
	t.add(ctx, t.codeReplay, clientID)
}

// DPoPRejection counts a refused DPoP proof.
func (t *T) DPoPRejection(ctx context.Context, endpoint, code string) {
	if t == nil {
		return
	}
	t.add(ctx, t.dpopRejections, "", KeyEndpoint.String(endpoint), KeyErrorCode.String(code))
}

// Store call outcomes.
const (
	StoreOK       = "ok"
	StoreNotFound = "not_found"
	StoreConsumed = "consumed"
	StoreRefused  = "refused" // Users.Authenticate: wrong credentials
	StoreTimeout  = "timeout"
	StoreError    = "error"
)

// StoreCall is a store call in progress: see StartStore. Its zero value does
// nothing.
type StoreCall struct {
	t     *T
	span  trace.Span
	op    string
	start time.Time
}

// StartStore starts the span of a store call (op: "Grants.Consume", …)
// under the request's span, when ctx carries a request's scope and that
// span records (a request the host's sampler left out gets no store spans:
// they would cost without being kept), and times the call when the
// latency histogram is listened to.
func StartStore(ctx context.Context, op string) (context.Context, StoreCall) {
	t := From(ctx)
	if t == nil {
		return ctx, StoreCall{}
	}
	c := StoreCall{t: t, op: op}
	if trace.SpanFromContext(ctx).IsRecording() {
		ctx, c.span = t.tracer.Start(ctx, "pixie.store "+op, trace.WithSpanKind(trace.SpanKindClient),
			trace.WithAttributes(KeyStoreOp.String(op)))
	}
	if t.storeDuration.Enabled(ctx) {
		c.start = time.Now()
	}
	return ctx, c
}

// End ends the call with its outcome (one of the Store… constants).
func (c StoreCall) End(ctx context.Context, outcome string) {
	if c.t == nil {
		return
	}
	if !c.start.IsZero() {
		c.t.storeDuration.Record(ctx, time.Since(c.start).Seconds(),
			metric.WithAttributes(KeyStoreOp.String(c.op), KeyStoreOut.String(outcome)))
	}
	if c.span == nil {
		return
	}
	if c.span.IsRecording() {
		c.span.SetAttributes(KeyStoreOut.String(outcome))
		if outcome == StoreTimeout || outcome == StoreError {
			c.span.SetStatus(codes.Error, outcome)
		}
	}
	c.span.End()
}

// Emit hands an audit event to the host's sink, with its time, and the
// address and request ID of the request ctx carries. It never blocks on
// anything but the sink itself, which runs synchronously.
func (t *T) Emit(ctx context.Context, e Event) {
	if t == nil || t.events == nil {
		return
	}
	e.Time = t.now()
	if s, ok := ctx.Value(scopeKey{}).(*scope); ok {
		if e.Address == "" {
			e.Address = s.address
		}
		e.RequestID = s.requestID
	}
	t.events(ctx, e)
}

// Emits reports whether the host listens to events at all.
func (t *T) Emits() bool { return t != nil && t.events != nil }

// maxRequestIDLen bounds the X-Request-Id taken into events.
const maxRequestIDLen = 128

// RequestID returns r's X-Request-Id header when it is short and printable
// ASCII, else "".
func RequestID(r *http.Request) string {
	if r == nil {
		return ""
	}
	v := r.Header.Get("X-Request-Id")
	if len(v) > maxRequestIDLen {
		return ""
	}
	for i := 0; i < len(v); i++ {
		if v[i] <= ' ' || v[i] > '~' {
			return ""
		}
	}
	return v
}
