package fanout

import (
	"time"

	"github.com/fanbridge/fanbridge/dlq"
)

// Outcome says what became of an event at one sink.
type Outcome string

const (
	// Delivered: the sink's Send returned nil.
	Delivered Outcome = "delivered"
	// DeadLettered: delivery stopped (see SinkResult.Condition) and the dead-letter queue took the
	// entry.
	DeadLettered Outcome = "dead-lettered"
	// Failed: the sink does not have the event and the dead-letter queue does not either (there is
	// none, its Put failed, or the caller's context was cancelled first). The sender must retry.
	Failed Outcome = "failed"
	// SkippedDuplicate: an earlier dispatch of an event with the same ID already delivered it to
	// this sink (or dead-lettered it there), so it was not sent again.
	SkippedDuplicate Outcome = "skipped-duplicate"
	// Queued: the event waits in the sink's queue (Dispatch in Async mode); workers deliver it.
	Queued Outcome = "queued"
)

// SinkResult is the outcome of one event at one sink.
type SinkResult struct {
	// Sink names the sink; Route names the first route, in configuration order, that matched the
	// event and named the sink.
	Sink  string
	Route string
	// Outcome says what happened.
	Outcome Outcome
	// Attempts counts the calls of the sink's Send (zero when its circuit was open).
	Attempts int
	// Err is the last attempt's error (nil when delivered), or the reason no attempt was made.
	Err error
	// Condition says why delivery stopped, for DeadLettered (and Failed when it would have been
	// dead-lettered).
	Condition dlq.Condition
	// DeadLetterErr says why a Failed event is not in the dead-letter queue either: it wraps
	// ErrNoDLQ or ErrDLQ; nil when the caller's context was cancelled before a write was due.
	DeadLetterErr error
	// Duration is the time from the start of the first attempt to the outcome, including the
	// dead-letter write.
	Duration time.Duration
}

// Result is the outcome of one event at every sink it was routed to, in the order of the routes
// and of their sink lists.
type Result struct {
	// ID is the event's ID.
	ID string
	// Sinks holds one entry per matched sink.
	Sinks []SinkResult
}

// Count returns how many sinks ended with outcome o.
func (r Result) Count(o Outcome) int {
	n := 0
	for i := range r.Sinks {
		if r.Sinks[i].Outcome == o {
			n++
		}
	}
	return n
}
