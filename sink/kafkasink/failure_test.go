package kafkasink_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/dlq"
	"github.com/fanbridge/fanbridge/dlq/dlqtest"
	"github.com/fanbridge/fanbridge/fanout"
	"github.com/fanbridge/fanbridge/internal/kafkatest"
	"github.com/fanbridge/fanbridge/retry"
	"github.com/fanbridge/fanbridge/sink"
	"github.com/fanbridge/fanbridge/sink/kafkasink"
)

// TestRetriableBrokerErrorIsRetriedByTheClient: the broker refuses the first produce request with
// a retriable code; the client retries on its own and Send succeeds, with the record stored once.
func TestRetriableBrokerErrorIsRetriedByTheClient(t *testing.T) {
	for _, code := range []*kerr.Error{kerr.NotEnoughReplicas, kerr.NotLeaderForPartition, kerr.RequestTimedOut} {
		t.Run(code.Message, func(t *testing.T) {
			ctx := testContext(t)
			c := newCluster(t, "events")
			s := newSink(t, newClient(t, c), kafkasink.WithTopic("events"))
			require.NoError(t, s.Send(ctx, presenceEvent("warm")))

			fault := c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "events", Err: code, Count: 1})
			require.NoError(t, s.Send(ctx, presenceEvent("retried")))
			assert.Equal(t, 1, fault.Hits(), "the broker refused one request")

			var ids []string
			for _, e := range readEvents(t, ctx, c, "events") {
				ids = append(ids, e.ID)
			}
			assert.Equal(t, []string{"warm", "retried"}, ids, "idempotent retries store the record once")
		})
	}
}

// TestBrokerErrorClassification: a broker error the client does not retry reaches Send, classified
// by kerr's own retriable flag. A refusal of a batch that does not show the record at fault is the
// broker's answer, marked sink.Refused, which fanout's breaker does not count against the sink.
func TestBrokerErrorClassification(t *testing.T) {
	tests := []struct {
		code      *kerr.Error
		permanent bool
		refused   bool
	}{
		{code: kerr.TopicAuthorizationFailed, permanent: true},
		{code: kerr.ClusterAuthorizationFailed, permanent: true},
		{code: kerr.MessageTooLarge, permanent: true},
		// It names no size, so nothing shows the record, rather than a batch it shared or was
		// queued behind, too large.
		{code: kerr.RecordListTooLarge, permanent: false, refused: true},
		// The broker refuses a whole batch for what one record holds, and the client fails every
		// record of the partition with it: the code does not show this record at fault.
		{code: kerr.InvalidRecord, permanent: false, refused: true},
		{code: kerr.InvalidTimestamp, permanent: false, refused: true},
		{code: kerr.PolicyViolation, permanent: false, refused: true},
		{code: kerr.CorruptMessage, permanent: false, refused: true},
		{code: kerr.UnknownServerError, permanent: true},
		{code: kerr.InvalidTopicException, permanent: true},
		// Retriable codes the client kept meeting until its retry limit.
		{code: kerr.NotEnoughReplicas, permanent: false},
		{code: kerr.LeaderNotAvailable, permanent: false},
	}
	for _, tt := range tests {
		t.Run(tt.code.Message, func(t *testing.T) {
			ctx := testContext(t)
			c := newCluster(t, "events")
			s := newSink(t, newClient(t, c, kgo.RecordRetries(2)), kafkasink.WithTopic("events"))
			require.NoError(t, s.Send(ctx, presenceEvent("warm")))

			fault := c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "events", Err: tt.code, Count: -1})
			err := s.Send(ctx, presenceEvent("refused"))
			fault.Remove()
			require.Error(t, err)
			assert.ErrorIs(t, err, tt.code)
			assert.Equal(t, tt.permanent, retry.IsPermanent(err), "%v", err)
			assert.Equal(t, tt.refused, sink.IsRefused(err), "refused: %v", err)
			wait, ok := retry.RetryAfter(err)
			assert.Equal(t, tt.refused, ok, "a refusal asks for a random wait: %v", err)
			assert.Less(t, wait, 80*time.Millisecond, "eight times the client's linger, 10 ms")
			assert.NotErrorIs(t, err, sink.ErrClosed)
			assert.Contains(t, err.Error(), `"refused"`, "the error names the event")

			require.NoError(t, s.Send(ctx, presenceEvent("after")), "the sink recovers")
		})
	}
}

// TestUnknownTopicIsPermanent: with topic creation off, a missing topic fails the Send permanently
// once the client has looked it up kgo.UnknownTopicRetries times.
func TestUnknownTopicIsPermanent(t *testing.T) {
	for _, retries := range []int{0, 4} {
		t.Run(fmt.Sprintf("UnknownTopicRetries(%d)", retries), func(t *testing.T) {
			ctx := testContext(t)
			c := newCluster(t, "events")
			s := newSink(t, newClient(t, c, kgo.UnknownTopicRetries(retries)), kafkasink.WithTopic("missing"))
			start := time.Now()
			err := s.Send(ctx, presenceEvent("p"))
			require.ErrorIs(t, err, kerr.UnknownTopicOrPartition)
			assert.True(t, retry.IsPermanent(err), "%v", err)
			t.Logf("surfaced after %s", time.Since(start))
		})
	}
}

func TestRecordTooLargeIsPermanent(t *testing.T) {
	// Random bytes, so that compression cannot shrink the record under the limits.
	data := make([]byte, 2<<20)
	_, _ = rand.Read(data)
	big := &fanbridge.Event{ID: "big", Type: presenceType, Data: data}
	t.Run("refused by the client", func(t *testing.T) {
		ctx := testContext(t)
		c := newCluster(t, "events")
		s := newSink(t, newClient(t, c), kafkasink.WithTopic("events"))
		start := time.Now()
		err := s.Send(ctx, big)
		require.ErrorIs(t, err, kerr.MessageTooLarge)
		assert.True(t, retry.IsPermanent(err))
		assert.Less(t, time.Since(start), time.Second, "refused before any request")
	})
	t.Run("refused by the broker", func(t *testing.T) {
		ctx := testContext(t)
		c := newCluster(t, "events")
		// The client allows batches bigger than the broker's max.message.bytes (1 MB).
		s := newSink(t, newClient(t, c, kgo.ProducerBatchMaxBytes(8<<20), kgo.BrokerMaxWriteBytes(16<<20)), kafkasink.WithTopic("events"))
		err := s.Send(ctx, big)
		require.ErrorIs(t, err, kerr.MessageTooLarge)
		assert.True(t, retry.IsPermanent(err))
		require.NoError(t, s.Send(ctx, presenceEvent("small")), "the sink recovers")
	})
}

// TestDeadlineWhileBrokerHangs: the broker holds the produce request; Send returns by its deadline
// with a retryable error, and the record is still delivered once the broker answers
// (at-least-once).
func TestDeadlineWhileBrokerHangs(t *testing.T) {
	ctx := testContext(t)
	c := newCluster(t, "events")
	s := newSink(t, newClient(t, c), kafkasink.WithTopic("events"))
	require.NoError(t, s.Send(ctx, presenceEvent("warm")))

	release, _ := hang(c)
	defer release()
	const deadline = 200 * time.Millisecond
	sendCtx, cancel := context.WithTimeout(ctx, deadline)
	defer cancel()
	start := time.Now()
	err := s.Send(sendCtx, presenceEvent("late"))
	elapsed := time.Since(start)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Equal(t, retry.ClassRetryable, retry.Classify(err))
	assert.Contains(t, err.Error(), "may still be delivered")
	assert.Less(t, elapsed, deadline+2*time.Second)

	release()
	require.NoError(t, s.Close(), "Close waits for the abandoned record too")
	var ids []string
	for _, e := range readEvents(t, ctx, c, "events") {
		ids = append(ids, e.ID)
	}
	assert.Equal(t, []string{"warm", "late"}, ids)
}

// TestOneCancellationDoesNotFailOthers: records of concurrent Sends share produce batches, and the
// client fails a whole buffered batch when the context it was given for the batch's first record
// ends. One caller giving up must not fail the records of the others.
func TestOneCancellationDoesNotFailOthers(t *testing.T) {
	ctx := testContext(t)
	c := newCluster(t, "events")
	hook := newBufferedHook()
	s := newSink(t, newClient(t, c, kgo.WithHooks(hook)), kafkasink.WithTopic("events"))
	require.NoError(t, s.Send(ctx, presenceEvent("warm")))
	hook.waitBuffered(t, ctx, 1)

	// A first request reaches the broker and hangs there; records produced after it wait behind
	// it, in the client's buffer or in requests of their own (an idempotent client keeps up to
	// five in flight to a broker), which the broker holds too.
	release, arrived := hang(c)
	defer release()
	trigger := make(chan error, 1)
	go func() { trigger <- s.Send(ctx, presenceEvent("trigger")) }()
	waitFor(t, ctx, arrived, "the first produce request")
	hook.waitBuffered(t, ctx, 1)

	canceled, cancel := context.WithCancel(ctx)
	first := make(chan error, 1)
	go func() { first <- s.Send(canceled, presenceEvent("e0")) }()
	hook.waitBuffered(t, ctx, 1) // e0 heads the buffered batch
	var wg sync.WaitGroup
	errs := make([]error, 9)
	for i := range errs {
		wg.Go(func() { errs[i] = s.Send(ctx, presenceEvent(fmt.Sprint("e", i+1))) })
	}
	hook.waitBuffered(t, ctx, len(errs))

	cancel()
	err := recv(t, first)
	require.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, retry.ClassCanceled, retry.Classify(err))
	release()
	waitGroup(t, &wg)
	require.NoError(t, recv(t, trigger))
	for i, err := range errs {
		assert.NoError(t, err, "Send e%d", i+1)
	}
	// e0 was delivered all the same: its caller must treat the event as possibly delivered.
	ids := map[string]bool{}
	for _, e := range readEvents(t, ctx, c, "events") {
		ids[e.ID] = true
	}
	assert.Len(t, ids, 12)
	assert.True(t, ids["e0"])
}

func TestMaxInFlightHonoursDeadline(t *testing.T) {
	ctx := testContext(t)
	c := newCluster(t, "events")
	s := newSink(t, newClient(t, c), kafkasink.WithTopic("events"), kafkasink.WithMaxInFlight(1))
	require.NoError(t, s.Send(ctx, presenceEvent("warm")))

	release, arrived := hang(c)
	defer release()
	first := make(chan error, 1)
	go func() { first <- s.Send(ctx, presenceEvent("first")) }()
	waitFor(t, ctx, arrived, "the first produce request") // it holds the only slot

	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	err := s.Send(short, presenceEvent("second"))
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Contains(t, err.Error(), "not produced")
	assert.False(t, retry.IsPermanent(err))

	release()
	require.NoError(t, recv(t, first))
	require.NoError(t, s.Send(ctx, presenceEvent("third")))
	var ids []string
	for _, e := range readEvents(t, ctx, c, "events") {
		ids = append(ids, e.ID)
	}
	assert.Equal(t, []string{"warm", "first", "third"}, ids, "the refused Send produced nothing")
}

func TestCloseTimeout(t *testing.T) {
	for _, owned := range []bool{false, true} {
		t.Run(fmt.Sprintf("owned=%v", owned), func(t *testing.T) {
			ctx := testContext(t)
			c := newCluster(t, "events")
			opts := []kafkasink.Option{kafkasink.WithTopic("events"), kafkasink.WithCloseTimeout(200 * time.Millisecond)}
			var s *kafkasink.Sink
			var err error
			if owned {
				s, err = kafkasink.Dial(kafkasink.ClientConfig{Brokers: c.ListenAddrs(), Opts: fastOpts()}, opts...)
			} else {
				s, err = kafkasink.New(newClient(t, c), opts...)
			}
			require.NoError(t, err)
			require.NoError(t, s.Send(ctx, presenceEvent("warm")))

			release, arrived := hang(c)
			defer release()
			inFlight := make(chan error, 1)
			go func() { inFlight <- s.Send(ctx, presenceEvent("in-flight")) }()
			waitFor(t, ctx, arrived, "the produce request")

			err = s.Close()
			require.Error(t, err, "a record was still unacknowledged")
			assert.Contains(t, err.Error(), "1 records still unacknowledged")
			release()
			err = recv(t, inFlight)
			if owned {
				// The sink closed its client, which failed the record.
				require.ErrorIs(t, err, sink.ErrClosed)
				assert.False(t, retry.IsPermanent(err))
			} else {
				// A caller's client stays open and delivers it.
				require.NoError(t, err)
			}
		})
	}
}

func TestNewLeavesCallersClientOpen(t *testing.T) {
	ctx := testContext(t)
	c := newCluster(t, "events")
	cl := newClient(t, c)
	s := newSink(t, cl, kafkasink.WithTopic("events"))
	require.NoError(t, s.Send(ctx, presenceEvent("a")))
	require.NoError(t, s.Close())
	require.NoError(t, s.Close())
	require.ErrorIs(t, s.Send(ctx, presenceEvent("b")), sink.ErrClosed)
	require.NoError(t, cl.ProduceSync(ctx, &kgo.Record{Topic: "events", Value: []byte("still open")}).FirstErr())
}

// A record whose Send gave up is still delivered for a while: a minute, unless
// ClientConfig.DeliveryTimeout says otherwise.
func TestDialDeliveryTimeout(t *testing.T) {
	for _, tt := range []struct {
		name string
		set  time.Duration
		want time.Duration
	}{
		{name: "default", want: time.Minute},
		{name: "set", set: 5 * time.Second, want: 5 * time.Second},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, err := kafkasink.Dial(kafkasink.ClientConfig{Brokers: []string{"127.0.0.1:1"}, DeliveryTimeout: tt.set},
				kafkasink.WithTopic("events"))
			require.NoError(t, err)
			defer s.Close()
			assert.Equal(t, tt.want, s.Client().OptValue(kgo.RecordDeliveryTimeout))
		})
	}
}

func TestDialOwnsItsClient(t *testing.T) {
	ctx := testContext(t)
	c := newCluster(t, "events")
	s, err := kafkasink.Dial(kafkasink.ClientConfig{Brokers: c.ListenAddrs(), ClientID: "fanbridge-test"}, kafkasink.WithTopic("events"))
	require.NoError(t, err)
	require.NoError(t, s.Ping(ctx))
	require.NoError(t, s.Send(ctx, presenceEvent("a")))
	require.NoError(t, s.Close())
	err = s.Client().ProduceSync(ctx, &kgo.Record{Topic: "events", Value: []byte("x")}).FirstErr()
	require.ErrorIs(t, err, kgo.ErrClientClosed, "Close closed the client Dial built")
	require.ErrorIs(t, s.Send(ctx, presenceEvent("b")), sink.ErrClosed)
	assert.Len(t, readAll(t, ctx, c, "events"), 1)
}

// TestAbandonedRecordIsLogged: the outcome of a record whose Send gave up is logged, with its id
// and topic and without its body.
func TestAbandonedRecordIsLogged(t *testing.T) {
	ctx := testContext(t)
	c := newCluster(t, "events")
	var logs syncBuffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s := newSink(t, newClient(t, c), kafkasink.WithTopic("events"), kafkasink.WithLogger(logger))
	require.NoError(t, s.Send(ctx, presenceEvent("warm")))

	release, _ := hang(c)
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	require.Error(t, s.Send(short, presenceEvent("abandoned")))
	release()
	require.NoError(t, s.Close())
	out := logs.String()
	assert.Contains(t, out, "was delivered")
	assert.Contains(t, out, "id=abandoned")
	assert.NotContains(t, out, "systemPresence", "no body in logs")
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestClassifyWrappedClientErrors(t *testing.T) {
	tests := []struct {
		name      string
		err       error
		permanent bool
	}{
		{name: "record timeout with an unknown topic", err: fmt.Errorf("%w, last err: %w", kgo.ErrRecordTimeout, kerr.UnknownTopicOrPartition), permanent: true},
		{name: "record timeout with a retriable cause", err: fmt.Errorf("%w, last err: %w", kgo.ErrRecordTimeout, kerr.NotLeaderForPartition)},
		{name: "record timeout with a SASL failure", err: fmt.Errorf("%w, last err: %w", kgo.ErrRecordTimeout, kerr.SaslAuthenticationFailed), permanent: true},
		{name: "record timeout alone", err: kgo.ErrRecordTimeout},
		{name: "record retries", err: kgo.ErrRecordRetries},
		{name: "max buffered", err: kgo.ErrMaxBuffered},
		{name: "joined", err: errors.Join(errors.New("x"), kerr.TopicAuthorizationFailed), permanent: true},
		{name: "producer session", err: kerr.OutOfOrderSequenceNumber},
		{name: "producer epoch", err: kerr.InvalidProducerEpoch},
		{name: "unknown producer id", err: kerr.UnknownProducerID},
		{name: "duplicate sequence number", err: kerr.DuplicateSequenceNumber},
		{name: "invalid producer id mapping", err: kerr.InvalidProducerIDMapping},
		{name: "unknown topic id", err: kerr.UnknownTopicID, permanent: true},
		{name: "plain", err: errors.New("EOF")},
		{name: "nil", err: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.permanent, kafkasink.IsPermanent(tt.err))
		})
	}
}

// logSignal is a slog.Handler that sends on ch each time a message containing match is logged,
// dropping the signal when ch is full.
type logSignal struct {
	match string
	ch    chan struct{}
}

func (s *logSignal) Enabled(context.Context, slog.Level) bool { return true }
func (s *logSignal) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, s.match) {
		select {
		case s.ch <- struct{}{}:
		default:
		}
	}
	return nil
}
func (s *logSignal) WithAttrs([]slog.Attr) slog.Handler { return s }
func (s *logSignal) WithGroup(string) slog.Handler      { return s }

// TestAbandonedSendThenAcknowledged: a Send whose context ends while the broker holds its produce
// request gives up with an error naming its own event and topic; the acknowledgement that comes
// later recycles the record. Under -race this proves the Send reads nothing of the record once it
// has handed it over to the acknowledgement.
func TestAbandonedSendThenAcknowledged(t *testing.T) {
	ctx := testContext(t)
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "events"))
	require.NoError(t, err)
	defer cluster.Close()
	// The broker holds each produce request until the context of the Send under way ends, and
	// answers right after: the answer races the Send's giving up, and nothing the Send's goroutine
	// does is ordered before it (the context's own timer ends the hold). Returning false keeps
	// the function for the next request.
	var hold atomic.Pointer[context.Context]
	cluster.ControlKey(kmsg.Produce.Int16(), func(kmsg.Request) (kmsg.Response, error, bool) {
		if held := hold.Load(); held != nil {
			cluster.SleepControl(func() { <-(*held).Done() })
		}
		return nil, nil, false
	})
	client, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...))
	require.NoError(t, err)
	defer client.Close()
	delivered := &logSignal{match: "was delivered", ch: make(chan struct{}, 64)}
	s, err := kafkasink.New(client, kafkasink.WithTopic("events"), kafkasink.WithLogger(slog.New(delivered)))
	require.NoError(t, err)
	require.NoError(t, s.Send(ctx, &fanbridge.Event{ID: "warm", Type: "t", Data: []byte(`{}`)}))

	// When the answer wins the race the Send simply succeeds; then try again with a fresh event.
	// The race detector sees a given race only most of the time, so the test wants several Sends
	// to give up; after each, it waits for the acknowledgement, so that its next Send, which
	// synchronises with the client, cannot order the abandoned Send before that acknowledgement.
	const want, attempts = 5, 40
	gaveUp := 0
	for i := 0; i < attempts && gaveUp < want; i++ {
		id := fmt.Sprint("e-", i)
		sendCtx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		hold.Store(&sendCtx)
		err := s.Send(sendCtx, &fanbridge.Event{ID: id, Type: "t", Data: []byte(`{}`)})
		cancel()
		if err == nil {
			continue
		}
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.Contains(t, err.Error(), fmt.Sprintf(`event %q to topic "events"`, id))
		gaveUp++
		waitFor(t, ctx, delivered.ch, "the abandoned record to be reported delivered")
	}
	hold.Store(nil)
	require.Equal(t, want, gaveUp, "Sends that gave up while the broker held their request, of %d", attempts)
	// The recycled record serves the next Send correctly.
	require.NoError(t, s.Send(ctx, &fanbridge.Event{ID: "last", Type: "t", Data: []byte(`{}`)}))
}

// The broker judges whole batches against a topic's max.message.bytes, and the client then fails
// every record of a refused batch with MESSAGE_TOO_LARGE. A record that fits the topic on its own
// but shared the batch is retryable; one the topic refuses alone stays permanent.
func TestBatchTooLargeForTheTopic(t *testing.T) {
	ctx := testContext(t)
	c := newCluster(t)
	limit := "4096"
	created, err := kadm.NewClient(newClient(t, c)).CreateTopic(ctx, 1, 1, map[string]*string{"max.message.bytes": &limit}, "small")
	require.NoError(t, err)
	require.NoError(t, created.Err)
	// A linger far longer than the Sends take to start gathers them into one batch.
	s := newSink(t, newClient(t, c, kgo.ProducerLinger(time.Second)), kafkasink.WithTopic("small"))
	event := func(id string, size int) *fanbridge.Event {
		data := make([]byte, size)
		_, _ = rand.Read(data)
		return &fanbridge.Event{ID: id, Type: presenceType, Data: data}
	}

	t.Run("alone", func(t *testing.T) {
		err := s.Send(ctx, event("big", 5000))
		require.ErrorIs(t, err, kerr.MessageTooLarge)
		assert.True(t, retry.IsPermanent(err), "%v", err)
		assert.False(t, sink.IsRefused(err), "%v", err)
	})
	t.Run("in a shared batch", func(t *testing.T) {
		errs := make([]error, 8)
		var wg sync.WaitGroup
		for i := range errs {
			wg.Go(func() { errs[i] = s.Send(ctx, event(fmt.Sprint("e", i), 1000)) })
		}
		waitGroup(t, &wg)
		refused := 0
		for i, err := range errs {
			if err == nil {
				continue
			}
			refused++
			require.ErrorIs(t, err, kerr.MessageTooLarge, "event %d", i)
			assert.False(t, retry.IsPermanent(err), "event %d fits the topic alone: %v", i, err)
			assert.True(t, sink.IsRefused(err), "event %d: the broker answered: %v", i, err)
			assert.Contains(t, err.Error(), "ProducerBatchMaxBytes", "the error says what to change")
		}
		require.NotZero(t, refused, "the 8 KB batch went through: the test sent nothing the topic refuses")
		require.NoError(t, s.Send(ctx, event("retried", 1000)), "alone, the same size fits")
	})
}

// The broker refuses a batch for one record's content, and the client fails with it every record
// it holds for the partition, one queued behind the refused request included: that record is
// retryable, and delivered once by the next attempt, while the refused one still ends in the
// dead-letter queue once its retry policy gives up.
func TestRecordRefusedForAnotherRecordsContent(t *testing.T) {
	ctx := testContext(t)
	c := newCluster(t, "events")
	hook := newBufferedHook()
	requests := newProduceHook()
	cl := newClient(t, c, kgo.WithHooks(hook, requests), kgo.ProducerBatchCompression(kgo.NoCompression()))
	s := newSink(t, cl, kafkasink.WithTopic("events"))
	require.NoError(t, s.Send(ctx, presenceEvent("warm")))
	hook.waitBuffered(t, ctx, 1)
	requests.waitWritten(t, ctx, 1, "the warm record's request")

	release, arrived := kafkatest.RefuseBatchesHolding(t, c, "refused-event", kerr.InvalidRecord)
	defer release()
	refused := make(chan error, 1)
	go func() { refused <- s.Send(ctx, presenceEvent("refused-event")) }()
	hook.waitBuffered(t, ctx, 1)
	waitFor(t, ctx, arrived, "the request holding the refused record")
	requests.waitWritten(t, ctx, 1, "the request holding the refused record")
	// An idempotent client keeps up to five produce requests in flight to a broker once one was
	// acknowledged (kgo.MaxProduceRequestsInflightPerBroker does not apply to it), so the next
	// record goes out in a request of its own, which the broker answers after the held one.
	queued := make(chan error, 1)
	go func() { queued <- s.Send(ctx, presenceEvent("queued")) }()
	hook.waitBuffered(t, ctx, 1)
	requests.waitWritten(t, ctx, 1, "the request holding the queued record")
	release()

	err := recv(t, queued)
	require.ErrorIs(t, err, kerr.InvalidRecord, "the client failed the record queued behind")
	assert.False(t, retry.IsPermanent(err), "the broker never saw it: %v", err)
	err = recv(t, refused)
	require.ErrorIs(t, err, kerr.InvalidRecord)
	assert.False(t, retry.IsPermanent(err), "nothing tells it from the other: %v", err)
	require.NoError(t, s.Send(ctx, presenceEvent("queued")), "the next attempt delivers it")

	queue := dlqtest.NewMemory()
	d, err := fanout.New(fanout.Config{
		Sinks: []fanout.SinkConfig{{Name: "kafka", Sink: s,
			Retry: retry.Policy{InitialInterval: time.Millisecond, Jitter: retry.NoJitter, MaxAttempts: 3}}},
		Routes: []fanout.Route{{Name: "all", Filter: fanout.All, Sinks: []string{"kafka"}}},
		DLQ:    queue,
	}, fanout.WithSinkClosing(false))
	require.NoError(t, err)
	defer func() { assert.NoError(t, d.Close(ctx)) }()
	res, err := d.Deliver(ctx, presenceEvent("refused-event"))
	require.NoError(t, err)
	require.Len(t, res.Sinks, 1)
	assert.Equal(t, fanout.DeadLettered, res.Sinks[0].Outcome)
	assert.Equal(t, dlq.ConditionAttempts, res.Sinks[0].Condition)
	assert.Equal(t, 3, res.Sinks[0].Attempts, "refused at every attempt")
	assert.Equal(t, 1, queue.Len())

	var ids []string
	for _, e := range readEvents(t, ctx, c, "events") {
		ids = append(ids, e.ID)
	}
	assert.Equal(t, []string{"warm", "queued"}, ids, "the queued record stored once, the refused one never")
}
