package kafkasink_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/dlq"
	"github.com/fanbridge/fanbridge/dlq/dlqtest"
	"github.com/fanbridge/fanbridge/fanout"
	"github.com/fanbridge/fanbridge/retry"
	"github.com/fanbridge/fanbridge/sink"
	"github.com/fanbridge/fanbridge/sink/kafkasink"
)

// outageDeliveryTimeout is the delivery timeout of the sinks in these tests: the least the client
// takes. A Send waits for it, and as much again for the client's own failure to come first.
const outageDeliveryTimeout = time.Second

// outageBound is how long a Send may take in all, with room for a loaded machine.
const outageBound = 2*outageDeliveryTimeout + 3*time.Second

// brokerGone returns a sink whose client connected to a broker and produced through it, and
// then lost it: the broker closed, the client's connection with it.
func brokerGone(t *testing.T, opts ...kafkasink.Option) *kafkasink.Sink {
	t.Helper()
	c := newCluster(t, "events")
	s, err := kafkasink.Dial(kafkasink.ClientConfig{Brokers: c.ListenAddrs(), DeliveryTimeout: outageDeliveryTimeout},
		append([]kafkasink.Option{kafkasink.WithTopic("events"), kafkasink.WithCloseTimeout(100 * time.Millisecond)}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	require.NoError(t, s.Send(testContext(t), presenceEvent("warm")))
	c.Close()
	return s
}

// sendWithin runs send, which must return within outageBound, and returns its error and how long
// it took. A send that hangs fails the test; closing the sink at cleanup then ends it.
func sendWithin(t *testing.T, send func() error) (error, time.Duration) {
	t.Helper()
	type result struct {
		err  error
		took time.Duration
	}
	done := make(chan result, 1)
	start := time.Now()
	go func() {
		err := send()
		done <- result{err, time.Since(start)}
	}()
	select {
	case r := <-done:
		return r.err, r.took
	case <-time.After(outageBound + 5*time.Second):
		t.Fatalf("the Send still waits after %s, with a delivery timeout of %s", time.Since(start), outageDeliveryTimeout)
		return nil, 0
	}
}

// assertNoAcknowledgement checks that err says no acknowledgement came within the delivery timeout,
// and is retryable and counts against the sink's health as an outage does.
func assertNoAcknowledgement(t *testing.T, err error) {
	t.Helper()
	require.Error(t, err)
	assert.ErrorIs(t, err, kafkasink.ErrNoAcknowledgement)
	assert.ErrorIs(t, err, context.DeadlineExceeded, "classified like a deadline")
	assert.Equal(t, retry.ClassRetryable, retry.Classify(err), "%v", err)
	assert.False(t, sink.IsRefused(err), "an outage, not the broker's answer: %v", err)
}

// After the broker went away with a produce request unanswered, the client never fails the records
// behind it (the idempotent producer cannot know whether the broker stored them). A Send whose
// context has no deadline, or a later one, still returns once the delivery timeout and its margin
// have passed, with a retryable error; it does not wait for the broker to come back.
func TestSendEndsAfterTheDeliveryTimeoutWhenTheBrokerIsGone(t *testing.T) {
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
			s := brokerGone(t)
			ctx := tt.ctx(t)
			err, took := sendWithin(t, func() error { return s.Send(ctx, presenceEvent("during-outage")) })
			assertNoAcknowledgement(t, err)
			assert.Contains(t, err.Error(), "may still be delivered")
			assert.GreaterOrEqual(t, took, outageDeliveryTimeout, "not before the client's own delivery timeout")
			assert.Less(t, took, outageBound)
		})
	}
}

// A SendBatch waits as long as one Send would, for the whole batch, not that long for each event
// in turn.
func TestSendBatchEndsAfterTheDeliveryTimeoutWhenTheBrokerIsGone(t *testing.T) {
	s := brokerGone(t)
	events := []*fanbridge.Event{presenceEvent("b-0"), presenceEvent("b-1"), presenceEvent("b-2")}
	err, took := sendWithin(t, func() error { return s.SendBatch(context.Background(), events) })
	var be *sink.BatchError
	require.ErrorAs(t, err, &be)
	require.Len(t, be.Errs, len(events))
	for i := range events {
		assertNoAcknowledgement(t, be.Errs[i])
	}
	assert.Less(t, took, outageBound)
}

// The records of Sends that gave up keep their slots of WithMaxInFlight until the client is done
// with them, which in an outage it never is. A Send that finds every slot held waits no longer
// than the delivery timeout either, and its record is not produced.
func TestSendWaitingForASlotEndsAfterTheDeliveryTimeout(t *testing.T) {
	s := brokerGone(t, kafkasink.WithMaxInFlight(1))
	err, _ := sendWithin(t, func() error { return s.Send(context.Background(), presenceEvent("takes-the-slot")) })
	assertNoAcknowledgement(t, err)
	err, took := sendWithin(t, func() error { return s.Send(context.Background(), presenceEvent("finds-no-slot")) })
	assertNoAcknowledgement(t, err)
	assert.Contains(t, err.Error(), "not produced")
	assert.Less(t, took, outageBound)
}

// In fanout's Async mode no request's budget bounds an attempt. An event accepted while the broker
// is gone is retried as its policy says and dead-lettered when the policy gives up, for attempts,
// instead of being held in memory until the broker comes back.
func TestAsyncDispatcherDeadLettersWhileTheBrokerIsGone(t *testing.T) {
	ctx := testContext(t)
	s := brokerGone(t)
	memory := dlqtest.NewMemory()
	put := make(chan dlq.Entry, 1)
	queue := dlq.QueueFunc(func(ctx context.Context, e dlq.Entry) error {
		if err := memory.Put(ctx, e); err != nil {
			return err
		}
		put <- e
		return nil
	})
	d, err := fanout.New(fanout.Config{
		Sinks: []fanout.SinkConfig{{Name: "kafka", Sink: s,
			Retry: retry.Policy{MaxAttempts: 2, InitialInterval: time.Millisecond, MaxInterval: 10 * time.Millisecond}}},
		Routes: []fanout.Route{{Name: "all", Filter: fanout.All, Sinks: []string{"kafka"}}},
		DLQ:    queue,
	}, fanout.WithMode(fanout.Async), fanout.WithSinkClosing(false))
	require.NoError(t, err)
	t.Cleanup(func() {
		closeCtx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = d.Close(closeCtx)
	})

	start := time.Now()
	require.NoError(t, d.Dispatch(ctx, presenceEvent("accepted")))
	var entry dlq.Entry
	select {
	case entry = <-put:
	case <-time.After(2*outageBound + 5*time.Second):
		t.Fatalf("the event is still held after %s: two attempts should have ended within %s", time.Since(start), 2*outageBound)
	}
	assert.Less(t, time.Since(start), 2*outageBound)
	assert.Equal(t, "accepted", entry.Event.ID)
	assert.Equal(t, dlq.ConditionAttempts, entry.Condition)
	assert.Equal(t, 2, entry.Attempts)
	assert.Equal(t, retry.ClassRetryable, entry.Class)
	assert.Contains(t, entry.Error, kafkasink.ErrNoAcknowledgement.Error())
	assert.Equal(t, 1, memory.Len())
}
