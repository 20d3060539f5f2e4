package grpcsink_test

import (
	"cmp"
	"context"
	"errors"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/internal/cputime"
	fanbridgev1 "github.com/fanbridge/fanbridge/proto/fanbridge/v1"
	"github.com/fanbridge/fanbridge/sink"
	"github.com/fanbridge/fanbridge/sink/grpcsink"
)

// benchParallelism is how many goroutines the parallel benchmarks call from: enough to keep two
// cores busy through the network round trips.
const benchParallelism = 8

// The benchmarked sink's call timeout, and the deadline each call runs under in the "deadline"
// variants, as a dispatcher's attempt would: shorter than the call timeout, so that the sink adds
// no timer of its own. Both are far longer than a call takes, because a shared, overloaded
// machine can stall a loopback call for seconds, which would fail the benchmark rather than
// measure it.
const (
	benchCallTimeout = time.Minute
	budget           = 30 * time.Second
)

// benchSetup serves a consumer that accepts everything, and returns a loopback connection to
// it, a bare generated client and a grpcsink.Sink over that connection, and the Genesys sample
// event.
func benchSetup(b *testing.B) (*grpc.ClientConn, fanbridgev1.EventSinkClient, *grpcsink.Sink, *fanbridge.Event) {
	b.Helper()
	addr := startServer(b, sink.Func(func(context.Context, *fanbridge.Event) error { return nil }))
	conn := plainConn(b, addr)
	client := fanbridgev1.NewEventSinkClient(conn)
	s, err := grpcsink.NewFromConn(conn, grpcsink.WithCallTimeout(benchCallTimeout))
	require.NoError(b, err)
	e := sampleEvent(b)
	// Connect before timing.
	require.NoError(b, bareDeliver(context.Background(), client, e))
	return conn, client, s, e
}

// bareDeliver is what a user writes to deliver e without this package, and what grpcsink's cost
// is measured against: it builds the request from the event, puts the event id and the trace
// context on the call as metadata (so that the consumer receives exactly what a Sink sends), and
// calls the generated client. It does none of the rest of Send's work: no check that the event
// can be encoded, no deadline of its own, no classification of the error, no Close that waits
// for calls in flight.
func bareDeliver(ctx context.Context, client fanbridgev1.EventSinkClient, e *fanbridge.Event) error {
	req := &fanbridgev1.DeliverRequest{Event: &fanbridgev1.Event{
		Id:       e.ID,
		Type:     e.Type,
		Topic:    e.Topic,
		Source:   e.Source,
		Time:     timestamppb.New(e.Time),
		Data:     e.Data,
		Metadata: e.Metadata,
		Raw:      e.Raw,
	}}
	ctx = metadata.AppendToOutgoingContext(ctx,
		grpcsink.MetadataEventID, e.ID,
		fanbridge.MetaTraceparent, e.Metadata[fanbridge.MetaTraceparent],
		fanbridge.MetaTracestate, e.Metadata[fanbridge.MetaTracestate],
	)
	_, err := client.Deliver(ctx, req)
	return err
}

// underDeadline runs deliver under a deadline of its own when deadline is set, as a dispatcher
// calls a sink, and under context.Background otherwise.
func underDeadline(deadline bool, deliver func(ctx context.Context) error) func() error {
	if !deadline {
		return func() error { return deliver(context.Background()) }
	}
	return func() error {
		ctx, cancel := context.WithTimeout(context.Background(), budget)
		defer cancel()
		return deliver(ctx)
	}
}

// BenchmarkDeliver measures one delivery of the 1.2 KB Genesys sample (client and in-process
// server together) by bareDeliver and by grpcsink, each on its own, for ns/op, allocs/op and CPU
// per call, under a caller's deadline or without one. It is the benchmark to profile;
// BenchmarkOverhead is the one to compare with.
func BenchmarkDeliver(b *testing.B) {
	_, client, s, e := benchSetup(b)
	for _, impl := range []struct {
		name    string
		deliver func(ctx context.Context) error
	}{
		{"bare", func(ctx context.Context) error { return bareDeliver(ctx, client, e) }},
		{"grpcsink", func(ctx context.Context) error { return s.Send(ctx, e) }},
	} {
		for _, deadline := range []bool{true, false} {
			name := impl.name + "/background"
			if deadline {
				name = impl.name + "/deadline"
			}
			call := underDeadline(deadline, impl.deliver)
			b.Run(name+"/sequential", func(b *testing.B) {
				b.ReportAllocs()
				cpu0 := cputime.OrZero()
				for b.Loop() {
					if err := call(); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(cputime.OrZero()-cpu0)/float64(b.N)/1e3, "cpu-us/op")
			})
			b.Run(name+"/parallel", func(b *testing.B) {
				b.ReportAllocs()
				b.SetParallelism(benchParallelism)
				cpu0 := cputime.OrZero()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if err := call(); err != nil {
							b.Error(err)
							return
						}
					}
				})
				b.ReportMetric(float64(cputime.OrZero()-cpu0)/float64(b.N)/1e3, "cpu-us/op")
			})
		}
	}
}

// overheadBatch is how many calls one batch makes, spread over the workers. Batches are short
// (about a millisecond), so that a burst of load from other processes lands on both sides alike.
const overheadBatch = 32

// BenchmarkOverhead compares grpcsink's Send with bareDeliver, the same delivery written by hand,
// on one loopback connection to an in-process server that accepts everything: the least
// favourable case for a sink, since there is no network latency or consumer work to hide its
// cost behind. The two sides run in alternating batches inside each benchmark (see interleave),
// so that both see the same machine load, which on a shared machine moves more than the
// difference being measured.
//
// Reported: ns/op, allocs/op and B/op of grpcsink.Send; bare-ns/op, bare-allocs/op and bare-B/op
// of bareDeliver; overhead-% = how much longer a Send takes than the bare call in wall time (what
// a caller waits: the round trip, the server's work included), the median over the run;
// cpu-overhead-% = the same from the CPU time of the whole process (client and server), summed
// over the run, which is noisier. ns/op is the median batch's time per call. Allocations (of the
// whole process, the server's included) are counted in a separate sequential pass.
//
// The variants differ in how a call is bounded in time, and each compares like with like:
//
//   - deadline: every call of both sides runs under a deadline of its caller, as a dispatcher
//     calls a sink; the Sink adds nothing of its own.
//   - background: the caller sets no deadline. The Sink bounds the call with its call timeout;
//     the bare call is bounded the same way, with context.WithTimeout, as it must be for a
//     stalled consumer not to hang it for ever (gRPC has no default deadline).
//   - background-no-timeout: the caller sets no deadline, the Sink is built with
//     WithCallTimeout(0), and neither side bounds the call.
//   - background-vs-unbounded: the Sink bounds the call with its call timeout and the bare call
//     is not bounded at all. This is not like with like: it adds to the Sink's own cost what
//     grpc-go spends on any deadline (the grpc-timeout header, a timer on the client and two on
//     the server), and is reported so that this price is known.
func BenchmarkOverhead(b *testing.B) {
	conn, _, _, e := benchSetup(b)
	for _, mode := range []struct {
		name    string
		workers int
	}{{"sequential", 1}, {"parallel", benchParallelism}} {
		for _, v := range overheadVariants(b, conn, e) {
			b.Run(mode.name+"/"+v.name, func(b *testing.B) {
				b.ReportAllocs()
				r := interleave(b, mode.workers, v.bare, v.viaSink)
				b.ReportMetric(r.nsPerCall[1], "ns/op")
				b.ReportMetric(r.nsPerCall[0], "bare-ns/op")
				b.ReportMetric(r.overhead, "overhead-%")
				b.ReportMetric(r.cpuOverhead, "cpu-overhead-%")
				reportAllocs(b, v.bare, v.viaSink)
			})
		}
	}
}

// overheadVariant is one pair of ways to deliver the sample that BenchmarkOverhead compares.
type overheadVariant struct {
	name          string
	bare, viaSink func() error
}

// overheadVariants returns the variants BenchmarkOverhead documents, over conn.
func overheadVariants(b *testing.B, conn grpc.ClientConnInterface, e *fanbridge.Event) []overheadVariant {
	client := fanbridgev1.NewEventSinkClient(conn)
	bounded, err := grpcsink.NewFromConn(conn, grpcsink.WithCallTimeout(benchCallTimeout))
	require.NoError(b, err)
	unbounded, err := grpcsink.NewFromConn(conn, grpcsink.WithCallTimeout(0))
	require.NoError(b, err)
	bare := func(ctx context.Context) error { return bareDeliver(ctx, client, e) }
	bareBounded := func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, benchCallTimeout)
		defer cancel()
		return bareDeliver(ctx, client, e)
	}
	send := func(s *grpcsink.Sink) func(ctx context.Context) error {
		return func(ctx context.Context) error { return s.Send(ctx, e) }
	}
	return []overheadVariant{
		{"deadline", underDeadline(true, bare), underDeadline(true, send(bounded))},
		{"background", underDeadline(false, bareBounded), underDeadline(false, send(bounded))},
		{"background-no-timeout", underDeadline(false, bare), underDeadline(false, send(unbounded))},
		{"background-vs-unbounded", underDeadline(false, bare), underDeadline(false, send(bounded))},
	}
}

// reportAllocs reports the allocations of viaSink as allocs/op and B/op, and those of bare as
// bare-allocs/op and bare-B/op.
func reportAllocs(b *testing.B, bare, viaSink func() error) {
	sinkAllocs, sinkBytes := allocsPerCall(b, viaSink)
	bareAllocs, bareBytes := allocsPerCall(b, bare)
	b.ReportMetric(sinkAllocs, "allocs/op")
	b.ReportMetric(sinkBytes, "B/op")
	b.ReportMetric(bareAllocs, "bare-allocs/op")
	b.ReportMetric(bareBytes, "bare-B/op")
}

// comparison is what interleave measured of a baseline (index 0) and a contender (index 1).
type comparison struct {
	nsPerCall   [2]float64 // wall time per call in the median batch
	overhead    float64    // contender over baseline, wall time, percent
	extraNs     float64    // contender minus baseline, wall time per call
	cpuOverhead float64    // contender over baseline, CPU time of the process, percent
}

// interleave makes at least b.N calls of each of base and other, from workers goroutines, in
// batches of overheadBatch calls that alternate between the two. It works in groups
// of four batches, base-other-other-base then other-base-base-other, so that whatever favours the
// first or the second batch of a pair (a scheduler waking up, garbage left by the batch before)
// favours both sides equally within each group.
//
// The wall-time overhead is the median over the groups of other's time over base's: a group that
// another process's burst of work slowed down is an outlier that the median sets aside, while a
// sum would count it in full. CPU time is summed over the whole run, because the kernel updates
// the CPU time of threads running on other cores only every few milliseconds, too coarsely for
// one batch.
func interleave(b *testing.B, workers int, base, other func() error) comparison {
	sides := [2]func() error{base, other}
	var (
		cpu    [2]time.Duration
		wall   [2][]time.Duration
		ratios []float64
		extra  []float64
	)
	perWorker := max(1, overheadBatch/workers)
	perBatch := workers * perWorker
	for group := 0; group == 0 || group*2*perBatch < b.N; group++ {
		var took [2]time.Duration
		order := [4]int{0, 1, 1, 0}
		if group%2 == 1 {
			order = [4]int{1, 0, 0, 1}
		}
		for _, side := range order {
			c0 := cputime.OrZero()
			w0 := time.Now()
			runWorkers(b, workers, perWorker, sides[side])
			w := time.Since(w0)
			cpu[side] += cputime.OrZero() - c0
			took[side] += w
			wall[side] = append(wall[side], w)
		}
		ratios = append(ratios, float64(took[1])/float64(took[0]))
		extra = append(extra, float64((took[1]-took[0]).Nanoseconds())/float64(2*perBatch))
	}
	var r comparison
	for side := range 2 {
		r.nsPerCall[side] = float64(median(wall[side]).Nanoseconds()) / float64(perBatch)
	}
	r.overhead = 100 * (median(ratios) - 1)
	r.extraNs = median(extra)
	if cpu[0] > 0 {
		r.cpuOverhead = 100 * (float64(cpu[1])/float64(cpu[0]) - 1)
	}
	return r
}

// median returns the middle value of vs, which it sorts.
func median[T cmp.Ordered](vs []T) T {
	slices.Sort(vs)
	return vs[len(vs)/2]
}

// allocsPerCall returns the heap allocations and bytes of the whole process (the server's
// included) per call of call, over enough sequential calls to smooth out the runtime's own.
func allocsPerCall(b *testing.B, call func() error) (allocs, bytes float64) {
	const calls = 400
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range calls {
		if err := call(); err != nil {
			b.Fatal(err)
		}
	}
	runtime.ReadMemStats(&after)
	return float64(after.Mallocs-before.Mallocs) / calls, float64(after.TotalAlloc-before.TotalAlloc) / calls
}

// runWorkers makes calls calls from each of workers goroutines and waits for them.
func runWorkers(b *testing.B, workers, calls int, call func() error) {
	if workers == 1 {
		for range calls {
			if err := call(); err != nil {
				b.Error(err)
				return
			}
		}
		return
	}
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

// nopConn answers every call at once without sending anything, so that a benchmark over it
// measures only what happens before the network: building the request and the call's context.
type nopConn struct{}

func (nopConn) Invoke(context.Context, string, any, any, ...grpc.CallOption) error { return nil }

func (nopConn) NewStream(context.Context, *grpc.StreamDesc, string, ...grpc.CallOption) (grpc.ClientStream, error) {
	return nil, errors.New("nopConn: no streams")
}

// BenchmarkClientSide measures the client's own work per delivery, over a connection that
// answers at once, in BenchmarkOverhead's variants: bareDeliver's conversion and metadata against
// everything Send does before and after its call. Without the network and the server, whose cost
// dwarfs it, this is what BenchmarkOverhead's overhead-% is made of, measured precisely:
// extra-ns/op is how much longer Send takes per call (the median over the run), and the
// allocations are the client's alone.
func BenchmarkClientSide(b *testing.B) {
	for _, v := range overheadVariants(b, nopConn{}, sampleEvent(b)) {
		b.Run(v.name, func(b *testing.B) {
			b.ReportAllocs()
			r := interleave(b, 1, v.bare, v.viaSink)
			b.ReportMetric(r.nsPerCall[1], "ns/op")
			b.ReportMetric(r.nsPerCall[0], "bare-ns/op")
			b.ReportMetric(r.extraNs, "extra-ns/op")
			reportAllocs(b, v.bare, v.viaSink)
		})
	}
}
