// Package dlqtest holds the conformance suite every dead-letter queue driver passes, and Memory,
// an in-memory queue for tests of code that uses one.
//
// A driver's test calls Run with a Harness that opens its store over fresh backing storage:
//
//	func TestConformance(t *testing.T) {
//		dlqtest.Run(t, dlqtest.Harness{
//			New: func(t *testing.T) dlqtest.Opener {
//				dir := t.TempDir()
//				return func(t *testing.T) dlqtest.Store {
//					q, err := filedlq.Open(dir)
//					require.NoError(t, err)
//					return q
//				}
//			},
//			// Drops the queue's files and lock as a killed process would: no Close, no flush.
//			Crash: func(t *testing.T, s dlqtest.Store) { abandon(s.(*filedlq.Queue)) },
//			Features: dlqtest.Features{Delete: true, Durable: true, Ordered: true},
//		})
//	}
//
// # Durability
//
// A driver that sets Features.Durable promises that an entry is kept once Put returned nil. The
// Reopen subtests close the store and open its storage again, which a driver that acknowledges
// entries it still holds in memory, and writes them out in Close, passes as well. The Crash
// subtests close nothing: they give the store up through Harness.Crash, as the death of the
// process would, and require every acknowledged entry back from the storage, intact; after a
// crash that followed a Delete, the entries it removed may come back (a redrive delivers at least
// once), those it kept must not be lost. A durable driver should therefore supply Crash; without
// it those subtests are skipped. Crash models a crash of
// the process only: what reached the operating system (the page cache, a socket to a broker) is
// not lost, so the suite cannot tell a driver that fsyncs from one that does not; that takes a
// test of the driver's own, one that cuts the power or stands in for fsync.
//
// # Refused writes
//
// Put's nil is what the dispatcher answers the sender on, so a driver must never return it for a
// write its storage refused. Harness.FailTransient and Harness.FailPermanent make the storage
// refuse writes, and the TransientRefusal and PermanentRefusal subtests require Put to fail then,
// with an error of the matching class, and to store nothing. A driver that can make its storage
// refuse writes in a test (a fault on an in-process broker, a read-only directory) should supply
// them: without them those subtests are skipped, and a Put that reports success for a refused
// write passes the suite.
package dlqtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/dlq"
	"github.com/fanbridge/fanbridge/retry"
	"github.com/fanbridge/fanbridge/sink"
)

// Store is a driver under test: a queue that can be read back.
type Store interface {
	dlq.Queue
	dlq.Reader
}

// Opener opens a store over one backing storage. Calling it again after the previous store was
// closed, or given up with Harness.Crash, reopens the same storage.
type Opener func(t *testing.T) Store

// Features switches the subtests that only some drivers can pass.
type Features struct {
	// Delete: Reader.Delete removes entries. Without it, Delete must fail with dlq.ErrUnsupported.
	Delete bool
	// Durable: entries survive closing the store and opening it again and, once Put returned
	// nil, a crash of the process too (checked when Harness.Crash is set).
	Durable bool
	// Ordered: entries put one after another are listed in that order, by a store reopened over
	// the same storage too when Durable.
	Ordered bool
}

// Harness tells Run how to test one driver.
type Harness struct {
	// New prepares empty backing storage for one subtest and returns its Opener. The suite
	// closes every store it opens (when it implements io.Closer), but one it gave up with
	// Crash, before reopening and at the end of the subtest; New registers the cleanup of the
	// storage itself with t.Cleanup.
	New func(t *testing.T) Opener
	// Crash gives up s, a store the Opener returned, the way a killed process gives up its
	// store, so that the Crash subtests can check that what Put acknowledged is in the storage
	// and not merely in the store (see Features.Durable). It must:
	//
	//   - release what the operating system takes back from a dead process (file descriptors
	//     and the locks they hold, network connections), so that the Opener can open the
	//     storage again;
	//   - stop the store's background work, or cut it off from the storage, so that nothing the
	//     store still holds reaches the storage afterwards: a store whose Put left an entry in a
	//     buffer that a goroutine or a client writes out later must lose that entry here;
	//   - flush, sync, send and write nothing that Close would, and never call Close.
	//
	// What already reached the operating system or the storage (the kernel's page cache, a
	// request on its way to a broker) stays, as it would after a kill. The suite never uses s
	// again and does not close it; Crash may register the release of what is left (goroutines
	// blocked on a dead connection, a client) with t.Cleanup, since that runs after the checks.
	// When Crash is nil the Crash subtests are skipped.
	Crash func(t *testing.T, s Store)
	// FailTransient makes the storage behind s refuse every write for a reason a retry may cure
	// (a broker short of in-sync replicas, a full disk, a lost connection), until the suite calls
	// the restore function it returns; restore lifts the refusal and then leaves the storage as
	// it was. While it lasts, Put must return an error that retry.Classify calls retryable (not
	// permanent, so that the dispatcher keeps the event, and not canceled: the context has not
	// ended) and store nothing; once restored, Put must work again. A driver that answers nil for
	// a write its storage refused tells the sender that an event is kept when it is not. When
	// FailTransient is nil the TransientRefusal subtest is skipped.
	FailTransient func(t *testing.T, s Store) (restore func())
	// FailPermanent is FailTransient for a refusal no retry cures (a denied authorization, a
	// deleted topic, a read-only file system): Put must return an error retry.IsPermanent calls
	// permanent, and store nothing. When FailPermanent is nil the PermanentRefusal subtest is
	// skipped.
	FailPermanent func(t *testing.T, s Store) (restore func())
	// Features says which optional behaviour the driver has.
	Features Features
}

// timeout bounds every subtest, so that a driver that hangs fails instead of stalling the run.
const timeout = 60 * time.Second

// Run runs the conformance suite against the driver h opens. Each subtest gets fresh storage.
func Run(t *testing.T, h Harness) {
	require.NotNil(t, h.New, "Harness.New")
	s := &suite{h: h}
	tests := []struct {
		name string
		need func(Features) bool
		fn   func(t *testing.T, ctx context.Context, st *stores)
	}{
		{"RoundTrip", nil, s.testRoundTrip},
		{"AssignsIDs", nil, s.testAssignsIDs},
		{"GetMissing", nil, s.testGetMissing},
		{"InvalidEntry", nil, s.testInvalidEntry},
		{"ConcurrentPuts", nil, s.testConcurrentPuts},
		{"CanceledContext", nil, s.testCanceledContext},
		{"ListStopsOnError", nil, s.testListStopsOnError},
		{"PutAfterClose", nil, s.testPutAfterClose},
		{"TransientRefusal", nil, s.testTransientRefusal},
		{"PermanentRefusal", nil, s.testPermanentRefusal},
		{"Order", func(f Features) bool { return f.Ordered }, s.testOrder},
		{"Reopen", func(f Features) bool { return f.Durable }, s.testReopen},
		{"ReopenOrder", func(f Features) bool { return f.Durable && f.Ordered }, s.testReopenOrder},
		{"Crash", func(f Features) bool { return f.Durable }, s.testCrash},
		{"CrashAfterDelete", func(f Features) bool { return f.Durable && f.Delete }, s.testCrashAfterDelete},
		{"Many", nil, s.testMany},
		{"Delete", nil, s.testDelete},
		{"SameID", nil, s.testSameID},
		{"DeleteDuringList", func(f Features) bool { return f.Delete }, s.testDeleteDuringList},
		{"Redrive", nil, s.testRedrive},
		{"RedriveConcurrent", func(f Features) bool { return f.Delete }, s.testRedriveConcurrent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.need != nil && !tc.need(h.Features) {
				t.Skipf("the driver does not have this feature")
			}
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			st := &stores{open: h.New(t)}
			t.Cleanup(func() { st.close(t) })
			tc.fn(t, ctx, st)
		})
	}
}

type suite struct{ h Harness }

// stores opens and closes the stores of one subtest.
type stores struct {
	open    Opener
	current Store
}

func (s *stores) get(t *testing.T) Store {
	t.Helper()
	if s.current == nil {
		s.current = s.open(t)
		require.NotNil(t, s.current, "Opener returned nil")
	}
	return s.current
}

func (s *stores) close(t *testing.T) {
	t.Helper()
	if c, ok := s.current.(io.Closer); ok {
		assert.NoError(t, c.Close(), "closing the store")
	}
	s.current = nil
}

// crash gives up the current store through the harness's Crash hook, without closing it.
func (s *stores) crash(t *testing.T, h Harness) {
	t.Helper()
	require.NotNil(t, s.current, "no store open to crash")
	q := s.current
	s.current = nil // a crashed store is never closed, by the suite or its cleanup
	h.Crash(t, q)
}

func (s *stores) reopen(t *testing.T) Store {
	t.Helper()
	s.close(t)
	return s.get(t)
}

// base is a complete entry whose times carry nanoseconds and a non-UTC zone.
func base(id, sinkName string) dlq.Entry {
	zone := time.FixedZone("UTC+2", 2*60*60)
	return dlq.Entry{
		ID:           id,
		Event:        SampleEvents()[0],
		Sink:         sinkName,
		Route:        "route-" + sinkName,
		Class:        retry.ClassRetryable,
		Error:        "kafka: NOT_LEADER_FOR_PARTITION",
		Attempts:     5,
		FirstAttempt: time.Date(2026, 3, 1, 10, 0, 0, 123456789, zone),
		LastAttempt:  time.Date(2026, 3, 1, 10, 0, 3, 987654321, zone),
		Condition:    dlq.ConditionAttempts,
		TraceID:      "4bf92f3577b34da6a3ce929d0e0e4736",
	}
}

func roundTripCases() []struct {
	name string
	e    dlq.Entry
} {
	samples := SampleEvents()
	compact := []byte(`{"version":"0","id":"e-1","detail-type":"v2.users.{id}.presence","detail":{"eventBody":{"a":[1,2.5,"x\"y"]}}}`)
	html := []byte(`{"note":"<b>a & b</b>","sep":"` + "\u2028" + `"}`)
	binary := []byte{0x00, 0xff, '\n', 0xfe, '"', '\\', 0x80, 0x7f, '\r'}
	withNewline := append(append([]byte(nil), compact...), '\n')

	long := strings.Repeat("é", dlq.MaxErrorText) // two bytes each: the cap falls inside a rune
	c := []struct {
		name string
		e    dlq.Entry
	}{}
	add := func(name string, f func(e *dlq.Entry)) {
		e := base("rt-"+name, "kafka-orders")
		f(&e)
		c = append(c, struct {
			name string
			e    dlq.Entry
		}{name, e})
	}
	add("genesys-audit", func(e *dlq.Entry) {
		e.Event = samples[0]
		e.Event.Metadata = map[string]string{fanbridge.MetaTraceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "k": "v"}
	})
	add("genesys-conversation", func(e *dlq.Entry) { e.Event = samples[len(samples)-1] })
	add("compact-raw", func(e *dlq.Entry) {
		e.Event.Raw = compact
		e.Event.Data = compact[bytes.Index(compact, []byte(`{"a"`)) : len(compact)-2]
	})
	add("html-and-separators", func(e *dlq.Entry) { e.Event.Raw, e.Event.Data = html, html })
	add("binary-raw", func(e *dlq.Entry) { e.Event.Raw, e.Event.Data = binary, []byte("not json") })
	add("trailing-newline", func(e *dlq.Entry) { e.Event.Raw = withNewline })
	add("minimal", func(e *dlq.Entry) {
		*e = dlq.Entry{ID: "rt-minimal", Sink: "grpc-crm"}
	})
	add("circuit-open", func(e *dlq.Entry) {
		e.Condition, e.Attempts, e.Class, e.Error = dlq.ConditionCircuitOpen, 0, "", ""
		e.FirstAttempt, e.LastAttempt = time.Time{}, time.Time{}
	})
	add("permanent", func(e *dlq.Entry) {
		e.Condition, e.Class, e.Attempts = dlq.ConditionPermanent, retry.ClassPermanent, 1
	})
	add("long-error", func(e *dlq.Entry) { e.Error = long })
	add("unicode-and-invalid-text", func(e *dlq.Entry) {
		e.Error = "bad \xff byte, \"quoted\"\n\ttab, 日本語, \x00"
		e.Route = "route ünïcödé"
		e.Event.Metadata = map[string]string{"bad\xfe": "v\xff", "emoji": "📞", "empty": ""}
	})
	add("empty-metadata", func(e *dlq.Entry) { e.Event.Metadata = map[string]string{} })
	// Characters a terminal acts on (DEL, C1, bidirectional overrides) and invisible ones it
	// shows (no-break space, joiner, soft hyphen), in JSON Raw and Data and in text.
	add("terminal-controls", func(e *dlq.Entry) {
		raw := []byte("{\"name\":\"Ann\u00a0Lee\",\"emoji\":\"\U0001F468\u200d\U0001F469\",\"x\":\"a\x7fb\u009b\u202e\u2066\u00ad\"}")
		e.Event.Raw, e.Event.Data = raw, raw
		e.Error = "sink said \x7f\u009b[2J\u202egnp.exe\u00a0"
		e.Event.Type = "type\u2067\u200d"
	})
	// The largest envelope an intake takes, whose body is a part of it as a decoder leaves it: a
	// store that caps what it keeps loses the end of it.
	add("largest-raw", func(e *dlq.Entry) {
		raw := largeEnvelope(largestRaw)
		e.Event.Raw = raw
		e.Event.Data = raw[bytes.Index(raw, []byte(`{"items"`)) : len(raw)-2]
	})
	// IDs are compared byte for byte: the ones below differ only in case, and hold what a store
	// could escape, fold or drop (quotes, backslashes, text outside ASCII, bidirectional marks).
	// Each has an event of its own, so that Get answering with a namesake shows.
	for _, o := range oddIDs {
		add("id-"+o.name, func(e *dlq.Entry) {
			e.ID = o.id
			e.Event.ID = "event-of-" + o.id
		})
	}
	return c
}

// largestRaw is the size of the largest Event.Raw the suite puts: the largest body an intake
// takes by default (eventbridge.DefaultMaxBodySize: the largest event EventBridge accepts, 256
// KiB, with the envelope an API destination wraps it in).
const largestRaw = 260 << 10

// largeEnvelope returns a compact EventBridge envelope of n bytes whose detail.eventBody holds
// items that all differ, in ASCII and in other scripts, so that a byte dropped, doubled or
// moved anywhere in it shows.
func largeEnvelope(n int) []byte {
	head := []byte(`{"version":"0","id":"large-1","detail-type":"v2.detail.events.conversation.customer.end","source":"aws.partner/genesys.com/cloud/org/large","detail":{"eventBody":{"items":[`)
	const padding, tail = `{"pad":""}`, `]}}}`
	b := head
	for i := 0; ; i++ {
		item := fmt.Appendf(nil, `{"n":%d,"text":"note %x: ünïcödé 日本語 \"q\" \\ %d"},`, i, i*7919, i)
		if len(b)+len(item)+len(padding)+len(tail) > n {
			break
		}
		b = append(b, item...)
	}
	// A last item of padding makes the envelope exactly n bytes long.
	b = append(b, padding[:len(padding)-2]...)
	b = append(b, strings.Repeat("p", n-len(b)-2-len(tail))...)
	b = append(b, padding[len(padding)-2:]...)
	return append(b, tail...)
}

// oddIDs are IDs a store must keep and compare exactly, each naming an entry of its own: some
// differ only in case or in the Unicode normalisation of the same letter.
var oddIDs = []struct{ name, id string }{
	{"mixed-case", "rt-Case-id"},
	{"lower-case", "rt-case-id"},
	{"upper-case", "RT-CASE-ID"},
	{"quotes", `rt-"quoted"`},
	{"backslash", `rt-back\slash`},
	{"trailing-backslash", `rt-trailing\`},
	{"json", `rt-{"id":"x"}`},
	{"non-ascii", "rt-日本語-ünïcödé"},
	{"bidi", "rt-\u202eevil\u2066x\u2069"},
	{"decomposed", "rt-e\u0301"},
	{"precomposed", "rt-\u00e9"},
}

func (s *suite) testRoundTrip(t *testing.T, ctx context.Context, st *stores) {
	q := st.get(t)
	cases := roundTripCases()
	for _, tc := range cases {
		require.NoError(t, q.Put(ctx, tc.e), "Put %s", tc.name)
	}
	got := listAll(t, ctx, q)
	require.Len(t, ids(got), len(cases))
	byID := map[string]dlq.Entry{}
	for _, e := range got {
		byID[e.ID] = e
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			want := expected(t, tc.e)
			g, ok := byID[tc.e.ID]
			require.True(t, ok, "entry %s not listed", tc.e.ID)
			AssertEntry(t, want, g)
			g2, err := q.Get(ctx, tc.e.ID)
			require.NoError(t, err)
			AssertEntry(t, want, g2)
		})
	}
	t.Run("long-error-capped", func(t *testing.T) {
		e := byID["rt-long-error"]
		assert.LessOrEqual(t, len(e.Error), dlq.MaxErrorText)
		assert.Greater(t, len(e.Error), dlq.MaxErrorText-4)
		assert.True(t, utf8.ValidString(e.Error))
	})
}

// expected is what a store must give back for e: e as dlq.Prepare normalises it.
func expected(t *testing.T, e dlq.Entry) dlq.Entry {
	t.Helper()
	p, err := dlq.Prepare(e)
	require.NoError(t, err)
	return p
}

// AssertEntry checks that got is want as a store gives it back: every field equal, times equal as
// instants to the nanosecond, Raw and Data byte for byte (a nil and an empty slice count as the
// same), and nil and empty Metadata alike.
func AssertEntry(t *testing.T, want, got dlq.Entry) {
	t.Helper()
	assert.Equal(t, want.ID, got.ID, "ID")
	assert.Equal(t, want.Sink, got.Sink, "Sink")
	assert.Equal(t, want.Route, got.Route, "Route")
	assert.Equal(t, want.Class, got.Class, "Class")
	assert.Equal(t, want.Error, got.Error, "Error")
	assert.Equal(t, want.Attempts, got.Attempts, "Attempts")
	assertTime(t, want.FirstAttempt, got.FirstAttempt, "FirstAttempt")
	assertTime(t, want.LastAttempt, got.LastAttempt, "LastAttempt")
	assert.Equal(t, want.Condition, got.Condition, "Condition")
	assert.Equal(t, want.TraceID, got.TraceID, "TraceID")
	w, g := want.Event, got.Event
	assert.Equal(t, w.ID, g.ID, "Event.ID")
	assert.Equal(t, w.Type, g.Type, "Event.Type")
	assert.Equal(t, w.Topic, g.Topic, "Event.Topic")
	assert.Equal(t, w.Source, g.Source, "Event.Source")
	assertTime(t, w.Time, g.Time, "Event.Time")
	if len(w.Metadata) == 0 {
		assert.Empty(t, g.Metadata, "Event.Metadata")
	} else {
		assert.Equal(t, w.Metadata, g.Metadata, "Event.Metadata")
	}
	assertBytes(t, w.Data, g.Data, "Event.Data")
	assertBytes(t, w.Raw, g.Raw, "Event.Raw")
}

// assertBytes checks that got is want byte for byte. A difference in a long value is shown as the
// lengths and the bytes around the first difference, rather than as the whole of both.
func assertBytes(t *testing.T, want, got []byte, name string) {
	t.Helper()
	if bytes.Equal(want, got) {
		return
	}
	const short = 512
	if len(want) <= short && len(got) <= short {
		assert.Fail(t, name+" differs", "want %q\ngot  %q", want, got)
		return
	}
	at := 0
	for at < len(want) && at < len(got) && want[at] == got[at] {
		at++
	}
	from := max(at-32, 0)
	assert.Fail(t, name+" differs", "want %d bytes, got %d; first difference at byte %d:\nwant …%q…\ngot  …%q…",
		len(want), len(got), at, want[from:min(at+32, len(want))], got[from:min(at+32, len(got))])
}

func assertTime(t *testing.T, want, got time.Time, name string) {
	t.Helper()
	if want.IsZero() {
		assert.True(t, got.IsZero(), "%s: want zero, got %v", name, got)
		return
	}
	assert.True(t, want.Equal(got), "%s: want %v, got %v", name, want, got)
	assert.Equal(t, want.Nanosecond(), got.Nanosecond(), "%s: nanoseconds", name)
}

func listAll(t *testing.T, ctx context.Context, r dlq.Reader) []dlq.Entry {
	t.Helper()
	var out []dlq.Entry
	require.NoError(t, r.List(ctx, func(e dlq.Entry) error {
		out = append(out, e)
		return nil
	}))
	return out
}

func ids(entries []dlq.Entry) []string {
	out := make([]string, len(entries))
	for i, e := range entries {
		out[i] = e.ID
	}
	return out
}

func (s *suite) testAssignsIDs(t *testing.T, ctx context.Context, st *stores) {
	q := st.get(t)
	for range 3 {
		require.NoError(t, q.Put(ctx, base("", "s")))
	}
	got := listAll(t, ctx, q)
	require.Len(t, ids(got), 3)
	seen := map[string]bool{}
	for _, e := range got {
		require.NoError(t, dlq.CheckID(e.ID))
		assert.False(t, seen[e.ID], "ID %s given twice", e.ID)
		seen[e.ID] = true
		g, err := q.Get(ctx, e.ID)
		require.NoError(t, err)
		assert.Equal(t, e.ID, g.ID)
	}
}

func (s *suite) testGetMissing(t *testing.T, ctx context.Context, st *stores) {
	q := st.get(t)
	require.NoError(t, q.Put(ctx, base("present", "s")))
	_, err := q.Get(ctx, "absent")
	assert.ErrorIs(t, err, dlq.ErrNotFound)
}

func (s *suite) testInvalidEntry(t *testing.T, ctx context.Context, st *stores) {
	q := st.get(t)
	cases := []struct {
		name string
		f    func(e *dlq.Entry)
	}{
		{"no-sink", func(e *dlq.Entry) { e.Sink = "" }},
		{"negative-attempts", func(e *dlq.Entry) { e.Attempts = -1 }},
		{"unknown-condition", func(e *dlq.Entry) { e.Condition = "bored" }},
		{"unknown-class", func(e *dlq.Entry) { e.Class = "sleepy" }},
		{"id-with-space", func(e *dlq.Entry) { e.ID = "a b" }},
		{"id-too-long", func(e *dlq.Entry) { e.ID = strings.Repeat("x", dlq.MaxIDLength+1) }},
		{"time-out-of-range", func(e *dlq.Entry) { e.LastAttempt = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := base("invalid-"+tc.name, "s")
			tc.f(&e)
			assert.ErrorIs(t, q.Put(ctx, e), dlq.ErrInvalidEntry)
		})
	}
	assert.Empty(t, ids(listAll(t, ctx, q)), "an invalid entry was stored")
}

func (s *suite) testConcurrentPuts(t *testing.T, ctx context.Context, st *stores) {
	q := st.get(t)
	const goroutines, each = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, goroutines*each)
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				errs <- q.Put(ctx, base(fmt.Sprintf("c-%d-%d", g, i), "s"))
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	count := map[string]int{}
	for _, e := range listAll(t, ctx, q) {
		count[e.ID]++
	}
	require.Len(t, count, goroutines*each)
	for id, n := range count {
		assert.Equal(t, 1, n, "entry %s listed %d times", id, n)
	}
}

func (s *suite) testCanceledContext(t *testing.T, ctx context.Context, st *stores) {
	q := st.get(t)
	require.NoError(t, q.Put(ctx, base("kept", "s")))
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	assert.ErrorIs(t, q.Put(canceled, base("not-stored", "s")), context.Canceled)
	assert.ErrorIs(t, q.List(canceled, func(dlq.Entry) error { return nil }), context.Canceled)
	_, err := q.Get(canceled, "kept")
	assert.ErrorIs(t, err, context.Canceled)
	assert.ErrorIs(t, q.Delete(canceled, "kept"), context.Canceled)
	assert.Equal(t, []string{"kept"}, ids(listAll(t, ctx, q)), "a Put with a canceled context stored its entry, or a Delete removed one")
}

// testListStopsOnError: List stops at the first error fn returns and returns that error
// unchanged (dlq.Reader), not wrapped: a caller may compare it with the value it returned.
func (s *suite) testListStopsOnError(t *testing.T, ctx context.Context, st *stores) {
	q := st.get(t)
	for i := range 3 {
		require.NoError(t, q.Put(ctx, base(fmt.Sprintf("stop-%d", i), "s")))
	}
	stop := errors.New("enough")
	calls := 0
	err := q.List(ctx, func(dlq.Entry) error {
		calls++
		if calls == 2 {
			return stop
		}
		return nil
	})
	assert.Same(t, stop, err, "List did not return fn's error unchanged: %v", err)
	assert.Equal(t, 2, calls)
}

func (s *suite) testOrder(t *testing.T, ctx context.Context, st *stores) {
	q := st.get(t)
	var want []string
	for i := range 20 {
		id := fmt.Sprintf("order-%02d", 19-i) // IDs sort opposite to the put order
		want = append(want, id)
		require.NoError(t, q.Put(ctx, base(id, "s")))
	}
	assert.Equal(t, want, ids(listAll(t, ctx, q)))
}

func (s *suite) testReopen(t *testing.T, ctx context.Context, st *stores) {
	q := st.get(t)
	cases := roundTripCases()
	for _, tc := range cases {
		require.NoError(t, q.Put(ctx, tc.e))
	}
	q = st.reopen(t)
	got := listAll(t, ctx, q)
	require.Len(t, ids(got), len(cases))
	byID := map[string]dlq.Entry{}
	for _, e := range got {
		byID[e.ID] = e
	}
	for _, tc := range cases {
		AssertEntry(t, expected(t, tc.e), byID[tc.e.ID])
		// Get too, which a driver may answer from an index of its own: rebuilt on reopening.
		got, err := q.Get(ctx, tc.e.ID)
		require.NoError(t, err, "Get %s after reopening", tc.e.ID)
		AssertEntry(t, expected(t, tc.e), got)
	}
	require.NoError(t, q.Put(ctx, base("after-reopen", "s")))
	q = st.reopen(t)
	assert.Len(t, ids(listAll(t, ctx, q)), len(cases)+1)
}

func (s *suite) testReopenOrder(t *testing.T, ctx context.Context, st *stores) {
	q := st.get(t)
	var want []string
	put := func(n int) {
		for range n {
			id := fmt.Sprintf("ro-%02d", 99-len(want)) // IDs sort opposite to the put order
			want = append(want, id)
			require.NoError(t, q.Put(ctx, base(id, "s")))
		}
	}
	put(20)
	q = st.reopen(t)
	assert.Equal(t, want, ids(listAll(t, ctx, q)), "order after reopening")
	put(5)
	assert.Equal(t, want, ids(listAll(t, ctx, q)), "order of entries put before and after reopening")
	q = st.reopen(t)
	assert.Equal(t, want, ids(listAll(t, ctx, q)), "order after reopening twice")
}

// needCrash skips a Crash subtest when the harness cannot crash a store.
func (s *suite) needCrash(t *testing.T) {
	t.Helper()
	if s.h.Crash == nil {
		t.Skip("Harness.Crash is not set: durability is checked only by closing and reopening, " +
			"which a driver that writes acknowledged entries out in Close passes too")
	}
}

// putRuns puts the entries of each run one after another, the runs at once, and records each
// in want as the store must give it back. Running them at once keeps the Crash subtests quick
// with drivers whose every Put waits out a latency, and catches a driver that makes Puts durable
// together (group commit) acknowledging one before that.
func putRuns(t *testing.T, ctx context.Context, q Store, want map[string]dlq.Entry, runs [][]dlq.Entry) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, len(runs))
	for _, run := range runs {
		wg.Go(func() {
			for _, e := range run {
				if err := q.Put(ctx, e); err != nil {
					errs <- fmt.Errorf("Put %s: %w", e.ID, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	for _, run := range runs {
		for _, e := range run {
			want[e.ID] = expected(t, e)
		}
	}
}

// runIDs returns the IDs of the entries of each run.
func runIDs(runs [][]dlq.Entry) [][]string {
	out := make([][]string, len(runs))
	for i, run := range runs {
		for _, e := range run {
			out[i] = append(out[i], e.ID)
		}
	}
	return out
}

// crashWriters and crashEach size the runs of testCrash.
const crashWriters, crashEach = 12, 4

// testCrash: Put returning nil makes an entry durable, not Close. The store is given up as a
// killed process gives it up, and every entry acknowledged before is read back from the storage,
// intact; a driver that kept acknowledged entries in memory until Close passes Reopen, not this.
func (s *suite) testCrash(t *testing.T, ctx context.Context, st *stores) {
	s.needCrash(t)
	q := st.get(t)
	// Every shape of entry RoundTrip checks, each on its own, and runs of plain ones.
	var runs [][]dlq.Entry
	for _, tc := range roundTripCases() {
		runs = append(runs, []dlq.Entry{tc.e})
	}
	for w := range crashWriters {
		var run []dlq.Entry
		for i := range crashEach {
			run = append(run, base(fmt.Sprintf("crash-%02d-%d", w, i), "s"))
		}
		runs = append(runs, run)
	}
	want := map[string]dlq.Entry{}
	putRuns(t, ctx, q, want, runs)
	order := runIDs(runs)

	st.crash(t, s.h)
	q = st.get(t)
	s.checkSurvivors(t, ctx, q, "after a crash", want, nil, order)
	// Get too, which a driver may answer from an index of its own: one it writes out in Close is
	// stale after a crash, and lacks the newest entries.
	for _, id := range []string{order[0][0], order[len(order)-1][crashEach-1]} {
		got, err := q.Get(ctx, id)
		require.NoError(t, err, "Get %s after a crash", id)
		AssertEntry(t, want[id], got)
	}

	// The storage opened after a crash takes entries as before, and keeps them through another.
	after := []dlq.Entry{base("after-crash", "s")}
	putRuns(t, ctx, q, want, [][]dlq.Entry{after})
	order[len(order)-1] = append(order[len(order)-1], after[0].ID)
	st.crash(t, s.h)
	q = st.get(t)
	s.checkSurvivors(t, ctx, q, "after a second crash", want, nil, order)
	got, err := q.Get(ctx, after[0].ID)
	require.NoError(t, err, "Get %s after a second crash", after[0].ID)
	AssertEntry(t, want[after[0].ID], got)
}

// testCrashAfterDelete: a crash after a Delete keeps every entry the Delete left and every entry
// put after it. An entry the Delete removed may come back: package dlq promises at-least-once
// redrive (removal follows delivery, and sinks deduplicate on Event.ID), so a removal lost in a
// crash costs a second delivery, never an event. Deleting it again then removes it.
func (s *suite) testCrashAfterDelete(t *testing.T, ctx context.Context, st *stores) {
	s.needCrash(t)
	q := st.get(t)
	const nRuns, each = 4, 4
	runs := make([][]dlq.Entry, nRuns)
	for r := range runs {
		for i := range each {
			runs[r] = append(runs[r], base(fmt.Sprintf("cad-%d-%d", r, i), "s"))
		}
	}
	want := map[string]dlq.Entry{}
	putRuns(t, ctx, q, want, runs)
	// The first and the last of every run: the newest entry is among them, so in a driver that
	// keeps entries in files or segments the removals reach the oldest one and the one being
	// written to.
	removed := map[string]bool{}
	var del []string
	for r := range runs {
		for _, i := range []int{0, each - 1} {
			id := runs[r][i].ID
			del = append(del, id)
			delete(want, id)
			removed[id] = true
		}
	}
	require.NoError(t, q.Delete(ctx, del...))
	// Entries put after the Delete go wherever it left the driver writing.
	later := [][]dlq.Entry{
		{base("cad-later-0-0", "s"), base("cad-later-0-1", "s")},
		{base("cad-later-1-0", "s"), base("cad-later-1-1", "s")},
	}
	putRuns(t, ctx, q, want, later)
	order := runIDs(append(runs, later...))

	st.crash(t, s.h)
	q = st.get(t)
	s.checkSurvivors(t, ctx, q, "after a crash that followed a Delete", want, removed, order)
	got, err := q.Get(ctx, "cad-later-1-1")
	require.NoError(t, err, "Get of an entry put after the Delete, after a crash")
	AssertEntry(t, want["cad-later-1-1"], got)

	require.NoError(t, q.Delete(ctx, del...), "deleting again after a crash")
	s.checkSurvivors(t, ctx, q, "after deleting again", want, nil, order)
	q = st.reopen(t)
	s.checkSurvivors(t, ctx, q, "after deleting again and reopening", want, nil, order)
}

// checkSurvivors lists q and requires every entry of want in it once and intact; an ID in
// mayReturn may be listed too (a removal the crash undid), any other may not. Each run holds IDs
// put one after another, which an Ordered driver lists in that order.
func (s *suite) checkSurvivors(t *testing.T, ctx context.Context, q Store, what string, want map[string]dlq.Entry, mayReturn map[string]bool, runs [][]string) {
	t.Helper()
	at := map[string]int{}
	for n, e := range listAll(t, ctx, q) {
		_, dup := at[e.ID]
		require.False(t, dup, "%s: entry %s listed twice", what, e.ID)
		at[e.ID] = n
		w, ok := want[e.ID]
		if !ok {
			assert.True(t, mayReturn[e.ID], "%s: entry %s listed, which was not put or was deleted", what, e.ID)
			continue
		}
		AssertEntry(t, w, e)
	}
	var lost []string
	for id := range want {
		if _, ok := at[id]; !ok {
			lost = append(lost, id)
		}
	}
	slices.Sort(lost)
	require.Empty(t, lost, "%s: %d of %d entries whose Put returned nil are gone", what, len(lost), len(want))
	if !s.h.Features.Ordered {
		return
	}
	for _, run := range runs {
		last := -1
		for _, id := range run {
			n, ok := at[id]
			if !ok {
				continue
			}
			assert.Greater(t, n, last, "%s: entry %s listed before one put earlier", what, id)
			last = n
		}
	}
}

// manyWriters and manyEach make testMany put far more entries than a page, a batch or a segment of
// any driver holds, from writers running at once so that it stays quick.
const manyWriters, manyEach = 16, 100

func (s *suite) testMany(t *testing.T, ctx context.Context, st *stores) {
	q := st.get(t)
	id := func(w, i int) string { return fmt.Sprintf("many-%02d-%03d", w, i) }
	var wg sync.WaitGroup
	errs := make(chan error, manyWriters)
	// Small events keep the reads quick; a driver's paging and segmenting count entries and bytes
	// the same way whatever their content.
	entry := func(w, i int) dlq.Entry {
		e := base(id(w, i), fmt.Sprintf("s%d", i%3))
		raw := fmt.Appendf(nil, `{"id":%q,"detail":{"writer":%d,"n":%d}}`, id(w, i)+"-event", w, i)
		e.Event = fanbridge.Event{ID: id(w, i) + "-event", Type: "many", Raw: raw, Data: raw[bytes.IndexByte(raw[1:], '{')+1 : len(raw)-1]}
		return e
	}
	for w := range manyWriters {
		wg.Go(func() {
			for i := range manyEach {
				if err := q.Put(ctx, entry(w, i)); err != nil {
					errs <- fmt.Errorf("Put %s: %w", id(w, i), err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}

	// check lists the store and requires every entry still in it exactly once; each writer put its
	// entries one after another, so an Ordered driver lists them in that order.
	check := func(q Store, what string, gone func(w, i int) bool) {
		t.Helper()
		at := map[string]int{}
		for n, got := range ids(listAll(t, ctx, q)) {
			_, dup := at[got]
			require.False(t, dup, "%s: entry %s listed twice", what, got)
			at[got] = n
		}
		want := 0
		for w := range manyWriters {
			last := -1
			for i := range manyEach {
				if gone(w, i) {
					continue
				}
				want++
				n, ok := at[id(w, i)]
				require.True(t, ok, "%s: entry %s not listed", what, id(w, i))
				if s.h.Features.Ordered {
					require.Greater(t, n, last, "%s: entry %s listed before one put earlier", what, id(w, i))
				}
				last = n
			}
		}
		require.Len(t, at, want, "%s: entries listed", what)
	}
	none := func(int, int) bool { return false }
	check(q, "after the puts", none)
	for _, wi := range [][2]int{{0, 0}, {manyWriters - 1, manyEach - 1}, {manyWriters / 2, manyEach / 2}} {
		got, err := q.Get(ctx, id(wi[0], wi[1]))
		require.NoError(t, err, "Get %s", id(wi[0], wi[1]))
		AssertEntry(t, expected(t, entry(wi[0], wi[1])), got)
	}
	if s.h.Features.Durable {
		q = st.reopen(t)
		check(q, "after reopening", none)
	}
	if !s.h.Features.Delete {
		return
	}

	// Remove every other entry in one call, then redrive the rest in a few batches.
	odd := func(_, i int) bool { return i%2 == 1 }
	var remove []string
	for w := range manyWriters {
		for i := range manyEach {
			if odd(w, i) {
				remove = append(remove, id(w, i))
			}
		}
	}
	require.NoError(t, q.Delete(ctx, remove...))
	check(q, "after removing half", odd)
	if s.h.Features.Durable {
		q = st.reopen(t)
		check(q, "after removing half and reopening", odd)
	}
	sinks := map[string]sink.Sink{"s0": &recorder{}, "s1": &recorder{}, "s2": &recorder{}}
	rep, err := dlq.Redrive(ctx, q, sinks, nil, dlq.WithConcurrency(4), dlq.WithDeleteBatch(300))
	require.NoError(t, err)
	half := manyWriters * manyEach / 2
	assert.Equal(t, dlq.Report{Selected: half, Redriven: half, Removed: half}, rep)
	sent := 0
	for _, r := range sinks {
		sent += len(r.(*recorder).got())
	}
	assert.Equal(t, half, sent)
	assert.Empty(t, ids(listAll(t, ctx, q)))
}

func (s *suite) testDelete(t *testing.T, ctx context.Context, st *stores) {
	q := st.get(t)
	// A Delete matches whole IDs, byte for byte: some IDs begin with others ("del-1", "del-10"),
	// some differ only in case (a store that compares them as a case-insensitive SQL collation
	// does would remove an entry a redrive never delivered), and some hold quotes, backslashes
	// and text outside ASCII, which a store must neither drop nor unescape.
	all := []string{
		"del-0", "del-1", "del-2", "del-3", "del-10", "del-1-x", "del",
		"del-Case", "del-case", "DEL-CASE",
		`del-"1"`, `del-\1`, `del-1\`, "del-ü", "del-u\u0308", "del-\u202e1", "del-日本",
	}
	for _, id := range all {
		e := base(id, "s")
		e.Event.ID = "event-of-" + id
		require.NoError(t, q.Put(ctx, e))
	}
	removed := []string{"del-1", "del-3", "del-case", `del-\1`, "del-ü", "del-\u202e1"}
	err := q.Delete(ctx, append([]string{"no-such-entry", "DEL-2"}, removed...)...)
	if !s.h.Features.Delete {
		assert.ErrorIs(t, err, dlq.ErrUnsupported)
		assert.Len(t, ids(listAll(t, ctx, q)), len(all))
		return
	}
	require.NoError(t, err)
	var kept []string
	for _, id := range all {
		if !slices.Contains(removed, id) {
			kept = append(kept, id)
		}
	}
	assert.ElementsMatch(t, kept, ids(listAll(t, ctx, q)))
	for _, id := range removed {
		_, err = q.Get(ctx, id)
		assert.ErrorIs(t, err, dlq.ErrNotFound, "Get %q after its Delete", id)
	}
	for _, id := range kept {
		got, err := q.Get(ctx, id)
		if assert.NoError(t, err, "Get %q", id) {
			assert.Equal(t, id, got.ID, "Get %q", id)
			assert.Equal(t, "event-of-"+id, got.Event.ID, "Get %q", id)
		}
	}
	require.NoError(t, q.Delete(ctx, "del-1"), "deleting again")
	require.NoError(t, q.Delete(ctx), "deleting nothing")
	if s.h.Features.Durable {
		q = st.reopen(t)
		assert.ElementsMatch(t, kept, ids(listAll(t, ctx, q)))
	}
	require.NoError(t, q.Delete(ctx, kept[:len(kept)/2]...))
	assert.ElementsMatch(t, kept[len(kept)/2:], ids(listAll(t, ctx, q)))
	require.NoError(t, q.Delete(ctx, kept[len(kept)/2:]...))
	assert.Empty(t, ids(listAll(t, ctx, q)))
	require.NoError(t, q.Put(ctx, base("del-after", "s")))
	assert.Equal(t, []string{"del-after"}, ids(listAll(t, ctx, q)))
}

// testSameID: Put never replaces an entry; one put under the ID of an entry the store holds is
// stored beside it. Package dlq says so twice over: a Put retried after an unclear failure may
// leave the same entry twice, and entries that share an ID but not their sink or event stay in
// the queue, where Redrive reports each as a conflict; a store that replaced the first of them
// would lose an entry whose Put returned nil. Delete of the ID removes every entry that has it,
// copies included: Redrive counts a copy as removed with the entry it delivered, and a copy left
// behind would be sent again.
func (s *suite) testSameID(t *testing.T, ctx context.Context, st *stores) {
	q := st.get(t)
	dup := base("same-copy", "s")
	require.NoError(t, q.Put(ctx, dup))
	require.NoError(t, q.Put(ctx, dup), "Put of the same entry again")
	var shared []dlq.Entry
	for i, sinkName := range []string{"s1", "s2"} {
		e := base("same-shared", sinkName)
		e.Event.ID = fmt.Sprintf("same-shared-event-%d", i+1)
		shared = append(shared, expected(t, e))
		require.NoError(t, q.Put(ctx, e))
	}
	require.NoError(t, q.Put(ctx, base("same-other", "s")))

	count := map[string]int{}
	var gotShared []dlq.Entry
	for _, e := range listAll(t, ctx, q) {
		count[e.ID]++
		if e.ID == "same-shared" {
			gotShared = append(gotShared, e)
		}
	}
	assert.Positive(t, count["same-copy"], "an entry put twice is gone")
	assert.Equal(t, 1, count["same-other"])
	require.Equal(t, 2, count["same-shared"], "entries listed with the ID of two: a Put replaced an entry with the same ID, or an entry is listed twice")
	slices.SortFunc(gotShared, func(a, b dlq.Entry) int { return strings.Compare(a.Sink, b.Sink) })
	for i := range shared {
		AssertEntry(t, shared[i], gotShared[i])
	}

	err := q.Delete(ctx, "same-copy", "same-shared")
	if !s.h.Features.Delete {
		assert.ErrorIs(t, err, dlq.ErrUnsupported)
		return
	}
	require.NoError(t, err)
	assert.Equal(t, []string{"same-other"}, ids(listAll(t, ctx, q)), "Delete left an entry with an ID it was given")
	for _, id := range []string{"same-copy", "same-shared"} {
		_, err = q.Get(ctx, id)
		assert.ErrorIs(t, err, dlq.ErrNotFound, "Get %q after its Delete", id)
	}
	if s.h.Features.Durable {
		q = st.reopen(t)
		assert.Equal(t, []string{"same-other"}, ids(listAll(t, ctx, q)), "after reopening")
	}
}

func (s *suite) testDeleteDuringList(t *testing.T, ctx context.Context, st *stores) {
	q := st.get(t)
	// More entries than two pages of any driver's listing: one that pages by offset over the
	// live store skips entries once earlier ones are deleted, as a redrive deletes them (in
	// batches, as here; the first ones one at a time).
	const n, batch, writers = 2100, 100, 16
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for i := w; i < n; i += writers {
				if err := q.Put(ctx, base(fmt.Sprintf("dl-%d", i), "s")); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	seen := map[string]int{}
	var pending []string
	require.NoError(t, q.List(ctx, func(e dlq.Entry) error {
		seen[e.ID]++
		pending = append(pending, e.ID)
		if len(seen) > 10 && len(pending) < batch {
			return nil
		}
		err := q.Delete(ctx, pending...)
		pending = pending[:0]
		return err
	}))
	require.NoError(t, q.Delete(ctx, pending...))
	assert.Len(t, seen, n)
	for id, c := range seen {
		assert.Equal(t, 1, c, "entry %s visited %d times", id, c)
	}
	assert.Empty(t, ids(listAll(t, ctx, q)))
}

// testPutAfterClose: a closed store refuses a Put with an error wrapping dlq.ErrClosed that is
// not permanent (the dispatcher tells the sender to retry), and keeps nothing of it. A nil would
// tell the sender an event is kept that is not.
func (s *suite) testPutAfterClose(t *testing.T, ctx context.Context, st *stores) {
	q := st.get(t)
	if _, ok := q.(io.Closer); !ok {
		t.Skip("the store has no Close: closing what it writes through is its owner's")
	}
	require.NoError(t, q.Put(ctx, base("before-close", "s")))
	st.close(t)
	err := q.Put(ctx, base("after-close", "s"))
	require.ErrorIs(t, err, dlq.ErrClosed)
	assert.False(t, retry.IsPermanent(err), "a closed queue is no reason to drop the event: %v", err)
	if s.h.Features.Durable {
		q = st.get(t)
		assert.Equal(t, []string{"before-close"}, ids(listAll(t, ctx, q)))
	}
}

// testTransientRefusal: a Put the storage refuses for a while fails, retryable, and stores
// nothing; Put works again once the storage does (see Harness.FailTransient).
func (s *suite) testTransientRefusal(t *testing.T, ctx context.Context, st *stores) {
	if s.h.FailTransient == nil {
		t.Skip("Harness.FailTransient is not set")
	}
	s.checkRefusal(t, ctx, st, s.h.FailTransient, false)
}

// testPermanentRefusal: a Put the storage refuses for good fails, permanent, and stores nothing
// (see Harness.FailPermanent).
func (s *suite) testPermanentRefusal(t *testing.T, ctx context.Context, st *stores) {
	if s.h.FailPermanent == nil {
		t.Skip("Harness.FailPermanent is not set")
	}
	s.checkRefusal(t, ctx, st, s.h.FailPermanent, true)
}

// checkRefusal puts an entry while fail has the storage refuse writes, and requires an error of
// the class permanent says, nothing stored, and Puts that work before and after.
func (s *suite) checkRefusal(t *testing.T, ctx context.Context, st *stores, fail func(*testing.T, Store) func(), permanent bool) {
	q := st.get(t)
	require.NoError(t, q.Put(ctx, base("before-refusal", "s")))
	restore := fail(t, q)
	require.NotNil(t, restore, "the failure hook returned no restore function")
	err := q.Put(ctx, base("refused", "s"))
	restore()
	require.Error(t, err, "Put reported as stored an entry its storage refused")
	if permanent {
		assert.True(t, retry.IsPermanent(err), "a refusal no retry cures must be permanent: %v", err)
	} else {
		assert.Equal(t, retry.ClassRetryable, retry.Classify(err), "a refusal a retry may cure must be retryable: %v", err)
	}

	require.NoError(t, q.Put(ctx, base("after-refusal", "s")), "Put once the storage takes writes again")
	_, err = q.Get(ctx, "refused")
	assert.ErrorIs(t, err, dlq.ErrNotFound, "Get of the refused entry")
	got := ids(listAll(t, ctx, q))
	if s.h.Features.Ordered {
		assert.Equal(t, []string{"before-refusal", "after-refusal"}, got)
	} else {
		assert.ElementsMatch(t, []string{"before-refusal", "after-refusal"}, got)
	}
}

// recorder is a sink that keeps what it is sent, or fails with err.
type recorder struct {
	mu     sync.Mutex
	events []fanbridge.Event
	err    error
}

func (r *recorder) Send(_ context.Context, e *fanbridge.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, *e.Clone())
	return r.err
}

func (r *recorder) got() []fanbridge.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]fanbridge.Event(nil), r.events...)
}

func (s *suite) testRedrive(t *testing.T, ctx context.Context, st *stores) {
	q := st.get(t)
	samples := SampleEvents()
	put := func(id, sinkName, route string, ev fanbridge.Event) {
		e := base(id, sinkName)
		e.Route, e.Event = route, ev
		e.Event.ID = id + "-event"
		require.NoError(t, q.Put(ctx, e))
	}
	for i := range 3 {
		put(fmt.Sprintf("ok-%d", i), "ok", "r", samples[i%len(samples)])
	}
	put("bad-0", "bad", "r", samples[0])
	put("bad-1", "bad", "r", samples[0])
	put("gone-0", "gone", "r", samples[0])
	put("held-0", "ok", "held", samples[0])

	ok := &recorder{}
	bad := &recorder{err: retry.Permanent(errors.New("still refused"))}
	var mu sync.Mutex
	results := map[string]dlq.Outcome{}
	rep, err := dlq.Redrive(ctx, q, map[string]sink.Sink{"ok": ok, "bad": bad},
		func(e dlq.Entry) bool { return e.Route != "held" },
		dlq.WithOnResult(func(r dlq.Result) {
			mu.Lock()
			defer mu.Unlock()
			results[r.Entry.ID] = r.Outcome
		}))
	want := dlq.Report{Selected: 6, Redriven: 3, Removed: 3, Failed: 2, Skipped: 1}
	remain := []string{"bad-0", "bad-1", "gone-0", "held-0"}
	if s.h.Features.Delete {
		require.NoError(t, err)
	} else {
		require.ErrorIs(t, err, dlq.ErrUnsupported)
		want.Removed = 0
		remain = append(remain, "ok-0", "ok-1", "ok-2")
	}
	assert.Equal(t, want, rep)
	assert.Equal(t, map[string]dlq.Outcome{
		"ok-0": dlq.OutcomeRedriven, "ok-1": dlq.OutcomeRedriven, "ok-2": dlq.OutcomeRedriven,
		"bad-0": dlq.OutcomeFailed, "bad-1": dlq.OutcomeFailed, "gone-0": dlq.OutcomeSkipped,
	}, results)

	// Each sink got exactly its own entries' events, byte for byte, once.
	sent := map[string][]byte{}
	for _, e := range ok.got() {
		_, dup := sent[e.ID]
		assert.False(t, dup, "event %s sent twice", e.ID)
		sent[e.ID] = e.Raw
	}
	require.Len(t, sent, 3)
	for i := range 3 {
		assert.Equal(t, samples[i%len(samples)].Raw, sent[fmt.Sprintf("ok-%d-event", i)])
	}
	var badIDs []string
	for _, e := range bad.got() {
		badIDs = append(badIDs, e.ID)
	}
	assert.ElementsMatch(t, []string{"bad-0-event", "bad-1-event"}, badIDs)

	assert.ElementsMatch(t, remain, ids(listAll(t, ctx, q)))
	failed, err := q.Get(ctx, "bad-0")
	require.NoError(t, err)
	AssertEntry(t, expected(t, func() dlq.Entry {
		e := base("bad-0", "bad")
		e.Route, e.Event = "r", samples[0]
		e.Event.ID = "bad-0-event"
		return e
	}()), failed)
}

func (s *suite) testRedriveConcurrent(t *testing.T, ctx context.Context, st *stores) {
	q := st.get(t)
	const n = 40
	for i := range n {
		require.NoError(t, q.Put(ctx, base(fmt.Sprintf("rc-%02d", i), "ok")))
	}
	ok := &recorder{}
	rep, err := dlq.Redrive(ctx, q, map[string]sink.Sink{"ok": ok}, nil, dlq.WithConcurrency(4), dlq.WithDeleteBatch(7))
	require.NoError(t, err)
	assert.Equal(t, dlq.Report{Selected: n, Redriven: n, Removed: n}, rep)
	assert.Len(t, ok.got(), n)
	assert.Empty(t, ids(listAll(t, ctx, q)))
}
