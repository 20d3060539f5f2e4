package fanout_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/fanout"
	"github.com/fanbridge/fanbridge/sink"
)

// unwrapper is middleware that says what it wraps, as the sink package's middleware does: its
// Close forwards to the wrapped sink, and closed counts its own closes.
type unwrapper struct {
	next   sink.Sink
	closed atomic.Int64
}

func (w *unwrapper) Send(ctx context.Context, e *fanbridge.Event) error { return w.next.Send(ctx, e) }
func (w *unwrapper) Unwrap() sink.Sink                                  { return w.next }
func (w *unwrapper) Close() error                                       { w.closed.Add(1); return sink.Close(w.next) }

// plainWrapper is middleware with an Unwrap and no Close of its own.
type plainWrapper struct{ next sink.Sink }

func (w *plainWrapper) Send(ctx context.Context, e *fanbridge.Event) error {
	return w.next.Send(ctx, e)
}
func (w *plainWrapper) Unwrap() sink.Sink { return w.next }

// settle waits for the configurations d's Updates replaced.
func settle(t *testing.T, d *fanout.Dispatcher) {
	t.Helper()
	require.NoError(t, d.Settle(testContext(t)))
}

// A sink is closed by what it is, not by how it is wrapped: a configuration rebuilt at every
// reload wraps the same long-lived sink in a new middleware value each time, and the wrapper it
// replaces must not close the sink the new wrapper still sends to. Nor does removing one of two
// names that wrap the same sink close it. It is closed once, when the last sink that reaches it
// goes.
func TestWrappedSinkIsClosedWhenTheLastWrapperGoes(t *testing.T) {
	config := func(sinks map[string]sink.Sink, names ...string) fanout.Config {
		c := fanout.Config{Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: names}}}
		for _, n := range names {
			c.Sinks = append(c.Sinks, fanout.SinkConfig{Name: n, Sink: sinks[n]})
		}
		return c
	}
	wrap := func(s sink.Sink) sink.Sink { return &unwrapper{next: s} }
	for _, tc := range []struct {
		name string
		// first and then are the sinks of the first configuration and of the Update's; each
		// maps a sink name to the sink built around crm.
		first, then func(crm sink.Sink) map[string]sink.Sink
	}{
		{"rewrapped by a reload",
			func(crm sink.Sink) map[string]sink.Sink { return map[string]sink.Sink{"crm": wrap(crm)} },
			func(crm sink.Sink) map[string]sink.Sink { return map[string]sink.Sink{"crm": wrap(crm)} }},
		{"wrapped twice, one removed",
			func(crm sink.Sink) map[string]sink.Sink {
				return map[string]sink.Sink{"crm": wrap(crm), "crm-copy": wrap(crm)}
			},
			nil},
		{"wrapped and bare, the wrapped one removed",
			func(crm sink.Sink) map[string]sink.Sink {
				return map[string]sink.Sink{"crm": crm, "crm-copy": wrap(wrap(crm))}
			},
			nil},
		{"wrapped without a Close, the wrapper with one removed",
			func(crm sink.Sink) map[string]sink.Sink {
				return map[string]sink.Sink{"crm": &plainWrapper{next: crm}, "crm-copy": wrap(crm)}
			},
			nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			crm := newClosingSink(t, "crm")
			first := tc.first(crm)
			names := []string{"crm"}
			if first["crm-copy"] != nil {
				names = append(names, "crm-copy")
			}
			d := newDispatcher(t, config(first, names...))
			ctx := testContext(t)
			require.NoError(t, d.Dispatch(ctx, event("before", "x")))
			then := first
			if tc.then != nil {
				then = tc.then(crm)
			}
			require.NoError(t, d.Update(config(then, "crm")))
			settle(t, d)
			assert.False(t, crm.closed.Load(), "closed while the new configuration still sends to it")
			res, err := d.Deliver(ctx, event("after", "x"))
			require.NoError(t, err)
			assert.Equal(t, fanout.Delivered, res.Sinks[0].Outcome)
			assert.True(t, crm.Has("after"))

			require.NoError(t, d.Close(ctx))
			assert.True(t, crm.closed.Load(), "closed once nothing reaches it") // closingSink fails a second close
			for _, w := range []sink.Sink{first["crm"], first["crm-copy"], then["crm"]} {
				if w, ok := w.(*unwrapper); ok {
					assert.Zero(t, w.closed.Load(), "the sink beneath is closed, not a wrapper")
				}
			}
		})
	}
}

// The sink package's middleware says what it wraps too: a configuration rebuilt with the same
// sink behind a new sink.Timeout keeps it open.
func TestSinkPackageMiddlewareIsSeenThrough(t *testing.T) {
	crm := newClosingSink(t, "crm")
	config := func() fanout.Config {
		return fanout.Config{
			Sinks:  []fanout.SinkConfig{{Name: "crm", Sink: sink.Chain(crm, sink.Timeout(2*time.Second))}},
			Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"crm"}}},
		}
	}
	d := newDispatcher(t, config())
	ctx := testContext(t)
	require.NoError(t, d.Update(config()))
	settle(t, d)
	assert.False(t, crm.closed.Load())
	res, err := d.Deliver(ctx, event("after", "x"))
	require.NoError(t, err)
	assert.Equal(t, fanout.Delivered, res.Sinks[0].Outcome)
	require.NoError(t, d.Close(ctx))
	assert.True(t, crm.closed.Load())
}

// loopWrapper is middleware whose Unwrap never reaches a sink that wraps nothing.
type loopWrapper struct{ other *loopWrapper }

func (*loopWrapper) Send(context.Context, *fanbridge.Event) error { return nil }
func (w *loopWrapper) Unwrap() sink.Sink                          { return w.other }
func (*loopWrapper) Close() error                                 { return nil }

// panicWrapper is middleware whose Unwrap panics.
type panicWrapper struct{}

func (*panicWrapper) Send(context.Context, *fanbridge.Event) error { return nil }
func (*panicWrapper) Unwrap() sink.Sink                            { panic("no") }
func (*panicWrapper) Close() error                                 { return nil }

// A sink whose Unwrap chain has no end, or panics, cannot be told apart from the sinks it may
// share a destination with: it is refused, and an Update that brings it changes nothing.
func TestSinkWhoseUnwrapHasNoEndIsRefused(t *testing.T) {
	self := &loopWrapper{}
	self.other = self
	a, b := &loopWrapper{}, &loopWrapper{}
	a.other, b.other = b, a
	deep := sink.Sink(newRecSink())
	for range 1001 {
		deep = &plainWrapper{next: deep}
	}
	for _, tc := range []struct {
		name string
		s    sink.Sink
		want string
	}{
		{"itself", self, "loops"},
		{"a cycle", a, "loops"},
		{"too deep", deep, "more than"},
		{"panics", &panicWrapper{}, "panicked"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := fanout.Config{
				Sinks:  []fanout.SinkConfig{{Name: "s", Sink: tc.s}},
				Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"s"}}},
			}
			_, err := fanout.New(cfg)
			require.ErrorIs(t, err, fanout.ErrInvalidConfig)
			assert.ErrorContains(t, err, `sink "s": `)
			assert.ErrorContains(t, err, tc.want)

			ok := newRecSink()
			d := newDispatcher(t, fanout.Config{
				Sinks:  []fanout.SinkConfig{{Name: "s", Sink: ok}},
				Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"s"}}},
			})
			require.ErrorIs(t, d.Update(cfg), fanout.ErrInvalidConfig)
			require.NoError(t, d.Dispatch(testContext(t), event("e1", "x")))
			assert.Equal(t, 1, ok.Delivered("e1"), "the old configuration still runs")

			// Without sink closing, nothing is unwrapped: the sink is taken.
			d2 := newDispatcher(t, cfg, fanout.WithSinkClosing(false))
			require.NoError(t, d2.Dispatch(testContext(t), event("e1", "x")))
		})
	}
}

// sliceWrapper is middleware passed by value whose type cannot be compared (it holds a slice),
// with a Close that forwards to the sink it wraps.
type sliceWrapper struct {
	next sink.Sink
	tags []string
}

func (w sliceWrapper) Send(ctx context.Context, e *fanbridge.Event) error { return w.next.Send(ctx, e) }
func (w sliceWrapper) Unwrap() sink.Sink                                  { return w.next }
func (w sliceWrapper) Close() error                                       { return sink.Close(w.next) }

// A wrapper that cannot be compared, around a sink that can, is counted by that sink: it is
// taken, and the sink is closed once, when nothing reaches it any more.
func TestUncomparableWrapperOfAComparableSinkIsTaken(t *testing.T) {
	crm := newClosingSink(t, "crm")
	config := func() fanout.Config {
		return fanout.Config{
			Sinks:  []fanout.SinkConfig{{Name: "crm", Sink: sliceWrapper{next: crm, tags: []string{"t"}}}},
			Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"crm"}}},
		}
	}
	d := newDispatcher(t, config())
	ctx := testContext(t)
	require.NoError(t, d.Update(config()))
	settle(t, d)
	assert.False(t, crm.closed.Load())
	require.NoError(t, d.Dispatch(ctx, event("e1", "x")))
	assert.True(t, crm.Has("e1"))
	require.NoError(t, d.Close(ctx))
	assert.True(t, crm.closed.Load())
}

// contextOnlyCloser has a CloseContext and no Close, as a sink may that can bound its close by a
// context. It records whether that context had a deadline.
type contextOnlyCloser struct {
	closed      atomic.Int64
	hadDeadline atomic.Bool
	err         error
}

func (c *contextOnlyCloser) Send(context.Context, *fanbridge.Event) error { return nil }
func (c *contextOnlyCloser) CloseContext(ctx context.Context) error {
	c.closed.Add(1)
	_, ok := ctx.Deadline()
	c.hadDeadline.Store(ok)
	return c.err
}

// A sink with only a CloseContext is closed when an Update removes it, as one with a Close is,
// under a context that bounds the wait; the Dispatcher's own Close does not close it again.
func TestContextOnlySinkIsClosedWhenRemoved(t *testing.T) {
	a, b := &contextOnlyCloser{}, &contextOnlyCloser{}
	d, err := fanout.New(fanout.Config{
		Sinks:  []fanout.SinkConfig{{Name: "a", Sink: a}, {Name: "b", Sink: b}},
		Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"a", "b"}}},
	})
	require.NoError(t, err)
	ctx := testContext(t)
	require.NoError(t, d.Dispatch(ctx, event("e1", "x")))
	require.NoError(t, d.Update(fanout.Config{
		Sinks:  []fanout.SinkConfig{{Name: "b", Sink: b}},
		Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"b"}}},
	}))
	settle(t, d)
	assert.EqualValues(t, 1, a.closed.Load(), "closed once Update removed it and its work drained")
	assert.True(t, a.hadDeadline.Load(), "the wait for its close is bounded")
	assert.Zero(t, b.closed.Load(), "b is still in use")
	require.NoError(t, d.Close(ctx))
	assert.EqualValues(t, 1, a.closed.Load())
	assert.EqualValues(t, 1, b.closed.Load())
}

// hangingContextCloser has only a CloseContext, which returns when its context ends.
type hangingContextCloser struct{ started chan struct{} }

func (*hangingContextCloser) Send(context.Context, *fanbridge.Event) error { return nil }
func (h *hangingContextCloser) CloseContext(ctx context.Context) error {
	close(h.started)
	<-ctx.Done()
	return fmt.Errorf("records unacknowledged: %w", ctx.Err())
}

// The close of a removed sink with only a CloseContext that begins before Close is bounded by
// Close too: it ends when Close gives up waiting, and its error is part of Close's.
func TestContextOnlyCloseBegunBeforeCloseEndsWithIt(t *testing.T) {
	h := &hangingContextCloser{started: make(chan struct{})}
	kept := newRecSink()
	d, err := fanout.New(fanout.Config{
		Sinks:  []fanout.SinkConfig{{Name: "a", Sink: h}, {Name: "b", Sink: kept}},
		Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"a", "b"}}},
		DLQ:    &memDLQ{},
	}, fanout.WithDLQTimeout(100*time.Millisecond))
	require.NoError(t, err)
	require.NoError(t, d.Update(fanout.Config{
		Sinks:  []fanout.SinkConfig{{Name: "b", Sink: kept}},
		Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"b"}}},
	}))
	recv(t, h.started)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = d.Close(ctx)
	assert.Less(t, time.Since(start), 5*time.Second, "100ms deadline + 100ms DLQ timeout + grace, with room for a loaded machine")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `fanout: closing sink "a": records unacknowledged: context canceled`)
}

// Settle reports the sinks that the configurations it waited for alone had and that failed to
// close, each wrapping ErrSinkClose; each failure is reported once, so Close, which lists those
// no Settle has reported, no longer does. The configurations are settled all the same.
func TestSettleReportsSinkCloseFailures(t *testing.T) {
	boom := errors.New("cannot close")
	for _, tc := range []struct {
		name string
		s    sink.Sink
	}{
		{"Close", &failingCloser{name: "a", closed: make(chan struct{})}},
		{"CloseContext", &contextOnlyCloser{err: boom}},
		{"wrapped", &unwrapper{next: &failingCloser{name: "a", closed: make(chan struct{})}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kept := newRecSink()
			d, err := fanout.New(fanout.Config{
				Sinks:  []fanout.SinkConfig{{Name: "a", Sink: tc.s}, {Name: "b", Sink: kept}},
				Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"a", "b"}}},
			})
			require.NoError(t, err)
			ctx := testContext(t)
			require.NoError(t, d.Update(fanout.Config{
				Sinks:  []fanout.SinkConfig{{Name: "b", Sink: kept}},
				Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"b"}}},
			}))
			err = d.Settle(ctx)
			require.Error(t, err)
			assert.ErrorIs(t, err, fanout.ErrSinkClose)
			assert.ErrorContains(t, err, `fanout: closing sink "a": cannot close`)
			assert.NoError(t, d.Settle(ctx), "reported once")
			assert.NoError(t, d.Close(ctx), "Settle reported it already")
		})
	}
}

// shared is the resource the copies of a sink passed by value share.
type shared struct{ closed atomic.Bool }

// valueSink is a sink passed by value that cannot be compared (it holds a slice) and has a Close.
type valueSink struct {
	tags []string
	res  *shared
}

func (v valueSink) Send(context.Context, *fanbridge.Event) error {
	if v.res.closed.Load() {
		return sink.ErrClosed
	}
	return nil
}
func (v valueSink) Close() error { v.res.closed.Store(true); return nil }

// A sink with a Close that cannot be compared cannot be counted, whatever wraps it: refused bare,
// it is refused under the sink package's middleware too, which would otherwise be closed by each
// reload that builds the chain anew, and close it under the chain still using it.
func TestUncomparableClosableSinkIsRefusedWrapped(t *testing.T) {
	v := valueSink{tags: []string{"x"}, res: &shared{}}
	for _, s := range []sink.Sink{v, sink.Chain(v, sink.Timeout(time.Second)), &unwrapper{next: v}} {
		_, err := fanout.New(fanout.Config{
			Sinks:  []fanout.SinkConfig{{Name: "crm", Sink: s}},
			Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"crm"}}},
		})
		require.ErrorIs(t, err, fanout.ErrInvalidConfig, "%T", s)
		assert.ErrorContains(t, err, "fanout_test.valueSink has a Close method but is not comparable")
	}
	d, err := fanout.New(fanout.Config{
		Sinks:  []fanout.SinkConfig{{Name: "crm", Sink: sink.Chain(v, sink.Timeout(time.Second))}},
		Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"crm"}}},
	}, fanout.WithSinkClosing(false))
	require.NoError(t, err, "taken when the Dispatcher closes no sinks")
	require.NoError(t, d.Close(testContext(t)))
	assert.False(t, v.res.closed.Load())
}

// The sink beneath the sink package's middleware is closed as it would be given bare: with its
// CloseContext, bounded as Update's and Close's closes are, where the wrapper's Close would know
// only io.Closer (a CloseContext-only sink was never closed, and one shaped like kafkasink's was
// closed without a bound, past Close's deadline).
func TestSinkBeneathMiddlewareIsClosedWithItsOwnCloseContext(t *testing.T) {
	for _, removal := range []string{"Update", "Close"} {
		t.Run("context only/"+removal, func(t *testing.T) {
			c := &contextOnlyCloser{}
			d := newDispatcher(t, fanout.Config{
				Sinks:  []fanout.SinkConfig{{Name: "a", Sink: sink.Chain(c, sink.Timeout(time.Second))}},
				Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"a"}}},
			})
			if removal == "Update" {
				require.NoError(t, d.Update(fanout.Config{}))
				require.NoError(t, d.Settle(testContext(t)))
				assert.True(t, c.hadDeadline.Load(), "closed under a bounded context")
			} else {
				require.NoError(t, d.Close(testContext(t)))
			}
			assert.EqualValues(t, 1, c.closed.Load())
		})
	}
	t.Run("both, at Close's deadline", func(t *testing.T) {
		h := &hangingBothCloser{release: make(chan struct{})}
		defer close(h.release)
		d, err := fanout.New(fanout.Config{
			Sinks:  []fanout.SinkConfig{{Name: "k", Sink: sink.Chain(h, sink.Timeout(time.Second))}},
			Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"k"}}},
		}, fanout.WithDLQTimeout(100*time.Millisecond))
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(testContext(t), 100*time.Millisecond)
		defer cancel()
		err = d.Close(ctx)
		require.Error(t, err)
		assert.ErrorContains(t, err, `fanout: closing sink "k": still unacknowledged`, "the sink's own error, within Close")
	})
}

// hangingBothCloser is shaped like kafkasink: Close waits without a bound, CloseContext until its
// context ends.
type hangingBothCloser struct{ release chan struct{} }

func (*hangingBothCloser) Send(context.Context, *fanbridge.Event) error { return nil }
func (h *hangingBothCloser) Close() error                               { return h.CloseContext(context.Background()) }
func (h *hangingBothCloser) CloseContext(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return errors.New("still unacknowledged")
	case <-h.release:
		return nil
	}
}
