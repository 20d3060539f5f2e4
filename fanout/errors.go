package fanout

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/retry"
)

var (
	// ErrInvalidConfig is wrapped by the error New, Update and SetRoutes return for a configuration
	// they cannot use; the message names the route or sink at fault.
	ErrInvalidConfig = errors.New("fanout: invalid configuration")
	// ErrUndelivered is wrapped by the *DeliveryError a dispatch returns when some sink neither has
	// the event nor has it in the dead-letter queue. The sender must retry.
	ErrUndelivered = errors.New("fanout: event not delivered")
	// ErrNoDLQ is wrapped (through a *DeliveryError) when a sink failed and no dead-letter queue is
	// configured.
	ErrNoDLQ = errors.New("fanout: no dead-letter queue")
	// ErrDLQ is wrapped (through a *DeliveryError) when a sink failed and the dead-letter queue did
	// not take the entry.
	ErrDLQ = errors.New("fanout: dead-letter queue write failed")
	// ErrCircuitOpen is the last error of a delivery cut short by the sink's open circuit breaker.
	ErrCircuitOpen = errors.New("fanout: circuit breaker open")
	// ErrInFlight reports that an event with the same ID was still being delivered when the
	// dispatch's context ended. It is wrapped with retry.After: the sender should retry.
	ErrInFlight = errors.New("fanout: an event with the same ID is being delivered")
	// ErrShutdown is the last error of a delivery stopped by Close's deadline before the sink got
	// the event.
	ErrShutdown = errors.New("fanout: shutdown deadline reached before delivery")
	// ErrSinkClose is wrapped by each failure of a sink to close (its error, or a panic in its
	// close) that Settle or Close reports, beside the sink's own error.
	ErrSinkClose = errors.New("fanout: sink failed to close")
)

// Pre-built results for the paths that must not allocate.
var (
	errNoMatch   = fmt.Errorf("fanout: %w", fanbridge.ErrNoMatch)
	errDuplicate = fmt.Errorf("fanout: %w", fanbridge.ErrDuplicate)
	errClosed    = fmt.Errorf("fanout: %w", fanbridge.ErrClosed)
	errNilEvent  = retry.Permanent(errors.New("fanout: nil event"))
	// errCircuitOpen is returned from inside a retry loop so that the Retrier stops at once.
	errCircuitOpen = retry.Permanent(ErrCircuitOpen)
)

// DeliveryError is what a dispatch returns when at least one matched sink neither has the event
// nor has it in the dead-letter queue. It unwraps to ErrUndelivered, to ErrNoDLQ or ErrDLQ when
// they apply, and to context.Canceled when the caller's context was cancelled; it never unwraps to
// a sink's own error (a sink's Permanent mark must not make an intake drop the event), which
// Failed[i].Err holds instead.
type DeliveryError struct {
	// ID is the event's ID.
	ID string
	// Failed lists the sinks that do not have the event.
	Failed []SinkResult
	causes []error
}

func (e *DeliveryError) Error() string {
	var b strings.Builder
	b.WriteString("fanout: event ")
	b.WriteString(strconv.Quote(e.ID))
	b.WriteString(" not delivered to ")
	for i, f := range e.Failed {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("sink ")
		b.WriteString(strconv.Quote(f.Sink))
		if f.Err != nil || f.DeadLetterErr != nil {
			b.WriteString(" (")
			if f.Err != nil {
				b.WriteString(f.Err.Error())
			}
			if f.DeadLetterErr != nil {
				if f.Err != nil {
					b.WriteString("; ")
				}
				b.WriteString(f.DeadLetterErr.Error())
			}
			b.WriteString(")")
		}
	}
	return b.String()
}

// sinkCloseError is a sink's failure to close: it unwraps to ErrSinkClose and to the sink's
// own error.
type sinkCloseError struct {
	name string
	err  error
}

func (e *sinkCloseError) Error() string {
	return "fanout: closing sink " + strconv.Quote(e.name) + ": " + e.err.Error()
}

func (e *sinkCloseError) Unwrap() []error { return []error{ErrSinkClose, e.err} }

// errSinkWait is the cause a DeliveryError carries, marked with retry.After, when a failed sink
// asked for a wait.
var errSinkWait = errors.New("fanout: a sink asked to wait")

// Unwrap returns ErrUndelivered and the causes that apply to every intake: ErrNoDLQ, ErrDLQ,
// context.Canceled, and, when a failed sink asked for a wait (retry.After), an error that
// retry.RetryAfter reads it from: the longest such wait, each capped by its sink's
// MaxRetryAfter.
func (e *DeliveryError) Unwrap() []error {
	return append([]error{ErrUndelivered}, e.causes...)
}
