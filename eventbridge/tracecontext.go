package eventbridge

import (
	"net/http"
	"strings"

	"github.com/fanbridge/fanbridge"
)

// copyTraceContext stores the request's W3C trace context in the event's metadata, so sinks can
// pass it on. A traceparent that is not well formed is dropped, and so is the tracestate with it
// (the W3C rule); valid headers override what a CloudEvent's extensions said.
func copyTraceContext(h http.Header, e *fanbridge.Event) {
	tp := h["Traceparent"]
	if len(tp) != 1 || !validTraceparent(tp[0]) {
		return
	}
	if e.Metadata == nil {
		e.Metadata = make(map[string]string, 2)
	}
	e.Metadata[fanbridge.MetaTraceparent] = tp[0]
	delete(e.Metadata, fanbridge.MetaTracestate)
	var ts string
	switch vs := h["Tracestate"]; len(vs) {
	case 0:
		return
	case 1:
		ts = vs[0]
	default:
		ts = strings.Join(vs, ",")
	}
	if validTracestate(ts) {
		e.Metadata[fanbridge.MetaTracestate] = ts
	}
}

// validTraceparent checks the W3C traceparent form "vv-<32 hex>-<16 hex>-ff" in lower-case hex,
// with non-zero ids. Version 00 must be exactly that long; later versions may append "-..."
// fields, and version ff is invalid.
func validTraceparent(v string) bool {
	if len(v) < 55 || v[2] != '-' || v[35] != '-' || v[52] != '-' {
		return false
	}
	if !lowerHex(v[0:2]) || !lowerHex(v[3:35]) || !lowerHex(v[36:52]) || !lowerHex(v[53:55]) {
		return false
	}
	switch {
	case v[0:2] == "ff":
		return false
	case v[0:2] == "00" && len(v) != 55:
		return false
	case len(v) > 55 && v[55] != '-':
		return false
	}
	return strings.Trim(v[3:35], "0") != "" && strings.Trim(v[36:52], "0") != ""
}

func lowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// validTracestate accepts a tracestate of at most 512 printable ASCII characters; the vendors'
// list entries are theirs to parse.
func validTracestate(v string) bool {
	if v == "" || len(v) > 512 {
		return false
	}
	for i := 0; i < len(v); i++ {
		if v[i] < 0x20 || v[i] > 0x7e {
			return false
		}
	}
	return true
}
