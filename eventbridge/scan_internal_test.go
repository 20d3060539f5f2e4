package eventbridge

import (
	"encoding/json"
	"regexp"
	"testing"
	"time"
	"unicode/utf8"
)

// depth is the nesting depth of a document encoding/json accepted.
func depth(b []byte) int {
	d, deepest, inString := 0, 0, false
	for i := 0; i < len(b); i++ {
		switch c := b[i]; {
		case inString && c == '\\':
			i++
		case c == '"':
			inString = !inString
		case inString:
		case c == '{' || c == '[':
			d++
			deepest = max(deepest, d)
		case c == '}' || c == ']':
			d--
		}
	}
	return deepest
}

// FuzzScan holds the scanner to encoding/json: it accepts exactly the documents json.Valid
// accepts that are also valid UTF-8 and within MaxDepth, and every member it records has a key
// and a value that encoding/json reads back.
func FuzzScan(f *testing.F) {
	for _, s := range []string{
		`{}`, `[]`, `""`, `0`, `-0.5e+10`, `true`, `null`, `{"a":[1,{"b":null}],"c":"\u00e9\ud83d\ude00"}`,
		`{"detail":{"metadata":{"CorrelationId":"x"},"eventBody":{"eventTime":1}}}`, "\"\xff\"", `{"a":1,}`,
		`[1,]`, `01`, `1.`, `"\x"`, `{"a" 1}`, "\t\n\r {\"k\":\"v\"} ",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s := getScanner()
		defer putScanner(s)
		err := s.scan(b)
		want := json.Valid(b) && utf8.Valid(b) && depth(b) <= MaxDepth
		if (err == nil) != want {
			t.Fatalf("scanner err=%v, encoding/json valid=%v utf8=%v depth=%d", err, json.Valid(b), utf8.Valid(b), depth(b))
		}
		if err != nil {
			return
		}
		for i := range s.members {
			m := &s.members[i]
			var k string
			if e := json.Unmarshal(b[m.keyStart-1:m.keyEnd+1], &k); e != nil {
				t.Fatalf("member %d key %q: %v", i, b[m.keyStart-1:m.keyEnd+1], e)
			}
			if k != string(s.key(m)) {
				t.Fatalf("key %q unescaped to %q, encoding/json says %q", b[m.keyStart:m.keyEnd], s.key(m), k)
			}
			if !json.Valid(s.val(m)) {
				t.Fatalf("member %d value %q is not one JSON value", i, s.val(m))
			}
			if m.parent >= int32(i) {
				t.Fatalf("member %d has parent %d", i, m.parent)
			}
		}
	})
}

var rfc3339Shape = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$`)

// FuzzParseTime holds parseTime to time.Parse(time.RFC3339Nano): whatever it accepts, time.Parse
// accepts as the same instant.
func FuzzParseTime(f *testing.F) {
	for _, s := range []string{"2021-06-25T15:11:52Z", "2021-06-25T15:11:52.435Z", "2024-02-29T00:00:00+14:00",
		"2023-02-29T00:00:00Z", "2021-06-25t15:11:52.123456789z", "2021-06-25T15:11:52.12345678901Z", "2021-06-25T24:00:00Z",
		"2021-06-25T15:11:52-07:30", "0000-01-01T00:00:00Z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := parseTime([]byte(s))
		want, err := time.Parse(time.RFC3339Nano, s)
		if ok && err != nil {
			t.Fatalf("parseTime accepted %q, time.Parse did not: %v", s, err)
		}
		if ok && !got.Equal(want) {
			t.Fatalf("%q: parseTime %v, time.Parse %v", s, got, want)
		}
		// time.Parse is laxer than RFC 3339 (one-digit hours, a comma before the fraction, offsets
		// of +24:00); only strings of the RFC's own shape must be accepted by both.
		if !ok && err == nil && rfc3339Shape.MatchString(s) {
			t.Fatalf("parseTime refused %q, time.Parse read %v", s, want)
		}
	})
}

func TestParseTimeMatchesTimeParse(t *testing.T) {
	for _, s := range []string{"2021-06-25T15:11:52Z", "2021-06-25T15:11:52.435Z", "2024-02-29T00:00:00+14:00",
		"2021-06-25T15:11:52-07:30", "2021-06-25T15:11:52.000000001Z"} {
		got, ok := parseTime([]byte(s))
		want, err := time.Parse(time.RFC3339Nano, s)
		if !ok || err != nil || !got.Equal(want) {
			t.Errorf("%q: parseTime %v %v, time.Parse %v %v", s, got, ok, want, err)
		}
	}
	for _, s := range []string{"2023-02-29T00:00:00Z", "2021-06-25T24:00:00Z", "2021-06-25 15:11:52Z", "2021-06-25T15:11:52",
		"2021-06-25T15:11:52.Z", "2021-06-25T15:11:52+2:00", "2021-13-01T00:00:00Z", "21-06-25T15:11:52Z"} {
		if _, ok := parseTime([]byte(s)); ok {
			t.Errorf("parseTime accepted %q", s)
		}
	}
}
