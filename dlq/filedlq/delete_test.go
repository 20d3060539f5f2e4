package filedlq_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
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
)

// heldSync returns an fsync replacement that, once armed, holds the next fsync of a segment until
// release is closed or ctx ends; started is closed when it holds one.
type heldSync struct {
	ctx              context.Context
	armed            atomic.Bool
	started, release chan struct{}
	once             sync.Once
}

func newHeldSync(ctx context.Context) *heldSync {
	return &heldSync{ctx: ctx, started: make(chan struct{}), release: make(chan struct{})}
}

func (h *heldSync) option() filedlq.Option {
	return filedlq.WithSyncFunc(func(f *os.File) error {
		h.hold()
		return f.Sync()
	})
}

// hold holds the calling fsync, when armed, until release is closed or ctx ends.
func (h *heldSync) hold() {
	if h.armed.CompareAndSwap(true, false) {
		h.once.Do(func() { close(h.started) })
		select {
		case <-h.release:
		case <-h.ctx.Done():
		}
	}
}

// A Delete that rewrites the active segment copies the lines of Puts still waiting for their
// fsync into the new file and fsyncs it, but the new file is the segment only once the directory
// is fsynced: the waiting Puts must be acknowledged after that, not before.
func TestDeleteOnActiveSegmentAcknowledgesPutsAfterTheDirectoryFsync(t *testing.T) {
	for _, dirFails := range []bool{false, true} {
		name := map[bool]string{false: "directory fsync succeeds", true: "directory fsync fails"}[dirFails]
		t.Run(name, func(t *testing.T) {
			ctx := testCtx(t)
			dir := t.TempDir()
			held := newHeldSync(ctx)
			var (
				q                            *filedlq.Queue
				putErr                       = make(chan error, 1)
				dirArmed                     atomic.Bool
				ackedEarly, durableAtDirSync atomic.Int64
			)
			ackedEarly.Store(-1)
			q, err := filedlq.Open(dir, held.option(), filedlq.WithDirSyncFunc(func(d string) error {
				if dirArmed.CompareAndSwap(true, false) {
					// The Delete's directory fsync: the waiting Put must not have returned yet.
					ackedEarly.Store(int64(len(putErr)))
					durableAtDirSync.Store(int64(q.DurableLines()))
					if dirFails {
						return syscall.EIO
					}
				}
				f, err := os.Open(d)
				if err != nil {
					return err
				}
				defer f.Close()
				return f.Sync()
			}))
			require.NoError(t, err)
			t.Cleanup(func() { q.Close() })
			require.NoError(t, q.Put(ctx, entryFor("x", 0)))

			// The fsync of a's line is held, so a's Put waits while the Delete runs.
			held.armed.Store(true)
			go func() { putErr <- q.Put(ctx, entryFor("a", 0)) }()
			wait(t, ctx, held.started)
			dirArmed.Store(true)
			delErr := make(chan error, 1)
			go func() { delErr <- q.Delete(ctx, "x") }()

			if !dirFails {
				// The Delete made a's line durable: it acknowledges a's Put although a's own
				// fsync is still held.
				require.NoError(t, testwait.Recv(t, putErr, 10*time.Second))
				close(held.release)
				require.NoError(t, recv(t, ctx, delErr))
				assert.Equal(t, int64(0), ackedEarly.Load(), "a Put was acknowledged before the directory fsync")
				assert.Equal(t, int64(1), durableAtDirSync.Load(), "lines were marked durable before the directory fsync")
				assert.Equal(t, uint64(2), q.DurableLines())
				require.NoError(t, q.Put(ctx, entryFor("b", 0)))
				assert.Equal(t, []string{"a", "b"}, listIDs(t, ctx, q))
				return
			}
			// The name may be on either file: a's Put is not acknowledged, and the queue takes
			// no more entries, since they would go to a file the directory may not keep.
			err = testwait.Recv(t, putErr, 10*time.Second)
			require.ErrorIs(t, err, filedlq.ErrBroken)
			require.ErrorIs(t, err, syscall.EIO)
			close(held.release)
			require.ErrorIs(t, recv(t, ctx, delErr), syscall.EIO)
			assert.Equal(t, int64(0), ackedEarly.Load())
			assert.Equal(t, uint64(1), q.DurableLines())
			require.ErrorIs(t, q.Put(ctx, entryFor("refused", 0)), filedlq.ErrBroken)
			require.NoError(t, q.Close())

			q2 := open(t, dir)
			assert.Equal(t, []string{"a"}, listIDs(t, ctx, q2))
			assert.Empty(t, q2.Recovered())
		})
	}
}

// Close must wait for a Delete that is rewriting an older segment: once Close has released the
// directory, another writer may reuse the segment's temporary file, and the rewrite would rename
// a copy it did not write over the segment.
func TestCloseWaitsForADeleteRewritingAnOlderSegment(t *testing.T) {
	ctx := testCtx(t)
	dir := t.TempDir()
	var armed atomic.Bool
	entered, release := make(chan string, 1), make(chan struct{})
	q, err := filedlq.Open(dir, filedlq.WithMaxSegmentSize(1000), filedlq.WithBeforeRename(func(seg string) {
		if armed.CompareAndSwap(true, false) {
			entered <- seg
			select {
			case <-release:
			case <-ctx.Done():
			}
		}
	}))
	require.NoError(t, err)
	t.Cleanup(func() { q.Close() })
	for _, id := range []string{"a1", "a2", "b1", "b2"} {
		require.NoError(t, q.Put(ctx, entryFor(id, 0)))
	}
	segs := segments(t, dir)
	require.Len(t, segs, 2, "a1 and a2 fill the first segment")

	armed.Store(true)
	delErr := make(chan error, 1)
	go func() { delErr <- q.Delete(ctx, "a1") }()
	assert.Equal(t, "dlq-00000000000000000001.jsonl", recv(t, ctx, entered))
	closeErr := make(chan error, 1)
	go func() { closeErr <- q.Close() }()

	// Close must block, inside Close, while the rewrite is held; returning is the defect.
	blocked := waitUntilBlockedIn(t, ctx, "filedlq.(*Queue).Close", closeErr)
	require.True(t, blocked, "Close returned while a Delete was rewriting a segment")
	_, err = filedlq.Open(dir)
	require.ErrorIs(t, err, filedlq.ErrLocked, "Close released the directory during a rewrite")

	close(release)
	require.NoError(t, recv(t, ctx, closeErr))
	// The rewrite of the first segment finished; the Delete then found the queue closed.
	require.ErrorIs(t, recv(t, ctx, delErr), dlq.ErrClosed)

	q2 := open(t, dir)
	assert.Equal(t, []string{"a2", "b1", "b2"}, listIDs(t, ctx, q2))
	assert.Empty(t, q2.Recovered())
	tmps, err := filepath.Glob(filepath.Join(dir, "*.tmp"))
	require.NoError(t, err)
	assert.Empty(t, tmps)
}

// waitUntilBlockedIn waits until a goroutine running fn is blocked, and reports true, or until
// done delivers (fn returned), and reports false. It reads the goroutines' stacks, so that a test
// can tell "fn waits" from "fn has not got there yet" without a timed guess.
func waitUntilBlockedIn(t *testing.T, ctx context.Context, fn string, done <-chan error) bool {
	t.Helper()
	buf := make([]byte, 1<<20)
	for {
		select {
		case err := <-done:
			t.Logf("%s returned: %v", fn, err)
			return false
		case <-ctx.Done():
			t.Fatalf("waiting for %s to block: %v", fn, ctx.Err())
		default:
		}
		n := runtime.Stack(buf, true)
		for _, g := range strings.Split(string(buf[:n]), "\n\n") {
			header, _, _ := strings.Cut(g, "\n")
			// A goroutine waiting on a mutex, wait group or channel is shown as, for example,
			// "goroutine 7 [sync.Mutex.Lock]:".
			waiting := strings.Contains(header, "sync.") || strings.Contains(header, "semacquire") ||
				strings.Contains(header, "chan ")
			if waiting && strings.Contains(g, fn+"(") {
				return true
			}
		}
		runtime.Gosched()
	}
}

// A List that reaches the active segment after a Delete shrank it and a Put grew it again must
// not take the line its size limit cuts for a torn write: nothing is damaged.
func TestListAfterTheActiveSegmentWasRewrittenReportsNoDamage(t *testing.T) {
	for _, grow := range []int{0, 40, 4000} {
		t.Run(fmt.Sprintf("regrown by an entry of %d bytes", grow), func(t *testing.T) {
			ctx := testCtx(t)
			var d damages
			q := open(t, t.TempDir(), filedlq.WithMaxSegmentSize(600), d.option())
			for _, id := range []string{"a", "b", "c"} { // each in a segment of its own
				require.NoError(t, q.Put(ctx, entryFor(id, 0)))
			}
			require.Equal(t, 3, q.Stats().Segments)
			var seen []string
			require.NoError(t, q.List(ctx, func(e dlq.Entry) error {
				seen = append(seen, e.ID)
				if e.ID == "a" {
					require.NoError(t, q.Delete(ctx, "c"))
					require.NoError(t, q.Put(ctx, entryFor("later", grow)))
				}
				return nil
			}))
			assert.Empty(t, d.list, "nothing is damaged")
			assert.Zero(t, q.Stats().Damaged)
			// What List saw at its start and was not deleted is all there; an entry written
			// since may be, too.
			require.GreaterOrEqual(t, len(seen), 2)
			assert.Equal(t, []string{"a", "b"}, seen[:2])
			assert.Subset(t, []string{"a", "b", "later"}, seen)
			assert.Equal(t, []string{"a", "b", "later"}, listIDs(t, ctx, q))
		})
	}
}

// A torn write that the size limit of a reader does not cut is still reported.
func TestListReportsATornTailBeforeTheLimit(t *testing.T) {
	ctx := testCtx(t)
	var d damages
	dir := t.TempDir()
	q := open(t, dir, d.option())
	require.NoError(t, q.Put(ctx, entryFor("a", 0)))
	require.NoError(t, q.Put(ctx, entryFor("b", 0)))
	// Shrink the segment behind the writer's back, cutting b in half: the writer's size limit
	// now lies past the end of the file, and the half line is damage.
	seg := segments(t, dir)[0]
	b, err := os.ReadFile(seg)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(seg, b[:len(b)-50], 0o600))
	assert.Equal(t, []string{"a"}, listIDs(t, ctx, q))
	require.Len(t, d.list, 1)
	assert.ErrorIs(t, d.list[0].Err, filedlq.ErrTorn)
}

// A checksummed line whose entry names its ID twice ("id" where scans read it, then "ID", which
// decoding takes instead) or in invalid UTF-8 is damage: List, Get and Delete must agree on the
// entry a line holds. Before, List showed it under the decoded ID, Get could not find it there,
// and a Delete (a Redrive's) of the other ID removed it though it was never delivered.
func TestAnEntryNamingItsIDTwiceIsDamage(t *testing.T) {
	ctx := context.Background()
	frame := func(entry string) string {
		return fmt.Sprintf(`{"crc32c":"%08x","entry":%s}`+"\n", crc32c([]byte(entry)), entry)
	}
	for name, hostile := range map[string]string{
		// Delete of A reads this line's ID as A, decodes it and keeps it, reporting it.
		"second id": `{"v":1,"id":"A","sink":"s2","event":{"id":"ev-2"},"ID":"B"}`,
		// Delete reads this line's ID as A\xff: not deleted, nor decoded.
		"invalid UTF-8": "{\"v\":1,\"id\":\"A\xff\",\"sink\":\"s2\",\"event\":{\"id\":\"ev-2\"}}",
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			good := `{"v":1,"id":"A","sink":"s1","event":{"id":"ev-1"}}`
			text := frame(hostile) + frame(good)
			seg := filepath.Join(dir, "dlq-00000000000000000001.jsonl")
			require.NoError(t, os.WriteFile(seg, []byte(text), 0o600))
			var d damages
			q := open(t, dir, d.option())

			assert.Equal(t, []string{"A"}, listIDs(t, ctx, q), "only the entry that reads the same both ways")
			assert.Len(t, d.list, 1, "the other is damage")
			_, err := q.Get(ctx, "B")
			require.ErrorIs(t, err, dlq.ErrNotFound)
			got, err := q.Get(ctx, "A")
			require.NoError(t, err)
			assert.Equal(t, "s1", got.Sink)

			before := len(d.list)
			require.NoError(t, q.Delete(ctx, "A"))
			if name == "second id" {
				assert.Greater(t, len(d.list), before, "Delete reports the damage it keeps")
			}
			after, err := os.ReadFile(seg)
			require.NoError(t, err)
			assert.Equal(t, frame(hostile), string(after), "the damaged line is kept")
		})
	}
}

// Delete fsyncs the copy of a segment before it renames the copy over the segment: were the
// rename durable before the copy's data, a machine crash could leave the segment without the
// entries it kept.
func TestDeleteFsyncsTheCopyBeforeRenamingIt(t *testing.T) {
	ctx := testCtx(t)
	dir := t.TempDir()
	l := newSyncLog()
	type copied struct{ size, synced int64 }
	copies := map[string]copied{} // by segment, when the copy was about to be renamed
	q := open(t, dir, append(l.options(),
		filedlq.WithMaxSegmentSize(int64(2*lineSize(t, "a-1"))),
		filedlq.WithBeforeRename(func(seg string) {
			tmp := seg + ".tmp"
			fi, err := os.Stat(filepath.Join(dir, tmp))
			if assert.NoError(t, err) {
				copies[seg] = copied{fi.Size(), l.synced(tmp)}
			}
		}))...)
	for _, id := range []string{"a-1", "a-2", "b-1", "b-2"} {
		require.NoError(t, q.Put(ctx, entryFor(id, 0)))
	}
	require.Len(t, segments(t, dir), 2)
	// An entry of an older segment and one of the active segment.
	require.NoError(t, q.Delete(ctx, "a-1", "b-1"))
	require.Len(t, copies, 2)
	for seg, c := range copies {
		assert.Positive(t, c.size, seg)
		assert.Equal(t, c.size, c.synced, "%s: the copy was renamed before it was fsynced", seg)
	}
	assert.Equal(t, []string{"a-2", "b-2"}, listIDs(t, ctx, q))
}

// Delete removes every entry with a given ID (dlq.Reader): a Put retried after an unclear
// failure can leave the same entry twice, and Redrive counts on the removal of the entry it
// delivered taking the copy too.
func TestDeleteRemovesEveryEntryWithTheID(t *testing.T) {
	for name, segSize := range map[string]int64{"one segment": filedlq.DefaultMaxSegmentSize, "a segment each": 1} {
		t.Run(name, func(t *testing.T) {
			ctx := testCtx(t)
			q := open(t, t.TempDir(), filedlq.WithMaxSegmentSize(segSize))
			for _, id := range []string{"dup", "other", "dup"} {
				require.NoError(t, q.Put(ctx, entryFor(id, 0)))
			}
			require.Equal(t, []string{"dup", "other", "dup"}, listIDs(t, ctx, q))
			require.NoError(t, q.Delete(ctx, "dup"))
			assert.Equal(t, []string{"other"}, listIDs(t, ctx, q), "a copy of a deleted entry stayed")
		})
	}
}

// A crash during a Delete can leave the copy of a segment beside it. Open removes the copy and
// leaves the segment as it was, and a file that is not a copy of a segment alone.
func TestOpenRemovesALeftoverCopy(t *testing.T) {
	ctx := testCtx(t)
	dir := t.TempDir()
	q := open(t, dir)
	require.NoError(t, q.Put(ctx, entryFor("a", 0)))
	require.NoError(t, q.Put(ctx, entryFor("b", 0)))
	require.NoError(t, q.Close())
	seg := segments(t, dir)[0]
	data, err := os.ReadFile(seg)
	require.NoError(t, err)
	// The copy of a Delete of a, cut short halfway through b's line.
	leftover := seg + ".tmp"
	require.NoError(t, os.WriteFile(leftover, data[len(data)/2:len(data)-len(data)/4], 0o600))
	other := filepath.Join(dir, "dlq-export.jsonl.tmp")
	require.NoError(t, os.WriteFile(other, data, 0o600))

	q = open(t, dir)
	assert.NoFileExists(t, leftover)
	assert.FileExists(t, other)
	assert.Equal(t, []string{"a", "b"}, listIDs(t, ctx, q))
	assert.Empty(t, q.Recovered())
}

// A Delete that rewrote the active segment and then could not open the new file leaves the queue
// holding the old one, which the rename unlinked: a Put written there would be acknowledged and
// lost. The queue refuses entries instead, until it is reopened. The segment vanishing between
// the rename and the reopening stands for any failure to open it.
func TestPutAfterTheRewrittenSegmentCouldNotBeReopened(t *testing.T) {
	ctx := testCtx(t)
	dir := t.TempDir()
	var armed atomic.Bool
	q := open(t, dir, filedlq.WithDirSyncFunc(func(d string) error {
		if armed.CompareAndSwap(true, false) {
			// The Delete's directory fsync, after its rename and before the reopening.
			if err := os.Remove(filepath.Join(d, "dlq-00000000000000000001.jsonl")); err != nil {
				return err
			}
		}
		return syncDirectory(d)
	}))
	require.NoError(t, q.Put(ctx, entryFor("a", 0)))
	require.NoError(t, q.Put(ctx, entryFor("b", 0)))
	armed.Store(true)
	require.ErrorIs(t, q.Delete(ctx, "a"), fs.ErrNotExist)
	require.False(t, armed.Load(), "the Delete made no directory fsync")

	err := q.Put(ctx, entryFor("c", 0))
	require.ErrorIs(t, err, filedlq.ErrBroken, "a Put was written to a segment the directory no longer holds")
	assert.False(t, retry.IsPermanent(err), "a broken queue is no reason to drop the event: %v", err)
	assert.Equal(t, uint64(2), q.Stats().Puts, "a broken queue wrote")
}

// List returns the error fn returns as it is, not wrapped (dlq.Reader), from any segment.
func TestListReturnsTheCallbacksError(t *testing.T) {
	ctx := testCtx(t)
	q := open(t, t.TempDir(), filedlq.WithMaxSegmentSize(1))
	for _, id := range []string{"a", "b"} { // a segment each
		require.NoError(t, q.Put(ctx, entryFor(id, 0)))
	}
	for _, at := range []string{"a", "b"} {
		stop := errors.New("stop")
		err := q.List(ctx, func(e dlq.Entry) error {
			if e.ID == at {
				return stop
			}
			return nil
		})
		assert.Same(t, stop, err, "List changed the error fn returned at %s: %v", at, err)
	}
}
