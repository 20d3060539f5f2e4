package kafkaerr

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestSharedBatchTooLarge(t *testing.T) {
	rec := &kgo.Record{Key: []byte("id-1"), Value: make([]byte, 1000),
		Headers: []kgo.RecordHeader{{Key: "ce_id", Value: []byte("id-1")}}}
	// As a batch's only record: its length (2), attributes and two deltas (3), the key (1+4), the
	// value (2+1000), a header count (1) and the header (1+5+1+4).
	alone := 2 + 3 + 5 + 1002 + 1 + 11
	broker := func(code error, batch int) error {
		return fmt.Errorf("%w (uncompressed_bytes=%d, compressed_bytes=%d)", code, batch, batch)
	}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"broker, batch shared", broker(kerr.MessageTooLarge, 8800), true},
		{"broker, record alone", broker(kerr.MessageTooLarge, alone), false},
		{"broker, one byte more than the record", broker(kerr.MessageTooLarge, alone+1), true},
		{"wrapped further", fmt.Errorf("%w: last error: %w", kgo.ErrRecordTimeout, broker(kerr.MessageTooLarge, 8800)), true},
		{"client refusal carries the record's size only", fmt.Errorf("%w (uncompressed_bytes=%d)", kerr.MessageTooLarge, 8800), false},
		{"no size", kerr.MessageTooLarge, false},
		{"another code", broker(kerr.InvalidRecord, 8800), false},
		{"not a number", errors.Join(kerr.MessageTooLarge, errors.New("(uncompressed_bytes=x, compressed_bytes=1)")), false},
		{"negative", errors.Join(kerr.MessageTooLarge, errors.New("(uncompressed_bytes=-9000, compressed_bytes=1)")), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := SharedBatchTooLarge(tt.err, rec); got != tt.want {
				t.Errorf("SharedBatchTooLarge(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

func FuzzRefusedBatchBytes(f *testing.F) {
	f.Add("MESSAGE_TOO_LARGE (uncompressed_bytes=8800, compressed_bytes=8800)")
	f.Add("(uncompressed_bytes=1)")
	f.Add("(uncompressed_bytes=99999999999999999999, compressed_bytes=")
	f.Fuzz(func(t *testing.T, msg string) {
		n, ok := refusedBatchBytes(msg)
		if !ok {
			return
		}
		if n < 0 {
			t.Fatalf("refusedBatchBytes(%q) = %d", msg, n)
		}
		if !strings.Contains(msg, fmt.Sprintf("(uncompressed_bytes=%d, compressed_bytes=", n)) &&
			!strings.Contains(msg, "(uncompressed_bytes=+") && !strings.Contains(msg, "(uncompressed_bytes=0") {
			t.Fatalf("refusedBatchBytes(%q) = %d, which the message does not spell", msg, n)
		}
	})
}

// batchBytes passes on the size franz-go reports for each batch it writes: the bytes of its
// records, the figure it also puts into a refusal's "uncompressed_bytes".
type batchBytes chan int

func (h batchBytes) OnProduceBatchWritten(_ kgo.BrokerMetadata, _ string, _ int32, m kgo.ProduceBatchMetrics) {
	h <- m.UncompressedBytes
}

// TestLoneRecordBytesIsWhatTheClientCounts checks the encoding against franz-go on a real broker:
// each record, produced alone, must make a batch of exactly loneRecordBytes.
func TestLoneRecordBytesIsWhatTheClientCounts(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "t"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	h := make(batchBytes, 16)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.WithHooks(h),
		kgo.ProducerBatchCompression(kgo.NoCompression()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	many := make([]kgo.RecordHeader, 70)
	for i := range many {
		many[i] = kgo.RecordHeader{Key: "h" + strconv.Itoa(i), Value: []byte("v")}
	}
	for _, r := range []*kgo.Record{
		{},
		{Value: []byte{}},
		{Key: []byte("k"), Value: []byte("x")},
		{Key: make([]byte, 200), Value: make([]byte, 70000)},
		{Value: []byte("v"), Headers: []kgo.RecordHeader{{Key: "ce_id", Value: nil}, {Key: "", Value: []byte("e")}}},
		{Key: []byte("id"), Value: make([]byte, 1000), Headers: many},
	} {
		r.Topic = "t"
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
		// The hook may run after the record's promise: wait for it.
		select {
		case got := <-h:
			if int64(got) != loneRecordBytes(r) {
				t.Errorf("key %d bytes, value %d bytes, %d headers: a batch of %d bytes, loneRecordBytes %d",
					len(r.Key), len(r.Value), len(r.Headers), got, loneRecordBytes(r))
			}
		case <-ctx.Done():
			t.Fatal("no batch reported")
		}
	}
}

// TestSharedBatchTooLargeOnABroker has a broker refuse a batch that r fits alone but not beside a
// one-byte record, and a batch of r alone that does not fit.
func TestSharedBatchTooLargeOnABroker(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Records produced together within the linger share a batch.
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ProducerLinger(100*time.Millisecond),
		kgo.RecordRetries(1), kgo.ProducerBatchCompression(kgo.NoCompression()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	newRec := func(topic string) *kgo.Record {
		return &kgo.Record{Topic: topic, Key: []byte("id-1"), Value: make([]byte, 1000),
			Headers: []kgo.RecordHeader{{Key: "ce_id", Value: []byte("id-1")}}}
	}
	// A batch is its 61-byte header and its records: "fits" takes r alone exactly, "small" not.
	fits := strconv.FormatInt(61+loneRecordBytes(newRec("")), 10)
	small := strconv.FormatInt(61+loneRecordBytes(newRec(""))-1, 10)
	adm := kadm.NewClient(cl)
	if _, err := adm.CreateTopic(ctx, 1, 1, map[string]*string{"max.message.bytes": &fits}, "fits"); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.CreateTopic(ctx, 1, 1, map[string]*string{"max.message.bytes": &small}, "small"); err != nil {
		t.Fatal(err)
	}

	r := newRec("fits")
	var wg sync.WaitGroup
	var shared error
	wg.Add(2)
	cl.Produce(ctx, r, func(_ *kgo.Record, err error) { shared = err; wg.Done() })
	cl.Produce(ctx, &kgo.Record{Topic: "fits", Value: []byte("x")}, func(*kgo.Record, error) { wg.Done() })
	wg.Wait()
	if shared == nil {
		t.Fatal("the broker took a batch over its limit")
	}
	if !SharedBatchTooLarge(shared, r) {
		t.Errorf("SharedBatchTooLarge(%v) = false for a batch r shared", shared)
	}
	if err := cl.ProduceSync(ctx, newRec("fits")).FirstErr(); err != nil {
		t.Errorf("r alone: %v", err)
	}

	r = newRec("small")
	alone := cl.ProduceSync(ctx, r).FirstErr()
	if alone == nil {
		t.Fatal("the broker took a record over its limit")
	}
	if SharedBatchTooLarge(alone, r) {
		t.Errorf("SharedBatchTooLarge(%v) = true for r alone", alone)
	}

	// RECORD_LIST_TOO_LARGE comes as the bare code, with no size to tell r from its company, even
	// for a batch of r alone.
	fault := c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "fits", Err: kerr.RecordListTooLarge})
	r = newRec("fits")
	list := cl.ProduceSync(ctx, r).FirstErr()
	if fault.Hits() != 1 || !errors.Is(list, kerr.RecordListTooLarge) {
		t.Fatalf("the broker's refusal of a record list came back as %v", list)
	}
	if !SharedBatchTooLarge(list, r) {
		t.Errorf("SharedBatchTooLarge(%v) = false: a record list refused tells no record's size", list)
	}
}

// TestRefusedForContentOnABroker takes the errors the client reports for batches a broker refuses.
func TestRefusedForContentOnABroker(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "t"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for _, tt := range []struct {
		code *kerr.Error
		want bool
	}{
		{kerr.InvalidRecord, true},
		{kerr.InvalidTimestamp, true},
		{kerr.PolicyViolation, true},
		{kerr.CorruptMessage, true},
		{kerr.TopicAuthorizationFailed, false},
		{kerr.MessageTooLarge, false},
		{kerr.UnknownServerError, false},
	} {
		fault := c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "t", Err: tt.code})
		got := cl.ProduceSync(ctx, &kgo.Record{Topic: "t", Value: []byte("v")}).FirstErr()
		fault.Remove()
		if !errors.Is(got, tt.code) {
			t.Fatalf("%s: the client reported %v", tt.code.Message, got)
		}
		if RefusedForContent(got) != tt.want {
			t.Errorf("RefusedForContent(%v) = %v, want %v", got, !tt.want, tt.want)
		}
		if wrapped := fmt.Errorf("%w: last error: %w", kgo.ErrRecordTimeout, got); RefusedForContent(wrapped) != tt.want {
			t.Errorf("RefusedForContent(%v) = %v, want %v", wrapped, !tt.want, tt.want)
		}
	}
}
