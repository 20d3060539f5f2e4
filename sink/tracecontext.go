package sink

import (
	"context"
	"encoding/hex"

	"go.opentelemetry.io/otel/trace"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/internal/tracectx"
)

// TraceContext returns the W3C trace context a sink sends along with e (as Kafka record headers,
// gRPC metadata, HTTP headers), so that the consumer's spans join the event's trace.
//
// When ctx carries a valid span context, it wins: fanout's Dispatcher, given a tracer, starts a
// span per sink attempt and passes it in the context of Send, so the consumer's work becomes a
// child of that attempt. Otherwise the event's own Metadata[fanbridge.MetaTraceparent] and
// Metadata[fanbridge.MetaTracestate] are returned, so the consumer joins the sender's trace,
// once read as W3C trace context: a traceparent that is not valid is dropped, and so is the
// tracestate with it, which belongs to it. Either value may be empty.
func TraceContext(ctx context.Context, e *fanbridge.Event) (traceparent, tracestate string) {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		return FormatTraceparent(sc), sc.TraceState().String()
	}
	if e == nil {
		return "", ""
	}
	// The eventbridge decoder keeps only valid trace context, but an event may come from
	// anywhere: it is read by the same rules (a version 00 traceparent's reserved flags are
	// sent as 0), without allocating for a value already written as it should be.
	tp, ok := tracectx.Parent(e.Metadata[fanbridge.MetaTraceparent])
	if !ok {
		return "", ""
	}
	ts, _ := tracectx.State(e.Metadata[fanbridge.MetaTracestate])
	return tp, ts
}

// FormatTraceparent returns sc as a W3C traceparent header value,
// "00-<32 hex trace id>-<16 hex span id>-<2 hex flags>", or "" when sc is not valid.
func FormatTraceparent(sc trace.SpanContext) string {
	if !sc.IsValid() {
		return ""
	}
	var b [55]byte
	tid, sid := sc.TraceID(), sc.SpanID()
	b[0], b[1], b[2] = '0', '0', '-'
	hex.Encode(b[3:35], tid[:])
	b[35] = '-'
	hex.Encode(b[36:52], sid[:])
	b[52] = '-'
	hex.Encode(b[53:55], []byte{byte(sc.TraceFlags())})
	return string(b[:])
}
