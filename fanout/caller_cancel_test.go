package fanout_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/fanout"
	"github.com/fanbridge/fanbridge/retry"
	"github.com/fanbridge/fanbridge/retry/retrytest"
)

// A Sync caller that goes away during the last attempt its sink's policy allows is not
// dead-lettered for: the dispatch fails with context.Canceled, so that the sender retries, as it
// does when the caller goes away during any other attempt.
func TestCallerCancelDuringTheLastAttemptIsNotDeadLettered(t *testing.T) {
	clk := retrytest.NewClock(epoch)
	autoAdvance(t, clk)
	ctx, cancel := context.WithCancel(testContext(t))
	defer cancel()
	s := newRecSink()
	s.fail = func(_ *fanbridge.Event, attempt int) error {
		if attempt == 2 {
			cancel() // the client goes away during the second and last attempt
		}
		return errBoom
	}
	q := &memDLQ{}
	d := newDispatcher(t, fanout.Config{
		Sinks:  []fanout.SinkConfig{{Name: "s", Sink: s, Retry: retry.Policy{MaxAttempts: 2}}},
		Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"s"}}},
		DLQ:    q,
	}, fanout.WithClock(clk))
	res, err := d.Deliver(ctx, event("e1", "x"))
	require.ErrorIs(t, err, context.Canceled, "%+v", res)
	assert.ErrorIs(t, err, fanout.ErrUndelivered)
	require.Len(t, res.Sinks, 1)
	assert.Equal(t, fanout.Failed, res.Sinks[0].Outcome)
	assert.Equal(t, 2, res.Sinks[0].Attempts)
	assert.Equal(t, 2, s.Attempts("e1"))
	assert.Empty(t, q.Entries(), "the sender retries: nothing is dead-lettered")
	assert.Zero(t, d.Stats()[0].DeadLettered)
}
