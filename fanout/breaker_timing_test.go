package fanout_test

import (
	"fmt"
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

// flakyBreakerSink returns a sink that fails each Send with a retryable error while down is set,
// and a Dispatcher that sends to it alone, one attempt per event, under clk, with breaker b.
func flakyBreakerSink(t *testing.T, clk *retrytest.Clock, b fanout.Breaker) (*fanout.Dispatcher, *recSink, *atomic.Bool) {
	t.Helper()
	down := new(atomic.Bool)
	s := newRecSink()
	s.fail = func(*fanbridge.Event, int) error {
		if down.Load() {
			return errBoom
		}
		return nil
	}
	d := newDispatcher(t, fanout.Config{
		Sinks:  []fanout.SinkConfig{{Name: "s", Sink: s, Retry: retry.Policy{MaxAttempts: 1}, Breaker: b}},
		Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"s"}}},
		DLQ:    &memDLQ{},
	}, fanout.WithClock(clk))
	return d, s, down
}

// The breaker opens after Failures consecutive failures: a delivery in between starts the count
// again, however many failures there are in all.
func TestBreakerCountsOnlyConsecutiveFailures(t *testing.T) {
	d, _, down := flakyBreakerSink(t, retrytest.NewClock(epoch), fanout.Breaker{Failures: 2, Cooldown: time.Minute})
	ctx := testContext(t)
	for i, fails := range []bool{true, false, true, false, true, false, true} {
		down.Store(fails)
		res, err := d.Deliver(ctx, event(fmt.Sprint("e", i), "x"))
		require.NoError(t, err)
		want := fanout.Delivered
		if fails {
			want = fanout.DeadLettered
		}
		require.Equal(t, want, res.Sinks[0].Outcome, "event %d: %+v", i, res.Sinks[0])
		require.Equal(t, "closed", d.Stats()[0].Breaker, "event %d: never two failures in a row", i)
	}
	res, err := d.Deliver(ctx, event("second in a row", "x"))
	require.NoError(t, err)
	assert.Equal(t, dlq.ConditionAttempts, res.Sinks[0].Condition)
	assert.Equal(t, "open", d.Stats()[0].Breaker, "two failures in a row")
}

// The breaker stays open for the whole Cooldown, and lets a probe through once it has passed.
func TestBreakerStaysOpenForTheWholeCooldown(t *testing.T) {
	const cooldown = 10 * time.Second
	clk := retrytest.NewClock(epoch)
	d, s, down := flakyBreakerSink(t, clk, fanout.Breaker{Failures: 1, Cooldown: cooldown})
	down.Store(true)
	ctx := testContext(t)
	deliver := func(id string) fanout.SinkResult {
		t.Helper()
		res, err := d.Deliver(ctx, event(id, "x"))
		require.NoError(t, err)
		return res.Sinks[0]
	}
	require.Equal(t, dlq.ConditionAttempts, deliver("e1").Condition, "opens the breaker")
	down.Store(false)
	clk.Advance(cooldown - time.Millisecond)
	r := deliver("e2")
	assert.Equal(t, dlq.ConditionCircuitOpen, r.Condition, "a millisecond of the cooldown is left: %+v", r)
	assert.Zero(t, s.Attempts("e2"))
	clk.Advance(time.Millisecond)
	r = deliver("e3")
	assert.Equal(t, fanout.Delivered, r.Outcome, "the cooldown is over: the probe goes: %+v", r)
	assert.Equal(t, "closed", d.Stats()[0].Breaker)
}
