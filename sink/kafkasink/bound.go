package kafkasink

import (
	"context"
	"errors"
	"sync"
	"time"
)

// ErrNoAcknowledgement is wrapped, with context.DeadlineExceeded, by the error Send (or an entry of
// SendBatch's) returns when no acknowledgement came within the client's delivery timeout and the
// margin Send allows it (see the package's Delivery semantics), however long the caller's context
// lasts. The error is retryable, and the record may still be delivered. It is also wrapped when
// the Send could not even produce its record in that time, every slot of WithMaxInFlight being held
// by records still unacknowledged.
var ErrNoAcknowledgement = errors.New("kafkasink: no acknowledgement within the delivery timeout")

// A bound ends the waits of one Send or SendBatch (for a slot, then for acknowledgements) at the
// sink's limit, unless the caller's context ends sooner. A Send whose context ends first (fanout's
// Sync mode, with its request budget) arms no timer; otherwise the timer is reused from a pool, so
// that a bound costs no allocation.
type bound struct {
	timer *time.Timer
	// c is the timer's channel, then, once the timer fired, a closed channel, so that every later
	// wait of a SendBatch ends at once; nil when no timer is armed, which no select picks.
	c <-chan time.Time
}

var (
	timers = sync.Pool{New: func() any {
		t := time.NewTimer(time.Hour)
		t.Stop()
		return t
	}}
	expired = func() <-chan time.Time {
		c := make(chan time.Time)
		close(c)
		return c
	}()
)

// startBound arms the bound of a Send or SendBatch under ctx, which must end with stop.
func (s *Sink) startBound(ctx context.Context) bound {
	if s.limit <= 0 {
		return bound{}
	}
	if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) <= s.limit {
		return bound{}
	}
	t := timers.Get().(*time.Timer)
	t.Reset(s.limit)
	return bound{timer: t, c: t.C}
}

// fired records that a wait received from b.c.
func (b *bound) fired() { b.c = expired }

// stop releases b's timer.
func (b *bound) stop() {
	if b.timer == nil {
		return
	}
	// Since Go 1.23 a stopped timer delivers nothing more. A program run with
	// GODEBUG=asynctimerchan=1 has the older timers, which keep a value that fired unread, and the
	// next Send to take the timer would see it at once: drain it.
	if !b.timer.Stop() {
		select {
		case <-b.timer.C:
		default:
		}
	}
	timers.Put(b.timer)
	b.timer = nil
}
