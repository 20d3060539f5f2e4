// Package kafkatest holds the fault injection that the Kafka sink's and the Kafka dead-letter
// queue's tests share: a kfake broker that refuses the produce requests carrying a marker, as a
// broker validating records refuses a batch for one of them.
package kafkatest

import (
	"bytes"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Refusal returns the answer that refuses req with code in every partition it writes to, and
// whether any of its batches holds marker. The producing client must not compress, so that the
// marker shows in the request.
func Refusal(req *kmsg.ProduceRequest, marker string, code *kerr.Error) (*kmsg.ProduceResponse, bool) {
	resp := req.ResponseKind().(*kmsg.ProduceResponse)
	hit := false
	for _, rt := range req.Topics {
		st := kmsg.NewProduceResponseTopic()
		st.Topic, st.TopicID = rt.Topic, rt.TopicID
		for _, rp := range rt.Partitions {
			hit = hit || bytes.Contains(rp.Records, []byte(marker))
			sp := kmsg.NewProduceResponseTopicPartition()
			sp.Partition, sp.ErrorCode = rp.Partition, code.Code
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, hit
}

// RefuseBatchesHolding has c refuse with code every produce request whose batches hold marker.
// The first such request is held until release is called (safe to call more than once, and
// called when the test ends); arrived then receives a value. Other requests are handled as usual.
func RefuseBatchesHolding(tb testing.TB, c *kfake.Cluster, marker string, code *kerr.Error) (release func(), arrived <-chan struct{}) {
	tb.Helper()
	ch := make(chan struct{})
	got := make(chan struct{}, 1)
	var held atomic.Bool
	c.ControlKey(kmsg.Produce.Int16(), func(req kmsg.Request) (kmsg.Response, error, bool) {
		resp, hit := Refusal(req.(*kmsg.ProduceRequest), marker, code)
		if !hit {
			return nil, nil, false
		}
		c.KeepControl()
		if !held.Swap(true) {
			got <- struct{}{}
			c.SleepControl(func() { <-ch })
		}
		return resp, nil, true
	})
	var once sync.Once
	release = func() { once.Do(func() { close(ch) }) }
	tb.Cleanup(release)
	return release, got
}
