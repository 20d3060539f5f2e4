package kafkasink

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fanbridge/fanbridge/internal/kafkaerr"
	"github.com/fanbridge/fanbridge/retry"
	"github.com/fanbridge/fanbridge/sink"
)

// producerStateErrors are codes kerr calls non-retriable that concern the client's producer
// session (its id, epoch and sequence numbers), not the record: the client resets its session, and
// the same event produced again succeeds. They are retryable here.
var producerStateErrors = []error{
	kerr.OutOfOrderSequenceNumber,
	kerr.DuplicateSequenceNumber,
	kerr.InvalidProducerEpoch,
	kerr.UnknownProducerID,
	kerr.InvalidProducerIDMapping,
}

// classify wraps err, the failure the client reported for the record of event id on topic, and
// marks it permanent when no retry can cure it. sharedBatch is set for a refusal of a batch as too
// large that does not show the record itself too large (see kafkaerr.SharedBatchTooLarge), which a
// retry may cure.
//
// A refusal of a batch that does not show the record at fault, for its size or for what a record
// holds, is the broker's answer: it is marked sink.Refused, so that a run of them does not open
// fanout's circuit breaker on a broker that is up.
func classify(id, topic string, err error, sharedBatch bool) error {
	wrapped := fmt.Errorf("kafkasink: event %q to topic %q: %w", id, topic, err)
	switch {
	case errors.Is(err, kgo.ErrClientClosed):
		return fmt.Errorf("kafkasink: event %q to topic %q: %w: %w", id, topic, sink.ErrClosed, err)
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		return wrapped
	case sharedBatch:
		return sink.Refused(fmt.Errorf("kafkasink: event %q to topic %q: the broker refused a batch of its partition as too large, "+
			"and the record alone may fit (keep the client's ProducerBatchMaxBytes at or below the topic's max.message.bytes "+
			"and segment.bytes): %w",
			id, topic, err))
	case kafkaerr.RefusedForContent(err):
		return sink.Refused(fmt.Errorf("kafkasink: event %q to topic %q: the broker refused a batch of its partition for what a record holds, "+
			"which need not be this one: the client fails every record it holds for the partition with it: %w",
			id, topic, err))
	case IsPermanent(err):
		return retry.Permanent(wrapped)
	default:
		return wrapped
	}
}

// IsPermanent reports whether err, as the franz-go client reports a failed record, is one no retry
// can cure: an unknown topic (the client stops waiting for it after kgo.UnknownTopicRetries
// metadata refreshes), a failed authorization or SASL authentication, a record too large
// (MESSAGE_TOO_LARGE), an invalid topic, or any other broker error code kerr marks non-retriable,
// except those about the producer session, which the client repairs, and those by which the
// broker refuses a whole batch without showing which record was at fault: RECORD_LIST_TOO_LARGE,
// INVALID_RECORD, INVALID_TIMESTAMP, POLICY_VIOLATION and CORRUPT_MESSAGE (see the package's
// Errors table).
// Everything else is retryable: retriable broker codes, kgo.ErrRecordTimeout and
// kgo.ErrRecordRetries with a retriable cause, connection failures, a full buffer.
//
// The client may wrap the cause (kgo.ErrRecordTimeout reports the last error it saw), so every
// error in err's chain counts.
//
// Send, which knows the record, refines one rule: a batch refused as too large that held other
// records besides the event's is retryable there (see the package's Errors table).
func IsPermanent(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, kerr.UnknownTopicOrPartition) || errors.Is(err, kerr.UnknownTopicID) {
		return true
	}
	if errors.Is(err, kerr.RecordListTooLarge) || kafkaerr.RefusedForContent(err) {
		return false
	}
	for _, p := range producerStateErrors {
		if errors.Is(err, p) {
			return false
		}
	}
	return anyKafkaError(err, func(ke *kerr.Error) bool { return !ke.Retriable })
}

// anyKafkaError reports whether some *kerr.Error in err's tree satisfies f.
func anyKafkaError(err error, f func(*kerr.Error) bool) bool {
	switch e := err.(type) {
	case *kerr.Error:
		return f(e)
	case interface{ Unwrap() error }:
		if inner := e.Unwrap(); inner != nil {
			return anyKafkaError(inner, f)
		}
	case interface{ Unwrap() []error }:
		for _, inner := range e.Unwrap() {
			if inner != nil && anyKafkaError(inner, f) {
				return true
			}
		}
	}
	return false
}
