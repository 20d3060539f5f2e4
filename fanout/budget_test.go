package fanout_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/dlq"
	"github.com/fanbridge/fanbridge/fanout"
	"github.com/fanbridge/fanbridge/retry"
	"github.com/fanbridge/fanbridge/sink"
)

// A Sync dispatch's attempts run until WithDLQReserve before its deadline, and the reserve is at
// most half the budget: a caller that comes with less than twice the reserve still gets half of
// its time for attempts, not none.
func TestDLQReserveIsAtMostHalfTheBudget(t *testing.T) {
	for _, tc := range []struct {
		name     string
		deadline time.Duration // the caller's; 0 for none, and then the budget is WithBudget's
		opts     []fanout.Option
		reserve  func(budget time.Duration) time.Duration
	}{
		{"short caller deadline", 400 * time.Millisecond, nil,
			func(b time.Duration) time.Duration { return b / 2 }},
		{"long caller deadline", 3 * time.Second, nil,
			func(time.Duration) time.Duration { return fanout.DefaultDLQReserve }},
		{"short WithBudget", 0, []fanout.Option{fanout.WithBudget(600 * time.Millisecond)},
			func(b time.Duration) time.Duration { return b / 2 }},
		{"short budget, shorter reserve", 0, []fanout.Option{fanout.WithBudget(600 * time.Millisecond), fanout.WithDLQReserve(100 * time.Millisecond)},
			func(time.Duration) time.Duration { return 100 * time.Millisecond }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var sendDeadline time.Time
			var hasDeadline bool
			s := newRecSink()
			probe := sinkFunc(func(ctx context.Context, e *fanbridge.Event) error {
				sendDeadline, hasDeadline = ctx.Deadline()
				return s.Send(ctx, e)
			})
			q := &memDLQ{}
			d := newDispatcher(t, fanout.Config{
				Sinks:  []fanout.SinkConfig{{Name: "s", Sink: probe}},
				Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"s"}}},
				DLQ:    q,
			}, tc.opts...)
			ctx := testContext(t)
			var deadline time.Time
			if tc.deadline > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.deadline)
				defer cancel()
				deadline, _ = ctx.Deadline()
			} else {
				ctx = context.WithoutCancel(ctx) // no deadline: WithBudget's budget applies
			}
			before := time.Now()
			res, err := d.Deliver(ctx, event("e1", "x"))
			after := time.Now()
			require.NoError(t, err)
			assert.Equal(t, fanout.Delivered, res.Sinks[0].Outcome, "%+v", res.Sinks[0])
			assert.Equal(t, 1, s.Delivered("e1"))
			assert.Empty(t, q.Entries())

			// The dispatch began between before and after; the Send's deadline is its deadline
			// less the reserve.
			require.True(t, hasDeadline)
			at := func(start time.Time) time.Time {
				end := deadline
				if tc.deadline == 0 {
					end = start.Add(600 * time.Millisecond)
				}
				return end.Add(-tc.reserve(end.Sub(start)))
			}
			assert.False(t, sendDeadline.Before(at(before)), "the Send's deadline %v is early: the reserve is too long",
				sendDeadline.Sub(before))
			assert.False(t, sendDeadline.After(at(after)), "the Send's deadline %v is late: the reserve is too short",
				sendDeadline.Sub(before))
		})
	}
}

// A sink that asks for a wait longer than what is left of the Sync budget gets its outcome at
// once: no attempt could follow that wait, so the dispatch does not hold the caller (and a queue
// slot) to the end of the budget to learn what it knows now.
func TestRetryAfterPastTheBudgetEndsAtOnce(t *testing.T) {
	calls := atomic.Int32{}
	throttled := sink.Func(func(context.Context, *fanbridge.Event) error {
		calls.Add(1)
		return retry.After(errBoom, time.Hour)
	})
	q := &memDLQ{}
	d := newDispatcher(t, fanout.Config{
		Sinks: []fanout.SinkConfig{{Name: "s", Sink: throttled,
			Retry: retry.Policy{MaxAttempts: 5, MaxRetryAfter: 2 * time.Hour}}},
		Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"s"}}},
		DLQ:    q,
	}, fanout.WithBudget(time.Minute))
	done := make(chan fanout.Result, 1)
	go func() {
		res, err := d.Deliver(context.Background(), event("throttled", "x"))
		assert.NoError(t, err)
		done <- res
	}()
	select {
	case res := <-done:
		require.Len(t, res.Sinks, 1)
		r := res.Sinks[0]
		assert.Equal(t, fanout.DeadLettered, r.Outcome)
		assert.Equal(t, dlq.ConditionAge, r.Condition, "the budget would run out first")
		assert.Equal(t, 1, r.Attempts)
		assert.EqualValues(t, 1, calls.Load())
		require.Len(t, q.Entries(), 1)
		assert.Contains(t, q.Entries()[0].Error, errBoom.Error(), "the entry keeps the sink's own error")
	case <-time.After(20 * time.Second):
		t.Fatal("the dispatch waited for a retry its budget could never reach")
	}
}
