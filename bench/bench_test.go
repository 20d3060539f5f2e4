//go:build unix

package bench_test

import (
	"slices"
	"sync"
	"testing"
	"time"
)

// The benchmarks: HTTP over loopback -> verify -> decode -> 1,000 patterns -> Kafka (kfake,
// acknowledged before the answer), for fanbridge, the tutorial handler and Watermill.
//
// Method (see README.md):
//   - events/s: events divided by the load generator's wall time from its first request to its
//     last answer, with -clients keep-alive connections (16 by default) in the child process.
//   - server-cpu-us/event: this process's user+system CPU time (getrusage RUSAGE_SELF) over the
//     run, divided by the events. The clients and the broker run in the child process, so
//     nothing needs subtracting; this process holds only the pipeline (HTTP server, decoding,
//     matching, Kafka client) and its garbage collector.
//   - child-cpu-us/event: the child's own CPU time over the same run, per event: the clients'
//     HTTP work and signing, and the broker storing and acknowledging the records. On a machine
//     shared by both, events/s is bounded by the cores divided by the sum of the two.
//   - p50-us, p99-us: each request's round trip as the client saw it, nearest rank.
//   - allocs/op, B/op: this process's allocations per event, i.e. the server's.
//
// Every measured run starts with a garbage collection, so that no pipeline pays for collecting
// the garbage of the one measured before it.
//
// Every run is checked: all events answered 200 and exactly that many records in Kafka.

var (
	warmMu sync.Mutex
	warmed = map[string]bool{}
)

// warm sends each pipeline enough events once per process to open every client connection,
// fetch Kafka metadata and grow pools before anything is timed.
func warm(b *testing.B, h *harness, names ...string) {
	b.Helper()
	warmMu.Lock()
	defer warmMu.Unlock()
	for _, name := range names {
		if warmed[name] {
			continue
		}
		if _, err := h.measure(h.pipelines[name], 100*max(*clientsFlag, 1), false, nil); err != nil {
			b.Fatal(err)
		}
		warmed[name] = true
	}
}

// BenchmarkEndToEnd runs one pipeline at a time; b.N is the number of events.
func BenchmarkEndToEnd(b *testing.B) {
	for _, name := range slices.Concat(pipelineNames, floorNames) {
		b.Run(name, func(b *testing.B) {
			h := getHarness(b)
			warm(b, h, name)
			b.ReportAllocs()
			b.ResetTimer()
			seg, err := h.measure(h.pipelines[name], b.N, false, b.StopTimer)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(seg.eventsPerSec(), "events/s")
			b.ReportMetric(seg.cpuPerEvent(), "server-cpu-us/event")
			b.ReportMetric(seg.childCPUPerEvent(), "child-cpu-us/event")
			b.ReportMetric(us(seg.p50), "p50-us")
			b.ReportMetric(us(seg.p99), "p99-us")
		})
	}
}

// BenchmarkEndToEndCompare runs the three pipelines interleaved in one benchmark: -rounds rounds
// (5 by default), each sending b.N/rounds events to every pipeline, the order rotating from round
// to round. The ratios are computed per round, from pipelines measured moments apart under the
// same machine load, and the median round is reported; the per-pipeline figures are medians too.
// x-vs-* compare throughput (events/s), cpu-x-vs-* compare server CPU per event (theirs / ours).
func BenchmarkEndToEndCompare(b *testing.B) {
	h := getHarness(b)
	warm(b, h, pipelineNames...)
	rounds := max(min(*roundsFlag, b.N), 1)
	per := max(b.N/rounds, 1)
	segs := map[string][]segment{}
	b.ReportAllocs()
	b.ResetTimer()
	for r := range rounds {
		for k := range pipelineNames {
			name := pipelineNames[(r+k)%len(pipelineNames)]
			seg, err := h.measure(h.pipelines[name], per, true, nil)
			if err != nil {
				b.Fatal(err)
			}
			segs[name] = append(segs[name], seg)
		}
	}
	b.StopTimer()

	for _, name := range pipelineNames {
		s := segs[name]
		var mallocs uint64
		var events int
		for _, x := range s {
			mallocs += x.mallocs
			events += x.events
		}
		b.ReportMetric(median(s, segment.eventsPerSec), name+"-events/s")
		b.ReportMetric(median(s, segment.cpuPerEvent), name+"-cpu-us/event")
		b.ReportMetric(median(s, segment.childCPUPerEvent), name+"-child-cpu-us/event")
		b.ReportMetric(median(s, func(x segment) float64 { return us(x.p50) }), name+"-p50-us")
		b.ReportMetric(median(s, func(x segment) float64 { return us(x.p99) }), name+"-p99-us")
		b.ReportMetric(float64(mallocs)/float64(events), name+"-allocs/event")
	}
	ours := segs[nameFanbridge]
	for _, peer := range []string{nameWatermill, nameTutorial} {
		theirs := segs[peer]
		speed := make([]float64, rounds)
		cpu := make([]float64, rounds)
		for r := range rounds {
			speed[r] = ours[r].eventsPerSec() / theirs[r].eventsPerSec()
			cpu[r] = theirs[r].cpuPerEvent() / ours[r].cpuPerEvent()
		}
		b.ReportMetric(medianOf(speed), "x-vs-"+peer)
		b.ReportMetric(medianOf(cpu), "cpu-x-vs-"+peer)
	}
}

func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }

func median(s []segment, f func(segment) float64) float64 {
	v := make([]float64, len(s))
	for i, x := range s {
		v[i] = f(x)
	}
	return medianOf(v)
}

func medianOf(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	v = slices.Clone(v)
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}
