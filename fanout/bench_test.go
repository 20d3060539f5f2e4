package fanout_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/fanout"
	"github.com/fanbridge/fanbridge/filter"
	"github.com/fanbridge/fanbridge/internal/cputime"
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
func cpuTime() time.Duration { return cputime.OrZero() }

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

// slowSink takes 50ms a send, like a remote service having a bad day, and says when a send ends.
type slowSink struct {
	done chan struct{} // one token per finished send, dropped when nobody listens
	n    atomic.Int64
}

func (s *slowSink) Send(ctx context.Context, _ *fanbridge.Event) error {
	t := time.NewTimer(50 * time.Millisecond)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		return ctx.Err()
	}
	s.n.Add(1)
	select {
	case s.done <- struct{}{}:
	default:
	}
	return nil
}

// targetSink counts, and closes reached when the count hits target.
type targetSink struct {
	n       atomic.Int64
	target  int64
	reached chan struct{}
}

func (s *targetSink) Send(context.Context, *fanbridge.Event) error {
	if s.n.Add(1) == s.target {
		close(s.reached)
	}
	return nil
}

func (s *targetSink) reset(target int) {
	s.n.Store(0)
	s.target = int64(target)
	s.reached = make(chan struct{})
}

// BenchmarkSlowSinkIsolation measures the two fast sinks' throughput with and without a slow sink
// (50ms a send) working beside them in the same Dispatcher, in the same run, and reports the ratio.
//
// The slow sink has its own route and its own stream of events, offered as fast as its queue takes
// them, so that it is saturated throughout: its 32 workers are all waiting, its queue of 1024 is
// full, and its sender is being refused with ErrOverloaded. (If every event also had to reach the
// slow sink before being accepted, nothing could make the stream faster than the slow sink: that
// is Little's law, not isolation. What isolation promises is that the slow sink's backlog costs
// the fast sinks no worker, no queue slot and no lock.) Memory and goroutines are reported to show
// they stay bounded.
func BenchmarkSlowSinkIsolation(b *testing.B) {
	fast1, fast2 := &targetSink{}, &targetSink{}
	slow := &slowSink{done: make(chan struct{}, 1)}
	fastRoute := fanout.Route{Name: "fast", Filter: typeIs("fast"), Sinks: []string{"fast1", "fast2"}}
	fastSinks := []fanout.SinkConfig{{Name: "fast1", Sink: fast1}, {Name: "fast2", Sink: fast2}}
	baseline, err := fanout.New(fanout.Config{Sinks: fastSinks, Routes: []fanout.Route{fastRoute}},
		fanout.WithMode(fanout.Async), fanout.WithSinkClosing(false))
	if err != nil {
		b.Fatal(err)
	}
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	goroutinesBefore := runtime.NumGoroutine()
	withSlow, err := fanout.New(fanout.Config{
		Sinks:  append(fastSinks[:2:2], fanout.SinkConfig{Name: "slow", Sink: slow}),
		Routes: []fanout.Route{fastRoute, {Name: "slow", Filter: typeIs("slow"), Sinks: []string{"slow"}}},
	}, fanout.WithMode(fanout.Async), fanout.WithSinkClosing(false))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()

	// The slow sink's own sender: offers events without pause, and after a refusal waits for the
	// slow sink to finish a send (a Retry-After, without guessing its length).
	stopFeed := make(chan struct{})
	fed := make(chan struct{})
	var slowRefused atomic.Int64
	go func() {
		defer close(fed)
		for i := 0; ; i++ {
			select {
			case <-stopFeed:
				return
			default:
			}
			err := withSlow.Dispatch(ctx, event("slow-"+strconv.Itoa(i), "slow"))
			if errors.Is(err, fanbridge.ErrOverloaded) {
				slowRefused.Add(1)
				select {
				case <-slow.done:
				case <-stopFeed:
					return
				}
			}
		}
	}()
	for fanout.QueueDepth(withSlow, "slow") < fanout.DefaultQueueSize {
		runtime.Gosched() // until the slow sink is saturated
	}

	var seq atomic.Int64
	phase := func(d *fanout.Dispatcher, n int) time.Duration {
		fast1.reset(n)
		fast2.reset(n)
		const producers = 2
		start := time.Now()
		var wg sync.WaitGroup
		for p := range producers {
			wg.Go(func() {
				for i := p; i < n; i += producers {
					if err := dispatchRetrying(ctx, d, event("f"+strconv.FormatInt(seq.Add(1), 10), "fast")); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		<-fast1.reached
		<-fast2.reached
		return time.Since(start)
	}

	b.ReportAllocs()
	b.ResetTimer()
	var tBase, tSlow time.Duration
	var goroutinesDuring int
	var during runtime.MemStats
	half := max(b.N/2, 1)
	for range 2 { // alternate, so that drift in the machine's load hits both alike
		tBase += phase(baseline, half)
		tSlow += phase(withSlow, half)
	}
	goroutinesDuring = runtime.NumGoroutine()
	runtime.GC()
	runtime.ReadMemStats(&during)
	b.StopTimer()
	close(stopFeed)
	<-fed

	events := float64(4 * half) // each phase delivered half events to each of two fast sinks
	b.ReportMetric(events/tBase.Seconds(), "baseline-fast-deliveries/s")
	b.ReportMetric(events/tSlow.Seconds(), "with-slow-fast-deliveries/s")
	b.ReportMetric(tBase.Seconds()/tSlow.Seconds(), "fast-throughput-ratio")
	b.ReportMetric(float64(goroutinesDuring-goroutinesBefore), "goroutines-added")
	b.ReportMetric(float64(int64(during.HeapInuse)-int64(before.HeapInuse))/(1<<20), "heap-added-MB")
	b.ReportMetric(float64(slowRefused.Load()), "slow-refusals")

	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := withSlow.Close(cctx); err != nil {
		b.Fatal(err)
	}
	if err := baseline.Close(cctx); err != nil {
		b.Fatal(err)
	}
}

// countingDispatcher is an Async Dispatcher without deduplication that sends the events routes
// match to one counting sink named "s".
func countingDispatcher(b *testing.B, routes []fanout.Route) *fanout.Dispatcher {
	var n atomic.Int64
	d, err := fanout.New(fanout.Config{Sinks: []fanout.SinkConfig{{Name: "s", Sink: countingSink(&n)}}, Routes: routes},
		fanout.WithMode(fanout.Async), fanout.WithDedup(nil))
	if err != nil {
		b.Fatal(err)
	}
	return d
}

// compareRouteCounts runs one sub-benchmark per variant (build's first argument is true for
// the first): each dispatches e b.N times to a Dispatcher of one route and to one of n, and
// reports both costs per event and their ratio; the second also reports how many times faster
// the first variant was with n routes.
func compareRouteCounts(b *testing.B, e *fanbridge.Event, n int, variants [2]string, build func(n int, first bool) *fanout.Dispatcher) {
	var perEvent [2]float64
	for k, name := range variants {
		b.Run(name, func(b *testing.B) {
			one, many := build(1, k == 0), build(n, k == 0)
			defer one.Close(context.Background())
			defer many.Close(context.Background())
			b.ReportAllocs()
			b.ResetTimer()
			t1 := timeDispatches(b, one, e, b.N)
			tn := timeDispatches(b, many, e, b.N)
			perEvent[k] = float64(tn.Nanoseconds()) / float64(b.N)
			b.ReportMetric(float64(t1.Nanoseconds())/float64(b.N), "ns/event-1-route")
			b.ReportMetric(perEvent[k], fmt.Sprintf("ns/event-%d-routes", n))
			b.ReportMetric(tn.Seconds()/t1.Seconds(), fmt.Sprintf("cost-ratio-%d-vs-1", n))
			if k == 1 && perEvent[0] > 0 {
				b.ReportMetric(perEvent[1]/perEvent[0], "x-faster-"+variants[0])
			}
		})
	}
}

// timeDispatches dispatches e to d n times and returns how long that took.
func timeDispatches(b *testing.B, d *fanout.Dispatcher, e *fanbridge.Event, n int) time.Duration {
	ctx := context.Background()
	start := time.Now()
	for range n {
		if err := dispatchRetrying(ctx, d, e); err != nil {
			b.Fatal(err)
		}
	}
	return time.Since(start)
}

// BenchmarkPatternRoutes dispatches a Genesys event over 1 and over 1,000 EventBridge-pattern
// routes (the event matches one of them) and reports what the thousand cost relative to the one,
// both when the patterns are compiled together into one Matcher (Route.Pattern) and when each is
// evaluated on its own (the same patterns hidden behind a PredicateFunc).
func BenchmarkPatternRoutes(b *testing.B) {
	e := sample(b, "v2.detail.events.conversation.customer.end.json")
	build := func(n int, shared bool) *fanout.Dispatcher {
		var routes []fanout.Route
		for i := range n {
			src := fmt.Sprintf(`{"detail-type":["v2.detail.events.conversation.{id}.customer.end"],"detail":{"eventBody":{"interactingDurationMs":[%d]}}}`, 60000+i*1000)
			r := fanout.Route{Name: "r" + strconv.Itoa(i), Sinks: []string{"s"}}
			if shared {
				r.Pattern = []byte(src)
			} else {
				p, err := filter.ParsePattern([]byte(src))
				if err != nil {
					b.Fatal(err)
				}
				r.Filter = filter.PredicateFunc(p.Match)
			}
			routes = append(routes, r)
		}
		return countingDispatcher(b, routes)
	}
	compareRouteCounts(b, e, 1000, [2]string{"one-matcher", "one-by-one"}, build)
}
