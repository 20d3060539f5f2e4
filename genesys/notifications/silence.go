package notifications

import (
	"context"

	"github.com/fanbridge/fanbridge/retry"
)

// silenceContext returns ctx bounded by the heartbeat timeout, measured on the source's clock, for
// one wait for the next message or for the answer to a WebSocket handshake; context.Cause of the
// result is context.DeadlineExceeded once the timeout has passed. With another clock than the system's (a test's fake clock) the timeout
// passes when that clock says so.
func (s *Source) silenceContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if s.cfg.clock == retry.SystemClock {
		return context.WithTimeout(ctx, s.cfg.heartbeatTimeout) // no goroutine per message
	}
	ctx, cancel := context.WithCancelCause(ctx)
	t := s.cfg.clock.NewTimer(s.cfg.heartbeatTimeout)
	go func() {
		select {
		case <-t.C():
			cancel(context.DeadlineExceeded)
		case <-ctx.Done():
			t.Stop()
		}
	}()
	// The timer stops before the function returns, so that a fake clock never shows a timer of a
	// wait that is over.
	return ctx, func() {
		t.Stop()
		cancel(context.Canceled)
	}
}
