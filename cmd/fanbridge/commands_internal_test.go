package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/dlq"
	"github.com/fanbridge/fanbridge/dlq/dlqtest"
	"github.com/fanbridge/fanbridge/eventbridge"
	"github.com/fanbridge/fanbridge/filter"
	"github.com/fanbridge/fanbridge/retry"
	"github.com/fanbridge/fanbridge/sink"
)

// countingReader counts the entries its List has handed over.
type countingReader struct {
	dlq.Reader
	listed int
	// onEntry is called before each entry is handed over.
	onEntry func(listed int)
}

func (r *countingReader) List(ctx context.Context, fn func(dlq.Entry) error) error {
	return r.Reader.List(ctx, func(e dlq.Entry) error {
		r.listed++
		r.onEntry(r.listed)
		return fn(e)
	})
}

// rowsWriter counts the lines written to it and keeps them.
type rowsWriter struct {
	bytes.Buffer
	writes int
}

func (w *rowsWriter) Write(p []byte) (int, error) {
	w.writes++
	return w.Buffer.Write(p)
}

func (w *rowsWriter) lines() int { return bytes.Count(w.Bytes(), []byte("\n")) }

// The table of dlq list must stream: rows reach the output while the queue is still being read,
// a bounded number of rows behind, rather than all at the end (which held every cell of a large
// queue in memory and showed nothing until the whole queue was read).
func TestDLQListTableStreams(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const n = 3217
	m := dlqtest.NewMemory()
	for i := range n {
		route := fmt.Sprintf("route-%04d", i)
		if i == 2500 {
			route = "a route with a much longer name than any before it"
		}
		require.NoError(t, m.Put(ctx, dlq.Entry{
			Sink: "crm", Route: route, Attempts: 1, Condition: dlq.ConditionPermanent, Error: "refused",
			Event: fanbridge.Event{ID: fmt.Sprintf("ev-%d", i), Type: "v2.users.presence"},
		}))
	}
	out := &rowsWriter{}
	maxBehind, firstAt := 0, -1
	r := &countingReader{Reader: m, onEntry: func(listed int) {
		// Rows of the entries handed over before this one that are not written yet (the
		// header is the first line).
		written := max(out.lines()-1, 0)
		maxBehind = max(maxBehind, listed-1-written)
		if firstAt < 0 && out.Len() > 0 {
			firstAt = listed
		}
	}}
	var stderr bytes.Buffer
	require.Equal(t, exitOK, dlqList(ctx, r, nil, nil, false, nil, out, &stderr), stderr.String())
	assert.Equal(t, fmt.Sprintf("%d entries\n", n), stderr.String())
	require.Equal(t, n, r.listed)
	assert.Positive(t, firstAt, "nothing was written before the whole queue was read")
	assert.LessOrEqual(t, firstAt, 1001, "the first rows came after %d entries were read", firstAt)
	assert.LessOrEqual(t, maxBehind, 1000, "rows held back while the queue was read")
	assert.Equal(t, 4, out.writes, "one write per chunk of 1000 rows")

	// Every row is there, in order, and the columns only ever move right: within a chunk (the
	// header and 999 rows, then 1000 rows each) they are aligned, and a wider cell moves them
	// from its chunk on.
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	require.Len(t, lines, 1+n)
	assert.Regexp(t, `^ID {2,}LAST ATTEMPT {2,}SINK {2,}ROUTE {2,}CONDITION {2,}ATTEMPTS {2,}EVENT ID {2,}TYPE {2,}ERROR$`, lines[0])
	typeAt := func(entry int) int { return strings.Index(lines[1+entry], " v2.users.presence ") }
	for i := range n {
		assert.Contains(t, lines[1+i], fmt.Sprintf(" ev-%d ", i))
		require.Positive(t, typeAt(i), lines[1+i])
		if i > 0 && (i+1)%1000 != 0 {
			assert.Equal(t, typeAt(i-1), typeAt(i), "entry %d: the columns of a chunk are not aligned", i)
		}
	}
	assert.Less(t, typeAt(1998), typeAt(1999), "the wide route widens its column from its chunk on")
	assert.Equal(t, typeAt(1999), typeAt(n-1), "the columns moved back after the wide route")
	assert.Equal(t, typeAt(0), typeAt(1998), "the columns moved before the wide route")
}

// A table that cannot be written fails the listing at the first chunk, not after the whole queue.
func TestDLQListTableWriteFailure(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m := dlqtest.NewMemory()
	for i := range 2500 {
		require.NoError(t, m.Put(ctx, dlq.Entry{Sink: "crm", Event: fanbridge.Event{ID: fmt.Sprint("ev-", i)}}))
	}
	r := &countingReader{Reader: m, onEntry: func(int) {}}
	var stderr bytes.Buffer
	assert.Equal(t, exitFail, dlqList(ctx, r, nil, nil, false, nil, failingWriter{}, &stderr))
	assert.Contains(t, stderr.String(), "writing the list: no space left")
	assert.LessOrEqual(t, r.listed, 1001, "the listing went on after the output failed")
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, fmt.Errorf("no space left") }

var _ io.Writer = failingWriter{}

// hasTerminalControl reports whether s holds, raw, a character a terminal may act on: C0
// controls other than the newline, DEL, C1 controls, or bidirectional embeddings, overrides and
// isolates.
func hasTerminalControl(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool {
		return (r < 0x20 && r != '\n') || r == 0x7f || (r >= 0x80 && r <= 0x9f) ||
			(r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069)
	})
}

// list -json and show print the documented entry shape, which decodes to Raw and Data byte for
// byte, and never put a terminal control on the screen. Invisible characters a terminal only
// shows (a no-break space, a joiner, a soft hyphen) stay as they are.
func TestDLQJSONKeepsRawAndDataByteForByte(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	withControls := []byte("{\"detail-type\":\"t\",\"detail\":{\"name\":\"Ann\u00a0Lee\",\"emoji\":\"\U0001F468\u200d\U0001F469\",\"x\":\"a\x7fb\u009b\u202e\u2066\"}}")
	printable := []byte("{\"name\":\"Ann\u00a0Lee\",\"emoji\":\"\U0001F468\u200d\U0001F469\",\"hyphen\":\"co\u00adop\",\"n\":[1,{\"a\":null}]}")
	cases := []struct {
		name      string
		raw, data []byte
	}{
		{"controls-in-raw", withControls, printable},
		{"controls-in-data", printable, withControls},
		{"pretty-raw", []byte("{\n  \"a\": \"\u00a0\"\n}\n"), printable},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			q := dlqtest.NewMemory()
			e := dlq.Entry{ID: "A", Sink: "s", Error: "x\x7f\u009b", Event: fanbridge.Event{ID: "e1", Raw: tc.raw, Data: tc.data, Metadata: map[string]string{"k": "v"}}, LastAttempt: time.Now()}
			require.NoError(t, q.Put(ctx, e))

			var list, show, errb bytes.Buffer
			require.Equal(t, exitOK, dlqList(ctx, q, nil, nil, true, nil, &list, &errb), errb.String())
			require.Equal(t, exitOK, dlqShow(ctx, q, "A", nil, &show, &errb), errb.String())
			for name, out := range map[string]string{"list -json": list.String(), "show": show.String()} {
				assert.False(t, hasTerminalControl(out), "%s prints a terminal control raw: %q", name, out)
				assert.Contains(t, out, "Ann\u00a0Lee", "%s escapes a no-break space", name)
				assert.Contains(t, out, "\U0001F468\u200d\U0001F469", "%s escapes a joiner", name)
				var got dlq.Entry
				require.NoError(t, got.UnmarshalJSON([]byte(out)), "%s: %s", name, out)
				assert.Equal(t, tc.raw, got.Event.Raw, "%s changed Raw", name)
				assert.Equal(t, tc.data, []byte(got.Event.Data), "%s changed Data", name)
				assert.Equal(t, e.Error, got.Error, name)
			}
			assert.Contains(t, show.String(), "\n  \"event\": {\n    \"id\": \"e1\",\n", "show indents the entry")
			assert.Equal(t, 1, strings.Count(list.String(), "\n"), "list -json prints one line an entry")
		})
	}
}

// indentEntry indents as json.Indent does, but leaves the embedded data and raw values alone.
func TestIndentEntry(t *testing.T) {
	at := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	full := dlq.Entry{ID: "A", Sink: "s", Route: "r", Error: "quote \" and \\ and \x7f", Attempts: 2, LastAttempt: at,
		Event: fanbridge.Event{ID: "e", Type: "t", Time: at, Metadata: map[string]string{"k": "v", "k2": "{[,:]}"}}}
	cases := []struct {
		name      string
		raw, data []byte
	}{
		{"no-bytes", nil, nil},
		{"text-and-base64", []byte("not json"), []byte{0xff, 0}},
		{"empty-metadata-and-text", []byte{}, nil},
		{"embedded-object", []byte(`{"a":[1,2,{"b":"c,:}"}],"d":{}}`), []byte(`{"b":"c,:}"}`)},
		{"embedded-scalars", []byte(`"s"`), []byte(`null`)},
		{"embedded-array", []byte(`[[],{},"x"]`), []byte(`12.5e3`)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := full
			e.Event.Raw, e.Event.Data = tc.raw, tc.data
			if tc.name == "empty-metadata-and-text" {
				e.Event.Metadata = map[string]string{}
			}
			b, err := e.AppendJSON(nil)
			require.NoError(t, err)
			got := indentEntry(b)
			var want bytes.Buffer
			require.NoError(t, json.Indent(&want, b, "", "  "))
			var compact bytes.Buffer
			require.NoError(t, json.Compact(&compact, got))
			assert.Equal(t, string(b), compact.String(), "the same JSON")
			var back dlq.Entry
			require.NoError(t, back.UnmarshalJSON(got))
			assert.Equal(t, tc.raw, back.Event.Raw)
			assert.Equal(t, tc.data, []byte(back.Event.Data))
			if !bytes.Contains(b, []byte(`"raw":`)) && !bytes.Contains(b, []byte(`"data":`)) {
				assert.Equal(t, want.String(), string(got), "as json.Indent without embedded values")
			} else {
				for _, v := range [][]byte{tc.raw, tc.data} {
					assert.Contains(t, string(got), ": "+string(v), "embedded as it is")
				}
				// Outside the embedded values the layout is json.Indent's.
				assert.True(t, strings.HasPrefix(want.String(), string(got[:bytes.Index(got, []byte(`"data": `))])))
			}
		})
	}
}

// patternRefusal reads an event as Match does: for events of every format, a pattern on each
// field of the EventBridge shape matches the view filter.View writes exactly when Match matches
// the event, and the view is one the filter reads.
func TestPatternViewIsWhatMatchSees(t *testing.T) {
	at := time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.FixedZone("x", 3600))
	full := &fanbridge.Event{
		ID: "id-1", Type: "v2.users.{id}.presence", Topic: "v2.users.u<1>&.presence", Source: "genesys/<org>", Time: at,
		Data: json.RawMessage(`{ "status" : "AVAILABLE", "n": 1.50, "tags": ["a", "b"] }`),
		Metadata: map[string]string{fanbridge.MetaFormat: "cloudevents", fanbridge.MetaAccount: "123456789012",
			fanbridge.MetaRegion: "eu-west-1", fanbridge.MetaCorrelationID: "corr-1"},
		Raw: []byte(`{"specversion":"1.0"}`),
	}
	events := map[string]*fanbridge.Event{
		"every field":         full,
		"no raw, no format":   {ID: "id-2", Type: "t", Data: json.RawMessage(`"text"`)},
		"notification":        {Type: "v2.users.{id}.activity", Topic: "v2.users.u1.activity", Data: json.RawMessage(`{"a":{"b":true}}`), Metadata: map[string]string{fanbridge.MetaFormat: "notification"}, Raw: []byte(`{"topicName":"v2.users.u1.activity"}`)},
		"correlation only":    {ID: "id-3", Metadata: map[string]string{fanbridge.MetaFormat: "webhook", fanbridge.MetaCorrelationID: "c"}},
		"topic without data":  {ID: "id-4", Topic: "x", Metadata: map[string]string{fanbridge.MetaFormat: "webhook"}},
		"data that is a list": {ID: "id-5", Data: json.RawMessage(`[1, {"k": null}]`), Metadata: map[string]string{fanbridge.MetaFormat: "webhook-attributes"}},
	}
	fields := map[string]string{
		"id": full.ID, "detail-type": full.Type, "source": full.Source, "account": "123456789012",
		"time": "2024-05-06T06:08:09.123456789Z", "region": "eu-west-1", "detail.topicName": full.Topic,
		"detail.eventBody.status": "AVAILABLE", "detail.eventBody.tags": "b", "detail.metadata.CorrelationId": "corr-1",
	}
	var patterns []string
	for path, value := range fields {
		leaf := func(v string) string {
			segs := strings.Split(path, ".")
			out := v
			for i := len(segs) - 1; i >= 0; i-- {
				k, _ := json.Marshal(segs[i])
				out = "{" + string(k) + ":" + out + "}"
			}
			return out
		}
		v, _ := json.Marshal(value)
		patterns = append(patterns, leaf("["+string(v)+"]"), leaf(`[{"exists":true}]`), leaf(`[{"exists":false}]`))
	}
	patterns = append(patterns, `{"detail":{"eventBody":{"n":[{"numeric":["=",1.5]}]}}}`, `{"detail":{"eventBody":{"a":{"b":[true]}}}}`, `{"detail":{"eventBody":[1]}}`)
	matched := 0
	for name, e := range events {
		for _, src := range patterns {
			p, err := filter.ParsePattern([]byte(src))
			require.NoError(t, err, src)
			want := p.Match(e)
			got, err := p.MatchRaw(filter.View(e))
			require.NoError(t, err, "%s: %s", name, src)
			assert.Equal(t, want, got, "%s: %s on %s", name, src, filter.View(e))
			require.NoError(t, patternRefusal(p, e))
			if want {
				matched++
			}
		}
	}
	assert.Greater(t, matched, len(fields), "the patterns match something")
}

// The offset a refusal quotes counts in the view the filter reads, where Data stands as it came,
// blanks included: it points at the repeated key.
func TestPatternRefusalOffsetsPointIntoTheView(t *testing.T) {
	e := &fanbridge.Event{Type: "t", Data: json.RawMessage("{\n    \"a\": 1,\n    \"a\": 2\n}"), Metadata: map[string]string{fanbridge.MetaFormat: "notification"}}
	p, err := filter.ParsePattern([]byte(`{"detail":{"eventBody":{"a":[2]}}}`))
	require.NoError(t, err)
	refusal := patternRefusal(p, e)
	require.ErrorIs(t, refusal, filter.ErrInvalidEvent)
	view := string(filter.View(e))
	second := strings.LastIndex(view, `"a"`)
	assert.Contains(t, refusal.Error(), fmt.Sprintf("offset %d", second), "view: %s", view)
}

// Only a failure a sink that is down gives counts toward -max-failures: a retryable error, as
// the Retrier reports it (its *retry.Error classified as its last attempt's error), and not one
// the sink gave as its answer to the entry, permanent or sink.Refused.
func TestRedriveCountsOnlyOutages(t *testing.T) {
	down := errors.New("connection refused")
	cases := []struct {
		name string
		err  error
		want bool
	}{
		{"retryable", &retry.Error{Attempts: 3, Reason: retry.ReasonAttempts, Last: down}, true},
		{"retryable, with a wait", &retry.Error{Attempts: 1, Reason: retry.ReasonAttempts, Last: retry.After(down, time.Second)}, true},
		{"permanent", &retry.Error{Attempts: 1, Reason: retry.ReasonPermanent, Last: retry.Permanent(errors.New("no topic for event type"))}, false},
		{"refused by the sink", &retry.Error{Attempts: 3, Reason: retry.ReasonAttempts, Last: sink.Refused(errors.New("batch refused"))}, false},
		{"cut short by the stop", &retry.Error{Attempts: 1, Reason: retry.ReasonCanceled, Last: context.Canceled}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, looksDown(tc.err))
		})
	}
}

// pattern test's usage and the example configuration name every envelope format an intake
// decodes.
func TestDocsNameEveryFormat(t *testing.T) {
	d, err := eventbridge.NewDecoder()
	require.NoError(t, err)
	example, err := os.ReadFile("fanbridge.example.yaml")
	require.NoError(t, err)
	var line string
	for l := range strings.Lines(string(example)) {
		if strings.HasPrefix(strings.TrimSpace(l), "# formats: [") {
			line = l
		}
	}
	require.NotEmpty(t, line, "the example shows the formats key")
	usage := strings.Join(strings.Fields(patternUsage), " ")
	var names []string
	for _, f := range d.Formats() {
		names = append(names, string(f))
		assert.Regexp(t, `[ (]`+regexp.QuoteMeta(string(f))+`[,)]`, usage, "pattern test's usage")
	}
	assert.Contains(t, line, "["+strings.Join(names, ", ")+"]", "the example's formats")
}
