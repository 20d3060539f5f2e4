package fanout_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/fanout"
	"github.com/fanbridge/fanbridge/retry"
)

// Settle waits for every configuration replaced before it was called, not only the last: an event
// accepted two Updates ago may still be dead-lettered to the first configuration's queue.
func TestSettleWaitsForEveryReplacedConfiguration(t *testing.T) {
	gate, entered := make(chan struct{}), make(chan struct{}, 1)
	s := newRecSink()
	s.fail = func(*fanbridge.Event, int) error {
		entered <- struct{}{}
		<-gate
		return errBoom
	}
	firstQ := &memDLQ{}
	cfg := fanout.Config{
		Sinks:  []fanout.SinkConfig{{Name: "s", Sink: s, Concurrency: 1, Retry: retry.Policy{MaxAttempts: 1}}},
		Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"s"}}},
		DLQ:    firstQ,
	}
	d := newDispatcher(t, cfg, fanout.WithMode(fanout.Async))
	ctx := testContext(t)
	require.NoError(t, d.Dispatch(ctx, event("e1", "x")))
	recv(t, entered) // e1, accepted under the first configuration, is in its Send
	for range 2 {
		cfg.DLQ = &memDLQ{}
		require.NoError(t, d.Update(cfg))
	}
	sctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	assert.ErrorIs(t, d.Settle(sctx), context.DeadlineExceeded, "e1 is still under way")

	close(gate)
	require.NoError(t, d.Settle(ctx))
	assert.True(t, firstQ.Has("e1", "s"), "dead-lettered to the queue of the configuration it was accepted under")
}
