package grpcsink_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/metadata"

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
	s, err := grpcsink.NewFromConn(conn, grpcsink.WithCallTimeout(benchCallTimeout))
	require.NoError(b, err)
	e := sampleEvent(b)
	req := &fanbridgev1.DeliverRequest{Event: grpcsink.ToProto(e)}
	// Connect before timing.
	_, err = client.Deliver(context.Background(), req)
	require.NoError(b, err)
	return client, s, e, req
}

// The benchmarked sink's call timeout, and the deadline each benchmarked call runs under as a
// dispatcher's attempt would: shorter than the call timeout, so that the sink adds no timer of its
// own. Both are far longer than a call takes, because a shared, overloaded machine can stall a
// loopback call for seconds, which would fail the benchmark rather than measure it.
const (
	benchCallTimeout = time.Minute
	budget           = 30 * time.Second
)

// callers returns the ways of delivering the sample that the benchmarks compare: a bare
// generated-client call with a prepared request, the same bare call carrying the metadata the sink
// sends (event id, traceparent, tracestate), and grpcsink's Send. With deadline set, each call runs
// under its own budget; otherwise under context.Background, where only the sink adds a deadline
// (its call timeout).
func callers(client fanbridgev1.EventSinkClient, s *grpcsink.Sink, e *fanbridge.Event, req *fanbridgev1.DeliverRequest, deadline bool) (bare, bareWithMetadata, viaSink func() error) {
	withDeadline := func(call func(ctx context.Context) error) func() error {
		if !deadline {
			return func() error { return call(context.Background()) }
		}
		return func() error {
			ctx, cancel := context.WithTimeout(context.Background(), budget)
			defer cancel()
			return call(ctx)
		}
	}
	md := []string{
		grpcsink.MetadataEventID, e.ID,
		fanbridge.MetaTraceparent, e.Meta(fanbridge.MetaTraceparent),
		fanbridge.MetaTracestate, e.Meta(fanbridge.MetaTracestate),
	}
	bare = withDeadline(func(ctx context.Context) error { _, err := client.Deliver(ctx, req); return err })
	bareWithMetadata = withDeadline(func(ctx context.Context) error {
		_, err := client.Deliver(metadata.AppendToOutgoingContext(ctx, md...), req)
		return err
	})
	viaSink = withDeadline(func(ctx context.Context) error { return s.Send(ctx, e) })
	return bare, bareWithMetadata, viaSink
}

// BenchmarkDeliver measures one delivery of the 1.2 KB Genesys sample (client and in-process
// server together, each call under a deadline) with a bare generated client and with grpcsink,
// each on its own, for ns/op, allocs/op and CPU per call.
func BenchmarkDeliver(b *testing.B) {
	client, s, e, req := benchSetup(b)
	bare, _, viaSink := callers(client, s, e, req, true)
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
// so that all see the same machine load, and reports grpcsink's cost relative to the bare call:
// "x-wall" and "x-cpu" are sink/bare ratios of wall time and of CPU time (1.00 is no overhead), and
// "x-cpu-vs-md" compares with a bare call that carries the same three metadata headers, which
// isolates the cost of the sink's own code from the cost of the headers on the wire.
//
// With "deadline" each call of every kind runs under its own deadline, as a dispatcher calls
// a sink. With "background" the caller sets no deadline, so the sink adds its call timeout (a
// timer, and a grpc-timeout header the server arms a timer for) that the bare calls go without.
func BenchmarkOverhead(b *testing.B) {
	client, s, e, req := benchSetup(b)
	for _, mode := range []struct {
		name    string
		workers int
	}{{"sequential", 1}, {"parallel", benchParallelism}} {
		for _, deadline := range []bool{true, false} {
			name := mode.name + "/background"
			if deadline {
				name = mode.name + "/deadline"
			}
			bare, bareMD, viaSink := callers(client, s, e, req, deadline)
			b.Run(name, func(b *testing.B) {
				const round = 64 // calls per worker and per kind in one round
				var wall, cpu [3]time.Duration
				calls := 0
				for calls < b.N {
					for kind, call := range []func() error{bare, bareMD, viaSink} {
						w0, c0 := time.Now(), cpuTime()
						runWorkers(b, mode.workers, round, call)
						wall[kind] += time.Since(w0)
						cpu[kind] += cpuTime() - c0
					}
					calls += mode.workers * round
				}
				n := float64(calls)
				b.ReportMetric(float64(wall[0].Nanoseconds())/n, "bare-ns/op")
				b.ReportMetric(float64(wall[2].Nanoseconds())/n, "sink-ns/op")
				b.ReportMetric(float64(cpu[0].Nanoseconds())/n/1e3, "bare-cpu-us/op")
				b.ReportMetric(float64(cpu[2].Nanoseconds())/n/1e3, "sink-cpu-us/op")
				b.ReportMetric(float64(wall[2])/float64(wall[0]), "x-wall")
				if cpu[0] > 0 && cpu[1] > 0 {
					b.ReportMetric(float64(cpu[2])/float64(cpu[0]), "x-cpu")
					b.ReportMetric(float64(cpu[2])/float64(cpu[1]), "x-cpu-vs-md")
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
