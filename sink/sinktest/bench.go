package sinktest

import (
	"context"
	"testing"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/sink"
)

// RunBenchmarks measures the sink h describes, as sub-benchmarks of b: Send from one goroutine,
// Send from b.RunParallel's goroutines (raise them with -cpu or b.SetParallelism before calling),
// and SendBatch of 64 events when Features.Batch is on. Each reports allocations and events/s.
// Every Send must succeed; the destination is read back by none of them.
func RunBenchmarks(b *testing.B, h Harness) {
	b.Helper()
	if h.Open == nil {
		b.Fatal("sinktest: Harness.Open is nil")
	}
	e := fixtures(runPrefix())[0]
	b.Run("Send", func(b *testing.B) {
		s := openForBenchmark(b, h)
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			if err := s.Send(ctx, e); err != nil {
				b.Fatalf("sinktest: Send = %s", describe(err))
			}
		}
		reportRate(b, b.N)
	})
	b.Run("SendParallel", func(b *testing.B) {
		s := openForBenchmark(b, h)
		ctx := context.Background()
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := s.Send(ctx, e); err != nil {
					b.Errorf("sinktest: Send = %s", describe(err))
					return
				}
			}
		})
		reportRate(b, b.N)
	})
	if !h.Features.Batch {
		return
	}
	b.Run("SendBatch64", func(b *testing.B) {
		s := openForBenchmark(b, h)
		bt, ok := s.(sink.Batcher)
		if !ok {
			b.Fatalf("sinktest: Features.Batch is on but %T does not implement sink.Batcher", s)
		}
		batch := make([]*fanbridge.Event, 64)
		for i := range batch {
			batch[i] = e
		}
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			if err := bt.SendBatch(ctx, batch); err != nil {
				b.Fatalf("sinktest: SendBatch = %s", describe(err))
			}
		}
		reportRate(b, b.N*len(batch))
	})
}

func openForBenchmark(b *testing.B, h Harness) sink.Sink {
	b.Helper()
	in := h.Open(b)
	if in.Sink == nil {
		b.Fatal("sinktest: Harness.Open returned an Instance without a Sink")
	}
	b.Cleanup(func() { _ = sink.Close(in.Sink) })
	return in.Sink
}

func reportRate(b *testing.B, events int) {
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(float64(events)/s, "events/s")
	}
}
