// Package closeonce lets a Close run its work once while every caller, concurrent or later, waits
// for that one end and gets its result, each for as long as its own context lasts.
package closeonce

import (
	"context"
	"fmt"
)

// Done is the end of a close: zero until Start's work has finished, then its result.
type Done struct {
	ch  chan struct{}
	err error
}

// New returns a Done whose close has not started.
func New() *Done { return &Done{ch: make(chan struct{})} }

// Start runs work, the close itself, and then releases every Wait with its result. The caller
// must call it once, from the call that began the close. When ctx cannot end, work runs in place,
// since that caller waits for the end anyway; otherwise it runs on a goroutine of its own, so
// that the close carries on when the caller stops waiting.
func (d *Done) Start(ctx context.Context, work func() error) {
	run := func() {
		d.err = work()
		close(d.ch)
	}
	if ctx.Done() == nil {
		run()
		return
	}
	go run()
}

// Wait returns the close's result once it has finished, or, when ctx ends first, an error that
// names pkg and wraps ctx's error. A finished close wins over a context that has ended too.
func (d *Done) Wait(ctx context.Context, pkg string) error {
	select {
	case <-d.ch:
		return d.err
	default:
	}
	select {
	case <-d.ch:
		return d.err
	case <-ctx.Done():
		return fmt.Errorf("%s: close: stopped waiting while the sink is still closing: %w", pkg, ctx.Err())
	}
}
