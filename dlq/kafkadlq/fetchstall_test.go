package kafkadlq_test

import (
	"context"
	"errors"
	"fmt"
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

// After the offsets were listed, the broker fails every fetch in a way franz-go retries on its
// own without reporting it: it drops the connection (a broker that crashed mid-read and is
// restarting), or answers with a retriable error code. Get and List fail, retryable, once no
// fetch has brought anything for the scan's stall limit, instead of waiting until ctx ends.
func TestReadsEndWhenFetchesBringNothing(t *testing.T) {
	const stall = time.Second
	defer kafkadlq.SetScanStallLimit(stall)()
	for _, tt := range []struct {
		name  string
		fetch func(req kmsg.Request) (kmsg.Response, error)
	}{
		{"connection dropped", func(kmsg.Request) (kmsg.Response, error) {
			return nil, errors.New("connection dropped")
		}},
		{"not leader", func(req kmsg.Request) (kmsg.Response, error) {
			return failedFetch(req.(*kmsg.FetchRequest), kerr.NotLeaderForPartition.Code), nil
		}},
		{"storage error", func(req kmsg.Request) (kmsg.Response, error) {
			return failedFetch(req.(*kmsg.FetchRequest), kerr.KafkaStorageError.Code), nil
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testCtx(t)
			c, cl := cluster(t, 1)
			q := newQueue(t, cl)
			require.NoError(t, q.Put(ctx, dlq.Entry{ID: "kept", Sink: "s"}))
			c.ControlKey(kmsg.Fetch.Int16(), func(req kmsg.Request) (kmsg.Response, error, bool) {
				c.KeepControl()
				resp, err := tt.fetch(req)
				return resp, err, true
			})
			for name, read := range map[string]func(context.Context) error{
				"Get": func(ctx context.Context) error { _, err := q.Get(ctx, "kept"); return err },
				"List": func(ctx context.Context) error {
					return q.List(ctx, func(dlq.Entry) error { return nil })
				},
			} {
				start := time.Now()
				err := read(ctx)
				took := time.Since(start)
				require.Error(t, err, name)
				assert.NotErrorIs(t, err, dlq.ErrNotFound, name)
				assert.Equal(t, retry.ClassRetryable, retry.Classify(err), "%s: %v", name, err)
				assert.Contains(t, err.Error(), "no fetch brought any", name)
				assert.GreaterOrEqual(t, took, stall, name)
				assert.Less(t, took, 5*stall+5*time.Second, "%s waited %s", name, took)
			}
		})
	}
}

// failedFetch answers req with code for every partition it asks for.
func failedFetch(req *kmsg.FetchRequest, code int16) *kmsg.FetchResponse {
	resp := req.ResponseKind().(*kmsg.FetchResponse)
	for _, rt := range req.Topics {
		st := kmsg.NewFetchResponseTopic()
		st.Topic, st.TopicID = rt.Topic, rt.TopicID
		for _, rp := range rt.Partitions {
			sp := kmsg.NewFetchResponseTopicPartition()
			sp.Partition, sp.ErrorCode = rp.Partition, code
			sp.HighWatermark, sp.LastStableOffset, sp.LogStartOffset = -1, -1, -1
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}

// Records written after the scan began, to a partition it has read to its end, are not progress:
// with one partition's leader failing every fetch while dead letters keep landing on the other
// (the service runs on during the outage), the read still fails at the stall window.
func TestRecordsPastTheEndDoNotHoldAStalledRead(t *testing.T) {
	const stall = time.Second
	defer kafkadlq.SetScanStallLimit(stall)()
	ctx := testCtx(t)
	c, err := kfake.NewCluster(kfake.NumBrokers(2), kfake.SeedTopics(2, topic))
	require.NoError(t, err)
	t.Cleanup(c.Close)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	require.NoError(t, err)
	t.Cleanup(cl.Close)
	q := newQueue(t, cl)
	for i := range 20 {
		require.NoError(t, q.Put(ctx, dlq.Entry{ID: fmt.Sprint("e", i), Sink: "s"}))
	}
	healthy, failing := c.LeaderFor(topic, 0), c.LeaderFor(topic, 1)
	if healthy == failing {
		failing = 1 - healthy
		require.NoError(t, c.MoveTopicPartition(topic, 1, failing))
	}
	c.ControlKey(kmsg.Fetch.Int16(), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if c.CurrentNode() == failing {
			return failedFetch(req.(*kmsg.FetchRequest), kerr.KafkaStorageError.Code), nil, true
		}
		return nil, nil, false
	})
	w, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	require.NoError(t, err)
	t.Cleanup(w.Close)
	wctx, stopWriting := context.WithCancel(ctx)
	defer stopWriting()
	go func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-wctx.Done():
				return
			case <-tick.C:
				w.Produce(wctx, &kgo.Record{Topic: topic, Partition: 0, Value: []byte("later")}, nil)
			}
		}
	}()

	start := time.Now()
	err = q.List(ctx, func(dlq.Entry) error { return nil })
	took := time.Since(start)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "no fetch brought any", "%v", err)
	assert.Equal(t, retry.ClassRetryable, retry.Classify(err))
	assert.Less(t, took, 5*stall+5*time.Second)
}

// At franz-go's defaults the stall window is what one fetch may take (a 10 s dial, then 5 s of
// FetchMaxWait and 10 s of RequestTimeoutOverhead for the answer) plus 5 s, and it follows the
// reading client's options.
func TestStallWindowFollowsTheClientsTimeouts(t *testing.T) {
	_, cl := cluster(t, 1)
	assert.Equal(t, 30*time.Second, kafkadlq.StallWindow(newQueue(t, cl)))
	_, cl = cluster(t, 1, kgo.DialTimeout(time.Second), kgo.RequestTimeoutOverhead(2*time.Second))
	assert.Equal(t, 13*time.Second, kafkadlq.StallWindow(newQueue(t, cl, kafkadlq.WithReadOpts(kgo.FetchMaxWait(5*time.Second)))))
}
