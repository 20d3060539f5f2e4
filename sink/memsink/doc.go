// Package memsink is a sink that keeps events in memory, for tests and examples.
//
// A Sink records a copy of every event it accepts, so tests can read back exactly what a
// dispatcher delivered (Events, Len, Wait), count the attempts it made (Attempts), make it fail on
// demand (FailNext, FailFunc), make it stall like a destination that does not answer (Hold), and
// check shutdown (Close). It passes the sinktest conformance suite, so code tested against it sees
// the behaviour every fanbridge sink promises.
//
//	s := memsink.New()
//	s.FailNext(2, nil)                  // two retryable failures, then success
//	release := s.Hold()                 // Sends wait here until release()
//	defer release()
//	events, err := s.Wait(ctx, 1)       // block until one event is recorded
//
// # Errors
//
// Injected errors are returned exactly as given, so a test picks their class: a plain error is
// retryable, one wrapped with retry.Permanent is permanent. FailNext with a nil error injects
// ErrInjected. A Send whose context is already done, or ends while the sink is held, returns an
// error wrapping the context's error; a Send after Close returns an error wrapping sink.ErrClosed.
//
// # Concurrency
//
// All methods are safe for concurrent use. Recorded events are copies, and every read returns new
// copies, so neither senders nor readers can change what was recorded. Close may be called more
// than once, and from several goroutines at once: with nothing buffered, the sink is closed when
// any call returns, every call returns nil, and no Send records anything after that.
//
// # Delivery semantics
//
// Send returns nil only after the event is recorded; a failed Send records nothing. There is no
// buffering, so Close has nothing to flush.
package memsink
