package filedlq_test

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge/dlq"
	"github.com/fanbridge/fanbridge/dlq/filedlq"
	"github.com/fanbridge/fanbridge/retry"
)

func TestOpenRejectsBadOptions(t *testing.T) {
	cases := []struct {
		name string
		opt  filedlq.Option
	}{
		{"zero-policy", filedlq.WithSync(filedlq.SyncPolicy{})}, // the zero policy is SyncAlways: valid
		{"zero-interval", filedlq.WithSync(filedlq.SyncInterval(0))},
		{"negative-interval", filedlq.WithSync(filedlq.SyncInterval(-time.Second))},
		{"zero-segment", filedlq.WithMaxSegmentSize(0)},
		{"negative-retention", filedlq.WithRetention(-1)},
		{"tiny-entries", filedlq.WithMaxEntrySize(100)},
		{"nil-logger", filedlq.WithLogger(nil)},
		{"nil-clock", filedlq.WithClock(nil)},
		{"group-readable-only", filedlq.WithFileMode(0o440)},
		{"not-permissions", filedlq.WithFileMode(os.ModeDir | 0o600)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "q")
			q, err := filedlq.Open(dir, tc.opt)
			if tc.name == "zero-policy" {
				require.NoError(t, err)
				require.NoError(t, q.Close())
				return
			}
			require.ErrorIs(t, err, filedlq.ErrInvalidOption)
			assert.NoDirExists(t, dir, "a refused Open changed the disk")
		})
	}
	_, err := filedlq.Open("")
	assert.ErrorIs(t, err, filedlq.ErrInvalidOption)
}

func TestOpenCreatesPrivateFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	q := open(t, dir)
	fi, err := os.Stat(dir)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), fi.Mode().Perm())
	segs := segments(t, dir)
	require.Len(t, segs, 1)
	fi, err = os.Stat(segs[0])
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	require.NoError(t, q.Close())
}

// Open makes every directory it creates durable, by syncing the directory that holds it, before
// any Put: a crash soon after the first acknowledged Put must not lose the directory. A directory
// that already exists costs no such sync.
func TestOpenSyncsTheDirectoriesItCreates(t *testing.T) {
	root := t.TempDir()
	var mu sync.Mutex
	var synced []string
	record := filedlq.WithDirSyncFunc(func(d string) error {
		mu.Lock()
		synced = append(synced, d)
		mu.Unlock()
		return nil
	})
	dir := filepath.Join(root, "a", "b")
	q, err := filedlq.Open(dir, record)
	require.NoError(t, err)
	mu.Lock()
	require.GreaterOrEqual(t, len(synced), 2)
	assert.Equal(t, []string{root, filepath.Join(root, "a")}, synced[:2], "the parents, top down, first")
	mu.Unlock()
	require.NoError(t, q.Close())

	mu.Lock()
	synced = nil
	mu.Unlock()
	q, err = filedlq.Open(dir, record)
	require.NoError(t, err)
	mu.Lock()
	assert.NotContains(t, synced, root)
	assert.NotContains(t, synced, filepath.Join(root, "a"))
	mu.Unlock()
	require.NoError(t, q.Close())
}

func TestOneWriterPerDirectory(t *testing.T) {
	dir := t.TempDir()
	q, err := filedlq.Open(dir)
	require.NoError(t, err)
	_, err = filedlq.Open(dir)
	require.ErrorIs(t, err, filedlq.ErrLocked)
	// Readers are welcome beside the writer.
	ro := open(t, dir, filedlq.WithReadOnly())
	require.NoError(t, q.Close())
	require.NoError(t, ro.Close())
	q = open(t, dir)
	require.NoError(t, q.Close())
}

func TestReadOnly(t *testing.T) {
	ctx := testCtx(t)
	dir := t.TempDir()
	w := open(t, dir, filedlq.WithMaxSegmentSize(1024))
	require.NoError(t, w.Put(ctx, entryFor("a", 0)))
	ro := open(t, dir, filedlq.WithReadOnly())
	assert.ErrorIs(t, ro.Put(ctx, entryFor("b", 0)), dlq.ErrUnsupported)
	assert.ErrorIs(t, ro.Delete(ctx, "a"), dlq.ErrUnsupported)
	// The reader follows the writer's new entries and segments.
	require.NoError(t, w.Put(ctx, entryFor("b", 0)))
	require.NoError(t, w.Put(ctx, entryFor("c", 0)))
	assert.Equal(t, []string{"a", "b", "c"}, listIDs(t, ctx, ro))
	got, err := ro.Get(ctx, "c")
	require.NoError(t, err)
	assert.Equal(t, "c", got.ID)

	_, err = filedlq.Open(filepath.Join(dir, "missing"), filedlq.WithReadOnly())
	assert.ErrorIs(t, err, os.ErrNotExist)
}

func TestPutRefusals(t *testing.T) {
	ctx := testCtx(t)
	q := open(t, t.TempDir(), filedlq.WithMaxEntrySize(4096))
	err := q.Put(ctx, entryFor("big", 8<<10))
	assert.ErrorIs(t, err, filedlq.ErrTooLarge)
	assert.True(t, retry.IsPermanent(err))
	err = q.Put(ctx, dlq.Entry{ID: "no-sink"})
	assert.ErrorIs(t, err, dlq.ErrInvalidEntry)
	assert.True(t, retry.IsPermanent(err))
	assert.Empty(t, listIDs(t, ctx, q))
	assert.Equal(t, uint64(0), q.Stats().Puts)

	// The limit is on the line, newline included: a line of exactly 4096 bytes is taken, one of
	// a byte more is not.
	sized := func(id string, n int) dlq.Entry {
		e := entryFor(id, 0)
		line, err := filedlq.AppendLine(nil, e)
		require.NoError(t, err)
		e.Error += strings.Repeat("x", n-len(line))
		line, err = filedlq.AppendLine(nil, e)
		require.NoError(t, err)
		require.Len(t, line, n)
		return e
	}
	require.NoError(t, q.Put(ctx, sized("at-limit", 4096)))
	err = q.Put(ctx, sized("past-limit", 4097))
	assert.ErrorIs(t, err, filedlq.ErrTooLarge)
	assert.True(t, retry.IsPermanent(err))
	assert.Equal(t, []string{"at-limit"}, listIDs(t, ctx, q))
}

func TestClosedQueue(t *testing.T) {
	ctx := testCtx(t)
	q, err := filedlq.Open(t.TempDir())
	require.NoError(t, err)
	require.NoError(t, q.Put(ctx, entryFor("a", 0)))
	require.NoError(t, q.Close())
	require.NoError(t, q.Close(), "a second Close")
	assert.ErrorIs(t, q.Put(ctx, entryFor("b", 0)), dlq.ErrClosed)
	assert.ErrorIs(t, q.List(ctx, func(dlq.Entry) error { return nil }), dlq.ErrClosed)
	_, err = q.Get(ctx, "a")
	assert.ErrorIs(t, err, dlq.ErrClosed)
	assert.ErrorIs(t, q.Delete(ctx, "a"), dlq.ErrClosed)
}

func TestLoggerIsSilentByDefaultAndNeverLogsContents(t *testing.T) {
	ctx := testCtx(t)
	dir := t.TempDir()
	q := open(t, dir)
	e := entryFor("secret-carrier", 0)
	e.Error = "token=hunter2"
	require.NoError(t, q.Put(ctx, e))
	require.NoError(t, q.Close())
	appendBytes(t, segments(t, dir)[0], []byte(`{"crc32c":"token=hunter2`))
	var logs strings.Builder
	q = open(t, dir, filedlq.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	assert.Len(t, q.Recovered(), 1)
	assert.Contains(t, logs.String(), "damaged bytes")
	assert.NotContains(t, logs.String(), "hunter2")
}

func TestSyncPolicyString(t *testing.T) {
	assert.Equal(t, "always", filedlq.SyncAlways().String())
	assert.Equal(t, "interval(1s)", filedlq.SyncInterval(time.Second).String())
	assert.Equal(t, "never", filedlq.SyncNever().String())
}
