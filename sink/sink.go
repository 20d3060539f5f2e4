package sink

import (
	"context"
	"errors"
	"io"
	"strconv"

	"github.com/fanbridge/fanbridge"
)

// Sink delivers events to one destination.
//
// Send returns nil only when the destination has the event (a broker acknowledged it, a server
// answered OK). Otherwise it returns an error classified with package retry: Permanent when no
// retry can cure it, After when the destination asked for a wait, unmarked when another attempt
// may succeed, and also Refused when that retryable failure is the destination's answer, not a
// sign that it is down. A mark counts wherever it is in the error, an errors.Join included: a Send
// that joins the failures of several destinations marks the join Permanent only when every failure
// in it is permanent, and Refused only when every one is a refusal (see the package doc). Send
// never retries or sleeps on its own; the caller's Retrier does. Send must honour ctx's
// cancellation and deadline, must not modify e, even when it fails, and must be safe for
// concurrent use.
type Sink interface {
	Send(ctx context.Context, e *fanbridge.Event) error
}

// Func adapts a function to a Sink.
type Func func(ctx context.Context, e *fanbridge.Event) error

// Send calls f(ctx, e).
func (f Func) Send(ctx context.Context, e *fanbridge.Event) error { return f(ctx, e) }

// Middleware wraps a Sink with behaviour of its own (logging, metrics, transformation).
type Middleware func(Sink) Sink

// Chain wraps s with middleware; the first middleware is the outermost, the one Send reaches first.
func Chain(s Sink, mw ...Middleware) Sink {
	for i := len(mw) - 1; i >= 0; i-- {
		s = mw[i](s)
	}
	return s
}

// Batcher is implemented by sinks that deliver several events more cheaply together.
//
// SendBatch returns nil when every event was delivered. When only some failed it returns a
// *BatchError; any other error applies to every event of the batch.
type Batcher interface {
	SendBatch(ctx context.Context, events []*fanbridge.Event) error
}

// BatchError reports per-event results of a SendBatch call: Errs[i] belongs to events[i] and is nil
// for an event that was delivered.
type BatchError struct {
	Errs []error
}

func (b *BatchError) Error() string {
	failed := 0
	var first error
	for _, err := range b.Errs {
		if err != nil {
			if first == nil {
				first = err
			}
			failed++
		}
	}
	if first == nil {
		return "sink: batch: no failures"
	}
	return "sink: batch: " + strconv.Itoa(failed) + " of " + strconv.Itoa(len(b.Errs)) + " events failed, first: " + first.Error()
}

// Unwrap returns the per-event errors, so errors.Is and errors.As look at each of them.
func (b *BatchError) Unwrap() []error { return b.Errs }

// ErrClosed is returned (possibly wrapped) by Send on a sink that has been closed.
var ErrClosed = errors.New("sink: closed")

// Close closes s if it implements io.Closer, and returns nil otherwise.
func Close(s Sink) error {
	if c, ok := s.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

// refusedError marks a retryable failure that the destination gave as its answer: see Refused.
type refusedError struct{ err error }

func (r *refusedError) Error() string { return r.err.Error() }
func (r *refusedError) Unwrap() error { return r.err }

// Refused marks err, a retryable failure, as the destination's answer rather than a sign that it
// is down: the destination refused the event, or a batch the event shared with others, without
// showing that another attempt must fail too (a Kafka broker refuses a whole batch for one record
// and names none). A dispatcher retries it as any retryable failure, but does not count it against
// the sink's health: fanout's circuit breaker takes it, as it takes a permanent failure, for a
// sign that the sink is up. The mark changes nothing else for the sink's own retries:
// retry.Classify still calls err retryable, and retry marks (Permanent, After) on either side of
// it still count. A wait (retry.After) on a refused error is taken for the sink's next attempt
// alone (kafkasink's random wait parts the events of a refused batch): fanout does not pass it on
// to the sender as the wait its DeliveryError asks for, and an intake answers with its own default
// wait instead.
//
// The mark applies to the whole error, and IsRefused finds it anywhere in err's chain, in one of
// the errors of an errors.Join too. A sink that delivers to several destinations and joins their
// errors must therefore not mark the join, nor any error in it, when one of the destinations is
// down: the breaker would take the outage for an answer and never open. Mark a join only when
// every failure in it is a refusal. A retry.Permanent mark in a join is found the same way and
// weighs more: it makes the whole join permanent (see retry.Permanent). Refused(nil) is nil.
func Refused(err error) error {
	if err == nil {
		return nil
	}
	return &refusedError{err: err}
}

// IsRefused reports whether err, or any error it wraps, was marked with Refused.
func IsRefused(err error) bool {
	var r *refusedError
	return errors.As(err, &r)
}
