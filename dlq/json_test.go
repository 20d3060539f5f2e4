package dlq_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/dlq"
	"github.com/fanbridge/fanbridge/dlq/dlqtest"
	"github.com/fanbridge/fanbridge/retry"
)

// TestJSONShape pins the documented version 1 shape: changing it breaks every file written before.
func TestJSONShape(t *testing.T) {
	e := dlq.Entry{
		ID:           "01J00000000000000000000000",
		Sink:         "kafka-orders",
		Route:        "orders",
		Class:        retry.ClassRetryable,
		Error:        "kafka: \"NOT_LEADER\"\n",
		Attempts:     5,
		FirstAttempt: time.Date(2026, 3, 1, 10, 0, 0, 120000000, time.UTC),
		LastAttempt:  time.Date(2026, 3, 1, 12, 0, 3, 987654321, time.FixedZone("", 2*3600)),
		Condition:    dlq.ConditionAttempts,
		TraceID:      "4bf92f3577b34da6a3ce929d0e0e4736",
		Event: fanbridge.Event{
			ID:       "e-1",
			Type:     "v2.users.{id}.presence",
			Topic:    "v2.users.42.presence",
			Source:   "aws.partner/genesys.com",
			Time:     time.Date(2026, 3, 1, 9, 59, 59, 0, time.UTC),
			Metadata: map[string]string{"region": "us-east-1", "account": "1"},
			Data:     json.RawMessage(`{"x":1}`),
			Raw:      []byte(`{"id":"e-1","detail":{"x":1}}`),
		},
	}
	want := `{"v":1,"id":"01J00000000000000000000000","sink":"kafka-orders","route":"orders",` +
		`"class":"retryable","error":"kafka: \"NOT_LEADER\"\n","attempts":5,` +
		`"first_attempt":"2026-03-01T10:00:00.12Z","last_attempt":"2026-03-01T10:00:03.987654321Z",` +
		`"condition":"attempts","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736",` +
		`"event":{"id":"e-1","type":"v2.users.{id}.presence","topic":"v2.users.42.presence",` +
		`"source":"aws.partner/genesys.com","time":"2026-03-01T09:59:59Z",` +
		`"metadata":{"account":"1","region":"us-east-1"},` +
		`"data":{"x":1},"raw":{"id":"e-1","detail":{"x":1}}}}`
	got, err := json.Marshal(e)
	require.NoError(t, err)
	assert.Equal(t, want, string(got))

	minimal, err := json.Marshal(dlq.Entry{ID: "a", Sink: "s"})
	require.NoError(t, err)
	assert.Equal(t, `{"v":1,"id":"a","sink":"s","event":{"id":""}}`, string(minimal))
}

func TestJSONBytesForms(t *testing.T) {
	cases := []struct {
		name string
		raw  []byte
		form string // the member the raw bytes must be stored under
	}{
		{"compact", []byte(`{"a":[1,"b c",{"d":null}]}`), `"raw":{`},
		{"scalar", []byte(`"text"`), `"raw":"text"`},
		{"null", []byte(`null`), `"raw":null`},
		{"spaces", []byte(`{"a": 1}`), `"raw_text":"{\"a\": 1}"`},
		{"pretty", []byte("{\n  \"a\": 1\n}\n"), `"raw_text":"{\n  \"a\": 1\n}\n"`},
		{"html", []byte(`{"a":"<b>&"}`), `"raw_text":`},
		{"line-separator", []byte("{\"a\":\"\u2028\"}"), `"raw_text":"{\"a\":\"\u2028\"}"`},
		{"escaped-quote-then-space", []byte(`["\" x"]`), `"raw":["\" x"]`},
		{"invalid-json", []byte(`{"a":`), `"raw_text":`},
		{"empty", []byte{}, `"raw_text":""`},
		{"binary", []byte{0xff, 0x00, 'a'}, `"raw_b64":"/wBh"`},
		{"invalid-utf8-in-json-string", []byte("{\"a\":\"\xff\"}"), `"raw_b64":`},
		// Terminal controls inside JSON strings make the JSON a string, in which they are escaped.
		{"del", []byte("{\"a\":\"a\x7fb\"}"), `"raw_text":"{\"a\":\"a\u007fb\"}"`},
		{"c1-csi", []byte("{\"a\":\"\u009b31m\"}"), `"raw_text":"{\"a\":\"\u009b31m\"}"`},
		{"c1-first", []byte("{\"a\":\"\u0080\"}"), `"raw_text":"{\"a\":\"\u0080\"}"`},
		{"bidi-override", []byte("{\"a\":\"\u202eevil\u202c\"}"), `"raw_text":"{\"a\":\"\u202eevil\u202c\"}"`},
		{"bidi-embedding", []byte("{\"a\":\"\u202a\"}"), `"raw_text":"{\"a\":\"\u202a\"}"`},
		{"bidi-isolates", []byte("{\"a\":\"\u2066x\u2069\"}"), `"raw_text":"{\"a\":\"\u2066x\u2069\"}"`},
		// Characters next to those ranges, and other invisible ones a terminal shows or ignores,
		// stay embedded as they are.
		{"printable-neighbours", []byte("{\"a\":\"~\u00a0\u00ad\u200d\u200e\u2030\u2065\u206a\U0001F468\u200d\U0001F469\"}"),
			"\"raw\":{\"a\":\"~\u00a0\u00ad\u200d\u200e\u2030\u2065\u206a\U0001F468\u200d\U0001F469\"}"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := dlq.Entry{ID: "x", Sink: "s", Event: fanbridge.Event{Raw: tc.raw, Data: tc.raw}}
			b, err := e.AppendJSON(nil)
			require.NoError(t, err)
			assert.Contains(t, string(b), tc.form)
			assert.Contains(t, string(b), strings.Replace(tc.form, `"raw`, `"data`, 1))
			assert.NotContains(t, string(b), "\n", "an entry must stay on one line")
			assert.True(t, json.Valid(b))

			var got dlq.Entry
			require.NoError(t, json.Unmarshal(b, &got))
			assert.Equal(t, tc.raw, got.Event.Raw)
			assert.Equal(t, tc.raw, []byte(got.Event.Data))

			// encoding/json compacts and HTML-escapes what a Marshaler returns; the bytes must
			// survive that too, as when a tool prints entries with json.Marshal.
			wrapped, err := json.Marshal(struct{ E dlq.Entry }{got})
			require.NoError(t, err)
			var back struct{ E dlq.Entry }
			require.NoError(t, json.Unmarshal(wrapped, &back))
			assert.Equal(t, tc.raw, back.E.Event.Raw)
		})
	}
}

func TestJSONRoundTripSamples(t *testing.T) {
	for _, ev := range dlqtest.SampleEvents() {
		t.Run(ev.Type, func(t *testing.T) {
			in, err := dlq.Prepare(dlq.NewEntry(&ev, "s", "r", retry.Permanent(assert.AnError), time.Now(), time.Now()))
			require.NoError(t, err)
			b, err := json.Marshal(in)
			require.NoError(t, err)
			var out dlq.Entry
			require.NoError(t, json.Unmarshal(b, &out))
			dlqtest.AssertEntry(t, in, out)
		})
	}
}

func TestJSONDecodeErrors(t *testing.T) {
	cases := []struct {
		name string
		in   string
		want error
	}{
		{"not-json", `{"v":1,`, dlq.ErrMalformed},
		{"not-an-object", `[1]`, dlq.ErrMalformed},
		{"no-version", `{"id":"a","sink":"s"}`, dlq.ErrMalformed},
		{"version-zero", `{"v":0}`, dlq.ErrMalformed},
		{"newer-version", `{"v":2,"id":"a"}`, dlq.ErrUnknownVersion},
		{"fractional-version", `{"v":1.5}`, dlq.ErrMalformed},
		{"two-forms", `{"v":1,"event":{"raw":{},"raw_b64":""}}`, dlq.ErrMalformed},
		{"bad-base64", `{"v":1,"event":{"data_b64":"@@"}}`, dlq.ErrMalformed},
		{"bad-time", `{"v":1,"last_attempt":"yesterday"}`, dlq.ErrMalformed},
		{"wrong-type", `{"v":1,"attempts":"5"}`, dlq.ErrMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := dlq.Entry{ID: "untouched"}
			err := e.UnmarshalJSON([]byte(tc.in))
			assert.ErrorIs(t, err, tc.want)
			assert.Equal(t, "untouched", e.ID, "a failed decode changed the entry")
		})
	}
}

func TestJSONIgnoresUnknownMembers(t *testing.T) {
	var e dlq.Entry
	require.NoError(t, json.Unmarshal([]byte(`{"v":1,"id":"a","sink":"s","future":{"x":1},"event":{"id":"e","later":true}}`), &e))
	assert.Equal(t, "a", e.ID)
	assert.Equal(t, "e", e.Event.ID)
}

func TestAppendJSONRejectsTimesOutOfRange(t *testing.T) {
	e := dlq.Entry{ID: "a", Sink: "s", FirstAttempt: time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC)}
	_, err := e.AppendJSON(nil)
	assert.ErrorIs(t, err, dlq.ErrInvalidEntry)
}

// Another writer may give times with an offset: decoded times are in UTC, at the same instant.
func TestJSONDecodedTimesAreUTC(t *testing.T) {
	for _, offset := range []string{"+02:00", "-05:30", "+00:00", "Z"} {
		t.Run(offset, func(t *testing.T) {
			in := `{"v":1,"id":"A","sink":"s","first_attempt":"2026-03-01T12:00:00.5` + offset +
				`","last_attempt":"2026-03-01T12:00:01` + offset + `","event":{"id":"e","time":"2026-03-01T11:59:00` + offset + `"}}`
			var e dlq.Entry
			require.NoError(t, e.UnmarshalJSON([]byte(in)))
			for name, got := range map[string]time.Time{"first_attempt": e.FirstAttempt, "last_attempt": e.LastAttempt, "event.time": e.Event.Time} {
				assert.Same(t, time.UTC, got.Location(), "%s: %v", name, got)
			}
			want, err := time.Parse(time.RFC3339Nano, "2026-03-01T12:00:00.5"+offset)
			require.NoError(t, err)
			assert.True(t, want.Equal(e.FirstAttempt), "the instant is kept: %v, want %v", e.FirstAttempt, want)
		})
	}
}

// hasTerminalControl reports whether b holds, raw, a character a terminal may act on: C0 controls,
// DEL, C1 controls or bidirectional embeddings, overrides and isolates.
func hasTerminalControl(b []byte) bool {
	return strings.ContainsFunc(string(b), func(r rune) bool {
		return r < 0x20 || r == 0x7f || (r >= 0x80 && r <= 0x9f) || (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069)
	})
}

// An entry's JSON can be printed on a terminal as it is: every field's terminal controls are
// escaped, and decoding gives them back.
func TestJSONEscapesTerminalControls(t *testing.T) {
	const nasty = "a\x7fb\u0085c\u009b2Jd\u202ee\u2067f\x1b[31m\u00a0\u200d\u00ad"
	e := dlq.Entry{
		ID: "x" + nasty, Sink: nasty, Route: nasty, Error: nasty, TraceID: nasty,
		Event: fanbridge.Event{
			ID: nasty, Type: nasty, Topic: nasty, Source: nasty,
			Metadata: map[string]string{nasty: nasty},
			Raw:      []byte("{\"a\":\"a\x7fb\u0085\u009b\u202e\u2067\u00a0\"}"),
			Data:     []byte(nasty),
		},
	}
	b, err := e.AppendJSON(nil)
	require.NoError(t, err)
	assert.False(t, hasTerminalControl(b), "raw terminal control in %q", b)
	assert.Contains(t, string(b), `a\u007fb\u0085c\u009b2Jd\u202ee\u2067f\u001b[31m`+"\u00a0\u200d\u00ad")
	var got dlq.Entry
	require.NoError(t, json.Unmarshal(b, &got))
	dlqtest.AssertEntry(t, e, got)
	assert.Equal(t, e.Event.Raw, got.Event.Raw)
	assert.Equal(t, []byte(e.Event.Data), []byte(got.Event.Data))
}

// Entries written before terminal controls were kept out of embedded Raw and Data, and out of
// strings, are read as they always were: byte for byte.
func TestJSONReadsTerminalControlsWrittenRaw(t *testing.T) {
	raw := "{\"a\":\"a\x7fb\u009b\u202e\u2066\u00a0\"}"
	in := `{"v":1,"id":"A","sink":"s","error":"e` + "\x7f\u009b\u202e" + `","event":{"id":"e","data":` + raw + `,"raw":` + raw + `}}`
	var e dlq.Entry
	require.NoError(t, json.Unmarshal([]byte(in), &e))
	assert.Equal(t, []byte(raw), e.Event.Raw)
	assert.Equal(t, []byte(raw), []byte(e.Event.Data))
	assert.Equal(t, "e\x7f\u009b\u202e", e.Error)

	// Written again, they take the escaped form, and decode to the same bytes.
	b, err := e.AppendJSON(nil)
	require.NoError(t, err)
	assert.False(t, hasTerminalControl(b), "raw terminal control in %q", b)
	var again dlq.Entry
	require.NoError(t, json.Unmarshal(b, &again))
	assert.Equal(t, []byte(raw), again.Event.Raw)
	assert.Equal(t, e.Error, again.Error)
}
