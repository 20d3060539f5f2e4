package sink

import (
	"context"
	"errors"
	"time"

	"github.com/fanbridge/fanbridge"
)

// Timeout returns middleware that bounds every Send and SendBatch of the wrapped sink to d, on top
// of whatever deadline the caller's context already carries. A Send cut short returns the wrapped
// sink's error, which for a well-behaved sink wraps context.DeadlineExceeded and so is retryable.
// A SendBatch to a sink that is a Batcher is bounded as a whole; to one that is not, the batch is
// sent one Send at a time, each bounded to d, as each would be on its own.
//
// A d of zero or less leaves the sink unbounded. The wrapper forwards Close and SendBatch to the
// wrapped sink, so wrapping loses neither.
func Timeout(d time.Duration) Middleware {
	return func(next Sink) Sink {
		if d <= 0 {
			return next
		}
		return &timeoutSink{next: next, d: d}
	}
}

type timeoutSink struct {
	next Sink
	d    time.Duration
}

func (t *timeoutSink) Send(ctx context.Context, e *fanbridge.Event) error {
	ctx, cancel := context.WithTimeout(ctx, t.d)
	defer cancel()
	return t.next.Send(ctx, e)
}

func (t *timeoutSink) SendBatch(ctx context.Context, events []*fanbridge.Event) error {
	if !batches(t.next) {
		return SendBatch(ctx, Func(t.Send), events)
	}
	ctx, cancel := context.WithTimeout(ctx, t.d)
	defer cancel()
	return SendBatch(ctx, t.next, events)
}

func (t *timeoutSink) Close() error { return Close(t.next) }

func (t *timeoutSink) batchesBelow() bool { return batches(t.next) }

// batches reports whether SendBatch on s reaches a Batcher, and not one Send per event: the
// middleware here has a SendBatch of its own whatever it wraps, and says what lies below it.
func batches(s Sink) bool {
	if w, ok := s.(interface{ batchesBelow() bool }); ok {
		return w.batchesBelow()
	}
	_, ok := s.(Batcher)
	return ok
}

// Transform returns middleware that hands the wrapped sink f(e) instead of e. Because events are
// shared read-only between sinks, f must not modify e: it returns a changed copy (see
// fanbridge.Event.Clone) or e itself. An error from f is returned as it is, without calling the
// wrapped sink, so f classifies its own failures (retry.Permanent for an event it can never
// convert).
//
// The wrapper forwards Close and SendBatch to the wrapped sink.
func Transform(f func(*fanbridge.Event) (*fanbridge.Event, error)) Middleware {
	return func(next Sink) Sink {
		return &transformSink{next: next, f: f}
	}
}

type transformSink struct {
	next Sink
	f    func(*fanbridge.Event) (*fanbridge.Event, error)
}

func (t *transformSink) Send(ctx context.Context, e *fanbridge.Event) error {
	out, err := t.f(e)
	if err != nil {
		return err
	}
	return t.next.Send(ctx, out)
}

func (t *transformSink) SendBatch(ctx context.Context, events []*fanbridge.Event) error {
	if len(events) == 0 {
		return nil
	}
	errs := make([]error, len(events))
	out := make([]*fanbridge.Event, 0, len(events))
	index := make([]int, 0, len(events))
	failed := false
	for i, e := range events {
		c, err := t.f(e)
		if err != nil {
			errs[i] = err
			failed = true
			continue
		}
		out = append(out, c)
		index = append(index, i)
	}
	if len(out) > 0 {
		err := SendBatch(ctx, t.next, out)
		if err != nil {
			failed = true
			for j, i := range index {
				errs[i] = eventError(err, j)
			}
		}
	}
	if !failed {
		return nil
	}
	return &BatchError{Errs: errs}
}

func (t *transformSink) Close() error { return Close(t.next) }

func (t *transformSink) batchesBelow() bool { return batches(t.next) }

// SendBatch delivers events to s: with one SendBatch call when s implements Batcher, otherwise with
// one Send per event, in order. It returns nil when every event was delivered, a *BatchError when
// only some were, and any other error when that error applies to every event, as Batcher does.
// An empty batch is delivered trivially.
func SendBatch(ctx context.Context, s Sink, events []*fanbridge.Event) error {
	if len(events) == 0 {
		return nil
	}
	if b, ok := s.(Batcher); ok {
		return b.SendBatch(ctx, events)
	}
	var errs []error
	for i, e := range events {
		if err := s.Send(ctx, e); err != nil {
			if errs == nil {
				errs = make([]error, len(events))
			}
			errs[i] = err
		}
	}
	if errs == nil {
		return nil
	}
	return &BatchError{Errs: errs}
}

// EventError returns the error that a SendBatch result err assigns to the event at index i: nil when
// err is nil, Errs[i] when err is (or wraps) a *BatchError, and err itself otherwise (an error that
// applies to every event).
func EventError(err error, i int) error { return eventError(err, i) }

func eventError(err error, i int) error {
	if err == nil {
		return nil
	}
	var be *BatchError
	if errors.As(err, &be) {
		if i < 0 || i >= len(be.Errs) {
			return err
		}
		return be.Errs[i]
	}
	return err
}
