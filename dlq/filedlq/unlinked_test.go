package filedlq_test

import (
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

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
