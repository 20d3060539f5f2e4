// Package retry is the one place in fanbridge that waits and tries again.
//
// Sinks, clients and dead-letter queues never loop themselves: they return classified errors, and a
// Retrier decides what happens next.
//
//   - Permanent(err) marks a failure no retry can cure; the Retrier stops at once and a dispatcher
//     dead-letters the event. The mark counts wherever it is in an error's chain, an errors.Join
//     included: mark a join of several failures only when every one of them is permanent.
//   - After(err, d) asks for at least d before the next attempt (an HTTP Retry-After, a broker
//     throttle); the Policy caps it with MaxRetryAfter.
//   - Any other error is retryable.
//
// Classify turns an error into a Class for dead-letter entries, logs and metrics.
//
// A Policy has an exponential interval with a cap and full jitter, and two budgets: attempts and
// age. Do returns nil on success or an *Error that says how many attempts were made, how long they
// took, which budget ran out, and unwraps to the last cause.
//
// # Concurrency
//
// A Retrier is immutable and safe for concurrent use; each Do call builds its own backoff state, so
// one call's delays never leak into another's.
//
// # Testing
//
// Package retrytest has a fake Clock: inject it with WithClock and advance time by hand.
package retry
