package fanout_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/fanout"
	"github.com/fanbridge/fanbridge/retry"
	"github.com/fanbridge/fanbridge/sink"
)

// flakySink fails a share of its sends, at random but reproducibly, and counts what it delivered
// per event, so that duplicates can be counted.
type flakySink struct {
	mu        sync.Mutex
	rnd       *rand.Rand
	failShare float64
	delivered map[string]int
	work      int // bytes hashed per send: the cost of encoding and sending the event
}

func newFlakySink(seed uint64, failShare float64) *flakySink {
	return &flakySink{rnd: rand.New(rand.NewPCG(seed, seed)), failShare: failShare, delivered: map[string]int{}}
}

var errFlaky = errors.New("flaky: try again")

func (f *flakySink) Send(_ context.Context, e *fanbridge.Event) error {
	if f.work > 0 {
		burn(f.work)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.rnd.Float64() < f.failShare {
		return errFlaky
	}
	f.delivered[e.ID]++
	return nil
}

var burnBuf = make([]byte, 64<<10)

// burn spends CPU the way encoding and sending an event does.
func burn(n int) { _ = sha256.Sum256(burnBuf[:n]) }

// duplicates counts deliveries beyond the first of each event.
func (f *flakySink) duplicates() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.delivered {
		n += c - 1
	}
	return n
}

// tutorialFanout is the fan-out that tutorials show: send to every sink at once with a WaitGroup
// and, if any send failed, run the whole fan-out again. Every sink that had already succeeded gets
// the event again.
func tutorialFanout(ctx context.Context, sinks []sink.Sink, e *fanbridge.Event, attempts int) error {
	var err error
	for range attempts {
		errs := make([]error, len(sinks))
		var wg sync.WaitGroup
		for i, s := range sinks {
			wg.Go(func() { errs[i] = s.Send(ctx, e) })
		}
		wg.Wait()
		if err = errors.Join(errs...); err == nil {
			return nil
		}
	}
	return err
}

const (
	flakyShare = 0.2
	// Attempts generous enough that neither fan-out gives up in practice: the tutorial's whole
	// fan-out succeeds only when all three sends do (0.8^3 of the time); each of our sinks
	// retries on its own.
	tutorialAttempts = 50
	flakyAttempts    = 20
)

func flakyConfig(sinks []*flakySink) fanout.Config {
	cfg := fanout.Config{Routes: []fanout.Route{{Name: "all", Filter: fanout.All}}}
	for i, s := range sinks {
		name := "s" + strconv.Itoa(i)
		// Retry at once, as the tutorial does, so that the comparison is of the fan-outs alone.
		cfg.Sinks = append(cfg.Sinks, fanout.SinkConfig{Name: name, Sink: s, Retry: retry.Policy{
			InitialInterval: time.Nanosecond, MaxInterval: time.Nanosecond, MaxAttempts: flakyAttempts},
			Breaker: fanout.Breaker{Failures: -1}})
		cfg.Routes[0].Sinks = append(cfg.Routes[0].Sinks, name)
	}
	return cfg
}

func flakySinks(seed uint64) []*flakySink { return flakySinksWith(seed, flakyShare) }

func flakySinksWith(seed uint64, share float64) []*flakySink {
	return []*flakySink{newFlakySink(seed, share), newFlakySink(seed+1, share), newFlakySink(seed+2, share)}
}

func totalDuplicates(sinks []*flakySink) int {
	n := 0
	for _, s := range sinks {
		n += s.duplicates()
	}
	return n
}

// TestTutorialFanoutDuplicatesButOursDoesNot sends the same events through both fan-outs over
// sinks that fail a fifth of their sends: the tutorial's whole-fan-out retry duplicates events on
// the sinks that had succeeded; ours retries only the failed sink and duplicates none.
func TestTutorialFanoutDuplicatesButOursDoesNot(t *testing.T) {
	const events = 2000
	ctx := testContext(t)

	theirs := flakySinks(1)
	plain := []sink.Sink{theirs[0], theirs[1], theirs[2]}
	for i := range events {
		require.NoError(t, tutorialFanout(ctx, plain, event(strconv.Itoa(i), "x"), tutorialAttempts))
	}

	ours := flakySinks(1)
	d := newDispatcher(t, flakyConfig(ours))
	for i := range events {
		require.NoError(t, d.Dispatch(ctx, event(strconv.Itoa(i), "x")))
	}

	for _, s := range append(theirs, ours...) {
		assert.Len(t, s.delivered, events, "every event reached every sink")
	}
	assert.Greater(t, totalDuplicates(theirs), events/4, "the tutorial duplicates about half the events")
	assert.Zero(t, totalDuplicates(ours))
	t.Logf("duplicates over %d events x 3 sinks: tutorial %d, fanout %d", events, totalDuplicates(theirs), totalDuplicates(ours))
}

// BenchmarkTutorialFanout runs both fan-outs over the same sinks in the same run and reports the
// duplicates each causes per 1000 events, and their speed ratio: with healthy sinks, with sinks
// failing a fifth of their sends, and with such sinks when a send costs something (hashing 8 KiB,
// about the CPU of encoding and writing a Genesys event), where every duplicate is paid for.
func BenchmarkTutorialFanout(b *testing.B) {
	for _, tc := range []struct {
		share float64
		work  int
	}{{0, 0}, {flakyShare, 0}, {flakyShare, 8 << 10}} {
		name := fmt.Sprintf("fail-%d%%", int(tc.share*100))
		if tc.work > 0 {
			name += "/costly-sinks"
		}
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			theirs := flakySinksWith(7, tc.share)
			ours := flakySinksWith(7, tc.share)
			for _, s := range append(theirs, ours...) {
				s.work = tc.work
			}
			plain := []sink.Sink{theirs[0], theirs[1], theirs[2]}
			d, err := fanout.New(flakyConfig(ours))
			if err != nil {
				b.Fatal(err)
			}
			defer d.Close(ctx)
			events := make([]*fanbridge.Event, b.N)
			for i := range events {
				events[i] = event(strconv.Itoa(i), "x")
			}
			b.ReportAllocs()
			b.ResetTimer()
			start, cpu := time.Now(), cpuTime()
			for _, e := range events {
				if err := tutorialFanout(ctx, plain, e, tutorialAttempts); err != nil {
					b.Fatal(err)
				}
			}
			tTheirs, cTheirs := time.Since(start), cpuTime()-cpu
			start, cpu = time.Now(), cpuTime()
			for _, e := range events {
				if err := d.Dispatch(ctx, e); err != nil {
					b.Fatal(err)
				}
			}
			tOurs, cOurs := time.Since(start), cpuTime()-cpu
			b.StopTimer()
			b.ReportMetric(1000*float64(totalDuplicates(theirs))/float64(b.N), "tutorial-dups/1k-events")
			b.ReportMetric(1000*float64(totalDuplicates(ours))/float64(b.N), "fanout-dups/1k-events")
			b.ReportMetric(float64(tTheirs.Nanoseconds())/float64(b.N), "tutorial-ns/event")
			b.ReportMetric(float64(tOurs.Nanoseconds())/float64(b.N), "fanout-ns/event")
			b.ReportMetric(tTheirs.Seconds()/tOurs.Seconds(), "x-faster")
			b.ReportMetric(cTheirs.Seconds()/cOurs.Seconds(), "x-less-cpu")
		})
	}
}
