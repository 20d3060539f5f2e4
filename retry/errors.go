package retry

import (
	"context"
	"errors"
	"time"
)

// permanentError marks an error that no retry can cure.
type permanentError struct{ err error }

func (p *permanentError) Error() string { return p.err.Error() }
func (p *permanentError) Unwrap() error { return p.err }

// Permanent marks err as permanent: a Retrier stops at once and a dispatcher dead-letters the event
// without retrying. Permanent(nil) is nil.
//
// The mark covers the whole error it ends up in: IsPermanent finds it anywhere in an error's chain,
// in one of the errors of an errors.Join too, and Classify then calls the whole error permanent,
// whatever else it holds. So an operation that joins several failures (a sink that writes to
// several destinations) must not mark one of them on its own: errors.Join(Permanent(errA), errB),
// with errB an outage, is permanent, and the outage is never retried (nor, in a dispatcher,
// counted against the sink's health). Keep the failures unmarked while collecting them, mark the
// join, Permanent(errors.Join(errA, errB)), only when every failure in it is permanent, and return
// it unmarked, and so retryable as a whole, otherwise.
func Permanent(err error) error {
	if err == nil || IsPermanent(err) {
		return err
	}
	return &permanentError{err: err}
}

// IsPermanent reports whether err, or any error it wraps (the errors of an errors.Join included),
// was marked with Permanent: one permanent error in a join makes the join permanent (see Permanent).
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

// afterError carries the wait a server asked for (an HTTP Retry-After, a Kafka throttle).
type afterError struct {
	err error
	d   time.Duration
}

func (a *afterError) Error() string { return a.err.Error() }
func (a *afterError) Unwrap() error { return a.err }

// After marks err as retryable no sooner than d from now. A Retrier waits at least d before the next
// attempt, up to the Policy's cap (see Policy.MaxRetryAfter). A negative d counts as zero.
// After(nil, d) is nil.
func After(err error, d time.Duration) error {
	if err == nil {
		return nil
	}
	return &afterError{err: err, d: max(d, 0)}
}

// RetryAfter returns the wait asked for by the outermost After in err's chain, and whether there was
// one.
func RetryAfter(err error) (time.Duration, bool) {
	var a *afterError
	if errors.As(err, &a) {
		return a.d, true
	}
	return 0, false
}

// Class says what kind of failure an error is. Dead-letter entries, metrics and logs record it.
type Class string

const (
	// ClassRetryable is a failure that another attempt may cure: a timeout, a refused connection,
	// a 5xx answer, a retriable broker error. It is the class of every unmarked error.
	ClassRetryable Class = "retryable"
	// ClassPermanent is a failure no retry can cure (marked with Permanent).
	ClassPermanent Class = "permanent"
	// ClassCanceled is work stopped by the caller's context.Canceled: not the sink's fault and
	// never a reason to dead-letter on its own.
	ClassCanceled Class = "canceled"
)

// Classify returns the Class of err, or "" for a nil error. A permanent mark, anywhere in err's
// chain as IsPermanent finds it, wins over cancellation and over every error joined with it;
// context.DeadlineExceeded alone is retryable, because an attempt that timed out may succeed when
// tried again.
func Classify(err error) Class {
	switch {
	case err == nil:
		return ""
	case IsPermanent(err):
		return ClassPermanent
	case errors.Is(err, context.Canceled):
		return ClassCanceled
	default:
		return ClassRetryable
	}
}
