package kafkadlq_test

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fanbridge/fanbridge/dlq"
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

// process stands for one run of a program that writes to the queue: its client dials through
// dial, so that kill can do to its connections what the death of the process does.
type process struct {
	mu    sync.Mutex
	dead  bool
	conns []net.Conn
	// refused, when set, gets a value (when it has room) for each dial refused after kill.
	refused chan struct{}
}

var errKilled = errors.New("the process was killed")

func (p *process) dial(ctx context.Context, network, host string) (net.Conn, error) {
	if p.refuse() {
		return nil, errKilled
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, network, host)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.dead { // killed while dialing
		c.Close()
		return nil, errKilled
	}
	p.conns = append(p.conns, c)
	return c, nil
}

// refuse reports whether the process was killed, and counts the dial it refuses then.
func (p *process) refuse() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.dead && p.refused != nil {
		select {
		case p.refused <- struct{}{}:
		default:
		}
	}
	return p.dead
}

// kill closes every connection the process made and refuses every one it tries to make later,
// so that nothing its client still holds (a record lingering or buffered, a retry) can reach the
// broker afterwards. A request already written to a connection may still arrive, as it may
// after a kill. The client itself is not closed: Close and Flush are what a dead process does not
// get to do.
func (p *process) kill() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.dead = true
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// newProcess returns a client of a new process for the cluster, closed when the test ends.
func newProcess(t testing.TB, c *kfake.Cluster, opts ...kgo.Opt) (*process, *kgo.Client) {
	t.Helper()
	p := &process{}
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...), kgo.Dialer(p.dial)}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(cl.Close)
	return p, cl
}

func TestConformance(t *testing.T) {
	for _, tc := range []struct {
		name       string
		partitions int32
	}{{"one-partition", 1}, {"three-partitions", 3}} {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			procs := map[dlqtest.Store]*process{}
			clusters := map[dlqtest.Store]*kfake.Cluster{}
			// refuse has the broker behind a store refuse every produce request with code.
			refuse := func(code *kerr.Error) func(*testing.T, dlqtest.Store) func() {
				return func(t *testing.T, s dlqtest.Store) func() {
					mu.Lock()
					c := clusters[s]
					mu.Unlock()
					require.NotNil(t, c, "a store the Opener did not return")
					return c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: topic, Err: code, Count: -1}).Remove
				}
			}
			dlqtest.Run(t, dlqtest.Harness{
				New: func(t *testing.T) dlqtest.Opener {
					c, _ := cluster(t, tc.partitions)
					// Every store gets a client of its own, as a program started anew does:
					// a client shared with an earlier store could still deliver what that
					// store left behind, and hide a Put that returned before its record was
					// acknowledged. The client gives a record up after a few refusals with
					// a retriable code, as one with a delivery timeout does, so that such a
					// refusal reaches Put (with the default, unlimited retries, Put would wait
					// for its context to end), and refreshes its metadata before each retry
					// without waiting the default 5 s between refreshes.
					return func(t *testing.T) dlqtest.Store {
						p, cl := newProcess(t, c, kgo.RecordRetries(2), kgo.MetadataMinAge(10*time.Millisecond))
						q := newQueue(t, cl)
						mu.Lock()
						procs[q], clusters[q] = p, c
						mu.Unlock()
						return q
					}
				},
				// NOT_ENOUGH_REPLICAS: fewer in-sync replicas than min.insync.replicas, until
				// a broker comes back.
				FailTransient: refuse(kerr.NotEnoughReplicas),
				FailPermanent: refuse(kerr.TopicAuthorizationFailed),
				Crash: func(t *testing.T, s dlqtest.Store) {
					mu.Lock()
					p := procs[s]
					delete(procs, s)
					mu.Unlock()
					require.NotNil(t, p, "a store the Opener did not return")
					p.kill()
				},
				// With several partitions the entries of different events are read partition by
				// partition, not in the order they were put.
				Features: dlqtest.Features{Delete: true, Durable: true, Ordered: tc.partitions == 1},
			})
		})
	}
}

// The conformance suite's crash must lose what a killed process loses: a record its client holds
// and has not sent, as a Put returning before the acknowledgement would leave behind. The record
// lingers in the client's buffer (a minute, the most franz-go allows, and twice the test's
// deadline); after the kill a Flush makes the client try to send it, it is
// refused, and the record never reaches the topic, while in a process left alive a Flush (what an
// orderly shutdown does) delivers its twin.
func TestCrashLosesWhatTheClientHasNotSent(t *testing.T) {
	ctx := testCtx(t)
	c, reader := cluster(t, 1)
	produce := func(cl *kgo.Client, id string) {
		r := kafkadlq.EncodeRecord(sampleEntry(t, id))
		r.Topic = topic
		cl.Produce(ctx, r, nil)
	}

	killed, cl := newProcess(t, c, kgo.ProducerLinger(time.Minute))
	killed.refused = make(chan struct{}, 1)
	produce(cl, "unsent")
	killed.kill()
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { _ = cl.Flush(fctx) }()
	waitFor(t, ctx, killed.refused, "the killed client's attempt to reach the broker")
	assert.EqualValues(t, 1, cl.BufferedProduceRecords(), "the record left the killed client")

	_, alive := newProcess(t, c, kgo.ProducerLinger(time.Minute))
	produce(alive, "flushed")
	require.NoError(t, alive.Flush(ctx))

	var got []string
	require.NoError(t, newQueue(t, reader).List(ctx, func(e dlq.Entry) error { got = append(got, e.ID); return nil }))
	assert.Equal(t, []string{"flushed"}, got)
}
