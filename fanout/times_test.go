package fanout_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge/fanout"
	"github.com/fanbridge/fanbridge/retry"
)

// steppedClock is the system clock after its wall time was stepped (NTP, an operator, a VM
// resumed): Now's wall reading is moved by the step, its monotonic reading is not, which is what
// time.Now returns after such a step.
type steppedClock struct{ step atomic.Int64 } // seconds

func (c *steppedClock) Now() time.Time { return shiftWall(time.Now(), c.step.Load()) }
func (c *steppedClock) NewTimer(d time.Duration) retry.Timer {
	return retry.SystemClock.NewTimer(d)
}

// shiftWall moves t's wall reading by secs seconds and keeps its monotonic one. It relies on
// time.Time's layout (a wall word whose top bit says a monotonic reading follows, seconds from
// bit 30 up); wallStepWorks checks that it does what it says.
func shiftWall(t time.Time, secs int64) time.Time {
	wall := (*uint64)(unsafe.Pointer(&t))
	if *wall&(1<<63) == 0 {
		return t
	}
	*wall = uint64(int64(*wall) + secs<<30)
	return t
}

func wallStepWorks(t *testing.T) {
	t.Helper()
	a := time.Now()
	b := shiftWall(a, 3600)
	if b.Sub(a) != 0 || b.UnixNano()-a.UnixNano() != int64(time.Hour) {
		t.Skip("this Go's time.Time layout is not the one shiftWall knows")
	}
}

// A wall-clock step forward does not make MemoryDedup forget the ids it just recorded: ages are
// measured on the monotonic clock, so a sender's retry seconds later is still a duplicate.
func TestMemoryDedupSurvivesAWallClockStep(t *testing.T) {
	wallStepWorks(t)
	ctx := testContext(t)
	clock := &steppedClock{}
	m, err := fanout.NewMemoryDedup(time.Hour, 1000, fanout.WithDedupClock(clock))
	require.NoError(t, err)
	require.NoError(t, m.Record(ctx, "evt-1", fanout.DedupRecord{Complete: true}))
	clock.step.Store(int64(61 * time.Minute / time.Second))
	_, seen, err := m.Seen(context.Background(), "evt-1")
	require.NoError(t, err)
	require.True(t, seen, "an id recorded a moment ago was forgotten after the wall clock stepped an hour")
}

// An event whose Time no dead-letter entry can hold (past the year 9999, before the year 1) is
// refused before anything is accepted: in Async mode it would otherwise be acknowledged, then
// neither delivered (its sink refuses it too) nor dead-lettered.
func TestEventTimeOutsideTheYearsIsRefused(t *testing.T) {
	ctx := testContext(t)
	s := newRecSink()
	d := newDispatcher(t, fanout.Config{
		Sinks:  []fanout.SinkConfig{{Name: "s", Sink: s}},
		Routes: []fanout.Route{{Name: "all", Filter: fanout.All, Sinks: []string{"s"}}},
	}, fanout.WithMode(fanout.Async))
	for _, when := range []time.Time{time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(0, 12, 31, 0, 0, 0, 0, time.UTC)} {
		e := event("far", "x")
		e.Time = when
		err := d.Dispatch(ctx, e)
		require.Error(t, err, "%v", when)
		require.True(t, retry.IsPermanent(err))
		require.Contains(t, err.Error(), "outside the years")
	}
	e := event("near", "x")
	e.Time = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)
	require.NoError(t, d.Dispatch(ctx, e))
}
