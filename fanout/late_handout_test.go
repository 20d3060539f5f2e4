package fanout_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/dlq"
	"github.com/fanbridge/fanbridge/fanout"
	"github.com/fanbridge/fanbridge/filter"
	"github.com/fanbridge/fanbridge/retry"
)

// gate holds whoever passes it until released, and says when someone has.
type gate struct {
	entered chan struct{}
	release chan struct{}
}

func newGate() *gate { return &gate{entered: make(chan struct{}), release: make(chan struct{})} }

func (g *gate) pass() {
	close(g.entered)
	<-g.release
}

// A dispatch that took the configuration before Close and is held in the caller's code it runs
// before handing its event out (a DedupStore's Seen, a route's Go predicate, the ordering-key
// function) until Close has given up and returned is refused as closed when it gets there: no
// sink gets the event, no dead-letter write is made for it, and nothing is recorded for its ID.
// Accepted then, it would have been handed to a drain that had ended, and lost after Close
// returned. Close's error names the dispatch it did not wait for.
func TestDispatchHeldPastCloseIsRefused(t *testing.T) {
	for _, mode := range []fanout.Mode{fanout.Async, fanout.Sync} {
		for _, where := range []string{"dedup", "filter", "ordering"} {
			t.Run(fmt.Sprintf("mode=%v/held-in=%s", mode, where), func(t *testing.T) {
				late := event("late", "x")
				g := newGate()
				mem, err := fanout.NewMemoryDedup(time.Minute, 100)
				require.NoError(t, err)
				var store fanout.DedupStore = mem
				var routeFilter filter.Predicate = fanout.All
				opts := []fanout.Option{fanout.WithMode(mode), fanout.WithDLQTimeout(50 * time.Millisecond)}
				switch where {
				case "dedup":
					store = &heldSeen{key: fanout.DedupKey(late), entered: g.entered, release: g.release, DedupStore: mem}
				case "filter":
					routeFilter = filter.PredicateFunc(func(e *fanbridge.Event) bool {
						if e.ID == "late" {
							g.pass()
						}
						return true
					})
				case "ordering":
					opts = append(opts, fanout.WithOrderingKey(func(e *fanbridge.Event) string {
						if e.ID == "late" {
							g.pass()
						}
						return "k"
					}))
				}
				opts = append(opts, fanout.WithDedup(store))
				s := newRecSink()
				q := &memDLQ{}
				d, err := fanout.New(fanout.Config{
					Sinks:  []fanout.SinkConfig{{Name: "s", Sink: s, Concurrency: 1, QueueSize: 10}},
					Routes: []fanout.Route{{Name: "r", Filter: routeFilter, Sinks: []string{"s"}}},
					DLQ:    q,
				}, opts...)
				require.NoError(t, err)
				ctx := testContext(t)
				lateErr := make(chan error, 1)
				go func() { lateErr <- d.Dispatch(ctx, late) }()
				recv(t, g.entered)

				ended, cancel := context.WithCancel(ctx)
				cancel()
				closed := make(chan error, 1)
				go func() { closed <- d.Close(ended) }()
				cerr := recv(t, closed) // it gives up on the held dispatch
				require.Error(t, cerr)
				assert.Contains(t, cerr.Error(), "1 dispatch begun before Close had not handed its event out")
				assert.Contains(t, cerr.Error(), "no sink will get it")
				assert.NotContains(t, cerr.Error(), "did not stop by the deadline")

				close(g.release)
				lerr := recv(t, lateErr)
				assert.ErrorIs(t, lerr, fanbridge.ErrClosed)
				assert.Zero(t, s.Attempts("late"), "refused, yet sent")
				assert.Empty(t, q.Entries(), "refused, yet dead-lettered")
				_, seen, serr := mem.Seen(ctx, fanout.DedupKey(late))
				require.NoError(t, serr)
				assert.False(t, seen, "refused, yet recorded as handled")
			})
		}
	}
}

// Close's report on dispatches held in the caller's code past its deadline promises only what
// holds whatever that code answers: no sink gets their events. A route's filter that then says no
// has its dispatch answer that no route matched, not that the Dispatcher is closed.
func TestCloseReportOfHeldDispatchesPromisesNoRefusal(t *testing.T) {
	for _, tc := range []struct {
		held int
		want string
	}{
		{1, "1 dispatch begun before Close had not handed its event out"},
		{2, "2 dispatches begun before Close had not handed their event out"},
	} {
		t.Run(fmt.Sprintf("held=%d", tc.held), func(t *testing.T) {
			entered := make(chan struct{}, tc.held)
			release := make(chan struct{})
			f := filter.PredicateFunc(func(e *fanbridge.Event) bool {
				entered <- struct{}{}
				<-release
				return false
			})
			s := newRecSink()
			q := &memDLQ{}
			d, err := fanout.New(fanout.Config{
				Sinks:  []fanout.SinkConfig{{Name: "s", Sink: s, Concurrency: 1, QueueSize: 10}},
				Routes: []fanout.Route{{Name: "r", Filter: f, Sinks: []string{"s"}}},
				DLQ:    q,
			}, fanout.WithMode(fanout.Async), fanout.WithDLQTimeout(30*time.Millisecond))
			require.NoError(t, err)
			ctx := testContext(t)
			errs := make(chan error, tc.held)
			for i := range tc.held {
				go func() { errs <- d.Dispatch(ctx, event(fmt.Sprintf("late-%d", i), "x")) }()
			}
			for range tc.held {
				recv(t, entered)
			}

			ended, cancel := context.WithCancel(ctx)
			cancel()
			closed := make(chan error, 1)
			go func() { closed <- d.Close(ended) }()
			cerr := recv(t, closed)
			require.Error(t, cerr)
			assert.Contains(t, cerr.Error(), tc.want+" (held in the caller's code: a DedupStore, a route's "+
				"filter, the ordering-key function, the clock, the context or the logger): no sink will get it")
			assert.NotContains(t, cerr.Error(), "refused")

			close(release)
			for range tc.held {
				assert.ErrorIs(t, recv(t, errs), fanbridge.ErrNoMatch)
			}
			assert.Empty(t, q.Entries())
		})
	}
}

// holdAtHandOut holds the dispatch of the event with ID id, once it has begun handing its event
// out (where no caller's code runs), until g is released.
func holdAtHandOut(d *fanout.Dispatcher, id string, g *gate) {
	fanout.OnHandOut(d, func(e *fanbridge.Event) {
		if e.ID == id {
			g.pass()
		}
	})
}

// lateHandOutBehindStuckSink starts an Async Dispatcher writing to q, whose one sink's only worker
// is held by the event "first" in a Send that ignores cancellation (a broken sink, released when
// the test ends), and a dispatch of "late" held at its hand-out. It returns the Dispatcher, the
// gate "late" waits at, and where that Dispatch's result arrives.
func lateHandOutBehindStuckSink(t *testing.T, ctx context.Context, q *memDLQ, dlqTimeout time.Duration) (*fanout.Dispatcher, *gate, <-chan error) {
	t.Helper()
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	entered := make(chan string, 1)
	stuck := sinkFunc(func(_ context.Context, e *fanbridge.Event) error {
		entered <- e.ID
		<-release
		return nil
	})
	d, err := fanout.New(fanout.Config{
		Sinks:  []fanout.SinkConfig{{Name: "s", Sink: stuck, Concurrency: 1, QueueSize: 10}},
		Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"s"}}},
		DLQ:    q,
	}, fanout.WithMode(fanout.Async), fanout.WithDLQTimeout(dlqTimeout))
	require.NoError(t, err)
	held := newGate()
	holdAtHandOut(d, "late", held)
	require.NoError(t, d.Dispatch(ctx, event("first", "x")))
	require.Equal(t, "first", recv(t, entered))
	lateErr := make(chan error, 1)
	go func() { lateErr <- d.Dispatch(ctx, event("late", "x")) }()
	recv(t, held.entered)
	return d, held, lateErr
}

// A dispatch that is handing its event out when Close's deadline passes (held there by the test)
// is waited for: the drain does not end while it hands out, and then gives its task the whole DLQ
// timeout, so the event is dead-lettered, although the queue had nothing to write for much longer
// than that timeout and a Send that ignores cancellation holds the sink's only worker.
func TestDrainWaitsForADispatchHandingOut(t *testing.T) {
	const dlqTimeout = 100 * time.Millisecond
	q := &memDLQ{}
	ctx := testContext(t)
	d, held, lateErr := lateHandOutBehindStuckSink(t, ctx, q, dlqTimeout)

	ended, cancel := context.WithCancel(ctx)
	cancel()
	closed := make(chan error, 1)
	go func() { closed <- d.Close(ended) }()
	// Without the wait, Close gives up after the DLQ timeout and its grace of 100ms.
	giveUp := time.NewTimer(5 * (dlqTimeout + 100*time.Millisecond))
	defer giveUp.Stop()
	select {
	case err := <-closed:
		t.Fatalf("Close returned while a dispatch was handing its event out: %v", err)
	case <-giveUp.C:
	}
	close(held.release)
	require.NoError(t, recv(t, lateErr), "handed out before the deadline's check: accepted")
	err := recv(t, closed)
	require.Error(t, err)
	assert.True(t, q.Has("late", "s"), "accepted, yet neither delivered nor dead-lettered; Close: %v", err)
	assert.Contains(t, err.Error(), "1 deliveries still in flight")
	assert.Contains(t, err.Error(), "1 in a sink's Send that ignored cancellation")
	assert.NotContains(t, err.Error(), "neither delivered nor dead-lettered")
	assert.NotContains(t, err.Error(), "had not handed")
	for _, en := range q.Entries() {
		if en.Event.ID == "late" {
			assert.Equal(t, dlq.ConditionAge, en.Condition)
			assert.Zero(t, en.Attempts, "shed at the deadline, without an attempt")
		}
	}
}

// A dispatch that ends its hand-out past Close's deadline, long after the queue last took an
// entry, restarts the drain's idle time: its task gets the whole DLQ timeout, as the backlog did,
// so a slow but healthy queue that takes most of that timeout to write it still gets the entry,
// rather than the drain giving up at its next look, which comes sooner.
func TestDrainRestartsIdleAfterLateHandOut(t *testing.T) {
	const dlqTimeout = 200 * time.Millisecond
	q := &memDLQ{fail: func(e dlq.Entry) error {
		if e.Event.ID == "late" {
			time.Sleep(dlqTimeout * 7 / 10) // the queue's own time to write, within its timeout
		}
		return nil
	}}
	ctx := testContext(t)
	d, held, lateErr := lateHandOutBehindStuckSink(t, ctx, q, dlqTimeout)

	ended, cancel := context.WithCancel(ctx)
	cancel()
	began := time.Now()
	closed := make(chan error, 1)
	go func() { closed <- d.Close(ended) }()
	// The drain looks every DLQ timeout while the dispatch hands out. Handed out half a timeout
	// before its next look, the task's write is still under way then: only the restarted idle
	// time keeps the drain from cutting it off.
	wait := time.NewTimer(time.Until(began.Add(dlqTimeout * 7 / 2)))
	defer wait.Stop()
	select {
	case err := <-closed:
		t.Fatalf("Close returned while a dispatch was handing its event out: %v", err)
	case <-wait.C:
	}
	close(held.release)
	require.NoError(t, recv(t, lateErr), "handed out before the deadline's check: accepted")
	err := recv(t, closed)
	require.Error(t, err)
	assert.True(t, q.Has("late", "s"), "accepted, yet not dead-lettered; Close: %v", err)
}

// panickyMeter is a MeterProvider whose fanbridge.fanout.route.matched counter panics in a
// dispatch whose context carries explode.
type panickyMeter struct{ noop.MeterProvider }

type panickyMeterOf struct{ noop.Meter }

type panickyCounter struct {
	noop.Int64Counter
	armed bool
}

type explode struct{}

func (panickyMeter) Meter(string, ...metric.MeterOption) metric.Meter { return panickyMeterOf{} }

func (panickyMeterOf) Int64Counter(name string, _ ...metric.Int64CounterOption) (metric.Int64Counter, error) {
	return panickyCounter{armed: name == "fanbridge.fanout.route.matched"}, nil
}

func (c panickyCounter) Add(ctx context.Context, _ int64, _ ...metric.AddOption) {
	if c.armed && ctx.Value(explode{}) != nil {
		panic("meter: boom")
	}
}

// panickyClock is the system clock, but its first reading once armed panics.
type panickyClock struct{ armed atomic.Bool }

func (c *panickyClock) Now() time.Time {
	if c.armed.CompareAndSwap(true, false) {
		panic("clock: boom")
	}
	return time.Now()
}

func (c *panickyClock) NewTimer(d time.Duration) retry.Timer { return retry.SystemClock.NewTimer(d) }

// panickyDeadline is a context whose Deadline panics.
type panickyDeadline struct{ context.Context }

func (panickyDeadline) Deadline() (time.Time, bool) { panic("context: boom") }

// A panic in the caller's code a dispatch runs about its hand-out (the meter counting the routes
// it matched, the clock's reading of its arrival, the context's deadline), or in the hand-out
// itself, reaches the caller and leaves nothing behind: no queue slot stays taken, and a later
// Close that reaches its deadline returns once the drain gives up, where a dispatch left counted
// as handing out would hold the drain, and Close, for ever.
func TestPanicAboutHandOutLeavesCloseBounded(t *testing.T) {
	const dlqTimeout = 50 * time.Millisecond
	for _, tc := range []struct {
		where string
		sync  bool // dispatched with Deliver rather than Dispatch (Async)
	}{
		{where: "meter"}, {where: "meter", sync: true},
		{where: "clock"}, {where: "clock", sync: true},
		{where: "deadline", sync: true},
		{where: "hand-out"}, {where: "hand-out", sync: true},
	} {
		t.Run(fmt.Sprintf("%s/sync=%v", tc.where, tc.sync), func(t *testing.T) {
			release := make(chan struct{})
			defer close(release)
			entered := make(chan struct{}, 1)
			s := sinkFunc(func(_ context.Context, e *fanbridge.Event) error {
				if e.ID == "stuck" {
					entered <- struct{}{}
					<-release // ignores its context: a broken sink
				}
				return nil
			})
			clk := &panickyClock{}
			opts := []fanout.Option{fanout.WithMode(fanout.Async), fanout.WithDLQTimeout(dlqTimeout), fanout.WithDedup(nil)}
			switch tc.where {
			case "meter":
				opts = append(opts, fanout.WithMeterProvider(panickyMeter{}))
			case "clock":
				opts = append(opts, fanout.WithClock(clk))
			}
			d, err := fanout.New(fanout.Config{
				Sinks:  []fanout.SinkConfig{{Name: "s", Sink: s, Concurrency: 1, QueueSize: 10}},
				Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"s"}}},
				DLQ:    &memDLQ{},
			}, opts...)
			require.NoError(t, err)
			if tc.where == "hand-out" {
				fanout.OnHandOut(d, func(e *fanbridge.Event) {
					if e.ID == "boom" {
						panic("hand-out: boom")
					}
				})
			}
			ctx := testContext(t)

			boomCtx := context.WithValue(ctx, explode{}, true)
			if tc.where == "deadline" {
				boomCtx = panickyDeadline{boomCtx}
			}
			clk.armed.Store(tc.where == "clock")
			assert.Panics(t, func() {
				if tc.sync {
					_, _ = d.Deliver(boomCtx, event("boom", "x"))
				} else {
					_ = d.Dispatch(boomCtx, event("boom", "x"))
				}
			})

			require.NoError(t, d.Dispatch(ctx, event("stuck", "x")))
			recv(t, entered)
			// The sink's only worker took the stuck event, after the one before it if any.
			assert.EqualValues(t, 1, fanout.QueueDepth(d, "s"), "a slot left taken by the panic")

			ended, cancel := context.WithCancel(ctx)
			cancel()
			closed := make(chan error, 1)
			go func() { closed <- d.Close(ended) }()
			giveUp := time.NewTimer(20 * (dlqTimeout + 100*time.Millisecond))
			defer giveUp.Stop()
			select {
			case err := <-closed:
				require.Error(t, err)
				assert.Contains(t, err.Error(), "1 in a sink's Send that ignored cancellation")
			case <-giveUp.C:
				t.Fatal("Close has not returned long after the drain should have given up")
			}
		})
	}
}

// One held dispatch under the last configuration and others under one an Update replaced: the
// report counts the one in the singular.
func TestCloseReportOfOneHeldDispatchBesideOlderOnes(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan string, 2)
	f := filter.PredicateFunc(func(e *fanbridge.Event) bool {
		entered <- e.ID
		<-release
		return false
	})
	d, err := fanout.New(fanout.Config{
		Sinks:  []fanout.SinkConfig{{Name: "s", Sink: newRecSink(), Concurrency: 1, QueueSize: 10}},
		Routes: []fanout.Route{{Name: "r", Filter: f, Sinks: []string{"s"}}},
		DLQ:    &memDLQ{},
	}, fanout.WithMode(fanout.Async), fanout.WithDLQTimeout(30*time.Millisecond))
	require.NoError(t, err)
	ctx := testContext(t)
	errs := make(chan error, 2)
	go func() { errs <- d.Dispatch(ctx, event("old", "x")) }()
	recv(t, entered)
	require.NoError(t, d.SetRoutes([]fanout.Route{{Name: "r2", Filter: f, Sinks: []string{"s"}}}))
	go func() { errs <- d.Dispatch(ctx, event("new", "x")) }()
	recv(t, entered)

	ended, cancel := context.WithCancel(ctx)
	cancel()
	closed := make(chan error, 1)
	go func() { closed <- d.Close(ended) }()
	cerr := recv(t, closed)
	require.Error(t, cerr)
	assert.Contains(t, cerr.Error(), "1 dispatch, and others under a configuration an Update replaced")
	close(release)
	assert.ErrorIs(t, recv(t, errs), fanbridge.ErrNoMatch)
	assert.ErrorIs(t, recv(t, errs), fanbridge.ErrNoMatch)
}
