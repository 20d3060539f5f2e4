package fanout

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/fanbridge/fanbridge/retry"
)

// Breaker states, as the breaker-state gauge reports them.
const (
	breakerClosed   int32 = 0
	breakerHalfOpen int32 = 1
	breakerOpen     int32 = 2
)

// breaker is a sink's circuit breaker. The closed state, by far the most common, costs one atomic
// load per attempt and a store only when a failure streak ends.
type breaker struct {
	threshold int32 // <= 0: off
	cooldown  time.Duration
	clock     retry.Clock

	state    atomic.Int32
	failures atomic.Int32

	mu       sync.Mutex
	openedAt time.Time
	probing  bool
}

func newBreaker(b Breaker, clock retry.Clock) *breaker {
	// normalize keeps Failures at most MaxBreakerFailures, and every negative value means off:
	// the conversion loses nothing.
	return &breaker{threshold: int32(max(b.Failures, -1)), cooldown: b.Cooldown, clock: clock}
}

// allow reports whether an attempt may go ahead, and whether it is the half-open probe (whose
// result must then be given to record).
func (b *breaker) allow() (ok, probe bool) {
	if b.threshold <= 0 || b.state.Load() == breakerClosed {
		return true, false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state.Load() {
	case breakerClosed:
		return true, false
	case breakerOpen:
		if b.clock.Now().Sub(b.openedAt) < b.cooldown {
			return false, false
		}
		b.state.Store(breakerHalfOpen)
		b.probing = true
		return true, true
	default: // half-open: one probe at a time
		if b.probing {
			return false, false
		}
		b.probing = true
		return true, true
	}
}

// verdict is what an attempt says about the sink's health.
type verdict int

const (
	healthy verdict = iota // delivered, or a permanent answer: the sink responds
	sick                   // a retryable failure
	neutral                // cut short by our own context: says nothing
)

// record takes an attempt's verdict.
func (b *breaker) record(v verdict, probe bool) {
	if b.threshold <= 0 {
		return
	}
	switch {
	case probe:
		b.mu.Lock()
		b.probing = false
		switch v {
		case healthy:
			b.failures.Store(0)
			b.state.Store(breakerClosed)
		case sick:
			b.openedAt = b.clock.Now()
			b.state.Store(breakerOpen)
		}
		b.mu.Unlock()
	case v == healthy:
		if b.failures.Load() != 0 {
			b.failures.Store(0)
		}
	case v == sick:
		if b.failures.Add(1) >= b.threshold && b.state.Load() == breakerClosed {
			b.mu.Lock()
			if b.state.Load() == breakerClosed {
				b.openedAt = b.clock.Now()
				b.state.Store(breakerOpen)
			}
			b.mu.Unlock()
		}
	}
}
