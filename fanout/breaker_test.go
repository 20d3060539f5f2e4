package fanout_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/dlq"
	"github.com/fanbridge/fanbridge/fanout"
	"github.com/fanbridge/fanbridge/retry"
	"github.com/fanbridge/fanbridge/retry/retrytest"
	"github.com/fanbridge/fanbridge/sink"
)

// switchSink fails while down is set, and blocks on gate (when set) before answering.
type switchSink struct {
	down    atomic.Bool
	calls   atomic.Int64
	gate    chan struct{}
	entered chan struct{}
}

func (s *switchSink) Send(ctx context.Context, _ *fanbridge.Event) error {
	s.calls.Add(1)
	if s.entered != nil {
		s.entered <- struct{}{}
	}
	if s.gate != nil {
		select {
		case <-s.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if s.down.Load() {
		return errBoom
	}
	return nil
}

func TestCircuitBreaker(t *testing.T) {
	const cooldown = 10 * time.Second
	clk := retrytest.NewClock(epoch)
	s := &switchSink{}
	s.down.Store(true)
	q := &memDLQ{}
	d := newDispatcher(t, fanout.Config{
		Sinks: []fanout.SinkConfig{{Name: "s", Sink: s, Retry: retry.Policy{MaxAttempts: 1},
			Breaker: fanout.Breaker{Failures: 3, Cooldown: cooldown}}},
		Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"s"}}},
		DLQ:    q,
	}, fanout.WithClock(clk))
	ctx := testContext(t)
	n := 0
	deliver := func() fanout.SinkResult {
		t.Helper()
		n++
		res, err := d.Deliver(ctx, event(fmt.Sprintf("e%d", n), "x"))
		require.NoError(t, err)
		require.Len(t, res.Sinks, 1)
		return res.Sinks[0]
	}

	t.Run("opens after N consecutive failures", func(t *testing.T) {
		for range 3 {
			r := deliver()
			assert.Equal(t, fanout.DeadLettered, r.Outcome)
			assert.Equal(t, dlq.ConditionAttempts, r.Condition)
		}
		assert.EqualValues(t, 3, s.calls.Load())
	})
	t.Run("open: straight to the DLQ, no attempt, no waiting", func(t *testing.T) {
		r := deliver()
		assert.Equal(t, fanout.DeadLettered, r.Outcome)
		assert.Equal(t, dlq.ConditionCircuitOpen, r.Condition)
		assert.Equal(t, 0, r.Attempts)
		assert.ErrorIs(t, r.Err, fanout.ErrCircuitOpen)
		assert.EqualValues(t, 3, s.calls.Load(), "the sink must not be called while open")
		entries := q.Entries()
		last := entries[len(entries)-1]
		assert.Equal(t, dlq.ConditionCircuitOpen, last.Condition)
		assert.Equal(t, 0, last.Attempts)
	})
	t.Run("failed probe opens again", func(t *testing.T) {
		clk.Advance(cooldown)
		r := deliver()
		assert.Equal(t, 1, r.Attempts, "the probe reaches the sink")
		assert.Equal(t, dlq.ConditionAttempts, r.Condition)
		r = deliver()
		assert.Equal(t, dlq.ConditionCircuitOpen, r.Condition)
		assert.EqualValues(t, 4, s.calls.Load())
	})
	t.Run("one probe at a time, and its success closes", func(t *testing.T) {
		clk.Advance(cooldown)
		s.down.Store(false)
		s.gate = make(chan struct{})
		s.entered = make(chan struct{}, 1)
		probe := make(chan fanout.SinkResult, 1)
		go func() {
			res, _ := d.Deliver(ctx, event("probe", "x"))
			probe <- res.Sinks[0]
		}()
		recv(t, s.entered) // the probe is in the sink
		r := deliver()
		assert.Equal(t, dlq.ConditionCircuitOpen, r.Condition, "a second probe must not go while one is out")
		assert.Equal(t, 0, r.Attempts)
		close(s.gate)
		pr := recv(t, probe)
		assert.Equal(t, fanout.Delivered, pr.Outcome)
		s.gate, s.entered = nil, nil
		for range 3 {
			assert.Equal(t, fanout.Delivered, deliver().Outcome, "closed again")
		}
	})
}

func TestBreakerOpensMidRetry(t *testing.T) {
	clk := retrytest.NewClock(epoch)
	autoAdvance(t, clk)
	s := &switchSink{}
	s.down.Store(true)
	q := &memDLQ{}
	d := newDispatcher(t, fanout.Config{
		Sinks: []fanout.SinkConfig{{Name: "s", Sink: s, Retry: retry.Policy{MaxAttempts: 10},
			Breaker: fanout.Breaker{Failures: 3, Cooldown: time.Minute}}},
		Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"s"}}},
		DLQ:    q,
	}, fanout.WithClock(clk))
	res, err := d.Deliver(testContext(t), event("e1", "x"))
	require.NoError(t, err)
	assert.Equal(t, dlq.ConditionCircuitOpen, res.Sinks[0].Condition)
	assert.Equal(t, 3, res.Sinks[0].Attempts)
	assert.EqualValues(t, 3, s.calls.Load())
	require.Len(t, q.Entries(), 1)
	assert.Equal(t, 3, q.Entries()[0].Attempts)
	assert.Contains(t, q.Entries()[0].Error, "boom", "the entry keeps the sink's last error")
}

func TestBreakerIgnoresPermanentFailures(t *testing.T) {
	clk := retrytest.NewClock(epoch)
	s := newRecSink()
	s.fail = func(*fanbridge.Event, int) error { return retry.Permanent(errBoom) }
	q := &memDLQ{}
	d := newDispatcher(t, fanout.Config{
		Sinks: []fanout.SinkConfig{{Name: "s", Sink: s,
			Breaker: fanout.Breaker{Failures: 2, Cooldown: time.Minute}}},
		Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"s"}}},
		DLQ:    q,
	}, fanout.WithClock(clk))
	for i := range 5 {
		res, err := d.Deliver(testContext(t), event(fmt.Sprint(i), "x"))
		require.NoError(t, err)
		assert.Equal(t, dlq.ConditionPermanent, res.Sinks[0].Condition, "a sink that answers is not down")
	}
}

// A Sync sink that hangs until every budget runs out, with no AttemptTimeout, must still open
// its breaker: an attempt that had the whole budget and was cut by it is a failure of the sink.
// Otherwise every request would wait out its full budget for a sink known to be down.
func TestHangingSinkOpensBreakerInSyncMode(t *testing.T) {
	s := &switchSink{gate: make(chan struct{})} // never opened: every Send hangs until its ctx ends
	q := &memDLQ{}
	d := newDispatcher(t, fanout.Config{
		Sinks: []fanout.SinkConfig{{Name: "s", Sink: s, Retry: retry.Policy{MaxAttempts: 5},
			Breaker: fanout.Breaker{Failures: 2, Cooldown: time.Hour}}},
		Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"s"}}},
		DLQ:    q,
	})
	parent := testContext(t)
	for i := range 2 {
		ctx, cancel := context.WithTimeout(parent, time.Second) // 500ms for attempts, 500ms reserve
		res, err := d.Deliver(ctx, event(fmt.Sprint("hang", i), "x"))
		cancel()
		require.NoError(t, err)
		r := res.Sinks[0]
		assert.Equal(t, fanout.DeadLettered, r.Outcome)
		assert.Equal(t, dlq.ConditionAge, r.Condition, "the budget ran out")
		assert.Equal(t, 1, r.Attempts)
	}
	assert.Equal(t, "open", d.Stats()[0].Breaker, "two attempts that each hung through the budget")

	ctx, cancel := context.WithTimeout(parent, time.Second)
	defer cancel()
	res, err := d.Deliver(ctx, event("after", "x"))
	require.NoError(t, err)
	assert.Equal(t, dlq.ConditionCircuitOpen, res.Sinks[0].Condition)
	assert.Equal(t, 0, res.Sinks[0].Attempts, "no request waits for a sink known to hang")
	assert.EqualValues(t, 2, s.calls.Load())
	assert.Len(t, q.Entries(), 3, "every event is dead-lettered")
}

// The caller going away says nothing about the sink, however long the attempt ran.
func TestCallerCancellationLeavesBreakerClosed(t *testing.T) {
	s := &switchSink{gate: make(chan struct{}), entered: make(chan struct{}, 1)}
	d := newDispatcher(t, fanout.Config{
		Sinks: []fanout.SinkConfig{{Name: "s", Sink: s,
			Breaker: fanout.Breaker{Failures: 1, Cooldown: time.Hour}}},
		Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"s"}}},
		DLQ:    &memDLQ{},
	})
	for i := range 3 {
		ctx, cancel := context.WithCancel(testContext(t))
		done := make(chan error, 1)
		go func() {
			_, err := d.Deliver(ctx, event(fmt.Sprint("gone", i), "x"))
			done <- err
		}()
		recv(t, s.entered)
		cancel()
		assert.ErrorIs(t, recv(t, done), context.Canceled)
	}
	assert.Equal(t, "closed", d.Stats()[0].Breaker)
	assert.EqualValues(t, 3, s.calls.Load())
}

// A caller that comes with little time left cuts the attempt short, whatever the sink: that says
// nothing about the sink, and must not open its breaker for the callers with time to spare.
func TestShortCallerDeadlinesLeaveBreakerClosed(t *testing.T) {
	s := &switchSink{gate: make(chan struct{})} // slower than any of these callers
	d := newDispatcher(t, fanout.Config{
		Sinks: []fanout.SinkConfig{{Name: "s", Sink: s,
			Breaker: fanout.Breaker{Failures: 2, Cooldown: time.Hour}}},
		Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"s"}}},
		DLQ:    &memDLQ{},
	})
	for i := range 3 {
		ctx, cancel := context.WithTimeout(testContext(t), 4*time.Millisecond)
		res, err := d.Deliver(ctx, event(fmt.Sprint("short", i), "x"))
		cancel()
		require.NoError(t, err)
		assert.Equal(t, dlq.ConditionAge, res.Sinks[0].Condition)
	}
	assert.Equal(t, "closed", d.Stats()[0].Breaker)
	assert.EqualValues(t, 3, s.calls.Load(), "every caller reached the sink")
}

// A sink that hands its deadline on (grpcsink sends it as grpc-timeout) can report the deadline
// passed just before the context's own timer fires: that is the budget cutting the attempt
// short, not the sink failing, and a caller that came with little time left still opens nothing.
func TestSinkDeadlineErrorJustBeforeTheBudgetIsACut(t *testing.T) {
	early := sink.Func(func(ctx context.Context, _ *fanbridge.Event) error {
		dl, ok := ctx.Deadline()
		if !ok {
			return errors.New("no deadline")
		}
		select {
		case <-time.After(time.Until(dl) - 2*time.Millisecond): // the far side's verdict
		case <-ctx.Done():
		}
		return fmt.Errorf("rpc error: code = DeadlineExceeded: %w", context.DeadlineExceeded)
	})
	d := newDispatcher(t, fanout.Config{
		Sinks: []fanout.SinkConfig{{Name: "s", Sink: early,
			Breaker: fanout.Breaker{Failures: 1, Cooldown: time.Hour}}},
		Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"s"}}},
		DLQ:    &memDLQ{},
	}, fanout.WithBudget(2*time.Second))
	for i := range 3 {
		ctx, cancel := context.WithTimeout(testContext(t), 100*time.Millisecond)
		res, err := d.Deliver(ctx, event(fmt.Sprint("late", i), "x"))
		cancel()
		require.NoError(t, err)
		assert.Equal(t, fanout.DeadLettered, res.Sinks[0].Outcome)
		assert.NotEqual(t, dlq.ConditionCircuitOpen, res.Sinks[0].Condition, "event %d", i)
	}
	assert.Equal(t, "closed", d.Stats()[0].Breaker)
}

// The breaker counts failures in 32 bits: a larger threshold is refused, not cut down to one
// that opens after a single failure (1<<32+1) or never (1<<31).
func TestBreakerFailuresAboveMaxAreRefused(t *testing.T) {
	if strconv.IntSize < 64 {
		t.Skip("an int cannot hold a threshold above the maximum")
	}
	config := func(failures int64) fanout.Config {
		return fanout.Config{
			Sinks: []fanout.SinkConfig{{Name: "s", Sink: newRecSink(), Retry: retry.Policy{MaxAttempts: 1},
				Breaker: fanout.Breaker{Failures: int(failures)}}},
			Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"s"}}},
		}
	}
	for _, failures := range []int64{fanout.MaxBreakerFailures + 1, 1<<32 + 1, math.MaxInt64} {
		t.Run(fmt.Sprint(failures), func(t *testing.T) {
			d, err := fanout.New(config(failures))
			require.ErrorIs(t, err, fanout.ErrInvalidConfig)
			assert.Nil(t, d)
			assert.ErrorContains(t, err, fmt.Sprintf(`sink "s": Breaker.Failures %d is above 2147483647`, failures))

			d = newDispatcher(t, config(20))
			require.ErrorIs(t, d.Update(config(failures)), fanout.ErrInvalidConfig)
		})
	}
	t.Run("the maximum", func(t *testing.T) {
		s := &switchSink{}
		s.down.Store(true)
		cfg := config(fanout.MaxBreakerFailures)
		cfg.Sinks[0].Sink = s
		cfg.DLQ = &memDLQ{}
		d := newDispatcher(t, cfg)
		for i := range 3 {
			res, err := d.Deliver(testContext(t), event(fmt.Sprint(i), "x"))
			require.NoError(t, err)
			assert.Equal(t, dlq.ConditionAttempts, res.Sinks[0].Condition, "event %d: the breaker stays closed", i)
		}
		assert.EqualValues(t, 3, s.calls.Load())
	})
	// Every negative count turns the breaker off, also one whose low 32 bits are positive.
	for _, failures := range []int64{-2, -(1 << 32) + 1, math.MinInt64} {
		t.Run(fmt.Sprint(failures), func(t *testing.T) {
			s := &switchSink{}
			s.down.Store(true)
			cfg := config(failures)
			cfg.Sinks[0].Sink = s
			cfg.Sinks[0].Breaker.Cooldown = time.Hour
			cfg.DLQ = &memDLQ{}
			d := newDispatcher(t, cfg)
			for i := range 3 {
				res, err := d.Deliver(testContext(t), event(fmt.Sprint(i), "x"))
				require.NoError(t, err)
				assert.Equal(t, dlq.ConditionAttempts, res.Sinks[0].Condition, "event %d: no breaker", i)
			}
			assert.EqualValues(t, 3, s.calls.Load())
		})
	}
}
