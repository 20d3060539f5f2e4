package filedlq_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge/dlq/filedlq"
)

// lineSize is the encoded size of entryFor(id, 0) for the IDs these tests use.
func lineSize(t *testing.T, id string) int {
	t.Helper()
	line, err := filedlq.AppendLine(nil, entryFor(id, 0))
	require.NoError(t, err)
	return len(line)
}

func TestRotation(t *testing.T) {
	ctx := testCtx(t)
	dir := t.TempDir()
	size := lineSize(t, "e-00")
	// Three lines fit a segment, four do not.
	opts := []filedlq.Option{filedlq.WithMaxSegmentSize(int64(3*size + size/2))}
	q, err := filedlq.Open(dir, opts...)
	require.NoError(t, err)
	var want []string
	for i := range 10 {
		id := fmt.Sprintf("e-%02d", i)
		want = append(want, id)
		require.NoError(t, q.Put(ctx, entryFor(id, 0)))
	}
	st := q.Stats()
	assert.Equal(t, uint64(3), st.Rotations)
	assert.Equal(t, 4, st.Segments)
	segs := segments(t, dir)
	require.Len(t, segs, 4)
	for i, s := range segs {
		assert.Equal(t, fmt.Sprintf("dlq-%020d.jsonl", i+1), filepath.Base(s))
		data, err := os.ReadFile(s)
		require.NoError(t, err)
		lines := 3
		if i == 3 {
			lines = 1
		}
		assert.Equal(t, lines, bytes.Count(data, []byte("\n")), "segment %d", i+1)
	}
	assert.Equal(t, want, listIDs(t, ctx, q))

	// Reopened, the queue appends to the last segment and keeps numbering from there.
	require.NoError(t, q.Close())
	q = open(t, dir, opts...)
	for i := 10; i < 13; i++ {
		id := fmt.Sprintf("e-%02d", i)
		want = append(want, id)
		require.NoError(t, q.Put(ctx, entryFor(id, 0)))
	}
	assert.Equal(t, want, listIDs(t, ctx, q))
	segs = segments(t, dir)
	require.Len(t, segs, 5)
	assert.Equal(t, "dlq-00000000000000000005.jsonl", filepath.Base(segs[4]))

	// Deleting every entry of an old segment removes the segment.
	require.NoError(t, q.Delete(ctx, "e-03", "e-04", "e-05"))
	assert.Len(t, segments(t, dir), 4)
	assert.NoFileExists(t, filepath.Join(dir, "dlq-00000000000000000002.jsonl"))
	assert.Equal(t, append(want[:3:3], want[6:]...), listIDs(t, ctx, q))
}

func TestOversizedEntryGetsItsOwnSegment(t *testing.T) {
	ctx := testCtx(t)
	dir := t.TempDir()
	q := open(t, dir, filedlq.WithMaxSegmentSize(2048))
	require.NoError(t, q.Put(ctx, entryFor("small", 0)))
	require.NoError(t, q.Put(ctx, entryFor("big", 8<<10)))
	require.NoError(t, q.Put(ctx, entryFor("after", 0)))
	assert.Len(t, segments(t, dir), 3)
	assert.Equal(t, []string{"small", "big", "after"}, listIDs(t, ctx, q))
}

func TestRetention(t *testing.T) {
	ctx := testCtx(t)
	dir := t.TempDir()
	var logs bytes.Buffer
	size := lineSize(t, "e-00")
	q := open(t, dir,
		filedlq.WithMaxSegmentSize(int64(2*size)), // two lines per segment
		filedlq.WithRetention(2),
		filedlq.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	for i := range 9 {
		require.NoError(t, q.Put(ctx, entryFor(fmt.Sprintf("e-%02d", i), 0)))
	}
	// Segments 1 to 5 were made; only 4 and 5 are kept.
	segs := segments(t, dir)
	require.Len(t, segs, 2)
	assert.Equal(t, "dlq-00000000000000000004.jsonl", filepath.Base(segs[0]))
	assert.Equal(t, []string{"e-06", "e-07", "e-08"}, listIDs(t, ctx, q))
	st := q.Stats()
	assert.Equal(t, uint64(3), st.Dropped)
	assert.Equal(t, 2, st.Segments)
	assert.Equal(t, 3, bytes.Count(logs.Bytes(), []byte("retention removed a segment")))
	assert.NotContains(t, logs.String(), "v2.users", "entry contents reached the log")
}
