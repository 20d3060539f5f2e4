package fanout_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/fanout"
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
