package kafkadlq_test

import (
	"context"
	"encoding/json"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/dlq"
	"github.com/fanbridge/fanbridge/dlq/dlqtest"
	"github.com/fanbridge/fanbridge/retry"
)

const benchWriters = 16

// naiveEntry mirrors dlq.Entry without its JSON methods, as a hand-written producer would.
type naiveEntry struct {
	ID, Sink, Route, Class, Error string
	Attempts                      int
	FirstAttempt, LastAttempt     time.Time
	Condition, TraceID            string
	Event                         fanbridge.Event
}

// runPuts calls put n times from the given number of goroutines and returns the time taken.
func runPuts(b *testing.B, n, writers int, put func() error) time.Duration {
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range writers {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				if err := put(); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	return time.Since(start)
}

// BenchmarkPut puts a Genesys event into kfake and compares it with the dead-letter producer of
// tutorials: the entry marshalled with encoding/json as the record value, produced synchronously
// with the same client.
func BenchmarkPut(b *testing.B) {
	for _, writers := range []int{1, benchWriters} {
		name := "sequential"
		if writers > 1 {
			name = "parallel"
		}
		b.Run(name, func(b *testing.B) {
			_, cl := cluster(b, 1)
			q := newQueue(b, cl)
			ctx := context.Background()
			ev := dlqtest.SampleEvents()[0]
			e := dlq.NewEntry(&ev, "kafka-conversations", "ended", retry.Permanent(os.ErrDeadlineExceeded), time.Now(), time.Now())
			require.NoError(b, q.Put(ctx, e)) // warm up the connection and metadata
			b.ReportAllocs()
			b.ResetTimer()
			ours := runPuts(b, b.N, writers, func() error { return q.Put(ctx, e) })
			b.StopTimer()
			naive := runPuts(b, b.N, writers, func() error {
				v, err := json.Marshal(naiveEntry{e.ID, e.Sink, e.Route, string(e.Class), e.Error, e.Attempts,
					e.FirstAttempt, e.LastAttempt, string(e.Condition), e.TraceID, e.Event})
				if err != nil {
					return err
				}
				return cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Key: []byte(e.Event.ID), Value: v}).FirstErr()
			})
			b.ReportMetric(float64(naive)/float64(ours), "x-faster")
		})
	}
}
