package filedlq_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge/dlq/filedlq"
	"github.com/fanbridge/fanbridge/retry/retrytest"
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
	t.Run("after another", func(t *testing.T) {
		ctx := testCtx(t)
		dir := t.TempDir()
		q := open(t, dir, filedlq.WithMaxSegmentSize(2048))
		require.NoError(t, q.Put(ctx, entryFor("small", 0)))
		require.NoError(t, q.Put(ctx, entryFor("big", 8<<10)))
		require.NoError(t, q.Put(ctx, entryFor("after", 0)))
		assert.Len(t, segments(t, dir), 3)
		assert.Equal(t, []string{"small", "big", "after"}, listIDs(t, ctx, q))
	})
	// An empty active segment takes the entry, however large: a new segment would leave an
	// empty file behind it.
	t.Run("first", func(t *testing.T) {
		ctx := testCtx(t)
		dir := t.TempDir()
		q := open(t, dir, filedlq.WithMaxSegmentSize(2048))
		require.NoError(t, q.Put(ctx, entryFor("big", 8<<10)))
		segs := segments(t, dir)
		require.Len(t, segs, 1)
		assert.Equal(t, "dlq-00000000000000000001.jsonl", filepath.Base(segs[0]))
		require.NoError(t, q.Put(ctx, entryFor("after", 0)))
		assert.Len(t, segments(t, dir), 2)
		assert.Equal(t, []string{"big", "after"}, listIDs(t, ctx, q))
	})
}

// syncLog stands in for a queue's fsyncs, and records what they made durable: for each file, the
// largest size an fsync of it covered (the size the file had when the fsync began), and the
// names a directory fsync found in the directory. When held is set, an fsync it has armed waits,
// once it has taken the file's size, until released.
type syncLog struct {
	mu    sync.Mutex
	files map[string]int64
	dirs  map[string]bool
	held  *heldSync
}

func newSyncLog() *syncLog {
	return &syncLog{files: map[string]int64{}, dirs: map[string]bool{}}
}

func (l *syncLog) options() []filedlq.Option {
	return []filedlq.Option{
		filedlq.WithSyncFunc(func(f *os.File) error {
			fi, err := f.Stat()
			if err != nil {
				return err
			}
			if l.held != nil {
				l.held.hold()
			}
			if err := f.Sync(); err != nil {
				return err
			}
			name := filepath.Base(f.Name())
			l.mu.Lock()
			defer l.mu.Unlock()
			l.files[name] = max(l.files[name], fi.Size())
			return nil
		}),
		filedlq.WithDirSyncFunc(func(dir string) error {
			ents, err := os.ReadDir(dir)
			if err != nil {
				return err
			}
			if err := syncDirectory(dir); err != nil {
				return err
			}
			l.mu.Lock()
			defer l.mu.Unlock()
			for _, e := range ents {
				l.dirs[e.Name()] = true
			}
			return nil
		}),
	}
}

// synced returns how many bytes of the file named name an fsync has covered.
func (l *syncLog) synced(name string) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.files[name]
}

// checkDurable requires every segment in dir to be covered whole by an fsync of it, and its name
// by an fsync of the directory.
func (l *syncLog) checkDurable(t *testing.T, dir, what string) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, p := range segments(t, dir) {
		fi, err := os.Stat(p)
		require.NoError(t, err)
		name := filepath.Base(p)
		assert.GreaterOrEqual(t, l.files[name], fi.Size(), "%s: %s holds bytes no fsync covered", what, name)
		assert.True(t, l.dirs[name], "%s: no directory fsync made the name %s durable", what, name)
	}
}

// A rotation fsyncs the segment it leaves: later fsyncs are of the new segment, and they cannot
// make the lines of the old one durable. A new segment's name is made durable before an entry is
// acknowledged in it.
func TestRotationMakesSegmentsDurable(t *testing.T) {
	// SyncInterval promises that a rotation fsyncs all that was written; the interval never
	// ends here.
	t.Run("interval", func(t *testing.T) {
		ctx := testCtx(t)
		dir := t.TempDir()
		l := newSyncLog()
		clk := retrytest.NewClock(time.Unix(0, 0))
		q := open(t, dir, append(l.options(), filedlq.WithMaxSegmentSize(int64(2*lineSize(t, "e-00"))),
			filedlq.WithSync(filedlq.SyncInterval(time.Hour)), filedlq.WithClock(clk))...)
		for _, id := range []string{"e-00", "e-01", "e-02"} {
			require.NoError(t, q.Put(ctx, entryFor(id, 0)))
		}
		segs := segments(t, dir)
		require.Len(t, segs, 2)
		fi, err := os.Stat(segs[0])
		require.NoError(t, err)
		assert.Equal(t, fi.Size(), l.synced(filepath.Base(segs[0])), "the rotation did not fsync the segment it left")
	})
	// Under SyncAlways each Put returns after its fsync, and each segment's name is durable by
	// then.
	t.Run("always", func(t *testing.T) {
		ctx := testCtx(t)
		dir := t.TempDir()
		l := newSyncLog()
		q := open(t, dir, append(l.options(), filedlq.WithMaxSegmentSize(int64(2*lineSize(t, "e-00"))))...)
		for i := range 5 {
			id := fmt.Sprintf("e-%02d", i)
			require.NoError(t, q.Put(ctx, entryFor(id, 0)))
			l.checkDurable(t, dir, "after Put "+id)
		}
		assert.Len(t, segments(t, dir), 3)
	})
	// A line whose Put gave up waiting for its fsync is left for the next fsync to make
	// durable. When the next Put rotates first, only the rotation's fsync can: the fsyncs after
	// it are of the new segment, and yet they count every line written before them as durable.
	t.Run("always, after a Put that gave up", func(t *testing.T) {
		ctx := testCtx(t)
		dir := t.TempDir()
		l := newSyncLog()
		l.held = newHeldSync(ctx)
		q := open(t, dir, append(l.options(), filedlq.WithMaxSegmentSize(int64(2*lineSize(t, "e-00"))))...)

		// e-00's fsync is held once it has taken the segment's size: it covers e-00's line only.
		l.held.armed.Store(true)
		first := make(chan error, 1)
		go func() { first <- q.Put(ctx, entryFor("e-00", 0)) }()
		wait(t, ctx, l.held.started)
		// e-01's line is written while that fsync runs, and its Put gives up waiting: no fsync
		// is started for it.
		gaveUp, cancel := context.WithCancel(ctx)
		second := make(chan error, 1)
		go func() { second <- q.Put(gaveUp, entryFor("e-01", 0)) }()
		require.Eventually(t, func() bool { return q.Stats().Puts == 2 }, 10*time.Second, time.Millisecond)
		cancel()
		require.ErrorIs(t, recv(t, ctx, second), context.Canceled)
		close(l.held.release)
		require.NoError(t, recv(t, ctx, first))

		// e-02 does not fit the segment: it rotates, and its fsync is of the new segment.
		require.NoError(t, q.Put(ctx, entryFor("e-02", 0)))
		require.Len(t, segments(t, dir), 2)
		assert.Equal(t, uint64(3), q.DurableLines())
		l.checkDurable(t, dir, "after the rotation")
	})
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
