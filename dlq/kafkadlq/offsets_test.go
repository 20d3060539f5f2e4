package kafkadlq_test

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fanbridge/fanbridge/dlq"
	"github.com/fanbridge/fanbridge/dlq/kafkadlq"
	"github.com/fanbridge/fanbridge/retry"
)

// offsetsBudget is how long the package documentation says a listing of offsets keeps asking.
const offsetsBudget = 2500 * time.Millisecond

// A partition whose leader never answers for it fails a read within the listing's budget of 2.5
// s from the first failure, retryable, however long the caller's context: the client would retry
// NOT_LEADER_FOR_PARTITION on its own for up to its RetryTimeout (30 s by default) inside one ask,
// the first one included, and the listing's client does not. Either code is asked again as often
// as the budget allows.
func TestReadGivesUpOnAnAbsentLeaderWithinItsBudget(t *testing.T) {
	for _, code := range []*kerr.Error{kerr.NotLeaderForPartition, kerr.OffsetNotAvailable} {
		t.Run(code.Message, func(t *testing.T) {
			c, cl := cluster(t, 1)
			q := newQueue(t, cl)
			require.NoError(t, q.Put(testCtx(t), sampleEntry(t, "e1")))
			var asks atomic.Int64
			c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.ListOffsets}, Topic: topic, Err: code, Count: -1,
				When: func(kmsg.Request) bool { asks.Add(1); return true }})

			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			start := time.Now()
			err := q.List(ctx, func(dlq.Entry) error { return nil })
			took := time.Since(start)
			t.Logf("took %v, %d asks: %v", took.Round(time.Millisecond), asks.Load(), err)
			require.Error(t, err)
			assert.Less(t, took, offsetsBudget+500*time.Millisecond, "took %v: %v", took, err)
			assert.Greater(t, asks.Load(), int64(1), "asked again")
			assert.Equal(t, retry.ClassRetryable, retry.Classify(err), "%v", err)
			assert.NotErrorIs(t, err, context.DeadlineExceeded, "the caller's context did not end: %v", err)
			assert.ErrorIs(t, err, code)
			assert.NoError(t, ctx.Err())
		})
	}
}

// A caller's context shorter than the budget ends the listing first, and the error says so.
func TestReadOfAbsentLeaderEndsWithTheContext(t *testing.T) {
	c, cl := cluster(t, 1)
	q := newQueue(t, cl)
	require.NoError(t, q.Put(testCtx(t), sampleEntry(t, "e1")))
	c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.ListOffsets}, Topic: topic, Err: kerr.NotLeaderForPartition, Count: -1})

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := q.List(ctx, func(dlq.Entry) error { return nil })
	took := time.Since(start)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Less(t, took, time.Second, "took %v", took)
	assert.Contains(t, err.Error(), kerr.NotLeaderForPartition.Message, "the error names what the reads met")
}

// When the caller's context cuts an ask short, the error still names what the asks before it
// met, not only the context: here the second ask hangs until the context ends.
func TestReadCutByTheContextNamesWhatTheAsksMet(t *testing.T) {
	c, cl := cluster(t, 1)
	q := newQueue(t, cl)
	require.NoError(t, q.Put(testCtx(t), sampleEntry(t, "e1")))
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	var asks atomic.Int64
	c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.ListOffsets}, Topic: topic, Err: kerr.NotLeaderForPartition, Count: -1,
		When: func(kmsg.Request) bool {
			if asks.Add(1) > 1 {
				<-ctx.Done() // the broker stalls; the caller's context ends the ask
			}
			return true
		}})
	err := q.List(ctx, func(dlq.Entry) error { return nil })
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Contains(t, err.Error(), kerr.NotLeaderForPartition.Message, "%v", err)
}

// A broker that answers every ListOffsets well but slowly (a loaded broker, a distant cluster) is
// waited for within the caller's context: the budget bounds only the asking again after an error.
// Each listing asks twice in a row (start, then end offsets), together longer than the budget.
func TestReadWaitsForASlowButHealthyBroker(t *testing.T) {
	c, cl := cluster(t, 1)
	q := newQueue(t, cl)
	require.NoError(t, q.Put(testCtx(t), sampleEntry(t, "e1")))
	const delay = offsetsBudget/2 + 50*time.Millisecond
	var asks atomic.Int64
	c.ControlKey(kmsg.ListOffsets.Int16(), func(kmsg.Request) (kmsg.Response, error, bool) {
		asks.Add(1)
		c.SleepControl(func() { time.Sleep(delay) })
		return nil, nil, false // then answered as usual
	})

	var ids []string
	err := q.List(testCtx(t), func(e dlq.Entry) error { ids = append(ids, e.ID); return nil })
	require.NoError(t, err, "after %d asks", asks.Load())
	assert.Equal(t, []string{"e1"}, ids)
	assert.GreaterOrEqual(t, asks.Load(), int64(4), "two listings of two asks each, every one slow")
}

// unreachable returns a dialer that reaches the brokers until cut is set, and then hears nothing
// back: a dial with a timeout fails as one that timed out does when its timeout ends, one without
// waits for as long as its context lasts.
func unreachable(timeout time.Duration) (dial func(context.Context, string, string) (net.Conn, error), cut *atomic.Bool, dials *atomic.Int64) {
	cut, dials = new(atomic.Bool), new(atomic.Int64)
	return func(ctx context.Context, network, host string) (net.Conn, error) {
		if timeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, timeout)
			defer cancel()
		}
		if cut.Load() {
			dials.Add(1)
			<-ctx.Done()
		}
		var d net.Dialer
		return d.DialContext(ctx, network, host)
	}, cut, dials
}

// A cluster that became unreachable, its dials timing out (a network partition, a firewall that
// drops packets), fails a read within the budget from the first dial that timed out, retryable,
// however long the caller's context: the listing's client, which would dial again inside the
// first ask until ctx ended, meets the failure there, and that starts the budget.
func TestReadOfAnUnreachableClusterEndsWithinTheBudget(t *testing.T) {
	const dialTimeout = 500 * time.Millisecond
	dial, cut, dials := unreachable(dialTimeout)
	_, cl := cluster(t, 1, kgo.Dialer(dial))
	q := newQueue(t, cl)
	require.NoError(t, q.Put(testCtx(t), sampleEntry(t, "e1")))
	cut.Store(true) // the listing's client dials afresh

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	start := time.Now()
	err := q.List(ctx, func(dlq.Entry) error { return nil })
	took := time.Since(start)
	t.Logf("took %v, %d dials: %v", took.Round(time.Millisecond), dials.Load(), err)
	require.Error(t, err)
	assert.Less(t, took, dialTimeout+offsetsBudget+time.Second, "took %v: %v", took, err)
	assert.Equal(t, retry.ClassRetryable, retry.Classify(err), "%v", err)
	assert.Contains(t, err.Error(), "i/o timeout", "the error names what the client met")
	assert.NoError(t, ctx.Err())
}

// A dial that never ends (a dialer without a timeout, into a network that drops packets) is no
// failure to start the budget: the listing's own limit ends the read, retryable, before the
// caller's context.
func TestReadOfAClusterNeverReachedEndsAtTheListingLimit(t *testing.T) {
	const limit = time.Second
	t.Cleanup(kafkadlq.SetOffsetsLimit(limit))
	dial, cut, dials := unreachable(0)
	_, cl := cluster(t, 1, kgo.Dialer(dial))
	q := newQueue(t, cl)
	require.NoError(t, q.Put(testCtx(t), sampleEntry(t, "e1")))
	cut.Store(true)

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	start := time.Now()
	_, err := q.Get(ctx, "e1")
	took := time.Since(start)
	t.Logf("took %v, %d dials: %v", took.Round(time.Millisecond), dials.Load(), err)
	require.Error(t, err)
	assert.Less(t, took, limit+time.Second, "took %v: %v", took, err)
	assert.Equal(t, retry.ClassRetryable, retry.Classify(err), "%v", err)
	assert.Contains(t, err.Error(), "no answer within")
	assert.NoError(t, ctx.Err())
}

// A broker that accepts connections and never answers fails a read within the budget from the
// first request whose read deadline (kgo.RequestTimeoutOverhead) passed, though the client, which
// is opening a connection then, does not give up at once: the read does not wait for it.
func TestReadOfABrokerThatNeverAnswersEndsWithinTheBudget(t *testing.T) {
	const overhead = time.Second
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { silent.Close() })
	accepted := make(chan net.Conn, 64)
	go func() {
		for {
			conn, err := silent.Accept()
			if err != nil {
				return
			}
			accepted <- conn // held open, never answered
		}
	}()
	t.Cleanup(func() {
		for {
			select {
			case conn := <-accepted:
				conn.Close()
			default:
				return
			}
		}
	})
	var cut atomic.Bool
	dial := func(ctx context.Context, network, host string) (net.Conn, error) {
		if cut.Load() {
			host = silent.Addr().String()
		}
		var d net.Dialer
		return d.DialContext(ctx, network, host)
	}
	_, cl := cluster(t, 1, kgo.Dialer(dial), kgo.RequestTimeoutOverhead(overhead))
	q := newQueue(t, cl)
	require.NoError(t, q.Put(testCtx(t), sampleEntry(t, "e1")))
	cut.Store(true)

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	start := time.Now()
	err = q.List(ctx, func(dlq.Entry) error { return nil })
	took := time.Since(start)
	t.Logf("took %v: %v", took.Round(time.Millisecond), err)
	require.Error(t, err)
	assert.Less(t, took, overhead+offsetsBudget+500*time.Millisecond, "took %v: %v", took, err)
	assert.Equal(t, retry.ClassRetryable, retry.Classify(err), "%v", err)
	assert.Contains(t, err.Error(), "i/o timeout", "the error names what the client met")
	assert.NoError(t, ctx.Err())
}
