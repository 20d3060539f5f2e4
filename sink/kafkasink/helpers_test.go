package kafkasink_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/internal/testwait"
	"github.com/fanbridge/fanbridge/sink/kafkasink"
)

// testTimeout bounds every test that talks to a broker, so that a regression fails instead of
// hanging until go test's own timeout.
const testTimeout = 30 * time.Second

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// recv returns the next value on ch, and fails the test when none comes within testTimeout.
func recv[T any](t testing.TB, ch <-chan T) T {
	t.Helper()
	return testwait.Recv(t, ch, testTimeout)
}

// waitGroup waits for wg, and fails the test when it does not finish within testTimeout.
func waitGroup(t testing.TB, wg *sync.WaitGroup) {
	t.Helper()
	testwait.Group(t, wg, testTimeout)
}

// newCluster starts an in-process Kafka cluster of one broker with the given topics (one
// partition each). Topics are not created on first use.
func newCluster(t testing.TB, topics ...string) *kfake.Cluster {
	t.Helper()
	opts := []kfake.Opt{kfake.NumBrokers(1)}
	if len(topics) > 0 {
		opts = append(opts, kfake.SeedTopics(1, topics...))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// fastOpts make the client react to failures in milliseconds rather than its production defaults
// (a metadata refresh at most every 5 s, backoff of hundreds of ms), so failure tests stay short.
func fastOpts() []kgo.Opt {
	return []kgo.Opt{
		kgo.MetadataMinAge(10 * time.Millisecond),
		kgo.RetryBackoffFn(func(int) time.Duration { return 5 * time.Millisecond }),
	}
}

func newClient(t testing.TB, c *kfake.Cluster, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	all := append([]kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}, fastOpts()...)
	cl, err := kgo.NewClient(append(all, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func newSink(t testing.TB, cl *kgo.Client, opts ...kafkasink.Option) *kafkasink.Sink {
	t.Helper()
	s, err := kafkasink.New(cl, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func uniqueTopic(prefix string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return prefix + "-" + hex.EncodeToString(b[:])
}

func createTopic(t testing.TB, ctx context.Context, c *kfake.Cluster, topic string, partitions int32) {
	t.Helper()
	adm := kadm.NewClient(newClient(t, c))
	resp, err := adm.CreateTopic(ctx, partitions, 1, nil, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatalf("creating topic %s: %v", topic, err)
	}
}

// readAll returns every record in topics, from the start to the end offsets at the time of the
// call, in partition order.
func readAll(t testing.TB, ctx context.Context, c *kfake.Cluster, topics ...string) []*kgo.Record {
	t.Helper()
	admin := newClient(t, c)
	ends, err := kadm.NewClient(admin).ListEndOffsets(ctx, topics...)
	if err != nil {
		t.Fatalf("listing end offsets: %v", err)
	}
	want := int64(0)
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			t.Fatalf("end offset of %s/%d: %v", o.Topic, o.Partition, o.Err)
		}
		want += o.Offset
	})
	if want == 0 {
		return nil
	}
	consumer := newClient(t, c, kgo.ConsumeTopics(topics...), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var out []*kgo.Record
	for int64(len(out)) < want {
		fetches := consumer.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("reading back %v: got %d of %d records: %v", topics, len(out), want, err)
		}
		fetches.EachError(func(topic string, p int32, err error) {
			t.Fatalf("fetching %s/%d: %v", topic, p, err)
		})
		out = append(out, fetches.Records()...)
	}
	consumer.Close()
	return out
}

// readEvents reads topics back and rebuilds the events.
func readEvents(t testing.TB, ctx context.Context, c *kfake.Cluster, topics ...string) []*fanbridge.Event {
	t.Helper()
	recs := readAll(t, ctx, c, topics...)
	out := make([]*fanbridge.Event, 0, len(recs))
	for _, r := range recs {
		e, err := kafkasink.EventFromRecord(r)
		if err != nil {
			t.Fatalf("record at %s/%d@%d: %v", r.Topic, r.Partition, r.Offset, err)
		}
		out = append(out, e)
	}
	return out
}

// hang makes the cluster hold every produce request until release is called; release is safe to
// call more than once. arrived receives a value each time a held request reaches the broker.
func hang(c *kfake.Cluster) (release func(), arrived <-chan struct{}) {
	ch := make(chan struct{})
	got := make(chan struct{}, 64)
	c.ControlKey(kmsg.Produce.Int16(), func(kmsg.Request) (kmsg.Response, error, bool) {
		select {
		case <-ch:
			c.DropControl() // released: stop watching produce requests
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
	return func() { once.Do(func() { close(ch) }) }, got
}

// waitFor receives from ch or fails the test when ctx ends first.
func waitFor(t testing.TB, ctx context.Context, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-ctx.Done():
		t.Fatalf("waiting for %s: %v", what, ctx.Err())
	}
}

// bufferedHook counts the records the client has taken into its buffer and signals each one.
type bufferedHook struct{ buffered chan struct{} }

func newBufferedHook() *bufferedHook { return &bufferedHook{buffered: make(chan struct{}, 1024)} }

func (h *bufferedHook) OnProduceRecordBuffered(*kgo.Record) { h.buffered <- struct{}{} }

// waitBuffered waits until n more records were buffered.
func (h *bufferedHook) waitBuffered(t testing.TB, ctx context.Context, n int) {
	t.Helper()
	for range n {
		waitFor(t, ctx, h.buffered, "a record to be buffered")
	}
}

// produceHook signals each produce request the client has written to a broker.
type produceHook struct{ written chan struct{} }

func newProduceHook() *produceHook { return &produceHook{written: make(chan struct{}, 1024)} }

func (h *produceHook) OnBrokerWrite(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	if key == kmsg.Produce.Int16() && err == nil {
		select {
		case h.written <- struct{}{}:
		default: // more than a test waits for: never stall the client
		}
	}
}

// waitWritten waits until n more produce requests were written.
func (h *produceHook) waitWritten(t testing.TB, ctx context.Context, n int, what string) {
	t.Helper()
	for range n {
		waitFor(t, ctx, h.written, what)
	}
}
