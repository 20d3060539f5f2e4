package filter

import "github.com/fanbridge/fanbridge"

// And returns a Predicate that matches when both a and b match; b is not consulted when a does
// not match. It panics if a or b is nil.
func And(a, b Predicate) Predicate { return All(a, b) }

// Or returns a Predicate that matches when a or b matches; b is not consulted when a matches. It
// panics if a or b is nil.
func Or(a, b Predicate) Predicate { return Any(a, b) }

// All returns a Predicate that matches when every one of ps matches, checking them in order and
// stopping at the first that does not. All() matches every event. It panics if any of ps is nil,
// or is a nil *Pattern, *Expression or PredicateFunc, so that a missing filter is found when
// routes are built rather than when events arrive.
func All(ps ...Predicate) Predicate {
	checkNil("All", ps)
	return allOf(append([]Predicate(nil), ps...))
}

// Any returns a Predicate that matches when at least one of ps matches, checking them in order
// and stopping at the first that does. Any() matches no event. It panics if any of ps is nil.
func Any(ps ...Predicate) Predicate {
	checkNil("Any", ps)
	return anyOf(append([]Predicate(nil), ps...))
}

// Not returns a Predicate that matches exactly when p does not. It panics if p is nil.
//
// A predicate that cannot decide does not match, so Not of it matches: Not of an *Expression
// matches the events on which the expression fails to evaluate (Not(MustExpr(`data.x == 1`))
// matches an event without x), and Not of a *Pattern an event that is not JSON or that repeats
// a key the pattern reads. A Field test decides at the first value that passes, without reading
// further: it matches a body damaged after that value, and Not of it does not (Field("x").Eq(1)
// matches {"x":1, which is not JSON), while a body damaged before a passing value fails the test
// and Not of it matches ({"x":2, or {"y":1,). To leave such events out, negate inside the
// expression (`data.x != 1` fails, and so does not match, without x).
func Not(p Predicate) Predicate {
	checkNil("Not", []Predicate{p})
	return not{p}
}

// checkNil panics if one of ps is nil, or is one of the package's predicate types holding a nil
// pointer or func (a *Pattern whose ParsePattern error went unchecked, say), which an interface
// comparison with nil does not catch and which would otherwise match nothing, or panic, only
// once events arrive.
func checkNil(fn string, ps []Predicate) {
	for _, p := range ps {
		nilValue := false
		switch p := p.(type) {
		case nil:
			nilValue = true
		case *Pattern:
			nilValue = p == nil
		case *Expression:
			nilValue = p == nil
		case *fieldPredicate:
			nilValue = p == nil
		case *attrPredicate:
			nilValue = p == nil
		case PredicateFunc:
			nilValue = p == nil
		}
		if nilValue {
			panic("filter: " + fn + " given a nil Predicate")
		}
	}
}

type allOf []Predicate

func (a allOf) Match(e *fanbridge.Event) bool {
	for _, p := range a {
		if !p.Match(e) {
			return false
		}
	}
	return true
}

type anyOf []Predicate

func (a anyOf) Match(e *fanbridge.Event) bool {
	for _, p := range a {
		if p.Match(e) {
			return true
		}
	}
	return false
}

type not struct{ p Predicate }

func (n not) Match(e *fanbridge.Event) bool { return !n.p.Match(e) }
