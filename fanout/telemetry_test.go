package fanout_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/dlq"
	"github.com/fanbridge/fanbridge/fanout"
	"github.com/fanbridge/fanbridge/retry"
	"github.com/fanbridge/fanbridge/retry/retrytest"
	"github.com/fanbridge/fanbridge/sink"
)

// points returns, for the named metric, each data point's value by the value of attribute key.
func points(t *testing.T, rm metricdata.ResourceMetrics, name, key string) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			add := func(set attribute.Set, v float64) {
				val, _ := set.Value(attribute.Key(key))
				out[val.AsString()] += v
			}
			switch data := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range data.DataPoints {
					add(p.Attributes, float64(p.Value))
				}
			case metricdata.Gauge[int64]:
				for _, p := range data.DataPoints {
					add(p.Attributes, float64(p.Value))
				}
			case metricdata.Histogram[float64]:
				for _, p := range data.DataPoints {
					add(p.Attributes, float64(p.Count))
				}
			}
		}
	}
	return out
}

func TestMetricsAndStats(t *testing.T) {
	clk := retrytest.NewClock(epoch)
	autoAdvance(t, clk)
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	ok, flaky, dead := newRecSink(), newRecSink(), newRecSink()
	flaky.fail = failFirst(1, errBoom)
	dead.fail = func(*fanbridge.Event, int) error { return errBoom }
	d := newDispatcher(t, fanout.Config{
		Sinks: []fanout.SinkConfig{{Name: "ok", Sink: ok}, {Name: "flaky", Sink: flaky},
			{Name: "dead", Sink: dead, Retry: retry.Policy{MaxAttempts: 2}, Breaker: fanout.Breaker{Failures: 2}}},
		Routes: []fanout.Route{
			{Name: "main", Filter: fanout.All, Sinks: []string{"ok", "flaky"}},
			{Name: "extra", Filter: typeIs("x"), Sinks: []string{"dead"}},
		},
		DLQ: &memDLQ{},
	}, fanout.WithMeterProvider(mp), fanout.WithClock(clk))
	ctx := testContext(t)
	require.NoError(t, d.Dispatch(ctx, event("e1", "x")))
	require.NoError(t, d.Dispatch(ctx, event("e2", "y")))

	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(ctx, &rm))
	assert.Equal(t, map[string]float64{"main": 2, "extra": 1}, points(t, rm, "fanbridge.fanout.route.matched", "route"))
	assert.Equal(t, map[string]float64{"ok": 2, "flaky": 2}, points(t, rm, "fanbridge.fanout.sink.delivered", "sink"))
	assert.Equal(t, map[string]float64{"flaky": 2, "dead": 1}, points(t, rm, "fanbridge.fanout.sink.retried", "sink"))
	assert.Equal(t, map[string]float64{"dead": 1}, points(t, rm, "fanbridge.fanout.sink.dead_lettered", "sink"))
	assert.Equal(t, map[string]float64{"ok": 2, "flaky": 2, "dead": 1}, points(t, rm, "fanbridge.fanout.sink.delivery.duration", "sink"))
	assert.Equal(t, map[string]float64{"ok": 0, "flaky": 0, "dead": 0}, points(t, rm, "fanbridge.fanout.sink.queue.depth", "sink"))
	assert.Equal(t, map[string]float64{"ok": 0, "flaky": 0, "dead": 2}, points(t, rm, "fanbridge.fanout.sink.breaker.state", "sink"),
		"two failed attempts opened dead's breaker")

	// Every instrument names its unit, as OpenTelemetry's conventions ask.
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			assert.NotEmpty(t, m.Unit, "%s has no unit", m.Name)
		}
	}

	stats := d.Stats()
	require.Len(t, stats, 3)
	assert.Equal(t, fanout.SinkStats{Name: "ok", Delivered: 2, Breaker: "closed"}, stats[0])
	assert.Equal(t, fanout.SinkStats{Name: "flaky", Delivered: 2, Retried: 2, Breaker: "closed"}, stats[1])
	assert.Equal(t, fanout.SinkStats{Name: "dead", DeadLettered: 1, Retried: 1, Breaker: "open"}, stats[2])
}

func TestTracing(t *testing.T) {
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	for _, mode := range []fanout.Mode{fanout.Sync, fanout.Async} {
		t.Run(mode.String(), func(t *testing.T) {
			rec := tracetest.NewSpanRecorder()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
			var mu sync.Mutex
			seen := map[string]string{}
			s := newRecSink()
			s.fail = func(e *fanbridge.Event, _ int) error {
				mu.Lock()
				defer mu.Unlock()
				seen[e.ID] = e.Meta(fanbridge.MetaTraceparent)
				return nil
			}
			d, err := fanout.New(fanout.Config{
				Sinks:  []fanout.SinkConfig{{Name: "a", Sink: s}, {Name: "b", Sink: newRecSink()}},
				Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"a", "b"}}},
			}, fanout.WithTracerProvider(tp), fanout.WithMode(mode))
			require.NoError(t, err)
			e := event("e1", "x")
			tp0 := "00-" + traceID + "-00f067aa0ba902b7-01"
			e.Metadata = map[string]string{fanbridge.MetaTraceparent: tp0}
			require.NoError(t, d.Dispatch(testContext(t), e))
			require.NoError(t, d.Close(testContext(t)))

			var dispatch sdktrace.ReadOnlySpan
			var sends []sdktrace.ReadOnlySpan
			for _, sp := range rec.Ended() {
				switch sp.Name() {
				case "fanout.dispatch":
					dispatch = sp
				case "fanout.send":
					sends = append(sends, sp)
				}
			}
			require.NotNil(t, dispatch)
			assert.Equal(t, traceID, dispatch.SpanContext().TraceID().String(), "the dispatch continues the event's trace")
			assert.Equal(t, "00f067aa0ba902b7", dispatch.Parent().SpanID().String())
			require.Len(t, sends, 2, "one span per sink attempt")
			for _, sp := range sends {
				assert.Equal(t, dispatch.SpanContext().SpanID(), sp.Parent().SpanID())
				assert.Equal(t, traceID, sp.SpanContext().TraceID().String())
			}
			assert.Equal(t, tp0, seen["e1"], "the event reaches the sink unmodified")
		})
	}
}

// An event no route wants and a duplicate are dispatches that did their job: their spans say so
// in an attribute and carry neither an exception event nor an error status, which a failed
// dispatch has.
func TestIgnoredAndDuplicateSpansAreNotFailures(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	dedup, err := fanout.NewMemoryDedup(time.Minute, 100)
	require.NoError(t, err)
	s := newRecSink()
	s.fail = func(e *fanbridge.Event, _ int) error {
		if e.ID == "bad" {
			return retry.Permanent(errors.New("refused"))
		}
		return nil
	}
	d, err := fanout.New(fanout.Config{
		Sinks:  []fanout.SinkConfig{{Name: "a", Sink: s}},
		Routes: []fanout.Route{{Name: "r", Filter: typeIs("x"), Sinks: []string{"a"}}},
	}, fanout.WithTracerProvider(tp), fanout.WithDedup(dedup))
	require.NoError(t, err)
	ctx := testContext(t)
	require.NoError(t, d.Dispatch(ctx, event("e1", "x")))
	require.ErrorIs(t, d.Dispatch(ctx, event("e1", "x")), fanbridge.ErrDuplicate)
	require.ErrorIs(t, d.Dispatch(ctx, event("e2", "y")), fanbridge.ErrNoMatch)
	require.Error(t, d.Dispatch(ctx, event("bad", "x")))
	require.NoError(t, d.Close(ctx))

	type seen struct {
		outcome    string
		exceptions int
		status     codes.Code
	}
	var got []seen
	for _, sp := range rec.Ended() {
		if sp.Name() != "fanout.dispatch" {
			continue
		}
		var g seen
		for _, kv := range sp.Attributes() {
			if kv.Key == "fanout.outcome" {
				g.outcome = kv.Value.AsString()
			}
		}
		for _, ev := range sp.Events() {
			if ev.Name == "exception" {
				g.exceptions++
			}
		}
		g.status = sp.Status().Code
		got = append(got, g)
	}
	assert.Equal(t, []seen{
		{status: codes.Unset},
		{outcome: "duplicate", status: codes.Unset},
		{outcome: "ignored", status: codes.Unset},
		{exceptions: 1, status: codes.Error},
	}, got)
}

// An event that came without trace context starts a trace of its own in the dispatch; the sink
// attempt runs under its span, and a dead-letter entry names that trace, so the entry leads to
// the spans that explain it.
func TestDeadLetterEntryNamesTheDispatchTrace(t *testing.T) {
	for _, mode := range []fanout.Mode{fanout.Sync, fanout.Async} {
		t.Run(mode.String(), func(t *testing.T) {
			rec := tracetest.NewSpanRecorder()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
			q := &memDLQ{}
			sendSpans := dispatchToRefusingSink(t, testContext(t), q, fanout.WithTracerProvider(tp), fanout.WithMode(mode))

			var dispatch, send sdktrace.ReadOnlySpan
			for _, sp := range rec.Ended() {
				switch sp.Name() {
				case "fanout.dispatch":
					dispatch = sp
				case "fanout.send":
					send = sp
				}
			}
			require.NotNil(t, dispatch)
			require.NotNil(t, send)
			q.mu.Lock()
			defer q.mu.Unlock()
			require.Len(t, q.entries, 1)
			assert.Equal(t, dispatch.SpanContext().TraceID().String(), q.entries[0].TraceID)
			require.Len(t, sendSpans, 1)
			assert.Equal(t, send.SpanContext(), sendSpans[0], "Send runs under its attempt's span")
		})
	}
}

// A Dispatcher that does not trace, behind an intake that does: the sink attempts run under the
// intake's span, and a dead-letter entry names its trace, in Async mode as in Sync.
func TestUntracedDispatcherKeepsTheIntakeSpan(t *testing.T) {
	intake := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    trace.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
		SpanID:     trace.SpanID{1, 2, 3, 4, 5, 6, 7, 8},
		TraceFlags: trace.FlagsSampled,
	})
	for _, mode := range []fanout.Mode{fanout.Sync, fanout.Async} {
		t.Run(mode.String(), func(t *testing.T) {
			q := &memDLQ{}
			sendSpans := dispatchToRefusingSink(t, trace.ContextWithSpanContext(testContext(t), intake), q, fanout.WithMode(mode))
			require.Len(t, sendSpans, 1)
			assert.Equal(t, intake, sendSpans[0])
			q.mu.Lock()
			defer q.mu.Unlock()
			require.Len(t, q.entries, 1)
			assert.Equal(t, intake.TraceID().String(), q.entries[0].TraceID)
		})
	}
}

// dispatchToRefusingSink dispatches one event under ctx to a sink that refuses it for good,
// dead-lettering to q, closes the Dispatcher, and returns the span context each Send ran under.
func dispatchToRefusingSink(t *testing.T, ctx context.Context, q *memDLQ, opts ...fanout.Option) []trace.SpanContext {
	t.Helper()
	var mu sync.Mutex
	var spans []trace.SpanContext
	s := sink.Func(func(ctx context.Context, e *fanbridge.Event) error {
		mu.Lock()
		spans = append(spans, trace.SpanContextFromContext(ctx))
		mu.Unlock()
		return retry.Permanent(errors.New("refused"))
	})
	d, err := fanout.New(fanout.Config{
		Sinks:  []fanout.SinkConfig{{Name: "a", Sink: s}},
		Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"a"}}},
		DLQ:    q,
	}, opts...)
	require.NoError(t, err)
	require.NoError(t, d.Dispatch(ctx, event("e1", "x")))
	require.NoError(t, d.Close(testContext(t)))
	mu.Lock()
	defer mu.Unlock()
	return spans
}

func TestLogsNameTheSinkButNeverTheBody(t *testing.T) {
	var buf bytes.Buffer
	var mu sync.Mutex
	logger := slog.New(slog.NewJSONHandler(&lockedWriter{w: &buf, mu: &mu}, nil))
	s := newRecSink()
	s.fail = func(*fanbridge.Event, int) error { return retry.Permanent(errBoom) }
	d := newDispatcher(t, fanout.Config{
		Sinks:  []fanout.SinkConfig{{Name: "crm", Sink: s}},
		Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"crm"}}},
		DLQ:    &memDLQ{},
	}, fanout.WithLogger(logger))
	e := event("e1", "x")
	e.Data = []byte(`{"card":"4111111111111111"}`)
	e.Raw = e.Data
	require.NoError(t, d.Dispatch(testContext(t), e))
	mu.Lock()
	out := buf.String()
	mu.Unlock()
	assert.Contains(t, out, "dead-lettered")
	assert.Contains(t, out, `"sink":"crm"`)
	assert.Contains(t, out, `"event_id":"e1"`)
	assert.NotContains(t, out, "4111111111111111")
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// When the caller's context carries a span (an intake's receive span, already the child of the
// sender's trace context), the dispatch is that span's child, not a sibling parented on the
// event's traceparent, and not in another trace when the traceparent came in the body.
func TestDispatchIsAChildOfTheCallersSpan(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	d, err := fanout.New(fanout.Config{
		Sinks:  []fanout.SinkConfig{{Name: "a", Sink: newRecSink()}},
		Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"a"}}},
	}, fanout.WithTracerProvider(tp))
	require.NoError(t, err)
	ctx, receive := tp.Tracer("intake").Start(testContext(t), "receive")
	e := event("e1", "x")
	e.Metadata = map[string]string{fanbridge.MetaTraceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
	require.NoError(t, d.Dispatch(ctx, e))
	receive.End()
	require.NoError(t, d.Close(testContext(t)))

	var dispatch sdktrace.ReadOnlySpan
	for _, sp := range rec.Ended() {
		if sp.Name() == "fanout.dispatch" {
			dispatch = sp
		}
	}
	require.NotNil(t, dispatch)
	assert.Equal(t, receive.SpanContext().TraceID(), dispatch.SpanContext().TraceID())
	assert.Equal(t, receive.SpanContext().SpanID(), dispatch.Parent().SpanID())
}

// A route's match is counted once per accepted event: a duplicate answered from the
// deduplication record, and an event refused because a queue is full (its sender retries it),
// are not counted again.
func TestRouteMatchedCountsAcceptedEvents(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	release := make(chan struct{})
	defer close(release)
	held := sinkFunc(func(ctx context.Context, _ *fanbridge.Event) error {
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	d := newDispatcher(t, fanout.Config{
		Sinks: []fanout.SinkConfig{{Name: "ok", Sink: newRecSink()}, {Name: "held", Sink: held, QueueSize: 1}},
		Routes: []fanout.Route{
			{Name: "main", Filter: typeIs("x"), Sinks: []string{"ok"}},
			{Name: "slow", Filter: typeIs("slow"), Sinks: []string{"held"}},
		},
	}, fanout.WithMeterProvider(mp), fanout.WithMode(fanout.Async))
	ctx := testContext(t)
	require.NoError(t, d.Dispatch(ctx, event("e1", "x")))
	require.ErrorIs(t, d.Dispatch(ctx, event("e1", "x")), fanbridge.ErrDuplicate)
	require.NoError(t, d.Dispatch(ctx, event("s1", "slow")))
	require.ErrorIs(t, d.Dispatch(ctx, event("s2", "slow")), fanbridge.ErrOverloaded)

	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(ctx, &rm))
	assert.Equal(t, map[string]float64{"main": 1, "slow": 1}, points(t, rm, "fanbridge.fanout.route.matched", "route"))
}

// okAndFlakyRoutes returns a Dispatcher with a route to a sink that always takes the event and
// one to a sink that refuses its first attempt, behind a dead-letter queue that refuses every
// entry, and the reader of its metrics.
func okAndFlakyRoutes(t *testing.T, opts ...fanout.Option) (*sdkmetric.ManualReader, *fanout.Dispatcher) {
	t.Helper()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	flaky := newRecSink()
	flaky.fail = func(_ *fanbridge.Event, attempt int) error {
		if attempt == 1 {
			return retry.Permanent(errBoom)
		}
		return nil
	}
	q := &memDLQ{fail: func(dlq.Entry) error { return errBoom }}
	d := newDispatcher(t, fanout.Config{
		Sinks: []fanout.SinkConfig{{Name: "ok", Sink: newRecSink()}, {Name: "flaky", Sink: flaky}},
		Routes: []fanout.Route{
			{Name: "to-ok", Filter: fanout.All, Sinks: []string{"ok"}},
			{Name: "to-flaky", Filter: fanout.All, Sinks: []string{"flaky"}},
		},
		DLQ: q,
	}, append([]fanout.Option{fanout.WithMeterProvider(mp), fanout.WithDLQTimeout(50 * time.Millisecond)}, opts...)...)
	return reader, d
}

// Of a sender's retry after a partial failure, which goes only to the sinks lacking the event, a
// route none of whose sinks it goes to was counted the first time and is not counted again; a
// route whose sink failed is counted by the retry that delivers it, once.
func TestRouteMatchedCountsARetryOnlyWhereItGoes(t *testing.T) {
	reader, d := okAndFlakyRoutes(t)
	ctx := testContext(t)
	var derr *fanout.DeliveryError
	require.ErrorAs(t, d.Dispatch(ctx, event("e1", "x")), &derr, "flaky failed and the DLQ refused it")
	require.NoError(t, d.Dispatch(ctx, event("e1", "x")), "the retry reaches flaky only")

	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(ctx, &rm))
	assert.Equal(t, map[string]float64{"to-ok": 1, "to-flaky": 1}, points(t, rm, "fanbridge.fanout.route.matched", "route"))
}

// A Sync dispatch answered with a failure was not accepted: the sender retries, and a route with a
// sink that failed is counted once, by the retry that gets the event to it or to the dead-letter
// queue, however many retries failed before.
func TestRouteMatchedCountsAnEventOnceAcrossFailedRetries(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	crm := newRecSink()
	crm.fail = func(*fanbridge.Event, int) error { return retry.Permanent(errBoom) }
	var puts atomic.Int32
	q := &memDLQ{fail: func(dlq.Entry) error {
		if puts.Add(1) <= 5 {
			return errBoom
		}
		return nil
	}}
	d := newDispatcher(t, fanout.Config{
		Sinks:  []fanout.SinkConfig{{Name: "crm", Sink: crm}, {Name: "kafka", Sink: newRecSink()}},
		Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"crm", "kafka"}}},
		DLQ:    q,
	}, fanout.WithMeterProvider(mp), fanout.WithDLQTimeout(50*time.Millisecond))
	ctx := testContext(t)
	tries := 0
	for ; tries < 50; tries++ {
		if err := d.Dispatch(ctx, event("e1", "x")); err == nil {
			break
		}
	}
	require.Less(t, tries, 50, "the event never got to the dead-letter queue")
	require.Positive(t, tries, "the first tries failed")
	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(ctx, &rm))
	assert.Equal(t, map[string]float64{"r": 1}, points(t, rm, "fanbridge.fanout.route.matched", "route"))
}

// Without deduplication a sender's retry goes to every sink again: a failed Sync dispatch counts
// no route, and the retry that succeeds counts each once.
func TestRouteMatchedWithoutDedupCountsTheSuccessfulRetry(t *testing.T) {
	reader, d := okAndFlakyRoutes(t, fanout.WithDedup(nil))
	ctx := testContext(t)
	var derr *fanout.DeliveryError
	require.ErrorAs(t, d.Dispatch(ctx, event("e1", "x")), &derr)
	require.NoError(t, d.Dispatch(ctx, event("e1", "x")))
	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(ctx, &rm))
	assert.Equal(t, map[string]float64{"to-ok": 1, "to-flaky": 1}, points(t, rm, "fanbridge.fanout.route.matched", "route"))
}
