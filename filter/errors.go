package filter

import (
	"errors"
	"fmt"
	"strconv"
)

var (
	// ErrInvalidPattern is wrapped by every error about an event pattern that is not valid.
	ErrInvalidPattern = errors.New("filter: invalid event pattern")
	// ErrPatternTooComplex is wrapped by errors about patterns that exceed the package's limits
	// (size, nesting, values, wildcards, $or combinations); see the package documentation.
	ErrPatternTooComplex = errors.New("filter: event pattern too complex")
	// ErrInvalidEvent is wrapped by errors about events that are not a JSON object, and about
	// events that repeat a key, or spell one path two ways, at a path some rule reads (see the
	// package documentation).
	ErrInvalidEvent = errors.New("filter: invalid event")
	// ErrInvalidExpression is wrapped by errors about CEL expressions that do not compile.
	ErrInvalidExpression = errors.New("filter: invalid CEL expression")
	// ErrInvalidName is returned by Matcher.Add and Matcher.AddPattern for an empty rule name or a
	// nil pattern.
	ErrInvalidName = errors.New("filter: rule name must not be empty")
)

// errZeroPattern refuses a Pattern that ParsePattern did not make.
var errZeroPattern = fmt.Errorf("%w: the Pattern was not made by ParsePattern", ErrInvalidPattern)

// PatternError describes why an event pattern does not compile: where in the pattern, which
// operator, and what is wrong. It wraps ErrInvalidPattern or ErrPatternTooComplex.
type PatternError struct {
	// Path is the dotted field path the problem is at ("detail.eventBody.mediaType"); empty for
	// the pattern as a whole.
	Path string
	// Op is the operator involved ("prefix", "numeric", "$or" ...), if any.
	Op string
	// Reason says what is wrong, such as "wants a string".
	Reason string
	// Err is ErrInvalidPattern or ErrPatternTooComplex.
	Err error
}

// Error formats the error as `filter: pattern at "path": "op" reason`.
func (e *PatternError) Error() string {
	s := "filter: pattern"
	if e.Path != "" {
		s += " at " + strconv.Quote(e.Path)
	}
	s += ": "
	if e.Op != "" {
		s += strconv.Quote(e.Op) + " "
	}
	return s + e.Reason
}

// Unwrap returns ErrInvalidPattern or ErrPatternTooComplex.
func (e *PatternError) Unwrap() error { return e.Err }

func invalid(path, op, reason string) error {
	return &PatternError{Path: path, Op: op, Reason: reason, Err: ErrInvalidPattern}
}

func tooComplex(path, op, reason string) error {
	return &PatternError{Path: path, Op: op, Reason: reason, Err: ErrPatternTooComplex}
}
