// Package tracectx reads W3C trace context headers (traceparent and tracestate) as the
// specification and OpenTelemetry read them, without allocating for a value already written as
// it should be. The eventbridge decoder keeps what it returns in an event's metadata, and the
// sinks pass an event's trace context on through it, so both hold the same values valid.
package tracectx

import "strings"

const (
	// traceparentLen is the length of a version 00 traceparent: version, trace id, parent id and
	// flags, the fields every version has.
	traceparentLen = 55
	// maxTracestate and maxTracestateMembers are the W3C limits of a tracestate list.
	maxTracestate        = 512
	maxTracestateMembers = 32
	// maxTracestateValue bounds one list member's value (keys: see tracestateKey).
	maxTracestateValue = 256
)

// Parent checks the W3C traceparent form "vv-<32 hex>-<16 hex>-ff" in lower-case hex, with
// non-zero ids, and returns the value to keep. Version ff is invalid. Version 00 must be exactly
// that long. A later version may go on with "-" and fields this version does not know: only its
// first 55 characters are kept (as the specification parses them), so what follows, however long
// and whatever it holds, never reaches an event. Version 00 defines two flags, sampled (01) and
// random (02); the other bits are reserved, and whoever passes the context on must send them as
// zero, so they are cleared (OpenTelemetry refuses a version 00 traceparent with them set, and the
// receive span would not follow the trace the event carries).
func Parent(v string) (string, bool) {
	if len(v) < traceparentLen || v[2] != '-' || v[35] != '-' || v[52] != '-' {
		return "", false
	}
	if !lowerHex(v[0:2]) || !lowerHex(v[3:35]) || !lowerHex(v[36:52]) || !lowerHex(v[53:55]) {
		return "", false
	}
	switch {
	case v[0:2] == "ff":
		return "", false
	case v[0:2] == "00" && len(v) != traceparentLen:
		return "", false
	case len(v) > traceparentLen && v[traceparentLen] != '-':
		return "", false
	case strings.Trim(v[3:35], "0") == "" || strings.Trim(v[36:52], "0") == "":
		return "", false
	}
	if len(v) > traceparentLen {
		// A copy, so that the event does not keep a long header alive.
		return strings.Clone(v[:traceparentLen]), true
	}
	if v[0:2] == "00" && (v[53] != '0' || v[54] > '3') {
		return v[:53] + "0" + string("0123"[hexDigit(v[54])&3]), true
	}
	return v, true
}

// hexDigit returns the value of the lower-case hex digit c.
func hexDigit(c byte) byte {
	if c >= 'a' {
		return c - 'a' + 10
	}
	return c - '0'
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

// State checks a W3C tracestate list and returns the value to keep: at most 512 characters
// and 32 list members, separated by commas with optional spaces around them; each member empty or
// key=value, with no key twice; a key as tracestateKey says; a value of 1 to 256 printable ASCII
// characters other than comma and equals sign, not ending in a space. What is kept is the members
// joined by commas, without the empty ones and the spaces around them (the list OpenTelemetry
// reads, which refuses those), and v itself when it is written so already.
// The specification also allows tabs around members, but a tab cannot travel in gRPC metadata, so
// such a list is not kept. A list with no member at all is not kept either.
func State(v string) (string, bool) {
	if len(v) > maxTracestate {
		return "", false
	}
	orig := v
	var members [maxTracestateMembers]string
	n, size := 0, 0
	for count := 0; ; count++ {
		if count == maxTracestateMembers {
			return "", false
		}
		member, rest, more := strings.Cut(v, ",")
		member = strings.Trim(member, " ")
		if member != "" {
			key, value, ok := strings.Cut(member, "=")
			if !ok || !tracestateKey(key) || !tracestateValue(value) {
				return "", false
			}
			for _, m := range members[:n] {
				if k, _, _ := strings.Cut(m, "="); k == key {
					return "", false
				}
			}
			members[n] = member
			n++
			size += len(member)
		}
		if !more {
			break
		}
		v = rest
	}
	if n == 0 {
		return "", false
	}
	if size+n-1 == len(orig) {
		return orig, true // no empty member, no space around one: as written
	}
	return strings.Join(members[:n], ","), true
}

// tracestateKey checks a list member's key by the W3C grammar: a simple key (a lower-case letter,
// then up to 255 of a-z 0-9 _ - * /), or tenant@system (the tenant a letter or digit then up to
// 240 more, the system a letter then up to 13 more). OpenTelemetry refuses a whole list over one
// key outside it, so a looser check would let the sinks get a list the spans do not carry.
func tracestateKey(k string) bool {
	if tenant, system, multi := strings.Cut(k, "@"); multi {
		return keyPart(tenant, false, 241) && keyPart(system, true, 14)
	}
	return keyPart(k, true, 256)
}

// keyPart reports whether p is 1 to max characters of a-z 0-9 _ - * /, the first a letter (or,
// unless letterFirst, a digit).
func keyPart(p string, letterFirst bool, max int) bool {
	if p == "" || len(p) > max {
		return false
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c >= 'a' && c <= 'z':
		case c >= '0' && c <= '9':
			if i == 0 && letterFirst {
				return false
			}
		case i > 0 && (c == '_' || c == '-' || c == '*' || c == '/'):
		default:
			return false
		}
	}
	return true
}

func tracestateValue(v string) bool {
	if v == "" || len(v) > maxTracestateValue || v[len(v)-1] == ' ' {
		return false
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 || c > 0x7e || c == ',' || c == '=' {
			return false
		}
	}
	return true
}
