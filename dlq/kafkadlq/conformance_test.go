package kafkadlq_test

import (
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fanbridge/fanbridge/dlq/dlqtest"
	"github.com/fanbridge/fanbridge/dlq/kafkadlq"
)

const topic = "fanbridge-dlq"

// cluster starts an in-process Kafka broker with the topic, and a client for it.
func cluster(t testing.TB, partitions int32, opts ...kgo.Opt) (*kfake.Cluster, *kgo.Client) {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, topic))
	require.NoError(t, err)
	t.Cleanup(c.Close)
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(cl.Close)
	return c, cl
}

func TestConformance(t *testing.T) {
	for _, tc := range []struct {
		name       string
		partitions int32
	}{{"one-partition", 1}, {"three-partitions", 3}} {
		t.Run(tc.name, func(t *testing.T) {
			dlqtest.Run(t, dlqtest.Harness{
				New: func(t *testing.T) dlqtest.Opener {
					_, cl := cluster(t, tc.partitions)
					return func(t *testing.T) dlqtest.Store {
						q, err := kafkadlq.New(cl, topic)
						require.NoError(t, err)
						return q
					}
				},
				// With several partitions the entries of different events are read partition by
				// partition, not in the order they were put.
				Features: dlqtest.Features{Delete: true, Durable: true, Ordered: tc.partitions == 1},
			})
		})
	}
}
