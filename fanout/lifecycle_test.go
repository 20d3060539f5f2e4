package fanout_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
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
	"github.com/fanbridge/fanbridge/sink"
)

func TestAsyncOverloadIsAllOrNothing(t *testing.T) {
	gate := make(chan struct{})
	a := newRecSink()
	a.sent = make(chan string, 8)
	b := newRecSink()
	entered := make(chan string, 8)
	b.fail = func(e *fanbridge.Event, _ int) error {
		entered <- e.ID
		<-gate
		return nil
	}
	d := newDispatcher(t, fanout.Config{
		Sinks: []fanout.SinkConfig{{Name: "a", Sink: a},
			{Name: "b", Sink: b, Concurrency: 1, QueueSize: 2}},
		Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"a", "b"}}},
	}, fanout.WithMode(fanout.Async), fanout.WithOverloadRetryAfter(3*time.Second))
	ctx := testContext(t)

	require.NoError(t, d.Dispatch(ctx, event("e1", "x")))
	require.Equal(t, "e1", recv(t, entered)) // b's only worker is busy with e1
	require.NoError(t, d.Dispatch(ctx, event("e2", "x")))
	err := d.Dispatch(ctx, event("e3", "x"))
	require.ErrorIs(t, err, fanbridge.ErrOverloaded)
	wait, ok := retry.RetryAfter(err)
	assert.True(t, ok)
	assert.Equal(t, 3*time.Second, wait)
	assert.Contains(t, err.Error(), `sink "b"`)
	recv(t, a.sent)
	recv(t, a.sent)
	// a has e1 and e2; its slots come back as each Send returns, a moment after it reported.
	// A slot still held for the refused e3 would keep the depth at 1.
	require.Eventually(t, func() bool { return fanout.QueueDepth(d, "a") == 0 }, 5*time.Second, time.Millisecond,
		"a's slot for e3 was given back")
	assert.Equal(t, 0, a.Attempts("e3"), "no sink gets a refused event")

	close(gate)
	require.Eventually(t, func() bool { return fanout.QueueDepth(d, "b") == 0 }, 5*time.Second, time.Millisecond)
	require.NoError(t, d.Dispatch(ctx, event("e3", "x")), "the sender's retry is not a duplicate")
	require.NoError(t, d.Close(ctx))
	for _, id := range []string{"e1", "e2", "e3"} {
		assert.Equal(t, 1, a.Delivered(id), id)
		assert.Equal(t, 1, b.Delivered(id), id)
	}
}

func TestSyncOverload(t *testing.T) {
	gate := make(chan struct{})
	entered := make(chan struct{}, 1)
	b := newRecSink()
	b.fail = func(*fanbridge.Event, int) error {
		entered <- struct{}{}
		<-gate
		return nil
	}
	a := newRecSink()
	d := newDispatcher(t, fanout.Config{
		Sinks:  []fanout.SinkConfig{{Name: "a", Sink: a}, {Name: "b", Sink: b, Concurrency: 1, QueueSize: 1}},
		Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"a", "b"}}},
	})
	ctx := testContext(t)
	first := make(chan error, 1)
	go func() { first <- d.Dispatch(ctx, event("e1", "x")) }()
	recv(t, entered)
	err := d.Dispatch(ctx, event("e2", "x"))
	require.ErrorIs(t, err, fanbridge.ErrOverloaded)
	assert.Equal(t, 0, a.Attempts("e2"))
	close(gate)
	require.NoError(t, recv(t, first))
}

// closingSink records sends and its closing, and fails the test on a send after Close.
type closingSink struct {
	t      *testing.T
	name   string
	sent   atomic.Int64
	closed atomic.Bool
	mu     sync.Mutex
	got    map[string]bool
}

func newClosingSink(t *testing.T, name string) *closingSink {
	return &closingSink{t: t, name: name, got: map[string]bool{}}
}

func (c *closingSink) Send(_ context.Context, e *fanbridge.Event) error {
	if c.closed.Load() {
		c.t.Errorf("sink %s: Send of %s after Close", c.name, e.ID)
		return sink.ErrClosed
	}
	c.sent.Add(1)
	c.mu.Lock()
	c.got[e.ID] = true
	c.mu.Unlock()
	return nil
}

func (c *closingSink) Has(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.got[id]
}

func (c *closingSink) Close() error {
	if c.closed.Swap(true) {
		c.t.Errorf("sink %s closed twice", c.name)
	}
	return nil
}

// TestRouteSwapUnderConcurrentDispatch swaps between two route sets while events flow: every event
// must reach exactly the sinks of one set, never a mix.
func TestRouteSwapUnderConcurrentDispatch(t *testing.T) {
	for _, mode := range []fanout.Mode{fanout.Sync, fanout.Async} {
		t.Run(mode.String(), func(t *testing.T) {
			sinks := map[string]*closingSink{}
			var cfgSinks []fanout.SinkConfig
			for _, n := range []string{"a1", "a2", "b1", "b2"} {
				sinks[n] = newClosingSink(t, n)
				cfgSinks = append(cfgSinks, fanout.SinkConfig{Name: n, Sink: sinks[n]})
			}
			routesA := []fanout.Route{{Name: "ra1", Filter: fanout.All, Sinks: []string{"a1"}},
				{Name: "ra2", Filter: fanout.All, Sinks: []string{"a2"}}}
			routesB := []fanout.Route{{Name: "rb", Filter: fanout.All, Sinks: []string{"b1", "b2"}}}
			d, err := fanout.New(fanout.Config{Sinks: cfgSinks, Routes: routesA}, fanout.WithMode(mode))
			require.NoError(t, err)
			ctx := testContext(t)

			var accepted sync.Map
			progress := make(chan struct{}, 1)
			stop := make(chan struct{})
			var wg sync.WaitGroup
			for w := range 4 {
				wg.Go(func() {
					for i := 0; ; i++ {
						select {
						case <-stop:
							return
						default:
						}
						id := fmt.Sprintf("w%d-%d", w, i)
						if err := d.Dispatch(ctx, event(id, "x")); err == nil {
							accepted.Store(id, true)
							select {
							case progress <- struct{}{}:
							default:
							}
						} else {
							assert.ErrorIs(t, err, fanbridge.ErrOverloaded)
						}
					}
				})
			}
			for i := range 60 {
				recv(t, progress) // at least one event between swaps, so that swaps land among dispatches
				routes := routesA
				if i%2 == 0 {
					routes = routesB
				}
				require.NoError(t, d.SetRoutes(routes))
			}
			close(stop)
			waitGroup(t, &wg)
			require.NoError(t, d.Close(ctx))

			n := 0
			accepted.Range(func(k, _ any) bool {
				id := k.(string)
				n++
				inA := sinks["a1"].Has(id) && sinks["a2"].Has(id)
				inB := sinks["b1"].Has(id) && sinks["b2"].Has(id)
				anyA := sinks["a1"].Has(id) || sinks["a2"].Has(id)
				anyB := sinks["b1"].Has(id) || sinks["b2"].Has(id)
				assert.True(t, (inA && !anyB) || (inB && !anyA), "event %s reached a mix of route sets", id)
				return true
			})
			assert.Positive(t, n)
			for name, s := range sinks {
				assert.True(t, s.closed.Load(), "sink %s closed by Close", name)
			}
		})
	}
}

// TestUpdateRetiresRemovedSinksAfterDrain removes a sink that still has work queued: the work
// finishes, and only then is the sink closed.
func TestUpdateRetiresRemovedSinksAfterDrain(t *testing.T) {
	gate := make(chan struct{})
	entered := make(chan struct{}, 1)
	old := &gatedCloser{gate: gate, entered: entered}
	keep := newClosingSink(t, "keep")
	d := newDispatcher(t, fanout.Config{
		Sinks:  []fanout.SinkConfig{{Name: "old", Sink: old}, {Name: "keep", Sink: keep}},
		Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"old", "keep"}}},
	}, fanout.WithMode(fanout.Async))
	ctx := testContext(t)
	require.NoError(t, d.Dispatch(ctx, event("e1", "x")))
	require.NoError(t, d.Dispatch(ctx, event("e2", "x")))
	recv(t, entered)

	fresh := newClosingSink(t, "new")
	require.NoError(t, d.Update(fanout.Config{
		Sinks:  []fanout.SinkConfig{{Name: "new", Sink: fresh}, {Name: "keep", Sink: keep}},
		Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"new", "keep"}}},
	}))
	require.NoError(t, d.Dispatch(ctx, event("e3", "x")))
	assert.False(t, old.closed.Load(), "old still has e1 in flight and e2 queued")

	close(gate)
	require.Eventually(t, old.closed.Load, 5*time.Second, time.Millisecond)
	assert.EqualValues(t, 2, old.delivered.Load(), "old finished its work before being closed")
	assert.False(t, keep.closed.Load(), "keep is unchanged and stays open")
	require.NoError(t, d.Close(ctx))
	assert.True(t, keep.Has("e3"))
	assert.True(t, fresh.Has("e3"))
	assert.False(t, fresh.Has("e1"))
}

type gatedCloser struct {
	gate      chan struct{}
	entered   chan struct{}
	delivered atomic.Int64
	closed    atomic.Bool
}

func (g *gatedCloser) Send(ctx context.Context, _ *fanbridge.Event) error {
	if g.closed.Load() {
		return sink.ErrClosed
	}
	select {
	case g.entered <- struct{}{}:
	default:
	}
	select {
	case <-g.gate:
	case <-ctx.Done():
		return ctx.Err()
	}
	g.delivered.Add(1)
	return nil
}

func (g *gatedCloser) Close() error { g.closed.Store(true); return nil }

func TestClosedDispatcherRefuses(t *testing.T) {
	s := newClosingSink(t, "s")
	d, err := fanout.New(fanout.Config{
		Sinks:  []fanout.SinkConfig{{Name: "s", Sink: s}},
		Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"s"}}},
	}, fanout.WithSinkClosing(false))
	require.NoError(t, err)
	ctx := testContext(t)
	require.NoError(t, d.Close(ctx))
	assert.ErrorIs(t, d.Dispatch(ctx, event("e1", "x")), fanbridge.ErrClosed)
	assert.ErrorIs(t, d.Update(fanout.Config{}), fanbridge.ErrClosed)
	assert.ErrorIs(t, d.SetRoutes(nil), fanbridge.ErrClosed)
	assert.NoError(t, d.Close(ctx), "a second Close returns the first's result")
	assert.False(t, s.closed.Load(), "WithSinkClosing(false) leaves sinks open")
}

// TestCloseUnderLoadLosesNothing runs many dispatchers against a fast sink, a flaky one and one
// that hangs on some events until cancelled, then closes with a short deadline while events are
// still flowing. Every event whose Dispatch returned nil must be in each of its sinks or in the
// DLQ for that sink. Past its deadline Close waits while the dead-letter queue keeps taking
// entries, and gives up once it has taken none for the DLQ timeout; this queue takes each at once
// and every sink honours cancellation, so Close must return within its deadline plus the DLQ
// timeout.
func TestCloseUnderLoadLosesNothing(t *testing.T) {
	for _, mode := range []fanout.Mode{fanout.Sync, fanout.Async} {
		t.Run(mode.String(), func(t *testing.T) {
			fast := newRecSink()
			flaky := newRecSink()
			flaky.fail = func(e *fanbridge.Event, attempt int) error {
				if rand.IntN(3) == 0 {
					return errBoom
				}
				return nil
			}
			// hang never answers until its context ends.
			hang := newRecSink()
			hang.fail = func(e *fanbridge.Event, _ int) error {
				return errors.New("hang: no answer")
			}
			hangSink := sink.Func(func(ctx context.Context, e *fanbridge.Event) error {
				<-ctx.Done()
				return hang.Send(ctx, e)
			})
			q := &memDLQ{}
			const dlqTimeout = time.Second
			d, err := fanout.New(fanout.Config{
				Sinks: []fanout.SinkConfig{
					{Name: "fast", Sink: fast},
					{Name: "flaky", Sink: flaky, Retry: retry.Policy{InitialInterval: time.Millisecond, MaxAttempts: 4}},
					{Name: "hang", Sink: hangSink, Retry: retry.Policy{InitialInterval: 5 * time.Millisecond,
						MaxInterval: 20 * time.Millisecond, MaxAttempts: -1}, Breaker: fanout.Breaker{Failures: -1}},
				},
				Routes: []fanout.Route{
					{Name: "all", Filter: fanout.All, Sinks: []string{"fast", "flaky"}},
					{Name: "some", Filter: typeIs("hang"), Sinks: []string{"hang"}},
				},
				DLQ: q,
			}, fanout.WithMode(mode), fanout.WithDLQTimeout(dlqTimeout))
			require.NoError(t, err)

			ctx := testContext(t)
			var mu sync.Mutex
			accepted := map[string]string{}
			started := make(chan struct{})
			var once sync.Once
			var wg sync.WaitGroup
			for w := range 8 {
				wg.Go(func() {
					for i := 0; ; i++ {
						typ := "x"
						if i%5 == 0 {
							typ = "hang"
						}
						id := fmt.Sprintf("w%d-%d", w, i)
						dctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond) // an intake's budget
						err := d.Dispatch(dctx, event(id, typ))
						cancel()
						if errors.Is(err, fanbridge.ErrClosed) {
							return
						}
						if i == 20 {
							once.Do(func() { close(started) })
						}
						if err == nil {
							mu.Lock()
							accepted[id] = typ
							mu.Unlock()
						}
					}
				})
			}
			recv(t, started)
			cctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
			defer cancel()
			begin := time.Now()
			require.NoError(t, d.Close(cctx))
			took := time.Since(begin)
			waitGroup(t, &wg)
			assert.Less(t, took, 150*time.Millisecond+dlqTimeout+200*time.Millisecond, "Close overran its deadline")

			require.NotEmpty(t, accepted)
			mu.Lock()
			defer mu.Unlock()
			lost := 0
			for id, typ := range accepted {
				check := func(s *recSink, name string) {
					if s.Delivered(id) == 0 && !q.Has(id, name) {
						lost++
						t.Errorf("event %s lost at sink %s", id, name)
					}
				}
				check(fast, "fast")
				check(flaky, "flaky")
				if typ == "hang" {
					check(hang, "hang")
				}
			}
			assert.Zero(t, lost)
			for _, e := range q.Entries() {
				assert.NotEqual(t, retry.ClassCanceled, e.Class, "our own shutdown is not the sink's failure class")
				if e.Sink == "hang" {
					assert.Equal(t, dlq.ConditionAge, e.Condition)
				}
			}
			t.Logf("%s: %d events accepted, %d dead-letter entries, Close took %v", mode, len(accepted), len(q.Entries()), took)
		})
	}
}

// TestSharedSinkValueIsClosedOnceAtTheEnd: a Sink value used under two names, and kept across an
// Update that changes its settings, is closed once, when nothing uses it any more.
func TestSharedSinkValueIsClosedOnceAtTheEnd(t *testing.T) {
	shared := newClosingSink(t, "shared")
	d, err := fanout.New(fanout.Config{
		Sinks:  []fanout.SinkConfig{{Name: "a", Sink: shared}, {Name: "b", Sink: shared}},
		Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"a", "b"}}},
	})
	require.NoError(t, err)
	ctx := testContext(t)
	require.NoError(t, d.Dispatch(ctx, event("e1", "x")))
	require.NoError(t, d.Update(fanout.Config{
		Sinks:  []fanout.SinkConfig{{Name: "a", Sink: shared, Concurrency: 4}}, // changed settings; b removed
		Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"a"}}},
	}))
	require.NoError(t, d.Dispatch(ctx, event("e2", "x")))
	stats := d.Stats()
	require.Len(t, stats, 1)
	assert.Equal(t, int64(2), stats[0].Delivered, "a changed sink carries on the counters of the one it replaces")
	assert.False(t, shared.closed.Load(), "still in use under a")
	require.NoError(t, d.Close(ctx))
	assert.True(t, shared.closed.Load())
	assert.EqualValues(t, 3, shared.sent.Load())
}

// wrapSink is a value-type middleware: its type is comparable, but the Sink it holds may not be.
type wrapSink struct{ next sink.Sink }

func (w wrapSink) Send(ctx context.Context, e *fanbridge.Event) error { return w.next.Send(ctx, e) }

// A Sink value whose type is comparable but whose contents are not (a struct holding a
// sink.Func) is a valid configuration: New and Update must take it, not panic hashing it.
func TestSinkValueHoldingAFunc(t *testing.T) {
	var got atomic.Int64
	s := wrapSink{next: sink.Func(func(context.Context, *fanbridge.Event) error { got.Add(1); return nil })}
	cfg := fanout.Config{
		Sinks:  []fanout.SinkConfig{{Name: "s", Sink: s}},
		Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"s"}}},
	}
	d := newDispatcher(t, cfg)
	_, err := d.Deliver(testContext(t), event("e1", "x"))
	require.NoError(t, err)
	require.NoError(t, d.Update(cfg))
	_, err = d.Deliver(testContext(t), event("e2", "x"))
	require.NoError(t, err)
	assert.EqualValues(t, 2, got.Load())
}

// closingValue is a Sink passed by value whose type cannot be compared (it holds a slice), with
// a Close.
type closingValue struct {
	topics []string
	closes *atomic.Int64
}

func (v closingValue) Send(context.Context, *fanbridge.Event) error {
	if v.closes.Load() > 0 {
		return sink.ErrClosed
	}
	return nil
}

func (v closingValue) Close() error { v.closes.Add(1); return nil }

// ctxClosingValue is the same with a CloseContext instead, which the Dispatcher's Close calls.
type ctxClosingValue struct{ topics []string }

func (ctxClosingValue) Send(context.Context, *fanbridge.Event) error { return nil }
func (ctxClosingValue) CloseContext(context.Context) error           { return nil }

// The Dispatcher closes a Sink value once no sink uses it, which it cannot know of a value that
// cannot be compared: such a value with a Close would be closed by any Update (even one with the
// same configuration) while still configured, or under a name while another still uses it. New
// and Update refuse it, unless the Dispatcher closes no sinks.
func TestUncomparableSinkThatClosesIsRefused(t *testing.T) {
	newValue := func() closingValue { return closingValue{topics: []string{"t"}, closes: new(atomic.Int64)} }
	config := func(s sink.Sink, names ...string) fanout.Config {
		var sinks []fanout.SinkConfig
		for _, n := range names {
			sinks = append(sinks, fanout.SinkConfig{Name: n, Sink: s})
		}
		return fanout.Config{Sinks: sinks, Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: names}}}
	}
	t.Run("New", func(t *testing.T) {
		value := newValue()
		for _, s := range []sink.Sink{value, ctxClosingValue{value.topics}, wrapCloser{value}, nanCloser{math.NaN()}} {
			_, err := fanout.New(config(s, "a"))
			require.ErrorIs(t, err, fanout.ErrInvalidConfig, "%T", s)
			assert.ErrorContains(t, err, `sink "a": `)
			assert.ErrorContains(t, err, "give a pointer to it, or use WithSinkClosing(false)")
		}
	})
	t.Run("Update", func(t *testing.T) {
		value, ptr := newValue(), new(closingValue)
		*ptr = newValue()
		d := newDispatcher(t, config(ptr, "a"))
		require.ErrorIs(t, d.Update(config(value, "a")), fanout.ErrInvalidConfig)
		require.NoError(t, d.Update(config(ptr, "a")), "a pointer can be told apart")
		_, err := d.Deliver(testContext(t), event("e1", "x"))
		require.NoError(t, err)
		require.NoError(t, d.Close(testContext(t)))
		assert.EqualValues(t, 1, ptr.closes.Load())
	})
	t.Run("WithSinkClosing(false)", func(t *testing.T) {
		value := newValue()
		d := newDispatcher(t, config(value, "a", "b"), fanout.WithSinkClosing(false))
		require.NoError(t, d.Update(config(value, "a", "b")))
		require.NoError(t, d.Update(config(value, "a")))
		res, err := d.Deliver(testContext(t), event("e1", "x"))
		require.NoError(t, err)
		assert.Equal(t, fanout.Delivered, res.Sinks[0].Outcome)
		require.NoError(t, d.Close(testContext(t)))
		assert.Zero(t, value.closes.Load(), "the caller closes it")
	})
	t.Run("no Close", func(t *testing.T) {
		// sink.Func cannot be compared either, but there is nothing to close.
		d := newDispatcher(t, config(sinkFunc(func(context.Context, *fanbridge.Event) error { return nil }), "a", "b"))
		_, err := d.Deliver(testContext(t), event("e1", "x"))
		require.NoError(t, err)
	})
}

// wrapCloser is a comparable value-type middleware with a Close: holding a Sink that cannot be
// compared, it cannot be compared either.
type wrapCloser struct{ next sink.Sink }

func (w wrapCloser) Send(ctx context.Context, e *fanbridge.Event) error { return w.next.Send(ctx, e) }
func (w wrapCloser) Close() error                                       { return sink.Close(w.next) }

// nanCloser is a comparable value with a Close that is not equal to itself: it could never be
// found again as the sink a configuration keeps.
type nanCloser struct{ weight float64 }

func (nanCloser) Send(context.Context, *fanbridge.Event) error { return nil }
func (nanCloser) Close() error                                 { return nil }

// A task its Sync dispatch withdrew when the budget ran out has its outcome: it no longer counts
// as queued, and its queue slot is free for new events, although a worker has yet to skip it.
func TestWithdrawnTasksGiveTheirSlotBack(t *testing.T) {
	release, entered := make(chan struct{}), make(chan struct{}, 1)
	stuck := sink.Func(func(_ context.Context, e *fanbridge.Event) error {
		if e.ID == "1" {
			entered <- struct{}{}
			<-release
		}
		return nil
	})
	d := newDispatcher(t, fanout.Config{
		Sinks: []fanout.SinkConfig{{Name: "s", Sink: stuck, Concurrency: 1, QueueSize: 2},
			{Name: "a", Sink: newRecSink()}},
		Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"a", "s"}}},
		DLQ:    &memDLQ{},
	}, fanout.WithMode(fanout.Async))
	defer close(release)
	require.NoError(t, d.Dispatch(testContext(t), event("1", "x")))
	recv(t, entered) // the only worker is held in Send(1)

	ctx, cancel := context.WithTimeout(testContext(t), 200*time.Millisecond)
	res, err := d.Deliver(ctx, event("2", "x"))
	cancel()
	require.NoError(t, err)
	require.Equal(t, fanout.DeadLettered, res.Sinks[1].Outcome, "2 waited behind 1 past its budget")

	st := d.Stats()[0]
	assert.EqualValues(t, 1, st.Queued, "only 1 is unfinished")
	assert.EqualValues(t, 2, st.Delivered+st.DeadLettered+st.Failed+st.Queued, "every event given to the sink, once")
	assert.NoError(t, d.Dispatch(testContext(t), event("3", "x")), "QueueSize 2, one event unfinished")
}
