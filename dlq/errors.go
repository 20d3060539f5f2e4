package dlq

import "errors"

// Sentinel errors of package dlq and its drivers. Drivers wrap them with %w; callers test for them
// with errors.Is.
var (
	// ErrInvalidEntry is wrapped by the error Put returns for an entry it refuses to store (no
	// sink name, a negative attempt count, an unknown condition or class, a malformed ID, a time
	// outside the years 0 to 9999). Nothing is stored.
	ErrInvalidEntry = errors.New("dlq: invalid entry")
	// ErrNotFound is returned by Reader.Get when no entry has the given ID.
	ErrNotFound = errors.New("dlq: entry not found")
	// ErrUnsupported is returned by a Reader that cannot do what was asked, such as Delete on a
	// read-only queue.
	ErrUnsupported = errors.New("dlq: operation not supported")
	// ErrClosed is returned (wrapped) by a queue that has been closed.
	ErrClosed = errors.New("dlq: closed")
	// ErrMalformed is wrapped by the error Entry.UnmarshalJSON returns for input that is not an
	// entry in the documented JSON shape.
	ErrMalformed = errors.New("dlq: malformed entry")
	// ErrUnknownVersion is wrapped by the error Entry.UnmarshalJSON returns for an entry written
	// in a newer format version than this package reads.
	ErrUnknownVersion = errors.New("dlq: unknown entry format version")
)
