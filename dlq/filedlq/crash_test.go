package filedlq_test

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
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
)

var long = flag.Bool("long", false, "run the long variants of the crash tests")

// crashHelperEnv names the directory the helper process writes to; the helper runs only with it.
const crashHelperEnv = "FILEDLQ_CRASH_HELPER_DIR"

// crashEntrySize makes every eighth entry large (0.5 to 1.5 MiB of binary raw, up to 2 MiB encoded),
// so that writes take long enough for a kill to land inside one.
func crashEntrySize(i int) int {
	if i%8 == 7 {
		return 512<<10 + (i%3)*(512<<10)
	}
	return 0
}

// TestHelperProcess is the child of TestCrashSafety: it appends to a queue from four goroutines
// with SyncAlways, printing each entry's ID once Put has returned nil, until it is killed.
func TestHelperProcess(t *testing.T) {
	dir := os.Getenv(crashHelperEnv)
	if dir == "" {
		t.Skip("runs only as the child process of TestCrashSafety")
	}
	q, err := filedlq.Open(dir, filedlq.WithMaxSegmentSize(2<<20))
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		os.Exit(3)
	}
	var out sync.Mutex
	for g := range 4 {
		go func() {
			for i := 0; ; i++ {
				id := fmt.Sprintf("%s-g%d-%06d", os.Getenv(crashHelperEnv+"_RUN"), g, i)
				if crashEntrySize(i) > 0 {
					out.Lock()
					fmt.Fprintln(os.Stdout, "> "+id) // a large write begins
					out.Unlock()
				}
				if err := q.Put(context.Background(), entryFor(id, crashEntrySize(i))); err != nil {
					fmt.Fprintln(os.Stderr, "put:", err)
					os.Exit(3)
				}
				out.Lock()
				fmt.Fprintln(os.Stdout, id)
				out.Unlock()
			}
		}()
	}
	select {}
}

// TestCrashSafety kills a writing child process at a random moment, again and again on one
// directory, and checks after each kill that every acknowledged entry is there, byte for byte,
// that no partial entry is returned, and that a torn tail is reported.
func TestCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	runs := 3
	if *long {
		runs = 40
	}
	dir := t.TempDir()
	acked := map[string]bool{}
	torn := 0
	for run := range runs {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		// The child is killed after a random number of acknowledgements, or, every other run, as
		// it starts a random one of its large writes.
		killAfter, killAtBig := 1+rand.IntN(60), 0
		if run%2 == 1 {
			killAfter, killAtBig = 0, 1+rand.IntN(4)
		}
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperProcess$")
		cmd.Env = append(os.Environ(), crashHelperEnv+"="+dir, fmt.Sprintf("%s_RUN=r%02d", crashHelperEnv, run))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		stdout, err := cmd.StdoutPipe()
		require.NoError(t, err)
		require.NoError(t, cmd.Start())
		sc := bufio.NewScanner(stdout)
		n, big := 0, 0
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "> ") {
				if big++; big == killAtBig {
					require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
				}
				continue
			}
			acked[sc.Text()] = true
			if n++; n == killAfter {
				require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
			}
		}
		err = cmd.Wait()
		var exit *exec.ExitError
		require.ErrorAs(t, err, &exit, "child: %s", stderr.String())
		require.Equal(t, syscall.SIGKILL, exit.Sys().(syscall.WaitStatus).Signal(), "child ended otherwise: %s", stderr.String())
		require.True(t, n >= killAfter && big >= killAtBig, "child ended early: %s", stderr.String())

		// Is the last segment torn before the queue repairs it?
		segs := segments(t, dir)
		last, err := os.ReadFile(segs[len(segs)-1])
		require.NoError(t, err)
		wasTorn := len(last) > 0 && last[len(last)-1] != '\n'

		var d damages
		q, err := filedlq.Open(dir, d.option())
		require.NoError(t, err)
		if wasTorn {
			torn++
			require.NotEmpty(t, q.Recovered(), "a torn tail was not reported")
			assert.ErrorIs(t, q.Recovered()[len(q.Recovered())-1].Err, filedlq.ErrTorn)
		}
		for _, x := range q.Recovered() {
			assert.True(t, x.Repaired)
			assert.ErrorIs(t, x.Err, filedlq.ErrTorn)
		}
		seen := map[string]bool{}
		require.NoError(t, q.List(ctx, func(e dlq.Entry) error {
			require.False(t, seen[e.ID], "entry %s listed twice", e.ID)
			seen[e.ID] = true
			var i int
			_, err := fmt.Sscanf(e.ID[strings.LastIndexByte(e.ID, '-')+1:], "%d", &i)
			require.NoError(t, err)
			dlqtestEqual(t, entryFor(e.ID, crashEntrySize(i)), e)
			return nil
		}))
		assert.Empty(t, d.list[len(q.Recovered()):], "damage found after the repair")
		for id := range acked {
			require.True(t, seen[id], "acknowledged entry %s lost (run %d)", id, run)
		}
		require.NoError(t, q.Close())
	}
	t.Logf("%d runs, %d acknowledged entries kept, %d torn tails repaired", runs, len(acked), torn)
}

// dlqtestEqual compares the fields a crash could damage.
func dlqtestEqual(t *testing.T, want, got dlq.Entry) {
	t.Helper()
	require.Equal(t, want.Event.Raw, got.Event.Raw, "raw of %s", want.ID)
	require.Equal(t, want.Event.ID, got.Event.ID)
	require.Equal(t, want.Sink, got.Sink)
	require.True(t, want.LastAttempt.Equal(got.LastAttempt))
}

func TestTornTail(t *testing.T) {
	ctx := testCtx(t)
	half := func(t *testing.T, id string) []byte {
		line, err := filedlq.AppendLine(nil, entryFor(id, 0))
		require.NoError(t, err)
		return line[:len(line)/2]
	}
	cases := []struct {
		name string
		tail func(t *testing.T) []byte
	}{
		{"half-line", func(t *testing.T) []byte { return half(t, "torn") }},
		// Valid JSON without its newline is still a torn write.
		{"json-without-newline", func(t *testing.T) []byte {
			line, err := filedlq.AppendLine(nil, entryFor("torn", 0))
			require.NoError(t, err)
			return line[:len(line)-1]
		}},
		{"garbage", func(t *testing.T) []byte { return []byte{0, 0, 0, 0} }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			q, err := filedlq.Open(dir)
			require.NoError(t, err)
			for _, id := range []string{"a", "b", "c"} {
				require.NoError(t, q.Put(ctx, entryFor(id, 0)))
			}
			require.NoError(t, q.Close())
			seg := segments(t, dir)[0]
			good, err := os.ReadFile(seg)
			require.NoError(t, err)
			tail := tc.tail(t)
			appendBytes(t, seg, tail)

			// A read-only queue skips and reports the tail and changes nothing.
			var rd damages
			ro := open(t, dir, filedlq.WithReadOnly(), rd.option())
			assert.Equal(t, []string{"a", "b", "c"}, listIDs(t, ctx, ro))
			require.Len(t, rd.list, 1)
			assert.ErrorIs(t, rd.list[0].Err, filedlq.ErrTorn)
			assert.False(t, rd.list[0].Repaired)
			after, err := os.ReadFile(seg)
			require.NoError(t, err)
			assert.Equal(t, append(good, tail...), after, "a read-only queue changed the segment")

			// A writer truncates it away and reports where it was.
			var d damages
			q = open(t, dir, d.option())
			require.Len(t, q.Recovered(), 1)
			r := q.Recovered()[0]
			assert.Equal(t, filepath.Base(seg), r.Segment)
			assert.Equal(t, int64(len(good)), r.Offset)
			assert.Equal(t, int64(len(tail)), r.Length)
			assert.True(t, r.Repaired)
			assert.ErrorIs(t, r.Err, filedlq.ErrTorn)
			assert.Equal(t, q.Recovered(), d.list)
			after, err = os.ReadFile(seg)
			require.NoError(t, err)
			assert.Equal(t, good, after)

			// The next entry starts on a line of its own.
			require.NoError(t, q.Put(ctx, entryFor("d", 0)))
			assert.Equal(t, []string{"a", "b", "c", "d"}, listIDs(t, ctx, q))
			assert.Len(t, d.list, 1, "damage reported after the repair")
		})
	}
}

func TestTornTailInOlderSegment(t *testing.T) {
	ctx := testCtx(t)
	dir := t.TempDir()
	q, err := filedlq.Open(dir, filedlq.WithMaxSegmentSize(600))
	require.NoError(t, err)
	for _, id := range []string{"a", "b", "c"} {
		require.NoError(t, q.Put(ctx, entryFor(id, 0)))
	}
	require.NoError(t, q.Close())
	segs := segments(t, dir)
	require.Len(t, segs, 3)
	appendBytes(t, segs[0], []byte(`{"crc32c":"`))
	q = open(t, dir, filedlq.WithMaxSegmentSize(600))
	require.Len(t, q.Recovered(), 1)
	assert.Equal(t, filepath.Base(segs[0]), q.Recovered()[0].Segment)
	assert.Equal(t, []string{"a", "b", "c"}, listIDs(t, ctx, q))
}

func TestDamagedLines(t *testing.T) {
	ctx := testCtx(t)
	other := func(t *testing.T, e dlq.Entry) []byte {
		line, err := filedlq.AppendLine(nil, e)
		require.NoError(t, err)
		return line
	}
	cases := []struct {
		name   string
		damage func(t *testing.T, line []byte) []byte
		want   error
	}{
		{"flipped-byte", func(t *testing.T, line []byte) []byte {
			i := bytes.Index(line, []byte("NOT_LEADER"))
			line[i] = 'X'
			return line
		}, filedlq.ErrChecksum},
		{"valid-json-not-a-line", func(t *testing.T, line []byte) []byte { return []byte("{\"hello\":\"world\"}\n") }, filedlq.ErrBadLine},
		{"empty-line", func(t *testing.T, line []byte) []byte { return []byte("\n") }, filedlq.ErrBadLine},
		{"checksum-of-another-line", func(t *testing.T, line []byte) []byte {
			o := other(t, entryFor("zz", 0))
			copy(line[len(`{"crc32c":"`):], o[len(`{"crc32c":"`):len(`{"crc32c":"`)+8])
			return line
		}, filedlq.ErrChecksum},
		{"newer-version", func(t *testing.T, line []byte) []byte {
			// A well-formed line from a future writer: checksum right, entry version 2.
			e := bytes.Replace(line[len(`{"crc32c":"00000000","entry":`):len(line)-2], []byte(`{"v":1,`), []byte(`{"v":2,`), 1)
			return fmt.Appendf(nil, `{"crc32c":"%08x","entry":%s}`+"\n", crc32c(e), e)
		}, dlq.ErrUnknownVersion},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			q, err := filedlq.Open(dir)
			require.NoError(t, err)
			for _, id := range []string{"a", "b", "c"} {
				require.NoError(t, q.Put(ctx, entryFor(id, 0)))
			}
			require.NoError(t, q.Close())
			seg := segments(t, dir)[0]
			data, err := os.ReadFile(seg)
			require.NoError(t, err)
			lines := bytes.SplitAfter(data, []byte("\n"))
			damaged := tc.damage(t, bytes.Clone(lines[1]))
			data = slicesConcat(lines[0], damaged, lines[2])
			require.NoError(t, os.WriteFile(seg, data, 0o600))

			var d damages
			q = open(t, dir, d.option())
			assert.Empty(t, q.Recovered(), "a damaged line in the middle is not a torn tail")
			assert.Equal(t, []string{"a", "c"}, listIDs(t, ctx, q))
			require.Len(t, d.list, 1)
			assert.ErrorIs(t, d.list[0].Err, tc.want)
			assert.Equal(t, int64(len(lines[0])), d.list[0].Offset)
			assert.Equal(t, int64(len(damaged)), d.list[0].Length)
			_, err = q.Get(ctx, "b")
			assert.ErrorIs(t, err, dlq.ErrNotFound)

			// Deleting another entry keeps the damaged line as it was.
			require.NoError(t, q.Delete(ctx, "c"))
			after, err := os.ReadFile(seg)
			require.NoError(t, err)
			assert.Equal(t, slicesConcat(lines[0], damaged), after)
			// Reported by List and by Get, and by the Delete that kept it when the line's frame
			// is damaged; a line whose checksum holds but whose entry does not decode is kept
			// by a Delete of another ID without decoding it.
			want := uint64(3)
			if tc.want == dlq.ErrUnknownVersion {
				want = 2
			}
			assert.Equal(t, want, q.Stats().Damaged)
		})
	}
}

func slicesConcat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func crc32c(b []byte) uint32 { return crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)) }

// The conformance suite's crash (Queue.Crash) must leave undone what Close does: under
// SyncInterval, Close fsyncs what was written and a crash does not. The entry is read back all the
// same, from the page cache, as after a kill.
func TestCrashDoesNotSync(t *testing.T) {
	ctx := testCtx(t)
	dir := t.TempDir()
	var syncs atomic.Int32
	opts := []filedlq.Option{
		filedlq.WithSync(filedlq.SyncInterval(time.Hour)),
		filedlq.WithSyncFunc(func(f *os.File) error { syncs.Add(1); return f.Sync() }),
	}
	q, err := filedlq.Open(dir, opts...)
	require.NoError(t, err)
	require.NoError(t, q.Put(ctx, entryFor("before-crash", 0)))
	q.Crash()
	assert.Zero(t, syncs.Load(), "the crash fsynced the segment")
	assert.ErrorIs(t, q.Put(ctx, entryFor("after-crash", 0)), dlq.ErrClosed)

	// The lock went with the crash; Close, where the crash was, fsyncs.
	q, err = filedlq.Open(dir, opts...)
	require.NoError(t, err)
	assert.Equal(t, []string{"before-crash"}, listIDs(t, ctx, q))
	require.NoError(t, q.Put(ctx, entryFor("before-close", 0)))
	require.NoError(t, q.Close())
	assert.Equal(t, int32(1), syncs.Load(), "Close did not fsync")
}
