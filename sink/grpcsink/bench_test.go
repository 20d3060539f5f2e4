package grpcsink_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge"
	fanbridgev1 "github.com/fanbridge/fanbridge/proto/fanbridge/v1"
	"github.com/fanbridge/fanbridge/sink"
	"github.com/fanbridge/fanbridge/sink/grpcsink"
)

// benchParallelism is how many goroutines the parallel benchmarks call from: enough to keep two
// cores busy through the network round trips.
const benchParallelism = 8

// benchSetup serves a consumer that accepts everything, and returns a bare generated client and a
// grpcsink.Sink over the same loopback connection, the Genesys sample event and the request a bare
// client would send for it.
func benchSetup(b *testing.B) (fanbridgev1.EventSinkClient, *grpcsink.Sink, *fanbridge.Event, *fanbridgev1.DeliverRequest) {
	b.Helper()
	addr := startServer(b, sink.Func(func(context.Context, *fanbridge.Event) error { return nil }))
	conn := plainConn(b, addr)
	client := fanbridgev1.NewEventSinkClient(conn)
	s, err := grpcsink.NewFromConn(conn)
	require.NoError(b, err)
	e := sampleEvent(b)
	req := &fanbridgev1.DeliverRequest{Event: grpcsink.ToProto(e)}
	// Connect before timing.
	_, err = client.Deliver(context.Background(), req)
	require.NoError(b, err)
	return client, s, e, req
}

// BenchmarkDeliver measures one delivery of the 1.2 KB Genesys sample (client and in-process
// server together) with a bare generated client and with grpcsink, each on its own, for ns/op,
// allocs/op and CPU per call.
func BenchmarkDeliver(b *testing.B) {
	client, s, e, req := benchSetup(b)
	ctx := context.Background()
	bare := func() error { _, err := client.Deliver(ctx, req); return err }
	viaSink := func() error { return s.Send(ctx, e) }
	for _, impl := range []struct {
		name string
		call func() error
	}{{"bare", bare}, {"grpcsink", viaSink}} {
		b.Run(impl.name+"/sequential", func(b *testing.B) {
			b.ReportAllocs()
			cpu0 := cpuTime()
			for b.Loop() {
				if err := impl.call(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N)/1e3, "cpu-us/op")
		})
		b.Run(impl.name+"/parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.SetParallelism(benchParallelism)
			cpu0 := cpuTime()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := impl.call(); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N)/1e3, "cpu-us/op")
		})
	}
}

// BenchmarkOverhead interleaves bare generated-client calls and grpcsink Sends in short rounds,
// so that both see the same machine load, and reports grpcsink's cost relative to the bare call:
// "x-wall" and "x-cpu" are sink/bare ratios of wall time and of CPU time (1.00 is no overhead).
//
// With "deadline" both calls run under the same caller context with a deadline, as a dispatcher
// calls a sink; with "background" the caller has no deadline, so the sink adds its call timeout
// (a timer, and a grpc-timeout the server arms a timer for) that the bare call goes without.
func BenchmarkOverhead(b *testing.B) {
	client, s, e, req := benchSetup(b)
	for _, mode := range []struct {
		name    string
		workers int
	}{{"sequential", 1}, {"parallel", benchParallelism}} {
		for _, withDeadline := range []bool{true, false} {
			name := mode.name + "/background"
			ctx := context.Background()
			if withDeadline {
				name = mode.name + "/deadline"
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, time.Hour)
				defer cancel()
			}
			bare := func() error { _, err := client.Deliver(ctx, req); return err }
			viaSink := func() error { return s.Send(ctx, e) }
			b.Run(name, func(b *testing.B) {
				const round = 64 // calls per worker and per side in one round
				var wall, cpu [2]time.Duration
				calls := 0
				for calls < b.N {
					for side, call := range []func() error{bare, viaSink} {
						w0, c0 := time.Now(), cpuTime()
						runWorkers(b, mode.workers, round, call)
						wall[side] += time.Since(w0)
						cpu[side] += cpuTime() - c0
					}
					calls += mode.workers * round
				}
				n := float64(calls)
				b.ReportMetric(float64(wall[0].Nanoseconds())/n, "bare-ns/op")
				b.ReportMetric(float64(wall[1].Nanoseconds())/n, "sink-ns/op")
				b.ReportMetric(float64(cpu[0].Nanoseconds())/n/1e3, "bare-cpu-us/op")
				b.ReportMetric(float64(cpu[1].Nanoseconds())/n/1e3, "sink-cpu-us/op")
				b.ReportMetric(float64(wall[1])/float64(wall[0]), "x-wall")
				if cpu[0] > 0 {
					b.ReportMetric(float64(cpu[1])/float64(cpu[0]), "x-cpu")
				}
			})
		}
	}
}

// runWorkers makes calls calls from each of workers goroutines and waits for them.
func runWorkers(b *testing.B, workers, calls int, call func() error) {
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range calls {
				if err := call(); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}
