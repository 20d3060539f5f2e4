package kafkasink_test

import (
	"context"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/sink"
	"github.com/fanbridge/fanbridge/sink/kafkasink"
	"github.com/fanbridge/fanbridge/sink/sinktest"
)

// harness runs sinks against one shared kfake cluster, each on a topic of its own. With owned set,
// the sink is built with Dial and owns its client; otherwise it uses a caller's client through New.
func harness(c *kfake.Cluster, owned bool) sinktest.Harness {
	return sinktest.Harness{
		Features: sinktest.Features{
			ReadBack: true, Metadata: true, Ordered: true,
			TransientFailure: true, PermanentFailure: true, Hang: true, Close: true, Batch: true,
		},
		Open: func(tb testing.TB) sinktest.Instance {
			ctx := testContext(tb)
			topic := uniqueTopic("conformance")
			createTopic(tb, ctx, c, topic, 1)
			// Few retries, so that a transient failure the client keeps meeting reaches Send
			// instead of being retried until the subtest's deadline.
			opts := append(fastOpts(), kgo.RecordRetries(3), kgo.ProducerLinger(0))
			var s sink.Sink
			var err error
			if owned {
				s, err = kafkasink.Dial(kafkasink.ClientConfig{Brokers: c.ListenAddrs(), Opts: opts}, kafkasink.WithTopic(topic))
			} else {
				s, err = kafkasink.New(newClient(tb, c, opts...), kafkasink.WithTopic(topic))
			}
			if err != nil {
				tb.Fatal(err)
			}
			fail := func(code *kerr.Error) func() func() {
				return func() func() {
					h := c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: topic, Err: code, Count: -1})
					return h.Remove
				}
			}
			return sinktest.Instance{
				Sink: s,
				Received: func(ctx context.Context) ([]*fanbridge.Event, error) {
					return readEvents(tb, ctx, c, topic), nil
				},
				FailTransient: fail(kerr.NotEnoughReplicas),
				FailPermanent: fail(kerr.TopicAuthorizationFailed),
				Hang: func() func() {
					release, _ := hang(c)
					return release
				},
			}
		},
	}
}

func TestConformance(t *testing.T) {
	c := newCluster(t)
	t.Run("New", func(t *testing.T) { sinktest.Run(t, harness(c, false)) })
	t.Run("Dial", func(t *testing.T) { sinktest.Run(t, harness(c, true)) })
}
