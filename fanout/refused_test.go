package fanout_test

import (
	"fmt"
	"strings"
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

// A sink whose destination refuses some events for what they hold (sink.Refused) is up: the
// refusals are retried, but however many there are in a row they do not open its breaker, so
// the valid events that follow are delivered rather than dead-lettered circuit-open.
func TestRefusalsLeaveTheBreakerClosed(t *testing.T) {
	clk := retrytest.NewClock(epoch)
	autoAdvance(t, clk)
	s := newRecSink()
	s.fail = func(e *fanbridge.Event, _ int) error {
		if strings.HasPrefix(e.ID, "bad") {
			return sink.Refused(errBoom)
		}
		return nil
	}
	q := &memDLQ{}
	d := newDispatcher(t, fanout.Config{
		Sinks: []fanout.SinkConfig{{Name: "s", Sink: s, Retry: retry.Policy{MaxAttempts: 3},
			Breaker: fanout.Breaker{Failures: 2, Cooldown: time.Minute}}},
		Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"s"}}},
		DLQ:    q,
	}, fanout.WithClock(clk))
	ctx := testContext(t)

	for i := range 4 {
		id := fmt.Sprint("bad-", i)
		res, err := d.Deliver(ctx, event(id, "x"))
		require.NoError(t, err)
		require.Len(t, res.Sinks, 1)
		r := res.Sinks[0]
		assert.Equal(t, fanout.DeadLettered, r.Outcome)
		assert.Equal(t, dlq.ConditionAttempts, r.Condition, "a refusal is retried until the policy gives up")
		assert.Equal(t, 3, r.Attempts)
		assert.Equal(t, 3, s.Attempts(id))
	}
	res, err := d.Deliver(ctx, event("good", "x"))
	require.NoError(t, err)
	require.Len(t, res.Sinks, 1)
	assert.Equal(t, fanout.Delivered, res.Sinks[0].Outcome,
		"after 12 refusals in a row: condition %q, attempts %d", res.Sinks[0].Condition, res.Sinks[0].Attempts)
	assert.Equal(t, 1, s.Delivered("good"))
	assert.Equal(t, "closed", d.Stats()[0].Breaker)
}

// A refusal says the sink answered, so it ends a run of retryable failures as a delivery does:
// failures on either side of it are not counted together.
func TestRefusalEndsABreakerRunOfFailures(t *testing.T) {
	clk := retrytest.NewClock(epoch)
	s := newRecSink()
	s.fail = func(e *fanbridge.Event, _ int) error {
		switch {
		case strings.HasPrefix(e.ID, "down"):
			return errBoom
		case strings.HasPrefix(e.ID, "bad"):
			return sink.Refused(errBoom)
		}
		return nil
	}
	d := newDispatcher(t, fanout.Config{
		Sinks: []fanout.SinkConfig{{Name: "s", Sink: s, Retry: retry.Policy{MaxAttempts: 1},
			Breaker: fanout.Breaker{Failures: 2, Cooldown: time.Minute}}},
		Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"s"}}},
		DLQ:    &memDLQ{},
	}, fanout.WithClock(clk))
	ctx := testContext(t)
	deliver := func(id string) fanout.SinkResult {
		t.Helper()
		res, err := d.Deliver(ctx, event(id, "x"))
		require.NoError(t, err)
		require.Len(t, res.Sinks, 1)
		return res.Sinks[0]
	}
	for i := range 3 {
		assert.Equal(t, dlq.ConditionAttempts, deliver(fmt.Sprint("down-", i)).Condition)
		assert.Equal(t, dlq.ConditionAttempts, deliver(fmt.Sprint("bad-", i)).Condition)
	}
	assert.Equal(t, fanout.Delivered, deliver("good").Outcome, "no two failures in a row")
	assert.Equal(t, dlq.ConditionAttempts, deliver("down-3").Condition)
	assert.Equal(t, dlq.ConditionAttempts, deliver("down-4").Condition)
	assert.Equal(t, dlq.ConditionCircuitOpen, deliver("good-2").Condition, "two failures in a row open it")
}
