package dlq_test

import (
	"context"
	"errors"
	"fmt"
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
