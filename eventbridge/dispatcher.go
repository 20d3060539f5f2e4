package eventbridge

import (
	"context"

	"github.com/fanbridge/fanbridge"
)

// Dispatcher takes a decoded event and delivers it. A Handler answers the sender 2xx only when
// Dispatch returns nil (delivered, or dead-lettered where delivery failed) or one of the
// acknowledging outcomes fanbridge.ErrNoMatch and fanbridge.ErrDuplicate. Any other error makes the
// sender retry (503 with Retry-After). fanout.Dispatcher implements it.
type Dispatcher interface {
	Dispatch(ctx context.Context, e *fanbridge.Event) error
}

// DispatcherFunc adapts a function to a Dispatcher.
type DispatcherFunc func(ctx context.Context, e *fanbridge.Event) error

// Dispatch calls f(ctx, e).
func (f DispatcherFunc) Dispatch(ctx context.Context, e *fanbridge.Event) error { return f(ctx, e) }
