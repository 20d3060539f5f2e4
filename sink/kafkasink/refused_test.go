package kafkasink_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/dlq"
	"github.com/fanbridge/fanbridge/dlq/dlqtest"
	"github.com/fanbridge/fanbridge/fanout"
	"github.com/fanbridge/fanbridge/internal/kafkatest"
	"github.com/fanbridge/fanbridge/retry"
	"github.com/fanbridge/fanbridge/sink"
	"github.com/fanbridge/fanbridge/sink/kafkasink"
)

// refuseBatches makes the broker refuse, with code, every produce request whose records hold
// marker, as a broker validating records (a schema check, a record policy) refuses a whole batch
// for one of them; it answers the others as usual. The client must not compress, so that the
// marker shows in the request. refused counts the requests refused.
func refuseBatches(c *kfake.Cluster, marker string, code *kerr.Error) (refused func() int) {
	var mu sync.Mutex
	n := 0
	c.ControlKey(kmsg.Produce.Int16(), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		resp, hit := kafkatest.Refusal(req.(*kmsg.ProduceRequest), marker, code)
		if !hit {
			return nil, nil, false
		}
		mu.Lock()
		n++
		mu.Unlock()
		return resp, nil, true
	})
	return func() int {
		mu.Lock()
		defer mu.Unlock()
		return n
	}
}

// refusingDispatcher returns a Sync dispatcher over a sink on the topic "events" of c, which
// refuses with INVALID_RECORD every batch holding an event whose ID begins with "bad-".
func refusingDispatcher(t *testing.T, c *kfake.Cluster, policy retry.Policy, opts ...kgo.Opt) (*fanout.Dispatcher, *dlqtest.Memory) {
	t.Helper()
	cl := newClient(t, c, append([]kgo.Opt{kgo.ProducerBatchCompression(kgo.NoCompression())}, opts...)...)
	s := newSink(t, cl, kafkasink.WithTopic("events"))
	require.NoError(t, s.Send(testContext(t), presenceEvent("warm")))
	refuseBatches(c, "bad-", kerr.InvalidRecord)
	queue := dlqtest.NewMemory()
	d, err := fanout.New(fanout.Config{
		Sinks:  []fanout.SinkConfig{{Name: "kafka", Sink: s, Concurrency: 64, Retry: policy}},
		Routes: []fanout.Route{{Name: "all", Filter: fanout.All, Sinks: []string{"kafka"}}},
		DLQ:    queue,
	}, fanout.WithSinkClosing(false))
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, d.Close(testContext(t))) })
	return d, queue
}

// Invalid events in a row, each refused at every one of its attempts (20 refusals, the breaker's
// default threshold), are dead-lettered when their policy gives up, and do not open fanout's
// breaker: the broker that refuses them is up, and the valid event that follows is delivered.
func TestInvalidEventsLeaveTheBreakerClosed(t *testing.T) {
	ctx := testContext(t)
	c := newCluster(t, "events")
	d, queue := refusingDispatcher(t, c, retry.Policy{InitialInterval: time.Millisecond, Jitter: retry.NoJitter})

	for i := range 4 {
		res, err := d.Deliver(ctx, presenceEvent(fmt.Sprint("bad-", i)))
		require.NoError(t, err)
		require.Len(t, res.Sinks, 1)
		assert.Equal(t, dlq.ConditionAttempts, res.Sinks[0].Condition, "bad-%d is refused at every attempt", i)
		assert.Equal(t, retry.DefaultMaxAttempts, res.Sinks[0].Attempts)
	}
	res, err := d.Deliver(ctx, presenceEvent("good"))
	require.NoError(t, err)
	require.Len(t, res.Sinks, 1)
	assert.Equal(t, fanout.Delivered, res.Sinks[0].Outcome,
		"after 20 refusals: condition %q, attempts %d", res.Sinks[0].Condition, res.Sinks[0].Attempts)
	assert.Equal(t, "closed", d.Stats()[0].Breaker)
	assert.Equal(t, 4, queue.Len())
}

// One invalid event among 30 valid ones sent at once: the client fails with INVALID_RECORD every
// record it holds for the partition, 31 refusals and more as they are retried, and none of them
// opens the breaker, so that no valid event is dead-lettered circuit-open.
func TestInvalidEventDoesNotOpenTheBreakerOnItsBatchMates(t *testing.T) {
	ctx := testContext(t)
	c := newCluster(t, "events")
	d, _ := refusingDispatcher(t, c, retry.Policy{InitialInterval: 20 * time.Millisecond})

	var wg sync.WaitGroup
	results := make([]fanout.SinkResult, 31)
	for i := range results {
		id := fmt.Sprint("good-", i)
		if i == 15 {
			id = "bad-0"
		}
		wg.Go(func() {
			res, err := d.Deliver(ctx, presenceEvent(id))
			if assert.NoError(t, err) && assert.Len(t, res.Sinks, 1) {
				results[i] = res.Sinks[0]
			}
		})
	}
	waitGroup(t, &wg)
	for i, r := range results {
		assert.NotEqual(t, dlq.ConditionCircuitOpen, r.Condition, "event %d", i)
	}
	assert.Equal(t, dlq.ConditionAttempts, results[15].Condition, "the invalid event is refused at every attempt")
	assert.Equal(t, "closed", d.Stats()[0].Breaker)
}

// The client fails every record it holds for the partition of a batch refused for one invalid
// event, and with a policy without jitter their retries all come after the same interval: were
// they produced again together, the client would batch them together, and the valid events would
// be refused with the invalid one at every attempt. Send asks for a random wait after such a
// refusal, spread over a few lingers, so that the valid events part from the invalid one and are
// delivered.
func TestBatchMatesOfAnInvalidEventPartFromIt(t *testing.T) {
	ctx := testContext(t)
	c := newCluster(t, "events")
	// Attempts enough that a valid event shares the invalid one's batch at every one of them only by
	// a chance too small to fail the test.
	d, _ := refusingDispatcher(t, c, retry.Policy{InitialInterval: time.Millisecond, Jitter: retry.NoJitter, MaxAttempts: 10})

	var wg sync.WaitGroup
	results := make([]fanout.SinkResult, 31)
	for i := range results {
		id := fmt.Sprint("good-", i)
		if i == 15 {
			id = "bad-0"
		}
		wg.Go(func() {
			res, err := d.Deliver(ctx, presenceEvent(id))
			if assert.NoError(t, err) && assert.Len(t, res.Sinks, 1) {
				results[i] = res.Sinks[0]
			}
		})
	}
	waitGroup(t, &wg)
	refusedOnce, lost := 0, 0
	for i, r := range results {
		if i == 15 {
			assert.Equal(t, dlq.ConditionAttempts, r.Condition, "the invalid event is refused at every attempt")
			continue
		}
		assert.NotEqual(t, dlq.ConditionCircuitOpen, r.Condition, "event %d", i)
		if r.Outcome != fanout.Delivered {
			// Every retry of the invalid event fails what the client holds for the partition at
			// that moment, so a valid event buffered then at each of its attempts is refused too:
			// rare, as their waits are random, but not impossible on a loaded machine.
			lost++
			t.Logf("event %d: condition %q after %d attempts", i, r.Condition, r.Attempts)
		} else if r.Attempts > 1 {
			refusedOnce++
		}
	}
	require.NotZero(t, refusedOnce, "no valid event shared a batch with the invalid one: the test tested nothing")
	// Retried together, without the random waits, all thirty are refused at every attempt.
	assert.LessOrEqual(t, lost, 3, "valid events refused at every attempt along with the invalid one")
	t.Logf("%d valid events were refused with the invalid one and delivered later, %d at every attempt", refusedOnce, lost)
}

// With no linger, the random waits after refusals of batches spread over 10 ms: the records of a
// refused batch, all failed at once, come back at times far enough apart to be batched apart.
func TestRefusalWaitsSpreadOverTenMilliseconds(t *testing.T) {
	ctx := testContext(t)
	c := newCluster(t, "events")
	s := newSink(t, newClient(t, c, kgo.ProducerLinger(0)), kafkasink.WithTopic("events"))
	require.NoError(t, s.Send(ctx, presenceEvent("warm")))
	fault := c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "events", Err: kerr.InvalidRecord, Count: -1})
	defer fault.Remove()

	// Each wait is drawn from [0, 10 ms): that none of 30 reaches 5 ms happens about once in a
	// billion runs.
	var longest time.Duration
	for i := range 30 {
		err := s.Send(ctx, presenceEvent(fmt.Sprintf("refused-%d", i)))
		require.True(t, sink.IsRefused(err), "%v", err)
		wait, ok := retry.RetryAfter(err)
		require.True(t, ok, "a refusal asks for a random wait: %v", err)
		assert.Less(t, wait, 10*time.Millisecond)
		longest = max(longest, wait)
	}
	assert.GreaterOrEqual(t, longest, 5*time.Millisecond, "the longest of 30 waits")
}

// With a policy of neither budget (no attempt budget, no MaxAge), which fanout.New accepts, an
// event the broker refuses for what it holds is retried for as long as an Async Dispatcher runs,
// and the next event of its ordering key waits behind it; Close's deadline dead-letters both, for
// age, as the Errors section of the package documentation says.
func TestInvalidEventWithAnUnboundedPolicyIsRetriedUntilClose(t *testing.T) {
	ctx := testContext(t)
	c := newCluster(t, "events")
	cl := newClient(t, c, kgo.ProducerBatchCompression(kgo.NoCompression()))
	s := newSink(t, cl, kafkasink.WithTopic("events"))
	refuseBatches(c, "bad-", kerr.InvalidRecord)
	const enough = 10
	var refusals atomic.Int64
	refusedEnough := make(chan struct{})
	counting := sink.Func(func(ctx context.Context, e *fanbridge.Event) error {
		err := s.Send(ctx, e)
		if sink.IsRefused(err) && refusals.Add(1) == enough {
			close(refusedEnough)
		}
		return err
	})
	queue := dlqtest.NewMemory()
	d, err := fanout.New(fanout.Config{
		Sinks: []fanout.SinkConfig{{Name: "kafka", Sink: counting,
			Retry: retry.Policy{MaxAttempts: -1, InitialInterval: time.Millisecond, MaxInterval: 5 * time.Millisecond}}},
		Routes: []fanout.Route{{Name: "all", Filter: fanout.All, Sinks: []string{"kafka"}}},
		DLQ:    queue,
	}, fanout.WithMode(fanout.Async), fanout.WithSinkClosing(false),
		fanout.WithOrderingKey(func(e *fanbridge.Event) string { return e.Metadata["lane"] }))
	require.NoError(t, err)
	t.Cleanup(func() { _ = d.Close(testContext(t)) }) // when the test fails before its own Close
	inLane := func(id string) *fanbridge.Event {
		e := presenceEvent(id)
		e.Metadata = map[string]string{"lane": "a"}
		return e
	}
	require.NoError(t, d.Dispatch(ctx, inLane("bad-0")))
	require.NoError(t, d.Dispatch(ctx, inLane("good-behind")))
	recv(t, refusedEnough)
	st := d.Stats()[0]
	assert.Zero(t, st.DeadLettered, "still retried after %d refusals", enough)
	assert.Zero(t, st.Delivered, "the event behind it waits")

	closeCtx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	require.NoError(t, d.Close(closeCtx))
	conds := map[string]dlq.Condition{}
	require.NoError(t, queue.List(ctx, func(e dlq.Entry) error { conds[e.Event.ID] = e.Condition; return nil }))
	assert.Equal(t, map[string]dlq.Condition{"bad-0": dlq.ConditionAge, "good-behind": dlq.ConditionAge}, conds,
		"both dead-lettered by Close")
}
