package fanout

import (
	"context"
	"fmt"
	"log/slog"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/dlq"
)

const instrumentation = "github.com/fanbridge/fanbridge/fanout"

// telemetry holds the instruments, created once so that the hot path only calls them.
type telemetry struct {
	logger *slog.Logger
	tracer trace.Tracer // nil: tracing off, and no span work at all on the hot path

	matched      metric.Int64Counter
	filterPanics metric.Int64Counter
	delivered    metric.Int64Counter
	retried      metric.Int64Counter
	deadLettered metric.Int64Counter
	failed       metric.Int64Counter
	latency      metric.Float64Histogram
	depth        metric.Int64ObservableGauge
	breakerState metric.Int64ObservableGauge
	reg          metric.Registration
}

func newTelemetry(c *config, d *Dispatcher) (*telemetry, error) {
	t := &telemetry{logger: c.logger}
	if t.logger == nil {
		t.logger = slog.New(slog.DiscardHandler)
	}
	if c.tracers != nil {
		t.tracer = c.tracers.Tracer(instrumentation)
	}
	mp := c.meters
	if mp == nil {
		mp = noop.NewMeterProvider()
	}
	m := mp.Meter(instrumentation)
	var errs [10]error
	t.matched, errs[0] = m.Int64Counter("fanbridge.fanout.route.matched",
		metric.WithDescription("Events a route matched, once each was accepted."), metric.WithUnit("{event}"))
	t.filterPanics, errs[9] = m.Int64Counter("fanbridge.fanout.route.filter_panicked",
		metric.WithDescription("Evaluations of a route's filter that panicked, one per dispatch (a duplicate or a refused event included); the route did not match."), metric.WithUnit("{evaluation}"))
	t.delivered, errs[1] = m.Int64Counter("fanbridge.fanout.sink.delivered",
		metric.WithDescription("Events a sink acknowledged."), metric.WithUnit("{event}"))
	t.retried, errs[2] = m.Int64Counter("fanbridge.fanout.sink.retried",
		metric.WithDescription("Failed attempts that were retried."), metric.WithUnit("{attempt}"))
	t.deadLettered, errs[3] = m.Int64Counter("fanbridge.fanout.sink.dead_lettered",
		metric.WithDescription("Events written to the dead-letter queue for a sink."), metric.WithUnit("{event}"))
	t.failed, errs[4] = m.Int64Counter("fanbridge.fanout.sink.failed",
		metric.WithDescription("Deliveries that ended with neither the sink nor the dead-letter queue having the event: lost in Async mode; in Sync mode answered as a failure, one per dispatch, which the sender retries."), metric.WithUnit("{event}"))
	t.latency, errs[5] = m.Float64Histogram("fanbridge.fanout.sink.delivery.duration",
		metric.WithDescription("Time from first attempt to outcome, per sink."), metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
	t.depth, errs[6] = m.Int64ObservableGauge("fanbridge.fanout.sink.queue.depth",
		metric.WithDescription("Events accepted for a sink and not yet finished."), metric.WithUnit("{event}"))
	t.breakerState, errs[7] = m.Int64ObservableGauge("fanbridge.fanout.sink.breaker.state",
		metric.WithDescription("Circuit breaker state: 0 closed, 1 half-open, 2 open."), metric.WithUnit("{state}"))
	if errs[6] == nil && errs[7] == nil {
		t.reg, errs[8] = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
			// The depth of a name counts what the sinks an Update changed or removed still
			// hold, until they stop, and goes on through Close; the breaker state is that of
			// the current configuration's sinks.
			s := d.snap.Load()
			for _, b := range d.backlogs(s) {
				o.ObserveInt64(t.depth, b.queued, b.st.obsOpts...)
			}
			if s == nil {
				return nil
			}
			for _, st := range s.sinks {
				o.ObserveInt64(t.breakerState, int64(st.breaker.state.Load()), st.obsOpts...)
			}
			return nil
		}, t.depth, t.breakerState)
	}
	for _, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("fanout: metrics: %w", err)
		}
	}
	return t, nil
}

func (t *telemetry) close() {
	if t.reg != nil {
		_ = t.reg.Unregister()
	}
}

// attrSet is one attribute set in the three forms the instruments take, built once per sink or
// route so that recording allocates nothing.
type attrSet struct {
	addOpts []metric.AddOption
	recOpts []metric.RecordOption
	obsOpts []metric.ObserveOption
}

func newAttrSet(key, value string) attrSet {
	o := metric.WithAttributeSet(attribute.NewSet(attribute.String(key, value)))
	return attrSet{addOpts: []metric.AddOption{o}, recOpts: []metric.RecordOption{o}, obsOpts: []metric.ObserveOption{o}}
}

// parentContext returns the context the dispatch span starts from: ctx itself when it carries a
// span already (an intake's receive span, which the sender's trace context, if any, is the
// parent of), or else ctx with the event's remote trace context, when it has a valid one.
func parentContext(ctx context.Context, e *fanbridge.Event) context.Context {
	if trace.SpanContextFromContext(ctx).IsValid() || e.Meta(fanbridge.MetaTraceparent) == "" {
		return ctx
	}
	return propagation.TraceContext{}.Extract(ctx, propagation.MapCarrier(e.Metadata))
}

// traceID is the trace a dead-letter entry names: the one of the span ctx carries (the dispatch
// span, when the Dispatcher traces, which also covers events that came without trace context),
// or else the one of the event's traceparent.
func traceID(ctx context.Context, e *fanbridge.Event) string {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		return sc.TraceID().String()
	}
	return dlq.TraceID(e.Meta(fanbridge.MetaTraceparent))
}
