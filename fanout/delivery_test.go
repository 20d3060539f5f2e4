package fanout_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/dlq"
	"github.com/fanbridge/fanbridge/fanout"
	"github.com/fanbridge/fanbridge/retry"
	"github.com/fanbridge/fanbridge/retry/retrytest"
	"github.com/fanbridge/fanbridge/sink"
)

// failFirst fails the first n attempts of every event.
func failFirst(n int, err error) func(*fanbridge.Event, int) error {
	return func(_ *fanbridge.Event, attempt int) error {
		if attempt <= n {
			return err
		}
		return nil
	}
}

func TestOnlyFailedSinksAreRetried(t *testing.T) {
	clk := retrytest.NewClock(epoch)
	autoAdvance(t, clk)
	a, b, c := newRecSink(), newRecSink(), newRecSink()
	b.fail = failFirst(2, errBoom)
	d := newDispatcher(t, fanout.Config{
		Sinks: []fanout.SinkConfig{{Name: "a", Sink: a}, {Name: "b", Sink: b}, {Name: "c", Sink: c}},
		Routes: []fanout.Route{
			{Name: "r", Filter: fanout.All, Sinks: []string{"a", "b", "c"}},
		},
	}, fanout.WithClock(clk))

	res, err := d.Deliver(testContext(t), event("e1", "x"))
	require.NoError(t, err)
	assert.Equal(t, 1, a.Attempts("e1"), "a succeeded at once and must not be sent again")
	assert.Equal(t, 3, b.Attempts("e1"))
	assert.Equal(t, 1, c.Attempts("e1"))
	for _, s := range []*recSink{a, b, c} {
		assert.Equal(t, 1, s.Delivered("e1"))
	}
	require.Len(t, res.Sinks, 3)
	assert.Equal(t, 3, res.Sinks[1].Attempts)
	assert.Equal(t, fanout.Delivered, res.Sinks[1].Outcome)
	assert.Equal(t, 3, res.Count(fanout.Delivered))
}

func TestDeadLetterEntries(t *testing.T) {
	const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	long := strings.Repeat("é", dlq.MaxErrorText) // 2 bytes a rune: the cap falls mid-rune
	tests := []struct {
		name         string
		policy       retry.Policy
		fail         func(*fanbridge.Event, int) error
		meta         map[string]string
		wantCond     dlq.Condition
		wantClass    retry.Class
		wantAttempts int
		wantTrace    string
		wantSpan     time.Duration // LastAttempt - FirstAttempt
	}{
		{
			name:   "permanent goes at once",
			policy: retry.Policy{MaxAttempts: 5, Jitter: retry.NoJitter},
			fail: func(*fanbridge.Event, int) error {
				return retry.Permanent(errors.New("rpc error: code = InvalidArgument"))
			},
			meta:     map[string]string{fanbridge.MetaTraceparent: traceparent},
			wantCond: dlq.ConditionPermanent, wantClass: retry.ClassPermanent, wantAttempts: 1,
			wantTrace: "4bf92f3577b34da6a3ce929d0e0e4736",
		},
		{
			name:     "attempts run out",
			policy:   retry.Policy{MaxAttempts: 3, InitialInterval: 100 * time.Millisecond, Jitter: retry.NoJitter},
			fail:     func(*fanbridge.Event, int) error { return errBoom },
			meta:     map[string]string{fanbridge.MetaTraceparent: "not-a-traceparent"},
			wantCond: dlq.ConditionAttempts, wantClass: retry.ClassRetryable, wantAttempts: 3,
			wantSpan: 300 * time.Millisecond, // waits of 100ms and 200ms
		},
		{
			name: "age runs out",
			policy: retry.Policy{MaxAttempts: -1, MaxAge: time.Second, InitialInterval: 300 * time.Millisecond,
				Jitter: retry.NoJitter},
			fail:     func(*fanbridge.Event, int) error { return errBoom },
			wantCond: dlq.ConditionAge, wantClass: retry.ClassRetryable, wantAttempts: 3,
			wantSpan: 900 * time.Millisecond, // waits of 300ms and 600ms; 1.2s more would cross 1s
		},
		{
			name:     "long error text is capped on a rune boundary",
			policy:   retry.Policy{MaxAttempts: 1},
			fail:     func(*fanbridge.Event, int) error { return errors.New("x" + long) },
			wantCond: dlq.ConditionAttempts, wantClass: retry.ClassRetryable, wantAttempts: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := retrytest.NewClock(epoch)
			autoAdvance(t, clk)
			ok, bad := newRecSink(), newRecSink()
			bad.fail = tt.fail
			q := &memDLQ{}
			d := newDispatcher(t, fanout.Config{
				Sinks: []fanout.SinkConfig{{Name: "ok", Sink: ok}, {Name: "bad", Sink: bad, Retry: tt.policy}},
				Routes: []fanout.Route{
					{Name: "first", Filter: typeIs("x"), Sinks: []string{"ok"}},
					{Name: "second", Filter: fanout.All, Sinks: []string{"ok", "bad"}},
					{Name: "third", Filter: fanout.All, Sinks: []string{"bad"}},
				},
				DLQ: q,
			}, fanout.WithClock(clk))
			e := event("e1", "x")
			e.Metadata = tt.meta
			res, err := d.Deliver(testContext(t), e)
			require.NoError(t, err, "dead-lettered counts as handled")
			assert.Equal(t, 1, ok.Delivered("e1"))
			assert.Equal(t, 0, bad.Delivered("e1"))
			assert.Equal(t, tt.wantAttempts, bad.Attempts("e1"))

			entries := q.Entries()
			require.Len(t, entries, 1, "one entry per (event, failed sink)")
			got := entries[0]
			assert.Equal(t, "e1", got.Event.ID)
			assert.Equal(t, e.Raw, got.Event.Raw)
			assert.Equal(t, "bad", got.Sink)
			assert.Equal(t, "second", got.Route, "the first matching route that named the sink")
			assert.Equal(t, tt.wantCond, got.Condition)
			assert.Equal(t, tt.wantClass, got.Class)
			assert.Equal(t, tt.wantAttempts, got.Attempts)
			assert.Equal(t, tt.wantTrace, got.TraceID)
			assert.Equal(t, epoch, got.FirstAttempt)
			assert.Equal(t, tt.wantSpan, got.LastAttempt.Sub(got.FirstAttempt))
			assert.LessOrEqual(t, len(got.Error), dlq.MaxErrorText)
			assert.True(t, utf8.ValidString(got.Error))
			assert.NotEmpty(t, got.Error)

			require.Len(t, res.Sinks, 2)
			assert.Equal(t, fanout.DeadLettered, res.Sinks[1].Outcome)
			assert.Equal(t, tt.wantCond, res.Sinks[1].Condition)
			assert.Equal(t, tt.wantAttempts, res.Sinks[1].Attempts)
		})
	}
}

func TestFailureWithoutDLQOrWithFailingDLQ(t *testing.T) {
	failing := &memDLQ{fail: func(dlq.Entry) error { return retry.Permanent(errors.New("disk full")) }}
	tests := []struct {
		name  string
		queue dlq.Queue
		want  error
		text  string
	}{
		{"no DLQ", nil, fanout.ErrNoDLQ, "fanout: no dead-letter queue"},
		{"DLQ write fails", failing, fanout.ErrDLQ, "fanout: dead-letter queue write failed: disk full"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, bad := newRecSink(), newRecSink()
			bad.fail = func(*fanbridge.Event, int) error { return retry.Permanent(errBoom) }
			d := newDispatcher(t, fanout.Config{
				Sinks:  []fanout.SinkConfig{{Name: "ok", Sink: ok}, {Name: "bad", Sink: bad}},
				Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"ok", "bad"}}},
				DLQ:    tt.queue,
			})
			err := d.Dispatch(testContext(t), event("e1", "x"))
			require.Error(t, err, "the intake must answer 503 so that the sender retries")
			assert.ErrorIs(t, err, fanout.ErrUndelivered)
			assert.ErrorIs(t, err, tt.want)
			assert.NotErrorIs(t, err, fanbridge.ErrNoMatch)
			assert.NotErrorIs(t, err, fanbridge.ErrDuplicate)
			var de *fanout.DeliveryError
			require.ErrorAs(t, err, &de)
			assert.Equal(t, `fanout: event "e1" not delivered to sink "bad" (boom; `+tt.text+`)`, err.Error())
			require.Len(t, de.Failed, 1)
			assert.Equal(t, "bad", de.Failed[0].Sink)
			assert.Equal(t, fanout.Failed, de.Failed[0].Outcome)
			assert.ErrorIs(t, de.Failed[0].DeadLetterErr, tt.want)
			assert.Equal(t, 1, ok.Delivered("e1"))
		})
	}
}

func TestDLQWriteIsRetriedWithinItsTimeout(t *testing.T) {
	bad := newRecSink()
	bad.fail = func(*fanbridge.Event, int) error { return retry.Permanent(errBoom) }
	q := &memDLQ{}
	q.fail = func(dlq.Entry) error {
		if q.puts < 3 {
			return errors.New("dlq: transient")
		}
		return nil
	}
	d := newDispatcher(t, fanout.Config{
		Sinks:  []fanout.SinkConfig{{Name: "bad", Sink: bad}},
		Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"bad"}}},
		DLQ:    q,
	})
	require.NoError(t, d.Dispatch(testContext(t), event("e1", "x")))
	assert.True(t, q.Has("e1", "bad"))
}

func TestRetryTimingWithFakeClock(t *testing.T) {
	clk := retrytest.NewClock(epoch)
	s := newRecSink()
	s.fail = func(_ *fanbridge.Event, n int) error {
		switch n {
		case 1, 2:
			return errBoom
		case 3:
			return retry.After(errBoom, 2*time.Second) // the sink asks for a longer wait
		}
		return nil
	}
	d := newDispatcher(t, fanout.Config{
		Sinks: []fanout.SinkConfig{{Name: "s", Sink: s, Retry: retry.Policy{
			InitialInterval: 100 * time.Millisecond, Multiplier: 2, MaxInterval: 10 * time.Second,
			Jitter: retry.NoJitter, MaxAttempts: 5}}},
		Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"s"}}},
	}, fanout.WithClock(clk))
	ctx := testContext(t)
	done := make(chan error, 1)
	go func() { done <- d.Dispatch(ctx, event("e1", "x")) }()

	for _, want := range []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 2 * time.Second} {
		require.NoError(t, clk.WaitTimers(ctx, 1))
		due, ok := clk.NextDue()
		require.True(t, ok)
		assert.Equal(t, want, due)
		clk.Advance(due)
	}
	require.NoError(t, recv(t, done))
	assert.Equal(t, 4, s.Attempts("e1"))
	assert.Equal(t, 1, s.Delivered("e1"))
}

func TestSyncBudgetRunsOutToAgeAndKeepsAReserve(t *testing.T) {
	// The retry waits never fire (fake clock, never advanced): only the request budget ends them.
	clk := retrytest.NewClock(epoch)
	s := newRecSink()
	s.fail = func(*fanbridge.Event, int) error { return errBoom }
	q := &memDLQ{}
	d := newDispatcher(t, fanout.Config{
		Sinks:  []fanout.SinkConfig{{Name: "s", Sink: s, Retry: retry.Policy{MaxAttempts: -1}}},
		Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"s"}}},
		DLQ:    q,
	}, fanout.WithClock(clk), fanout.WithDLQReserve(150*time.Millisecond))

	ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
	defer cancel()
	deadline, _ := ctx.Deadline()
	res, err := d.Deliver(ctx, event("e1", "x"))
	require.NoError(t, err)
	assert.True(t, time.Now().Before(deadline), "the DLQ write must fit inside the caller's budget")
	require.Len(t, res.Sinks, 1)
	assert.Equal(t, fanout.DeadLettered, res.Sinks[0].Outcome)
	require.Len(t, q.Entries(), 1)
	got := q.Entries()[0]
	assert.Equal(t, dlq.ConditionAge, got.Condition)
	assert.Equal(t, 1, got.Attempts)
	assert.Equal(t, retry.ClassRetryable, got.Class)
	assert.Contains(t, got.Error, "boom", "the sink's error, not our deadline, is what the entry keeps")
}

func TestNoDeadlineUsesDefaultBudget(t *testing.T) {
	clk := retrytest.NewClock(epoch)
	s := newRecSink()
	s.fail = func(*fanbridge.Event, int) error { return errBoom }
	q := &memDLQ{}
	d := newDispatcher(t, fanout.Config{
		Sinks:  []fanout.SinkConfig{{Name: "s", Sink: s, Retry: retry.Policy{MaxAttempts: -1}}},
		Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"s"}}},
		DLQ:    q,
	}, fanout.WithClock(clk), fanout.WithBudget(200*time.Millisecond))
	start := time.Now()
	require.NoError(t, d.Dispatch(context.Background(), event("e1", "x")))
	assert.Less(t, time.Since(start), 5*time.Second)
	assert.True(t, q.Has("e1", "s"))
}

func TestCallerCancelMidRetryFailsWithoutDeadLetterThenRetryGoesOnlyToFailedSink(t *testing.T) {
	clk := retrytest.NewClock(epoch)
	a, b := newRecSink(), newRecSink()
	b.fail = failFirst(1, errBoom)
	a.sent = make(chan string, 1)
	q := &memDLQ{}
	d := newDispatcher(t, fanout.Config{
		Sinks:  []fanout.SinkConfig{{Name: "a", Sink: a}, {Name: "b", Sink: b}},
		Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"a", "b"}}},
		DLQ:    q,
	}, fanout.WithClock(clk))

	ctx, cancel := context.WithCancel(testContext(t))
	done := make(chan error, 1)
	go func() { done <- d.Dispatch(ctx, event("e1", "x")) }()
	require.NoError(t, clk.WaitTimers(testContext(t), 1)) // b is waiting to retry
	require.Equal(t, "e1", recv(t, a.sent))               // a has it
	cancel()                                              // the client went away
	err := recv(t, done)
	require.Error(t, err)
	assert.ErrorIs(t, err, context.Canceled)
	assert.ErrorIs(t, err, fanout.ErrUndelivered)
	assert.Empty(t, q.Entries(), "our caller's cancellation is no reason to dead-letter")

	// The sender retries: only b gets it.
	res, err := d.Deliver(testContext(t), event("e1", "x"))
	require.NoError(t, err)
	assert.Equal(t, 1, a.Attempts("e1"))
	assert.Equal(t, 1, a.Delivered("e1"))
	assert.Equal(t, 1, b.Delivered("e1"))
	require.Len(t, res.Sinks, 2)
	assert.Equal(t, fanout.SkippedDuplicate, res.Sinks[0].Outcome)
	assert.Equal(t, fanout.Delivered, res.Sinks[1].Outcome)

	// And a third time it is a duplicate.
	err = d.Dispatch(testContext(t), event("e1", "x"))
	assert.ErrorIs(t, err, fanbridge.ErrDuplicate)
}

func TestSinkStuckInQueuePastBudgetIsDeadLetteredWithoutAttempt(t *testing.T) {
	// One worker, held by a blocked event: the next event's task for that sink cannot start, and
	// the budget runs out before its turn comes. The dispatch must answer in time anyway, whether
	// the stuck task is the one the caller runs itself or one waiting in the queue.
	for _, order := range [][]string{{"slow", "fast"}, {"fast", "slow"}} {
		t.Run(order[0]+"-first", func(t *testing.T) {
			gate := make(chan struct{})
			slow := newRecSink()
			slow.fail = func(e *fanbridge.Event, _ int) error {
				if e.ID == "blocker" {
					<-gate
				}
				return nil
			}
			fast := newRecSink()
			q := &memDLQ{}
			d := newDispatcher(t, fanout.Config{
				Sinks: []fanout.SinkConfig{{Name: "slow", Sink: slow, Concurrency: 1}, {Name: "fast", Sink: fast}},
				Routes: []fanout.Route{
					{Name: "block", Filter: typeIs("block"), Sinks: []string{"slow"}},
					{Name: "r", Filter: typeIs("x"), Sinks: order},
				},
				DLQ: q,
			}, fanout.WithDLQReserve(50*time.Millisecond), fanout.WithMode(fanout.Async))
			defer close(gate)
			// Async: the blocker holds slow's only worker (and Send slot); Deliver is Sync.
			require.NoError(t, d.Dispatch(testContext(t), event("blocker", "block")))
			require.Eventually(t, func() bool { return slow.Attempts("blocker") == 1 }, 5*time.Second, time.Millisecond)

			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			res, err := d.Deliver(ctx, event("e1", "x"))
			require.NoError(t, err)
			got := map[string]fanout.SinkResult{}
			for _, r := range res.Sinks {
				got[r.Sink] = r
			}
			assert.Equal(t, fanout.DeadLettered, got["slow"].Outcome)
			assert.Equal(t, 0, got["slow"].Attempts)
			assert.Equal(t, dlq.ConditionAge, got["slow"].Condition)
			assert.Equal(t, fanout.Delivered, got["fast"].Outcome)
			require.True(t, q.Has("e1", "slow"))
			assert.Equal(t, dlq.ConditionAge, q.Entries()[0].Condition)
			assert.Equal(t, 0, q.Entries()[0].Attempts)
		})
	}
}

// holdBlock returns a Send that holds the event "block" until gate closes, saying so on entered,
// and takes every other event at once.
func holdBlock(entered chan<- struct{}, gate <-chan struct{}) sink.Func {
	return func(_ context.Context, e *fanbridge.Event) error {
		if e.ID == "block" {
			entered <- struct{}{}
			<-gate
		}
		return nil
	}
}

func newBarrierDLQ(n int) *barrierDLQ {
	return &barrierDLQ{n: n, all: make(chan struct{}), entered: make(chan struct{}, n)}
}

// blockedB is two sinks sending with send: a, and b with one worker, which the event "block"
// (routed to b alone) can hold; events of type "x" go to both.
func blockedB(send sink.Func, q dlq.Queue) fanout.Config {
	return fanout.Config{
		Sinks: []fanout.SinkConfig{
			{Name: "a", Sink: send},
			{Name: "b", Sink: send, Concurrency: 1},
		},
		Routes: []fanout.Route{
			{Name: "block", Filter: typeIs("block"), Sinks: []string{"b"}},
			{Name: "r", Filter: typeIs("x"), Sinks: []string{"a", "b"}},
		},
		DLQ: q,
	}
}

// barrierDLQ holds every Put until n Puts are under way at once, then lets them all through.
type barrierDLQ struct {
	memDLQ
	n       int
	mu      sync.Mutex
	waiting int
	all     chan struct{}
	entered chan struct{}
}

func (q *barrierDLQ) Put(ctx context.Context, e dlq.Entry) error {
	q.mu.Lock()
	q.waiting++
	if q.waiting == q.n {
		close(q.all)
	}
	q.mu.Unlock()
	q.entered <- struct{}{}
	select {
	case <-q.all:
	case <-ctx.Done():
		return ctx.Err()
	}
	return q.memDLQ.Put(ctx, e)
}

// When the budget runs out with tasks still queued behind busy workers, in several sinks, their
// dead-letter writes run side by side: the answer waits for the slowest write, not for the sum
// of all of them (three 600ms writes behind eventbridge.Handler's 4s would answer after
// EventBridge's 5s). The dead-letter queue here lets a write finish only once all three are under
// way at once, so writes made one after another never finish at all.
func TestWithdrawnTasksAreDeadLetteredSideBySide(t *testing.T) {
	gate := make(chan struct{})
	entered := make(chan struct{}, 3)
	blocker := holdBlock(entered, gate)
	q := newBarrierDLQ(3)
	var scs []fanout.SinkConfig
	for _, n := range []string{"a", "b", "c"} {
		scs = append(scs, fanout.SinkConfig{Name: n, Sink: blocker, Concurrency: 1})
	}
	d := newDispatcher(t, fanout.Config{Sinks: scs,
		Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"a", "b", "c"}}}, DLQ: q},
		fanout.WithMode(fanout.Async), fanout.WithDLQReserve(50*time.Millisecond), fanout.WithDLQTimeout(testTimeout))
	defer close(gate)
	ctx := testContext(t)
	require.NoError(t, d.Dispatch(ctx, event("block", "x")))
	for range 3 {
		recv(t, entered) // each sink's only worker is held
	}
	dctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	var res fanout.Result
	go func() {
		r, err := d.Deliver(dctx, event("e", "x"))
		res = r
		done <- err
	}()
	for range 3 {
		recv(t, q.entered) // all three writes are under way at once
	}
	require.NoError(t, recv(t, done))
	require.Len(t, res.Sinks, 3)
	for _, r := range res.Sinks {
		assert.Equal(t, fanout.DeadLettered, r.Outcome, r.Sink)
		assert.Zero(t, r.Attempts, r.Sink)
		assert.True(t, q.Has("e", r.Sink), r.Sink)
	}
}

// The same when the caller's own task (the first sink's, run on the dispatching goroutine) began
// its dead-letter write before the budget ran out: the other sinks' queued tasks are withdrawn
// when it runs out all the same, and written beside it, not after it.
func TestWithdrawnWhileTheCallerWritesItsOwn(t *testing.T) {
	gate := make(chan struct{})
	entered := make(chan struct{}, 2)
	blocker := holdBlock(entered, gate)
	refuse := func(context.Context, *fanbridge.Event) error { return retry.Permanent(errors.New("refused")) }
	q := newBarrierDLQ(3)
	d := newDispatcher(t, fanout.Config{
		Sinks: []fanout.SinkConfig{
			{Name: "a", Sink: sink.Func(refuse)},
			{Name: "b", Sink: blocker, Concurrency: 1},
			{Name: "c", Sink: blocker, Concurrency: 1},
		},
		Routes: []fanout.Route{
			{Name: "block", Filter: typeIs("block"), Sinks: []string{"b", "c"}},
			{Name: "r", Filter: typeIs("x"), Sinks: []string{"a", "b", "c"}},
		},
		DLQ: q,
	}, fanout.WithMode(fanout.Async), fanout.WithDLQReserve(50*time.Millisecond), fanout.WithDLQTimeout(testTimeout))
	defer close(gate)
	ctx := testContext(t)
	require.NoError(t, d.Dispatch(ctx, event("block", "block")))
	recv(t, entered)
	recv(t, entered)
	dctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := d.Deliver(dctx, event("e", "x"))
		done <- err
	}()
	recv(t, q.entered) // a's own write, at once, long before the deadline
	recv(t, q.entered) // b's and c's, once the budget is over
	recv(t, q.entered)
	require.NoError(t, recv(t, done))
	for _, n := range []string{"a", "b", "c"} {
		assert.True(t, q.Has("e", n), n)
	}
}

// The same when Close's deadline, not the budget, cuts the dispatch short while the caller's own
// task is still being sent: its dead-letter write and those of the other sinks' queued tasks run
// side by side under the drain deadline, not one after the other.
func TestCloseDeadlineWithdrawsBesideTheCallersWrite(t *testing.T) {
	started := make(chan string, 4)
	gate := make(chan struct{})
	defer close(gate)
	hang := func(ctx context.Context, e *fanbridge.Event) error {
		started <- e.ID
		if e.ID == "block" {
			<-gate // held whatever happens, so that b's queued task can only be withdrawn
			return nil
		}
		<-ctx.Done()
		return ctx.Err()
	}
	q := newBarrierDLQ(2)
	d, err := fanout.New(blockedB(hang, q), fanout.WithMode(fanout.Async), fanout.WithDLQTimeout(testTimeout), fanout.WithBudget(time.Hour))
	require.NoError(t, err)
	ctx := testContext(t)
	require.NoError(t, d.Dispatch(ctx, event("block", "block")))
	assert.Equal(t, "block", recv(t, started)) // b's only worker holds it
	type outcome struct {
		res fanout.Result
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		// No deadline but Close's: the budget (an hour) never runs out during the test.
		res, err := d.Deliver(context.Background(), event("e", "x"))
		done <- outcome{res, err}
	}()
	assert.Equal(t, "e", recv(t, started)) // a's Send, on the caller's goroutine
	go func() {
		cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		_ = d.Close(cctx) // reports b's held event as not drained in time
	}()
	recv(t, q.entered) // both writes under way at once
	recv(t, q.entered)
	got := recv(t, done)
	require.NoError(t, got.err)
	for _, r := range got.res.Sinks {
		assert.Equal(t, fanout.DeadLettered, r.Outcome, r.Sink)
	}
}

// A task withdrawn when the budget runs out is dead-lettered with the deadline as its cause,
// never with a placeholder: the withdrawal runs only once the budget's context has ended.
func TestWithdrawnTaskCauseIsTheDeadline(t *testing.T) {
	gate := make(chan struct{})
	entered := make(chan struct{}, 1)
	hang := func(ctx context.Context, e *fanbridge.Event) error {
		if e.ID == "block" {
			entered <- struct{}{}
			<-gate
			return nil
		}
		<-ctx.Done()
		return ctx.Err()
	}
	q := &memDLQ{}
	d := newDispatcher(t, blockedB(hang, q), fanout.WithMode(fanout.Async), fanout.WithDLQReserve(0))
	defer close(gate)
	ctx := testContext(t)
	require.NoError(t, d.Dispatch(ctx, event("block", "block")))
	recv(t, entered) // b's only worker holds it
	checked := 0
	for i := range 100 {
		dctx, cancel := context.WithTimeout(ctx, 2*time.Millisecond)
		res, err := d.Deliver(dctx, event(fmt.Sprint("e", i), "x"))
		cancel()
		if err != nil && len(res.Sinks) == 0 && errors.Is(err, context.DeadlineExceeded) {
			continue // on a loaded machine the 2 ms can pass before the dispatch begins
		}
		require.NoError(t, err)
		checked++
		for _, r := range res.Sinks {
			require.Equal(t, fanout.DeadLettered, r.Outcome, "%s of e%d", r.Sink, i)
			require.ErrorIs(t, r.Err, context.DeadlineExceeded, "%s of e%d", r.Sink, i)
		}
	}
	require.Positive(t, checked, "no dispatch began before its deadline")
}

// Sync dispatches whose budgets end while their tasks are being handed out, at every moment of
// it: every event ends delivered or dead-lettered once for every sink, never both, never lost.
func TestBudgetsEndingWhileTasksAreHandedOut(t *testing.T) {
	const sinks, workers = 4, 4
	n := 2000
	if testing.Short() {
		n = 500
	}
	quick := sink.Func(func(ctx context.Context, _ *fanbridge.Event) error { return ctx.Err() })
	var scs []fanout.SinkConfig
	var names []string
	for i := range sinks {
		name := fmt.Sprint("s", i)
		scs = append(scs, fanout.SinkConfig{Name: name, Sink: quick, Concurrency: 1})
		names = append(names, name)
	}
	q := &memDLQ{}
	d := newDispatcher(t, fanout.Config{Sinks: scs, DLQ: q,
		Routes: []fanout.Route{{Name: "all", Filter: fanout.All, Sinks: names}}})
	ctx := testContext(t)
	var wg sync.WaitGroup
	var accepted atomic.Int64
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range n {
				if ctx.Err() != nil {
					return
				}
				dctx, cancel := context.WithTimeout(ctx, time.Duration(1+i%40)*time.Microsecond)
				err := d.Dispatch(dctx, event(fmt.Sprint("e", w, "-", i), "x"))
				cancel()
				// A budget over before the dispatch starts, or a full queue, refuses the event
				// whole: nothing is sent, and the sender retries.
				if err == nil {
					accepted.Add(1)
				} else if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, fanbridge.ErrOverloaded) {
					t.Errorf("dispatch: %v", err)
				}
			}
		}()
	}
	waitGroup(t, &wg)
	require.Positive(t, accepted.Load())
	written := map[string]int{}
	for _, e := range q.Entries() {
		written[e.Event.ID+"/"+e.Sink]++
	}
	var dead int64
	for _, st := range d.Stats() {
		assert.Zero(t, st.Failed, st.Name)
		assert.Equal(t, accepted.Load(), st.Delivered+st.DeadLettered, st.Name)
		dead += st.DeadLettered
	}
	assert.Len(t, written, int(dead))
	for k, c := range written {
		if c != 1 {
			t.Errorf("%s dead-lettered %d times", k, c)
		}
	}
}

func TestPanickingSinkIsDeadLetteredNotFatal(t *testing.T) {
	for _, mode := range []fanout.Mode{fanout.Sync, fanout.Async} {
		t.Run(mode.String(), func(t *testing.T) {
			ok := newRecSink()
			ok.sent = make(chan string, 1)
			bad := newRecSink()
			bad.fail = func(*fanbridge.Event, int) error { panic("nil map write") }
			q := &memDLQ{}
			d := newDispatcher(t, fanout.Config{
				Sinks:  []fanout.SinkConfig{{Name: "ok", Sink: ok}, {Name: "bad", Sink: bad}},
				Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"ok", "bad"}}},
				DLQ:    q,
			}, fanout.WithMode(mode))
			require.NoError(t, d.Dispatch(testContext(t), event("e1", "x")))
			recv(t, ok.sent)
			require.NoError(t, d.Close(testContext(t)))
			require.Len(t, q.Entries(), 1)
			got := q.Entries()[0]
			assert.Equal(t, dlq.ConditionPermanent, got.Condition)
			assert.Equal(t, 1, got.Attempts)
			assert.Contains(t, got.Error, `sink "bad" panicked: nil map write`)
		})
	}
}

// No attempt starts past MaxAge, however long it waited for a send slot: the event's retry, due
// well within its age budget, finds the sink at its Concurrency, and by the time a slot is free
// the budget is spent.
func TestNoAttemptStartsPastMaxAgeAfterWaitingForASlot(t *testing.T) {
	clk := retrytest.NewClock(epoch)
	gate, entered := make(chan struct{}), make(chan struct{}, 1)
	s := newRecSink()
	s.fail = func(e *fanbridge.Event, attempt int) error {
		switch {
		case e.ID == "holder":
			entered <- struct{}{}
			<-gate
		case attempt == 1:
			return errBoom
		}
		return nil
	}
	q := &memDLQ{}
	d := newDispatcher(t, fanout.Config{
		Sinks: []fanout.SinkConfig{{Name: "s", Sink: s, Concurrency: 1, Retry: retry.Policy{MaxAge: 200 * time.Millisecond,
			InitialInterval: 10 * time.Millisecond, MaxInterval: 10 * time.Millisecond, Jitter: retry.NoJitter}}},
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
	require.NoError(t, clk.WaitTimers(ctx, 1), "late's first attempt failed; its retry is due in 10ms")
	holder := make(chan error, 1)
	go func() { holder <- d.Dispatch(ctx, event("holder", "x")) }()
	recv(t, entered) // the only slot is taken
	clk.Advance(time.Second)
	close(gate)
	require.NoError(t, recv(t, holder))

	res := recv(t, late)
	require.Len(t, res.Sinks, 1)
	assert.Equal(t, fanout.DeadLettered, res.Sinks[0].Outcome)
	assert.Equal(t, dlq.ConditionAge, res.Sinks[0].Condition)
	assert.Equal(t, 1, res.Sinks[0].Attempts)
	assert.Equal(t, 1, s.Attempts("late"), "the retry came a second after arrival, MaxAge 200ms: not made")
	require.True(t, q.Has("late", "s"))
	assert.Equal(t, dlq.ConditionAge, q.Entries()[0].Condition)
}

// unreadableErr is an error that panics when read: as Error, as Unwrap or as Is.
type unreadableErr struct{ in string }

func (e *unreadableErr) Error() string {
	if e.in == "Error" {
		panic("not readable")
	}
	return "unreadable"
}

func (e *unreadableErr) Unwrap() error {
	if e.in == "Unwrap" {
		panic("not unwrappable")
	}
	return nil
}

func (e *unreadableErr) Is(error) bool {
	if e.in == "Is" {
		panic("not comparable")
	}
	return false
}

// An error that panics when read (most often a nil *T returned as an error) is a bug in the sink
// or queue that returned it, as a panic in Send is, and is contained as that is: the delivery
// fails, the process lives on. It would otherwise panic on a worker, or in the caller of a Sync
// dispatch.
func TestErrorsThatPanicWhenReadAreContained(t *testing.T) {
	unreadable := map[string]func() error{
		"nil pointer": func() error { var e *unreadableErr; return e },
		"Error":       func() error { return &unreadableErr{in: "Error"} },
		"Unwrap":      func() error { return &unreadableErr{in: "Unwrap"} },
		"Is":          func() error { return fmt.Errorf("wrapped: %w", &unreadableErr{in: "Is"}) },
	}
	for name, bad := range unreadable {
		for _, mode := range []fanout.Mode{fanout.Sync, fanout.Async} {
			t.Run("sink/"+name+"/"+mode.String(), func(t *testing.T) {
				ok := newRecSink()
				ok.sent = make(chan string, 1)
				failing := sinkFunc(func(context.Context, *fanbridge.Event) error { return bad() })
				q := &memDLQ{}
				d := newDispatcher(t, fanout.Config{
					Sinks:  []fanout.SinkConfig{{Name: "ok", Sink: ok}, {Name: "bad", Sink: failing}},
					Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"bad", "ok"}}},
					DLQ:    q,
				}, fanout.WithMode(mode), fanout.WithTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(tracetest.NewSpanRecorder()))))
				require.NoError(t, d.Dispatch(testContext(t), event("e1", "x")))
				recv(t, ok.sent)
				require.NoError(t, d.Close(testContext(t)))
				require.Len(t, q.Entries(), 1)
				got := q.Entries()[0]
				assert.Equal(t, "bad", got.Sink)
				assert.Equal(t, dlq.ConditionPermanent, got.Condition)
				assert.Equal(t, retry.ClassPermanent, got.Class)
				assert.Equal(t, 1, got.Attempts, "not retried")
				assert.Contains(t, got.Error, `sink "bad" returned an error (`)
				assert.Contains(t, got.Error, `) that panics when read`)
				assert.NotContains(t, got.Error, "not ", "the panic's text stays out of the entry")
			})
		}
		for _, mode := range []fanout.Mode{fanout.Sync, fanout.Async} {
			t.Run("dead-letter queue/"+name+"/"+mode.String(), func(t *testing.T) {
				failing := sinkFunc(func(context.Context, *fanbridge.Event) error { return retry.Permanent(errBoom) })
				q := &memDLQ{fail: func(dlq.Entry) error { return bad() }}
				d := newDispatcher(t, fanout.Config{
					Sinks:  []fanout.SinkConfig{{Name: "bad", Sink: failing}},
					Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"bad"}}},
					DLQ:    q,
				}, fanout.WithMode(mode))
				err := d.Dispatch(testContext(t), event("e1", "x"))
				if mode == fanout.Sync {
					require.ErrorIs(t, err, fanout.ErrDLQ)
					assert.Contains(t, err.Error(), "dead-letter queue returned an error (")
					require.NoError(t, d.Close(testContext(t)))
				} else {
					require.NoError(t, err)
					require.ErrorContains(t, d.Close(testContext(t)), "dead-letter queue returned an error (")
				}
				q.mu.Lock()
				defer q.mu.Unlock()
				assert.Equal(t, 1, q.puts, "a permanent failure: the write is not retried")
			})
		}
	}
}

// An event whose dispatch budget ends while it waits for a send slot (the sink is at its
// Concurrency) has still failed for a reason, and is dead-lettered with it rather than with none.
// The wait is not an attempt (see TestWaitForASendSlotIsNotAnAttempt): the budget ends it.
func TestAttemptsThatNeverGetASlotAreDeadLettered(t *testing.T) {
	gate, entered := make(chan struct{}), make(chan struct{}, 1)
	held := sink.Func(func(_ context.Context, e *fanbridge.Event) error {
		if e.ID == "holder" {
			entered <- struct{}{}
			<-gate // ignores its context: the slot stays taken
		}
		return nil
	})
	q := &memDLQ{}
	d := newDispatcher(t, fanout.Config{
		Sinks: []fanout.SinkConfig{{Name: "s", Sink: held, Concurrency: 1,
			Retry: retry.Policy{AttemptTimeout: 20 * time.Millisecond, MaxAttempts: 2, InitialInterval: time.Millisecond, MaxInterval: time.Millisecond}}},
		Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"s"}}},
		DLQ:    q,
	})
	ctx := testContext(t)
	first := make(chan error, 1)
	go func() { first <- d.Dispatch(ctx, event("holder", "x")) }()
	recv(t, entered)

	budget, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	res, err := d.Deliver(budget, event("waiter", "x"))
	require.NoError(t, err, "dead-lettered counts as handled")
	require.Len(t, res.Sinks, 1)
	assert.Equal(t, fanout.DeadLettered, res.Sinks[0].Outcome)
	assert.Equal(t, dlq.ConditionAge, res.Sinks[0].Condition, "the budget ended it")
	assert.Zero(t, res.Sinks[0].Attempts)
	require.Len(t, q.Entries(), 1)
	assert.Equal(t, "waiter", q.Entries()[0].Event.ID)
	assert.Contains(t, q.Entries()[0].Error, "no send slot free")

	close(gate)
	require.NoError(t, recv(t, first))
}

// Panics in the other user code the Dispatcher calls (a dead-letter queue's Put, an ordering-key
// function, a sink's Close) are contained as a panicking Send is: they may run on a worker or a
// background goroutine, where a panic would end the process.
func TestPanicsInUserCodeAreContained(t *testing.T) {
	t.Run("dead-letter queue Put", func(t *testing.T) {
		for _, mode := range []fanout.Mode{fanout.Sync, fanout.Async} {
			t.Run(mode.String(), func(t *testing.T) {
				bad := newRecSink()
				bad.fail = func(*fanbridge.Event, int) error { return retry.Permanent(errBoom) }
				q := &memDLQ{fail: func(dlq.Entry) error { panic("disk on fire") }}
				d := newDispatcher(t, fanout.Config{
					Sinks:  []fanout.SinkConfig{{Name: "bad", Sink: bad}},
					Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"bad"}}},
					DLQ:    q,
				}, fanout.WithMode(mode))
				err := d.Dispatch(testContext(t), event("e1", "x"))
				if mode == fanout.Sync {
					// The sender is told, and retries.
					require.ErrorIs(t, err, fanout.ErrDLQ)
					assert.Contains(t, err.Error(), "dead-letter queue panicked: disk on fire")
					require.NoError(t, d.Close(testContext(t)))
				} else {
					// The sender was told "accepted": Close, which waits for the worker that
					// reached the panicking Put, reports the loss.
					require.NoError(t, err)
					require.ErrorContains(t, d.Close(testContext(t)), "dead-letter queue panicked: disk on fire")
				}
				assert.Empty(t, q.Entries())
			})
		}
	})
	t.Run("ordering key", func(t *testing.T) {
		s := newRecSink()
		d := newDispatcher(t, fanout.Config{
			Sinks:  []fanout.SinkConfig{{Name: "s", Sink: s, QueueSize: 1}},
			Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"s"}}},
		}, fanout.WithOrderingKey(func(e *fanbridge.Event) string {
			if e.ID == "bad" {
				panic("no key")
			}
			return e.ID
		}))
		for range 3 {
			assert.Panics(t, func() { _ = d.Dispatch(testContext(t), event("bad", "x")) })
		}
		assert.Zero(t, fanout.QueueDepth(d, "s"), "the panics took no queue slot")
		require.NoError(t, d.Dispatch(testContext(t), event("good", "x")))
		assert.Equal(t, 1, s.Delivered("good"))
	})
	t.Run("sink Close", func(t *testing.T) {
		d := newDispatcher(t, fanout.Config{
			Sinks:  []fanout.SinkConfig{{Name: "s", Sink: panickingCloser{}}},
			Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"s"}}},
		})
		err := d.Close(testContext(t))
		require.Error(t, err)
		assert.Contains(t, err.Error(), `closing sink "s": close panicked: half closed`)
	})
}

type panickingCloser struct{}

func (panickingCloser) Send(context.Context, *fanbridge.Event) error { return nil }
func (panickingCloser) Close() error                                 { panic("half closed") }

// Retried counts the retries that reached the sink: a retry cut off by the dispatch budget while
// it waited never happened, and the event went to the dead-letter queue after one attempt.
func TestRetriedCountsOnlyRetriesThatHappened(t *testing.T) {
	var sends int
	s := sinkFunc(func(context.Context, *fanbridge.Event) error { sends++; return errors.New("unavailable") })
	q := &memDLQ{}
	d := newDispatcher(t, fanout.Config{
		Sinks: []fanout.SinkConfig{{Name: "a", Sink: s,
			Retry: retry.Policy{MaxAttempts: 5, InitialInterval: time.Hour, MaxInterval: time.Hour, Multiplier: 2}}},
		Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"a"}}},
		DLQ:    q,
	})
	ctx, cancel := context.WithTimeout(testContext(t), 300*time.Millisecond)
	defer cancel()
	require.NoError(t, d.Dispatch(ctx, event("e1", "t")), "dead-lettered")
	require.True(t, q.Has("e1", "a"))
	st := d.Stats()[0]
	assert.Equal(t, 1, sends)
	assert.Zero(t, st.Retried, "the retry waited for never came")
}

// Waiting for a send slot (the sink at its Concurrency) is not an attempt: the per-attempt
// timeout starts with the slot, so a healthy but busy sink's events are not dead-lettered as
// having used up their attempts without one Send. The slow Send is let go after more than
// MaxAttempts attempt timeouts: the waiting event is then sent once, and delivered.
func TestWaitForASendSlotIsNotAnAttempt(t *testing.T) {
	ctx := testContext(t)
	q := &memDLQ{}
	in, release := make(chan struct{}, 1), make(chan struct{})
	var mu sync.Mutex
	sends := map[string]int{}
	s := sink.Func(func(ctx context.Context, e *fanbridge.Event) error {
		mu.Lock()
		sends[e.ID]++
		mu.Unlock()
		if e.ID == "slow" {
			in <- struct{}{}
			<-release
		}
		return ctx.Err()
	})
	d := newDispatcher(t, fanout.Config{
		Sinks: []fanout.SinkConfig{{Name: "s", Sink: s, Concurrency: 1,
			Retry: retry.Policy{MaxAttempts: 2, InitialInterval: time.Millisecond, AttemptTimeout: 50 * time.Millisecond}}},
		Routes: []fanout.Route{{Name: "all", Filter: fanout.All, Sinks: []string{"s"}}},
		DLQ:    q,
	})
	slowDone := make(chan error, 1)
	go func() { slowDone <- d.Dispatch(ctx, event("slow", "x")) }()
	recv(t, in)
	// Four attempt timeouts from now: the old behaviour had dead-lettered the waiting event
	// after two.
	timer := time.AfterFunc(200*time.Millisecond, func() { close(release) })
	defer timer.Stop()
	r, err := d.Deliver(ctx, event("waits", "x"))
	require.NoError(t, err)
	require.Len(t, r.Sinks, 1)
	assert.Equal(t, fanout.Delivered, r.Sinks[0].Outcome, "%+v", r.Sinks[0])
	assert.Equal(t, 1, r.Sinks[0].Attempts)
	recv(t, slowDone)
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, 1, sends["waits"])
	assert.Empty(t, q.Entries())
}

// MaxAge bounds the wait for a send slot too: an event behind a busy sink is dead-lettered once
// its age budget is spent (Condition age, no Send), not when the slot frees or the dispatch's
// budget ends.
func TestMaxAgeBoundsTheWaitForASendSlot(t *testing.T) {
	ctx := testContext(t)
	q := &memDLQ{}
	in, release := make(chan struct{}, 1), make(chan struct{})
	var sends atomic.Int32
	s := sink.Func(func(ctx context.Context, e *fanbridge.Event) error {
		if e.ID == "slow" {
			in <- struct{}{}
			<-release
			return nil
		}
		sends.Add(1)
		return nil
	})
	d := newDispatcher(t, fanout.Config{
		Sinks: []fanout.SinkConfig{{Name: "s", Sink: s, Concurrency: 1,
			Retry: retry.Policy{MaxAttempts: 2, InitialInterval: time.Millisecond, AttemptTimeout: 50 * time.Millisecond, MaxAge: 100 * time.Millisecond}}},
		Routes: []fanout.Route{{Name: "all", Filter: fanout.All, Sinks: []string{"s"}}},
		DLQ:    q,
	})
	slowDone := make(chan error, 1)
	go func() { slowDone <- d.Dispatch(ctx, event("slow", "x")) }()
	recv(t, in)
	defer func() {
		close(release)
		recv(t, slowDone)
	}()
	r, err := d.Deliver(ctx, event("waits", "x"))
	require.NoError(t, err)
	require.Len(t, r.Sinks, 1)
	assert.Equal(t, fanout.DeadLettered, r.Sinks[0].Outcome, "%+v", r.Sinks[0])
	assert.Equal(t, dlq.ConditionAge, r.Sinks[0].Condition)
	assert.Zero(t, r.Sinks[0].Attempts)
	assert.Zero(t, sends.Load())
	require.Len(t, q.Entries(), 1)
	assert.Contains(t, q.Entries()[0].Error, "within MaxAge")
}
