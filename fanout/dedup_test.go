package fanout_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/fanout"
	"github.com/fanbridge/fanbridge/retry"
	"github.com/fanbridge/fanbridge/retry/retrytest"
)

func TestDuplicateIsAcknowledgedNotRedelivered(t *testing.T) {
	for _, mode := range []fanout.Mode{fanout.Sync, fanout.Async} {
		t.Run(mode.String(), func(t *testing.T) {
			a, b := newRecSink(), newRecSink()
			a.sent, b.sent = make(chan string, 4), make(chan string, 4)
			d := newDispatcher(t, fanout.Config{
				Sinks:  []fanout.SinkConfig{{Name: "a", Sink: a}, {Name: "b", Sink: b}},
				Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"a", "b"}}},
			}, fanout.WithMode(mode))
			ctx := testContext(t)
			require.NoError(t, d.Dispatch(ctx, event("e1", "x")))
			recv(t, a.sent)
			recv(t, b.sent)
			err := d.Dispatch(ctx, event("e1", "x"))
			assert.ErrorIs(t, err, fanbridge.ErrDuplicate)
			require.NoError(t, d.Dispatch(ctx, event("e2", "x")))
			recv(t, a.sent)
			recv(t, b.sent)
			assert.Equal(t, 1, a.Delivered("e1"))
			assert.Equal(t, 1, b.Delivered("e1"))
		})
	}
}

func TestDedupKeyIsSourceAndID(t *testing.T) {
	s := newRecSink()
	d := newDispatcher(t, fanout.Config{
		Sinks:  []fanout.SinkConfig{{Name: "s", Sink: s}},
		Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"s"}}},
	})
	ctx := testContext(t)
	from := func(source string) *fanbridge.Event {
		e := event("1", "x")
		e.Source = source
		return e
	}
	// Two producers that both number their events from 1 send two events, not one twice.
	require.NoError(t, d.Dispatch(ctx, from("/crm")))
	require.NoError(t, d.Dispatch(ctx, from("/billing")))
	require.NoError(t, d.Dispatch(ctx, from("")))
	assert.Equal(t, 3, s.Delivered("1"))
	// A retry repeats both.
	assert.ErrorIs(t, d.Dispatch(ctx, from("/crm")), fanbridge.ErrDuplicate)
	assert.ErrorIs(t, d.Dispatch(ctx, from("")), fanbridge.ErrDuplicate)
	assert.Equal(t, 3, s.Delivered("1"))

	// The key cannot be forged by moving characters between Source and ID.
	a, b := &fanbridge.Event{Source: "a:", ID: "b"}, &fanbridge.Event{Source: "a", ID: ":b"}
	assert.NotEqual(t, fanout.DedupKey(a), fanout.DedupKey(b))
	assert.Equal(t, "0:b", fanout.DedupKey(&fanbridge.Event{ID: "b"}))
	assert.Equal(t, "2:a:b", fanout.DedupKey(a))
	// Nor by an ID that spells another event's key.
	assert.NotEqual(t, fanout.DedupKey(&fanbridge.Event{ID: "4:acmeX"}), fanout.DedupKey(&fanbridge.Event{Source: "acme", ID: "X"}))
}

func TestDeadLetteredCountsAsHandled(t *testing.T) {
	s := newRecSink()
	s.fail = func(*fanbridge.Event, int) error { return retry.Permanent(errBoom) }
	d := newDispatcher(t, fanout.Config{
		Sinks:  []fanout.SinkConfig{{Name: "s", Sink: s}},
		Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"s"}}},
		DLQ:    &memDLQ{},
	})
	require.NoError(t, d.Dispatch(testContext(t), event("e1", "x")))
	assert.ErrorIs(t, d.Dispatch(testContext(t), event("e1", "x")), fanbridge.ErrDuplicate)
	assert.Equal(t, 1, s.Attempts("e1"))
}

func TestDedupWindowAndSize(t *testing.T) {
	clk := retrytest.NewClock(epoch)
	store, err := fanout.NewMemoryDedup(time.Minute, 2, fanout.WithDedupClock(clk))
	require.NoError(t, err)
	s := newRecSink()
	d := newDispatcher(t, fanout.Config{
		Sinks:  []fanout.SinkConfig{{Name: "s", Sink: s}},
		Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"s"}}},
	}, fanout.WithDedup(store), fanout.WithClock(clk))
	ctx := testContext(t)
	dispatch := func(id string) error { return d.Dispatch(ctx, event(id, "x")) }

	require.NoError(t, dispatch("e1"))
	clk.Advance(59 * time.Second)
	assert.ErrorIs(t, dispatch("e1"), fanbridge.ErrDuplicate, "inside the window")
	clk.Advance(time.Second)
	require.NoError(t, dispatch("e1"), "the window has passed")
	assert.Equal(t, 2, s.Delivered("e1"))

	// Size: a third ID pushes out the oldest.
	require.NoError(t, dispatch("e2"))
	require.NoError(t, dispatch("e3"))
	assert.LessOrEqual(t, store.Len(), 2)
	require.NoError(t, dispatch("e1"), "e1 was the oldest and has been dropped")
	assert.ErrorIs(t, dispatch("e3"), fanbridge.ErrDuplicate)
}

func TestMemoryDedupBounded(t *testing.T) {
	clk := retrytest.NewClock(epoch)
	m, err := fanout.NewMemoryDedup(time.Hour, 100, fanout.WithDedupClock(clk))
	require.NoError(t, err)
	ctx := context.Background()
	for i := range 10_000 {
		require.NoError(t, m.Record(ctx, fmt.Sprint(i), fanout.DedupRecord{Complete: true}))
	}
	assert.LessOrEqual(t, m.Len(), 100)
	assert.GreaterOrEqual(t, m.Len(), 50)
	for i := 9950; i < 10_000; i++ {
		_, ok, _ := m.Seen(ctx, fmt.Sprint(i))
		assert.True(t, ok, "the newest half of the capacity is always kept")
	}
	_, ok, _ := m.Seen(ctx, "0")
	assert.False(t, ok)

	// Time: a record lives for the window, and not beyond two.
	require.NoError(t, m.Record(ctx, "t", fanout.DedupRecord{Complete: true}))
	clk.Advance(59 * time.Minute)
	_, ok, _ = m.Seen(ctx, "t")
	assert.True(t, ok)
	clk.Advance(time.Minute)
	_, ok, _ = m.Seen(ctx, "t")
	assert.False(t, ok)

	// A partial record is replaced, and its sinks copied.
	sinks := []string{"a"}
	require.NoError(t, m.Record(ctx, "p", fanout.DedupRecord{Sinks: sinks}))
	sinks[0] = "changed"
	rec, ok, _ := m.Seen(ctx, "p")
	require.True(t, ok)
	assert.Equal(t, []string{"a"}, rec.Sinks)

	_, err = fanout.NewMemoryDedup(0, 1)
	assert.ErrorIs(t, err, fanout.ErrInvalidConfig)
	_, err = fanout.NewMemoryDedup(time.Second, 0)
	assert.ErrorIs(t, err, fanout.ErrInvalidConfig)
}

func TestRetryOfFailedDispatchIsNotADuplicate(t *testing.T) {
	a, b := newRecSink(), newRecSink()
	var broken sync.Map
	broken.Store("b", true)
	b.fail = func(*fanbridge.Event, int) error {
		if _, ok := broken.Load("b"); ok {
			return retry.Permanent(errBoom)
		}
		return nil
	}
	d := newDispatcher(t, fanout.Config{ // no DLQ: b's failure fails the dispatch
		Sinks:  []fanout.SinkConfig{{Name: "a", Sink: a}, {Name: "b", Sink: b}},
		Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"a", "b"}}},
	})
	ctx := testContext(t)
	require.Error(t, d.Dispatch(ctx, event("e1", "x")))
	require.Error(t, d.Dispatch(ctx, event("e1", "x")), "still failing: not a duplicate")
	broken.Delete("b")
	res, err := d.Deliver(ctx, event("e1", "x"))
	require.NoError(t, err)
	assert.Equal(t, fanout.SkippedDuplicate, res.Sinks[0].Outcome)
	assert.Equal(t, fanout.Delivered, res.Sinks[1].Outcome)
	assert.Equal(t, 1, a.Attempts("e1"), "a already had it: never sent twice")
	assert.Equal(t, 3, b.Attempts("e1"))
	assert.Equal(t, 1, b.Delivered("e1"))
	assert.ErrorIs(t, d.Dispatch(ctx, event("e1", "x")), fanbridge.ErrDuplicate)
}

func TestConcurrentDuplicates(t *testing.T) {
	setup := func(t *testing.T, failFirst bool) (*fanout.Dispatcher, *switchSink, *recSink) {
		slow := &switchSink{gate: make(chan struct{}), entered: make(chan struct{}, 4)}
		slow.down.Store(failFirst)
		other := newRecSink()
		d := newDispatcher(t, fanout.Config{
			Sinks: []fanout.SinkConfig{{Name: "slow", Sink: slow, Retry: retry.Policy{MaxAttempts: 1}},
				{Name: "other", Sink: other}},
			Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"slow", "other"}}},
		})
		return d, slow, other
	}

	t.Run("second waits for the first and is a duplicate", func(t *testing.T) {
		d, slow, other := setup(t, false)
		ctx := testContext(t)
		first := make(chan error, 1)
		go func() { first <- d.Dispatch(ctx, event("e1", "x")) }()
		recv(t, slow.entered)
		second := make(chan error, 1)
		go func() { second <- d.Dispatch(ctx, event("e1", "x")) }()
		require.Eventually(t, func() bool { return fanout.ClaimWaiting(d, event("e1", "x")) }, 5*time.Second, time.Millisecond)
		close(slow.gate)
		require.NoError(t, recv(t, first))
		assert.ErrorIs(t, recv(t, second), fanbridge.ErrDuplicate)
		assert.EqualValues(t, 1, slow.calls.Load())
		assert.Equal(t, 1, other.Attempts("e1"))
	})

	t.Run("second takes over the sinks the first failed", func(t *testing.T) {
		d, slow, other := setup(t, true)
		ctx := testContext(t)
		first := make(chan error, 1)
		go func() { first <- d.Dispatch(ctx, event("e1", "x")) }()
		recv(t, slow.entered)
		second := make(chan error, 1)
		go func() { second <- d.Dispatch(ctx, event("e1", "x")) }()
		require.Eventually(t, func() bool { return fanout.ClaimWaiting(d, event("e1", "x")) }, 5*time.Second, time.Millisecond)
		slow.gate <- struct{}{} // the first's attempt answers: down, no DLQ
		require.Error(t, recv(t, first))
		recv(t, slow.entered)
		slow.down.Store(false)
		close(slow.gate)
		require.NoError(t, recv(t, second))
		assert.EqualValues(t, 2, slow.calls.Load())
		assert.Equal(t, 1, other.Attempts("e1"), "other had it from the first dispatch")
	})

	t.Run("second gives up with a retryable error when its context ends", func(t *testing.T) {
		d, slow, _ := setup(t, false)
		defer close(slow.gate)
		first := make(chan error, 1)
		go func() { first <- d.Dispatch(testContext(t), event("e1", "x")) }()
		recv(t, slow.entered)
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		err := d.Dispatch(ctx, event("e1", "x"))
		require.ErrorIs(t, err, fanout.ErrInFlight)
		wait, ok := retry.RetryAfter(err)
		assert.True(t, ok)
		assert.Equal(t, fanout.DefaultOverloadAfter, wait)
		assert.False(t, errors.Is(err, fanbridge.ErrDuplicate))
	})
}

func TestDedupOffAndEmptyID(t *testing.T) {
	s := newRecSink()
	cfg := fanout.Config{
		Sinks:  []fanout.SinkConfig{{Name: "s", Sink: s}},
		Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"s"}}},
	}
	d := newDispatcher(t, cfg)
	ctx := testContext(t)
	require.NoError(t, d.Dispatch(ctx, event("", "x")))
	require.NoError(t, d.Dispatch(ctx, event("", "x")), "no ID, no deduplication")
	assert.Equal(t, 2, s.Delivered(""))

	off := newDispatcher(t, cfg, fanout.WithDedup(nil))
	require.NoError(t, off.Dispatch(ctx, event("e1", "x")))
	require.NoError(t, off.Dispatch(ctx, event("e1", "x")))
	assert.Equal(t, 2, s.Delivered("e1"))
}

// brokenStore fails every call.
type brokenStore struct{}

func (brokenStore) Seen(context.Context, string) (fanout.DedupRecord, bool, error) {
	return fanout.DedupRecord{}, false, errors.New("redis: connection refused")
}

func (brokenStore) Record(context.Context, string, fanout.DedupRecord) error {
	return errors.New("redis: connection refused")
}

func TestBrokenDedupStoreStillDelivers(t *testing.T) {
	s := newRecSink()
	d := newDispatcher(t, fanout.Config{
		Sinks:  []fanout.SinkConfig{{Name: "s", Sink: s}},
		Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"s"}}},
	}, fanout.WithDedup(brokenStore{}))
	require.NoError(t, d.Dispatch(testContext(t), event("e1", "x")))
	require.NoError(t, d.Dispatch(testContext(t), event("e1", "x")), "at least once, never at most once")
	assert.Equal(t, 2, s.Delivered("e1"))
}

// keyStore records the keys a Dispatcher asks about, in front of a MemoryDedup.
type keyStore struct {
	mu   sync.Mutex
	keys []string
	next fanout.DedupStore
}

func (k *keyStore) Seen(ctx context.Context, id string) (fanout.DedupRecord, bool, error) {
	k.mu.Lock()
	k.keys = append(k.keys, id)
	k.mu.Unlock()
	return k.next.Seen(ctx, id)
}

func (k *keyStore) Record(ctx context.Context, id string, rec fanout.DedupRecord) error {
	return k.next.Record(ctx, id, rec)
}

func TestDedupScopeKeepsIntakesApart(t *testing.T) {
	for _, mode := range []fanout.Mode{fanout.Sync, fanout.Async} {
		t.Run(mode.String(), func(t *testing.T) {
			s := newRecSink()
			s.sent = make(chan string, 8)
			mem, err := fanout.NewMemoryDedup(time.Hour, 100)
			require.NoError(t, err)
			store := &keyStore{next: mem}
			d := newDispatcher(t, fanout.Config{
				Sinks:  []fanout.SinkConfig{{Name: "s", Sink: s}},
				Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"s"}}},
			}, fanout.WithMode(mode), fanout.WithDedup(store))
			ctx := testContext(t)
			crm := func() *fanbridge.Event {
				e := event("1001", "x")
				e.Source = "crm"
				return e
			}
			partner, own := fanout.WithDedupScope(ctx, "/partner"), fanout.WithDedupScope(ctx, "/crm")

			// One intake's sender claims another's Source and ID first: the other's event still goes out.
			require.NoError(t, d.Dispatch(partner, crm()))
			recv(t, s.sent)
			require.NoError(t, d.Dispatch(own, crm()))
			recv(t, s.sent)
			// Within a scope, a retry is still a duplicate.
			assert.ErrorIs(t, d.Dispatch(own, crm()), fanbridge.ErrDuplicate)
			assert.ErrorIs(t, d.Dispatch(partner, crm()), fanbridge.ErrDuplicate)
			// No scope is a scope of its own, and the empty scope is no scope.
			require.NoError(t, d.Dispatch(ctx, crm()))
			recv(t, s.sent)
			assert.ErrorIs(t, d.Dispatch(fanout.WithDedupScope(ctx, ""), crm()), fanbridge.ErrDuplicate)
			// The innermost scope counts.
			assert.ErrorIs(t, d.Dispatch(fanout.WithDedupScope(partner, "/crm"), crm()), fanbridge.ErrDuplicate)
			assert.Equal(t, 3, s.Delivered("1001"))

			store.mu.Lock()
			keys := store.keys
			store.mu.Unlock()
			require.Len(t, keys, 7)
			assert.Equal(t, "8//partner3:crm1001", keys[0])
			assert.Equal(t, "4//crm3:crm1001", keys[1])
			assert.Equal(t, fanout.DedupKey(crm()), keys[4], "without a scope the key is unchanged")
		})
	}
}

func TestDedupScopeCannotBeForged(t *testing.T) {
	s := newRecSink()
	d := newDispatcher(t, fanout.Config{
		Sinks:  []fanout.SinkConfig{{Name: "s", Sink: s}},
		Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"s"}}},
	})
	ctx := testContext(t)
	ev := func(source, id string) *fanbridge.Event {
		e := event(id, "x")
		e.Source = source
		return e
	}
	// Characters moved between the scope, the Source and the ID make another event, and so does an
	// unscoped event whose Source spells a scoped key.
	require.NoError(t, d.Dispatch(fanout.WithDedupScope(ctx, "ab"), ev("c", "1")))
	require.NoError(t, d.Dispatch(fanout.WithDedupScope(ctx, "a"), ev("bc", "1")))
	require.NoError(t, d.Dispatch(fanout.WithDedupScope(ctx, "a"), ev("b", "c1")))
	require.NoError(t, d.Dispatch(ctx, ev("2/ab1:c", "1")))
	require.NoError(t, d.Dispatch(fanout.WithDedupScope(ctx, "1:"), ev("", "1")))
	require.NoError(t, d.Dispatch(ctx, ev("", "1/1:0:1")))
	assert.Equal(t, 4, s.Delivered("1"))
	assert.Equal(t, 1, s.Delivered("c1"))
	assert.Equal(t, 1, s.Delivered("1/1:0:1"))
}
