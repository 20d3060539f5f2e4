package fanout_test

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/fanout"
	"github.com/fanbridge/fanbridge/filter"
	"github.com/fanbridge/fanbridge/retry/retrytest"
)

func byConversation(e *fanbridge.Event) string { return e.Meta("conversation") }

func keyed(id, conv string) *fanbridge.Event {
	e := event(id, "x")
	e.Metadata = map[string]string{"conversation": conv}
	return e
}

// TestOrderingKeyUnderConcurrency dispatches several conversations at once, each in order, to two
// sinks with many workers, one of which fails now and then (so some events retry while later ones
// of the same conversation wait). Each sink must see each conversation in dispatch order.
func TestOrderingKeyUnderConcurrency(t *testing.T) {
	const keys, perKey = 8, 60
	for _, mode := range []fanout.Mode{fanout.Async, fanout.Sync} {
		t.Run(mode.String(), func(t *testing.T) {
			clk := retrytest.NewClock(epoch)
			autoAdvance(t, clk)
			a, b := newRecSink(), newRecSink()
			b.fail = func(e *fanbridge.Event, attempt int) error {
				runtime.Gosched()
				if attempt == 1 && len(e.ID)%3 == 0 {
					return errBoom
				}
				return nil
			}
			d := newDispatcher(t, fanout.Config{
				Sinks: []fanout.SinkConfig{{Name: "a", Sink: a, Concurrency: 4},
					{Name: "b", Sink: b, Concurrency: 4}},
				Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"a", "b"}}},
			}, fanout.WithMode(mode), fanout.WithOrderingKey(byConversation), fanout.WithClock(clk))
			ctx := testContext(t)
			var wg sync.WaitGroup
			for k := range keys {
				wg.Go(func() {
					for i := range perKey {
						assert.NoError(t, d.Dispatch(ctx, keyed(fmt.Sprintf("c%d-%d", k, i), fmt.Sprint(k))))
					}
				})
			}
			waitGroup(t, &wg)
			require.NoError(t, d.Close(ctx))
			for name, s := range map[string]*recSink{"a": a, "b": b} {
				order := s.Order()
				require.Len(t, order, keys*perKey, name)
				next := map[string]int{}
				for _, id := range order {
					conv, seq, _ := strings.Cut(id, "-")
					n, _ := strconv.Atoi(seq)
					assert.Equal(t, next[conv], n, "sink %s: %s out of order", name, id)
					next[conv] = n + 1
				}
			}
		})
	}
}

// TestStuckKeyBlocksOnlyItself holds one conversation's first event in the sink: the rest of that
// conversation waits behind it, and another conversation goes through.
func TestStuckKeyBlocksOnlyItself(t *testing.T) {
	gate := make(chan struct{})
	s := newRecSink()
	s.sent = make(chan string, 16)
	entered := make(chan string, 16)
	s.fail = func(e *fanbridge.Event, _ int) error {
		entered <- e.ID
		if e.ID == "a1" {
			<-gate
		}
		return nil
	}
	d := newDispatcher(t, fanout.Config{
		Sinks:  []fanout.SinkConfig{{Name: "s", Sink: s, Concurrency: 2}},
		Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"s"}}},
	}, fanout.WithMode(fanout.Async), fanout.WithOrderingKey(byConversation))
	ctx := testContext(t)

	require.NoError(t, d.Dispatch(ctx, keyed("a1", "A")))
	require.Equal(t, "a1", recv(t, entered))
	require.NoError(t, d.Dispatch(ctx, keyed("a2", "A")))
	require.NoError(t, d.Dispatch(ctx, keyed("a3", "A")))
	require.NoError(t, d.Dispatch(ctx, keyed("b1", "B")))
	require.NoError(t, d.Dispatch(ctx, keyed("b2", "B")))
	assert.Equal(t, "b1", recv(t, s.sent), "B must not wait for A")
	assert.Equal(t, "b2", recv(t, s.sent))
	assert.Equal(t, "b1", recv(t, entered))
	assert.Equal(t, "b2", recv(t, entered))
	assert.Empty(t, entered, "a2 must not reach the sink before a1 is done")
	assert.Equal(t, 0, s.Delivered("a2"))

	close(gate)
	for _, want := range []string{"a1", "a2", "a3"} {
		assert.Equal(t, want, recv(t, s.sent))
	}
	// Async: nothing to wait on but the lane itself.
	require.Eventually(t, func() bool { return fanout.LaneCount(d, "s") == 0 }, 5*time.Second, time.Millisecond,
		"lanes go when empty")
}

// TestSyncStuckKeyBlocksOnlyItself: the same in Sync mode, where a waiting dispatch is a waiting
// caller.
func TestSyncStuckKeyBlocksOnlyItself(t *testing.T) {
	gate := make(chan struct{})
	entered := make(chan string, 4)
	s := newRecSink()
	s.fail = func(e *fanbridge.Event, _ int) error {
		entered <- e.ID
		if e.ID == "a1" {
			<-gate
		}
		return nil
	}
	d := newDispatcher(t, fanout.Config{
		Sinks:  []fanout.SinkConfig{{Name: "s", Sink: s, Concurrency: 2}},
		Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"s"}}},
	}, fanout.WithOrderingKey(byConversation))
	ctx := testContext(t)
	a1 := make(chan error, 1)
	go func() { a1 <- d.Dispatch(ctx, keyed("a1", "A")) }()
	require.Equal(t, "a1", recv(t, entered))
	a2 := make(chan error, 1)
	go func() { a2 <- d.Dispatch(ctx, keyed("a2", "A")) }()
	require.NoError(t, d.Dispatch(ctx, keyed("b1", "B")), "B goes through while A is stuck")
	assert.Equal(t, "b1", recv(t, entered))
	assert.Equal(t, 0, s.Attempts("a2"))
	close(gate)
	require.NoError(t, recv(t, a1))
	require.NoError(t, recv(t, a2))
	assert.Equal(t, []string{"b1", "a1", "a2"}, s.Order())
	assert.Equal(t, 0, fanout.LaneCount(d, "s"), "lanes go when empty")
}

func TestLanesAreRemovedWhenEmpty(t *testing.T) {
	s := newRecSink()
	d := newDispatcher(t, fanout.Config{
		Sinks:  []fanout.SinkConfig{{Name: "s", Sink: s}},
		Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"s"}}},
	}, fanout.WithOrderingKey(byConversation))
	ctx := context.Background()
	for i := range 1000 {
		require.NoError(t, d.Dispatch(ctx, keyed(fmt.Sprint(i), fmt.Sprint(i))))
	}
	assert.Equal(t, 0, fanout.LaneCount(d, "s"))
	assert.EqualValues(t, 0, fanout.QueueDepth(d, "s"))
}

// A sink an Update rebuilds under ordering keys waits for the events queued to the sink it
// replaces, and for nothing else: a dispatch still waiting on another, hung, sink of the old
// configuration does not hold it up, so a healthy sink keeps delivering across the reload.
func TestRebuiltSinkWaitsOnlyForItsPredecessor(t *testing.T) {
	ctx := testContext(t)
	a := newRecSink()
	a.sent = make(chan string, 4)
	entered := make(chan struct{})
	release := make(chan struct{})
	hung := sinkFunc(func(ctx context.Context, _ *fanbridge.Event) error {
		close(entered)
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	q := &memDLQ{}
	cfg := func(concurrency int) fanout.Config {
		return fanout.Config{
			Sinks: []fanout.SinkConfig{{Name: "a", Sink: a, Concurrency: concurrency}, {Name: "b", Sink: hung}},
			Routes: []fanout.Route{
				{Name: "both", Filter: typeIs("both"), Sinks: []string{"a", "b"}},
				{Name: "only-a", Filter: typeIs("a"), Sinks: []string{"a"}},
			},
			DLQ: q,
		}
	}
	d := newDispatcher(t, cfg(4), fanout.WithOrderingKey(func(e *fanbridge.Event) string { return "key-" + e.ID }))

	first := make(chan error, 1)
	go func() { first <- d.Dispatch(ctx, event("e1", "both")) }()
	assert.Equal(t, "e1", recv(t, a.sent))
	recv(t, entered)
	require.NoError(t, d.Update(cfg(8))) // a is rebuilt; b is kept, still holding e1's dispatch

	short, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	res, err := d.Deliver(short, event("e2", "a"))
	require.NoError(t, err)
	require.Len(t, res.Sinks, 1)
	assert.Equal(t, fanout.Delivered, res.Sinks[0].Outcome, "the rebuilt sink waited for the hung one")
	assert.Equal(t, 1, a.Delivered("e2"))

	close(release)
	require.NoError(t, recv(t, first))
	assert.Empty(t, q.Entries())
}

// The events queued to a sink an Update rebuilds under ordering keys count against the new
// sink's QueueSize until they are finished: accepting a full queue again at every Update would
// let a chain of them hold any number of events.
func TestRebuiltSinkCountsItsPredecessorsQueue(t *testing.T) {
	ctx := testContext(t)
	release := make(chan struct{})
	var delivered sync.Map
	s := sinkFunc(func(_ context.Context, e *fanbridge.Event) error {
		<-release
		delivered.Store(e.ID, true)
		return nil
	})
	cfg := func(concurrency int) fanout.Config {
		return fanout.Config{
			Sinks:  []fanout.SinkConfig{{Name: "s", Sink: s, Concurrency: concurrency, QueueSize: 2}},
			Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"s"}}},
		}
	}
	d := newDispatcher(t, cfg(1), fanout.WithMode(fanout.Async), fanout.WithOrderingKey(func(e *fanbridge.Event) string { return e.ID }))
	require.NoError(t, d.Dispatch(ctx, event("e1", "x")))
	require.NoError(t, d.Dispatch(ctx, event("e2", "x")))
	require.ErrorIs(t, d.Dispatch(ctx, event("refused", "x")), fanbridge.ErrOverloaded)

	for concurrency := 2; concurrency <= 4; concurrency++ {
		require.NoError(t, d.Update(cfg(concurrency)))
		assert.Equal(t, int64(2), d.Stats()[0].Queued, "the old sink's events are counted")
		require.ErrorIs(t, d.Dispatch(ctx, event(fmt.Sprintf("refused-%d", concurrency), "x")), fanbridge.ErrOverloaded)
	}
	close(release)
	// The rebuilt sink's Stats account for the events it took over: delivered by the old one,
	// they are counted once, where Queued counted them.
	require.Eventually(t, func() bool {
		st := d.Stats()[0]
		return st.Delivered == 2 && st.Queued == 0
	}, 10*time.Second, time.Millisecond, "%+v", d.Stats())
	require.NoError(t, d.Close(ctx))
	for _, id := range []string{"e1", "e2"} {
		_, ok := delivered.Load(id)
		assert.True(t, ok, id)
	}
}

// A dispatch that waits for another dispatch of the same event waits holding no configuration:
// otherwise, when the holder's task waits in a sink an Update rebuilt under ordering keys, the
// rebuilt sink waits for the old configuration to hand its tasks out, the waiting dispatch holds
// that up, and the holder is dead-lettered when its budget ends.
func TestDispatchWaitingForAClaimHoldsNoConfiguration(t *testing.T) {
	ctx := testContext(t)
	s := newRecSink()
	q := &memDLQ{}
	gate := make(chan struct{})
	entered := make(chan struct{})
	var once sync.Once
	blocking := filter.PredicateFunc(func(*fanbridge.Event) bool {
		once.Do(func() {
			close(entered)
			<-gate
		})
		return true
	})
	cfg := func(concurrency int, f filter.Predicate) fanout.Config {
		return fanout.Config{
			Sinks:  []fanout.SinkConfig{{Name: "s", Sink: s, Concurrency: concurrency}},
			Routes: []fanout.Route{{Name: "r", Filter: f, Sinks: []string{"s"}}},
			DLQ:    q,
		}
	}
	d := newDispatcher(t, cfg(1, blocking), fanout.WithOrderingKey(func(*fanbridge.Event) string { return "k" }))

	first := make(chan error, 1)
	go func() { first <- d.Dispatch(ctx, event("E", "x")) }()
	recv(t, entered) // the first dispatch holds the old configuration, matching
	require.NoError(t, d.Update(cfg(2, fanout.All)))

	type outcome struct {
		res fanout.Result
		err error
	}
	second := make(chan outcome, 1)
	go func() {
		short, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		res, err := d.Deliver(short, event("E", "x"))
		second <- outcome{res, err}
	}()
	require.Eventually(t, func() bool { return fanout.ClaimWaiting(d, event("E", "x")) }, 5*time.Second, time.Millisecond,
		"the second dispatch of E waits for the first")
	close(gate)

	require.NoError(t, recv(t, first))
	got := recv(t, second)
	require.ErrorIs(t, got.err, fanbridge.ErrDuplicate)
	require.Len(t, got.res.Sinks, 1)
	assert.Equal(t, fanout.SkippedDuplicate, got.res.Sinks[0].Outcome)
	assert.Equal(t, 1, s.Delivered("E"))
	assert.Empty(t, q.Entries())
}
