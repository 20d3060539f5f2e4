package dlq_test

import (
	"bytes"
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/dlq"
	"github.com/fanbridge/fanbridge/dlq/dlqtest"
	"github.com/fanbridge/fanbridge/retry"
)

// FuzzEntryJSON decodes arbitrary input: it must never panic, and whatever it accepts must encode
// and decode again to the same entry.
func FuzzEntryJSON(f *testing.F) {
	for _, ev := range dlqtest.SampleEvents() {
		b, err := json.Marshal(dlq.NewEntry(&ev, "s", "r", retry.Permanent(assert.AnError), time.Now(), time.Now()))
		require.NoError(f, err)
		f.Add(b)
	}
	f.Add([]byte(`{"v":1,"id":"a","sink":"s","event":{"raw_b64":"/wA=","data_text":"x"}}`))
	f.Add([]byte(`{"v":1,"event":{"raw":null,"metadata":{"k":"\ud800"}}}`))
	f.Add([]byte(`{"v":2}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		var e dlq.Entry
		if err := json.Unmarshal(in, &e); err != nil {
			return
		}
		b, err := e.AppendJSON(nil)
		require.NoError(t, err)
		require.NotContains(t, string(b), "\n")
		require.False(t, hasTerminalControl(b), "raw terminal control in %q", b)
		var again dlq.Entry
		require.NoError(t, json.Unmarshal(b, &again), "re-decoding %s", b)
		dlqtest.AssertEntry(t, e, again)
		require.True(t, bytes.Equal(e.Event.Raw, again.Event.Raw))
	})
}

// FuzzEntryRoundTrip encodes entries built from arbitrary field values: Raw and Data must come back
// byte for byte, and text as valid UTF-8.
func FuzzEntryRoundTrip(f *testing.F) {
	sample, err := os.ReadFile("testdata/v2.detail.events.conversation.customer.end.json")
	require.NoError(f, err)
	f.Add(sample, []byte(`{"a":1}`), "err", "k", "v", int64(1700000000123456789))
	f.Add([]byte{0xff, 0, '\n'}, []byte(nil), "\xff\x00", "", "\u2028", int64(-62135596800000000))
	f.Add([]byte(`"<&>"`), []byte(`[1, 2]`), "quote\"", "\\", "\t", int64(0))
	f.Add([]byte("{\"a\":\"\x7f\u009b\u202e\"}"), []byte("[\"\u2066\u00a0\"]"), "\x7f\u0085", "\u202d", "\u2069", int64(1))
	f.Fuzz(func(t *testing.T, raw, data []byte, text, key, value string, nanos int64) {
		in := dlq.Entry{
			ID: "x", Sink: "s", Error: text, Route: text,
			LastAttempt: time.Unix(0, nanos),
			Event: fanbridge.Event{
				ID: text, Raw: raw, Data: data, Metadata: map[string]string{key: value},
			},
		}
		b, err := in.AppendJSON(nil)
		require.NoError(t, err)
		require.True(t, json.Valid(b), "invalid JSON: %q", b)
		require.NotContains(t, string(b), "\n")
		require.False(t, hasTerminalControl(b), "raw terminal control in %q", b)
		var out dlq.Entry
		require.NoError(t, json.Unmarshal(b, &out))
		require.True(t, bytes.Equal(raw, out.Event.Raw), "raw %q became %q", raw, out.Event.Raw)
		require.True(t, bytes.Equal(data, out.Event.Data), "data %q became %q", data, out.Event.Data)
		// Text that is not valid UTF-8 has each bad byte replaced, as in encoding/json.
		require.Equal(t, string([]rune(text)), out.Error)
		require.Equal(t, map[string]string{string([]rune(key)): string([]rune(value))}, out.Event.Metadata)
		require.True(t, in.LastAttempt.Equal(out.LastAttempt))
	})
}
