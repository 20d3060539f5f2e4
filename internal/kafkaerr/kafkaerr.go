// Package kafkaerr reads what franz-go reports about refused records beyond their error codes,
// tells the client settings under which no record would ever be acknowledged, and how long a
// client may keep a record before it gives up.
package kafkaerr

import (
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// SharedBatchTooLarge reports whether err is the broker refusing, as too large, a batch that does
// not show r itself too large: r may have shared the batch with others, or been queued behind it
// in its partition (the client then fails every record it holds for that partition), and on its
// own r may fit.
//
// The client adds the refused batch's size to the broker's MESSAGE_TOO_LARGE ("(uncompressed_bytes=N,
// compressed_bytes=M)"): the bytes of its records, without the batch header. The client's own
// refusal of a record too large for its limits carries only the record's size. A batch whose
// records take more bytes than r takes as a batch's only record held something else than r: the
// broker would then take r alone, or refuse it alone for being larger still. When the size cannot
// be read, it reports false. Sizes are those of the v2 record format (Kafka 0.11 and later, which
// idempotent producing needs); a legacy message set frames a record in more bytes, so there a
// record alone counts as shared: retried until its policy gives up, never lost.
//
// RECORD_LIST_TOO_LARGE (a batch larger than the topic's segment.bytes) comes with no size, so it
// never shows which record was too large: it always reports true. A record too large for the
// client's batch limit (kgo.ProducerBatchMaxBytes) alone never reaches the broker: the client
// refuses it with MESSAGE_TOO_LARGE and its size.
func SharedBatchTooLarge(err error, r *kgo.Record) bool {
	if errors.Is(err, kerr.RecordListTooLarge) {
		return true
	}
	if !errors.Is(err, kerr.MessageTooLarge) {
		return false
	}
	batch, ok := refusedBatchBytes(err.Error())
	if !ok {
		return false
	}
	return batch > loneRecordBytes(r)
}

// contentCodes are the codes by which a broker refuses a produce batch for what a record in it
// holds.
var contentCodes = []error{kerr.InvalidRecord, kerr.InvalidTimestamp, kerr.PolicyViolation, kerr.CorruptMessage}

// RefusedForContent reports whether err is a broker's refusal of a produce batch for what a record
// holds: INVALID_RECORD, INVALID_TIMESTAMP, POLICY_VIOLATION or CORRUPT_MESSAGE. Such a refusal
// shows no record at fault. The broker refuses the whole batch for one record, and the client
// fails with that code every record it holds for the partition, those queued behind the refused
// batch too, and keeps none of the broker's per-record errors.
func RefusedForContent(err error) bool {
	for _, code := range contentCodes {
		if errors.Is(err, code) {
			return true
		}
	}
	return false
}

// loneRecordBytes is the size of r encoded as the first record of a batch (Kafka's record format
// v2): its timestamp and offset deltas are then zero, one byte each.
func loneRecordBytes(r *kgo.Record) int64 {
	body := 1 + 1 + 1 + bytesField(r.Key) + bytesField(r.Value) + varintLen(int64(len(r.Headers)))
	for _, h := range r.Headers {
		body += varintLen(int64(len(h.Key))) + int64(len(h.Key)) + bytesField(h.Value)
	}
	return varintLen(body) + body
}

// bytesField is the size of a nullable byte field: its length as a varint (-1 for nil), then it.
func bytesField(b []byte) int64 {
	if b == nil {
		return varintLen(-1)
	}
	return varintLen(int64(len(b))) + int64(len(b))
}

// varintLen is the size of n as a zig-zag varint.
func varintLen(n int64) int64 {
	u := uint64(n<<1) ^ uint64(n>>63)
	size := int64(1)
	for u >= 0x80 {
		u >>= 7
		size++
	}
	return size
}

// refusedBatchBytes reads N from the last "(uncompressed_bytes=N, compressed_bytes=" in msg.
func refusedBatchBytes(msg string) (int64, bool) {
	const prefix = "(uncompressed_bytes="
	i := strings.LastIndex(msg, prefix)
	if i < 0 {
		return 0, false
	}
	digits, rest, ok := strings.Cut(msg[i+len(prefix):], ",")
	if !ok || !strings.HasPrefix(rest, " compressed_bytes=") {
		return 0, false
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	return n, err == nil && n >= 0
}

// Unfit returns why records produced through c, outside any transaction, could never be
// acknowledged, or could stop being acknowledged for the rest of the client's life, or nil: a
// transactional client refuses such records, one flushed by hand sends nothing until told to, and
// one told to stop on data loss fails every record after a single OUT_OF_ORDER_SEQUENCE_NUMBER or
// UNKNOWN_PRODUCER_ID answer, however the broker answers afterwards, until the process restarts;
// retried, each of them would fail again.
func Unfit(c *kgo.Client) error {
	if id, _ := c.OptValue(kgo.TransactionalID).(string); id != "" {
		return errors.New("the client is transactional: it refuses records produced outside a transaction")
	}
	if manual, _ := c.OptValue(kgo.ManualFlushing).(bool); manual {
		return errors.New("the client flushes only when told to, so no record is ever acknowledged: leave ManualFlushing off")
	}
	if stop, _ := c.OptValue(kgo.StopProducerOnDataLossDetected).(bool); stop {
		return errors.New("the client stops producing for good at the first data-loss report, so every later record would fail however often it is retried: leave StopProducerOnDataLossDetected off")
	}
	return nil
}

// backoffCap is the longest wait franz-go's default retry backoff asks for between tries.
const backoffCap = 5 * time.Second

// WaitLimit is the longest a producer should wait for a record's acknowledgement, whatever its
// context: the client's kgo.RecordDeliveryTimeout, plus its kgo.ProducerLinger, plus a margin; 0
// (no limit) for a client without a delivery timeout, which never gives up on a record either.
//
// The client fails a record at its delivery timeout only when that is safe for the idempotent
// producer's sequence numbers: not for a record in a produce request that went out and got no
// answer (a broker that crashed after the request was written), which it keeps until a broker
// answers, however long that takes. The limit ends the wait for those; for the others, the
// client's own failure, which names the cause (a refused login is permanent), should come first.
// The client looks at a record's age only when it writes a request for it or hears back, so that
// failure comes after the timeout by up to a linger (a record waits that long before its first
// request) and one retry backoff (up to backoffCap with the default backoff). The margin is that
// backoff, but no longer than the delivery timeout: the backoff starts at 250 ms and doubles, so
// it has rarely grown past the time a record already waited, and a short delivery timeout stays
// short.
func WaitLimit(c *kgo.Client) time.Duration {
	delivery, _ := c.OptValue(kgo.RecordDeliveryTimeout).(time.Duration)
	if delivery <= 0 {
		return 0
	}
	linger, _ := c.OptValue(kgo.ProducerLinger).(time.Duration)
	return delivery + linger + min(delivery, backoffCap)
}
