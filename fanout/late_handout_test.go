package fanout_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

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
				assert.Contains(t, cerr.Error(), "1 dispatches begun before Close still handing their event out")
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

// trapClock is the system clock, but the first reading taken once it is armed waits until
// released.
type trapClock struct {
	armed atomic.Bool
	*gate
}

func (c *trapClock) Now() time.Time {
	if c.armed.CompareAndSwap(true, false) {
		c.pass()
	}
	return time.Now()
}

func (c *trapClock) NewTimer(d time.Duration) retry.Timer { return retry.SystemClock.NewTimer(d) }

// A dispatch that is handing its event out when Close's deadline passes (here held on the
// clock's reading of its arrival, the one wait it has once it has passed the check) is waited
// for: the drain does not end while it hands out, and then gives its task the whole DLQ timeout,
// so the event is dead-lettered, although the queue had nothing to write for much longer than
// that timeout and a Send that ignores cancellation holds the sink's only worker.
func TestDrainWaitsForADispatchHandingOut(t *testing.T) {
	const dlqTimeout = 100 * time.Millisecond
	release := make(chan struct{})
	defer close(release)
	entered := make(chan string, 1)
	stuck := sinkFunc(func(_ context.Context, e *fanbridge.Event) error {
		entered <- e.ID
		<-release // ignores its context: a broken sink
		return nil
	})
	q := &memDLQ{}
	clk := &trapClock{gate: newGate()}
	d, err := fanout.New(fanout.Config{
		Sinks:  []fanout.SinkConfig{{Name: "s", Sink: stuck, Concurrency: 1, QueueSize: 10}},
		Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"s"}}},
		DLQ:    q,
	}, fanout.WithMode(fanout.Async), fanout.WithDLQTimeout(dlqTimeout), fanout.WithClock(clk),
		fanout.WithDedup(nil)) // the clock's next reading is the dispatch's own
	require.NoError(t, err)
	ctx := testContext(t)
	require.NoError(t, d.Dispatch(ctx, event("first", "x")))
	require.Equal(t, "first", recv(t, entered))

	clk.armed.Store(true)
	lateErr := make(chan error, 1)
	go func() { lateErr <- d.Dispatch(ctx, event("late", "x")) }()
	recv(t, clk.entered)

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
	close(clk.release)
	require.NoError(t, recv(t, lateErr), "handed out before the deadline's check: accepted")
	err = recv(t, closed)
	require.Error(t, err)
	assert.True(t, q.Has("late", "s"), "accepted, yet neither delivered nor dead-lettered; Close: %v", err)
	assert.Contains(t, err.Error(), "1 deliveries still in flight")
	assert.Contains(t, err.Error(), "1 in a sink's Send that ignored cancellation")
	assert.NotContains(t, err.Error(), "neither delivered nor dead-lettered")
	assert.NotContains(t, err.Error(), "handing their event out")
	for _, en := range q.Entries() {
		if en.Event.ID == "late" {
			assert.Equal(t, dlq.ConditionAge, en.Condition)
			assert.Zero(t, en.Attempts, "shed at the deadline, without an attempt")
		}
	}
}
