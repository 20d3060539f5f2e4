package kafkadlq_test

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fanbridge/fanbridge/dlq"
	"github.com/fanbridge/fanbridge/dlq/kafkadlq"
	"github.com/fanbridge/fanbridge/retry"
)

// goroutines returns the stacks of every goroutine.
func goroutines() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Split(string(buf[:n]), "\n\n")
		}
		buf = make([]byte, 2*len(buf))
	}
}

// poll calls done every few milliseconds, within returnBound, until it reports true, and fails the
// test with what's message if it never does.
func poll(t *testing.T, ctx context.Context, done func() bool, what func() string) {
	t.Helper()
	bound, stop := context.WithTimeout(ctx, returnBound)
	defer stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !done() {
		select {
		case <-tick.C:
		case <-bound.Done():
			t.Fatal(what())
		}
	}
}

// countGoroutines counts the goroutines whose stack holds frame.
func countGoroutines(frame string) int {
	n := 0
	for _, g := range goroutines() {
		if strings.Contains(g, frame) {
			n++
		}
	}
	return n
}

// waitForGoroutine waits for a goroutine whose stack holds frame.
func waitForGoroutine(t *testing.T, ctx context.Context, frame string) {
	t.Helper()
	poll(t, ctx, func() bool { return countGoroutines(frame) > 0 }, func() string { return "no goroutine in " + frame })
}

// goroutinesBackTo waits for the number of goroutines to come down to n, and fails the test,
// showing one of those still producing, if it does not.
func goroutinesBackTo(t *testing.T, ctx context.Context, n int) {
	t.Helper()
	poll(t, ctx, func() bool { return runtime.NumGoroutine() <= n }, func() string {
		var producing []string
		for _, g := range goroutines() {
			if strings.Contains(g, "kgo.(*Client).produce") || strings.Contains(g, "kafkadlq.(*Queue).produce") {
				producing = append(producing, g)
			}
		}
		return fmt.Sprintf("%d goroutines, %d before the Puts; %d still producing, the first:\n%s",
			runtime.NumGoroutine(), n, len(producing), strings.Join(producing[:min(1, len(producing))], ""))
	})
}

// A Put that gives up waiting for room in the client's buffer leaves nothing behind: no goroutine
// waits to hand its record to the client once room comes. So the Puts that fail while the broker
// is away (fanout retries each dead-letter write many times) cannot pile up, and once the broker
// is back none of their records is written. The records the buffer held are, as documented.
func TestPutsThatFindTheBufferFullLeaveNothingBehind(t *testing.T) {
	const room = 4 // the client's buffer
	for _, tc := range []struct {
		name string
		// fill fills the client's buffer and returns the IDs of the entries it holds.
		fill func(t *testing.T, ctx context.Context, q *kafkadlq.Queue, cl *kgo.Client) []string
	}{
		{"with the queue's own records", func(t *testing.T, ctx context.Context, q *kafkadlq.Queue, cl *kgo.Client) []string {
			// Each waits for its acknowledgement until its context ends, and leaves its record to
			// the client: it may still be written.
			var ids []string
			for i := range room {
				id := fmt.Sprint("buffered-", i)
				putCtx, giveUp := context.WithCancel(ctx)
				defer giveUp()
				res := make(chan error, 1)
				go func() { res <- q.Put(putCtx, sampleEntry(t, id)) }()
				poll(t, ctx, func() bool { return cl.BufferedProduceRecords() == int64(i+1) },
					func() string { return "the client never took " + id })
				giveUp()
				err := waitFor(t, ctx, res, "the Put of "+id)
				require.ErrorIs(t, err, context.Canceled)
				require.Contains(t, err.Error(), "may still be written")
				ids = append(ids, id)
			}
			return ids
		}},
		{"with another producer's records", func(t *testing.T, ctx context.Context, _ *kafkadlq.Queue, cl *kgo.Client) []string {
			// A sink sharing the client, say. These are no entries: List skips them.
			for i := range room {
				cl.Produce(ctx, &kgo.Record{Topic: topic, Value: fmt.Append(nil, "other-", i)}, nil)
			}
			require.EqualValues(t, room, cl.BufferedProduceRecords())
			return nil
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testCtx(t)
			c, cl := cluster(t, 1, kgo.MaxBufferedRecords(room))
			q := newQueue(t, cl)
			require.NoError(t, q.Put(ctx, sampleEntry(t, "warm")), "loads metadata and the producer ID")
			release, arrived := hold(t, c, kmsg.Produce) // the broker is away
			buffered := tc.fill(t, ctx, q, cl)
			waitFor(t, ctx, arrived, "the produce request")
			// The broker parks the request on a goroutine it starts after reporting its arrival.
			waitForGoroutine(t, ctx, "kfake.(*bsleep).wait")
			before := runtime.NumGoroutine()

			// They all wait for room; then their context ends.
			const puts = 50
			putCtx, giveUp := context.WithCancel(ctx)
			defer giveUp()
			errs := make(chan error, puts)
			for i := range puts {
				go func() { errs <- q.Put(putCtx, sampleEntry(t, fmt.Sprint("refused-", i))) }()
			}
			poll(t, ctx, func() bool { return countGoroutines("kafkadlq.(*Queue).produce(") == puts },
				func() string {
					return fmt.Sprint(countGoroutines("kafkadlq.(*Queue).produce("), " of the Puts wait for room")
				})
			giveUp()
			for range puts {
				err := waitFor(t, ctx, errs, "a Put into the full buffer")
				require.ErrorIs(t, err, kafkadlq.ErrBufferFull)
				require.ErrorIs(t, err, context.Canceled)
				assert.False(t, retry.IsPermanent(err))
				assert.NotContains(t, err.Error(), "may still be written")
			}
			goroutinesBackTo(t, ctx, before)

			release() // the broker is back
			require.NoError(t, cl.Flush(ctx))
			require.NoError(t, q.Put(ctx, sampleEntry(t, "after")))
			var ids []string
			require.NoError(t, q.List(ctx, func(e dlq.Entry) error { ids = append(ids, e.ID); return nil }))
			assert.ElementsMatch(t, append(buffered, "warm", "after"), ids,
				"every buffered record is written, and no record of a Put that found the buffer full")
		})
	}
}

// offerCounter counts the client's takes, or refusals, of the record whose dlq.id is id.
type offerCounter struct {
	id string
	n  atomic.Int32
}

func (h *offerCounter) OnProduceRecordBuffered(r *kgo.Record) {
	if headers(r)["dlq.id"] == h.id {
		h.n.Add(1)
	}
}

// A client whose buffer is bounded in bytes may refuse a record for want of room while the queue
// holds few records: the Put offers it again, within its context, and so waits out the outage.
func TestPutWaitsOutABufferFullOfBytes(t *testing.T) {
	const room = 4096
	ctx := testCtx(t)
	offers := &offerCounter{id: "waited"}
	c, cl := cluster(t, 1, kgo.MaxBufferedBytes(room), kgo.WithHooks(offers))
	q := newQueue(t, cl)
	require.NoError(t, q.Put(ctx, sampleEntry(t, "warm")))
	release, arrived := hold(t, c, kmsg.Produce)
	cl.Produce(ctx, &kgo.Record{Topic: topic, Value: make([]byte, room-16)}, nil)
	waitFor(t, ctx, arrived, "the produce request")

	res := make(chan error, 1)
	go func() { res <- q.Put(ctx, sampleEntry(t, "waited")) }()
	poll(t, ctx, func() bool { return offers.n.Load() >= 2 }, func() string { return "the record was not offered again" })
	release()
	require.NoError(t, waitFor(t, ctx, res, "the Put"))
	got, err := q.Get(ctx, "waited")
	require.NoError(t, err)
	assert.Equal(t, "waited", got.ID)
}
