package memsink

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/retry"
	"github.com/fanbridge/fanbridge/sink"
)

// ErrInjected is the failure FailNext injects when it is given a nil error. It is unmarked, so it
// classifies as retryable.
var ErrInjected = errors.New("memsink: injected failure")

// Sink records every event it is sent, in memory. Tests read the record back, make Send fail or
// stall on demand, and check what a dispatcher did. The zero value is not usable; call New.
type Sink struct {
	mu       sync.Mutex
	events   []*fanbridge.Event
	attempts int
	failN    int
	failErr  error
	failFunc func(*fanbridge.Event) error
	holds    int
	gate     chan struct{} // closed when the last hold is released
	closed   bool
	changed  chan struct{} // closed and replaced each time events change, to wake Wait
}

// New returns an empty, healthy sink.
func New() *Sink {
	return &Sink{changed: make(chan struct{})}
}

// Send records a copy of e, so that a caller changing e afterwards cannot change the record.
//
// In order, Send fails with ctx's error when ctx is already done, with an error wrapping
// sink.ErrClosed after Close, waits while the sink is held (see Hold), then fails with an injected
// error (see FailNext and FailFunc) before it records anything.
func (s *Sink) Send(ctx context.Context, e *fanbridge.Event) error {
	s.mu.Lock()
	s.attempts++ // every call counts, those that fail at once included
	s.mu.Unlock()
	if e == nil {
		return retry.Permanent(errors.New("memsink: nil event"))
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memsink: %w", err)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return fmt.Errorf("memsink: %w", sink.ErrClosed)
	}
	for s.holds > 0 {
		gate := s.gate
		s.mu.Unlock()
		select {
		case <-gate:
		case <-ctx.Done():
			return fmt.Errorf("memsink: held: %w", ctx.Err())
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return fmt.Errorf("memsink: %w", sink.ErrClosed)
		}
	}
	if err := s.injectedLocked(e); err != nil {
		s.mu.Unlock()
		return err
	}
	s.events = append(s.events, e.Clone())
	s.notifyLocked()
	s.mu.Unlock()
	return nil
}

// SendBatch sends each event as Send would and reports per-event results in a *sink.BatchError
// when some fail. It implements sink.Batcher.
func (s *Sink) SendBatch(ctx context.Context, events []*fanbridge.Event) error {
	var errs []error
	for i, e := range events {
		if err := s.Send(ctx, e); err != nil {
			if errs == nil {
				errs = make([]error, len(events))
			}
			errs[i] = err
		}
	}
	if errs == nil {
		return nil
	}
	return &sink.BatchError{Errs: errs}
}

func (s *Sink) injectedLocked(e *fanbridge.Event) error {
	if s.failN > 0 {
		s.failN--
		return s.failErr
	}
	if s.failFunc != nil {
		return s.failFunc(e)
	}
	return nil
}

func (s *Sink) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// Events returns copies of the recorded events, in the order they were recorded.
func (s *Sink) Events() []*fanbridge.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return cloneAll(s.events)
}

// Len returns how many events are recorded.
func (s *Sink) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.events)
}

// Attempts returns how many times Send was called (each event of a SendBatch counts once),
// including the calls that failed. Retry tests compare it with the number of attempts they expect.
func (s *Sink) Attempts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.attempts
}

// Wait blocks until at least n events are recorded and returns copies of them all. When ctx ends
// first it returns the events recorded so far and an error wrapping ctx's error.
func (s *Sink) Wait(ctx context.Context, n int) ([]*fanbridge.Event, error) {
	for {
		s.mu.Lock()
		if len(s.events) >= n {
			out := cloneAll(s.events)
			s.mu.Unlock()
			return out, nil
		}
		changed := s.changed
		s.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return s.Events(), fmt.Errorf("memsink: waiting for %d events: %w", n, ctx.Err())
		}
	}
}

// FailNext makes the next n calls of Send fail with err, or with ErrInjected when err is nil. The
// error is returned as it is, so the caller chooses its class: wrap it with retry.Permanent to
// test the permanent path. A later call replaces an earlier one; n of zero clears it.
func (s *Sink) FailNext(n int, err error) {
	if err == nil {
		err = ErrInjected
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failN = max(n, 0)
	s.failErr = err
}

// FailFunc makes Send call f for each event once FailNext's failures are used up; an event for
// which f returns an error fails with it and is not recorded. A nil f clears it. f runs with the
// sink's lock held, so it must not call the sink.
func (s *Sink) FailFunc(f func(*fanbridge.Event) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failFunc = f
}

// Hold makes every Send wait, before it records anything, until release is called or the Send's
// context ends: a test stands in for a destination that does not answer, without sleeping.
// Holds nest: Sends proceed once every release has been called. Calling release more than once
// is safe.
func (s *Sink) Hold() (release func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.holds == 0 {
		s.gate = make(chan struct{})
	}
	s.holds++
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.holds--
			if s.holds == 0 {
				close(s.gate)
			}
		})
	}
}

// Reset forgets the recorded events, the attempt count and any injected failure. It neither
// releases holds nor reopens a closed sink.
func (s *Sink) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = nil
	s.attempts = 0
	s.failN = 0
	s.failErr = nil
	s.failFunc = nil
	s.notifyLocked()
}

// Close makes every later Send fail with an error wrapping sink.ErrClosed; recorded events stay
// readable. A held Send that is released after Close fails the same way. Close is idempotent and
// always returns nil.
func (s *Sink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}

func cloneAll(events []*fanbridge.Event) []*fanbridge.Event {
	out := make([]*fanbridge.Event, len(events))
	for i, e := range events {
		out[i] = e.Clone()
	}
	return out
}
