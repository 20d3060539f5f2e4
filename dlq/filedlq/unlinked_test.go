package filedlq_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge/dlq"
	"github.com/fanbridge/fanbridge/dlq/filedlq"
)

// The active segment removed under a running queue (an operator's rm, a cleanup job) takes the
// lines written to it since with it: a Put never reports such a line stored. The queue breaks at
// its next fsync, says why, and refuses entries until reopened; reopened, it holds what it
// reported stored before.
func TestActiveSegmentRemovedUnderTheQueue(t *testing.T) {
	ctx := testCtx(t)
	dir := t.TempDir()
	q := open(t, dir)
	require.NoError(t, q.Put(ctx, entryFor("before", 0)))
	for _, p := range segments(t, dir) {
		require.NoError(t, os.Remove(p))
	}
	err := q.Put(ctx, entryFor("after", 0))
	require.ErrorIs(t, err, filedlq.ErrBroken)
	assert.Contains(t, err.Error(), "removed or replaced under the queue")
	require.ErrorIs(t, q.Put(ctx, entryFor("later", 0)), filedlq.ErrBroken)
	require.NoError(t, q.Close())

	q = open(t, dir)
	ids := listIDs(t, ctx, q)
	assert.NotContains(t, ids, "after")
	assert.NotContains(t, ids, "later")
	require.NoError(t, q.Put(ctx, entryFor("reopened", 0)))
	assert.Contains(t, listIDs(t, ctx, q), "reopened")
}

// A Put waiting to write while another Put's rotation fsync holds the queue (a slow disk) gives up
// when its context ends, instead of waiting out the fsync, and hands its entry over: the queue
// writes it once it is free, before the next Put's line.
func TestPutWaitingBehindARotationEndsWithItsContext(t *testing.T) {
	ctx, _, q, held, rotated := behindHeldRotation(t)
	waiting, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := q.Put(waiting, entryFor("gives-up", 0))
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Contains(t, err.Error(), "written once the queue is free")
	assert.Less(t, time.Since(start), 5*time.Second, "it waited for the held fsync")
	close(held.release)
	require.NoError(t, <-rotated)
	require.NoError(t, q.Put(ctx, entryFor("next", 0)))
	assert.Subset(t, listIDs(t, ctx, q), []string{"fills", "rotates", "gives-up", "next"})
}

// Close's last fsync looks, as every other fsync does, whether the active segment is still the
// file at its name: a queue whose segment was removed does not close with nil.
func TestCloseSeesTheActiveSegmentRemoved(t *testing.T) {
	ctx := testCtx(t)
	dir := t.TempDir()
	q, err := filedlq.Open(dir, filedlq.WithSync(filedlq.SyncInterval(time.Hour)))
	require.NoError(t, err)
	require.NoError(t, q.Put(ctx, entryFor("before", 0)))
	for _, p := range segments(t, dir) {
		require.NoError(t, os.Remove(p))
	}
	require.NoError(t, q.Put(ctx, entryFor("after", 0))) // written, not yet fsynced
	err = q.Close()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "removed or replaced under the queue")

	// Under SyncAlways every line is fsynced before Close: Close still looks.
	dir = t.TempDir()
	q, err = filedlq.Open(dir)
	require.NoError(t, err)
	require.NoError(t, q.Put(ctx, entryFor("acknowledged", 0)))
	for _, p := range segments(t, dir) {
		require.NoError(t, os.Remove(p))
	}
	err = q.Close()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "removed or replaced under the queue")
}

// Err says whether the queue takes entries, for a readiness probe: nil while it does, ErrBroken
// once a storage failure broke it, dlq.ErrClosed after Close.
func TestErrFollowsTheQueuesState(t *testing.T) {
	ctx := testCtx(t)
	dir := t.TempDir()
	q := open(t, dir)
	require.NoError(t, q.Err())
	require.NoError(t, q.Put(ctx, entryFor("ok", 0)))
	require.NoError(t, q.Err())
	for _, p := range segments(t, dir) {
		require.NoError(t, os.Remove(p))
	}
	require.ErrorIs(t, q.Put(ctx, entryFor("lost", 0)), filedlq.ErrBroken)
	require.ErrorIs(t, q.Err(), filedlq.ErrBroken)
	require.NoError(t, q.Close())
	q = open(t, dir)
	require.NoError(t, q.Err())
	require.NoError(t, q.Close())
	require.ErrorIs(t, q.Err(), dlq.ErrClosed)
}
