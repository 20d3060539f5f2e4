package kafkadlq_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
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
	"github.com/fanbridge/fanbridge/dlq/kafkadlq"
	"github.com/fanbridge/fanbridge/internal/kafkatest"
	"github.com/fanbridge/fanbridge/retry"
)

func testCtx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func newQueue(t testing.TB, cl *kgo.Client, opts ...kafkadlq.Option) *kafkadlq.Queue {
	t.Helper()
	q, err := kafkadlq.New(cl, topic, opts...)
	require.NoError(t, err)
	return q
}

// consumeAll reads every record of the topic with a plain consumer.
func consumeAll(t *testing.T, ctx context.Context, cl *kgo.Client, want int) []*kgo.Record {
	t.Helper()
	c, err := kgo.NewClient(kgo.SeedBrokers(cl.OptValue(kgo.SeedBrokers).([]string)...),
		kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	require.NoError(t, err)
	defer c.Close()
	var out []*kgo.Record
	for len(out) < want {
		f := c.PollFetches(ctx)
		require.NoError(t, ctx.Err(), "timed out with %d of %d records", len(out), want)
		require.Empty(t, f.Errors())
		out = append(out, f.Records()...)
	}
	return out
}

func headers(r *kgo.Record) map[string]string {
	m := map[string]string{}
	for _, h := range r.Headers {
		m[h.Key] = string(h.Value)
	}
	return m
}

func TestRecordLayout(t *testing.T) {
	ctx := testCtx(t)
	_, cl := cluster(t, 1)
	q := newQueue(t, cl)
	ev := dlqtest.SampleEvents()[0]
	ev.Metadata[fanbridge.MetaTraceparent] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	first := time.Date(2026, 3, 1, 10, 0, 0, 123456789, time.UTC)
	e := dlq.NewEntry(&ev, "grpc-crm", "ended", retry.Permanent(errors.New("NotFound")), first, first.Add(time.Second))
	require.NoError(t, q.Put(ctx, e))

	other := e
	other.ID = "data-elsewhere"
	other.Event.Data = []byte(`{"not":"in raw"}`)
	require.NoError(t, q.Put(ctx, other))

	recs := consumeAll(t, ctx, cl, 2)
	r := recs[0]
	assert.Equal(t, ev.ID, string(r.Key), "the key is the event ID")
	assert.Equal(t, ev.Raw, r.Value, "the value is the raw envelope")
	h := headers(r)
	at := bytes.Index(ev.Raw, ev.Data)
	assert.Equal(t, map[string]string{
		"dlq.v":               "1",
		"dlq.id":              e.ID,
		"dlq.sink":            "grpc-crm",
		"dlq.route":           "ended",
		"dlq.class":           "permanent",
		"dlq.error":           "NotFound",
		"dlq.attempts":        "1",
		"dlq.first-attempt":   "2026-03-01T10:00:00.123456789Z",
		"dlq.last-attempt":    "2026-03-01T10:00:01.123456789Z",
		"dlq.condition":       "permanent",
		"dlq.trace-id":        "4bf92f3577b34da6a3ce929d0e0e4736",
		"event.id":            ev.ID,
		"event.type":          ev.Type,
		"event.topic":         ev.Topic,
		"event.source":        ev.Source,
		"event.time":          ev.Time.UTC().Format(time.RFC3339Nano),
		"event.data-span":     fmt.Sprintf("%d:%d", at, len(ev.Data)),
		"meta.account":        ev.Metadata["account"],
		"meta.region":         ev.Metadata["region"],
		"meta.format":         "eventbridge",
		"meta.correlation-id": ev.Metadata["correlation-id"],
		"meta.traceparent":    ev.Metadata[fanbridge.MetaTraceparent],
	}, h)
	assert.Equal(t, `{"not":"in raw"}`, headers(recs[1])["event.data"])
	assert.NotContains(t, headers(recs[1]), "event.data-span")

	got, err := q.Get(ctx, "data-elsewhere")
	require.NoError(t, err)
	assert.Equal(t, `{"not":"in raw"}`, string(got.Event.Data))
}

func TestPartitionsSpread(t *testing.T) {
	ctx := testCtx(t)
	_, cl := cluster(t, 3)
	q := newQueue(t, cl, kafkadlq.WithKey(func(e *dlq.Entry) []byte { return []byte(e.ID) }))
	var want []string
	for i := range 30 {
		id := fmt.Sprintf("p-%02d", i)
		want = append(want, id)
		require.NoError(t, q.Put(ctx, dlq.Entry{ID: id, Sink: "s", Event: fanbridge.Event{Raw: []byte(id)}}))
	}
	parts := map[int32]bool{}
	for _, r := range consumeAll(t, ctx, cl, 30) {
		parts[r.Partition] = true
	}
	require.Greater(t, len(parts), 1, "the test needs entries on several partitions")

	var got []string
	require.NoError(t, q.List(ctx, func(e dlq.Entry) error {
		got = append(got, e.ID)
		assert.Equal(t, e.ID, string(e.Event.Raw))
		return nil
	}))
	assert.ElementsMatch(t, want, got)
	require.NoError(t, q.Delete(ctx, want[:10]...))
	got = nil
	require.NoError(t, q.List(ctx, func(e dlq.Entry) error { got = append(got, e.ID); return nil }))
	assert.ElementsMatch(t, want[10:], got)
}

func TestForeignRecordsAreSkippedAndReported(t *testing.T) {
	ctx := testCtx(t)
	_, cl := cluster(t, 1)
	var damage []kafkadlq.Damage
	q := newQueue(t, cl, kafkadlq.WithOnDamage(func(d kafkadlq.Damage) { damage = append(damage, d) }))
	require.NoError(t, q.Put(ctx, dlq.Entry{ID: "good-1", Sink: "s"}))
	hdr := func(kv ...string) []kgo.RecordHeader {
		var h []kgo.RecordHeader
		for i := 0; i < len(kv); i += 2 {
			h = append(h, kgo.RecordHeader{Key: kv[i], Value: []byte(kv[i+1])})
		}
		return h
	}
	foreign := []*kgo.Record{
		{Topic: topic, Value: []byte("someone else's record")},
		{Topic: topic, Headers: hdr("dlq.v", "9", "dlq.id", "x", "dlq.sink", "s")},
		{Topic: topic, Headers: hdr("dlq.v", "1", "dlq.id", "x", "dlq.sink", "s", "dlq.attempts", "many")},
		{Topic: topic, Headers: hdr("dlq.v", "1", "dlq.id", "x", "dlq.sink", "s", "event.data-span", "5:100")},
		{Topic: topic, Headers: hdr("dlq.v", "1", "dlq.sink", "s")},
		{Topic: topic, Headers: hdr("dlq.v", "1", "dlq.op", "remove")},
		// An ID no Put writes, which Delete could never remove: listed, every Redrive would send
		// it again and report it removed.
		{Topic: topic, Headers: hdr("dlq.v", "1", "dlq.id", "has space", "dlq.sink", "s")},
	}
	require.NoError(t, cl.ProduceSync(ctx, foreign...).FirstErr())
	require.NoError(t, q.Put(ctx, dlq.Entry{ID: "good-2", Sink: "s"}))

	var got []string
	require.NoError(t, q.List(ctx, func(e dlq.Entry) error { got = append(got, e.ID); return nil }))
	assert.Equal(t, []string{"good-1", "good-2"}, got)
	// Both passes of List report each foreign record.
	require.Len(t, damage, 2*len(foreign))
	want := []error{kafkadlq.ErrNotEntry, dlq.ErrUnknownVersion, dlq.ErrMalformed, dlq.ErrMalformed, dlq.ErrMalformed, dlq.ErrMalformed, dlq.ErrMalformed}
	for i, w := range want {
		assert.ErrorIs(t, damage[i].Err, w, "record %d", i)
		assert.Equal(t, int64(i+1), damage[i].Offset)
	}
}

func TestPutErrors(t *testing.T) {
	ctx := testCtx(t)
	_, cl := cluster(t, 1, kgo.UnknownTopicRetries(1), kgo.ProducerBatchMaxBytes(4096))
	q := newQueue(t, cl)

	err := q.Put(ctx, dlq.Entry{ID: "big", Sink: "s", Event: fanbridge.Event{Raw: bytes.Repeat([]byte("x"), 8192)}})
	assert.ErrorIs(t, err, kerr.MessageTooLarge)
	assert.True(t, retry.IsPermanent(err), "record too large: %v", err)

	err = q.Put(ctx, dlq.Entry{ID: "no sink"})
	assert.ErrorIs(t, err, dlq.ErrInvalidEntry)
	assert.True(t, retry.IsPermanent(err))

	canceled, cancel := context.WithCancel(ctx)
	cancel()
	assert.ErrorIs(t, q.Put(canceled, dlq.Entry{ID: "a", Sink: "s"}), context.Canceled)

	missing, err := kafkadlq.New(cl, "no-such-topic")
	require.NoError(t, err)
	err = missing.Put(ctx, dlq.Entry{ID: "a", Sink: "s"})
	assert.True(t, retry.IsPermanent(err), "unknown topic: %v", err)
	assert.Error(t, missing.List(ctx, func(dlq.Entry) error { return nil }))

	_, other := cluster(t, 1)
	other.Close()
	closed := newQueue(t, other)
	assert.ErrorIs(t, closed.Put(ctx, dlq.Entry{ID: "a", Sink: "s"}), dlq.ErrClosed)
}

func TestNew(t *testing.T) {
	_, cl := cluster(t, 1)
	cases := []struct {
		name  string
		cl    *kgo.Client
		topic string
		opts  []kafkadlq.Option
		want  error
	}{
		{"nil-client", nil, topic, nil, kafkadlq.ErrInvalidOption},
		{"empty-topic", cl, "", nil, kafkadlq.ErrInvalidOption},
		{"bad-topic", cl, "dead letters", nil, kafkadlq.ErrInvalidOption},
		{"dot-topic", cl, "..", nil, kafkadlq.ErrInvalidOption},
		{"long-topic", cl, strings.Repeat("t", 250), nil, kafkadlq.ErrInvalidOption},
		{"nil-logger", cl, topic, []kafkadlq.Option{kafkadlq.WithLogger(nil)}, kafkadlq.ErrInvalidOption},
		{"ok", cl, topic, nil, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := kafkadlq.New(tc.cl, tc.topic, tc.opts...)
			if tc.want == nil {
				assert.NoError(t, err)
				return
			}
			assert.ErrorIs(t, err, tc.want)
		})
	}
	t.Run("weak-acks", func(t *testing.T) {
		_, weak := cluster(t, 1, kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite())
		_, err := kafkadlq.New(weak, topic)
		assert.ErrorIs(t, err, kafkadlq.ErrWeakAcks)
		_, err = kafkadlq.New(weak, topic, kafkadlq.WithAllowWeakAcks())
		assert.NoError(t, err)
	})
	// Under these no Put could ever succeed, or none after one data-loss report.
	for name, opt := range map[string]kgo.Opt{"transactional": kgo.TransactionalID("fanbridge-tx"), "manual-flushing": kgo.ManualFlushing(),
		"stop-on-data-loss": kgo.StopProducerOnDataLossDetected()} {
		t.Run(name, func(t *testing.T) {
			_, cl := cluster(t, 1, opt)
			_, err := kafkadlq.New(cl, topic)
			assert.ErrorIs(t, err, kafkadlq.ErrInvalidOption)
		})
	}
}

// TestReadsWithAConsumerClient: the queue's client may itself consume in a group; the reader
// clients copy only its connection options.
func TestReadsWithAConsumerClient(t *testing.T) {
	ctx := testCtx(t)
	_, cl := cluster(t, 1, kgo.ConsumerGroup("app"), kgo.ConsumeTopics("orders"), kgo.DefaultProduceTopic("orders"))
	q := newQueue(t, cl)
	require.NoError(t, q.Put(ctx, dlq.Entry{ID: "a", Sink: "s"}))
	got, err := q.Get(ctx, "a")
	require.NoError(t, err)
	assert.Equal(t, "a", got.ID)
}

func TestListEndsWithTheContext(t *testing.T) {
	c, cl := cluster(t, 1, kgo.RetryTimeout(time.Second))
	q := newQueue(t, cl)
	require.NoError(t, q.Put(testCtx(t), dlq.Entry{ID: "a", Sink: "s"}))
	c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := q.List(ctx, func(dlq.Entry) error { return nil })
	require.Error(t, err)
}

// The broker judges whole batches against the topic's max.message.bytes: entries that fit the
// topic alone but were refused in a shared batch may be put again; one too large alone may not.
func TestPutRefusedInASharedBatchIsRetryable(t *testing.T) {
	ctx := testCtx(t)
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	require.NoError(t, err)
	t.Cleanup(c.Close)
	// A linger far longer than the Puts take to start gathers them into one batch.
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ProducerLinger(time.Second))
	require.NoError(t, err)
	t.Cleanup(cl.Close)
	limit := "4096"
	created, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, map[string]*string{"max.message.bytes": &limit}, topic)
	require.NoError(t, err)
	require.NoError(t, created.Err)
	q := newQueue(t, cl)
	entry := func(id string, size int) dlq.Entry {
		// Random, so that compression cannot shrink it under the limit.
		raw := make([]byte, size/2)
		_, _ = rand.Read(raw)
		return dlq.Entry{ID: id, Sink: "s", Event: fanbridge.Event{ID: id, Raw: []byte(hex.EncodeToString(raw))}}
	}

	err = q.Put(ctx, entry("big", 5000))
	require.ErrorIs(t, err, kerr.MessageTooLarge)
	assert.True(t, retry.IsPermanent(err), "too large alone: %v", err)

	errs := make([]error, 8)
	var wg sync.WaitGroup
	for i := range errs {
		wg.Go(func() { errs[i] = q.Put(ctx, entry(fmt.Sprint("e", i), 800)) })
	}
	wg.Wait()
	refused := 0
	for i, err := range errs {
		if err == nil {
			continue
		}
		refused++
		require.ErrorIs(t, err, kerr.MessageTooLarge, "entry %d", i)
		assert.False(t, retry.IsPermanent(err), "entry %d fits the topic alone: %v", i, err)
		assert.Contains(t, err.Error(), "ProducerBatchMaxBytes")
	}
	require.NotZero(t, refused, "the batch went through: the test sent nothing the topic refuses")
	require.NoError(t, q.Put(ctx, entry("again", 800)), "alone, the same size fits")
}

// RECORD_LIST_TOO_LARGE names no size, so no entry of the refused batch, nor any queued behind it,
// is shown too large: the Put may be tried again, and then succeeds.
func TestPutRefusedAsARecordListTooLargeIsRetryable(t *testing.T) {
	ctx := testCtx(t)
	c, cl := cluster(t, 1)
	q := newQueue(t, cl)
	fault := c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: topic, Err: kerr.RecordListTooLarge})

	err := q.Put(ctx, sampleEntry(t, "refused-once"))
	require.ErrorIs(t, err, kerr.RecordListTooLarge)
	require.Equal(t, 1, fault.Hits())
	assert.False(t, retry.IsPermanent(err), "%v", err)
	assert.Contains(t, err.Error(), "segment.bytes", "the error says what to change")

	require.NoError(t, q.Put(ctx, sampleEntry(t, "refused-once")))
	var ids []string
	require.NoError(t, q.List(ctx, func(e dlq.Entry) error { ids = append(ids, e.ID); return nil }))
	assert.Equal(t, []string{"refused-once"}, ids)
}

// produceHook signals each produce request the client has written to a broker.
type produceHook struct{ ch chan struct{} }

func (h *produceHook) OnBrokerWrite(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	if key == kmsg.Produce.Int16() && err == nil {
		select {
		case h.ch <- struct{}{}:
		default: // more than a test waits for: never stall the client
		}
	}
}

// The broker refuses a batch for one record's content, and the client fails with it every record
// it holds for the partition, one queued behind the refused request included. That Put is
// retryable, since fanout stops retrying a dead-letter write it is told is permanent, and the next
// attempt writes the entry once; the refused entry is still refused.
func TestPutRefusedForAnotherRecordsContentIsRetryable(t *testing.T) {
	ctx := testCtx(t)
	hook := &bufferedHook{ch: make(chan struct{}, 16)}
	requests := &produceHook{ch: make(chan struct{}, 1024)}
	c, cl := cluster(t, 1, kgo.WithHooks(hook, requests), kgo.ProducerBatchCompression(kgo.NoCompression()))
	q := newQueue(t, cl)
	require.NoError(t, q.Put(ctx, sampleEntry(t, "warm")))
	waitFor(t, ctx, hook.ch, "the first record to be buffered")
	waitFor(t, ctx, requests.ch, "the first record's request")

	release, arrived := kafkatest.RefuseBatchesHolding(t, c, "refused-entry", kerr.InvalidRecord)
	refused := make(chan error, 1)
	go func() { refused <- q.Put(ctx, sampleEntry(t, "refused-entry")) }()
	waitFor(t, ctx, hook.ch, "the refused record to be buffered")
	waitFor(t, ctx, arrived, "the request holding the refused record")
	waitFor(t, ctx, requests.ch, "the request holding the refused record")
	// An idempotent client keeps up to five produce requests in flight to a broker once one was
	// acknowledged (kgo.MaxProduceRequestsInflightPerBroker does not apply to it), so the next
	// record goes out in a request of its own, which the broker answers after the held one.
	queued := make(chan error, 1)
	go func() { queued <- q.Put(ctx, sampleEntry(t, "queued")) }()
	waitFor(t, ctx, hook.ch, "the queued record to be buffered")
	waitFor(t, ctx, requests.ch, "the request holding the queued record")
	release()

	err := waitFor(t, ctx, queued, "the queued Put")
	require.ErrorIs(t, err, kerr.InvalidRecord, "the client failed the record queued behind")
	assert.False(t, retry.IsPermanent(err), "the broker never saw it: %v", err)
	err = waitFor(t, ctx, refused, "the refused Put")
	require.ErrorIs(t, err, kerr.InvalidRecord)
	assert.False(t, retry.IsPermanent(err), "nothing tells it from the other: %v", err)

	require.NoError(t, q.Put(ctx, sampleEntry(t, "queued")), "the next attempt writes it")
	require.ErrorIs(t, q.Put(ctx, sampleEntry(t, "refused-entry")), kerr.InvalidRecord, "the broker still refuses it")
	var ids []string
	require.NoError(t, q.List(ctx, func(e dlq.Entry) error { ids = append(ids, e.ID); return nil }))
	assert.Equal(t, []string{"warm", "queued"}, ids, "the queued entry stored once, the refused one never")
}

// Every code by which a broker refuses a batch for what a record holds makes a retryable Put: the
// code does not show the entry at fault.
func TestPutRefusedForContentIsRetryable(t *testing.T) {
	for _, code := range []*kerr.Error{kerr.InvalidRecord, kerr.InvalidTimestamp, kerr.PolicyViolation, kerr.CorruptMessage} {
		t.Run(code.Message, func(t *testing.T) {
			ctx := testCtx(t)
			c, cl := cluster(t, 1)
			q := newQueue(t, cl)
			fault := c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: topic, Err: code})
			err := q.Put(ctx, sampleEntry(t, "refused-once"))
			require.ErrorIs(t, err, code)
			require.Equal(t, 1, fault.Hits())
			assert.False(t, retry.IsPermanent(err), "%v", err)
			require.NoError(t, q.Put(ctx, sampleEntry(t, "refused-once")), "the next attempt writes it")
		})
	}
}

// After a leader election the client still asks the old leaders for offsets, and they answer
// NOT_LEADER_FOR_PARTITION: a read must ask again, not fail.
func TestReadsAfterPartitionLeadersMove(t *testing.T) {
	ctx := testCtx(t)
	const brokers, partitions = 3, 6
	c, err := kfake.NewCluster(kfake.NumBrokers(brokers), kfake.SeedTopics(partitions, topic))
	require.NoError(t, err)
	t.Cleanup(c.Close)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	require.NoError(t, err)
	t.Cleanup(cl.Close)
	q := newQueue(t, cl)
	want := map[string]bool{}
	for i := range 2 * partitions {
		e := sampleEntry(t, fmt.Sprint("e", i))
		e.Event.ID = e.ID // keyed by its own ID, so that the entries spread over the partitions
		require.NoError(t, q.Put(ctx, e))
		want[e.ID] = true
	}
	count := func() int {
		n := 0
		require.NoError(t, q.List(ctx, func(dlq.Entry) error { n++; return nil }))
		return n
	}
	require.Equal(t, len(want), count(), "before the move")

	for p := range int32(partitions) {
		require.NoError(t, c.MoveTopicPartition(topic, p, (c.LeaderFor(topic, p)+1)%brokers))
	}
	got := map[string]bool{}
	require.NoError(t, q.List(ctx, func(e dlq.Entry) error { got[e.ID] = true; return nil }), "List after the move")
	assert.Equal(t, want, got)
	for p := range int32(partitions) {
		require.NoError(t, c.MoveTopicPartition(topic, p, (c.LeaderFor(topic, p)+1)%brokers))
	}
	e, err := q.Get(ctx, "e3")
	require.NoError(t, err, "Get after another move")
	assert.Equal(t, "e3", e.ID)
}

// A record written by another producer may give times with an offset: the entry read back has
// them in UTC, at the same instant, as the JSON form does.
func TestDecodedTimesAreUTC(t *testing.T) {
	ctx := testCtx(t)
	_, cl := cluster(t, 1)
	q := newQueue(t, cl)
	rec := &kgo.Record{Topic: topic, Value: []byte(`{}`), Headers: []kgo.RecordHeader{
		{Key: kafkadlq.HeaderVersion, Value: []byte("1")},
		{Key: kafkadlq.HeaderID, Value: []byte("offset-times")},
		{Key: kafkadlq.HeaderSink, Value: []byte("s")},
		{Key: kafkadlq.HeaderFirstAttempt, Value: []byte("2026-03-01T12:00:00.5+02:00")},
		{Key: kafkadlq.HeaderLastAttempt, Value: []byte("2026-03-01T12:00:01+02:00")},
		{Key: kafkadlq.HeaderEventTime, Value: []byte("2026-03-01T11:59:00-05:30")},
	}}
	require.NoError(t, cl.ProduceSync(ctx, rec).FirstErr())
	e, err := q.Get(ctx, "offset-times")
	require.NoError(t, err)
	for name, got := range map[string]time.Time{"first": e.FirstAttempt, "last": e.LastAttempt, "event": e.Event.Time} {
		assert.Same(t, time.UTC, got.Location(), "%s: %v", name, got)
	}
	assert.Equal(t, time.Date(2026, 3, 1, 10, 0, 0, 5e8, time.UTC), e.FirstAttempt)
	assert.Equal(t, time.Date(2026, 3, 1, 17, 29, 0, 0, time.UTC), e.Event.Time)
}
