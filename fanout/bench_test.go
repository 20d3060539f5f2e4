package fanout_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/fanout"
	"github.com/fanbridge/fanbridge/sink"
)

// countingSink is the cheapest possible in-memory sink: it counts.
func countingSink(n *atomic.Int64) sink.Sink {
	return sink.Func(func(context.Context, *fanbridge.Event) error {
		n.Add(1)
		return nil
	})
}

func threeSinks(counts *[3]atomic.Int64) fanout.Config {
	return fanout.Config{
		Sinks: []fanout.SinkConfig{
			{Name: "kafka", Sink: countingSink(&counts[0])},
			{Name: "grpc-a", Sink: countingSink(&counts[1])},
			{Name: "grpc-b", Sink: countingSink(&counts[2])},
		},
		Routes: []fanout.Route{
			{Name: "presence", Filter: typeIs("v2.users.{id}.presence"), Sinks: []string{"kafka", "grpc-a"}},
			{Name: "all", Filter: fanout.All, Sinks: []string{"grpc-a", "grpc-b"}},
		},
	}
}

// cpuTime returns the CPU time the process has used. The benchmarks report CPU per event next to
// wall time because the machine they run on is shared: wall time there measures the neighbours.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// dispatchRetrying is what a sender does with a 503 + Retry-After, without the wait: it offers
// the event again until a queue has room.
func dispatchRetrying(ctx context.Context, d *fanout.Dispatcher, e *fanbridge.Event) error {
	for {
		err := d.Dispatch(ctx, e)
		if !errors.Is(err, fanbridge.ErrOverloaded) {
			return err
		}
		runtime.Gosched()
	}
}

// BenchmarkDispatch3Sinks measures one event to three fast in-memory sinks. "unique-ids" builds a
// new ID per event (one allocation of its own, for strconv) so that deduplication does its full
// work; "dedup-off" sends one event again and again.
func BenchmarkDispatch3Sinks(b *testing.B) {
	for _, mode := range []fanout.Mode{fanout.Sync, fanout.Async} {
		for _, dedup := range []bool{true, false} {
			name := mode.String() + "/unique-ids"
			opts := []fanout.Option{fanout.WithMode(mode)}
			if !dedup {
				name = mode.String() + "/dedup-off"
				opts = append(opts, fanout.WithDedup(nil))
			}
			b.Run(name, func(b *testing.B) {
				var counts [3]atomic.Int64
				d, err := fanout.New(threeSinks(&counts), opts...)
				if err != nil {
					b.Fatal(err)
				}
				ctx := context.Background()
				e := event("", "v2.users.{id}.presence")
				b.ReportAllocs()
				b.ResetTimer()
				cpu := cpuTime()
				for i := range b.N {
					ev := e
					if dedup {
						c := *e
						c.ID = strconv.Itoa(i)
						ev = &c
					}
					if err := dispatchRetrying(ctx, d, ev); err != nil {
						b.Fatal(err)
					}
				}
				if err := d.Close(ctx); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
				for i := range counts {
					if got := counts[i].Load(); got != int64(b.N) {
						b.Fatalf("sink %d got %d of %d", i, got, b.N)
					}
				}
			})
		}
	}
}

// BenchmarkDispatch3SinksParallel is the same under concurrent dispatchers, as an HTTP intake
// would call it.
func BenchmarkDispatch3SinksParallel(b *testing.B) {
	for _, mode := range []fanout.Mode{fanout.Sync, fanout.Async} {
		b.Run(mode.String(), func(b *testing.B) {
			var counts [3]atomic.Int64
			d, err := fanout.New(threeSinks(&counts), fanout.WithMode(mode))
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			var seq atomic.Int64
			b.ReportAllocs()
			b.ResetTimer()
			cpu := cpuTime()
			b.RunParallel(func(pb *testing.PB) {
				e := event("", "v2.users.{id}.presence")
				for pb.Next() {
					c := *e
					c.ID = fmt.Sprint(seq.Add(1))
					if err := dispatchRetrying(ctx, d, &c); err != nil {
						b.Error(err)
						return
					}
				}
			})
			if err := d.Close(ctx); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
		})
	}
}
