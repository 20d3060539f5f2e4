package kafkasink

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// ErrNoAcknowledgement is wrapped, with context.DeadlineExceeded, by the error Send (or an entry of
// SendBatch's) returns when no acknowledgement came within the client's delivery timeout and the
// margin Send allows it (see the package's Delivery semantics), however long the caller's context
// lasts. The error is retryable, and the record may still be delivered. It is also wrapped when
// the Send could not even produce its record in that time, every slot of WithMaxInFlight being held
// by records still unacknowledged.
var ErrNoAcknowledgement = errors.New("kafkasink: no acknowledgement within the delivery timeout")

// backoffCap is the longest wait franz-go's default retry backoff asks for between tries.
const backoffCap = 5 * time.Second

// waitLimit is the longest a Send waits for its record, whatever its context: the client's
// kgo.RecordDeliveryTimeout, plus its kgo.ProducerLinger, plus a margin; 0 (no limit) for a client
// without a delivery timeout, which never gives up on a record either.
//
// The client fails a record at its delivery timeout only when that is safe for the idempotent
// producer's sequence numbers: not for a record in a produce request that went out and got no
// answer (a broker that crashed after the request was written), which it keeps until a broker
// answers, however long that takes. The limit ends the wait for those; for the others, the
// client's own failure, which names the cause (a refused login is permanent), should come first.
// The client looks at a record's age only when it writes a request for it or hears back, so that
// failure comes after the timeout by up to a linger (a record waits that long before its first
// request) and one retry backoff (up to backoffCap with the default backoff). The margin is that
// backoff, but no longer than the delivery timeout: the backoff starts at 250 ms and doubles, so
// it has rarely grown past the time a record already waited, and a short delivery timeout stays
// short.
func waitLimit(client *kgo.Client) time.Duration {
	delivery, _ := client.OptValue(kgo.RecordDeliveryTimeout).(time.Duration)
	if delivery <= 0 {
		return 0
	}
	linger, _ := client.OptValue(kgo.ProducerLinger).(time.Duration)
	return delivery + linger + min(delivery, backoffCap)
}

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
