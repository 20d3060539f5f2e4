package fanout_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
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
	"github.com/fanbridge/fanbridge/retry/retrytest"
	"github.com/fanbridge/fanbridge/sink"
)

// TestAsyncAgeCountsFromArrival: an event that waited in the queue has used part of its age
// budget before its first attempt.
func TestAsyncAgeCountsFromArrival(t *testing.T) {
	clk := retrytest.NewClock(epoch)
	gate := make(chan struct{})
	entered := make(chan string, 4)
	s := newRecSink()
	s.fail = func(e *fanbridge.Event, _ int) error {
		entered <- e.ID
		if e.ID == "blocker" {
			<-gate
			return nil
		}
		return errBoom
	}
	q := &memDLQ{}
	d := newDispatcher(t, fanout.Config{
		Sinks: []fanout.SinkConfig{{Name: "s", Sink: s, Concurrency: 1, Retry: retry.Policy{
			MaxAttempts: -1, MaxAge: time.Second, InitialInterval: 300 * time.Millisecond, Jitter: retry.NoJitter}}},
		Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"s"}}},
		DLQ:    q,
	}, fanout.WithMode(fanout.Async), fanout.WithClock(clk))
	ctx := testContext(t)
	require.NoError(t, d.Dispatch(ctx, event("blocker", "x")))
	require.Equal(t, "blocker", recv(t, entered))
	require.NoError(t, d.Dispatch(ctx, event("e1", "x"))) // arrives at epoch, waits
	clk.Advance(800 * time.Millisecond)
	close(gate)
	require.Equal(t, "e1", recv(t, entered)) // first attempt at +800ms fails; +300ms would pass the 1s age
	require.NoError(t, d.Close(ctx))
	require.Len(t, q.Entries(), 1)
	got := q.Entries()[0]
	assert.Equal(t, dlq.ConditionAge, got.Condition)
	assert.Equal(t, 1, got.Attempts)
	assert.Equal(t, epoch.Add(800*time.Millisecond), got.FirstAttempt, "the first attempt, not the arrival")
}

func TestAsyncRetriesThenDeadLetters(t *testing.T) {
	clk := retrytest.NewClock(epoch)
	autoAdvance(t, clk)
	ok, bad := newRecSink(), newRecSink()
	bad.fail = func(*fanbridge.Event, int) error { return errBoom }
	q := &memDLQ{}
	d := newDispatcher(t, fanout.Config{
		Sinks:  []fanout.SinkConfig{{Name: "ok", Sink: ok}, {Name: "bad", Sink: bad, Retry: retry.Policy{MaxAttempts: 3}}},
		Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"ok", "bad"}}},
		DLQ:    q,
	}, fanout.WithMode(fanout.Async), fanout.WithClock(clk))
	ctx := testContext(t)
	for _, id := range []string{"e1", "e2", "e3"} {
		require.NoError(t, d.Dispatch(ctx, event(id, "x")))
	}
	require.NoError(t, d.Close(ctx))
	for _, id := range []string{"e1", "e2", "e3"} {
		assert.Equal(t, 1, ok.Delivered(id))
		assert.Equal(t, 3, bad.Attempts(id))
		assert.True(t, q.Has(id, "bad"))
	}
	for _, e := range q.Entries() {
		assert.Equal(t, dlq.ConditionAttempts, e.Condition)
		assert.Equal(t, 3, e.Attempts)
	}
}

// TestAsyncLossIsReported: in Async mode a delivery the DLQ refuses has no sender to retry it; it
// must not vanish silently.
func TestAsyncLossIsReported(t *testing.T) {
	bad := newRecSink()
	bad.fail = func(*fanbridge.Event, int) error { return retry.Permanent(errBoom) }
	q := &memDLQ{fail: func(dlq.Entry) error { return retry.Permanent(errors.New("dlq: disk full")) }}
	d, err := fanout.New(fanout.Config{
		Sinks:  []fanout.SinkConfig{{Name: "bad", Sink: bad}},
		Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"bad"}}},
		DLQ:    q,
	}, fanout.WithMode(fanout.Async))
	require.NoError(t, err)
	ctx := testContext(t)
	require.NoError(t, d.Dispatch(ctx, event("e1", "x")))
	require.Eventually(t, func() bool { return d.Stats()[0].Failed == 1 }, 5*time.Second, time.Millisecond)
	err = d.Close(ctx)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "1 deliveries neither delivered nor dead-lettered")
	assert.Contains(t, err.Error(), `event "e1", sink "bad"`)
	assert.Contains(t, err.Error(), "disk full")
}

// TestCloseReturnsInTimeDespiteASinkIgnoringCancellation: a sink that never returns must not keep
// Close waiting once the dead-letter queue has taken nothing for the DLQ timeout after the
// deadline (here there is nothing else to take), and a short grace.
func TestCloseReturnsInTimeDespiteASinkIgnoringCancellation(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	entered := make(chan struct{}, 1)
	stuck := sink.Func(func(context.Context, *fanbridge.Event) error {
		entered <- struct{}{}
		<-release // ignores its context: a broken sink
		return nil
	})
	d, err := fanout.New(fanout.Config{
		Sinks:  []fanout.SinkConfig{{Name: "stuck", Sink: stuck}},
		Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"stuck"}}},
		DLQ:    &memDLQ{},
	}, fanout.WithMode(fanout.Async), fanout.WithDLQTimeout(100*time.Millisecond))
	require.NoError(t, err)
	require.NoError(t, d.Dispatch(testContext(t), event("e1", "x")))
	recv(t, entered)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = d.Close(ctx)
	took := time.Since(start)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "still in flight")
	assert.Less(t, took, 2*time.Second, "100ms deadline + 100ms DLQ timeout + grace, with room for a loaded machine")
}

// TestSyncDispatchCutShortByCloseIsDeadLettered: a Sync dispatch retrying when Close's deadline
// comes is answered "done" only because the DLQ has the event.
func TestSyncDispatchCutShortByCloseIsDeadLettered(t *testing.T) {
	clk := retrytest.NewClock(epoch) // never advanced: the retry wait lasts until cut short
	s := newRecSink()
	s.fail = func(*fanbridge.Event, int) error { return errBoom }
	q := &memDLQ{}
	d, err := fanout.New(fanout.Config{
		Sinks:  []fanout.SinkConfig{{Name: "s", Sink: s, Retry: retry.Policy{MaxAttempts: -1}}},
		Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"s"}}},
		DLQ:    q,
	}, fanout.WithClock(clk))
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- d.Dispatch(testContext(t), event("e1", "x")) }()
	require.NoError(t, clk.WaitTimers(testContext(t), 1))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	require.NoError(t, d.Close(ctx))
	require.NoError(t, recv(t, done))
	require.Len(t, q.Entries(), 1)
	e := q.Entries()[0]
	assert.Equal(t, dlq.ConditionAge, e.Condition)
	assert.Equal(t, retry.ClassRetryable, e.Class)
	assert.Contains(t, e.Error, "boom", "the sink's last error, not our cancellation")
}

// TestUpdateKeepsTheDLQAnEventStartedWith: an event in flight during a swap is dead-lettered
// where its configuration said.
func TestUpdateKeepsTheDLQAnEventStartedWith(t *testing.T) {
	gate := make(chan struct{})
	entered := make(chan struct{}, 1)
	s := sink.Func(func(context.Context, *fanbridge.Event) error {
		entered <- struct{}{}
		<-gate
		return retry.Permanent(errBoom)
	})
	oldQ, newQ := &memDLQ{}, &memDLQ{}
	cfg := fanout.Config{
		Sinks:  []fanout.SinkConfig{{Name: "s", Sink: s}},
		Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"s"}}},
		DLQ:    oldQ,
	}
	d := newDispatcher(t, cfg)
	done := make(chan error, 1)
	go func() { done <- d.Dispatch(testContext(t), event("e1", "x")) }()
	recv(t, entered)
	cfg.DLQ = newQ
	require.NoError(t, d.Update(cfg))
	close(gate)
	require.NoError(t, recv(t, done))
	assert.True(t, oldQ.Has("e1", "s"))
	assert.Empty(t, newQ.Entries())
	require.NoError(t, d.Dispatch(testContext(t), event("e2", "x")))
	assert.True(t, newQ.Has("e2", "s"))
}

// closableDLQ refuses writes once closed, as a real queue's Put does after Close.
type closableDLQ struct {
	memDLQ
	closed atomic.Bool
}

func (q *closableDLQ) Put(ctx context.Context, e dlq.Entry) error {
	if q.closed.Load() {
		return errors.New("dead-letter queue closed")
	}
	return q.memDLQ.Put(ctx, e)
}

// An Update does not wait for the events accepted under the configuration it replaces, which
// still dead-letter to its queue (in Async mode, for as long as they stay queued): Settle says
// when that queue may be closed. Closed then, it loses nothing.
func TestSettleSaysWhenAReplacedDLQMayBeClosed(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mode   fanout.Mode
		change func(*fanout.SinkConfig)
	}{
		{"async, sink kept", fanout.Async, func(*fanout.SinkConfig) {}},
		{"async, sink rebuilt", fanout.Async, func(sc *fanout.SinkConfig) { sc.Concurrency = 2 }},
		{"sync, sink kept", fanout.Sync, func(*fanout.SinkConfig) {}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &switchSink{gate: make(chan struct{}), entered: make(chan struct{}, 2)}
			s.down.Store(true)
			oldQ, newQ := &closableDLQ{}, &closableDLQ{}
			cfg := fanout.Config{
				Sinks:  []fanout.SinkConfig{{Name: "s", Sink: s, Concurrency: 1, Retry: retry.Policy{MaxAttempts: 1}}},
				Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"s"}}},
				DLQ:    oldQ,
			}
			d, err := fanout.New(cfg, fanout.WithMode(tc.mode))
			require.NoError(t, err)
			ctx := testContext(t)
			require.NoError(t, d.Settle(ctx), "nothing replaced")

			// Async: e1 and e2 are accepted, and e2 waits behind e1 (Concurrency 1). Sync: e1 is
			// under way.
			ids := []string{"e1"}
			if tc.mode == fanout.Async {
				ids = append(ids, "e2")
			}
			dispatched := make(chan error, len(ids))
			for _, id := range ids {
				go func() { dispatched <- d.Dispatch(ctx, event(id, "x")) }()
			}
			recv(t, s.entered)
			if tc.mode == fanout.Async {
				require.NoError(t, recv(t, dispatched))
				require.NoError(t, recv(t, dispatched))
			}
			cfg.DLQ = newQ
			tc.change(&cfg.Sinks[0])
			require.NoError(t, d.Update(cfg))

			cancelled, cancel := context.WithCancel(ctx)
			cancel()
			require.ErrorIs(t, d.Settle(cancelled), context.Canceled, "events accepted before the Update are under way")

			settled := make(chan error, 1)
			go func() { settled <- d.Settle(ctx) }()
			close(s.gate)
			require.NoError(t, recv(t, settled))
			oldQ.closed.Store(true)
			for _, id := range ids {
				assert.True(t, oldQ.Has(id, "s"), id)
			}
			if tc.mode == fanout.Sync {
				require.NoError(t, recv(t, dispatched))
			}

			require.NoError(t, d.Dispatch(ctx, event("e3", "x")))
			require.NoError(t, d.Close(ctx), "nothing lost")
			assert.True(t, newQ.Has("e3", "s"))
			assert.Len(t, oldQ.Entries(), len(ids))
			assert.ErrorIs(t, d.Settle(ctx), fanbridge.ErrClosed)
		})
	}
}

// trackedFilter matches every event; a cleanup attached to it tells when it has been freed, and
// so when no configuration holds it as a route's filter any more.
type trackedFilter struct{ _ [32]byte } // large enough to stay out of the tiny allocator

func (*trackedFilter) Match(*fanbridge.Event) bool { return true }

// A configuration that an Update replaced is freed once the dispatches that used it are over,
// even while an Async delivery accepted under an older one is still pending (so that Settle still
// waits), or a Sync dispatch under an older one is held by a Send that ignores cancellation: only
// the configuration that delivery or dispatch uses is kept, not every one replaced since, with
// its routes and compiled patterns.
func TestReplacedConfigurationsAreFreedWhileAnOlderDeliveryIsPending(t *testing.T) {
	for _, mode := range []fanout.Mode{fanout.Async, fanout.Sync} {
		t.Run(mode.String(), func(t *testing.T) {
			const updates = 20
			gate := make(chan struct{})
			entered := make(chan struct{}, 1)
			s := sinkFunc(func(_ context.Context, e *fanbridge.Event) error {
				if e.ID == "pending" {
					entered <- struct{}{}
					<-gate // ignores its context, past a Sync dispatch's budget
				}
				return nil
			})
			freed := make(chan int, updates+1)
			cfg := func(i int) fanout.Config {
				f := &trackedFilter{}
				runtime.AddCleanup(f, func(i int) { freed <- i }, i)
				return fanout.Config{
					Sinks: []fanout.SinkConfig{{Name: "s", Sink: s, Retry: retry.Policy{MaxAttempts: 1}}},
					Routes: []fanout.Route{
						{Name: "tracked", Filter: f, Sinks: []string{"s"}},
						{Name: "a", Pattern: []byte(fmt.Sprintf(`{"detail-type":["a%d"]}`, i)), Sinks: []string{"s"}},
						{Name: "b", Pattern: []byte(fmt.Sprintf(`{"detail-type":["b%d"]}`, i)), Sinks: []string{"s"}},
					},
				}
			}
			d := newDispatcher(t, cfg(0), fanout.WithMode(mode))
			ctx := testContext(t)
			dispatched := make(chan error, 1)
			go func() {
				dctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
				defer cancel()
				dispatched <- d.Dispatch(dctx, event("pending", "x"))
			}()
			recv(t, entered)
			for i := 1; i <= updates; i++ {
				require.NoError(t, d.Update(cfg(i)))
			}

			// Configurations 1 to updates-1 are replaced and unused; 0 is kept by the pending
			// delivery, and the last is current.
			got := map[int]bool{}
			tick := time.NewTicker(5 * time.Millisecond) // a collection per tick, until all are freed
			defer tick.Stop()
			for len(got) < updates-1 {
				runtime.GC()
				select {
				case i := <-freed:
					require.True(t, i > 0 && i < updates, "configuration %d freed while in use", i)
					got[i] = true
				case <-tick.C:
				case <-ctx.Done():
					t.Fatalf("%d of %d replaced configurations freed while a delivery under the first is pending", len(got), updates-1)
				}
			}

			close(gate)
			require.NoError(t, recv(t, dispatched))
			require.NoError(t, d.Settle(ctx))
			require.NoError(t, d.Close(ctx))
		})
	}
}

func TestAsyncEventOlderThanMaxAgeGetsNoAttempt(t *testing.T) {
	clk := retrytest.NewClock(epoch)
	gate := make(chan struct{})
	entered := make(chan string, 4)
	s := newRecSink()
	s.fail = func(e *fanbridge.Event, _ int) error {
		entered <- e.ID
		if e.ID == "blocker" {
			<-gate
		}
		return nil
	}
	q := &memDLQ{}
	d := newDispatcher(t, fanout.Config{
		Sinks:  []fanout.SinkConfig{{Name: "s", Sink: s, Concurrency: 1, Retry: retry.Policy{MaxAge: time.Second}}},
		Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"s"}}},
		DLQ:    q,
	}, fanout.WithMode(fanout.Async), fanout.WithClock(clk))
	ctx := testContext(t)
	require.NoError(t, d.Dispatch(ctx, event("blocker", "x")))
	require.Equal(t, "blocker", recv(t, entered))
	require.NoError(t, d.Dispatch(ctx, event("e1", "x"))) // arrives at epoch, waits
	clk.Advance(time.Second)
	close(gate)
	require.NoError(t, d.Close(ctx))
	assert.Zero(t, s.Attempts("e1"), "past its age budget: no attempt")
	require.Len(t, q.Entries(), 1)
	got := q.Entries()[0]
	assert.Equal(t, "e1", got.Event.ID)
	assert.Equal(t, dlq.ConditionAge, got.Condition)
	assert.Zero(t, got.Attempts)
	assert.Contains(t, got.Error, "past MaxAge 1s")
}

// Updates that replace a sink keep the ordering-key promise: the new sink's workers start only
// once the old one's lanes are done, so an event dispatched after the Updates cannot overtake an
// earlier one of its key still held by the old sink. That holds for a sink rebuilt by one Update
// (new settings, same name), and for one an Update removed and the next added back, whose old
// incarnation the last snapshot no longer has.
func TestOrderingKeyHoldsAcrossUpdate(t *testing.T) {
	for _, tc := range []struct {
		name    string
		updates func(cfg func(concurrency int) fanout.Config, other fanout.Config) []fanout.Config
	}{
		{"rebuilt", func(cfg func(int) fanout.Config, _ fanout.Config) []fanout.Config {
			return []fanout.Config{cfg(4)}
		}},
		{"removed, then added back", func(cfg func(int) fanout.Config, other fanout.Config) []fanout.Config {
			return []fanout.Config{other, cfg(2)}
		}},
		{"removed, then added back rebuilt", func(cfg func(int) fanout.Config, other fanout.Config) []fanout.Config {
			return []fanout.Config{other, cfg(3), cfg(4)}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			release := make(chan struct{})
			entered := make(chan string, 8)
			var mu sync.Mutex
			var order []string
			s := sink.Func(func(_ context.Context, e *fanbridge.Event) error {
				entered <- e.ID
				if e.ID == "1" {
					<-release
				}
				mu.Lock()
				order = append(order, e.ID)
				mu.Unlock()
				return nil
			})
			o := newRecSink()
			cfg := func(concurrency int) fanout.Config {
				return fanout.Config{
					Sinks:  []fanout.SinkConfig{{Name: "s", Sink: s, Concurrency: concurrency}, {Name: "o", Sink: o}},
					Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"s", "o"}}},
				}
			}
			other := fanout.Config{
				Sinks:  []fanout.SinkConfig{{Name: "o", Sink: o}},
				Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"o"}}},
			}
			d, err := fanout.New(cfg(2), fanout.WithMode(fanout.Async), fanout.WithSinkClosing(false),
				fanout.WithOrderingKey(func(*fanbridge.Event) string { return "conversation-1" }))
			require.NoError(t, err)
			ctx := testContext(t)
			require.NoError(t, d.Dispatch(ctx, event("1", "x")))
			require.NoError(t, d.Dispatch(ctx, event("2", "x")))
			assert.Equal(t, "1", recv(t, entered))
			for _, u := range tc.updates(cfg, other) {
				require.NoError(t, d.Update(u))
			}
			require.NoError(t, d.Dispatch(ctx, event("3", "x")))
			// While 1 is held, nothing else of its key may reach the sink. A short look suffices
			// for the old behaviour, where the new sink's idle workers took 3 at once.
			select {
			case id := <-entered:
				t.Fatalf("event %s reached the sink while 1 of the same key was still being sent", id)
			case <-time.After(200 * time.Millisecond):
			}
			close(release)
			require.NoError(t, d.Close(ctx))
			mu.Lock()
			defer mu.Unlock()
			assert.Equal(t, []string{"1", "2", "3"}, order)
		})
	}
}

// slowClosingSink delivers at once but takes until release to close. With ctxAware it has
// CloseContext, as kafkasink and grpcsink do, and reports why it stopped waiting.
type slowClosingSink struct {
	release chan struct{}
}

func (s *slowClosingSink) Send(context.Context, *fanbridge.Event) error { return nil }

func (s *slowClosingSink) Close() error {
	<-s.release
	return nil
}

type slowContextClosingSink struct{ slowClosingSink }

func (s *slowContextClosingSink) CloseContext(ctx context.Context) error {
	select {
	case <-s.release:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("3 records still unacknowledged: %w", ctx.Err())
	}
}

// TestCloseNamesASinkStillClosing: when Close's deadline passes while a sink's own Close is still
// running, Close says which sink, and a sink that can bound its close by a context reports its
// own reason in Close's answer, not after it.
func TestCloseNamesASinkStillClosing(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    func(release chan struct{}) sink.Sink
		want string
	}{
		{"Close only", func(r chan struct{}) sink.Sink { return &slowClosingSink{release: r} },
			`fanout: close: sinks ["slow"] still closing after the deadline`},
		{"CloseContext", func(r chan struct{}) sink.Sink { return &slowContextClosingSink{slowClosingSink{release: r}} },
			`fanout: closing sink "slow": 3 records still unacknowledged: context canceled`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			release := make(chan struct{})
			defer close(release)
			d, err := fanout.New(fanout.Config{
				Sinks:  []fanout.SinkConfig{{Name: "slow", Sink: tc.s(release)}},
				Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"slow"}}},
				DLQ:    &memDLQ{},
			}, fanout.WithDLQTimeout(100*time.Millisecond))
			require.NoError(t, err)
			require.NoError(t, d.Dispatch(testContext(t), event("e1", "x")))
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			start := time.Now()
			err = d.Close(ctx)
			took := time.Since(start)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.NotContains(t, err.Error(), "deliveries still in flight", "no delivery was in flight")
			assert.Less(t, took, 2*time.Second, "100ms deadline + 100ms DLQ timeout + grace, with room for a loaded machine")
		})
	}
}

// backlogDLQ is a dead-letter queue for shutdown tests. A Put waits, within its context, until
// together Puts have begun (so that writes made one after another never finish), then for
// latency (a write that takes time, as an fsync does); once it holds takes entries it takes no
// more, and Puts wait for their context to end. It records the most Puts it ran at once.
type backlogDLQ struct {
	memDLQ
	together int
	latency  time.Duration
	takes    int

	begun, running, most, taken atomic.Int64
	enough                      chan struct{} // closed once together Puts have begun
}

func (q *backlogDLQ) Put(ctx context.Context, e dlq.Entry) error {
	n := q.running.Add(1)
	defer q.running.Add(-1)
	for m := q.most.Load(); n > m && !q.most.CompareAndSwap(m, n); m = q.most.Load() {
	}
	if q.begun.Add(1) == int64(q.together) {
		close(q.enough)
	}
	if q.together > 0 {
		select {
		case <-q.enough:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if q.latency > 0 {
		t := time.NewTimer(q.latency)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if q.takes > 0 && q.taken.Add(1) > int64(q.takes) {
		<-ctx.Done()
		return ctx.Err()
	}
	return q.memDLQ.Put(ctx, e)
}

// Async mode, Close's deadline already passed: what the sinks' queues hold is dead-lettered in
// full when the dead-letter queue is healthy, however few the sink's workers and however long
// the backlog takes to write, and Close gives up only on a queue that stops taking entries.
func TestAsyncCloseDeadLettersTheWholeBacklog(t *testing.T) {
	for _, tc := range []struct {
		name        string
		events      int
		concurrency int
		dlqTimeout  time.Duration
		q           *backlogDLQ
		wantLost    int
	}{
		// Written one after another by the sink's one worker, no write would ever finish.
		{"written side by side", 200, 1, 200 * time.Millisecond, &backlogDLQ{together: 16}, 0},
		// 640 writes of 25ms, 64 at a time, take at least 250ms: longer than the DLQ timeout.
		{"longer than the DLQ timeout", 640, 4, 200 * time.Millisecond, &backlogDLQ{latency: 25 * time.Millisecond}, 0},
		{"a queue that stops taking entries", 200, 4, 100 * time.Millisecond, &backlogDLQ{takes: 50}, 150},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.q.enough = make(chan struct{})
			hang := sinkFunc(func(ctx context.Context, _ *fanbridge.Event) error { <-ctx.Done(); return ctx.Err() })
			d, err := fanout.New(fanout.Config{
				Sinks: []fanout.SinkConfig{{Name: "s", Sink: hang, Concurrency: tc.concurrency, QueueSize: tc.events,
					Retry: retry.Policy{MaxAttempts: 1}}},
				Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"s"}}},
				DLQ:    tc.q,
			}, fanout.WithMode(fanout.Async), fanout.WithDLQTimeout(tc.dlqTimeout))
			require.NoError(t, err)
			ctx := testContext(t)
			for i := range tc.events {
				require.NoError(t, d.Dispatch(ctx, event(fmt.Sprintf("e%d", i), "x")))
			}
			ended, cancel := context.WithCancel(ctx)
			cancel()
			start := time.Now()
			err = d.Close(ended)
			took := time.Since(start)

			entries := tc.q.Entries()
			ids := map[string]bool{}
			for _, e := range entries {
				ids[e.Event.ID] = true
				assert.Equal(t, dlq.ConditionAge, e.Condition)
				assert.Contains(t, e.Error, "shut", "our shutdown, not the sink, is the cause")
			}
			assert.Len(t, ids, len(entries), "each event dead-lettered once")
			assert.Equal(t, tc.events-tc.wantLost, len(entries), "dead-lettered, Close: %v", err)
			assert.LessOrEqual(t, tc.q.most.Load(), int64(64+tc.concurrency), "the drain's writers and the sink's own workers")
			if tc.wantLost == 0 {
				require.NoError(t, err)
				if tc.q.latency > 0 {
					require.Greater(t, took, tc.dlqTimeout, "the backlog took longer than one DLQ timeout to write")
				}
			} else {
				require.Error(t, err)
				assert.Contains(t, err.Error(), fmt.Sprintf("%d deliveries neither delivered nor dead-lettered", tc.wantLost))
				assert.NotContains(t, err.Error(), "still in flight", "the cut-off writes ended")
				assert.Less(t, took, 2*time.Second, "about the DLQ timeout after the last entry, with room for a loaded machine")
			}
			t.Logf("%d dead-lettered in %v, at most %d writes at once", len(entries), took.Round(time.Millisecond), tc.q.most.Load())
		})
	}
}

// Sync mode, Close's deadline passed while many dispatches wait on slow sinks: each dispatch's
// tasks waiting in a queue, and the one its own goroutine was running, are dead-lettered by the
// drain's 64 writers, not by a goroutine each, and every dispatch still answers only once the
// dead-letter queue has its events.
func TestSyncCloseDeadLettersWithinTheDrainWidth(t *testing.T) {
	const dispatches = 200
	for _, sinks := range [][]string{{"a"}, {"a", "b"}} {
		t.Run(strings.Join(sinks, ","), func(t *testing.T) {
			hang := sinkFunc(func(ctx context.Context, _ *fanbridge.Event) error { <-ctx.Done(); return ctx.Err() })
			// The first 64 writes wait until 64 have begun: the backlog is written side by side.
			q := &backlogDLQ{together: 64, latency: 10 * time.Millisecond, enough: make(chan struct{})}
			var scs []fanout.SinkConfig
			for _, name := range sinks {
				scs = append(scs, fanout.SinkConfig{Name: name, Sink: hang, Concurrency: 1, QueueSize: dispatches,
					Retry: retry.Policy{MaxAttempts: 1}})
			}
			d, err := fanout.New(fanout.Config{
				Sinks:  scs,
				Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: sinks}},
				DLQ:    q,
			}, fanout.WithDLQTimeout(time.Second))
			require.NoError(t, err)
			ctx := testContext(t)
			answers := make(chan error, dispatches)
			for i := range dispatches {
				go func() { answers <- d.Dispatch(ctx, event(fmt.Sprintf("e%d", i), "x")) }()
			}
			require.Eventually(t, func() bool {
				for _, name := range sinks {
					if fanout.QueueDepth(d, name) != dispatches {
						return false
					}
				}
				return true
			}, testTimeout, time.Millisecond, "every dispatch has its sinks' slots")

			ended, cancel := context.WithCancel(ctx)
			cancel()
			require.NoError(t, d.Close(ended))
			for range dispatches {
				require.NoError(t, recv(t, answers), "answered once dead-lettered")
			}
			entries := q.Entries()
			got := map[string]bool{}
			for _, e := range entries {
				got[e.Event.ID+"/"+e.Sink] = true
			}
			assert.Len(t, entries, len(sinks)*dispatches)
			assert.Len(t, got, len(sinks)*dispatches, "each event dead-lettered once for each sink")
			assert.LessOrEqual(t, q.most.Load(), int64(64+len(sinks)), "the drain's writers and the sinks' own workers")
			t.Logf("at most %d writes at once", q.most.Load())
		})
	}
}

// With ordering keys, Close's deadline takes the events waiting in the sink's lanes as well as
// those in its queue, even while the sink's only worker is held by a Send that ignores
// cancellation: all but that one are dead-lettered (in no particular order across keys), and
// Close reports the one still in a Send.
func TestAsyncCloseDeadLettersLanesBehindAStuckSend(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	entered := make(chan string, 1)
	stuck := sinkFunc(func(_ context.Context, e *fanbridge.Event) error {
		entered <- e.ID
		<-release // ignores its context: a broken sink
		return nil
	})
	q := &memDLQ{}
	d, err := fanout.New(fanout.Config{
		Sinks:  []fanout.SinkConfig{{Name: "s", Sink: stuck, Concurrency: 1, QueueSize: 200}},
		Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"s"}}},
		DLQ:    q,
	}, fanout.WithMode(fanout.Async), fanout.WithDLQTimeout(100*time.Millisecond),
		fanout.WithOrderingKey(func(e *fanbridge.Event) string { return e.ID[:2] }))
	require.NoError(t, err)
	ctx := testContext(t)
	for i := range 40 {
		for _, key := range []string{"k0", "k1", "k2", "k3"} {
			require.NoError(t, d.Dispatch(ctx, event(fmt.Sprintf("%s-%d", key, i), "x")))
		}
	}
	require.Equal(t, "k0-0", recv(t, entered))
	require.Equal(t, 4, fanout.LaneCount(d, "s"))

	ended, cancel := context.WithCancel(ctx)
	cancel()
	start := time.Now()
	err = d.Close(ended)
	took := time.Since(start)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "1 deliveries still in flight")
	assert.Contains(t, err.Error(), "1 in a sink's Send that ignored cancellation")
	assert.NotContains(t, err.Error(), "waiting behind")
	assert.NotContains(t, err.Error(), "neither delivered nor dead-lettered")
	assert.Less(t, took, 2*time.Second, "the DLQ timeout after the last entry, and a grace")
	assert.Len(t, q.Entries(), 159)
	assert.False(t, q.Has("k0-0", "s"), "still in the Send")
}

// heldSeen holds the deduplication lookup of one event until released, in front of a
// MemoryDedup: that event's dispatch has taken the configuration and not yet handed its tasks
// out.
type heldSeen struct {
	key     string
	entered chan struct{}
	release chan struct{}
	fanout.DedupStore
}

func (h *heldSeen) Seen(ctx context.Context, key string) (fanout.DedupRecord, bool, error) {
	if key == h.key {
		close(h.entered)
		<-h.release
	}
	return h.DedupStore.Seen(ctx, key)
}

// An Async dispatch that took the configuration before Close, and reaches the hand-out of its
// event only once Close's deadline has passed (its deduplication lookup was slow), is refused as
// closed, with nothing recorded for its ID: not accepted into the lane of a key whose current
// event a Send that ignores cancellation holds, after the deadline emptied that lane, nor into
// the queue. The rest of the backlog is dead-lettered as ever.
func TestAsyncEventHandedOutAfterCloseDeadlineIsRefused(t *testing.T) {
	for _, ordered := range []bool{false, true} {
		t.Run(fmt.Sprintf("ordered=%v", ordered), func(t *testing.T) {
			release := make(chan struct{})
			defer close(release)
			entered := make(chan string, 1)
			stuck := sinkFunc(func(_ context.Context, e *fanbridge.Event) error {
				entered <- e.ID
				<-release // ignores its context: a broken sink
				return nil
			})
			written := make(chan string, 4)
			q := &memDLQ{fail: func(e dlq.Entry) error { written <- e.Event.ID; return nil }}
			late := event("late", "x")
			mem, err := fanout.NewMemoryDedup(time.Minute, 100)
			require.NoError(t, err)
			held := &heldSeen{key: fanout.DedupKey(late), entered: make(chan struct{}), release: make(chan struct{}), DedupStore: mem}
			opts := []fanout.Option{fanout.WithMode(fanout.Async), fanout.WithDedup(held),
				fanout.WithDLQTimeout(500 * time.Millisecond)}
			if ordered {
				opts = append(opts, fanout.WithOrderingKey(func(*fanbridge.Event) string { return "k" }))
			}
			d, err := fanout.New(fanout.Config{
				Sinks:  []fanout.SinkConfig{{Name: "s", Sink: stuck, Concurrency: 1, QueueSize: 10}},
				Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"s"}}},
				DLQ:    q,
			}, opts...)
			require.NoError(t, err)
			ctx := testContext(t)
			require.NoError(t, d.Dispatch(ctx, event("first", "x")))
			require.Equal(t, "first", recv(t, entered))
			require.NoError(t, d.Dispatch(ctx, event("second", "x"))) // waits behind it, in its lane or the queue
			lateErr := make(chan error, 1)
			go func() { lateErr <- d.Dispatch(ctx, late) }()
			recv(t, held.entered)

			ended, cancel := context.WithCancel(ctx)
			cancel()
			closed := make(chan error, 1)
			go func() { closed <- d.Close(ended) }()
			// The deadline has taken what waited behind the stuck Send: the lane is empty.
			require.Equal(t, "second", recv(t, written))
			close(held.release)
			lerr := recv(t, lateErr)
			assert.ErrorIs(t, lerr, fanbridge.ErrClosed, "refused")
			err = recv(t, closed)
			require.Error(t, err)
			assert.False(t, q.Has("late", "s"), "refused, yet dead-lettered")
			_, seen, serr := mem.Seen(ctx, fanout.DedupKey(late))
			require.NoError(t, serr)
			assert.False(t, seen, "refused, yet recorded as handled")
			assert.Contains(t, err.Error(), "1 deliveries still in flight")
			assert.Contains(t, err.Error(), "1 in a sink's Send that ignored cancellation")
			assert.NotContains(t, err.Error(), "waiting behind")
			assert.NotContains(t, err.Error(), "neither delivered nor dead-lettered")
		})
	}
}
