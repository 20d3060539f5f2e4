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
	"github.com/fanbridge/fanbridge/retry/retrytest"
)

// Every way a delivery ends gives back the queue slot and the send slot it held: a sink whose
// slots leaked would refuse events as overloaded, or never send again, with nothing in flight.

// shortDeliver delivers e to d under a one-second deadline, ample for a delivery that needs no
// wait, so that a slot that never comes back fails the test soon instead of hanging it.
func shortDeliver(t *testing.T, d *fanout.Dispatcher, e *fanbridge.Event) (fanout.Result, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(testContext(t), time.Second)
	defer cancel()
	return d.Deliver(ctx, e)
}

// A Sync dispatch runs one sink's task on its own goroutine; when that task is dead-lettered
// while the other sinks' tasks are pending, the write is handed to a goroutine of its own, which
// must give the queue slot back as the dispatch would have.
func TestOffloadedDeadLetterGivesItsQueueSlotBack(t *testing.T) {
	bad := newRecSink()
	bad.fail = func(*fanbridge.Event, int) error { return retry.Permanent(errBoom) }
	good := newRecSink()
	q := &memDLQ{}
	d := newDispatcher(t, fanout.Config{
		// bad comes first, so the dispatch's own goroutine runs its task.
		Sinks:  []fanout.SinkConfig{{Name: "bad", Sink: bad, QueueSize: 2}, {Name: "good", Sink: good, QueueSize: 2}},
		Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"bad", "good"}}},
		DLQ:    q,
	})
	for _, id := range []string{"e1", "e2", "e3", "e4", "e5"} {
		res, err := shortDeliver(t, d, event(id, "x"))
		require.NoError(t, err, "%s: QueueSize 2, and no event is left unfinished", id)
		require.Len(t, res.Sinks, 2)
		assert.Equal(t, fanout.DeadLettered, res.Sinks[0].Outcome, id)
		assert.Equal(t, fanout.Delivered, res.Sinks[1].Outcome, id)
		assert.True(t, q.Has(id, "bad"), id)
	}
	for _, st := range d.Stats() {
		assert.Zero(t, st.Queued, st.Name)
	}
}

// An attempt the open breaker refuses makes no Send, and must not keep the send slot it took:
// with Concurrency 1, the probe after the cooldown must still find it.
func TestBreakerRefusalsGiveTheirSendSlotBack(t *testing.T) {
	const cooldown = 10 * time.Second
	clk := retrytest.NewClock(epoch)
	var down atomic.Bool
	down.Store(true)
	s := newRecSink()
	s.fail = func(*fanbridge.Event, int) error {
		if down.Load() {
			return errBoom
		}
		return nil
	}
	d := newDispatcher(t, fanout.Config{
		Sinks: []fanout.SinkConfig{{Name: "s", Sink: s, Concurrency: 1, Retry: retry.Policy{MaxAttempts: 1},
			Breaker: fanout.Breaker{Failures: 1, Cooldown: cooldown}}},
		Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"s"}}},
		DLQ:    &memDLQ{},
	}, fanout.WithClock(clk))
	deliver := func(id string) fanout.SinkResult {
		t.Helper()
		res, err := shortDeliver(t, d, event(id, "x"))
		require.NoError(t, err, id)
		require.Len(t, res.Sinks, 1)
		return res.Sinks[0]
	}
	require.Equal(t, dlq.ConditionAttempts, deliver("e1").Condition, "the failure opens the breaker")
	for _, id := range []string{"e2", "e3", "e4"} {
		r := deliver(id)
		assert.Equal(t, dlq.ConditionCircuitOpen, r.Condition, "%s: %+v", id, r)
		assert.Zero(t, r.Attempts, id)
	}
	down.Store(false)
	clk.Advance(cooldown)
	r := deliver("probe")
	assert.Equal(t, fanout.Delivered, r.Outcome, "the probe after the cooldown reaches the sink: %+v", r)
	assert.Equal(t, fanout.Delivered, deliver("after").Outcome)
	assert.Equal(t, 1, s.Delivered("probe"))
}

// An attempt that gets its send slot only once the event is past MaxAge is not made, and gives
// the slot back: the next event is sent.
func TestAgedAttemptGivesItsSendSlotBack(t *testing.T) {
	clk := retrytest.NewClock(epoch)
	gate, entered := make(chan struct{}), make(chan struct{}, 1)
	s := newRecSink()
	s.fail = func(e *fanbridge.Event, attempt int) error {
		switch {
		case e.ID == "holder":
			entered <- struct{}{}
			<-gate
		case e.ID == "late" && attempt == 1:
			return errBoom
		}
		return nil
	}
	q := &memDLQ{}
	d := newDispatcher(t, fanout.Config{
		Sinks: []fanout.SinkConfig{{Name: "s", Sink: s, Concurrency: 1, Retry: retry.Policy{MaxAge: time.Minute,
			InitialInterval: time.Second, MaxInterval: time.Second, Jitter: retry.NoJitter}}},
		Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"s"}}},
		DLQ:    q,
	}, fanout.WithClock(clk))
	ctx := testContext(t)
	late := make(chan fanout.Result, 1)
	go func() {
		res, err := d.Deliver(ctx, event("late", "x"))
		assert.NoError(t, err)
		late <- res
	}()
	require.NoError(t, clk.WaitTimers(ctx, 1), "late's first attempt failed; its retry is due in a second")
	holder := make(chan error, 1)
	go func() { holder <- d.Dispatch(ctx, event("holder", "x")) }()
	recv(t, entered)             // the only send slot is taken
	clk.Advance(2 * time.Minute) // late's retry is due, and late is past MaxAge
	close(gate)
	require.NoError(t, recv(t, holder))
	res := recv(t, late)
	require.Len(t, res.Sinks, 1)
	require.Equal(t, dlq.ConditionAge, res.Sinks[0].Condition, "%+v", res.Sinks[0])
	require.Equal(t, 1, s.Attempts("late"))

	next, err := shortDeliver(t, d, event("next", "x"))
	require.NoError(t, err)
	assert.Equal(t, fanout.Delivered, next.Sinks[0].Outcome, "the slot the aged attempt took is free: %+v", next.Sinks[0])
	assert.Zero(t, d.Stats()[0].Queued)
}

// A Sync task withdrawn when QueueSize withdrawn tasks already wait in the queue keeps its slot
// until a worker takes it off the queue, and gives it back then: once the sink's worker is free
// again, nothing is queued.
func TestTaskWithdrawnBeyondTheGhostAllowanceGivesItsSlotBack(t *testing.T) {
	gate, entered := make(chan struct{}), make(chan struct{}, 1)
	slow := newRecSink()
	slow.fail = func(e *fanbridge.Event, _ int) error {
		if e.ID == "hold" {
			entered <- struct{}{}
			<-gate
		}
		return nil
	}
	d := newDispatcher(t, fanout.Config{
		// fast comes first, so each Sync dispatch runs it itself and leaves slow to its queue.
		Sinks: []fanout.SinkConfig{{Name: "fast", Sink: newRecSink()},
			{Name: "slow", Sink: slow, Concurrency: 1, QueueSize: 2}},
		Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"fast", "slow"}}},
		DLQ:    &memDLQ{},
	}, fanout.WithMode(fanout.Async))
	ctx := testContext(t)
	require.NoError(t, d.Dispatch(ctx, event("hold", "x")))
	recv(t, entered) // slow's only worker is held
	queued := func() int64 {
		for _, st := range d.Stats() {
			if st.Name == "slow" {
				return st.Queued
			}
		}
		return -1
	}
	// Each of these waits behind hold past its budget and is withdrawn; the first two leave a
	// ghost and give their slot back at once, the third finds the allowance full.
	for _, id := range []string{"w1", "w2", "w3"} {
		dctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		res, err := d.Deliver(dctx, event(id, "x"))
		cancel()
		require.NoError(t, err, id)
		require.Equal(t, fanout.DeadLettered, res.Sinks[1].Outcome, id)
	}
	require.EqualValues(t, 2, queued(), "hold, and w3, which keeps its slot while it waits in the queue")
	close(gate)
	require.Eventually(t, func() bool { return queued() == 0 }, testTimeout, time.Millisecond,
		"the worker skips w1 to w3 and frees w3's slot")
	for _, id := range []string{"a1", "a2"} {
		assert.NoError(t, d.Dispatch(ctx, event(id, "x")), "QueueSize 2, nothing queued")
	}
}
