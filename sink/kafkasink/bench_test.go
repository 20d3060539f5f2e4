package kafkasink_test

import (
	"context"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/sink/kafkasink"
	"github.com/fanbridge/fanbridge/sink/sinktest"
)

// Every variant below produces the same record (the body of a Genesys customer.end event, its key
// and the headers kafkasink writes) to its own in-process kfake broker, through a client with the
// same settings (linger 0, the most favourable for one-at-a-time producers), and waits for each
// record's acknowledgement. kfake runs in the same process, so the CPU figures include the
// broker's work, which is most of it.

// benchResults keeps each variant's ns per event from every full-size run (-count), for the
// ratios.
var benchResults = struct {
	sync.Mutex
	ns map[string][]float64
}{ns: map[string][]float64{}}

func recordResult(b *testing.B, name string, nsPerEvent float64) {
	if b.N < 100 { // the probing run before the real one
		return
	}
	benchResults.Lock()
	defer benchResults.Unlock()
	benchResults.ns[name] = append(benchResults.ns[name], nsPerEvent)
}

// meanResult returns the mean ns per event of a variant over its runs.
func meanResult(name string) (float64, bool) {
	benchResults.Lock()
	defer benchResults.Unlock()
	runs := benchResults.ns[name]
	if len(runs) == 0 {
		return 0, false
	}
	sum := 0.0
	for _, v := range runs {
		sum += v
	}
	return sum / float64(len(runs)), true
}

func benchClient(b *testing.B, topic string) *kgo.Client {
	c := newCluster(b, topic)
	return newClient(b, c, kgo.ProducerLinger(0))
}

// cpuNanos is the CPU time (user and system) this process has used.
func cpuNanos() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// measure runs op b.N times spread over workers goroutines and reports events/s, CPU per event,
// and keeps ns/event under name.
func measure(b *testing.B, name string, workers int, op func(ctx context.Context) error) {
	// A deadline, as a dispatcher gives each delivery.
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	// Warm up: connections, metadata, producer id.
	if err := op(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	var next atomic.Int64
	var wg sync.WaitGroup
	cpu := cpuNanos()
	b.ResetTimer()
	for range workers {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				if err := op(ctx); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	cpu = cpuNanos() - cpu
	perEvent := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	b.ReportMetric(1e9/perEvent, "events/s")
	b.ReportMetric(float64(cpu)/float64(b.N)/1e3, "cpu-us/event")
	recordResult(b, name, perEvent)
}

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

	kafkasinkRun := func(workers int) func(b *testing.B) {
		return func(b *testing.B) {
			s := newSink(b, benchClient(b, "events"), kafkasink.WithTopic("events"))
			measure(b, b.Name(), workers, func(ctx context.Context) error { return s.Send(ctx, e) })
		}
	}
	produceSyncRun := func(workers int) func(b *testing.B) {
		return func(b *testing.B) {
			cl := benchClient(b, "events")
			measure(b, b.Name(), workers, func(ctx context.Context) error {
				return cl.ProduceSync(ctx, record()).FirstErr()
			})
		}
	}
	// The pattern of the tutorials: produce with a callback that reports on a channel, wait on
	// the channel, then the next record.
	tutorialRun := func(b *testing.B) {
		cl := benchClient(b, "events")
		delivered := make(chan error, 1)
		measure(b, b.Name(), 1, func(ctx context.Context) error {
			cl.Produce(ctx, record(), func(_ *kgo.Record, err error) {
				delivered <- err
			})
			return <-delivered
		})
	}

	const pool = 64
	b.Run("kafkasink.Send/goroutines=64", kafkasinkRun(pool))
	b.Run("kafkasink.Send/goroutines=1", kafkasinkRun(1))
	b.Run("kgo.ProduceSync/goroutines=1", produceSyncRun(1))
	b.Run("kgo.ProduceSync/goroutines=64", produceSyncRun(pool))
	b.Run("tutorial-produce-and-wait/goroutines=1", tutorialRun)
	b.Run("kafkasink.SendBatch64/goroutines=1", func(b *testing.B) {
		s := newSink(b, benchClient(b, "events"), kafkasink.WithTopic("events"))
		batch := make([]*fanbridge.Event, 64)
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
		for range b.N {
			if err := s.SendBatch(ctx, batch); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		events := b.N * len(batch)
		b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
		b.ReportMetric(float64(cpuNanos()-cpu)/float64(events)/1e3, "cpu-us/event")
	})

	// Ratios of the runs above, measured in this same process (the mean of every -count run so
	// far): how many times more events per second the 64 concurrent kafkasink Sends deliver than
	// each peer. With -count=n, read the last ratio line, which averages all n runs.
	b.Run("ratio", func(b *testing.B) {
		prefix := b.Name()[:len(b.Name())-len("ratio")]
		get := func(name string) float64 {
			v, ok := meanResult(prefix + name)
			if !ok {
				b.Skipf("no result for %s (run the whole benchmark)", name)
			}
			return v
		}
		ours := get("kafkasink.Send/goroutines=64")
		for range b.N {
		}
		b.ReportMetric(get("kgo.ProduceSync/goroutines=1")/ours, "x-vs-ProduceSync-1")
		b.ReportMetric(get("tutorial-produce-and-wait/goroutines=1")/ours, "x-vs-tutorial-1")
		b.ReportMetric(get("kgo.ProduceSync/goroutines=64")/ours, "x-vs-ProduceSync-64")
		b.ReportMetric(get("kgo.ProduceSync/goroutines=1")/get("kafkasink.Send/goroutines=1"), "x-1-vs-ProduceSync-1")
	})
}

// BenchmarkConformance runs sinktest's benchmarks against kafkasink.
func BenchmarkConformance(b *testing.B) {
	c := newCluster(b)
	h := harness(c, false)
	h.Features.Hang = false
	sinktest.RunBenchmarks(b, h)
}
