package filedlq_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge/dlq"
	"github.com/fanbridge/fanbridge/dlq/filedlq"
	"github.com/fanbridge/fanbridge/internal/testwait"
	"github.com/fanbridge/fanbridge/retry"
	"github.com/fanbridge/fanbridge/retry/retrytest"
)

// countSyncs returns an fsync replacement that counts its calls and then really fsyncs.
func countSyncs(n *atomic.Int32) filedlq.Option {
	return filedlq.WithSyncFunc(func(f *os.File) error {
		n.Add(1)
		return f.Sync()
	})
}

func TestSyncAlwaysSyncsEachSequentialPut(t *testing.T) {
	ctx := testCtx(t)
	var n atomic.Int32
	q := open(t, t.TempDir(), countSyncs(&n))
	for i := range 5 {
		require.NoError(t, q.Put(ctx, entryFor(fmt.Sprint(i), 0)))
		// Put returned, so its fsync has happened.
		assert.Equal(t, int32(i+1), n.Load())
	}
	assert.Equal(t, uint64(5), q.Stats().Syncs)
	require.NoError(t, q.Close())
	assert.Equal(t, int32(5), n.Load(), "Close fsynced with nothing pending")
}

// TestGroupCommit holds the first fsync until nine more Puts have written their lines: one more
// fsync must then acknowledge all nine.
func TestGroupCommit(t *testing.T) {
	ctx := testCtx(t)
	g := newGate(ctx)
	q := open(t, t.TempDir(), g.option())
	errs := make(chan error, 10)
	go func() { errs <- q.Put(ctx, entryFor("first", 0)) }()
	wait(t, ctx, g.started)
	for i := range 9 {
		go func() { errs <- q.Put(ctx, entryFor(fmt.Sprint("next-", i), 0)) }()
	}
	// Written lines are counted before their Put waits for the fsync.
	require.Eventually(t, func() bool { return q.Stats().Puts == 10 }, 10*time.Second, time.Millisecond)
	g.open()
	for range 10 {
		require.NoError(t, recv(t, ctx, errs))
	}
	assert.Equal(t, int32(2), g.calls.Load())
}

func TestSyncInterval(t *testing.T) {
	ctx := testCtx(t)
	clk := retrytest.NewClock(time.Unix(0, 0))
	var n atomic.Int32
	dir := t.TempDir()
	q := open(t, dir, filedlq.WithSync(filedlq.SyncInterval(time.Second)), filedlq.WithClock(clk), countSyncs(&n))
	require.NoError(t, clk.WaitTimers(ctx, 1))
	for i := range 3 {
		require.NoError(t, q.Put(ctx, entryFor(fmt.Sprint(i), 0)))
	}
	assert.Equal(t, int32(0), n.Load(), "Put waited for an fsync")

	clk.Advance(time.Second)
	// The syncer sets its next timer only after its fsync.
	require.NoError(t, clk.WaitTimers(ctx, 1))
	assert.Equal(t, int32(1), n.Load())

	clk.Advance(time.Second)
	require.NoError(t, clk.WaitTimers(ctx, 1))
	assert.Equal(t, int32(1), n.Load(), "an idle tick fsynced")

	require.NoError(t, q.Put(ctx, entryFor("last", 0)))
	require.NoError(t, q.Close())
	assert.Equal(t, int32(2), n.Load(), "Close did not fsync the last entry")
	assert.Equal(t, []string{"0", "1", "2", "last"}, listIDs(t, ctx, open(t, dir)))
}

func TestSyncNever(t *testing.T) {
	ctx := testCtx(t)
	var n atomic.Int32
	dir := t.TempDir()
	q := open(t, dir, filedlq.WithSync(filedlq.SyncNever()), filedlq.WithMaxSegmentSize(1024), countSyncs(&n))
	for i := range 5 {
		require.NoError(t, q.Put(ctx, entryFor(fmt.Sprint(i), 0)))
	}
	assert.Positive(t, q.Stats().Rotations)
	require.NoError(t, q.Close())
	assert.Equal(t, int32(0), n.Load())
	assert.Equal(t, uint64(0), q.Stats().Syncs)
	// What the system had not flushed is still in the page cache for the next reader.
	assert.Equal(t, []string{"0", "1", "2", "3", "4"}, listIDs(t, ctx, open(t, dir)))
}

func TestFsyncFailureBreaksTheQueue(t *testing.T) {
	ctx := testCtx(t)
	dir := t.TempDir()
	var fail atomic.Bool
	q, err := filedlq.Open(dir, filedlq.WithSyncFunc(func(f *os.File) error {
		if fail.Load() {
			return syscall.EIO
		}
		return f.Sync()
	}))
	require.NoError(t, err)
	require.NoError(t, q.Put(ctx, entryFor("ok", 0)))
	fail.Store(true)
	err = q.Put(ctx, entryFor("unsure", 0))
	require.ErrorIs(t, err, filedlq.ErrBroken)
	require.ErrorIs(t, err, syscall.EIO)
	assert.False(t, retry.IsPermanent(err))
	puts := q.Stats().Puts

	// Even when the disk recovers, the queue refuses entries until reopened.
	fail.Store(false)
	require.ErrorIs(t, q.Put(ctx, entryFor("refused", 0)), filedlq.ErrBroken)
	assert.Equal(t, puts, q.Stats().Puts, "a broken queue wrote")
	q.Close()

	q = open(t, dir)
	require.NoError(t, q.Put(ctx, entryFor("after", 0)))
	ids := listIDs(t, ctx, q)
	assert.Contains(t, ids, "ok")
	assert.Contains(t, ids, "after")
	assert.NotContains(t, ids, "refused")
}

func TestPutCanceledWhileWaitingForFsync(t *testing.T) {
	ctx := testCtx(t)
	dir := t.TempDir()
	g := newGate(ctx)
	q, err := filedlq.Open(dir, g.option())
	require.NoError(t, err)
	pctx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() { errc <- q.Put(pctx, entryFor("slow-disk", 0)) }()
	wait(t, ctx, g.started)
	cancel()
	require.ErrorIs(t, recv(t, ctx, errc), context.Canceled)
	g.open()
	require.NoError(t, q.Close())
	// The entry was written before the wait: the caller was told it may or may not be there.
	assert.Equal(t, []string{"slow-disk"}, listIDs(t, ctx, open(t, dir)))
}

func TestCloseWakesWaitingPuts(t *testing.T) {
	ctx := testCtx(t)
	g := newGate(ctx)
	q := open(t, t.TempDir(), g.option())
	errc := make(chan error, 2)
	go func() { errc <- q.Put(ctx, entryFor("a", 0)) }()
	wait(t, ctx, g.started)
	go func() { errc <- q.Put(ctx, entryFor("b", 0)) }()
	require.Eventually(t, func() bool { return q.Stats().Puts == 2 }, 10*time.Second, time.Millisecond)
	closed := make(chan error, 1)
	go func() { closed <- q.Close() }()
	g.open()
	require.NoError(t, recv(t, ctx, closed))
	require.NoError(t, recv(t, ctx, errc))
	require.NoError(t, recv(t, ctx, errc))
	assert.ErrorIs(t, q.Put(ctx, entryFor("c", 0)), dlq.ErrClosed)
}

// gate holds the first fsync of a queue until it is opened or the test's context ends, so that
// a test never hangs on it.
type gate struct {
	ctx             context.Context
	started, opened chan struct{}
	startOnce, once sync.Once
	calls           atomic.Int32
}

func newGate(ctx context.Context) *gate {
	return &gate{ctx: ctx, started: make(chan struct{}), opened: make(chan struct{})}
}

func (g *gate) option() filedlq.Option {
	return filedlq.WithSyncFunc(func(f *os.File) error {
		if g.calls.Add(1) == 1 {
			g.startOnce.Do(func() { close(g.started) })
			select {
			case <-g.opened:
			case <-g.ctx.Done():
			}
		}
		return f.Sync()
	})
}

func (g *gate) open() { g.once.Do(func() { close(g.opened) }) }

// wait blocks until ch is closed, failing the test when ctx ends first.
func wait(t *testing.T, ctx context.Context, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-ctx.Done():
		t.Fatal("timed out")
	}
}

// recv receives from ch, failing the test when ctx ends first.
func recv[T any](t *testing.T, ctx context.Context, ch <-chan T) T {
	t.Helper()
	return testwait.RecvCtx(t, ctx, ch)
}
