package sink_test

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/sink"
)

const (
	senderParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	senderState  = "vendor=abc"
)

func TestTraceContextFromEventWithoutSpan(t *testing.T) {
	e := &fanbridge.Event{ID: "1", Metadata: map[string]string{
		fanbridge.MetaTraceparent: senderParent, fanbridge.MetaTracestate: senderState}}
	tp, ts := sink.TraceContext(context.Background(), e)
	if tp != senderParent || ts != senderState {
		t.Fatalf("TraceContext = %q, %q; want the event's %q, %q", tp, ts, senderParent, senderState)
	}
	if tp, ts := sink.TraceContext(context.Background(), &fanbridge.Event{ID: "2"}); tp != "" || ts != "" {
		t.Fatalf("event without trace context: TraceContext = %q, %q; want empty", tp, ts)
	}
	if tp, ts := sink.TraceContext(context.Background(), nil); tp != "" || ts != "" {
		t.Fatalf("nil event: TraceContext = %q, %q; want empty", tp, ts)
	}
}

func TestTraceContextPrefersSpanInContext(t *testing.T) {
	state, err := trace.ParseTraceState("fb=1,vendor=abc")
	if err != nil {
		t.Fatal(err)
	}
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36},
		SpanID:     trace.SpanID{0xa1, 0xb2, 0xc3, 0xd4, 0xe5, 0xf6, 0x07, 0x18},
		TraceFlags: trace.FlagsSampled,
		TraceState: state,
	})
	ctx := trace.ContextWithSpanContext(context.Background(), sc)
	e := &fanbridge.Event{ID: "1", Metadata: map[string]string{
		fanbridge.MetaTraceparent: senderParent, fanbridge.MetaTracestate: senderState}}
	tp, ts := sink.TraceContext(ctx, e)
	const want = "00-4bf92f3577b34da6a3ce929d0e0e4736-a1b2c3d4e5f60718-01"
	if tp != want || ts != "fb=1,vendor=abc" {
		t.Fatalf("TraceContext = %q, %q; want the span's %q, %q", tp, ts, want, "fb=1,vendor=abc")
	}
	// What TraceContext writes, the W3C propagator reads back as the same span context.
	got := trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(),
		propagation.MapCarrier{"traceparent": tp, "tracestate": ts}))
	if !got.Equal(sc.WithRemote(true)) {
		t.Fatalf("round trip through the W3C propagator: got %v, want %v", got, sc)
	}
	if e.Metadata[fanbridge.MetaTraceparent] != senderParent {
		t.Fatal("TraceContext modified the event")
	}
}

func TestFormatTraceparentInvalid(t *testing.T) {
	if got := sink.FormatTraceparent(trace.SpanContext{}); got != "" {
		t.Fatalf("FormatTraceparent(invalid) = %q, want empty", got)
	}
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}})
	if got, want := sink.FormatTraceparent(sc), "00-01000000000000000000000000000000-0200000000000000-00"; got != want {
		t.Fatalf("FormatTraceparent = %q, want %q", got, want)
	}
}

// An event's trace context is read as W3C trace context: a traceparent that is not valid is
// dropped with the tracestate that belongs to it, and a tracestate that is not valid is dropped
// alone.
func TestTraceContextFromEventIsValidated(t *testing.T) {
	for _, tc := range []struct {
		name, parent, state, wantParent, wantState string
	}{
		{name: "too short", parent: "00-4bf9-01", state: senderState},
		{name: "not hex", parent: "00-4bf92f3577b34da6a3ce929d0e0e47zz-00f067aa0ba902b7-01", state: senderState},
		{name: "zero trace id", parent: "00-00000000000000000000000000000000-00f067aa0ba902b7-01", state: senderState},
		{name: "version ff", parent: "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", state: senderState},
		{name: "not ASCII", parent: "00-\u00e9", state: senderState},
		{name: "state without a parent", state: senderState},
		{name: "bad state alone is dropped", parent: senderParent, state: "no equals sign", wantParent: senderParent},
		{name: "reserved flags are sent as 0", parent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-fd", state: senderState,
			wantParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", wantState: senderState},
		{name: "upper-case flags", parent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0A", state: senderState},
		{name: "upper-case reserved flags", parent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-FF", state: senderState},
		{name: "the random flag is kept", parent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-02", state: senderState,
			wantParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-02", wantState: senderState},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := &fanbridge.Event{ID: "1", Metadata: map[string]string{fanbridge.MetaTraceparent: tc.parent, fanbridge.MetaTracestate: tc.state}}
			tp, ts := sink.TraceContext(context.Background(), e)
			if tp != tc.wantParent || ts != tc.wantState {
				t.Fatalf("TraceContext = %q, %q; want %q, %q", tp, ts, tc.wantParent, tc.wantState)
			}
		})
	}
}

// Trace context written as it should be, as the eventbridge decoder keeps it, is passed on
// without an allocation: every Send of an event that carries one reads it.
func TestTraceContextFromEventDoesNotAllocate(t *testing.T) {
	e := &fanbridge.Event{ID: "1", Metadata: map[string]string{
		fanbridge.MetaTraceparent: senderParent, fanbridge.MetaTracestate: senderState}}
	if n := testing.AllocsPerRun(100, func() { sink.TraceContext(context.Background(), e) }); n != 0 {
		t.Fatalf("TraceContext allocates %v times per call", n)
	}
}
