package sink

import (
	"context"
	"encoding/hex"
	"fmt"
	"strconv"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/fanbridge/fanbridge"
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
	tp := e.Metadata[fanbridge.MetaTraceparent]
	if tp == "" {
		return "", ""
	}
	// The eventbridge decoder keeps only valid trace context, but an event may come from
	// anywhere: it is read as the W3C rules say, and written out again as read. Version 00
	// defines the flags sampled (01) and random (02); whoever passes the context on sends the
	// other bits as 0, as the eventbridge decoder does, where OpenTelemetry's propagator would
	// refuse the whole header.
	if len(tp) == 55 && tp[:3] == "00-" && tp[52] == '-' && lowerHex(tp[53]) && lowerHex(tp[54]) {
		if f, _ := strconv.ParseUint(tp[53:], 16, 8); f > 3 {
			tp = tp[:53] + fmt.Sprintf("%02x", f&3)
		}
	}
	carrier := propagation.MapCarrier{"traceparent": tp}
	if ts := e.Metadata[fanbridge.MetaTracestate]; ts != "" {
		carrier["tracestate"] = ts
	}
	sc := trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(), carrier))
	if !sc.IsValid() {
		return "", ""
	}
	return FormatTraceparent(sc), sc.TraceState().String()
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

// lowerHex reports whether c is a hex digit as W3C trace context writes them, in lower case.
func lowerHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' }
