package filedlq_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/dlq"
	"github.com/fanbridge/fanbridge/dlq/dlqtest"
	"github.com/fanbridge/fanbridge/dlq/filedlq"
	"github.com/fanbridge/fanbridge/retry"
)

// benchWriters is how many goroutines put at once in the parallel benchmarks: an intake under
// load has many requests dead-lettering together.
const benchWriters = 16

func benchEntry(b *testing.B) dlq.Entry {
	ev := dlqtest.SampleEvents()[0]
	return dlq.NewEntry(&ev, "kafka-conversations", "ended", retry.Permanent(os.ErrDeadlineExceeded), time.Now(), time.Now())
}

// putter is anything the benchmarks can put into.
type putter interface {
	Put(ctx context.Context, e dlq.Entry) error
}

// runPuts puts n entries from the given number of goroutines (1: sequential) and returns the time.
func runPuts(b *testing.B, q putter, e dlq.Entry, n, writers int) time.Duration {
	ctx := context.Background()
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range writers {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				if err := q.Put(ctx, e); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	return time.Since(start)
}

func BenchmarkPut(b *testing.B) {
	policies := []struct {
		name string
		p    filedlq.SyncPolicy
	}{
		{"always", filedlq.SyncAlways()},
		{"interval", filedlq.SyncInterval(100 * time.Millisecond)},
		{"never", filedlq.SyncNever()},
	}
	for _, pol := range policies {
		for _, writers := range []int{1, benchWriters} {
			name := pol.name + "/sequential"
			if writers > 1 {
				name = pol.name + "/parallel"
			}
			b.Run(name, func(b *testing.B) {
				q, err := filedlq.Open(b.TempDir(), filedlq.WithSync(pol.p))
				require.NoError(b, err)
				defer q.Close()
				e := benchEntry(b)
				b.ReportAllocs()
				b.ResetTimer()
				runPuts(b, q, e, b.N, writers)
				b.StopTimer()
				b.ReportMetric(float64(q.Stats().Syncs)/float64(b.N), "fsyncs/op")
			})
		}
	}
}

// BenchmarkGroupCommit puts with SyncAlways from many goroutines, and then the same number of
// entries from a queue whose every Put fsyncs on its own, and reports how many times faster
// group commit is.
func BenchmarkGroupCommit(b *testing.B) {
	e := benchEntry(b)
	grouped, err := filedlq.Open(b.TempDir())
	require.NoError(b, err)
	defer grouped.Close()
	alone, err := filedlq.Open(b.TempDir(), filedlq.WithoutGroupCommit())
	require.NoError(b, err)
	defer alone.Close()
	b.ReportAllocs()
	b.ResetTimer()
	tg := runPuts(b, grouped, e, b.N, benchWriters)
	b.StopTimer()
	ta := runPuts(b, alone, e, b.N, benchWriters)
	b.ReportMetric(float64(grouped.Stats().Syncs)/float64(b.N), "fsyncs/op")
	b.ReportMetric(float64(ta)/float64(tg), "x-faster")
}

// naiveQueue is the dead-letter file of tutorials: encoding/json, then write and fsync under a
// mutex, one fsync per entry.
type naiveQueue struct {
	mu sync.Mutex
	f  *os.File
}

type naiveEntry struct {
	ID, Sink, Route, Class, Error string
	Attempts                      int
	FirstAttempt, LastAttempt     time.Time
	Condition, TraceID            string
	Event                         fanbridge.Event
}

func (q *naiveQueue) Put(_ context.Context, e dlq.Entry) error {
	b, err := json.Marshal(naiveEntry{e.ID, e.Sink, e.Route, string(e.Class), e.Error, e.Attempts,
		e.FirstAttempt, e.LastAttempt, string(e.Condition), e.TraceID, e.Event})
	if err != nil {
		return err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if _, err := q.f.Write(append(b, '\n')); err != nil {
		return err
	}
	return q.f.Sync()
}

// BenchmarkPutVsNaive compares a SyncAlways queue with the naive dead-letter file, both fsyncing
// every acknowledged entry, sequentially and with many writers.
func BenchmarkPutVsNaive(b *testing.B) {
	for _, writers := range []int{1, benchWriters} {
		name := "sequential"
		if writers > 1 {
			name = "parallel"
		}
		b.Run(name, func(b *testing.B) {
			e := benchEntry(b)
			q, err := filedlq.Open(b.TempDir())
			require.NoError(b, err)
			defer q.Close()
			f, err := os.OpenFile(filepath.Join(b.TempDir(), "naive.jsonl"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
			require.NoError(b, err)
			defer f.Close()
			naive := &naiveQueue{f: f}
			b.ReportAllocs()
			b.ResetTimer()
			tq := runPuts(b, q, e, b.N, writers)
			b.StopTimer()
			tn := runPuts(b, naive, e, b.N, writers)
			b.ReportMetric(float64(tn)/float64(tq), "x-faster")
		})
	}
}

// BenchmarkAppendLine measures encoding alone, against encoding/json on the same entry.
func BenchmarkAppendLine(b *testing.B) {
	e := benchEntry(b)
	ne := naiveEntry{e.ID, e.Sink, e.Route, string(e.Class), e.Error, e.Attempts,
		e.FirstAttempt, e.LastAttempt, string(e.Condition), e.TraceID, e.Event}
	buf := make([]byte, 0, 16<<10)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for b.Loop() {
		var err error
		buf, err = filedlq.AppendLine(buf[:0], e)
		if err != nil {
			b.Fatal(err)
		}
	}
	ours := time.Since(start)
	b.StopTimer()
	start = time.Now()
	for range b.N {
		if _, err := json.Marshal(ne); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(time.Since(start))/float64(ours), "x-faster")
}

// BenchmarkList reads back 1000 entries per op.
func BenchmarkList(b *testing.B) {
	ctx := context.Background()
	q, err := filedlq.Open(b.TempDir(), filedlq.WithSync(filedlq.SyncNever()))
	require.NoError(b, err)
	defer q.Close()
	e := benchEntry(b)
	for range 1000 {
		require.NoError(b, q.Put(ctx, e))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		n := 0
		require.NoError(b, q.List(ctx, func(dlq.Entry) error { n++; return nil }))
		if n != 1000 {
			b.Fatal(n)
		}
	}
}

// BenchmarkListDamaged reads segments whose damage resync has to search. "merged" lists 1000
// entries whose newlines are all damaged, so that they form a single line, and reports how many
// times slower that is than listing them intact, in the same run. "nested" reads a line of frame
// starts nested in one another, each followed by a space so that every one is checked: the worst
// case for resync. Its time per byte stays flat as the line grows, since each check costs the
// same however far apart a frame's ends are.
func BenchmarkListDamaged(b *testing.B) {
	ctx := context.Background()
	write := func(b *testing.B, data []byte) *filedlq.Queue {
		dir := b.TempDir()
		require.NoError(b, os.WriteFile(filepath.Join(dir, "dlq-00000000000000000001.jsonl"), data, 0o600))
		q, err := filedlq.Open(dir, filedlq.WithReadOnly())
		require.NoError(b, err)
		b.Cleanup(func() { q.Close() })
		return q
	}
	list := func(b *testing.B, q *filedlq.Queue, want int) {
		n := 0
		require.NoError(b, q.List(ctx, func(dlq.Entry) error { n++; return nil }))
		if n != want {
			b.Fatal(n)
		}
	}
	b.Run("merged", func(b *testing.B) {
		line, err := filedlq.AppendLine(nil, mustPrepare(b, benchEntry(b)))
		require.NoError(b, err)
		intact := bytes.Repeat(line, 1000)
		merged := bytes.Clone(intact)
		for i := len(line) - 1; i < len(merged)-1; i += len(line) {
			merged[i] = ' '
		}
		qi, qm := write(b, intact), write(b, merged)
		b.SetBytes(int64(len(merged)))
		b.ReportAllocs()
		var tm, ti time.Duration
		for b.Loop() {
			start := time.Now()
			list(b, qm, 1000)
			tm += time.Since(start)
			start = time.Now()
			list(b, qi, 1000)
			ti += time.Since(start)
		}
		b.ReportMetric(float64(tm)/float64(ti), "x-intact")
	})
	for _, size := range []int{256 << 10, 1 << 20, 4 << 20} {
		b.Run(fmt.Sprintf("nested/%dKiB", size>>10), func(b *testing.B) {
			open, end := []byte(`{"crc32c":"00000000","entry":{"x":[`), []byte(` ]}} `)
			levels := size / (len(open) + len(end))
			data := slices.Concat(bytes.Repeat(open, levels), bytes.Repeat(end, levels), []byte("\n"))
			q := write(b, data)
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				list(b, q, 0)
			}
		})
	}
}

func mustPrepare(b *testing.B, e dlq.Entry) dlq.Entry {
	e, err := dlq.Prepare(e)
	require.NoError(b, err)
	return e
}
