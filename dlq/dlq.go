package dlq

import (
	"context"
	"time"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/retry"
)

// Queue stores events that could not be delivered to a sink.
//
// Put returns nil only when the entry is durable to the degree the implementation promises (for
// filedlq with the default policy: written and fsynced). An intake acknowledges an event to its
// sender on the strength of that nil, so a Queue must not return nil early. Nor may it replace
// an entry it already holds under the same ID: that entry's own Put returned nil too. Entries
// that share an ID are all kept (see "Removal is by ID" in the package documentation), and a
// Reader lists each of them; an entry put twice may be kept once.
type Queue interface {
	Put(ctx context.Context, e Entry) error
}

// Condition says why delivery to a sink stopped.
type Condition string

const (
	// ConditionAttempts: the sink's attempt budget ran out.
	ConditionAttempts Condition = "attempts"
	// ConditionAge: the event's age budget (or the request's time budget) ran out.
	ConditionAge Condition = "age"
	// ConditionPermanent: the sink reported a failure no retry can cure.
	ConditionPermanent Condition = "permanent"
	// ConditionCircuitOpen: the sink's circuit breaker was open, so no attempt was made.
	ConditionCircuitOpen Condition = "circuit-open"
)

// MaxErrorText caps Entry.Error, so that a sink answering with a huge error body cannot bloat the
// queue.
const MaxErrorText = 4096

// Entry is one event that one sink did not get. An event that failed on two sinks makes two
// entries, so that a redrive re-sends it to each failed sink only.
type Entry struct {
	// ID identifies the entry within its queue. Put assigns one when it is empty.
	ID string
	// Event is the event as it was dispatched; Event.Raw keeps the envelope as received.
	Event fanbridge.Event
	// Sink names the sink that failed; Route names the route that selected it.
	Sink  string
	Route string
	// Class is the class of the last error; Error its text, at most MaxErrorText bytes.
	Class retry.Class
	Error string
	// Attempts counts the delivery attempts made (zero when the circuit was open).
	Attempts int
	// FirstAttempt and LastAttempt bound the delivery attempts.
	FirstAttempt time.Time
	LastAttempt  time.Time
	// Condition says which budget ran out.
	Condition Condition
	// TraceID is the W3C trace id of the event's trace, when it had one.
	TraceID string
}
