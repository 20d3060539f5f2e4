package filedlq_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/dlq"
	"github.com/fanbridge/fanbridge/dlq/filedlq"
	"github.com/fanbridge/fanbridge/fanout"
	"github.com/fanbridge/fanbridge/internal/testwait"
	"github.com/fanbridge/fanbridge/retry"
	"github.com/fanbridge/fanbridge/sink"
)

// behindHeldRotation opens a queue in a new directory, fills its first segment and starts a Put
// whose rotation fsync is held until held.release is closed; it returns once that fsync has
// started, with the Put's outcome to come on rotated.
func behindHeldRotation(t *testing.T) (ctx context.Context, dir string, q *filedlq.Queue, held *heldSync, rotated <-chan error) {
	t.Helper()
	ctx = testCtx(t)
	held = newHeldSync(ctx)
	dir = t.TempDir()
	q = open(t, dir, held.option(), filedlq.WithMaxSegmentSize(1024))
	require.NoError(t, q.Put(ctx, entryFor("fills", 900)))
	held.armed.Store(true)
	out := make(chan error, 1)
	go func() { out <- q.Put(ctx, entryFor("rotates", 900)) }()
	select {
	case <-held.started:
	case <-ctx.Done():
		t.Fatal("the rotation's fsync never started")
	}
	return ctx, dir, q, held, out
}

// Entries handed over by Puts that gave up waiting are written by Close when no Put came after
// them, and reach the disk with the rest.
func TestCloseWritesEntriesHandedOver(t *testing.T) {
	ctx, dir, q, held, rotated := behindHeldRotation(t)
	for _, id := range []string{"late-1", "late-2"} {
		waiting, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		require.ErrorIs(t, q.Put(waiting, entryFor(id, 0)), context.DeadlineExceeded)
		cancel()
	}
	close(held.release)
	require.NoError(t, <-rotated)
	require.NoError(t, q.Close())
	assert.Subset(t, listIDs(t, ctx, open(t, dir)), []string{"fills", "rotates", "late-1", "late-2"})
}

// What waits so is bounded: past 16 MiB of entries handed over, a Put that gives up writes
// nothing and says so; every entry it did take is written.
func TestEntriesHandedOverAreBounded(t *testing.T) {
	ctx, dir, q, held, rotated := behindHeldRotation(t)
	const puts = 24 // of about 0.93 MiB each: 17 fit in 16 MiB
	entries := make([]dlq.Entry, puts)
	for i := range entries {
		entries[i] = entryFor(fmt.Sprintf("big-%02d", i), 700<<10)
	}
	var (
		wg                    sync.WaitGroup
		mu                    sync.Mutex
		taken, refused, other []string
	)
	for _, e := range entries {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Long enough for every Put to reach its wait for the lock, even under -race.
			waiting, cancel := context.WithTimeout(ctx, 3*time.Second)
			defer cancel()
			err := q.Put(waiting, e)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil && strings.Contains(err.Error(), "written once the queue is free"):
				taken = append(taken, e.ID)
			case err != nil && strings.Contains(err.Error(), "gave up waiting to write"):
				refused = append(refused, e.ID)
			default:
				other = append(other, fmt.Sprintf("%s: %v", e.ID, err))
			}
		}()
	}
	wg.Wait()
	require.Empty(t, other)
	assert.Len(t, taken, 17)
	assert.Len(t, refused, puts-17)
	close(held.release)
	require.NoError(t, <-rotated)
	require.NoError(t, q.Close())
	ids := listIDs(t, ctx, open(t, dir))
	assert.Subset(t, ids, taken)
	for _, id := range refused {
		assert.NotContains(t, ids, id)
	}
}

// An Async dispatch has acknowledged its event before the sink fails it: a dead-letter write that
// gives up waiting behind a slow rotation must still leave the entry in the queue, since no one
// would retry it.
func TestAsyncDeadLetterBehindASlowRotationIsKept(t *testing.T) {
	ctx, dir, q, held, rotated := behindHeldRotation(t)

	logs := &signalHandler{match: "fanout: dead-letter write failed", seen: make(chan struct{})}
	d, err := fanout.New(fanout.Config{
		Sinks: []fanout.SinkConfig{{Name: "s", Sink: sink.Func(func(context.Context, *fanbridge.Event) error {
			return retry.Permanent(context.Canceled)
		})}},
		Routes: []fanout.Route{{Name: "all", Filter: fanout.All, Sinks: []string{"s"}}},
		DLQ:    q,
	}, fanout.WithMode(fanout.Async), fanout.WithDLQTimeout(100*time.Millisecond), fanout.WithLogger(slog.New(logs)))
	require.NoError(t, err)
	require.NoError(t, d.Dispatch(ctx, &fanbridge.Event{ID: "accepted", Type: "t", Raw: []byte(`{}`)}))
	select {
	case <-logs.seen: // the dead-letter write gave up while the fsync was held
	case <-ctx.Done():
		t.Fatal("the dead-letter write never gave up")
	}
	close(held.release)
	require.NoError(t, <-rotated)
	// Close reports the dead-letter write that failed; the entry is kept all the same.
	err = d.Close(ctx)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "written once the queue is free")
	require.NoError(t, q.Close())
	var events []string
	require.NoError(t, open(t, dir).List(ctx, func(e dlq.Entry) error {
		events = append(events, e.Event.ID)
		return nil
	}))
	assert.Contains(t, events, "accepted")
}

// signalHandler is a slog.Handler that closes seen at the first record whose message is match.
type signalHandler struct {
	match string
	seen  chan struct{}
	once  sync.Once
	mu    sync.Mutex
	buf   bytes.Buffer
}

func (h *signalHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *signalHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *signalHandler) WithGroup(string) slog.Handler            { return h }
func (h *signalHandler) text() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.buf.String()
}

func (h *signalHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	h.buf.WriteString(r.Message + "\n")
	h.mu.Unlock()
	if r.Message == h.match {
		h.once.Do(func() { close(h.seen) })
	}
	return nil
}

// A Put that hands its entry over is told the queue writes it unless it breaks first: when the
// rotation's fsync it waited behind fails, the queue breaks, and the entry is logged as lost at
// Close rather than written to a queue that refuses entries.
func TestEntriesHandedOverToAQueueThatBreaks(t *testing.T) {
	ctx := testCtx(t)
	dir := t.TempDir()
	var armed atomic.Bool
	started, release := make(chan struct{}), make(chan struct{})
	logs := &signalHandler{match: "filedlq: entries whose Puts gave up waiting to write are lost", seen: make(chan struct{})}
	q := open(t, dir, filedlq.WithMaxSegmentSize(1024), filedlq.WithLogger(slog.New(logs)),
		filedlq.WithSyncFunc(func(f *os.File) error {
			if armed.CompareAndSwap(true, false) {
				close(started)
				<-release
				return errors.New("input/output error")
			}
			return f.Sync()
		}))
	require.NoError(t, q.Put(ctx, entryFor("fills", 900)))
	armed.Store(true)
	rotated := make(chan error, 1)
	go func() { rotated <- q.Put(ctx, entryFor("rotates", 900)) }()
	select {
	case <-started:
	case <-ctx.Done():
		t.Fatal("the rotation's fsync never started")
	}
	waiting, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	err := q.Put(waiting, entryFor("late", 0))
	cancel()
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Contains(t, err.Error(), "written once the queue is free, unless it breaks first")
	close(release)
	require.Error(t, <-rotated) // the failed fsync
	require.ErrorIs(t, q.Err(), filedlq.ErrBroken)
	q.Close()
	select {
	case <-logs.seen:
	default:
		t.Error("Close did not log the entry handed over as lost")
	}
	// A queue that is broken takes no entry over.
	assert.NotContains(t, listIDs(t, ctx, open(t, dir)), "late")
}

// The bound counts the entries handed over until they are written: while a writer holds the
// lines it took (a rotation's fsync between two of them), no more than the bound is taken.
func TestEntriesHandedOverStayCountedWhileWritten(t *testing.T) {
	ctx := testCtx(t)
	dir := t.TempDir()
	var holds atomic.Int32 // fsyncs still to hold
	started, release := make(chan struct{}, 1), make(chan struct{}, 1)
	q := open(t, dir, filedlq.WithSync(filedlq.SyncInterval(time.Hour)), filedlq.WithMaxSegmentSize(1024),
		filedlq.WithSyncFunc(func(f *os.File) error {
			if holds.Add(-1) >= 0 {
				started <- struct{}{}
				select {
				case <-release:
				case <-ctx.Done():
				}
			}
			return f.Sync()
		}))
	require.NoError(t, q.Put(ctx, entryFor("fills", 900)))
	holds.Store(1)
	rotated := make(chan error, 1)
	go func() { rotated <- q.Put(ctx, entryFor("rotates", 900)) }()
	<-started
	handOver := func(prefix string) (taken int) {
		var wg sync.WaitGroup
		var mu sync.Mutex
		for i := range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				w, cancel := context.WithTimeout(ctx, 2*time.Second)
				defer cancel()
				err := q.Put(w, entryFor(fmt.Sprintf("%s-%02d", prefix, i), 700<<10))
				if err != nil && strings.Contains(err.Error(), "written once the queue is free") {
					mu.Lock()
					taken++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		return taken
	}
	first := handOver("a")
	require.Equal(t, 17, first)
	// The writer of the handed-over lines rotates before its first line: hold that fsync, so
	// that it holds every line it took.
	holds.Store(1)
	release <- struct{}{}
	require.NoError(t, <-rotated)
	<-started
	second := handOver("b")
	holds.Store(0)
	release <- struct{}{}
	assert.Zero(t, second, "more than 16 MiB of entries handed over held at once")
}

// Under SyncAlways, the lines a waiting goroutine writes for Puts that gave up are fsynced
// without waiting for another Put or Close.
func TestEntriesHandedOverAreFsynced(t *testing.T) {
	ctx, _, q, held, rotated := behindHeldRotation(t)
	waiting, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	require.ErrorIs(t, q.Put(waiting, entryFor("late", 0)), context.DeadlineExceeded)
	cancel()
	close(held.release)
	require.NoError(t, <-rotated)
	// Polled: nothing else happens in the queue that a test could wait on.
	require.Eventually(t, func() bool { return q.Stats().Puts == 3 && q.DurableLines() == 3 }, 10*time.Second, 5*time.Millisecond,
		"the handed-over line was not fsynced: %d written, %d durable", q.Stats().Puts, q.DurableLines())
}

// A write of an entry handed over that fails without breaking the queue (the new segment's
// directory fsync fails, twice) does not drop it: the entry stays first in line and the queue
// tries again by itself, with no Put to carry it, until it is written. Err says the queue takes
// entries all along.
func TestEntriesHandedOverSurviveAFailedWrite(t *testing.T) {
	ctx := testCtx(t)
	held := newHeldSync(ctx)
	dir := t.TempDir()
	var dirSyncs, failures atomic.Int32
	recovered := make(chan struct{})
	logs := &signalHandler{match: "filedlq: entries whose Puts gave up waiting could not be written yet; trying again", seen: make(chan struct{})}
	q := open(t, dir, held.option(), filedlq.WithMaxSegmentSize(1024), filedlq.WithLogger(slog.New(logs)),
		filedlq.WithDirSyncFunc(func(d string) error {
			// After arming: the rotating Put's new segment passes; the late line's fails twice.
			switch n := dirSyncs.Add(1); {
			case n == 2 || n == 3:
				failures.Add(1)
				return errors.New("input/output error")
			case n == 4:
				defer close(recovered)
			}
			return syncDirectory(d)
		}))
	require.NoError(t, q.Put(ctx, entryFor("fills", 900)))
	dirSyncs.Store(0)
	held.armed.Store(true)
	rotated := make(chan error, 1)
	go func() { rotated <- q.Put(ctx, entryFor("rotates", 900)) }()
	testwait.RecvCtx(t, ctx, held.started)
	waiting, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	err := q.Put(waiting, entryFor("late", 900))
	cancel()
	require.ErrorIs(t, err, context.DeadlineExceeded)
	close(held.release)
	require.NoError(t, <-rotated)
	testwait.RecvCtx(t, ctx, logs.seen)
	require.NoError(t, q.Err(), "a failed write does not break the queue")
	testwait.RecvCtx(t, ctx, recovered)
	assert.EqualValues(t, 2, failures.Load())
	// The goroutine that wrote the late line held the queue from before that fsync to after the
	// write: this Put comes after it.
	require.NoError(t, q.Put(ctx, entryFor("after", 10)))
	assert.Equal(t, []string{"fills", "rotates", "late", "after"}, listIDs(t, ctx, q))
	require.NoError(t, q.Close())
	assert.NotContains(t, logs.text(), "are lost")
}

// While an entry handed over cannot be written (it needs a new segment, and none can be made),
// a Put whose own entry fits the active segment still writes it: the entry waiting does not
// hold back the queue. One that needs a new segment too fails with its own error. The entry
// handed over stays first in line, and Close writes it once it can.
func TestPutBesideAnEntryThatCannotBeWrittenYet(t *testing.T) {
	ctx := testCtx(t)
	held := newHeldSync(ctx)
	dir := t.TempDir()
	var failing atomic.Bool
	q := open(t, dir, held.option(), filedlq.WithMaxSegmentSize(2048),
		filedlq.WithDirSyncFunc(func(d string) error {
			if failing.Load() {
				return errors.New("no space left on device")
			}
			return syncDirectory(d)
		}))
	require.NoError(t, q.Put(ctx, entryFor("fills", 900)))
	held.armed.Store(true)
	rotated := make(chan error, 1)
	go func() { rotated <- q.Put(ctx, entryFor("rotates", 1800)) }()
	testwait.RecvCtx(t, ctx, held.started)
	waiting, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	require.ErrorIs(t, q.Put(waiting, entryFor("late", 1800)), context.DeadlineExceeded)
	cancel()
	// From now on no new segment can be made: neither the rotating Put's nor the late line's.
	failing.Store(true)
	close(held.release)
	require.Error(t, <-rotated, "told, so its caller retries")
	require.NoError(t, q.Put(ctx, entryFor("small", 0)), "an entry that fits is written")
	err := q.Put(ctx, entryFor("large", 1800))
	require.Error(t, err, "an entry that needs a new segment is not")
	assert.Contains(t, err.Error(), "new segment")
	require.NoError(t, q.Err())
	failing.Store(false)
	require.NoError(t, q.Close())
	assert.Equal(t, []string{"fills", "small", "late"}, listIDs(t, ctx, open(t, dir)))
}
