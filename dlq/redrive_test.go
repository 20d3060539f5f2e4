package dlq_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/dlq"
	"github.com/fanbridge/fanbridge/dlq/dlqtest"
	"github.com/fanbridge/fanbridge/retry"
	"github.com/fanbridge/fanbridge/sink"
)

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func fill(t *testing.T, ctx context.Context, q dlq.Queue, sinkName string, n int) {
	t.Helper()
	for i := range n {
		require.NoError(t, q.Put(ctx, dlq.Entry{
			ID:    fmt.Sprintf("%s-%03d", sinkName, i),
			Sink:  sinkName,
			Event: fanbridge.Event{ID: fmt.Sprintf("ev-%d", i), Raw: []byte(`{}`)},
		}))
	}
}

func TestRedriveInvalidOptions(t *testing.T) {
	ctx := testCtx(t)
	m := dlqtest.NewMemory()
	cases := []struct {
		name string
		r    dlq.Reader
		opts []dlq.Option
	}{
		{"nil-reader", nil, nil},
		{"zero-concurrency", m, []dlq.Option{dlq.WithConcurrency(0)}},
		{"zero-batch", m, []dlq.Option{dlq.WithDeleteBatch(0)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := dlq.Redrive(ctx, tc.r, nil, nil, tc.opts...)
			assert.ErrorIs(t, err, dlq.ErrInvalidOption)
		})
	}
}

func TestRedriveWithRetrier(t *testing.T) {
	ctx := testCtx(t)
	m := dlqtest.NewMemory()
	fill(t, ctx, m, "flaky", 3)
	var calls atomic.Int32
	flaky := sink.Func(func(context.Context, *fanbridge.Event) error {
		if calls.Add(1)%2 == 1 {
			return errors.New("try again")
		}
		return nil
	})
	r, err := retry.New(retry.Policy{InitialInterval: time.Nanosecond, Jitter: retry.NoJitter, MaxAttempts: 2})
	require.NoError(t, err)
	rep, err := dlq.Redrive(ctx, m, map[string]sink.Sink{"flaky": flaky}, nil, dlq.WithRetrier(r))
	require.NoError(t, err)
	assert.Equal(t, dlq.Report{Selected: 3, Redriven: 3, Removed: 3}, rep)
	assert.Equal(t, int32(6), calls.Load())
	assert.Zero(t, m.Len())
}

// failingDelete is a Reader whose Delete fails with err.
type failingDelete struct {
	*dlqtest.Memory
	err     error
	deletes atomic.Int32
}

func (f *failingDelete) Delete(context.Context, ...string) error {
	f.deletes.Add(1)
	return f.err
}

func TestRedriveDeleteFailureStops(t *testing.T) {
	ctx := testCtx(t)
	r := &failingDelete{Memory: dlqtest.NewMemory(), err: errors.New("disk full")}
	fill(t, ctx, r, "ok", 10)
	var sent atomic.Int32
	ok := sink.Func(func(context.Context, *fanbridge.Event) error { sent.Add(1); return nil })
	rep, err := dlq.Redrive(ctx, r, map[string]sink.Sink{"ok": ok}, nil, dlq.WithDeleteBatch(2))
	require.ErrorIs(t, err, r.err)
	assert.Equal(t, 2, rep.Redriven, "the redrive went on after a failed removal")
	assert.Equal(t, 0, rep.Removed)
	assert.Equal(t, int32(1), r.deletes.Load())
	assert.Equal(t, 10, r.Len())
}

// The only removal of a redrive smaller than a batch is the final one: when it fails, Redrive
// says so, since the delivered entries stay to be sent again.
func TestRedriveFinalRemovalFailureIsReturned(t *testing.T) {
	ctx := testCtx(t)
	r := &failingDelete{Memory: dlqtest.NewMemory(), err: errors.New("disk full")}
	fill(t, ctx, r, "ok", 2)
	ok := sink.Func(func(context.Context, *fanbridge.Event) error { return nil })
	rep, err := dlq.Redrive(ctx, r, map[string]sink.Sink{"ok": ok}, nil)
	require.ErrorIs(t, err, r.err, "Redrive reported success although no delivered entry was removed")
	assert.Equal(t, dlq.Report{Selected: 2, Redriven: 2}, rep)
	assert.Equal(t, int32(1), r.deletes.Load())
	assert.Equal(t, 2, r.Len())
}

// A Put retried after an unclear failure can leave two copies of one entry (same ID). Redrive
// sends the first one listed and lets its copies follow its outcome: the event is not sent twice,
// and a copy is never reported failed while its removal takes it away with the first.
func TestRedriveCopiesFollowTheFirst(t *testing.T) {
	for _, tc := range []struct {
		name    string
		fail    bool
		wantRep dlq.Report
		left    int
	}{
		{"taken", false, dlq.Report{Selected: 3, Redriven: 3, Removed: 3, Copies: 1}, 0},
		{"refused", true, dlq.Report{Selected: 3, Redriven: 2, Removed: 2, Failed: 1, Copies: 1}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testCtx(t)
			q := dlqtest.NewMemory()
			fill(t, ctx, q, "ok", 3)
			first, err := q.Get(ctx, "ok-001")
			require.NoError(t, err)
			require.NoError(t, q.Put(ctx, first)) // the same entry, written twice
			sends := map[string]int{}
			var mu sync.Mutex
			s := sink.Func(func(_ context.Context, e *fanbridge.Event) error {
				mu.Lock()
				defer mu.Unlock()
				sends[e.ID]++
				// The second send of an event fails: a copy sent again would be reported failed
				// while its removal went with the first.
				if tc.fail || sends[e.ID] > 1 {
					if e.ID == first.Event.ID {
						return errors.New("refused")
					}
				}
				return nil
			})
			rep, err := dlq.Redrive(ctx, q, map[string]sink.Sink{"ok": s}, nil)
			require.NoError(t, err)
			assert.Equal(t, tc.wantRep, rep)
			assert.Equal(t, 1, sends[first.Event.ID], "sent once")
			assert.Equal(t, tc.left, q.Len())
		})
	}
}

func TestRedriveDeleteUnsupported(t *testing.T) {
	ctx := testCtx(t)
	r := &failingDelete{Memory: dlqtest.NewMemory(), err: fmt.Errorf("read-only: %w", dlq.ErrUnsupported)}
	fill(t, ctx, r, "ok", 5)
	ok := sink.Func(func(context.Context, *fanbridge.Event) error { return nil })
	rep, err := dlq.Redrive(ctx, r, map[string]sink.Sink{"ok": ok}, nil, dlq.WithDeleteBatch(2))
	require.ErrorIs(t, err, dlq.ErrUnsupported)
	assert.Equal(t, dlq.Report{Selected: 5, Redriven: 5}, rep)
	assert.Equal(t, int32(1), r.deletes.Load(), "removal is not tried again once unsupported")
}

func TestRedriveCancelRemovesWhatWasDelivered(t *testing.T) {
	ctx, cancel := context.WithCancel(testCtx(t))
	m := dlqtest.NewMemory()
	fill(t, ctx, m, "ok", 5)
	var sent atomic.Int32
	ok := sink.Func(func(context.Context, *fanbridge.Event) error {
		if sent.Add(1) == 2 {
			cancel() // the operator hits Ctrl-C after the second delivery
		}
		return nil
	})
	rep, err := dlq.Redrive(ctx, m, map[string]sink.Sink{"ok": ok}, nil)
	require.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, 2, rep.Redriven)
	assert.Equal(t, 2, rep.Removed, "delivered entries must be removed despite the cancellation")
	assert.Equal(t, 3, m.Len())
}

// cancelingDelete is a Reader whose first Delete is under way when the operator cancels the
// redrive: it returns the context's error, as a store does whose request the cancellation cut
// short.
type cancelingDelete struct {
	*dlqtest.Memory
	cancel context.CancelFunc
	calls  atomic.Int32
}

func (q *cancelingDelete) Delete(ctx context.Context, ids ...string) error {
	if q.calls.Add(1) == 1 {
		q.cancel()
		<-ctx.Done()
		return ctx.Err()
	}
	return q.Memory.Delete(ctx, ids...)
}

// A batch whose removal the cancellation cut short is removed by the final removal, with the
// rest: its entries were delivered, and left in the queue they would be sent again.
func TestRedriveCancelDuringARemovalRetriesIt(t *testing.T) {
	base := testCtx(t)
	ctx, cancel := context.WithCancel(base)
	q := &cancelingDelete{Memory: dlqtest.NewMemory(), cancel: cancel}
	fill(t, base, q, "ok", 3)
	var sent atomic.Int32
	ok := sink.Func(func(context.Context, *fanbridge.Event) error { sent.Add(1); return nil })
	rep, err := dlq.Redrive(ctx, q, map[string]sink.Sink{"ok": ok}, nil, dlq.WithDeleteBatch(1))
	require.ErrorIs(t, err, context.Canceled)
	require.Positive(t, rep.Redriven)
	assert.Equal(t, int(sent.Load()), rep.Redriven)
	assert.Equal(t, rep.Redriven, rep.Removed, "a delivered entry was left in the queue, to be sent again")
	assert.Equal(t, 3-rep.Redriven, q.Len())
}

// A cancellation that cuts short the sends of the last entries, after List has handed them all
// over, still ends the redrive with the cancellation's cause: those entries are in no count.
func TestRedriveCancelDuringLastSends(t *testing.T) {
	errStop := errors.New("operator stopped the redrive")
	cases := []struct {
		name        string
		entries     int
		concurrency int
	}{
		{"one-entry", 1, 1},
		{"all-in-flight", 3, 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancelCause(testCtx(t))
			m := dlqtest.NewMemory()
			fill(t, ctx, m, "slow", tc.entries)
			var started atomic.Int32
			slow := sink.Func(func(ctx context.Context, _ *fanbridge.Event) error {
				if int(started.Add(1)) == tc.entries {
					cancel(errStop) // every entry is in a worker's hands, List is done
				}
				<-ctx.Done()
				return ctx.Err()
			})
			rep, err := dlq.Redrive(ctx, m, map[string]sink.Sink{"slow": slow}, nil, dlq.WithConcurrency(tc.concurrency))
			require.ErrorIs(t, err, errStop, "a redrive that left selected entries unsent must say why")
			assert.Equal(t, dlq.Report{Selected: tc.entries}, rep)
			assert.Equal(t, tc.entries, m.Len())
		})
	}
}

func TestRedriveMissingSinks(t *testing.T) {
	ctx := testCtx(t)
	m := dlqtest.NewMemory()
	fill(t, ctx, m, "a", 2)
	fill(t, ctx, m, "b", 1)
	var errs []error
	rep, err := dlq.Redrive(ctx, m, map[string]sink.Sink{"b": nil}, nil, dlq.WithOnResult(func(r dlq.Result) { errs = append(errs, r.Err) }))
	require.NoError(t, err)
	assert.Equal(t, dlq.Report{Selected: 3, Skipped: 3}, rep)
	require.Len(t, errs, 3)
	for _, e := range errs {
		assert.ErrorIs(t, e, dlq.ErrNoSink)
	}
	assert.Equal(t, 3, m.Len())
}

func TestRedriveSinkCancellationIsNotFailure(t *testing.T) {
	ctx, cancel := context.WithCancel(testCtx(t))
	m := dlqtest.NewMemory()
	fill(t, ctx, m, "slow", 3)
	slow := sink.Func(func(ctx context.Context, _ *fanbridge.Event) error {
		cancel()
		<-ctx.Done()
		return ctx.Err()
	})
	rep, err := dlq.Redrive(ctx, m, map[string]sink.Sink{"slow": slow}, nil)
	require.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, 0, rep.Failed)
	assert.Equal(t, 3, m.Len())
}

func TestAll(t *testing.T) {
	ctx := testCtx(t)
	m := dlqtest.NewMemory()
	fill(t, ctx, m, "s", 5)
	var got []string
	for e, err := range dlq.All(ctx, m) {
		require.NoError(t, err)
		got = append(got, e.ID)
		if len(got) == 3 {
			break
		}
	}
	assert.Equal(t, []string{"s-000", "s-001", "s-002"}, got)

	canceled, cancel := context.WithCancel(ctx)
	cancel()
	var last error
	for _, err := range dlq.All(canceled, m) {
		last = err
	}
	assert.ErrorIs(t, last, context.Canceled)
}

// Entries are removed by ID. Entries that share an ID but not their sink or event are not one
// entry written twice: none of them may be sent as a "copy" of another, or removed with it.
func TestRedriveSharedIDs(t *testing.T) {
	type put struct{ id, sink, event string }
	cases := []struct {
		name   string
		puts   []put
		filter func(dlq.Entry) bool
		want   dlq.Report
		sent   map[string][]string // sink: event IDs it got
		left   []put
		// outcomes by sink/event of the entries selected.
		outcomes map[string]dlq.Outcome
	}{{
		name: "other-sink",
		puts: []put{{"X", "a", "ev-1"}, {"X", "b", "ev-1"}, {"Y", "a", "ev-2"}},
		want: dlq.Report{Selected: 3, Redriven: 1, Removed: 1, Conflicts: 2},
		sent: map[string][]string{"a": {"ev-2"}},
		left: []put{{"X", "a", "ev-1"}, {"X", "b", "ev-1"}},
		outcomes: map[string]dlq.Outcome{
			"a/ev-1": dlq.OutcomeConflict, "b/ev-1": dlq.OutcomeConflict, "a/ev-2": dlq.OutcomeRedriven,
		},
	}, {
		name: "other-event",
		puts: []put{{"X", "a", "ev-1"}, {"X", "a", "ev-9"}},
		want: dlq.Report{Selected: 2, Conflicts: 2},
		left: []put{{"X", "a", "ev-1"}, {"X", "a", "ev-9"}},
		outcomes: map[string]dlq.Outcome{
			"a/ev-1": dlq.OutcomeConflict, "a/ev-9": dlq.OutcomeConflict,
		},
	}, {
		// The entry of sink b is not selected, but removing the ID would take it too.
		name:   "unselected-namesake",
		puts:   []put{{"X", "a", "ev-1"}, {"X", "b", "ev-1"}},
		filter: func(e dlq.Entry) bool { return e.Sink == "a" },
		want:   dlq.Report{Selected: 1, Conflicts: 1},
		left:   []put{{"X", "a", "ev-1"}, {"X", "b", "ev-1"}},
		outcomes: map[string]dlq.Outcome{
			"a/ev-1": dlq.OutcomeConflict,
		},
	}, {
		// The same entry written twice is still one entry: sent once, removed with its copy.
		name:     "copy",
		puts:     []put{{"X", "a", "ev-1"}, {"X", "a", "ev-1"}},
		want:     dlq.Report{Selected: 1, Redriven: 1, Removed: 1, Copies: 1},
		sent:     map[string][]string{"a": {"ev-1"}},
		outcomes: map[string]dlq.Outcome{"a/ev-1": dlq.OutcomeRedriven},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testCtx(t)
			q := dlqtest.NewMemory()
			for _, p := range tc.puts {
				require.NoError(t, q.Put(ctx, dlq.Entry{ID: p.id, Sink: p.sink, Event: fanbridge.Event{ID: p.event, Raw: []byte(`{}`)}}))
			}
			sent := map[string][]string{}
			sinks := map[string]sink.Sink{}
			for _, name := range []string{"a", "b"} {
				sinks[name] = sink.Func(func(_ context.Context, e *fanbridge.Event) error {
					sent[name] = append(sent[name], e.ID)
					return nil
				})
			}
			outcomes := map[string]dlq.Outcome{}
			rep, err := dlq.Redrive(ctx, q, sinks, tc.filter, dlq.WithOnResult(func(r dlq.Result) {
				outcomes[r.Entry.Sink+"/"+r.Entry.Event.ID] = r.Outcome
				if r.Outcome == dlq.OutcomeConflict {
					assert.ErrorIs(t, r.Err, dlq.ErrIDConflict)
				}
			}))
			require.NoError(t, err)
			assert.Equal(t, tc.want, rep)
			if tc.sent == nil {
				tc.sent = map[string][]string{}
			}
			assert.Equal(t, tc.sent, sent)
			assert.Equal(t, tc.outcomes, outcomes)
			var left []put
			for e, err := range dlq.All(ctx, q) {
				require.NoError(t, err)
				left = append(left, put{e.ID, e.Sink, e.Event.ID})
			}
			assert.Equal(t, tc.left, left)
		})
	}
}

// liveQueue lists the entries put while its List runs, as a queue that reads its storage as it
// goes may. Its Delete must not run during a List.
type liveQueue struct {
	mu      sync.Mutex
	entries []dlq.Entry
}

func (q *liveQueue) Put(_ context.Context, e dlq.Entry) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.entries = append(q.entries, e)
	return nil
}

func (q *liveQueue) List(ctx context.Context, fn func(dlq.Entry) error) error {
	for i := 0; ; i++ {
		q.mu.Lock()
		if i >= len(q.entries) {
			q.mu.Unlock()
			return nil
		}
		e := q.entries[i]
		q.mu.Unlock()
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(e); err != nil {
			return err
		}
	}
}

func (q *liveQueue) Get(context.Context, string) (dlq.Entry, error) {
	return dlq.Entry{}, dlq.ErrNotFound
}

func (q *liveQueue) Delete(_ context.Context, ids ...string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, id := range ids {
		q.entries = slices.DeleteFunc(q.entries, func(e dlq.Entry) bool { return e.ID == id })
	}
	return nil
}

// An entry put during the redrive, with the ID of an entry already delivered but not yet removed,
// holds that removal back: the delivered entry stays, to be sent again, rather than the new one
// being removed unsent.
func TestRedriveSharedIDPutDuringRedrive(t *testing.T) {
	ctx := testCtx(t)
	q := &liveQueue{}
	require.NoError(t, q.Put(ctx, dlq.Entry{ID: "X", Sink: "a", Event: fanbridge.Event{ID: "ev-1"}}))
	// Z is handed to the single worker only once it has finished X, so the List reaches the
	// entry X's send puts.
	require.NoError(t, q.Put(ctx, dlq.Entry{ID: "Z", Sink: "a", Event: fanbridge.Event{ID: "ev-2"}}))
	var sentA []string
	a := sink.Func(func(ctx context.Context, e *fanbridge.Event) error {
		sentA = append(sentA, e.ID)
		if e.ID == "ev-1" {
			return q.Put(ctx, dlq.Entry{ID: "X", Sink: "b", Event: fanbridge.Event{ID: "ev-1"}})
		}
		return nil
	})
	b := sink.Func(func(context.Context, *fanbridge.Event) error {
		t.Error("the entry for sink b, sharing its ID, was sent")
		return nil
	})
	rep, err := dlq.Redrive(ctx, q, map[string]sink.Sink{"a": a, "b": b}, nil)
	require.NoError(t, err)
	assert.Equal(t, dlq.Report{Selected: 3, Redriven: 2, Removed: 1, Conflicts: 1}, rep)
	assert.Equal(t, []string{"ev-1", "ev-2"}, sentA)
	var left []string
	for _, e := range q.entries {
		left = append(left, e.ID+"/"+e.Sink)
	}
	assert.Equal(t, []string{"X/a", "X/b"}, left)
}
