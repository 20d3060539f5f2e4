package eventbridge

import (
	"encoding/json"
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

// parseTime is internal/rfc3339.Parse, whose fuzz target holds it to time.Parse; the test below
// checks the call.
func TestParseTimeMatchesTimeParse(t *testing.T) {
	for _, s := range []string{"2021-06-25T15:11:52Z", "2021-06-25T15:11:52.435Z", "2024-02-29T00:00:00+14:00",
		"2021-06-25T15:11:52-07:30", "2021-06-25T15:11:52.000000001Z"} {
		got, ok := parseTime([]byte(s))
		want, err := time.Parse(time.RFC3339Nano, s)
		if !ok || err != nil || !got.Equal(want) {
			t.Errorf("%q: parseTime %v %v, time.Parse %v %v", s, got, ok, want, err)
		}
	}
	// Forms RFC 3339 allows and time.Parse refuses: lower-case t and z, and a leap second.
	for s, want := range map[string]time.Time{
		"2016-12-31t23:59:59z":           time.Date(2016, 12, 31, 23, 59, 59, 0, time.UTC),
		"2016-12-31T23:59:60Z":           time.Date(2017, 1, 1, 0, 0, 0, 0, time.UTC),
		"2016-12-31T23:59:60.5+00:00":    time.Date(2017, 1, 1, 0, 0, 0, 5e8, time.UTC),
		"2016-12-31T18:59:60.25-05:00":   time.Date(2017, 1, 1, 0, 0, 0, 25e7, time.UTC),
		"2021-06-25T15:11:52.123456789z": time.Date(2021, 6, 25, 15, 11, 52, 123456789, time.UTC),
	} {
		got, ok := parseTime([]byte(s))
		if !ok || !got.Equal(want) {
			t.Errorf("%q: parseTime %v %v, want %v", s, got, ok, want)
		}
	}
	for _, s := range []string{"2023-02-29T00:00:00Z", "2021-06-25T24:00:00Z", "2021-06-25 15:11:52Z", "2021-06-25T15:11:52",
		"2021-06-25T15:11:61Z", "2021-06-25x15:11:52Z", "2021-06-25T15:11:52y",
		"2021-06-25T15:11:52.Z", "2021-06-25T15:11:52+2:00", "2021-13-01T00:00:00Z", "21-06-25T15:11:52Z",
		// Instants outside the years 0001 to 9999 in UTC: no RFC 3339 timestamp can write
		// those before 0000 or after 9999, so neither a Kafka header nor a dead-letter entry could
		// hold them, and a protobuf Timestamp (grpcsink) starts at 0001.
		"0000-01-01T00:00:00+01:00", "0000-06-01T00:00:00Z", "0001-01-01T00:30:00+01:00",
		"9999-12-31T23:59:60Z", "9999-12-31T23:00:00-01:00"} {
		if _, ok := parseTime([]byte(s)); ok {
			t.Errorf("parseTime accepted %q", s)
		}
	}
	for _, s := range []string{"0001-01-01T00:00:00Z", "0001-01-01T01:00:00+01:00", "9999-12-31T23:59:59.999999999Z", "9999-12-31T22:59:59-01:00"} {
		if _, ok := parseTime([]byte(s)); !ok {
			t.Errorf("parseTime refused %q", s)
		}
	}
}
