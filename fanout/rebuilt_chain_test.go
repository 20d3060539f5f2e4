package fanout_test

import (
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/fanout"
)

// A sink rebuilt under ordering keys waits for the one it replaces, which waits for its own, and
// so on back to one whose Send is stuck. The copies that wait hold no goroutine of their own:
// however many Updates pile up behind the stuck Send, the process grows by the Updates' own
// bookkeeping, not by the copies' Concurrency. Once the Send returns, every copy delivers its
// events, each key in dispatch order, and the goroutines go.
func TestRebuiltSinksWaitingInAChainHoldNoWorkers(t *testing.T) {
	const cycles, concurrency = 100, 8
	for _, tc := range []struct {
		name string
		// rebuild rebuilds the sink for cycle i with update: its events then go to the new copy.
		rebuild func(update func(fanout.Config), cfg func(concurrency int, withS bool) fanout.Config, i int)
	}{
		{"removed and added again", func(update func(fanout.Config), cfg func(int, bool) fanout.Config, _ int) {
			update(cfg(concurrency, false))
			update(cfg(concurrency, true))
		}},
		{"changed", func(update func(fanout.Config), cfg func(int, bool) fanout.Config, i int) {
			update(cfg(concurrency+i%2, true))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testContext(t)
			entered := make(chan struct{})
			release := make(chan struct{})
			var releaseOnce sync.Once
			let := func() { releaseOnce.Do(func() { close(release) }) }
			t.Cleanup(let) // before the Dispatcher's Close, registered later
			s := newRecSink()
			s.fail = func(e *fanbridge.Event, _ int) error {
				if e.ID == "A-0" {
					close(entered)
					<-release
				}
				return nil
			}
			other := newRecSink()
			cfg := func(concurrency int, withS bool) fanout.Config {
				c := fanout.Config{
					Sinks:  []fanout.SinkConfig{{Name: "other", Sink: other}},
					Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"other"}}},
					DLQ:    &memDLQ{},
				}
				if withS {
					c.Sinks = append(c.Sinks, fanout.SinkConfig{Name: "s", Sink: s, Concurrency: concurrency})
					c.Routes[0].Sinks = append(c.Routes[0].Sinks, "s")
				}
				return c
			}
			d := newDispatcher(t, cfg(concurrency, true), fanout.WithMode(fanout.Async), fanout.WithOrderingKey(byConversation))
			keyedAs := func(key string, seq int) *fanbridge.Event {
				return keyed(key+"-"+strconv.Itoa(seq), key)
			}
			require.NoError(t, d.Dispatch(ctx, keyedAs("A", 0)))
			recv(t, entered)

			updates := 0
			update := func(c fanout.Config) {
				require.NoError(t, d.Update(c))
				updates++
			}
			before := runtime.NumGoroutine()
			for i := 1; i <= cycles; i++ {
				tc.rebuild(update, cfg, i)
				// Each copy is given events of the stuck key and of another one.
				require.NoError(t, d.Dispatch(ctx, keyedAs("A", i)))
				require.NoError(t, d.Dispatch(ctx, keyedAs("B", i)))
			}
			grown := runtime.NumGoroutine() - before
			assert.Equal(t, 0, s.TotalDelivered(), "every copy waits behind the stuck Send")
			// Each Update's retirement of the configuration it replaced waits on a goroutine until
			// that one has settled; the copies themselves add none (their workers would add
			// cycles*concurrency).
			assert.LessOrEqual(t, grown, updates+8, "goroutines added by %d rebuilds (%d Updates) of a sink with Concurrency %d",
				cycles, updates, concurrency)

			let()
			require.NoError(t, d.Settle(ctx))
			require.Eventually(t, func() bool { return s.TotalDelivered() == 1+2*cycles }, testTimeout, time.Millisecond,
				"every event delivered: %d", s.TotalDelivered())
			next := map[string]int{}
			for _, id := range s.Order() {
				key, seq, _ := strings.Cut(id, "-")
				n, err := strconv.Atoi(seq)
				require.NoError(t, err)
				if key == "B" && next[key] == 0 {
					next[key] = 1
				}
				assert.Equal(t, next[key], n, "%s out of order", id)
				next[key] = n + 1
			}
			assert.Equal(t, map[string]int{"A": cycles + 1, "B": cycles + 1}, next)
			assert.Equal(t, 1, fanout.RunningSinks(d, "s"), "the copies an Update replaced have stopped")
			require.Eventually(t, func() bool { return runtime.NumGoroutine() <= before+4 }, testTimeout,
				time.Millisecond, "goroutines back to about where they were: %d, were %d", runtime.NumGoroutine(), before)
			require.NoError(t, d.Close(ctx))
		})
	}
}
