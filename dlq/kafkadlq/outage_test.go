package kafkadlq_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fanbridge/fanbridge/dlq"
	"github.com/fanbridge/fanbridge/dlq/kafkadlq"
	"github.com/fanbridge/fanbridge/retry"
)

// outageDeliveryTimeout is the delivery timeout of the queue's client in these tests.
const outageDeliveryTimeout = time.Second

// outageBound is how long a Put may take in all: the delivery timeout, as much again for the
// margin, and room for a loaded machine.
const outageBound = 2*outageDeliveryTimeout + 3*time.Second

// queueWithBrokerGone returns a queue whose client stored an entry through a broker and then lost
// it: the broker closed, and the client's connection with it.
func queueWithBrokerGone(t *testing.T) *kafkadlq.Queue {
	t.Helper()
	c, cl := cluster(t, 1, kgo.RecordDeliveryTimeout(outageDeliveryTimeout))
	q := newQueue(t, cl)
	require.NoError(t, q.Put(testCtx(t), dlq.Entry{ID: "warm", Sink: "s"}))
	c.Close()
	return q
}

// putWithin runs a Put, which must return within outageBound, and returns its error and how long
// it took. A Put still waiting fails the test; the client's close at cleanup then ends it.
func putWithin(t *testing.T, put func() error) (error, time.Duration) {
	t.Helper()
	type result struct {
		err  error
		took time.Duration
	}
	done := make(chan result, 1)
	start := time.Now()
	go func() {
		err := put()
		done <- result{err, time.Since(start)}
	}()
	select {
	case r := <-done:
		return r.err, r.took
	case <-time.After(outageBound + 5*time.Second):
		t.Fatalf("the Put still waits after %s, with a delivery timeout of %s", time.Since(start), outageDeliveryTimeout)
		return nil, 0
	}
}

// The client keeps a record whose broker went away without answering until a broker answers. A
// Put whose context has no deadline, or a later one, still returns once the client's delivery
// timeout and its margin have passed, with a retryable error saying the entry may be written; it
// does not wait for the broker to come back.
func TestPutEndsAfterTheDeliveryTimeoutWhenTheBrokerIsGone(t *testing.T) {
	for _, tt := range []struct {
		name string
		ctx  func(t *testing.T) context.Context
	}{
		{name: "no deadline", ctx: func(*testing.T) context.Context { return context.Background() }},
		{name: "a later deadline", ctx: func(t *testing.T) context.Context {
			ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
			t.Cleanup(cancel)
			return ctx
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			q := queueWithBrokerGone(t)
			ctx := tt.ctx(t)
			err, took := putWithin(t, func() error { return q.Put(ctx, dlq.Entry{ID: "during-outage", Sink: "s"}) })
			require.Error(t, err)
			assert.ErrorIs(t, err, kafkadlq.ErrNoAcknowledgement)
			assert.ErrorIs(t, err, context.DeadlineExceeded)
			assert.NotErrorIs(t, err, kafkadlq.ErrBufferFull, "the client took the record")
			assert.Contains(t, err.Error(), "may still be written")
			assert.Equal(t, retry.ClassRetryable, retry.Classify(err), "%v", err)
			assert.GreaterOrEqual(t, took, outageDeliveryTimeout, "not before the client's own delivery timeout")
			assert.Less(t, took, outageBound)
		})
	}
}

// A caller's deadline nearer than the limit ends the Put as before, with the caller's error alone.
func TestPutUnderANearerDeadlineEndsWithIt(t *testing.T) {
	q := queueWithBrokerGone(t)
	ctx, cancel := context.WithTimeout(context.Background(), outageDeliveryTimeout/4)
	defer cancel()
	err, took := putWithin(t, func() error { return q.Put(ctx, dlq.Entry{ID: "during-outage", Sink: "s"}) })
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.NotErrorIs(t, err, kafkadlq.ErrNoAcknowledgement)
	assert.Less(t, took, outageDeliveryTimeout)
}

// A Put whose record waits for room in a buffer the outage filled, and whose wait the bound ends,
// never handed its record to the client: it fails with ErrBufferFull, which says nothing will be
// written, and not with ErrNoAcknowledgement, which says the record may still be.
func TestPutWaitingForRoomEndsAtTheBoundWithErrBufferFull(t *testing.T) {
	c, cl := cluster(t, 1, kgo.RecordDeliveryTimeout(outageDeliveryTimeout), kgo.MaxBufferedRecords(1))
	q := newQueue(t, cl)
	require.NoError(t, q.Put(testCtx(t), dlq.Entry{ID: "warm", Sink: "s"}))
	c.Close()
	err, _ := putWithin(t, func() error { return q.Put(context.Background(), dlq.Entry{ID: "takes-the-room", Sink: "s"}) })
	require.ErrorIs(t, err, kafkadlq.ErrNoAcknowledgement)
	err, took := putWithin(t, func() error { return q.Put(context.Background(), dlq.Entry{ID: "finds-none", Sink: "s"}) })
	require.ErrorIs(t, err, kafkadlq.ErrBufferFull)
	assert.NotErrorIs(t, err, kafkadlq.ErrNoAcknowledgement)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Contains(t, err.Error(), "will not be")
	assert.NotContains(t, err.Error(), "may still be written")
	assert.Less(t, took, outageBound)
}
