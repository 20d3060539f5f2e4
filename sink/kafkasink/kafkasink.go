package kafkasink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/internal/closeonce"
	"github.com/fanbridge/fanbridge/internal/kafkaerr"
	"github.com/fanbridge/fanbridge/internal/rfc3339"
	"github.com/fanbridge/fanbridge/retry"
	"github.com/fanbridge/fanbridge/sink"
)

var (
	// ErrInvalidConfig is wrapped by the error New or Dial returns for options or a ClientConfig
	// that cannot work.
	ErrInvalidConfig = errors.New("kafkasink: invalid configuration")
	// ErrWeakAcks is wrapped, with ErrInvalidConfig, by the error New or Dial returns for a client
	// that does not wait for every in-sync replica (acks=all) when producing, unless
	// WithAllowWeakAcks is given: with fewer acks, a nil from Send does not mean the record
	// survives the loss of the partition leader.
	ErrWeakAcks = errors.New("kafkasink: client does not produce with acks=all")
)

const defaultCloseTimeout = 10 * time.Second

// Sink produces each event as one Kafka record and returns once the broker acknowledged it. It
// implements sink.Sink, sink.Batcher and io.Closer. Build one with New or Dial.
type Sink struct {
	client *kgo.Client
	owned  bool // the sink built the client, so Close closes it
	cfg    config
	slots  chan struct{} // one token per record waiting for its acknowledgement
	pool   sync.Pool     // *pending, reused once their promise has run

	// held counts the slots taken. A Send counts its slot, then reads closed, so Close, which
	// sets closed and then waits for held to reach zero, waits for each Send that saw it unset.
	// idle wakes Close when the last slot is given back after closed was set.
	held   atomic.Int64
	idle   chan struct{}
	closed atomic.Bool
	// done is the end of the first Close, which every Close waits for and returns.
	done *closeonce.Done
	// spread is the range of the wait Send asks for after a refusal of a batch: see refusalSpread.
	spread time.Duration
	// limit is the longest a Send waits, whatever its context (see kafkaerr.WaitLimit); 0 for none.
	// limitErr is what a Send returns when it ran out: built once, it is shared.
	limit    time.Duration
	limitErr error
}

var (
	_ sink.Sink    = (*Sink)(nil)
	_ sink.Batcher = (*Sink)(nil)
)

// New returns a Sink that produces through client, which stays the caller's: the sink never closes
// it, and the client's own settings (idempotence, linger, retries, delivery timeout) decide how
// records are produced. The client's kgo.RecordDeliveryTimeout also bounds how long a Send waits
// whatever its context (see ClientConfig.DeliveryTimeout); franz-go's default, none, leaves the
// wait to the context alone. The client must produce with acks=all (the franz-go default) unless
// WithAllowWeakAcks is given, and must be neither transactional nor flushed by hand
// (kgo.TransactionalID, kgo.ManualFlushing), under which no Send could succeed, nor stop producing
// at the first data-loss report (kgo.StopProducerOnDataLossDetected), after which none could. A
// topic option is required.
func New(client *kgo.Client, opts ...Option) (*Sink, error) {
	if client == nil {
		return nil, fmt.Errorf("%w: nil client", ErrInvalidConfig)
	}
	return newSink(client, false, opts)
}

func newSink(client *kgo.Client, owned bool, opts []Option) (*Sink, error) {
	cfg := config{key: KeyByID, closeTimeout: defaultCloseTimeout}
	for _, o := range opts {
		if o != nil {
			o.apply(&cfg)
		}
	}
	switch {
	case cfg.topicOptions == 0:
		return nil, fmt.Errorf("%w: no topic: use WithTopic, WithTopicByType, WithTopicTemplate or WithTopicFunc", ErrInvalidConfig)
	case cfg.topicOptions > 1:
		return nil, fmt.Errorf("%w: %d topic options given, want one", ErrInvalidConfig, cfg.topicOptions)
	case cfg.topicErr != nil:
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, cfg.topicErr)
	case cfg.key == nil:
		return nil, fmt.Errorf("%w: nil KeyFunc", ErrInvalidConfig)
	case cfg.closeTimeout <= 0:
		return nil, fmt.Errorf("%w: close timeout %s is not positive", ErrInvalidConfig, cfg.closeTimeout)
	case cfg.maxInFlight < 0:
		return nil, fmt.Errorf("%w: max in flight %d is negative", ErrInvalidConfig, cfg.maxInFlight)
	}
	if acks, ok := client.OptValue(kgo.RequiredAcks).(kgo.Acks); ok && acks != kgo.AllISRAcks() && !cfg.allowWeakAcks {
		return nil, fmt.Errorf("%w: %w: use acks=all, or WithAllowWeakAcks", ErrInvalidConfig, ErrWeakAcks)
	}
	// Under these no Send could ever succeed, or none after one broker answer: each event would
	// spend its whole retry budget before being dead-lettered.
	if err := kafkaerr.Unfit(client); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	if cfg.maxInFlight == 0 {
		cfg.maxInFlight = clientBufferedRecords(client)
	}
	if cfg.logger == nil {
		cfg.logger = slog.New(slog.DiscardHandler)
	}
	s := &Sink{client: client, owned: owned, cfg: cfg, slots: make(chan struct{}, cfg.maxInFlight), idle: make(chan struct{}, 1),
		done: closeonce.New(), spread: refusalSpread(client), limit: kafkaerr.WaitLimit(client)}
	if s.limit > 0 {
		s.limitErr = fmt.Errorf("%w and its margin (%s in all): %w", ErrNoAcknowledgement, s.limit, context.DeadlineExceeded)
	}
	s.pool.New = func() any { return s.newPending() }
	return s, nil
}

// clientBufferedRecords is the client's kgo.MaxBufferedRecords, the default of WithMaxInFlight.
// The client reports it as an int64; 10,000 stands in for a value it does not report.
func clientBufferedRecords(client *kgo.Client) int {
	var n int64
	switch v := client.OptValue(kgo.MaxBufferedRecords).(type) {
	case int64:
		n = v
	case int:
		n = int64(v)
	}
	if n <= 0 {
		return 10_000
	}
	return int(min(n, math.MaxInt32))
}

// Client returns the client the sink produces through.
func (s *Sink) Client() *kgo.Client { return s.client }

// Ping checks that at least one broker answers, for readiness checks at startup.
func (s *Sink) Ping(ctx context.Context) error {
	if err := s.client.Ping(ctx); err != nil {
		return fmt.Errorf("kafkasink: ping: %w", err)
	}
	return nil
}

// pending is one record on its way: the record itself, the storage its key and headers point into,
// and the channel its promise reports on. Once the promise has run and its result was read, the
// whole of it is reused for another record.
type pending struct {
	s       *Sink
	rec     kgo.Record
	headers []kgo.RecordHeader
	buf     []byte
	keys    []string
	id      string
	done    chan error
	state   atomic.Int32
	promise func(*kgo.Record, error)
}

const (
	stateWaiting   int32 = iota // Send waits for the promise
	stateAbandoned              // Send gave up; the promise cleans up
	stateAnswered               // the promise ran and reported on done
)

func (s *Sink) newPending() *pending {
	p := &pending{s: s, done: make(chan error, 1)}
	// The slot is given back only once the record's fate is reported, so that Close, which waits
	// for every slot, returns after the last report (and its log line) and not before it.
	p.promise = func(r *kgo.Record, err error) {
		if p.state.CompareAndSwap(stateWaiting, stateAnswered) {
			p.done <- err
			s.giveSlot()
			return
		}
		// The Send gave up waiting; nobody else will hear how the record fared.
		if err != nil {
			s.cfg.logger.Warn("kafkasink: a record whose Send gave up waiting failed", "id", p.id, "topic", r.Topic, "error", err)
		} else {
			s.cfg.logger.Debug("kafkasink: a record whose Send gave up waiting was delivered", "id", p.id, "topic", r.Topic, "partition", r.Partition, "offset", r.Offset)
		}
		s.release(p)
		s.giveSlot()
	}
	return p
}

// takeSlot waits for a free slot, or for ctx or b to end.
func (s *Sink) takeSlot(ctx context.Context, b *bound) error {
	select {
	case s.slots <- struct{}{}:
		s.held.Add(1)
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-b.c:
		b.fired()
		return s.limitErr
	}
}

// giveSlot gives back a slot taken by takeSlot, and wakes a Close waiting for the last one.
func (s *Sink) giveSlot() {
	<-s.slots
	if s.held.Add(-1) == 0 && s.closed.Load() {
		select {
		case s.idle <- struct{}{}:
		default:
		}
	}
}

func (s *Sink) release(p *pending) {
	p.rec = kgo.Record{}
	p.id = ""
	clear(p.keys)
	p.state.Store(stateWaiting)
	s.pool.Put(p)
}

// fill builds p's record for e, sent under ctx, or returns the (classified) reason it cannot.
func (s *Sink) fill(ctx context.Context, p *pending, e *fanbridge.Event) error {
	topic, err := s.cfg.topic.f(e)
	if err != nil {
		return fmt.Errorf("kafkasink: choosing a topic for event %q: %w", e.ID, err)
	}
	if !s.cfg.topic.checked {
		if err := ValidTopic(topic); err != nil {
			return retry.Permanent(fmt.Errorf("kafkasink: event %q: %w", e.ID, err))
		}
	}
	key := s.cfg.key(e)
	traceparent, tracestate := sink.TraceContext(ctx, e)
	var format string // of the default source, for an event without one
	sourceLen := len(e.Source)
	if e.Source == "" {
		format = sourceFormat(e)
		sourceLen = len(defaultSourcePrefix) + len(format)
	}

	// Every string the record needs goes into one buffer, sized up front so the slices taken from
	// it stay valid.
	p.keys = p.keys[:0]
	size := len(key) + len(e.ID) + len(e.Type) + sourceLen + len(e.Topic) + len(time.RFC3339Nano) + 8 +
		len(traceparent) + len(tracestate)
	for k, v := range e.Metadata {
		if k == fanbridge.MetaTraceparent || k == fanbridge.MetaTracestate {
			continue // sent from TraceContext's answer
		}
		p.keys = append(p.keys, k)
		size += len(v)
	}
	if cap(p.buf) < size {
		p.buf = make([]byte, 0, size)
	}
	buf := p.buf[:0]
	take := func(s string) []byte {
		start := len(buf)
		buf = append(buf, s...)
		return buf[start:len(buf):len(buf)]
	}
	h := p.headers[:0]
	envelope := s.cfg.envelope && len(e.Raw) > 0
	if !envelope {
		h = append(h, kgo.RecordHeader{Key: HeaderSpecVersion, Value: specVersionBytes})
	}
	h = append(h, kgo.RecordHeader{Key: HeaderID, Value: take(e.ID)})
	h = append(h, kgo.RecordHeader{Key: HeaderType, Value: take(e.Type)})
	if e.Source != "" {
		h = append(h, kgo.RecordHeader{Key: HeaderSource, Value: take(e.Source)})
	} else {
		// CloudEvents requires a non-empty source; see HeaderSource.
		start := len(buf)
		buf = append(append(buf, defaultSourcePrefix...), format...)
		h = append(h, kgo.RecordHeader{Key: HeaderSource, Value: buf[start:len(buf):len(buf)]})
	}
	if e.Topic != "" {
		h = append(h, kgo.RecordHeader{Key: HeaderSubject, Value: take(e.Topic)})
	}
	if !e.Time.IsZero() {
		// In UTC: RFC 3339 offsets have no seconds, so a zone with an odd offset would move the
		// instant.
		t := e.Time.UTC()
		// Only the years EventFromRecord reads back, as the intake reads them: RFC 3339 writes
		// none past 9999 or before 0000, and the intake leaves out 0000 too.
		if _, ok := rfc3339.InYears(t); !ok {
			return retry.Permanent(fmt.Errorf("kafkasink: event %q: time %s is outside the years 0001 to 9999, the RFC 3339 times EventFromRecord reads", e.ID, t))
		}
		start := len(buf)
		buf = t.AppendFormat(buf, time.RFC3339Nano)
		h = append(h, kgo.RecordHeader{Key: HeaderTime, Value: buf[start:len(buf):len(buf)]})
	}
	value := []byte(e.Data)
	if envelope {
		value = e.Raw
		h = append(h, kgo.RecordHeader{Key: HeaderValue, Value: envelopeBytes})
	}
	if len(value) > 0 {
		h = append(h, kgo.RecordHeader{Key: HeaderContentType, Value: jsonContentTypeBytes})
	}
	// Sorted, so that one event always makes the same record.
	slices.Sort(p.keys)
	for _, k := range p.keys {
		h = append(h, kgo.RecordHeader{Key: metaHeaderName(k), Value: take(e.Metadata[k])})
	}
	if traceparent != "" {
		h = append(h, kgo.RecordHeader{Key: HeaderTraceparent, Value: take(traceparent)})
	}
	if tracestate != "" {
		h = append(h, kgo.RecordHeader{Key: HeaderTracestate, Value: take(tracestate)})
	}
	var keyBytes []byte
	if key != "" {
		keyBytes = take(key)
	}
	p.buf, p.headers, p.id = buf, h, e.ID
	p.rec = kgo.Record{Topic: topic, Key: keyBytes, Value: value, Headers: h}
	return nil
}

var (
	specVersionBytes     = []byte(specVersion)
	envelopeBytes        = []byte(valueEnvelope)
	jsonContentTypeBytes = []byte(jsonContentType)
)

// Send produces e and waits for the broker to acknowledge it (with acks=all, for every in-sync
// replica to have it). The record is produced asynchronously inside the client, so concurrent Sends
// share produce requests. When ctx ends first, Send returns an error wrapping ctx's error, which is
// never permanent, and the record may still be delivered: see the package documentation. Nor does
// Send wait past the client's delivery timeout, with a margin (see the package's Delivery
// semantics), whatever ctx: then it returns a retryable error wrapping ErrNoAcknowledgement and
// context.DeadlineExceeded, and the record, again, may still be delivered.
func (s *Sink) Send(ctx context.Context, e *fanbridge.Event) error {
	if e == nil {
		return retry.Permanent(errors.New("kafkasink: nil event"))
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("kafkasink: event %q not produced: %w", e.ID, err)
	}
	b := s.startBound(ctx)
	defer b.stop()
	p := s.pool.Get().(*pending)
	if err := s.produce(ctx, p, e, &b); err != nil {
		s.release(p)
		return err
	}
	return s.wait(ctx, p, &b)
}

// produce hands p's record for e to the client, holding a slot until its promise runs.
func (s *Sink) produce(ctx context.Context, p *pending, e *fanbridge.Event, b *bound) error {
	// Checked before anything about the event, so that a closed sink refuses every event alike
	// (a permanent refusal of this one, an unmapped type say, would dead-letter it during
	// shutdown), and before waiting for a slot too, so that a Send after Close fails at once
	// instead of waiting for a slot that the records Close drains still hold.
	if s.closed.Load() {
		return fmt.Errorf("kafkasink: event %q: %w", e.ID, sink.ErrClosed)
	}
	if err := s.fill(ctx, p, e); err != nil {
		return err
	}
	if err := s.takeSlot(ctx, b); err != nil {
		return fmt.Errorf("kafkasink: event %q not produced: %d records already wait for acknowledgement: %w", e.ID, cap(s.slots), err)
	}
	if s.closed.Load() {
		s.giveSlot()
		return fmt.Errorf("kafkasink: event %q: %w", e.ID, sink.ErrClosed)
	}
	// The client gets a context that is never canceled but keeps ctx's values (for tracing hooks):
	// the client fails every record batched with one whose context ends, so one caller's
	// cancellation must not reach the records of others.
	produceCtx := ctx
	if ctx.Done() != nil {
		produceCtx = context.WithoutCancel(ctx)
	}
	// Produce waits for room when the client's buffer is full. With the default WithMaxInFlight
	// the slots keep it from filling, but for the instant between a promise (which gives the slot
	// back) and the client counting the record out, which TryProduce would fail; a buffer shared
	// with other producers or bounded in bytes can make the wait longer (see WithMaxInFlight).
	// No lock is held meanwhile, so Close keeps its timeout.
	s.client.Produce(produceCtx, &p.rec, p.promise)
	return nil
}

// wait waits for p's promise, or for ctx or b to end.
func (s *Sink) wait(ctx context.Context, p *pending, b *bound) error {
	select {
	case err := <-p.done:
		return s.answer(p, err)
	case <-ctx.Done():
		return s.abandon(p, ctx.Err())
	case <-b.c:
		b.fired()
		return s.abandon(p, nil)
	}
}

// abandon stops waiting for p's promise, unless it already ran: for cause, the end of the
// caller's context, or, when nil, for the sink's limit.
func (s *Sink) abandon(p *pending, cause error) error {
	// Once abandoned, the promise owns p and may recycle it at any moment: read what the error
	// names first.
	id, topic := p.id, p.rec.Topic
	if p.state.CompareAndSwap(stateWaiting, stateAbandoned) {
		if cause == nil {
			return fmt.Errorf("kafkasink: event %q to topic %q, the record may still be delivered: %w", id, topic, s.limitErr)
		}
		return fmt.Errorf("kafkasink: event %q to topic %q: no acknowledgement yet, the record may still be delivered: %w",
			id, topic, cause)
	}
	// The promise ran just now: its answer is the truth.
	return s.answer(p, <-p.done)
}

func (s *Sink) answer(p *pending, err error) error {
	if err != nil {
		err = classify(p.id, p.rec.Topic, err, kafkaerr.SharedBatchTooLarge(err, &p.rec))
		if sink.IsRefused(err) {
			err = retry.After(err, rand.N(s.spread))
		}
	}
	s.release(p)
	return err
}

// refusalSpread is the range of the random wait Send asks for (retry.After) when the broker refused
// a batch without showing the record at fault. The client fails every record it holds for the
// partition at once, and retries that all come after the same interval (a policy without jitter,
// or any interval inside the client's linger) would have the client batch the records together
// again, the one at fault with the others, to be refused again at every attempt. A record shares
// the next batch of the one at fault when its wait ends within about a linger of that one's: with
// waits spread over refusalLingers lingers, about one time in eight, so a valid record shares
// every one of the four retries of the default policy with the one at fault about once in 4,000.
// (Over two lingers it is once in 16: on a kfake broker, 28 of 30 bursts of 30 valid events and
// an invalid one, retried without jitter, lost a valid event.) With no linger a batch gathers what
// comes while the request before it is out, and the spread is at least minRefusalSpread.
func refusalSpread(client *kgo.Client) time.Duration {
	linger, _ := client.OptValue(kgo.ProducerLinger).(time.Duration)
	return max(refusalLingers*linger, minRefusalSpread)
}

const (
	refusalLingers   = 8
	minRefusalSpread = 10 * time.Millisecond
)

// SendBatch produces every event, then waits for every acknowledgement; the records share produce
// requests. It returns nil when all were acknowledged, and otherwise a *sink.BatchError with one
// entry per event (nil for those delivered), or, when ctx was already done, that one error for all.
// The whole batch waits no longer than one Send would (see Send).
func (s *Sink) SendBatch(ctx context.Context, events []*fanbridge.Event) error {
	if len(events) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("kafkasink: batch of %d events not produced: %w", len(events), err)
	}
	// One bound for the batch, from its start: waits that each took the whole of it in turn could
	// add up to one for every event.
	b := s.startBound(ctx)
	defer b.stop()
	ps := make([]*pending, len(events))
	errs := make([]error, len(events))
	failed := false
	for i, e := range events {
		if e == nil {
			errs[i], failed = retry.Permanent(errors.New("kafkasink: nil event")), true
			continue
		}
		p := s.pool.Get().(*pending)
		if err := s.produce(ctx, p, e, &b); err != nil {
			s.release(p)
			errs[i], failed = err, true
			continue
		}
		ps[i] = p
	}
	for i, p := range ps {
		if p == nil {
			continue
		}
		if errs[i] = s.wait(ctx, p, &b); errs[i] != nil {
			failed = true
		}
	}
	if !failed {
		return nil
	}
	return &sink.BatchError{Errs: errs}
}

// Close stops new Sends (they fail with an error wrapping sink.ErrClosed), waits up to the close
// timeout for the records already produced to be acknowledged, and then closes the client if the
// sink built it (Dial). A caller's client is left open. Close returns an error when records were
// still unacknowledged at the timeout; a client the sink owns is closed regardless, which fails
// them. Close may be called more than once, and concurrently: every call returns only once the
// sink is closed, with the first call's result. Close is CloseContext with a context that never
// ends.
func (s *Sink) Close() error {
	return s.CloseContext(context.Background())
}

// CloseContext closes the sink as Close does, but waits for it only as long as ctx lasts: when
// ctx ends first, it returns an error wrapping ctx's error, and the close carries on within its
// own timeout (WithCloseTimeout), whichever call began it. Otherwise it returns what Close
// returns, the same result for every call.
func (s *Sink) CloseContext(ctx context.Context) error {
	if !s.closed.Swap(true) {
		s.done.Start(ctx, s.shutdown)
	}
	return s.done.Wait(ctx, "kafkasink")
}

// shutdown does the work of the first Close.
func (s *Sink) shutdown() error {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.closeTimeout)
	defer cancel()
	if s.owned {
		// Flush sends what the client still lingers on at once, rather than after its linger.
		_ = s.client.Flush(ctx)
	}
	err := s.drain(ctx)
	if s.owned {
		s.client.Close()
	}
	return err
}

// drain waits until no record of this sink awaits acknowledgement: until every slot is given
// back. closed is set, so no Send takes one for good any more. It waits on the count of slots
// held, not by taking every free one, so its cost does not grow with WithMaxInFlight (which
// defaults to the client's kgo.MaxBufferedRecords, and may be huge when the buffer is bounded
// in bytes).
func (s *Sink) drain(ctx context.Context) error {
	for s.held.Load() > 0 {
		select {
		case <-s.idle:
		case <-ctx.Done():
			return fmt.Errorf("kafkasink: close: %d records still unacknowledged after %s: %w",
				s.held.Load(), s.cfg.closeTimeout, ctx.Err())
		}
	}
	return nil
}
