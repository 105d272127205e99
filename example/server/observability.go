package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/pixieauth/pixie/provider"
)

// telemetry is the OpenTelemetry SDK the flags set up, handed to pixie
// through provider.Config.TracerProvider and MeterProvider (not the global
// providers: a host app that has its own would pass those the same way).
type telemetry struct {
	tracer trace.TracerProvider // nil: -trace is off
	meter  metric.MeterProvider // nil: -metrics-addr is off
	// shutdown flushes the exporters and stops the metrics server.
	shutdown func(context.Context) error
}

// setupTelemetry starts what -trace and -metrics-addr ask for: a
// TracerProvider exporting to out (stdout) or over OTLP/HTTP (otlp,
// configured by the standard OTEL_EXPORTER_OTLP_* environment variables),
// and a MeterProvider whose metrics the OpenTelemetry Prometheus exporter
// serves at /metrics on the metrics address, a loopback one only (see
// checkMetricsAddr).
func setupTelemetry(ctx context.Context, opts options, out io.Writer, logger *slog.Logger) (*telemetry, error) {
	t := &telemetry{}
	var stops []func(context.Context) error
	t.shutdown = func(ctx context.Context) error {
		var errs []error
		for i := len(stops) - 1; i >= 0; i-- {
			errs = append(errs, stops[i](ctx))
		}
		return errors.Join(errs...)
	}
	var exp sdktrace.SpanExporter
	var err error
	switch opts.trace {
	case "":
	case "stdout":
		exp, err = stdouttrace.New(stdouttrace.WithWriter(out))
	case "otlp":
		exp, err = otlptracehttp.New(ctx)
	default:
		return nil, fmt.Errorf("-trace %q: want stdout or otlp", opts.trace)
	}
	if err != nil {
		return nil, fmt.Errorf("-trace %s: %w", opts.trace, err)
	}
	if exp != nil {
		tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp))
		t.tracer = tp
		stops = append(stops, tp.Shutdown)
	}
	if opts.metricsAddr == "" {
		return t, nil
	}
	if err := checkMetricsAddr(opts.metricsAddr); err != nil {
		return nil, err
	}
	// A registry of its own, not Prometheus's global one: only pixie's
	// metrics, and a second server in the same process (tests) does not
	// collide with the first.
	reg := prometheus.NewRegistry()
	pe, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return nil, fmt.Errorf("prometheus exporter: %w", err)
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(pe))
	t.meter = mp
	stops = append(stops, mp.Shutdown)
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", opts.metricsAddr)
	if err != nil {
		_ = t.shutdown(ctx)
		return nil, fmt.Errorf("-metrics-addr: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	stops = append(stops, srv.Shutdown)
	logger.InfoContext(ctx, "serving metrics", "url", "http://"+ln.Addr().String()+"/metrics")
	return t, nil
}

// checkMetricsAddr accepts only a loopback listen address for the metrics:
// they tell who uses the server how, and the example has no authentication
// in front of them. In a real deployment, serve them where only the
// monitoring system reaches (or behind its authentication), as the host
// app serves its own.
func checkMetricsAddr(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("-metrics-addr %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("-metrics-addr %q: only a loopback address (127.0.0.1:PORT, [::1]:PORT, localhost:PORT) is accepted", addr)
}

// auditLog ships pixie's audit events to the log, one line each at Info
// under the message "audit". To send them to a queue instead, hand each
// event to a buffered channel here and publish from another goroutine:
// Events runs on the request's goroutine and must not wait on the network.
func auditLog(logger *slog.Logger) func(context.Context, provider.Event) {
	return func(ctx context.Context, e provider.Event) {
		logger.LogAttrs(ctx, slog.LevelInfo, "audit",
			slog.String("event", string(e.Type)),
			slog.Time("at", e.Time),
			slog.String("subject", e.Subject),
			slog.String("client_id", e.ClientID),
			slog.String("address", e.Address),
			slog.String("request_id", e.RequestID),
			slog.String("grant_type", e.GrantType),
			slog.String("reason", e.Reason))
	}
}
