package kafkadlq_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fanbridge/fanbridge/dlq"
	"github.com/fanbridge/fanbridge/retry"
)

// offsetsBudget is how long the package documentation says a listing of offsets keeps asking.
const offsetsBudget = 2500 * time.Millisecond

// A partition whose leader never answers for it fails a read within the listing's budget of 2.5
// s, retryable, however long the caller's context: the client retries NOT_LEADER_FOR_PARTITION
// on its own for up to its RetryTimeout (30 s by default) before each ask of the queue returns,
// and the asks of the queue do not add up to more than the budget. A code the client does not
// retry is asked again as often as the budget allows.
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
