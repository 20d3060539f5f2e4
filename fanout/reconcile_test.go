package fanout_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/dlq"
	"github.com/fanbridge/fanbridge/fanout"
	"github.com/fanbridge/fanbridge/retry"
	"github.com/fanbridge/fanbridge/sink"
)

var long = flag.Bool("long", false, "run the long variants of the stress tests")

// Whatever a Dispatcher is handed to, it is an eventbridge.Dispatcher; checked here without
// importing package eventbridge.
var _ interface {
	Dispatch(context.Context, *fanbridge.Event) error
} = (*fanout.Dispatcher)(nil)

// chaosSink fails at random: retryably, permanently, or by hanging until its context ends.
type chaosSink struct {
	name                 string
	retryable, permanent float64
	hang                 float64
	mu                   sync.Mutex
	rnd                  *rand.Rand
	delivered            map[string]int
}

func (c *chaosSink) Send(ctx context.Context, e *fanbridge.Event) error {
	c.mu.Lock()
	r := c.rnd.Float64()
	c.mu.Unlock()
	switch {
	case r < c.permanent:
		return retry.Permanent(fmt.Errorf("%s: rejected", c.name))
	case r < c.permanent+c.retryable:
		return fmt.Errorf("%s: unavailable", c.name)
	case r < c.permanent+c.retryable+c.hang:
		<-ctx.Done()
		return ctx.Err()
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	c.delivered[e.ID]++
	c.mu.Unlock()
	return nil
}

// TestReconcileUnderFailures pushes events through senders that behave like Amazon EventBridge
// (any answer but "done", "ignored" or "duplicate" makes them retry) into sinks that fail every
// way a sink can, with a dead-letter queue that fails too. At the end every (event, sink) must be
// in exactly one place: the sink or the dead-letter queue. Nothing lost, nothing twice.
func TestReconcileUnderFailures(t *testing.T) {
	events := 20000
	if *long {
		events = 200000
	}
	for _, mode := range []fanout.Mode{fanout.Sync, fanout.Async} {
		t.Run(mode.String(), func(t *testing.T) {
			sinks := []*chaosSink{
				{name: "kafka", retryable: 0.10},
				{name: "grpc-a", retryable: 0.20, permanent: 0.02},
				{name: "grpc-b", retryable: 0.05, hang: 0.005},
			}
			cfg := fanout.Config{Routes: []fanout.Route{
				{Name: "all", Filter: fanout.All, Sinks: []string{"kafka", "grpc-a"}},
				{Name: "some", Filter: typeIs("b"), Sinks: []string{"grpc-b"}},
			}}
			for i, s := range sinks {
				s.rnd = rand.New(rand.NewPCG(uint64(i), 42))
				s.delivered = map[string]int{}
				// AttemptTimeout: in Async mode nothing else would bound a hanging Send.
				cfg.Sinks = append(cfg.Sinks, fanout.SinkConfig{Name: s.name, Sink: s, Retry: retry.Policy{
					InitialInterval: time.Millisecond, MaxInterval: 5 * time.Millisecond, MaxAttempts: 4,
					AttemptTimeout: 50 * time.Millisecond},
					Breaker: fanout.Breaker{Failures: -1}})
			}
			var dlqMu sync.Mutex
			dlqRnd := rand.New(rand.NewPCG(7, 7))
			busy := map[string]int{} // by entry ID: how often this write was answered "busy"
			q := &memDLQ{fail: func(e dlq.Entry) error {
				dlqMu.Lock()
				defer dlqMu.Unlock()
				switch r := dlqRnd.Float64(); {
				case r < 0.05 && mode == fanout.Sync:
					// In Sync mode the sender retries a refused event; in Async mode there is
					// no one to retry it (see TestAsyncLossIsReported), so only transient
					// failures there.
					return retry.Permanent(errors.New("dlq: refused"))
				case r < 0.25 && busy[e.ID] < 2:
					// At most twice per write: a queue busy for longer than the DLQ timeout
					// loses an Async event by design, and would make the outcome a matter of
					// luck.
					busy[e.ID]++
					return errors.New("dlq: busy")
				}
				return nil
			}}
			cfg.DLQ = q
			// At most two busy answers per write, 20 to 40 ms apart, take well under a second;
			// the timeout is ten times that, as a process starved on a loaded machine (-race,
			// one P) was seen to stall a write past one second, and in Async mode a write past its
			// timeout loses the event by design.
			d, err := fanout.New(cfg, fanout.WithMode(mode), fanout.WithDLQTimeout(10*time.Second))
			require.NoError(t, err)

			ids := make(chan int)
			var attempts, refused atomic.Int64
			// A minute per 20,000 events: the run takes a few seconds, a loaded machine several
			// times that, and -long ten times as many events.
			ctx, cancel := context.WithTimeout(context.Background(), time.Duration(events/20000)*time.Minute)
			defer cancel()
			var wg sync.WaitGroup
			for range 16 {
				wg.Go(func() {
					for i := range ids {
						typ := "a"
						if i%3 == 0 {
							typ = "b"
						}
						e := event(fmt.Sprintf("ev-%d", i), typ)
						for {
							attempts.Add(1)
							dctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
							err := d.Dispatch(dctx, e)
							cancel()
							if err == nil || errors.Is(err, fanbridge.ErrDuplicate) {
								break
							}
							refused.Add(1)
							if ctx.Err() != nil {
								t.Errorf("gave up on %s: %v", e.ID, err)
								return
							}
						}
					}
				})
			}
		feed:
			for i := range events {
				select {
				case ids <- i:
				case <-ctx.Done(): // the senders have given up, and said so
					break feed
				}
			}
			close(ids)
			waitGroup(t, &wg)
			require.NoError(t, d.Close(ctx), "nothing may be lost")

			inDLQ := map[string]int{}
			for _, e := range q.Entries() {
				inDLQ[e.Sink+"/"+e.Event.ID]++
			}
			bad := 0
			for i := range events {
				id := fmt.Sprintf("ev-%d", i)
				for _, s := range sinks {
					if s.name == "grpc-b" && i%3 != 0 {
						continue
					}
					if n := s.delivered[id] + inDLQ[s.name+"/"+id]; n != 1 {
						bad++
						if bad < 10 {
							t.Errorf("%s at %s: delivered %d, dead-lettered %d", id, s.name, s.delivered[id], inDLQ[s.name+"/"+id])
						}
					}
				}
			}
			assert.Zero(t, bad)
			t.Logf("%s: %d events, %d dispatches (%d answered retry), %d dead-letter entries",
				mode, events, attempts.Load(), refused.Load(), len(q.Entries()))
		})
	}
}

var _ sink.Sink = (*chaosSink)(nil)

// heldDLQ holds the Put of one event until released.
type heldDLQ struct {
	memDLQ
	id               string
	entered, release chan struct{}
}

func (q *heldDLQ) Put(ctx context.Context, e dlq.Entry) error {
	if e.Event.ID == q.id {
		close(q.entered)
		select {
		case <-q.release:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return q.memDLQ.Put(ctx, e)
}

// An event a Sync dispatch withdraws from a sink's queue when its budget runs out gives its room
// back at once, but stays in Queued while its dead-letter write runs: with the sink's worker
// idle, the counts of the sink still account for every event it was given. e0 has an ordering
// key, so that b's only worker (not its dispatch) runs it and holds b's only send slot: e1 and
// e2 then wait in b's queue.
func TestWithdrawnEventCountedWhileItsDeadLetterWriteRuns(t *testing.T) {
	ctx := testContext(t)
	q := &heldDLQ{id: "e2", entered: make(chan struct{}), release: make(chan struct{})}
	inB, releaseB := make(chan struct{}, 1), make(chan struct{})
	b := sink.Func(func(ctx context.Context, e *fanbridge.Event) error {
		if e.ID == "e0" {
			inB <- struct{}{}
			<-releaseB
		}
		return nil
	})
	d := newDispatcher(t, fanout.Config{
		Sinks: []fanout.SinkConfig{
			{Name: "a", Sink: sink.Func(func(context.Context, *fanbridge.Event) error { return nil })},
			{Name: "b", Sink: b, Concurrency: 1, QueueSize: 10},
		},
		Routes: []fanout.Route{{Name: "all", Filter: fanout.All, Sinks: []string{"a", "b"}}},
		DLQ:    q,
	}, fanout.WithDLQTimeout(15*time.Second), fanout.WithDLQReserve(10*time.Millisecond),
		fanout.WithOrderingKey(func(e *fanbridge.Event) string {
			if e.ID == "e0" {
				return "k"
			}
			return ""
		}))

	done := make(chan error, 3)
	go func() { done <- d.Dispatch(ctx, event("e0", "x")) }()
	recv(t, inB)
	go func() { done <- d.Dispatch(ctx, event("e1", "x")) }()
	go func() {
		budget, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		done <- d.Dispatch(budget, event("e2", "x"))
	}()
	recv(t, q.entered) // e2's budget ran out while it waited at b: its dead-letter write runs
	close(releaseB)
	require.NoError(t, recv(t, done))
	require.NoError(t, recv(t, done)) // e0 and e1 delivered; b's worker is idle

	stats := func() fanout.SinkStats {
		for _, s := range d.Stats() {
			if s.Name == "b" {
				return s
			}
		}
		t.Fatal("no stats for b")
		return fanout.SinkStats{}
	}
	st := stats()
	assert.Equal(t, int64(3), st.Delivered+st.DeadLettered+st.Failed+st.Queued, "%+v", st)
	assert.Equal(t, int64(1), st.Queued, "e2, while its write runs")
	assert.Zero(t, st.DeadLettered)
	close(q.release)
	require.NoError(t, recv(t, done))
	assert.Equal(t, fanout.SinkStats{Name: "b", Delivered: 2, DeadLettered: 1, Breaker: "closed"}, stats())
}
