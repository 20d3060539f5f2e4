package dlq

import (
	"context"
	"errors"
	"iter"
)

// Reader inspects and empties a queue: what `dlq list`, `dlq show` and `dlq redrive` are built on.
// Drivers implement it next to Queue.
//
// A Reader is safe for concurrent use. In particular Delete may run while a List is in progress,
// from List's callback or from another goroutine; Redrive relies on that. An entry deleted or put
// during a List may or may not be visited, but no entry is visited twice by one List.
type Reader interface {
	// List calls fn for each entry in the queue, oldest first as far as the driver keeps an order,
	// and stops at the first error fn returns, returning that error unchanged. It returns ctx's
	// error when ctx ends first. Entries that cannot be read (a torn or corrupted record) are
	// skipped and reported by the driver, never passed to fn.
	List(ctx context.Context, fn func(Entry) error) error
	// Get returns the entry with the given ID, or an error wrapping ErrNotFound.
	Get(ctx context.Context, id string) (Entry, error)
	// Delete removes the entries with the given IDs. IDs that name no entry are ignored, so that
	// a Delete can be repeated. A read-only Reader returns an error wrapping ErrUnsupported.
	Delete(ctx context.Context, ids ...string) error
}

// errStopAll ends the List behind All when the loop body breaks out.
var errStopAll = errors.New("dlq: iteration stopped")

// All returns an iterator over r's entries, for range loops: each step yields an entry and a nil
// error, and a failing List ends the sequence with a zero Entry and its error. Breaking out of the
// loop stops the List.
func All(ctx context.Context, r Reader) iter.Seq2[Entry, error] {
	return func(yield func(Entry, error) bool) {
		err := r.List(ctx, func(e Entry) error {
			if !yield(e, nil) {
				return errStopAll
			}
			return nil
		})
		if err != nil && !errors.Is(err, errStopAll) {
			yield(Entry{}, err)
		}
	}
}
