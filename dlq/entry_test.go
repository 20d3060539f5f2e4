package dlq_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/dlq"
	"github.com/fanbridge/fanbridge/retry"
)

func TestTruncateError(t *testing.T) {
	cases := []struct {
		name string
		in   string
		want string
	}{
		{"short", "boom", "boom"},
		{"exact", strings.Repeat("a", dlq.MaxErrorText), strings.Repeat("a", dlq.MaxErrorText)},
		{"long-ascii", strings.Repeat("a", dlq.MaxErrorText+1), strings.Repeat("a", dlq.MaxErrorText)},
		// A 3-byte rune straddles the cap: it is dropped whole.
		{"rune-across-cap", strings.Repeat("a", dlq.MaxErrorText-1) + "€tail", strings.Repeat("a", dlq.MaxErrorText-1)},
		{"rune-ends-at-cap", strings.Repeat("a", dlq.MaxErrorText-3) + "€tail", strings.Repeat("a", dlq.MaxErrorText-3) + "€"},
		{"invalid-utf8", "a\xff\xfeb", "a\uFFFDb"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := dlq.TruncateError(tc.in)
			assert.Equal(t, tc.want, got)
			assert.LessOrEqual(t, len(got), dlq.MaxErrorText)
			assert.True(t, utf8.ValidString(got))
		})
	}
}

func TestConditionFromReason(t *testing.T) {
	cases := map[retry.Reason]dlq.Condition{
		retry.ReasonAttempts:  dlq.ConditionAttempts,
		retry.ReasonAge:       dlq.ConditionAge,
		retry.ReasonPermanent: dlq.ConditionPermanent,
		retry.ReasonCanceled:  dlq.ConditionAge,
		"something-else":      "",
	}
	for r, want := range cases {
		assert.Equal(t, want, dlq.ConditionFromReason(r), "reason %q", r)
	}
}

// giveUp runs a real Retrier against op and returns the *retry.Error it ends with.
func giveUp(t *testing.T, p retry.Policy, ctx context.Context, op func(context.Context) error) error {
	t.Helper()
	p.InitialInterval, p.Jitter = time.Nanosecond, retry.NoJitter
	r, err := retry.New(p)
	require.NoError(t, err)
	err = r.Do(ctx, op)
	var re *retry.Error
	require.ErrorAs(t, err, &re)
	return err
}

func TestNewEntry(t *testing.T) {
	ev := &fanbridge.Event{
		ID:       "e-1",
		Raw:      []byte(`{"id":"e-1"}`),
		Metadata: map[string]string{fanbridge.MetaTraceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
	}
	first, last := time.Unix(100, 0), time.Unix(105, 0)
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	refused := errors.New("503 from upstream")
	cases := []struct {
		name      string
		err       error
		attempts  int
		condition dlq.Condition
		class     retry.Class
		text      string
	}{
		{"attempts", giveUp(t, retry.Policy{MaxAttempts: 3}, context.Background(), func(context.Context) error { return refused }),
			3, dlq.ConditionAttempts, retry.ClassRetryable, "503 from upstream"},
		{"permanent", giveUp(t, retry.Policy{}, context.Background(), func(context.Context) error { return retry.Permanent(refused) }),
			1, dlq.ConditionPermanent, retry.ClassPermanent, "503 from upstream"},
		{"age", giveUp(t, retry.Policy{MaxAge: time.Nanosecond, MaxAttempts: -1}, context.Background(), func(context.Context) error { return refused }),
			1, dlq.ConditionAge, retry.ClassRetryable, "503 from upstream"},
		{"canceled", giveUp(t, retry.Policy{}, canceled, func(context.Context) error { return refused }),
			0, dlq.ConditionAge, retry.ClassCanceled, "context canceled"},
		{"plain", refused, 1, dlq.ConditionAttempts, retry.ClassRetryable, "503 from upstream"},
		{"plain-permanent", retry.Permanent(refused), 1, dlq.ConditionPermanent, retry.ClassPermanent, "503 from upstream"},
		{"long", errors.New(strings.Repeat("x", 3*dlq.MaxErrorText)), 1, dlq.ConditionAttempts, retry.ClassRetryable, strings.Repeat("x", dlq.MaxErrorText)},
		// Built by hand, without the last error a Retrier always sets.
		{"no-last-error", &retry.Error{Reason: retry.ReasonCanceled}, 0, dlq.ConditionAge, retry.ClassRetryable,
			(&retry.Error{Reason: retry.ReasonCanceled}).Error()},
		// A sink's error that panics when read (a nil pointer of its own type, returned as an
		// error) is described by its type.
		{"last-error-panics", &retry.Error{Attempts: 3, Reason: retry.ReasonAttempts, Last: (*sinkErr)(nil)}, 3, dlq.ConditionPermanent,
			retry.ClassPermanent, "dlq: the error (*retry.Error) panics when read"},
		{"error-panics", (*sinkErr)(nil), 1, dlq.ConditionPermanent, retry.ClassPermanent, "dlq: the error (*dlq_test.sinkErr) panics when read"},
		{"nil-retry-error", (*retry.Error)(nil), 1, dlq.ConditionPermanent, retry.ClassPermanent, "dlq: the error (*retry.Error) panics when read"},
		{"wrapped-nil-retry-error", fmt.Errorf("sink: %w", (*retry.Error)(nil)), 1, dlq.ConditionPermanent, retry.ClassPermanent,
			"dlq: the error (*fmt.wrapError) panics when read"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := dlq.NewEntry(ev, "kafka", "orders", tc.err, first, last)
			assert.NoError(t, dlq.CheckID(e.ID))
			assert.Equal(t, "kafka", e.Sink)
			assert.Equal(t, "orders", e.Route)
			assert.Equal(t, tc.attempts, e.Attempts)
			assert.Equal(t, tc.condition, e.Condition)
			assert.Equal(t, tc.class, e.Class)
			assert.Equal(t, tc.text, e.Error)
			assert.Equal(t, first, e.FirstAttempt)
			assert.Equal(t, last, e.LastAttempt)
			assert.Equal(t, "4bf92f3577b34da6a3ce929d0e0e4736", e.TraceID)
			assert.Equal(t, ev.Raw, e.Event.Raw)
			_, err := dlq.Prepare(e)
			assert.NoError(t, err)
		})
	}
}

func TestTraceID(t *testing.T) {
	cases := []struct{ in, want string }{
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "4bf92f3577b34da6a3ce929d0e0e4736"},
		{"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future", "4bf92f3577b34da6a3ce929d0e0e4736"},
		{"", ""},
		{"00-00000000000000000000000000000000-00f067aa0ba902b7-01", ""},
		{"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", ""},
		{"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", ""},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x", ""},
		{"00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", ""},
		{"00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01", ""},
		// What the sinks refuse to send names no trace here either (see sink.TraceContext): an
		// all-zero parent id, and a version 00 value with fields after the flags.
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", ""},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", ""},
	}
	for _, tc := range cases {
		assert.Equal(t, tc.want, dlq.TraceID(tc.in), "traceparent %q", tc.in)
	}
}

func TestNewID(t *testing.T) {
	seen := map[string]bool{}
	var list []string
	for range 2000 {
		id := dlq.NewID()
		require.Len(t, id, 26)
		require.NoError(t, dlq.CheckID(id))
		require.False(t, seen[id], "duplicate ID %s", id)
		seen[id] = true
		list = append(list, id)
	}
	// The first 10 characters are the millisecond time: IDs made later never sort earlier.
	prefixes := make([]string, len(list))
	for i, id := range list {
		prefixes[i] = id[:10]
	}
	assert.True(t, slices.IsSorted(prefixes))
}

func TestPrepare(t *testing.T) {
	meta := map[string]string{"k": "bad\xff"}
	local := time.Date(2026, 1, 1, 12, 0, 0, 5, time.FixedZone("X", 3600))
	in := dlq.Entry{Sink: "s", Error: "e\xff", Event: fanbridge.Event{Metadata: meta, Raw: []byte{0xff}}, LastAttempt: local}
	out, err := dlq.Prepare(in)
	require.NoError(t, err)
	assert.NoError(t, dlq.CheckID(out.ID))
	assert.Equal(t, "e\uFFFD", out.Error)
	assert.Equal(t, map[string]string{"k": "bad\uFFFD"}, out.Event.Metadata)
	assert.Equal(t, "bad\xff", meta["k"], "Prepare modified the caller's metadata")
	assert.Equal(t, []byte{0xff}, out.Event.Raw, "Raw must stay byte for byte")
	assert.Equal(t, time.UTC, out.LastAttempt.Location())
	assert.True(t, local.Equal(out.LastAttempt))

	_, err = dlq.Prepare(dlq.Entry{})
	assert.ErrorIs(t, err, dlq.ErrInvalidEntry)

	// Times are taken in the years 0 to 9999, the last nanosecond of 9999 included.
	last := time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)
	first := time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC)
	_, err = dlq.Prepare(dlq.Entry{Sink: "s", FirstAttempt: first, LastAttempt: last, Event: fanbridge.Event{Time: last}})
	assert.NoError(t, err)
	for _, bad := range []time.Time{last.Add(time.Nanosecond), first.Add(-time.Nanosecond)} {
		_, err = dlq.Prepare(dlq.Entry{Sink: "s", Event: fanbridge.Event{Time: bad}})
		assert.ErrorIs(t, err, dlq.ErrInvalidEntry, "event time %v", bad)
	}
}

func TestCheckID(t *testing.T) {
	for _, id := range []string{"a", "01J0000000000000000000000A", "rt-日本語", `q"uote\`, strings.Repeat("x", dlq.MaxIDLength)} {
		assert.NoError(t, dlq.CheckID(id), "%q", id)
	}
	// Spaces and control characters, C0, DEL and C1, which a terminal acts on when an ID is
	// printed; and IDs that are empty, too long or not UTF-8.
	for _, id := range []string{
		"a b", "a\tb", "a\nb", "a\u00a0b", "a\x00b", "a\x1b[2Jb", "a\x7fb", "a\u009bb", "a\u0085b",
		"", strings.Repeat("x", dlq.MaxIDLength+1), "a\xffb",
	} {
		assert.ErrorIs(t, dlq.CheckID(id), dlq.ErrInvalidEntry, "%q", id)
	}
}

func TestQueueFunc(t *testing.T) {
	var got dlq.Entry
	var q dlq.Queue = dlq.QueueFunc(func(_ context.Context, e dlq.Entry) error { got = e; return nil })
	require.NoError(t, q.Put(context.Background(), dlq.Entry{ID: "a", Sink: "s"}))
	assert.Equal(t, "a", got.ID)
}

// sinkErr is a sink's own error type whose Error reads its receiver.
type sinkErr struct{ code int }

func (e *sinkErr) Error() string { return fmt.Sprintf("code %d", e.code) }
