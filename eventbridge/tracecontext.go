package eventbridge

import (
	"net/http"
	"strings"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/internal/tracectx"
)

// headerTraceContext returns the request's W3C trace context: ok is false when it has no valid
// traceparent header (exactly one). A traceparent that is not well formed is dropped, and so is
// the tracestate with it (the W3C rule); state is empty when the tracestate is missing or invalid.
func headerTraceContext(h http.Header) (parent, state string, ok bool) {
	tp := h["Traceparent"]
	if len(tp) != 1 {
		return "", "", false
	}
	if parent, ok = tracectx.Parent(tp[0]); !ok {
		return "", "", false
	}
	switch vs := h["Tracestate"]; len(vs) {
	case 0:
	case 1:
		state = vs[0]
	default:
		state = strings.Join(vs, ",")
	}
	if state != "" {
		state, _ = tracectx.State(state)
	}
	return parent, state, true
}

// headerTrace is a request's trace context as headerTraceContext reads it, kept so that the
// headers are checked once per request whether the span or the event needs them first.
type headerTrace struct {
	parent, state string
	ok            bool // a valid traceparent header
	read          bool // the headers have been read
}

func readHeaderTrace(h http.Header) headerTrace {
	parent, state, ok := headerTraceContext(h)
	return headerTrace{parent: parent, state: state, ok: ok, read: true}
}

// copyTraceContext stores the request's W3C trace context in the event's metadata, so sinks can
// pass it on, and reports whether there was one; valid headers override what the body said.
func copyTraceContext(ht headerTrace, e *fanbridge.Event) bool {
	parent, state, ok := ht.parent, ht.state, ht.ok
	if !ok {
		return false
	}
	if e.Metadata == nil {
		e.Metadata = make(map[string]string, 2)
	}
	e.Metadata[fanbridge.MetaTraceparent] = parent
	delete(e.Metadata, fanbridge.MetaTracestate)
	if state != "" {
		e.Metadata[fanbridge.MetaTracestate] = state
	}
	return true
}

// checkTraceMetadata holds the trace context a body carried (webhook metadata, CloudEvents
// extensions) to the rules of the headers: a traceparent that is not valid is dropped with its
// tracestate, a later version's is cut to the fields this version defines, and a tracestate that
// is not valid, or comes without a traceparent, is dropped.
func checkTraceMetadata(md map[string]string) {
	tp, hasParent := md[fanbridge.MetaTraceparent]
	if hasParent {
		parent, ok := tracectx.Parent(tp)
		if ok {
			md[fanbridge.MetaTraceparent] = parent
		} else {
			delete(md, fanbridge.MetaTraceparent)
			hasParent = false
		}
	}
	if ts, ok := md[fanbridge.MetaTracestate]; ok {
		if kept, valid := tracectx.State(ts); hasParent && valid {
			md[fanbridge.MetaTracestate] = kept
		} else {
			delete(md, fanbridge.MetaTracestate)
		}
	}
}
