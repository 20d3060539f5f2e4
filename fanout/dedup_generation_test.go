package fanout_test

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/fanout"
	"github.com/fanbridge/fanbridge/retry"
)

// MemoryDedup keeps two generations of records: a partial record (the sinks that have the event)
// that a rotation moved into the older generation keeps its sink list there.
func TestPartialDedupRecordKeepsItsSinksInTheOlderGeneration(t *testing.T) {
	m, err := fanout.NewMemoryDedup(time.Hour, 4) // generations of two IDs
	require.NoError(t, err)
	ctx := testContext(t)
	require.NoError(t, m.Record(ctx, "k", fanout.DedupRecord{Sinks: []string{"a", "b"}}))
	require.NoError(t, m.Record(ctx, "x1", fanout.DedupRecord{Complete: true}))
	require.NoError(t, m.Record(ctx, "x2", fanout.DedupRecord{Sinks: []string{"c"}})) // rotates: k is in the older generation
	require.Equal(t, 3, m.Len())

	rec, ok, err := m.Seen(ctx, "k")
	require.NoError(t, err)
	require.True(t, ok, "only two other IDs arrived")
	assert.Equal(t, fanout.DedupRecord{Sinks: []string{"a", "b"}}, rec)
	rec, ok, err = m.Seen(ctx, "x1")
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, fanout.DedupRecord{Complete: true}, rec)
	rec, ok, err = m.Seen(ctx, "x2")
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, fanout.DedupRecord{Sinks: []string{"c"}}, rec)
}

// So a sender's retry of a partly failed event, recorded before the rotation, still goes only to
// the sinks that lack it.
func TestRetryAfterRotationGoesOnlyToTheSinksThatLackTheEvent(t *testing.T) {
	m, err := fanout.NewMemoryDedup(time.Hour, 4)
	require.NoError(t, err)
	var down atomic.Bool
	down.Store(true)
	a, b := newRecSink(), newRecSink()
	b.fail = func(e *fanbridge.Event, _ int) error {
		if e.ID == "e1" && down.Load() {
			return errBoom
		}
		return nil
	}
	d := newDispatcher(t, fanout.Config{ // no dead-letter queue: b's failure fails the dispatch
		Sinks:  []fanout.SinkConfig{{Name: "a", Sink: a}, {Name: "b", Sink: b, Retry: retry.Policy{MaxAttempts: 1}}},
		Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"a", "b"}}},
	}, fanout.WithDedup(m))
	ctx := testContext(t)
	require.ErrorIs(t, d.Dispatch(ctx, event("e1", "x")), fanout.ErrUndelivered)
	for i := range 2 {
		require.NoError(t, d.Dispatch(ctx, event(fmt.Sprint("x", i), "x")))
	}
	require.Equal(t, 3, m.Len(), "e1's record is in the older generation")

	down.Store(false)
	res, err := d.Deliver(ctx, event("e1", "x"))
	require.NoError(t, err)
	assert.Equal(t, fanout.SkippedDuplicate, res.Sinks[0].Outcome, "a has e1")
	assert.Equal(t, fanout.Delivered, res.Sinks[1].Outcome)
	assert.Equal(t, 1, a.Delivered("e1"))
	assert.Equal(t, 1, b.Delivered("e1"))
}

// Sinks are known by name in a dedup record: a sink that an Update rebuilt under the same name
// (a new Sink value, such as a new topic) counts as having what the sink it replaced had, as the
// package documentation says. A renamed sink does not.
func TestRetryAfterUpdateKnowsSinksByName(t *testing.T) {
	var down atomic.Bool
	down.Store(true)
	a, b := newRecSink(), newRecSink()
	b.fail = func(*fanbridge.Event, int) error {
		if down.Load() {
			return errBoom
		}
		return nil
	}
	d := newDispatcher(t, fanout.Config{ // no dead-letter queue: b's failure fails the dispatch
		Sinks:  []fanout.SinkConfig{{Name: "a", Sink: a}, {Name: "b", Sink: b, Retry: retry.Policy{MaxAttempts: 1}}},
		Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"a", "b"}}},
	})
	ctx := testContext(t)
	require.ErrorIs(t, d.Dispatch(ctx, event("e1", "x")), fanout.ErrUndelivered)
	down.Store(false)

	rebuilt := newRecSink()
	require.NoError(t, d.Update(fanout.Config{
		Sinks:  []fanout.SinkConfig{{Name: "a", Sink: rebuilt}, {Name: "b", Sink: b, Retry: retry.Policy{MaxAttempts: 1}}},
		Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"a", "b"}}},
	}))
	res, err := d.Deliver(ctx, event("e1", "x"))
	require.NoError(t, err)
	assert.Equal(t, fanout.SkippedDuplicate, res.Sinks[0].Outcome, "a, rebuilt, counts as having e1")
	assert.Zero(t, rebuilt.Delivered("e1"))

	// Under another name the sink lacks the event.
	down.Store(true)
	require.ErrorIs(t, d.Dispatch(ctx, event("e2", "x")), fanout.ErrUndelivered)
	down.Store(false)
	renamed := newRecSink()
	require.NoError(t, d.Update(fanout.Config{
		Sinks:  []fanout.SinkConfig{{Name: "a2", Sink: renamed}, {Name: "b", Sink: b, Retry: retry.Policy{MaxAttempts: 1}}},
		Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"a2", "b"}}},
	}))
	_, err = d.Deliver(ctx, event("e2", "x"))
	require.NoError(t, err)
	assert.Equal(t, 1, renamed.Delivered("e2"))
}
