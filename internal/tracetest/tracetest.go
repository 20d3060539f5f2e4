// Package tracetest holds the trace context that fanbridge's own sink tests send under, standing
// for the span of a delivery attempt.
package tracetest

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/trace"
)

// WithAttemptSpan returns ctx carrying a sampled span context whose W3C form is the traceparent
// 00-4bf92f3577b34da6a3ce929d0e0e4736-0102030405060708-01 with the tracestate fb=attempt.
func WithAttemptSpan(tb testing.TB, ctx context.Context) context.Context {
	tb.Helper()
	state, err := trace.ParseTraceState("fb=attempt")
	if err != nil {
		tb.Fatalf("tracetest: %v", err)
	}
	return trace.ContextWithSpanContext(ctx, trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36},
		SpanID:     trace.SpanID{1, 2, 3, 4, 5, 6, 7, 8},
		TraceFlags: trace.FlagsSampled,
		TraceState: state,
	}))
}
