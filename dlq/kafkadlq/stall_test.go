package kafkadlq_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fanbridge/fanbridge/dlq"
	"github.com/fanbridge/fanbridge/dlq/dlqtest"
	"github.com/fanbridge/fanbridge/dlq/kafkadlq"
	"github.com/fanbridge/fanbridge/retry"
)

// returnBound is how long a call whose context has ended may take to return. It is a failure
// bound, not a synchronisation: a correct call returns in microseconds.
const returnBound = 5 * time.Second

// hold makes the cluster keep every request of the given kind until release is called, which is
// safe to call more than once and is also called when the test ends. arrived receives a value
// each time a held request reaches the broker.
func hold(t testing.TB, c *kfake.Cluster, key kmsg.Key) (release func(), arrived <-chan struct{}) {
	t.Helper()
	ch := make(chan struct{})
	got := make(chan struct{}, 64)
	c.ControlKey(key.Int16(), func(kmsg.Request) (kmsg.Response, error, bool) {
		select {
		case <-ch:
			c.DropControl() // released: stop watching
		default:
			select {
			case got <- struct{}{}:
			default:
			}
			c.SleepControl(func() { <-ch })
		}
		return nil, nil, false
	})
	var once sync.Once
	release = func() { once.Do(func() { close(ch) }) }
	t.Cleanup(release) // runs before the cluster's and client's cleanups, registered earlier
	return release, got
}

func waitFor[T any](t testing.TB, ctx context.Context, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-ctx.Done():
		t.Fatalf("waiting for %s: %v", what, ctx.Err())
		panic("unreachable")
	}
}

// bufferedHook signals each record the client takes into its buffer.
type bufferedHook struct{ ch chan struct{} }

func (h *bufferedHook) OnProduceRecordBuffered(*kgo.Record) { h.ch <- struct{}{} }

func sampleEntry(t testing.TB, id string) dlq.Entry {
	t.Helper()
	ev := dlqtest.SampleEvents()[0]
	e := dlq.NewEntry(&ev, "kafka-crm", "ended", errors.New("broker down"), time.Now(), time.Now())
	e.ID = id
	return e
}

// A broker that never answers must not hold Put or Delete past their context: with an idempotent
// acks=all client, franz-go cannot fail a record once its request is sent, so only the queue can
// give up waiting.
func TestWritesReturnWhenTheContextEndsBeforeTheAcknowledgement(t *testing.T) {
	for _, tc := range []struct {
		name  string
		write func(context.Context, *testing.T, *kafkadlq.Queue) error
	}{
		{"Put", func(ctx context.Context, t *testing.T, q *kafkadlq.Queue) error {
			return q.Put(ctx, sampleEntry(t, "held"))
		}},
		{"Delete", func(ctx context.Context, _ *testing.T, q *kafkadlq.Queue) error {
			return q.Delete(ctx, "held")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testCtx(t)
			c, cl := cluster(t, 1)
			q := newQueue(t, cl)
			require.NoError(t, q.Put(ctx, sampleEntry(t, "warm")), "loads metadata and the producer ID")
			release, arrived := hold(t, c, kmsg.Produce)

			callCtx, cancel := context.WithCancel(ctx)
			defer cancel()
			res := make(chan error, 1)
			go func() { res <- tc.write(callCtx, t, q) }()
			waitFor(t, ctx, arrived, "the produce request")
			cancel()

			bound, stop := context.WithTimeout(ctx, returnBound)
			defer stop()
			err := waitFor(t, bound, res, "the write to return after its context ended")
			require.ErrorIs(t, err, context.Canceled)
			assert.Equal(t, retry.ClassCanceled, retry.Classify(err))
			assert.Contains(t, err.Error(), "may still be written")

			// The client keeps producing the record: once the broker answers, it is there. The
			// partition keeps the client's order, so a held Put is written once a later one is
			// acknowledged; a Delete writes with a client of its own, so its record is waited for.
			release()
			if tc.name == "Put" {
				require.NoError(t, q.Put(ctx, sampleEntry(t, "after")))
				got, err := q.Get(ctx, "held")
				require.NoError(t, err)
				assert.Equal(t, "held", got.ID)
			} else {
				recs := consumeAll(t, ctx, cl, 2)
				assert.Equal(t, "remove", headers(recs[1])["dlq.op"])
				require.NoError(t, q.Put(ctx, sampleEntry(t, "held")))
				_, err := q.Get(ctx, "held")
				require.ErrorIs(t, err, dlq.ErrNotFound, "the removal was written after all")
			}
		})
	}
}

// Records that wait together share the fate of the first one's context inside franz-go (here:
// the wait for a topic's metadata), so a Put that gives up must not fail the others.
func TestOnePutsCancellationDoesNotFailOthers(t *testing.T) {
	ctx := testCtx(t)
	hook := &bufferedHook{ch: make(chan struct{}, 16)}
	c, cl := cluster(t, 1, kgo.WithHooks(hook))
	q := newQueue(t, cl)
	release, arrived := hold(t, c, kmsg.Metadata)

	firstCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	first := make(chan error, 1)
	go func() { first <- q.Put(firstCtx, sampleEntry(t, "first")) }()
	waitFor(t, ctx, hook.ch, "the first record to be buffered")
	waitFor(t, ctx, arrived, "the metadata request the first record triggers")

	const others = 4
	errs := make(chan error, others)
	for i := range others {
		go func() { errs <- q.Put(ctx, sampleEntry(t, fmt.Sprint("other-", i))) }()
	}
	for range others {
		waitFor(t, ctx, hook.ch, "another record to be buffered")
	}
	cancel()
	require.ErrorIs(t, waitFor(t, ctx, first, "the canceled Put"), context.Canceled)

	release()
	for range others {
		assert.NoError(t, waitFor(t, ctx, errs, "another Put"), "a Put whose context is alive")
	}
	for i := range others {
		_, err := q.Get(ctx, fmt.Sprint("other-", i))
		assert.NoError(t, err)
	}
}

// A Put finding the client's buffer full waits for room within its context; one whose context
// ends first fails with a retryable error, and its record is never written.
func TestPutWaitsForRoomInAFullClientBuffer(t *testing.T) {
	ctx := testCtx(t)
	c, cl := cluster(t, 1, kgo.MaxBufferedRecords(1))
	q := newQueue(t, cl)
	require.NoError(t, q.Put(ctx, sampleEntry(t, "warm")))
	release, arrived := hold(t, c, kmsg.Produce)
	held := make(chan error, 1)
	go func() { held <- q.Put(ctx, sampleEntry(t, "held")) }()
	waitFor(t, ctx, arrived, "the produce request")

	// Within its context, a Put waits for room, and returns when the context ends.
	short, stop := context.WithTimeout(ctx, 100*time.Millisecond)
	defer stop()
	err := q.Put(short, sampleEntry(t, "gave-up"))
	require.ErrorIs(t, err, kafkadlq.ErrBufferFull)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Equal(t, retry.ClassRetryable, retry.Classify(err))
	assert.NotContains(t, err.Error(), "may still be written")
	res := make(chan error, 1)
	go func() { res <- q.Put(ctx, sampleEntry(t, "waited")) }()

	release()
	require.NoError(t, waitFor(t, ctx, held, "the held Put"))
	require.NoError(t, waitFor(t, ctx, res, "the Put that waited for room"))
	require.NoError(t, cl.Flush(ctx))
	var ids []string
	require.NoError(t, q.List(ctx, func(e dlq.Entry) error { ids = append(ids, e.ID); return nil }))
	assert.ElementsMatch(t, []string{"warm", "held", "waited"}, ids, "the Put that gave up wrote nothing")
}

// A Delete of more ids than the client's buffer holds goes out as room comes, as a redrive's
// removal of a whole batch needs. Its writer takes the buffer size from WithReadOpts.
func TestDeleteOfMoreIDsThanTheBufferHolds(t *testing.T) {
	ctx := testCtx(t)
	_, cl := cluster(t, 1, kgo.MaxBufferedRecords(2))
	q := newQueue(t, cl, kafkadlq.WithReadOpts(kgo.MaxBufferedRecords(2)))
	var ids []string
	for i := range 5 {
		e := sampleEntry(t, fmt.Sprintf("e%d", i))
		require.NoError(t, q.Put(ctx, e))
		ids = append(ids, e.ID)
	}
	require.NoError(t, q.Delete(ctx, ids...))
	n := 0
	require.NoError(t, q.List(ctx, func(dlq.Entry) error { n++; return nil }))
	assert.Zero(t, n)
}
