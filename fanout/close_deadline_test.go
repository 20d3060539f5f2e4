package fanout_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/dlq"
	"github.com/fanbridge/fanbridge/fanout"
	"github.com/fanbridge/fanbridge/retry"
)

// What Close does once its context has ended: every dead-letter write keeps its own DLQ timeout,
// and Close stops waiting once the dead-letter queue has taken no entry for the DLQ timeout, plus
// a grace for deliveries to notice.

// closeGrace is the grace Close's documentation gives deliveries to notice they were cut off.
const closeGrace = 100 * time.Millisecond

// closeSlack is the room the upper bounds on Close's duration leave a loaded machine.
const closeSlack = 500 * time.Millisecond

// hangingDLQ is a dead-letter queue whose Puts take nothing and return only when their context
// ends. It counts the Puts running.
type hangingDLQ struct {
	running atomic.Int32
	began   chan time.Time // when each Put began
}

func (q *hangingDLQ) Put(ctx context.Context, _ dlq.Entry) error {
	q.running.Add(1)
	defer q.running.Add(-1)
	q.began <- time.Now()
	<-ctx.Done()
	return ctx.Err()
}

// A delivery that its sink hands back after Close's deadline is dead-lettered then; when the
// queue hangs, the write is cut once the queue has taken nothing for the DLQ timeout since the
// deadline, and Close returns by then, plus the grace: with no write still running, so that the
// caller may close the queue.
func TestCloseCutsALateDeadLetterWriteToAHangingQueue(t *testing.T) {
	const dlqTimeout = 400 * time.Millisecond
	const noticeAfter = 300 * time.Millisecond // the sink's delay in noticing cancellation
	entered := make(chan struct{}, 1)
	slowToNotice := sinkFunc(func(ctx context.Context, _ *fanbridge.Event) error {
		entered <- struct{}{}
		<-ctx.Done()
		late := time.NewTimer(noticeAfter)
		defer late.Stop()
		<-late.C
		return ctx.Err()
	})
	q := &hangingDLQ{began: make(chan time.Time, 8)}
	d, err := fanout.New(fanout.Config{
		Sinks:  []fanout.SinkConfig{{Name: "s", Sink: slowToNotice, Retry: retry.Policy{MaxAttempts: 1}}},
		Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"s"}}},
		DLQ:    q,
	}, fanout.WithMode(fanout.Async), fanout.WithDLQTimeout(dlqTimeout))
	require.NoError(t, err)
	require.NoError(t, d.Dispatch(testContext(t), event("e1", "x")))
	recv(t, entered)

	ended, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	err = d.Close(ended)
	took := time.Since(start)
	assert.Zero(t, q.running.Load(), "a dead-letter write is still running after Close returned")
	require.GreaterOrEqual(t, recv(t, q.began).Sub(start), noticeAfter, "the write began after the deadline")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "1 deliveries neither delivered nor dead-lettered")
	assert.NotContains(t, err.Error(), "still in flight", "the cut-off write ended")
	assert.Less(t, took, dlqTimeout+closeGrace+closeSlack, "the deadline, the DLQ timeout and the grace")
}

// Deliveries that their sink hands back after Close's deadline, one after another, are all
// dead-lettered while the queue keeps taking them, however long past the deadline that goes:
// each write has its own DLQ timeout, not what is left of one begun at the deadline.
func TestCloseDeadLettersLateDeliveriesWhileTheQueueTakesThem(t *testing.T) {
	const (
		events     = 6
		dlqTimeout = 200 * time.Millisecond
		latency    = 80 * time.Millisecond // per write: the six take more than two DLQ timeouts
	)
	// turn[k] lets event k's Send return, once cut off; the write of event k opens turn[k+1].
	turn := make(map[string]chan struct{}, events+1)
	next := make(map[string]string, events)
	for k := range events + 1 {
		turn[fmt.Sprint("e", k)] = make(chan struct{})
		if k > 0 {
			next[fmt.Sprint("e", k-1)] = fmt.Sprint("e", k)
		}
	}
	var mu sync.Mutex
	open := func(id string) {
		mu.Lock()
		defer mu.Unlock()
		select {
		case <-turn[id]:
		default:
			close(turn[id])
		}
	}
	defer func() {
		for id := range turn {
			open(id)
		}
	}()
	entered := make(chan struct{}, events)
	turnTaker := sinkFunc(func(ctx context.Context, e *fanbridge.Event) error {
		entered <- struct{}{}
		<-ctx.Done()
		<-turn[e.ID]
		return ctx.Err()
	})
	q := &chainDLQ{latency: latency, next: func(e dlq.Entry) { open(next[e.Event.ID]) }}
	d, err := fanout.New(fanout.Config{
		Sinks: []fanout.SinkConfig{{Name: "s", Sink: turnTaker, Concurrency: events,
			Retry: retry.Policy{MaxAttempts: 1}}},
		Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"s"}}},
		DLQ:    q,
	}, fanout.WithMode(fanout.Async), fanout.WithDLQTimeout(dlqTimeout))
	require.NoError(t, err)
	ctx := testContext(t)
	for k := range events {
		require.NoError(t, d.Dispatch(ctx, event(fmt.Sprint("e", k), "x")))
	}
	for range events {
		recv(t, entered)
	}
	open("e0")

	ended, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	err = d.Close(ended)
	took := time.Since(start)
	require.NoError(t, err)
	require.Greater(t, took, 2*dlqTimeout, "the writes went on past the DLQ timeout")
	entries := q.Entries()
	require.Len(t, entries, events)
	for k, e := range entries {
		assert.Equal(t, fmt.Sprint("e", k), e.Event.ID, "one after another")
		assert.Equal(t, dlq.ConditionAge, e.Condition)
	}
}

// chainDLQ is a dead-letter queue whose writes take latency (within their context), and which
// calls next with each entry it has taken.
type chainDLQ struct {
	memDLQ
	latency time.Duration
	next    func(dlq.Entry)
}

func (q *chainDLQ) Put(ctx context.Context, e dlq.Entry) error {
	work := time.NewTimer(q.latency)
	defer work.Stop()
	select {
	case <-work.C:
	case <-ctx.Done():
		return ctx.Err()
	}
	if err := q.memDLQ.Put(ctx, e); err != nil {
		return err
	}
	q.next(e)
	return nil
}

// A sink that ignores cancellation holds its delivery past Close's deadline: Close waits for the
// DLQ timeout, in which the queue takes no entry, then the grace, and no longer, and says what it
// left.
func TestCloseGivesUpOnAStuckSendAfterTheDLQTimeoutAndGrace(t *testing.T) {
	const dlqTimeout = 500 * time.Millisecond
	release := make(chan struct{})
	defer close(release)
	entered := make(chan struct{}, 1)
	stuck := sinkFunc(func(context.Context, *fanbridge.Event) error {
		entered <- struct{}{}
		<-release // ignores its context: a broken sink
		return nil
	})
	q := &memDLQ{}
	d, err := fanout.New(fanout.Config{
		Sinks:  []fanout.SinkConfig{{Name: "s", Sink: stuck}},
		Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"s"}}},
		DLQ:    q,
	}, fanout.WithMode(fanout.Async), fanout.WithDLQTimeout(dlqTimeout))
	require.NoError(t, err)
	require.NoError(t, d.Dispatch(testContext(t), event("e1", "x")))
	recv(t, entered)

	ended, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	err = d.Close(ended)
	took := time.Since(start)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "1 deliveries still in flight")
	assert.Contains(t, err.Error(), "1 in a sink's Send that ignored cancellation")
	assert.GreaterOrEqual(t, took, dlqTimeout+closeGrace, "Close waits the DLQ timeout and the grace")
	assert.Less(t, took, dlqTimeout+closeGrace+closeSlack, "and no longer")
	assert.Empty(t, q.Entries())
}
