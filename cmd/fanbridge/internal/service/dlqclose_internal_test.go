package service

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/dlq"
	"github.com/fanbridge/fanbridge/dlq/kafkadlq"
	"github.com/fanbridge/fanbridge/internal/testwait"
)

// kafkaDLQConfig is a service whose dead-letter queue is the topic "dlq" on broker, with a
// shutdown the manual bounds at 1s + 1s + 1s.
func kafkaDLQConfig(broker string) []byte {
	return fmt.Appendf(nil, `listen: {address: "127.0.0.1:0"}
intake:
  - path: /events
    insecure_no_auth: true
sinks:
  - name: consumer
    grpc: {targets: ["127.0.0.1:1"], insecure: true}
routes:
  - {name: everything, all: true, sinks: [consumer]}
dlq: {kafka: {brokers: [%q], topic: dlq}}
dispatch: {dlq_timeout: 1s}
shutdown: {http_timeout: 1s, drain_timeout: 1s}
`, broker)
}

func deadLetter(id string) dlq.Entry {
	return dlq.Entry{Sink: "consumer", Event: fanbridge.Event{ID: id, Raw: []byte(`{}`)}}
}

// shutdownWithin shuts s down and returns how long it took, failing the test after limit.
func shutdownWithin(t *testing.T, s *Service, limit time.Duration) (time.Duration, error) {
	t.Helper()
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- s.shutdown() }()
	err := testwait.Recv(t, done, limit)
	return time.Since(start), err
}

// A Kafka dead-letter queue whose broker is gone at shutdown, its client holding a record whose
// write gave up waiting, is closed within the bound the manual gives the shutdown, not after
// the client's own flush timeout on top of it; the record it could not send is logged.
func TestKafkaDLQGoneAtShutdownClosesWithinTheBound(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "dlq"))
	require.NoError(t, err)
	defer c.Close()
	s, _, logs := newLoggedService(t, kafkaDLQConfig(c.ListenAddrs()[0]))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, s.queue.Put(ctx, deadLetter("before")))

	c.Close()
	pctx, pcancel := context.WithTimeout(ctx, 100*time.Millisecond)
	require.Error(t, s.queue.Put(pctx, deadLetter("unsent")))
	pcancel()

	bound := shutdownBound(s.cfg)
	require.Equal(t, 3*time.Second, bound)
	took, err := shutdownWithin(t, s, 30*time.Second)
	require.NoError(t, err, "the record's write had already failed: the close does not fail for it")
	// A second above the bound for the Dispatcher's grace past its deadline and a loaded machine;
	// the client's flush timeout alone is 10s.
	assert.Less(t, took, bound+time.Second, "the shutdown took %s", took)
	assert.Contains(t, logs.String(), "dead-letter queue closed with records its client could not send in time")
}

// A Kafka dead-letter queue whose broker answers slowly still sends, when it closes, the record
// its client holds from a write that gave up waiting, within the shutdown's bound.
func TestKafkaDLQReachableAtShutdownSendsWhatItHolds(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "dlq"))
	require.NoError(t, err)
	defer c.Close()
	s, _, logs := newLoggedService(t, kafkaDLQConfig(c.ListenAddrs()[0]))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, s.queue.Put(ctx, deadLetter("first")))

	// The broker keeps every produce request until released.
	hold := make(chan struct{})
	var releaseOnce sync.Once
	release := func() { releaseOnce.Do(func() { close(hold) }) }
	defer release()
	c.ControlKey(kmsg.Produce.Int16(), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		c.SleepControl(func() { <-hold })
		return nil, nil, false
	})
	pctx, pcancel := context.WithTimeout(ctx, 100*time.Millisecond)
	require.Error(t, s.queue.Put(pctx, deadLetter("held")))
	pcancel()

	// Released only once the queue's close has begun: until then the broker has not taken it.
	closeQ := s.closeQ
	s.closeQ = func(ctx context.Context) error {
		release()
		return closeQ(ctx)
	}
	_, err = shutdownWithin(t, s, 30*time.Second)
	require.NoError(t, err)
	assert.NotContains(t, logs.String(), "could not send in time")

	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	require.NoError(t, err)
	defer cl.Close()
	q, err := kafkadlq.New(cl, "dlq")
	require.NoError(t, err)
	ids := map[string]bool{}
	require.NoError(t, q.List(ctx, func(e dlq.Entry) error { ids[e.Event.ID] = true; return nil }))
	assert.Equal(t, map[string]bool{"first": true, "held": true}, ids)
}

// When writing the backlog took the drain past the shutdown's bound, nothing is left of it for
// the Kafka dead-letter queue's close: a client that holds no record closes at once, keeps what
// the broker acknowledged, and logs no drop it did not make.
func TestKafkaDLQClosesAtOnceWithNothingLeftOfTheBound(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "dlq"))
	require.NoError(t, err)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range 5 { // the close's flush and its expired context race: several rounds catch it
		s, _, logs := newLoggedService(t, kafkaDLQConfig(c.ListenAddrs()[0]))
		id := fmt.Sprintf("acknowledged-%d", i)
		require.NoError(t, s.queue.Put(ctx, deadLetter(id)))
		closeQ := s.closeQ
		s.closeQ = func(context.Context) error {
			over, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
			defer cancel()
			return closeQ(over)
		}
		_, err = shutdownWithin(t, s, 30*time.Second)
		require.NoError(t, err)
		assert.NotContains(t, logs.String(), "could not send in time", "round %d", i)
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	require.NoError(t, err)
	defer cl.Close()
	q, err := kafkadlq.New(cl, "dlq")
	require.NoError(t, err)
	n := 0
	require.NoError(t, q.List(ctx, func(dlq.Entry) error { n++; return nil }))
	assert.Equal(t, 5, n, "every acknowledged entry is in the topic")
}
