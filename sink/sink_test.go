package sink_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/retry"
	"github.com/fanbridge/fanbridge/sink"
	"github.com/fanbridge/fanbridge/sink/memsink"
	"github.com/fanbridge/fanbridge/sink/sinktest"
)

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestChainOrder(t *testing.T) {
	var trace []string
	tag := func(name string) sink.Middleware {
		return func(next sink.Sink) sink.Sink {
			return sink.Func(func(ctx context.Context, e *fanbridge.Event) error {
				trace = append(trace, name)
				return next.Send(ctx, e)
			})
		}
	}
	inner := sink.Func(func(context.Context, *fanbridge.Event) error {
		trace = append(trace, "sink")
		return nil
	})
	tests := []struct {
		name string
		mw   []sink.Middleware
		want []string
	}{
		{name: "none", want: []string{"sink"}},
		{name: "one", mw: []sink.Middleware{tag("a")}, want: []string{"a", "sink"}},
		{name: "first is outermost", mw: []sink.Middleware{tag("a"), tag("b"), tag("c")}, want: []string{"a", "b", "c", "sink"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			trace = nil
			require.NoError(t, sink.Chain(inner, tt.mw...).Send(testContext(t), &fanbridge.Event{}))
			assert.Equal(t, tt.want, trace)
		})
	}
}

func TestBatchError(t *testing.T) {
	permanent := retry.Permanent(errors.New("rejected"))
	tests := []struct {
		name      string
		errs      []error
		wantText  string
		permanent bool
	}{
		{name: "no failures", errs: []error{nil, nil}, wantText: "sink: batch: no failures"},
		{name: "one of three", errs: []error{nil, errors.New("boom"), nil}, wantText: "1 of 3 events failed, first: boom"},
		{name: "first failure reported", errs: []error{errors.New("a"), permanent}, wantText: "2 of 2 events failed, first: a", permanent: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			be := &sink.BatchError{Errs: tt.errs}
			assert.Contains(t, be.Error(), tt.wantText)
			assert.Equal(t, tt.permanent, retry.IsPermanent(be), "errors.As reaches each event's error")
			for i := range tt.errs {
				assert.Equal(t, tt.errs[i], sink.EventError(be, i))
			}
		})
	}
}

func TestEventError(t *testing.T) {
	plain := errors.New("all failed")
	be := &sink.BatchError{Errs: []error{nil, plain}}
	assert.NoError(t, sink.EventError(nil, 3))
	assert.Equal(t, plain, sink.EventError(plain, 7), "a plain error applies to every event")
	assert.NoError(t, sink.EventError(be, 0))
	assert.Equal(t, plain, sink.EventError(be, 1))
	wrapped := errors.Join(errors.New("context"), be)
	assert.Equal(t, plain, sink.EventError(wrapped, 1), "a wrapped BatchError is found")
	assert.Equal(t, be, sink.EventError(be, 5), "out of range returns the whole error")
}

type closeCounter struct {
	sink.Sink
	closed int
}

func (c *closeCounter) Close() error { c.closed++; return nil }

func TestClose(t *testing.T) {
	assert.NoError(t, sink.Close(sink.Func(func(context.Context, *fanbridge.Event) error { return nil })))
	c := &closeCounter{Sink: memsink.New()}
	require.NoError(t, sink.Close(c))
	assert.Equal(t, 1, c.closed)

	// Timeout and Transform pass Close through to the sink they wrap.
	wrapped := sink.Chain(c, sink.Timeout(time.Second), sink.Transform(func(e *fanbridge.Event) (*fanbridge.Event, error) { return e, nil }))
	require.NoError(t, sink.Close(wrapped))
	assert.Equal(t, 2, c.closed)
}

func TestTimeout(t *testing.T) {
	ctx := testContext(t)
	m := memsink.New()
	release := m.Hold()
	defer release()
	s := sink.Chain(m, sink.Timeout(50*time.Millisecond))
	err := s.Send(ctx, &fanbridge.Event{ID: "a"})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Equal(t, retry.ClassRetryable, retry.Classify(err))

	err = sink.SendBatch(ctx, s, []*fanbridge.Event{{ID: "b"}, {ID: "c"}})
	for i := range 2 {
		assert.ErrorIs(t, sink.EventError(err, i), context.DeadlineExceeded)
	}
	assert.Zero(t, m.Len())

	assert.Same(t, sink.Sink(m), sink.Timeout(0)(m), "a zero timeout leaves the sink alone")

	// Over a sink that is not a Batcher, a batch goes one Send at a time, and each gets d of its
	// own: the first here takes all of its d, and the second still has a live context.
	// So it does through middleware that has a SendBatch of its own over such a sink.
	slow := sink.Func(func(ctx context.Context, e *fanbridge.Event) error {
		if e.ID == "slow" {
			<-ctx.Done()
			return nil
		}
		return ctx.Err()
	})
	same := func(e *fanbridge.Event) (*fanbridge.Event, error) { return e, nil }
	for name, s := range map[string]sink.Sink{
		"plain":              sink.Chain(slow, sink.Timeout(20*time.Millisecond)),
		"over a Transform":   sink.Chain(slow, sink.Timeout(20*time.Millisecond), sink.Transform(same)),
		"over another bound": sink.Chain(slow, sink.Timeout(20*time.Millisecond), sink.Timeout(time.Hour)),
		"under a Transform":  sink.Chain(slow, sink.Transform(same), sink.Timeout(20*time.Millisecond)),
		"between Transforms": sink.Chain(slow, sink.Transform(same), sink.Timeout(20*time.Millisecond), sink.Transform(same)),
	} {
		assert.NoError(t, sink.SendBatch(ctx, s, []*fanbridge.Event{{ID: "slow"}, {ID: "next"}}), name)
	}
}

// wrapper is a user's own middleware type, with Unwrap as the package doc asks.
type wrapper struct{ next sink.Sink }

func (w *wrapper) Send(ctx context.Context, e *fanbridge.Event) error { return w.next.Send(ctx, e) }
func (w *wrapper) Unwrap() sink.Sink                                  { return w.next }

func TestUnwrap(t *testing.T) {
	same := func(e *fanbridge.Event) (*fanbridge.Event, error) { return e, nil }
	// Every middleware of the package that wraps a sink in a value of its own.
	for name, mw := range map[string]sink.Middleware{
		"Timeout":   sink.Timeout(time.Second),
		"Transform": sink.Transform(same),
	} {
		t.Run(name, func(t *testing.T) {
			m := memsink.New()
			w := mw(m)
			u, ok := w.(interface{ Unwrap() sink.Sink })
			require.True(t, ok, "%T has no Unwrap() sink.Sink", w)
			assert.Same(t, m, u.Unwrap())
			assert.Same(t, m, sink.Innermost(w))

			// Built again, around the same sink, as a configuration reload does: another
			// wrapper, the same innermost sink.
			again := mw(m)
			assert.NotSame(t, w, again)
			assert.Same(t, sink.Innermost(w), sink.Innermost(again))
			assert.NotSame(t, m, sink.Innermost(mw(memsink.New())))
		})
	}
}

func TestInnermost(t *testing.T) {
	same := func(e *fanbridge.Event) (*fanbridge.Event, error) { return e, nil }
	m := memsink.New()
	assert.Same(t, m, sink.Innermost(m), "a sink that wraps none is its own innermost sink")
	assert.Nil(t, sink.Innermost(nil))
	assert.Same(t, m, sink.Innermost(sink.Chain(m, sink.Timeout(time.Second), sink.Transform(same), sink.Timeout(time.Hour))))
	assert.Same(t, m, sink.Innermost(sink.Chain(m, sink.Timeout(0))), "a zero Timeout adds no wrapper")
	assert.Same(t, m, sink.Innermost(&wrapper{next: sink.Chain(m, sink.Timeout(time.Second))}), "through a user's wrapper")

	// A wrapper of the user's whose Unwrap has nothing to give is where it stops.
	empty := &wrapper{}
	assert.Same(t, empty, sink.Innermost(sink.Chain(empty, sink.Timeout(time.Second))))

	// A plain Func middleware hides what it wraps, as it hides Close and SendBatch.
	hide := func(next sink.Sink) sink.Sink { return sink.Func(next.Send) }
	_, isFunc := sink.Innermost(sink.Chain(m, hide)).(sink.Func)
	assert.True(t, isFunc)

	// Wrappers that unwrap into a cycle end the search rather than loop.
	a, b := &wrapper{}, &wrapper{}
	a.next, b.next = b, a
	done := make(chan sink.Sink, 1)
	go func() { done <- sink.Innermost(a) }()
	select {
	case got := <-done:
		assert.Contains(t, []sink.Sink{a, b}, got)
	case <-testContext(t).Done():
		t.Fatal("Innermost loops on wrappers that unwrap into a cycle")
	}
	self := &wrapper{}
	self.next = self
	assert.Same(t, self, sink.Innermost(self))
}

func TestTransform(t *testing.T) {
	ctx := testContext(t)
	m := memsink.New()
	reject := retry.Permanent(errors.New("cannot convert"))
	s := sink.Chain(m, sink.Transform(func(e *fanbridge.Event) (*fanbridge.Event, error) {
		if e.ID == "bad" {
			return nil, reject
		}
		c := e.Clone()
		c.Type = strings.ToUpper(c.Type)
		return c, nil
	}))

	e := &fanbridge.Event{ID: "a", Type: "v2.users.{id}.presence"}
	require.NoError(t, s.Send(ctx, e))
	assert.Equal(t, "v2.users.{id}.presence", e.Type, "the original is untouched")
	assert.ErrorIs(t, s.Send(ctx, &fanbridge.Event{ID: "bad"}), reject)

	m.FailFunc(func(e *fanbridge.Event) error {
		if e.ID == "down" {
			return errors.New("unavailable")
		}
		return nil
	})
	err := sink.SendBatch(ctx, s, []*fanbridge.Event{{ID: "b"}, {ID: "bad"}, {ID: "down"}, {ID: "c"}})
	require.Error(t, err)
	assert.NoError(t, sink.EventError(err, 0))
	assert.True(t, retry.IsPermanent(sink.EventError(err, 1)))
	assert.EqualError(t, sink.EventError(err, 2), "unavailable")
	assert.NoError(t, sink.EventError(err, 3))

	var ids []string
	for _, e := range m.Events() {
		ids = append(ids, e.ID+":"+e.Type)
	}
	assert.Equal(t, []string{"a:V2.USERS.{ID}.PRESENCE", "b:", "c:"}, ids)
	require.NoError(t, sink.SendBatch(ctx, s, []*fanbridge.Event{{ID: "d"}}))

	// Each result of the wrapped sink's batch stays with its own event, wherever the failure
	// sits among the events handed on.
	err = sink.SendBatch(ctx, s, []*fanbridge.Event{{ID: "down"}, {ID: "e"}, {ID: "f"}})
	require.Error(t, err)
	assert.EqualError(t, sink.EventError(err, 0), "unavailable")
	assert.NoError(t, sink.EventError(err, 1))
	assert.NoError(t, sink.EventError(err, 2))
}

func TestSendBatchWithoutBatcher(t *testing.T) {
	ctx := testContext(t)
	m := memsink.New()
	plain := sink.Func(m.Send) // hides SendBatch
	require.NoError(t, sink.SendBatch(ctx, plain, nil))
	m.FailNext(1, nil)
	err := sink.SendBatch(ctx, plain, []*fanbridge.Event{{ID: "a"}, {ID: "b"}})
	var be *sink.BatchError
	require.ErrorAs(t, err, &be)
	assert.ErrorIs(t, be.Errs[0], memsink.ErrInjected)
	assert.NoError(t, be.Errs[1])
	require.NoError(t, sink.SendBatch(ctx, plain, []*fanbridge.Event{{ID: "c"}}))
	assert.Equal(t, 2, m.Len())
}

// The middleware keep every promise of the sink they wrap.
func TestMiddlewareConformance(t *testing.T) {
	for name, mw := range map[string]sink.Middleware{
		"Timeout": sink.Timeout(5 * time.Second),
		"Transform": sink.Transform(func(e *fanbridge.Event) (*fanbridge.Event, error) {
			return e, nil
		}),
	} {
		t.Run(name, func(t *testing.T) {
			sinktest.Run(t, sinktest.Harness{
				Features: sinktest.Features{ReadBack: true, Metadata: true, Raw: true, Ordered: true, Hang: true, Close: true, Batch: true},
				Open: func(testing.TB) sinktest.Instance {
					m := memsink.New()
					return sinktest.Instance{
						Sink:     sink.Chain(m, mw),
						Received: func(context.Context) ([]*fanbridge.Event, error) { return m.Events(), nil },
						Hang:     m.Hold,
					}
				},
			})
		})
	}
}

func TestRefused(t *testing.T) {
	base := errors.New("refused for a batch-mate")
	assert.NoError(t, sink.Refused(nil))
	assert.False(t, sink.IsRefused(nil))
	assert.False(t, sink.IsRefused(base))

	err := sink.Refused(base)
	assert.True(t, sink.IsRefused(err))
	assert.ErrorIs(t, err, base)
	assert.Equal(t, base.Error(), err.Error(), "the mark adds no text")
	assert.Equal(t, retry.ClassRetryable, retry.Classify(err), "still retryable")
	assert.False(t, retry.IsPermanent(err))

	wrapped := fmt.Errorf("sending: %w", retry.After(err, time.Second))
	assert.True(t, sink.IsRefused(wrapped), "found under other wrappers")
	d, ok := retry.RetryAfter(wrapped)
	assert.True(t, ok)
	assert.Equal(t, time.Second, d, "a wait asked for still counts")
	assert.True(t, sink.IsRefused(sink.Refused(retry.After(base, time.Second))))
	d, ok = retry.RetryAfter(sink.Refused(retry.After(base, time.Second)))
	assert.True(t, ok && d == time.Second, "a wait under the mark still counts")

	batch := &sink.BatchError{Errs: []error{nil, err}}
	assert.True(t, sink.IsRefused(sink.EventError(batch, 1)))
	assert.False(t, sink.IsRefused(sink.EventError(batch, 0)))
}
