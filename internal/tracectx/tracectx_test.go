package tracectx

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// traceparentForm is the W3C traceparent grammar: version, trace id, parent id, flags, and for
// versions after 00, further "-" fields.
var traceparentForm = regexp.MustCompile(`(?s)^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}(-.*)?$`)

// FuzzTraceparent holds Parent to the grammar written as a regular expression, with the rules
// the grammar cannot say: version ff is invalid, version 00 has no further fields, and neither id
// may be all zeros. What is kept is the first 55 characters, the fields every version has, with a
// version 00's reserved flag bits (all but sampled and random) cleared; OpenTelemetry's propagator
// reads what is kept as the same trace and parent, and the same sampled flag.
func FuzzTraceparent(f *testing.F) {
	for _, s := range []string{
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
		"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
		"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-\xc3\xa9\x00",
		"cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
		"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"00-00000000000000000000000000000000-00f067aa0ba902b7-01",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
		"00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01", "", "00-",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-ff",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03",
		"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		want := false
		if m := traceparentForm.FindStringSubmatch(v); m != nil {
			want = m[1] != "ff" && !(m[1] == "00" && m[4] != "") &&
				strings.Trim(m[2], "0") != "" && strings.Trim(m[3], "0") != ""
		}
		got, ok := Parent(v)
		if ok != want {
			t.Fatalf("Parent(%q) accepted %v, want %v", v, ok, want)
		}
		if !ok {
			return
		}
		kept := v[:55]
		if v[:2] == "00" {
			flags, err := strconv.ParseUint(v[53:55], 16, 8)
			if err != nil {
				t.Fatal(err)
			}
			kept = fmt.Sprintf("%s%02x", v[:53], flags&3)
		}
		if got != kept {
			t.Fatalf("Parent(%q) kept %q, want %q", v, got, kept)
		}
		sc := trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(),
			propagation.MapCarrier{"traceparent": got}))
		if !sc.IsValid() || sc.TraceID().String() != v[3:35] || sc.SpanID().String() != v[36:52] ||
			sc.IsSampled() != (hexDigit(got[54])&1 == 1) {
			t.Fatalf("OpenTelemetry reads %q as %v (from %q)", got, sc, v)
		}
	})
}

// A version 00 traceparent with reserved flag bits set is kept with them cleared, and the receive
// span then follows the trace the event carries on.
func TestTraceparentReservedFlags(t *testing.T) {
	for in, want := range map[string]string{
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-fe": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-02",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-a0": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
		// A later version's flags are its own: they are kept as they came.
		"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09": "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09",
	} {
		got, ok := Parent(in)
		if !ok || got != want {
			t.Errorf("Parent(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
}

// tracestateMember is one non-empty W3C tracestate list member: key = value.
// Its key is a simple key, or tenant@system.
var tracestateMember = regexp.MustCompile(`^([a-z][a-z0-9_\-*/]{0,255}|[a-z0-9][a-z0-9_\-*/]{0,240}@[a-z][a-z0-9_\-*/]{0,13})=[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]$`)

// FuzzValidTracestate holds State to the W3C list grammar, written independently: at
// most 512 characters and 32 members, split at commas, spaces around members ignored, each member
// empty or matching tracestateMember, no key twice, at least one member. What passes is printable
// ASCII, so it can go into a Kafka header and gRPC metadata as it is, and OpenTelemetry reads it
// as the same list, so that the spans and the sinks carry the same trace state.
func FuzzValidTracestate(f *testing.F) {
	for _, s := range []string{
		"congo=t61rcWkgMzE,rojo=00f067aa0ba902b7", "a=\x00", strings.Repeat("k=v,", 200),
		"rojo=00f067aa0ba902b7 , congo=t61rcWkgMzE,,", "a=1,a=2", "tenant@vendor=x", "A=b", "a= b",
		"a=b ", "a=b\t", ",", " ", "", "a=", "=b", "a=b=c", "a=\xc3\xa9",
		"1abc=x", "a@b@c=x", "a@=x", "t@1sys=x", "1t@sys=x", "t@abcdefghijklmn=x", "t@abcdefghijklmno=x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		want := len(v) <= 512
		members := strings.Split(v, ",")
		if len(members) > 32 {
			want = false
		}
		keys := map[string]bool{}
		for _, m := range members {
			m = strings.Trim(m, " ")
			if m == "" {
				continue
			}
			sub := tracestateMember.FindStringSubmatch(m)
			if sub == nil || keys[sub[1]] {
				want = false
				break
			}
			keys[sub[1]] = true
		}
		if len(keys) == 0 {
			want = false
		}
		kept, got := State(v)
		if got != want {
			t.Fatalf("State(%q) = %v, want %v", v, got, want)
		}
		if !want {
			return
		}
		for _, r := range []byte(kept) {
			if r < 0x20 || r > 0x7e {
				t.Fatalf("kept byte %#x", r)
			}
		}
		ts, err := trace.ParseTraceState(kept)
		if err != nil || ts.Len() != len(keys) {
			t.Fatalf("State(%q) kept %q, which OpenTelemetry reads as %d members, %v", v, kept, ts.Len(), err)
		}
		if ts.String() != kept {
			t.Fatalf("State(%q) kept %q, OpenTelemetry writes %q", v, kept, ts.String())
		}
	})
}
