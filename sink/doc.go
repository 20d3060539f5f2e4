// Package sink defines where events go: the Sink interface, Func, middleware, and the optional
// extras a sink may implement (io.Closer to flush and release, Batcher to deliver in batches).
//
// Middleware wraps a sink with behaviour of its own; Chain applies several. Timeout bounds each
// delivery and Transform hands the sink a changed copy of each event; both forward Close and
// SendBatch, so a wrapped sink still flushes and batches, and both have Unwrap, which returns the
// sink they wrap: Innermost follows it to the sink at the bottom, which is how code that closes
// sinks tells that two wrappers, built at different times, deliver to the same one. A Middleware
// written as a plain Func hides those extras: forward them, and give it Unwrap() Sink, in your own
// wrapper type when the sink underneath needs them.
// SendBatch delivers a slice through Batcher when a sink has it and one Send at a time otherwise,
// and EventError reads one event's result out of its error.
//
// Drivers live in sub-packages (memsink, kafkasink, grpcsink); every driver, and every Sink a user
// writes, is checked by the conformance suite in sinktest.
//
// # Errors
//
// A sink classifies its failures with package retry and never retries itself: Permanent for what
// no retry cures (an unknown topic, an invalid argument), After for an explicit wait, unmarked for
// what another attempt may cure. Refused marks a retryable failure that is the destination's
// answer, not its absence: it refused this event, or a batch the event shared, and another attempt
// may succeed (the batch-mate at fault is gone) or fail again (the event itself is at fault). A
// dispatcher retries it, but does not count it against the sink's health, so that events a
// destination refuses for what they hold do not open fanout's circuit breaker and send valid
// events to the dead-letter queue. The mark covers the whole error: a sink that joins the errors of
// several destinations marks none of them when one destination is down, or the outage opens no
// breaker (see Refused).
//
// The same holds for retry.Permanent, with a graver outcome: retry.IsPermanent finds the mark in
// any error of an errors.Join, so errors.Join(retry.Permanent(errA), errB), where errB is an
// outage, is permanent as a whole. The dispatcher dead-letters the event at once, without a retry,
// and does not count the outage against the sink's health, so the breaker never opens while every
// event goes to the dead-letter queue. Join the failures unmarked, and mark the join permanent only
// when every failure in it is permanent, refused only when every one is a refusal; otherwise leave
// it unmarked, so that the whole Send is retried.
//
// A Send on a closed sink returns an error wrapping ErrClosed.
//
// # Delivery semantics
//
// An error from Send does not say the destination lacks the event: an attempt that ran out of
// time may still land (a record the broker stores after the client gave up). The dispatcher's
// retry then makes a duplicate, which at-least-once delivery allows. What a sink may not do is
// deliver on its own after Send returned: it never retries in the background, and once Close
// returns, nothing it started reaches the destination any more. The conformance suite checks
// both: it reads the destination again after Close and fails a sink whose events arrived late.
//
// # Concurrency
//
// Every Sink must be safe for concurrent use: a dispatcher calls Send from many goroutines.
package sink
