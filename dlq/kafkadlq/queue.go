package kafkadlq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"time"

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
	// ErrBufferFull is wrapped, with ctx's error, by the error of a Put or Delete whose context
	// ended (or, for a Put, whose delivery-timeout bound passed: see ErrNoAcknowledgement) while
	// the client's buffer had no room for its record: the record was never handed to the client,
	// so it will not be written. Such an error is never permanent.
	ErrBufferFull = errors.New("kafkadlq: the client's buffer is full")
	// ErrNoAcknowledgement is wrapped, with context.DeadlineExceeded, by the error of a Put whose
	// record the client took and got no acknowledgement for within the client's
	// kgo.RecordDeliveryTimeout and a margin, however long its context lasts (see the package
	// documentation). The record may still be written; the error is retryable. A Put whose record
	// was still waiting for room in the client's buffer then fails with ErrBufferFull instead.
	ErrNoAcknowledgement = errors.New("kafkadlq: no acknowledgement within the delivery timeout")
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
	// slots holds one token for each record of a Put that the client has and has not yet
	// reported on; it has room for the client's buffer (see produce).
	slots chan struct{}
	// limit is the longest a Put waits, whatever its context (see kafkaerr.WaitLimit); 0 for
	// none. limitErr is the cause a Put's context gets when the limit ends it.
	limit    time.Duration
	limitErr error
}

var (
	_ dlq.Queue  = (*Queue)(nil)
	_ dlq.Reader = (*Queue)(nil)
)

// New returns a queue writing to topic through client, which must produce with acks=all (the
// franz-go default) unless WithAllowWeakAcks is given, and must be neither transactional nor
// flushed by hand (kgo.TransactionalID, kgo.ManualFlushing) nor told to stop producing at the first
// data-loss report (kgo.StopProducerOnDataLossDetected). The topic must exist, or the client must
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
	// Under these no Put could ever succeed, or none after one broker answer, and every dead
	// letter would fail.
	if err := kafkaerr.Unfit(client); err != nil {
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
	q := &Queue{client: client, topic: topic, cfg: cfg, slots: make(chan struct{}, bufferSize(client)), limit: kafkaerr.WaitLimit(client)}
	if q.limit > 0 {
		q.limitErr = fmt.Errorf("%w and its margin (%s in all): %w", ErrNoAcknowledgement, q.limit, context.DeadlineExceeded)
	}
	return q, nil
}

// bufferSize is how many records cl buffers at most (kgo.MaxBufferedRecords; the client reports
// its default, 50,000 in franz-go 1.22, when it was not set). The fallback is for a client that
// reports nothing usable.
func bufferSize(cl *kgo.Client) int {
	var n int64
	switch v := cl.OptValue(kgo.MaxBufferedRecords).(type) {
	case int64:
		n = v
	case int:
		n = int64(v)
	}
	if n <= 0 {
		n = 10_000
	}
	return int(min(n, math.MaxInt32))
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
// which case the record may still be written, unless the error also wraps ErrBufferFull; an error
// wrapping ErrNoAcknowledgement when the client's delivery timeout and its margin pass first (a
// broker gone with the request unanswered), the record again perhaps written; unmarked, and so
// retryable, otherwise. A full client buffer is waited out within ctx, and a Put that gives up
// waiting for room leaves nothing behind: its record is never written.
func (q *Queue) Put(ctx context.Context, e dlq.Entry) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("kafkadlq: put: %w", err)
	}
	e, err := dlq.Prepare(e)
	if err != nil {
		return retry.Permanent(fmt.Errorf("kafkadlq: put: %w", err))
	}
	if q.limit > 0 {
		// A record in a request a crashed broker never answered is kept by the client until a
		// broker does: a Put whose caller set no nearer deadline stops waiting at the limit.
		if deadline, ok := ctx.Deadline(); !ok || time.Until(deadline) > q.limit {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeoutCause(ctx, q.limit, q.limitErr)
			defer cancel()
		}
	}
	return q.produce(ctx, q.client, q.slots, "put", record(q.topic, q.cfg.key(&e), &e))
}

// Bounds of the wait between two offers of a record the client refused for want of room in its
// buffer: the first is short, as the usual cause is a report that gave a token back an instant
// before the client counted its record out.
const (
	minRoomWait = time.Millisecond
	maxRoomWait = 50 * time.Millisecond
)

// produce hands recs to cl and waits for every acknowledgement, or for ctx to end.
//
// The records get a context that never ends but keeps ctx's values: the client fails every record
// batched with one whose context ends, so one caller's deadline must not reach the records of
// others. A record handed over thus cannot be taken back. So none is handed over before the
// buffer has room for it: Produce would wait for that room with no regard to a context it may not
// cancel, and a caller that gave up would leave it waiting, to write the record whenever room
// came. A record is offered with TryProduce once produce holds one of slots, which its promise
// gives back, and the client's buffer counts fewer records than slots holds; the waits for a
// token and, after a refusal for want of room, for the next offer are made here, within ctx. A
// record still waiting here when ctx ends is never written.
func (q *Queue) produce(ctx context.Context, cl *kgo.Client, slots chan struct{}, op string, recs ...*kgo.Record) error {
	type outcome struct {
		r   *kgo.Record
		err error
	}
	// Buffered: a promise must never block the client. Each record is handed over again only
	// once its outcome was read, so it has at most one outcome unread.
	done := make(chan outcome, len(recs))
	promise := func(r *kgo.Record, err error) {
		<-slots
		done <- outcome{r, err}
	}
	rctx := context.WithoutCancel(ctx)
	var (
		todo     = slices.Clone(recs) // records not handed over, or refused for want of room
		out      int                  // records handed over whose outcome is not read
		first    outcome
		timer    *time.Timer
		retryC   <-chan time.Time // set while a refused record waits before its next offer
		roomWait time.Duration
	)
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	// ended is the error of a ctx that ended before every record was acknowledged.
	ended := func() error {
		if out > 0 || len(todo) < len(recs) {
			cause := ctx.Err()
			if c := context.Cause(ctx); errors.Is(c, ErrNoAcknowledgement) {
				cause = c // Put's own limit, not the caller's context
			}
			return fmt.Errorf("kafkadlq: %s: no acknowledgement yet, the record may still be written: %w", op, cause)
		}
		// Nothing was handed over: whichever deadline ended the wait for room, nothing can be
		// written, so the error never says an acknowledgement is missing.
		return fmt.Errorf("%w: %s: the record was not produced, and will not be: %w", ErrBufferFull, op, ctx.Err())
	}
	// later makes the next offer wait, longer after each refusal in a row.
	later := func() {
		roomWait = min(max(2*roomWait, minRoomWait), maxRoomWait)
		if timer == nil {
			timer = time.NewTimer(roomWait)
		} else {
			timer.Reset(roomWait)
		}
		retryC = timer.C
	}
	for len(todo) > 0 || out > 0 {
		var take chan<- struct{}
		if len(todo) > 0 && retryC == nil {
			take = slots
		}
		select {
		case take <- struct{}{}:
			if ctx.Err() != nil {
				// select chose this ready case over ctx.Done: hand nothing more to the client.
				<-slots
				return ended()
			}
			if cl.BufferedProduceRecords() >= int64(cap(slots)) {
				// Full already, of records of others or of one the client reported on and has not
				// counted out yet: the client would refuse the record.
				<-slots
				later()
				continue
			}
			r := todo[0]
			todo = todo[1:]
			out++
			cl.TryProduce(rctx, r, promise)
		case o := <-done:
			out--
			if errors.Is(o.err, kgo.ErrMaxBuffered) {
				todo = append([]*kgo.Record{o.r}, todo...)
				later()
				continue
			}
			roomWait = 0
			if o.err != nil && first.err == nil {
				first = o
			}
		case <-retryC:
			retryC = nil
		case <-ctx.Done():
			return ended()
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
