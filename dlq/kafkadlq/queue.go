package kafkadlq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fanbridge/fanbridge/dlq"
	"github.com/fanbridge/fanbridge/internal/kafkaerr"
	"github.com/fanbridge/fanbridge/retry"
)

// Errors of package kafkadlq, besides those of package dlq it wraps.
var (
	// ErrInvalidOption is wrapped by the error New returns for a nil client, a bad topic name or
	// an option it cannot use.
	ErrInvalidOption = errors.New("kafkadlq: invalid option")
	// ErrWeakAcks is returned by New for a client that does not wait for every in-sync replica
	// (acks=all) when producing, unless WithAllowWeakAcks is given.
	ErrWeakAcks = errors.New("kafkadlq: client does not produce with acks=all")
	// ErrNotEntry: a record of the topic that fanbridge did not write. Damage.Err wraps it.
	ErrNotEntry = errors.New("kafkadlq: record is not a dead-letter entry")
)

// Damage describes a record of the topic that is not an entry; List and Get skip it and report it
// to the WithOnDamage hook and the logger.
type Damage struct {
	Partition int32
	Offset    int64
	// Err wraps ErrNotEntry, dlq.ErrUnknownVersion or dlq.ErrMalformed.
	Err error
}

// Option configures New.
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type config struct {
	key           func(*dlq.Entry) []byte
	allowWeakAcks bool
	logger        *slog.Logger
	onDamage      func(Damage)
	readOpts      []kgo.Opt
}

// WithKey sets how a record's key is made from its entry. The default is the event's ID, or the
// entry's ID for an event without one, so that the entries of one event share a partition.
func WithKey(f func(e *dlq.Entry) []byte) Option {
	return optionFunc(func(c *config) { c.key = f })
}

// WithAllowWeakAcks lets New accept a client that produces with acks=0 or acks=1, with which a
// broker failure can lose an entry Put reported as stored. The default refuses such a client with
// ErrWeakAcks.
func WithAllowWeakAcks() Option {
	return optionFunc(func(c *config) { c.allowWeakAcks = true })
}

// WithLogger sets the logger for records that are not entries. Entry contents are never logged.
// The default discards everything.
func WithLogger(l *slog.Logger) Option {
	return optionFunc(func(c *config) { c.logger = l })
}

// WithOnDamage sets a hook called, on the reading goroutine, with each record of the topic that
// is not an entry. The default is no hook.
func WithOnDamage(f func(Damage)) Option {
	return optionFunc(func(c *config) { c.onDamage = f })
}

// WithReadOpts adds options to the short-lived clients that List and Get read with and Delete
// writes removals with, after the connection options copied from the queue's client (see the
// package documentation). The default adds none.
func WithReadOpts(opts ...kgo.Opt) Option {
	return optionFunc(func(c *config) { c.readOpts = append(c.readOpts, opts...) })
}

// Queue is a dead-letter queue in a Kafka topic. It implements dlq.Queue and dlq.Reader and is
// safe for concurrent use. It does not own the client: closing the client is the caller's job.
type Queue struct {
	client *kgo.Client
	topic  string
	cfg    config
}

var (
	_ dlq.Queue  = (*Queue)(nil)
	_ dlq.Reader = (*Queue)(nil)
)

// New returns a queue writing to topic through client, which must produce with acks=all (the
// franz-go default) unless WithAllowWeakAcks is given, and must be neither transactional nor
// flushed by hand (kgo.TransactionalID, kgo.ManualFlushing). The topic must exist, or the client must
// be allowed to create it; use the delete cleanup policy (see the package documentation).
func New(client *kgo.Client, topic string, opts ...Option) (*Queue, error) {
	cfg := config{logger: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		o.apply(&cfg)
	}
	switch {
	case client == nil:
		return nil, fmt.Errorf("%w: nil client", ErrInvalidOption)
	case !validTopic(topic):
		return nil, fmt.Errorf("%w: topic %q: 1 to 249 characters of a-z, A-Z, 0-9, '.', '_' and '-'", ErrInvalidOption, topic)
	case cfg.logger == nil:
		return nil, fmt.Errorf("%w: nil logger", ErrInvalidOption)
	}
	if acks, ok := client.OptValue(kgo.RequiredAcks).(kgo.Acks); ok && acks != kgo.AllISRAcks() && !cfg.allowWeakAcks {
		return nil, ErrWeakAcks
	}
	// Under these no Put could ever succeed, and every dead letter would fail.
	if err := kafkaerr.NeverProduces(client); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidOption, err)
	}
	if cfg.key == nil {
		cfg.key = func(e *dlq.Entry) []byte {
			if e.Event.ID != "" {
				return []byte(e.Event.ID)
			}
			return []byte(e.ID)
		}
	}
	return &Queue{client: client, topic: topic, cfg: cfg}, nil
}

func validTopic(t string) bool {
	if t == "" || len(t) > 249 || t == "." || t == ".." {
		return false
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// Topic returns the queue's topic.
func (q *Queue) Topic() string { return q.topic }

// Put writes e as one record and returns once the broker has acknowledged it, with every in-sync
// replica holding it (acks=all). The error is classified like a sink's: marked permanent (with
// retry.Permanent) for an invalid entry, an unknown topic, a denied authorization or a record too
// large on its own (a refusal of a batch that does not show the record itself at fault is
// retryable: see the package documentation); an error wrapping ctx's error when ctx ends first, in
// which case the record may still be written; unmarked, and so retryable, otherwise. A full client
// buffer is waited out, within ctx.
func (q *Queue) Put(ctx context.Context, e dlq.Entry) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("kafkadlq: put: %w", err)
	}
	e, err := dlq.Prepare(e)
	if err != nil {
		return retry.Permanent(fmt.Errorf("kafkadlq: put: %w", err))
	}
	return q.produce(ctx, q.client, "put", record(q.topic, q.cfg.key(&e), &e))
}

// produce hands recs to cl and waits for every acknowledgement, or for ctx to end.
func (q *Queue) produce(ctx context.Context, cl *kgo.Client, op string, recs ...*kgo.Record) error {
	type outcome struct {
		r   *kgo.Record
		err error
	}
	done := make(chan outcome, len(recs)) // buffered: a promise must never block the client
	promise := func(r *kgo.Record, err error) { done <- outcome{r, err} }
	// The records get a context that never ends but keeps ctx's values: the client fails every
	// record batched with one whose context ends, so one caller's deadline must not reach the
	// records of others. Produce waits for room in a full buffer, with no regard to a context it
	// may not cancel, so it runs on its own goroutine while this one waits within ctx; a
	// Delete of more ids than the buffer holds then goes out as room comes.
	rctx := context.WithoutCancel(ctx)
	go func() {
		for _, r := range recs {
			cl.Produce(rctx, r, promise)
		}
	}()
	var first outcome
	for range recs {
		select {
		case o := <-done:
			if first.err == nil {
				first = o
			}
		case <-ctx.Done():
			return fmt.Errorf("kafkadlq: %s: no acknowledgement yet, the record may still be written: %w", op, ctx.Err())
		}
	}
	if first.err == nil {
		return nil
	}
	if kafkaerr.SharedBatchTooLarge(first.err, first.r) {
		// The broker judged a whole batch, and the client failed with it every record it held for
		// the partition; the record alone may fit, so another attempt may pass.
		return fmt.Errorf("kafkadlq: %s: the broker refused a batch of the record's partition as too large, and the record alone may fit "+
			"(keep the client's ProducerBatchMaxBytes at or below the topic's max.message.bytes and segment.bytes): %w", op, first.err)
	}
	if kafkaerr.RefusedForContent(first.err) {
		// Neither shows the record at fault: a Put refused for another's content passes next time.
		return fmt.Errorf("kafkadlq: %s: the broker refused a batch of the record's partition for what a record holds, "+
			"which need not be this one: the client fails every record it holds for the partition with it: %w", op, first.err)
	}
	return classify(op, first.err)
}

// classify marks what no retry cures as permanent, the way kafkasink does: franz-go retries what
// kerr.IsRetriable allows before it gives up, so an unknown topic is final here even though the
// broker calls it retriable. A refusal for a record's content is not: it names no record (see
// kafkaerr.RefusedForContent).
func classify(op string, err error) error {
	err = fmt.Errorf("kafkadlq: %s: %w", op, err)
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	case errors.Is(err, kgo.ErrClientClosed):
		return fmt.Errorf("%w: %w", dlq.ErrClosed, err)
	case errors.Is(err, kerr.UnknownTopicOrPartition),
		errors.Is(err, kerr.TopicAuthorizationFailed),
		errors.Is(err, kerr.ClusterAuthorizationFailed),
		errors.Is(err, kerr.TransactionalIDAuthorizationFailed),
		errors.Is(err, kerr.SaslAuthenticationFailed),
		errors.Is(err, kerr.MessageTooLarge),
		errors.Is(err, kerr.InvalidTopicException):
		return retry.Permanent(err)
	}
	var ke *kerr.Error
	if errors.As(err, &ke) && !ke.Retriable && !kafkaerr.RefusedForContent(err) {
		return retry.Permanent(err)
	}
	return err
}

func (q *Queue) report(d Damage) {
	q.cfg.logger.Warn("kafkadlq: record is not a readable entry", "topic", q.topic,
		"partition", d.Partition, "offset", d.Offset, "reason", d.Err)
	if q.cfg.onDamage != nil {
		q.cfg.onDamage(d)
	}
}
