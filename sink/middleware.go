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
// wrapped sink, so wrapping loses neither, and its Unwrap returns the wrapped sink (see Innermost).
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

// Unwrap returns the sink t wraps.
func (t *timeoutSink) Unwrap() Sink { return t.next }

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
// The wrapper forwards Close and SendBatch to the wrapped sink, and its Unwrap returns the wrapped
// sink (see Innermost).
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

// Unwrap returns the sink t wraps.
func (t *transformSink) Unwrap() Sink { return t.next }

// maxUnwrap bounds how many wrappers Innermost follows: no real chain of middleware comes near it,
// and a wrapper that unwraps to itself, or to one of its own wrappers, must not make it loop.
const maxUnwrap = 1000

// Innermost returns the sink at the bottom of s's wrappers: it calls Unwrap() Sink on s, then on
// what that returned, and so on, until it reaches a sink without that method, or one whose Unwrap
// returns nil, and returns that sink. A sink that wraps none is its own innermost sink, and
// Innermost(nil) is nil. The middleware of this package (Timeout, Transform) has Unwrap; give a
// wrapper of your own an Unwrap() Sink method too. Innermost follows at most 1000 wrappers, so that
// a wrapper that unwraps to itself, or into a cycle, cannot make it loop: it returns the sink it has
// reached then.
//
// Unwrap exists for code that manages a sink's lifetime. A wrapper forwards Close to the sink it
// wraps, and wrappers built at different times around one long-lived sink (the same
// Chain(crm, Timeout(2*time.Second)), built again at each configuration reload) are different
// values that share their innermost sink: closing a retired wrapper closes that sink under the
// wrappers still in use. Comparing innermost sinks tells a dispatcher whether a sink it is about
// to retire is still used by a wrapper of the configuration it keeps, and so whether to close it
// yet.
func Innermost(s Sink) Sink {
	for range maxUnwrap {
		w, ok := s.(interface{ Unwrap() Sink })
		if !ok {
			return s
		}
		inner := w.Unwrap()
		if inner == nil {
			return s
		}
		s = inner
	}
	return s
}

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
