package filedlq

import (
	"errors"
	"fmt"
)

// Errors of package filedlq, besides those of package dlq it wraps (dlq.ErrClosed,
// dlq.ErrNotFound, dlq.ErrInvalidEntry, dlq.ErrUnsupported).
var (
	// ErrInvalidOption is wrapped by the error Open returns for an option it cannot use.
	ErrInvalidOption = errors.New("filedlq: invalid option")
	// ErrLocked is returned by Open when another queue, in this process or another, has the
	// directory open for writing.
	ErrLocked = errors.New("filedlq: directory is locked by another writer")
	// ErrTooLarge is wrapped by the error Put returns for an entry whose line exceeds the
	// maximum entry size. It is permanent: the entry will never fit.
	ErrTooLarge = errors.New("filedlq: entry too large")
	// ErrBroken is wrapped by every Put after the queue could not write or fsync a segment, or
	// fsync the directory after a Delete rewrote the active segment, and could not be sure what
	// the segment holds. Close the queue and open it again: Open repairs what can be repaired.
	ErrBroken = errors.New("filedlq: queue failed; reopen it")
)

// Damage describes bytes in a segment that are not an entry. Open, List, Get and Delete skip such
// bytes, never returning them as an entry, and report each piece to the WithOnDamage hook and the
// logger.
type Damage struct {
	// Segment is the file name of the segment, within the queue's directory.
	Segment string
	// Offset and Length locate the damaged bytes in the segment.
	Offset, Length int64
	// Repaired is true when Open truncated the bytes away: it does so for torn writes at the end
	// of segments, which were never acknowledged.
	Repaired bool
	// Err says what is wrong; it wraps ErrTorn, ErrBadLine, ErrChecksum, ErrLineTooLong, or an
	// error of dlq.Entry.UnmarshalJSON.
	Err error
}

func (d Damage) String() string {
	what := "skipped"
	if d.Repaired {
		what = "truncated"
	}
	return fmt.Sprintf("%s: %d bytes at offset %d %s: %v", d.Segment, d.Length, d.Offset, what, d.Err)
}
