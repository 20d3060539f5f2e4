package fanbridge

import "errors"

// Outcomes a dispatcher reports to the intake that called it. They let an HTTP handler, a WebSocket
// source or any other intake answer the sender correctly without importing the dispatcher's package.
// Dispatchers return them (possibly wrapped); intakes test for them with errors.Is.
var (
	// ErrNoMatch reports that no route wanted the event. The event is acknowledged and dropped on
	// purpose; it is not a failure.
	ErrNoMatch = errors.New("fanbridge: no route matched the event")
	// ErrDuplicate reports that an event with the same ID was already accepted within the
	// deduplication window. The event is acknowledged and not delivered again.
	ErrDuplicate = errors.New("fanbridge: duplicate event")
	// ErrOverloaded reports that the event was refused because a queue is full. The sender should
	// retry later; a dispatcher may wrap it with retry.After to say when.
	ErrOverloaded = errors.New("fanbridge: overloaded")
	// ErrClosed reports that the dispatcher is shutting down or shut down and accepts no new events.
	// The sender should retry, against this instance after a restart or against another one.
	ErrClosed = errors.New("fanbridge: closed")
)
