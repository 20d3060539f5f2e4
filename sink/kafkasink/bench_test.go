package kafkasink_test

import (
	"cmp"
	"context"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/internal/cputime"
	"github.com/fanbridge/fanbridge/sink/kafkasink"
	"github.com/fanbridge/fanbridge/sink/sinktest"
)

// Every producer below writes the same record (the body of a Genesys customer.end event, its key
// and the headers kafkasink writes) to an in-process kfake broker, through a client with the same
// settings (linger 0, the most favourable for one-at-a-time producers), and waits for each
// record's acknowledgement before counting it. kfake runs in the same process, so the CPU and
// allocation figures include the broker's work, which is most of it.

// benchPool is how many goroutines call the concurrent producers, as a dispatcher delivering to
// one sink from many requests at once would.
const benchPool = 64

// cpuNanos is the CPU time (user and system) this process has used.
func cpuNanos() time.Duration { return cputime.OrZero() }

// benchCluster starts an in-process broker with the topic "events" that keeps about 16 MiB of
// records once trim is called: a benchmark produces hundreds of thousands of records a second,
// which kfake would otherwise keep in memory until the benchmark ends.
func benchCluster(b *testing.B) (c *kfake.Cluster, trim func()) {
	c, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.SeedTopics(1, "events"),
		kfake.BrokerConfigs(map[string]string{"log.retention.bytes": "16777216"}),
	)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.Close)
	return c, c.ApplyRetention
}

// producer is one way of delivering the sample: workers goroutines each calling op in turn.
type producer struct {
	workers int
	op      func(ctx context.Context) error
}

// batchEvents is how many events one batch of p delivers: enough for a few milliseconds, and for
// a concurrent producer enough rounds of its goroutines that starting and draining them is a
// small part of the batch.
func (p producer) batchEvents() int { return max(64, 16*p.workers) }

// run delivers n events through p and returns how long that took.
func (p producer) run(b *testing.B, ctx context.Context, n int) time.Duration {
	start := time.Now()
	if p.workers == 1 {
		for range n {
			if err := p.op(ctx); err != nil {
				b.Fatal(err)
			}
		}
		return time.Since(start)
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range p.workers {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				if err := p.op(ctx); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	return time.Since(start)
}

// compare measures ours against peer in alternating batches, in groups of four: peer, ours,
// ours, peer, then ours, peer, peer, ours, so that whatever favours the first or the second batch
// of a pair favours both equally within each group. It stops once ours has delivered b.N
// events, and reports:
//
//   - x-faster: how many times more events per second ours delivers than peer, the median over
//     the groups; a group that a burst of load from other processes slowed is an outlier that
//     the median sets aside, where a sum would count it in full;
//   - ns/op and events/s: ours, in its median batch; peer-ns/op and peer-events/s: the peer's;
//   - cpu-us/op, allocs/op and B/op: ours, per event, summed over the run; peer-cpu-us/op,
//     peer-allocs/op and peer-B/op: the same for the peer.
//
// trim runs after each group, outside the measured time, to keep the broker's memory bounded.
func compare(b *testing.B, trim func(), peer, ours producer) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour) // as a dispatcher gives each delivery
	defer cancel()
	producers := [2]producer{peer, ours}
	for _, p := range producers {
		// Warm up: connections, metadata, producer id.
		if err := p.op(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	var (
		events  [2]int
		cpu     [2]time.Duration
		allocs  [2]uint64
		bytes   [2]uint64
		perEvt  [2][]float64 // ns per event of each batch
		speedup []float64    // ours over peer, events per second, of each group
		before  runtime.MemStats
		after   runtime.MemStats
	)
	b.ResetTimer()
	for group := 0; events[1] < b.N; group++ {
		order := [4]int{0, 1, 1, 0}
		if group%2 == 1 {
			order = [4]int{1, 0, 0, 1}
		}
		var took [2]time.Duration
		var n [2]int
		for _, side := range order {
			p := producers[side]
			runtime.ReadMemStats(&before)
			c0 := cpuNanos()
			d := p.run(b, ctx, p.batchEvents())
			cpu[side] += cpuNanos() - c0
			runtime.ReadMemStats(&after)
			allocs[side] += after.Mallocs - before.Mallocs
			bytes[side] += after.TotalAlloc - before.TotalAlloc
			took[side] += d
			n[side] += p.batchEvents()
			events[side] += p.batchEvents()
			perEvt[side] = append(perEvt[side], float64(d.Nanoseconds())/float64(p.batchEvents()))
		}
		peerNs := float64(took[0].Nanoseconds()) / float64(n[0])
		oursNs := float64(took[1].Nanoseconds()) / float64(n[1])
		speedup = append(speedup, peerNs/oursNs)
		trim()
	}
	b.StopTimer()
	b.ReportMetric(median(speedup), "x-faster")
	for side, prefix := range [2]string{"peer-", ""} {
		ns := median(perEvt[side])
		e := float64(events[side])
		b.ReportMetric(ns, prefix+"ns/op")
		b.ReportMetric(1e9/ns, prefix+"events/s")
		b.ReportMetric(float64(cpu[side].Nanoseconds())/e/1e3, prefix+"cpu-us/op")
		b.ReportMetric(float64(allocs[side])/e, prefix+"allocs/op")
		b.ReportMetric(float64(bytes[side])/e, prefix+"B/op")
	}
}

// median returns the middle value of vs, which it sorts.
func median[T cmp.Ordered](vs []T) T {
	slices.Sort(vs)
	return vs[len(vs)/2]
}

// BenchmarkProduce compares kafkasink with the ways of producing that people write without it.
// Each sub-benchmark runs two producers against one kfake broker, each through its own client,
// alternating between them (see compare), and reports x-faster: how many times more events per
// second the kafkasink side delivers, every event acknowledged before it counts. The peers are
// handed the finished record (built once, before timing), while Send builds its record from the
// event every time, unless said otherwise.
//
//   - Send@64-vs-ProduceSync@1: kafkasink.Send called from 64 goroutines, against a loop that
//     calls kgo.Client.ProduceSync for one record and waits for it before producing the next:
//     one goroutine producing and waiting in turn, the plain franz-go way. This is what a
//     service gains by handing its concurrent deliveries to one Sink instead of a produce loop.
//   - Send@64-vs-tutorial@1: the same against the pattern of the tutorials, Produce with a
//     callback that reports on a channel, then a wait on the channel before the next record.
//   - Send@64-vs-ProduceSync@64: the same client API called from 64 goroutines, each calling
//     ProduceSync. Both sides then let franz-go batch the concurrent records into shared produce
//     requests, so about 1x is the expected result; what separates them is the building of the
//     record (headers, formatted time, sorted metadata), which this peer skips.
//   - Send@64-vs-ProduceSync@64+build: the same, with the peer building the record from the
//     event for each call, as a producer writing the same record must: like with like.
//   - Send@1-vs-ProduceSync@1: one goroutine on both sides, the peer again handed the finished
//     record: Send's whole cost per record, building included.
//
// The ratios move with the machine; run with -count=5 and take the median of the five. The
// broker is in-process, so there is no network: a real broker's round trip makes one-at-a-time
// producers slower still, and batching worth more.
func BenchmarkProduce(b *testing.B) {
	e := sampleEvent(b, "v2.detail.events.conversation.customer.end.json")
	offline, err := kgo.NewClient(kgo.SeedBrokers("127.0.0.1:1"))
	if err != nil {
		b.Fatal(err)
	}
	defer offline.Close()
	template, err := kafkasink.BuildRecord(newSink(b, offline, kafkasink.WithTopic("events")), e)
	if err != nil {
		b.Fatal(err)
	}
	// The peers produce exactly the record kafkasink builds; headers are shared read-only.
	record := func() *kgo.Record {
		return &kgo.Record{Topic: "events", Key: template.Key, Value: template.Value, Headers: template.Headers}
	}
	send := func(b *testing.B, cl *kgo.Client, workers int) producer {
		s := newSink(b, cl, kafkasink.WithTopic("events"))
		return producer{workers, func(ctx context.Context) error { return s.Send(ctx, e) }}
	}
	produceSync := func(_ *testing.B, cl *kgo.Client, workers int) producer {
		return producer{workers, func(ctx context.Context) error { return cl.ProduceSync(ctx, record()).FirstErr() }}
	}
	// ProduceSync of a record built from the event for each call, as a producer that writes
	// kafkasink's record layout must; BuildRecord builds it the way Send does, into fresh memory.
	produceSyncBuilding := func(b *testing.B, cl *kgo.Client, workers int) producer {
		builder := newSink(b, offline, kafkasink.WithTopic("events"))
		return producer{workers, func(ctx context.Context) error {
			r, err := kafkasink.BuildRecord(builder, e)
			if err != nil {
				return err
			}
			return cl.ProduceSync(ctx, r).FirstErr()
		}}
	}
	// The pattern of the tutorials: produce with a callback that reports on a channel, wait on
	// the channel, then the next record.
	tutorial := func(_ *testing.B, cl *kgo.Client, _ int) producer {
		delivered := make(chan error, 1)
		return producer{1, func(ctx context.Context) error {
			cl.Produce(ctx, record(), func(_ *kgo.Record, err error) { delivered <- err })
			return <-delivered
		}}
	}

	for _, c := range []struct {
		name        string
		peer        func(*testing.B, *kgo.Client, int) producer
		peerWorkers int
		oursWorkers int
	}{
		{"Send@64-vs-ProduceSync@1", produceSync, 1, benchPool},
		{"Send@64-vs-tutorial@1", tutorial, 1, benchPool},
		{"Send@64-vs-ProduceSync@64", produceSync, benchPool, benchPool},
		{"Send@64-vs-ProduceSync@64+build", produceSyncBuilding, benchPool, benchPool},
		{"Send@1-vs-ProduceSync@1", produceSync, 1, 1},
	} {
		b.Run(c.name, func(b *testing.B) {
			cluster, trim := benchCluster(b)
			peerClient := newClient(b, cluster, kgo.ProducerLinger(0))
			oursClient := newClient(b, cluster, kgo.ProducerLinger(0))
			compare(b, trim, c.peer(b, peerClient, c.peerWorkers), send(b, oursClient, c.oursWorkers))
		})
	}

	// SendBatch on its own, for its throughput: 64 events handed over at once by one goroutine.
	b.Run("SendBatch@64", func(b *testing.B) {
		cluster, trim := benchCluster(b)
		cl := newClient(b, cluster, kgo.ProducerLinger(0))
		s := newSink(b, cl, kafkasink.WithTopic("events"))
		batch := make([]*fanbridge.Event, benchPool)
		for i := range batch {
			batch[i] = e
		}
		ctx := context.Background()
		if err := s.SendBatch(ctx, batch); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		cpu := cpuNanos()
		b.ResetTimer()
		for i := range b.N {
			if err := s.SendBatch(ctx, batch); err != nil {
				b.Fatal(err)
			}
			if i%256 == 255 {
				b.StopTimer()
				trim()
				b.StartTimer()
			}
		}
		b.StopTimer()
		events := b.N * len(batch)
		b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
		b.ReportMetric(float64((cpuNanos()-cpu).Nanoseconds())/float64(events)/1e3, "cpu-us/event")
	})
}

// BenchmarkConformance runs sinktest's benchmarks against kafkasink.
func BenchmarkConformance(b *testing.B) {
	c := newCluster(b)
	h := harness(c, false)
	h.Features.Hang = false
	sinktest.RunBenchmarks(b, h)
}
