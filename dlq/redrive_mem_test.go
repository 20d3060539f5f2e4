package dlq_test

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/dlq"
	"github.com/fanbridge/fanbridge/sink"
)

// seqReader lists n entries with distinct IDs, decoding each afresh on every List as a driver
// does, so that what stays on the heap is what Redrive keeps. It records the live heap after the
// last entry of each List.
type seqReader struct {
	n    int
	peak uint64
}

func seqID(i int) string { return fmt.Sprintf("01J%023d", i) }

func (g *seqReader) List(ctx context.Context, fn func(dlq.Entry) error) error {
	for i := range g.n {
		e := dlq.Entry{
			ID:    seqID(i),
			Sink:  strings.Clone("analytics-kafka"),
			Event: fanbridge.Event{ID: fmt.Sprintf("58fb5dac-f077-4eec-a25f-%012d", i)},
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	g.peak = max(g.peak, ms.HeapAlloc)
	return ctx.Err()
}

func (*seqReader) Get(context.Context, string) (dlq.Entry, error) {
	return dlq.Entry{}, dlq.ErrNotFound
}
func (*seqReader) Delete(context.Context, ...string) error { return nil }

// redriveBytesPerEntry redrives n listed entries (none has a sink, so nothing is sent or removed)
// and returns the heap Redrive held at its largest, per entry in the queue.
func redriveBytesPerEntry(tb testing.TB, n int, filter func(dlq.Entry) bool) float64 {
	tb.Helper()
	var base runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&base)
	r := &seqReader{n: n}
	_, err := dlq.Redrive(context.Background(), r, map[string]sink.Sink{}, filter)
	require.NoError(tb, err)
	if r.peak < base.HeapAlloc {
		return 0
	}
	return float64(r.peak-base.HeapAlloc) / float64(n)
}

// TestRedriveMemoryPerEntry bounds what Redrive keeps for each entry of the queue, which it reads
// whole to find shared IDs: a targeted redrive of a large queue must not need the queue's size
// in memory. A few tens of bytes per entry are expected; the ID, sink and event ID strings would
// take hundreds.
func TestRedriveMemoryPerEntry(t *testing.T) {
	const n = 50_000
	one := seqID(n / 2)
	for _, tc := range []struct {
		name   string
		filter func(dlq.Entry) bool
	}{
		{"every-entry", nil},
		{"one-id", func(e dlq.Entry) bool { return e.ID == one }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			per := redriveBytesPerEntry(t, n, tc.filter)
			t.Logf("%.1f B/entry", per)
			assert.Less(t, per, 80.0, "bytes held per queue entry")
		})
	}
}

// BenchmarkRedriveMemory reports the heap Redrive holds per queue entry (B/entry) over a queue of
// 500,000 entries, for a redrive of every entry and for one of a single ID.
func BenchmarkRedriveMemory(b *testing.B) {
	const n = 500_000
	one := seqID(n / 2)
	for _, bc := range []struct {
		name   string
		filter func(dlq.Entry) bool
	}{
		{"every-entry", nil},
		{"one-id", func(e dlq.Entry) bool { return e.ID == one }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			var per float64
			for b.Loop() {
				per = redriveBytesPerEntry(b, n, bc.filter)
			}
			b.ReportMetric(per, "B/entry")
		})
	}
}
