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
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/fanout"
	"github.com/fanbridge/fanbridge/retry"
)

// heldSink holds every Send until released; e2's first attempt fails at once (it is retried),
// and e3 is refused for good once released (it is dead-lettered).
type heldSink struct {
	entered   chan string
	release   chan struct{}
	releaseMu sync.Once
	failed    atomic.Bool
}

func newHeldSink(t *testing.T) *heldSink {
	h := &heldSink{entered: make(chan string, 64), release: make(chan struct{})}
	t.Cleanup(h.let) // before the Dispatcher's Close, registered earlier
	return h
}

func (h *heldSink) let() { h.releaseMu.Do(func() { close(h.release) }) }

func (h *heldSink) Send(ctx context.Context, e *fanbridge.Event) error {
	if e.ID == "e2" && h.failed.CompareAndSwap(false, true) {
		return errBoom
	}
	h.entered <- e.ID
	select {
	case <-h.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	if e.ID == "e3" {
		return retry.Permanent(errBoom)
	}
	return nil
}

// backlogConfig routes every event to a and b, b with the given Concurrency.
func backlogConfig(a, b *heldSink, q *memDLQ, concurrency int, withB bool) fanout.Config {
	quick := retry.Policy{InitialInterval: time.Millisecond, MaxInterval: time.Millisecond, MaxAttempts: 3}
	cfg := fanout.Config{
		Sinks:  []fanout.SinkConfig{{Name: "a", Sink: a}},
		Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"a"}}},
		DLQ:    q,
	}
	if withB {
		cfg.Sinks = append(cfg.Sinks, fanout.SinkConfig{Name: "b", Sink: b, Concurrency: concurrency, Retry: quick})
		cfg.Routes[0].Sinks = append(cfg.Routes[0].Sinks, "b")
	}
	return cfg
}

// backlogRun dispatches events to a Dispatcher, in Sync mode each on its own goroutine, so that
// a test can wait for a Send to hold it.
type backlogRun struct {
	t    *testing.T
	d    *fanout.Dispatcher
	mode fanout.Mode
	errs chan error
	n    int
}

func (r *backlogRun) dispatch(id string) {
	ctx := testContext(r.t)
	r.n++
	if r.mode == fanout.Async {
		require.NoError(r.t, r.d.Dispatch(ctx, event(id, "x")), "accepted into every queue")
		r.errs <- nil
		return
	}
	go func() { r.errs <- r.d.Dispatch(ctx, event(id, "x")) }()
}

// wait waits for every dispatch to return nil.
func (r *backlogRun) wait() {
	for range r.n {
		require.NoError(r.t, recv(r.t, r.errs))
	}
	r.n = 0
}

func queueDepth(t *testing.T, reader *sdkmetric.ManualReader) map[string]float64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(testContext(t), &rm))
	return points(t, rm, "fanbridge.fanout.sink.queue.depth", "sink")
}

// waitNothingQueued waits until no sink of d's configuration counts an event in Queued.
func waitNothingQueued(t *testing.T, d *fanout.Dispatcher) {
	t.Helper()
	require.Eventually(t, func() bool {
		for _, st := range d.Stats() {
			if st.Queued != 0 {
				return false
			}
		}
		return true
	}, testTimeout, time.Millisecond, "%+v", d.Stats())
}

func statsOf(d *fanout.Dispatcher, name string) (fanout.SinkStats, bool) {
	for _, st := range d.Stats() {
		if st.Name == name {
			return st, true
		}
	}
	return fanout.SinkStats{}, false
}

// The events a sink still holds when an Update rebuilds it (its settings changed) stay in the
// queue-depth gauge and in its Stats, added to those of the sink that replaces it, and the
// outcomes the old sink gives them reach the new one's Stats: the sum of Delivered,
// DeadLettered, Failed and Queued accounts for every event given to the name. Under ordering
// keys the two share their count, which must not be counted twice.
func TestRebuiltSinkKeepsItsBacklogInDepthAndStats(t *testing.T) {
	for _, tc := range []struct {
		name    string
		mode    fanout.Mode
		ordered bool
	}{
		{"Sync", fanout.Sync, false},
		{"Async", fanout.Async, false},
		{"Async ordered", fanout.Async, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reader := sdkmetric.NewManualReader()
			mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
			q := &memDLQ{}
			a, b := newHeldSink(t), newHeldSink(t)
			a.let()
			opts := []fanout.Option{fanout.WithMode(tc.mode), fanout.WithMeterProvider(mp)}
			if tc.ordered {
				opts = append(opts, fanout.WithOrderingKey(func(e *fanbridge.Event) string { return e.ID }))
			}
			d := newDispatcher(t, backlogConfig(a, b, q, 5, true), opts...)
			run := &backlogRun{t: t, d: d, mode: tc.mode, errs: make(chan error, 8)}
			for i := 1; i <= 5; i++ {
				run.dispatch(fmt.Sprintf("e%d", i))
			}
			for range 5 {
				recv(t, b.entered) // each held in b's Send
			}

			require.NoError(t, d.Update(backlogConfig(a, b, q, 6, true)))
			run.dispatch("e6")
			if !tc.ordered && tc.mode == fanout.Sync {
				// A Sync dispatch has its slot once its Send holds it. (Under ordering keys the
				// new b waits for the old one's workers; in Async mode acceptance is the slot.)
				assert.Equal(t, "e6", recv(t, b.entered))
			}

			assert.Equal(t, float64(6), queueDepth(t, reader)["b"], "five held by the old b, one by the new")
			st, ok := statsOf(d, "b")
			require.True(t, ok)
			assert.Equal(t, fanout.SinkStats{Name: "b", Retried: 1, Queued: 6, Breaker: "closed"}, st)

			b.let()
			run.wait()
			require.NoError(t, d.Settle(testContext(t)))
			waitNothingQueued(t, d)
			st, _ = statsOf(d, "b")
			assert.Equal(t, fanout.SinkStats{Name: "b", Delivered: 5, DeadLettered: 1, Retried: 1, Breaker: "closed"}, st,
				"every event given to b, once, whichever b had it")
			assert.True(t, q.Has("e3", "b"))
			assert.Equal(t, map[string]float64{"a": 0, "b": 0}, queueDepth(t, reader))
		})
	}
}

// A sink an Update removes keeps its series in the queue-depth gauge while it finishes its
// backlog, and loses it once it has stopped. One added again meanwhile carries on its Stats:
// Queued counts the removed one's events, and their outcomes count where Queued counted them.
func TestRemovedSinkKeepsItsBacklogInDepth(t *testing.T) {
	for _, mode := range []fanout.Mode{fanout.Sync, fanout.Async} {
		for _, again := range []bool{false, true} {
			name := mode.String()
			if again {
				name += " added again"
			}
			t.Run(name, func(t *testing.T) {
				reader := sdkmetric.NewManualReader()
				mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
				q := &memDLQ{}
				a, b := newHeldSink(t), newHeldSink(t)
				a.let()
				d := newDispatcher(t, backlogConfig(a, b, q, 5, true), fanout.WithMode(mode), fanout.WithMeterProvider(mp))
				run := &backlogRun{t: t, d: d, mode: mode, errs: make(chan error, 8)}
				for i := 1; i <= 5; i++ {
					run.dispatch(fmt.Sprintf("e%d", i))
				}
				for range 5 {
					recv(t, b.entered)
				}

				require.NoError(t, d.Update(backlogConfig(a, b, q, 5, false)))
				assert.Equal(t, float64(5), queueDepth(t, reader)["b"], "the removed b still holds five")
				_, ok := statsOf(d, "b")
				assert.False(t, ok, "Stats lists the sinks of the current configuration")
				if again {
					require.NoError(t, d.Update(backlogConfig(a, b, q, 5, true)))
					st, ok := statsOf(d, "b")
					require.True(t, ok)
					assert.Equal(t, fanout.SinkStats{Name: "b", Retried: 1, Queued: 5, Breaker: "closed"}, st)
					assert.Equal(t, float64(5), queueDepth(t, reader)["b"], "counted once")
				}

				b.let()
				run.wait()
				require.NoError(t, d.Settle(testContext(t)))
				waitNothingQueued(t, d)
				if !again {
					assert.Equal(t, map[string]float64{"a": 0}, queueDepth(t, reader), "b has stopped: its series is gone")
					return
				}
				st, _ := statsOf(d, "b")
				assert.Equal(t, fanout.SinkStats{Name: "b", Delivered: 4, DeadLettered: 1, Retried: 1, Breaker: "closed"}, st)
				assert.Equal(t, map[string]float64{"a": 0, "b": 0}, queueDepth(t, reader))
			})
		}
	}
}

// Once Close has begun there is no current configuration, but the sinks still finish what they
// hold: the queue-depth gauge goes on reporting it until Close returns.
func TestQueueDepthReportedWhileCloseDrains(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	a, b := newHeldSink(t), newHeldSink(t)
	a.let()
	d := newDispatcher(t, backlogConfig(a, b, &memDLQ{}, 5, true), fanout.WithMode(fanout.Async), fanout.WithMeterProvider(mp))
	run := &backlogRun{t: t, d: d, mode: fanout.Async, errs: make(chan error, 8)}
	for i := 1; i <= 5; i++ {
		run.dispatch(fmt.Sprintf("e%d", i))
	}
	for range 5 {
		recv(t, b.entered)
	}
	closed := make(chan error, 1)
	go func() { closed <- d.Close(testContext(t)) }()
	require.Eventually(t, func() bool { return d.Stats() == nil }, testTimeout, time.Millisecond, "Close has begun")
	assert.Equal(t, float64(5), queueDepth(t, reader)["b"])
	b.let()
	require.NoError(t, recv(t, closed))
}

// Without ordering keys the sinks of a name stop in any order: one an Update changes and the
// next removes holds nothing and stops at once, while the one it replaced still finishes its
// events. A sink of the name added again then carries on the counters they all shared, so that
// the outcomes of those events count where Queued counted them. Once every sink of the name has
// stopped, its counters go: one added later starts from zero.
func TestCountersFollowEverySinkOfANameStillRunning(t *testing.T) {
	type step struct {
		withB       bool
		concurrency int
	}
	for _, tc := range []struct {
		name    string
		ordered bool
		steps   []step // the Updates after b (concurrency 5) took e1, before the last one
	}{
		{"changed then removed", false, []step{{true, 6}, {false, 6}}},
		{"removed, added again, removed", false, []step{{false, 5}, {true, 5}, {false, 5}}},
		{"changed then removed, ordered", true, []step{{true, 6}, {false, 6}}},
		{"removed, added again, removed, ordered", true, []step{{false, 5}, {true, 5}, {false, 5}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := &memDLQ{}
			a, b := newHeldSink(t), newHeldSink(t)
			a.let()
			opts := []fanout.Option{fanout.WithMode(fanout.Async)}
			if tc.ordered {
				opts = append(opts, fanout.WithOrderingKey(func(e *fanbridge.Event) string { return e.ID }))
			}
			d := newDispatcher(t, backlogConfig(a, b, q, 5, true), opts...)
			ctx := testContext(t)
			require.NoError(t, d.Dispatch(ctx, event("e1", "x")))
			require.Equal(t, "e1", recv(t, b.entered), "the first b holds e1")

			for _, s := range tc.steps {
				require.NoError(t, d.Update(backlogConfig(a, b, q, s.concurrency, s.withB)))
			}
			if !tc.ordered {
				// The later b's hold nothing and stop; the first still holds e1. (Under ordering
				// keys each waits for the one it replaces, so none stops before the first.)
				require.Eventually(t, func() bool { return fanout.RunningSinks(d, "b") == 1 },
					testTimeout, time.Millisecond, "only the first b runs")
			}
			require.NoError(t, d.Update(backlogConfig(a, b, q, 5, true)))
			require.NoError(t, d.Dispatch(ctx, event("e3", "x")), "accepted for the last b, which dead-letters it")
			if !tc.ordered {
				require.Equal(t, "e3", recv(t, b.entered))
			}
			st, ok := statsOf(d, "b")
			require.True(t, ok)
			assert.Equal(t, fanout.SinkStats{Name: "b", Queued: 2, Breaker: "closed"}, st)

			b.let()
			require.NoError(t, d.Settle(ctx), "the b's an Update replaced have stopped")
			require.Eventually(t, func() bool { st, _ = statsOf(d, "b"); return st.Queued == 0 },
				testTimeout, time.Millisecond, "%+v", d.Stats())
			assert.Equal(t, fanout.SinkStats{Name: "b", Delivered: 1, DeadLettered: 1, Breaker: "closed"}, st,
				"e1's outcome counts where e1 was queued")
			assert.True(t, q.Has("e3", "b"))
			assert.Equal(t, 1, fanout.RunningSinks(d, "b"))
			assert.Equal(t, 2, fanout.CountedNames(d), "the counters of a and b, nothing of the b's that stopped")

			require.NoError(t, d.Update(backlogConfig(a, b, q, 5, false)))
			require.NoError(t, d.Settle(ctx))
			assert.Equal(t, 0, fanout.RunningSinks(d, "b"))
			assert.Equal(t, 1, fanout.CountedNames(d), "b's counters went with its last sink")
			require.NoError(t, d.Update(backlogConfig(a, b, q, 5, true)))
			st, _ = statsOf(d, "b")
			assert.Equal(t, fanout.SinkStats{Name: "b", Breaker: "closed"}, st, "added once every b had stopped")
		})
	}
}

// closeSignal is a recSink that says when it is closed.
type closeSignal struct {
	*recSink
	closed chan struct{}
}

func (c *closeSignal) Close() error { close(c.closed); return nil }

// Two sinks removed by one Update, a holding an event in its Send and b idle: b is forgotten and
// closed once its own workers are done, not once a's Send returns, whatever their order in the
// configuration; and b added again afterwards starts from zero.
func TestRemovedSinkIsClosedWithoutWaitingForAnotherOne(t *testing.T) {
	for _, order := range [][]string{{"a", "b", "c"}, {"b", "a", "c"}} {
		t.Run(order[0]+" first", func(t *testing.T) {
			q := &memDLQ{}
			a := newHeldSink(t)
			b := &closeSignal{recSink: newRecSink(), closed: make(chan struct{})}
			c := newRecSink()
			all := map[string]fanout.SinkConfig{"a": {Name: "a", Sink: a}, "b": {Name: "b", Sink: b}, "c": {Name: "c", Sink: c}}
			cfg := func(names ...string) fanout.Config {
				out := fanout.Config{DLQ: q, Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: names}}}
				for _, n := range names {
					out.Sinks = append(out.Sinks, all[n])
				}
				return out
			}
			d := newDispatcher(t, cfg(order...), fanout.WithMode(fanout.Async))
			defer a.let()
			ctx := testContext(t)
			require.NoError(t, d.Dispatch(ctx, event("e1", "x")))
			require.Equal(t, "e1", recv(t, a.entered))

			require.NoError(t, d.Update(cfg("c")))
			select {
			case <-b.closed:
			case <-ctx.Done():
				t.Fatal("b, removed and idle, was not closed while a held its event")
			}
			assert.Equal(t, 1, b.Delivered("e1"), "b had delivered e1 before it was closed")
			assert.Zero(t, fanout.RunningSinks(d, "b"))
			b2 := newRecSink()
			all["b"] = fanout.SinkConfig{Name: "b", Sink: b2}
			require.NoError(t, d.Update(cfg("b", "c")))
			st, ok := statsOf(d, "b")
			require.True(t, ok)
			assert.Equal(t, fanout.SinkStats{Name: "b", Breaker: "closed"}, st, "a b added once every b stopped starts from zero")
		})
	}
}
