package filter

import "github.com/fanbridge/fanbridge"

// Predicate decides whether an event is wanted. Match must not modify the event, must not panic on
// any event, and must be safe for concurrent use.
type Predicate interface {
	Match(e *fanbridge.Event) bool
}

// PredicateFunc adapts a function to a Predicate.
type PredicateFunc func(e *fanbridge.Event) bool

// Match calls f(e).
func (f PredicateFunc) Match(e *fanbridge.Event) bool { return f(e) }
