package kafkasink_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fanbridge/fanbridge/sink/kafkasink"
)

// A nil from Send promises every in-sync replica has the record; a client with fewer acks cannot
// keep that promise, so the sink refuses it unless told the weaker one is wanted.
func TestWeakAcksNeedConsent(t *testing.T) {
	c := newCluster(t, "events")
	weak := map[string]kgo.Acks{"acks=1": kgo.LeaderAck(), "acks=0": kgo.NoAck()}
	for name, acks := range weak {
		t.Run(name, func(t *testing.T) {
			ackOpts := []kgo.Opt{kgo.RequiredAcks(acks), kgo.DisableIdempotentWrite()}
			cl := newClient(t, c, ackOpts...)

			s, err := kafkasink.New(cl, kafkasink.WithTopic("events"))
			require.ErrorIs(t, err, kafkasink.ErrWeakAcks)
			assert.ErrorIs(t, err, kafkasink.ErrInvalidConfig)
			assert.Nil(t, s)
			s, err = kafkasink.Dial(kafkasink.ClientConfig{Brokers: c.ListenAddrs(), Opts: ackOpts}, kafkasink.WithTopic("events"))
			require.ErrorIs(t, err, kafkasink.ErrWeakAcks)
			assert.Nil(t, s)

			s = newSink(t, cl, kafkasink.WithTopic("events"), kafkasink.WithAllowWeakAcks())
			require.NoError(t, s.Send(testContext(t), presenceEvent("weak-"+name)))
			d, err := kafkasink.Dial(kafkasink.ClientConfig{Brokers: c.ListenAddrs(), Opts: ackOpts},
				kafkasink.WithTopic("events"), kafkasink.WithAllowWeakAcks())
			require.NoError(t, err)
			require.NoError(t, d.Close())
		})
	}
	t.Run("acks=all", func(t *testing.T) {
		cl := newClient(t, c, kgo.RequiredAcks(kgo.AllISRAcks()))
		newSink(t, cl, kafkasink.WithTopic("events"))
	})
}

// Under a transactional client (a Send produces outside any transaction, which the client
// refuses) or one flushed only by hand (nothing is ever sent), no Send could succeed, and under one
// that stops on data loss none could after one OUT_OF_ORDER_SEQUENCE_NUMBER: each event would
// spend its whole retry budget before being dead-lettered. The sink refuses all three.
func TestClientsThatCannotDeliverAreRefused(t *testing.T) {
	c := newCluster(t, "events")
	for name, opt := range map[string]kgo.Opt{
		"transactional":     kgo.TransactionalID("fanbridge-tx"),
		"manual flushing":   kgo.ManualFlushing(),
		"stop on data loss": kgo.StopProducerOnDataLossDetected(),
	} {
		t.Run(name, func(t *testing.T) {
			s, err := kafkasink.New(newClient(t, c, opt), kafkasink.WithTopic("events"))
			require.ErrorIs(t, err, kafkasink.ErrInvalidConfig)
			assert.Nil(t, s)
			s, err = kafkasink.Dial(kafkasink.ClientConfig{Brokers: c.ListenAddrs(), Opts: []kgo.Opt{opt}}, kafkasink.WithTopic("events"))
			require.ErrorIs(t, err, kafkasink.ErrInvalidConfig)
			assert.Nil(t, s)
		})
	}
}
