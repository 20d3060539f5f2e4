package kafkadlq_test

import (
	"fmt"
	"io"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fanbridge/fanbridge/dlq"
	"github.com/fanbridge/fanbridge/retry"
)

// A Queue has no Close of its own, so there is no second Close to return early: shutting down is
// closing the client, and the Puts in flight then, from any number of goroutines, fail with
// dlq.ErrClosed instead of reporting a record stored that the broker never acknowledged, or
// waiting on for ever.
func TestClosingTheClientUnderPutsInFlight(t *testing.T) {
	ctx := testCtx(t)
	c, cl := cluster(t, 1)
	q := newQueue(t, cl)
	_, closer := any(q).(io.Closer)
	require.False(t, closer, "a Queue that gained a Close must make every concurrent call wait for the first")
	require.NoError(t, q.Put(ctx, sampleEntry(t, "before")))

	_, arrived := hold(t, c, kmsg.Produce)
	const puts = 4
	results := make(chan error, puts)
	for i := range puts {
		e := sampleEntry(t, fmt.Sprintf("in-flight-%d", i))
		go func() { results <- q.Put(ctx, e) }()
	}
	waitFor(t, ctx, arrived, "the produce request")

	cl.Close()
	for range puts {
		err := waitFor(t, ctx, results, "a Put in flight")
		require.ErrorIs(t, err, dlq.ErrClosed)
		assert.False(t, retry.IsPermanent(err), "a closed client is no fault of the entry")
	}
	assert.ErrorIs(t, q.Put(ctx, sampleEntry(t, "after")), dlq.ErrClosed)
}

// A Delete writes with a client of its own, which the queue's client takes down with it: a Delete
// in flight fails with dlq.ErrClosed, as a Put does, and so does one that starts afterwards.
func TestClosingTheClientUnderADeleteInFlight(t *testing.T) {
	ctx := testCtx(t)
	c, cl := cluster(t, 1)
	q := newQueue(t, cl)
	require.NoError(t, q.Put(ctx, sampleEntry(t, "held")))

	_, arrived := hold(t, c, kmsg.Produce)
	res := make(chan error, 1)
	go func() { res <- q.Delete(ctx, "held") }()
	waitFor(t, ctx, arrived, "the produce request")

	cl.Close()
	err := waitFor(t, ctx, res, "the Delete in flight")
	require.ErrorIs(t, err, dlq.ErrClosed)
	assert.False(t, retry.IsPermanent(err))
	assert.ErrorIs(t, q.Delete(ctx, "held"), dlq.ErrClosed)
}
