package eventbridge

import (
	"context"

	"github.com/fanbridge/fanbridge"
)

// Dispatcher takes a decoded event and delivers it. A Handler answers the sender 2xx only when
// Dispatch returns nil (delivered, or dead-lettered where delivery failed) or one of the
// acknowledging outcomes fanbridge.ErrNoMatch and fanbridge.ErrDuplicate. Any other error makes the
// sender retry (503 with Retry-After). fanout.Dispatcher implements it.
//
// A Dispatcher whose nil only means the event was queued (fanout's Async mode) says so by also
// implementing Queuer: when its Queues method reports true, the Handler answers
// {"status":"queued",...} instead of {"status":"delivered",...}, as WithQueuingDispatcher makes
// it do. A Dispatcher that wraps another one loses that method unless it passes it on; give the
// wrapper a Queues method that asks the wrapped Dispatcher, or build the Handler with
// WithQueuingDispatcher.
type Dispatcher interface {
	Dispatch(ctx context.Context, e *fanbridge.Event) error
}

// Queuer is the optional interface of a Dispatcher that may return nil for an event it has only
// queued in memory, to deliver later, rather than delivered or dead-lettered. Queues reports
// whether that is so; NewHandler asks once, when it builds the Handler, so the answer must not
// change over the Dispatcher's life. A Dispatcher that does not implement Queuer, or reports
// false, is taken to deliver before it returns nil.
type Queuer interface {
	Queues() bool
}

// DispatcherFunc adapts a function to a Dispatcher.
type DispatcherFunc func(ctx context.Context, e *fanbridge.Event) error

// Dispatch calls f(ctx, e).
func (f DispatcherFunc) Dispatch(ctx context.Context, e *fanbridge.Event) error { return f(ctx, e) }
