package service

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/fanbridge/fanbridge/cmd/fanbridge/internal/config"
)

// telemetry holds the meter and tracer providers every package is given, and the handler that
// serves the meters' Prometheus registry at /metrics.
type telemetry struct {
	meters   *sdkmetric.MeterProvider
	tracer   trace.TracerProvider
	sdkTrace *sdktrace.TracerProvider
	metrics  http.Handler

	reloads metric.Int64Counter
}

func newTelemetry(cfg config.Tracing, log *slog.Logger) (*telemetry, error) {
	reg := prometheus.NewRegistry()
	// The Go runtime's and the process's own series (goroutines, heap, GC, CPU, resident memory,
	// open descriptors): what an operator watches for leaks first.
	if err := reg.Register(collectors.NewGoCollector()); err != nil {
		return nil, err
	}
	if err := reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
		return nil, err
	}
	exp, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return nil, err
	}
	t := &telemetry{
		// No cardinality limit: the labels are route, sink and intake names from the
		// configuration (and status codes), which the configuration bounds; the SDK's default of
		// 2,000 series per instrument folded every route past that into one unnamed series.
		meters:  sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp), sdkmetric.WithCardinalityLimit(0)),
		metrics: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}),
	}
	// W3C trace context is what EventBridge senders, Kafka headers and gRPC metadata carry.
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	if cfg.Disabled {
		t.tracer = noop.NewTracerProvider()
	} else {
		ratio := 1.0
		if cfg.SampleRatio != nil {
			ratio = *cfg.SampleRatio
		}
		opts := []sdktrace.TracerProviderOption{
			sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))),
		}
		if cfg.LogSpans {
			opts = append(opts, sdktrace.WithSyncer(&logExporter{log: log}))
		}
		t.sdkTrace = sdktrace.NewTracerProvider(opts...)
		t.tracer = t.sdkTrace
	}
	otel.SetTracerProvider(t.tracer)
	otel.SetMeterProvider(t.meters)
	m := t.meters.Meter("github.com/fanbridge/fanbridge/cmd/fanbridge")
	if t.reloads, err = m.Int64Counter("fanbridge.config.reloads",
		metric.WithDescription("Configuration reloads, by result (applied or rejected)."), metric.WithUnit("{reload}")); err != nil {
		return nil, err
	}
	return t, nil
}

func (t *telemetry) shutdown(ctx context.Context) error {
	var errs []error
	if t.sdkTrace != nil {
		errs = append(errs, t.sdkTrace.Shutdown(ctx))
	}
	errs = append(errs, t.meters.Shutdown(ctx))
	return errors.Join(errs...)
}

// logExporter writes each finished span as one debug log line: enough to see that spans exist
// and which trace they belong to, without an external collector.
type logExporter struct {
	log *slog.Logger
}

func (e *logExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	// The exporter runs in line with every span's end, on the request path: with debug off (the
	// level can change on reload) it returns at once rather than format what the handler drops.
	if !e.log.Enabled(ctx, slog.LevelDebug) {
		return nil
	}
	for _, s := range spans {
		sc := s.SpanContext()
		e.log.LogAttrs(ctx, slog.LevelDebug, "span",
			slog.String("name", s.Name()),
			slog.String("trace_id", sc.TraceID().String()),
			slog.String("span_id", sc.SpanID().String()),
			slog.String("parent_span_id", s.Parent().SpanID().String()),
			slog.Duration("duration", s.EndTime().Sub(s.StartTime())),
			slog.String("status", s.Status().Code.String()),
		)
	}
	return nil
}

func (e *logExporter) Shutdown(context.Context) error { return nil }
