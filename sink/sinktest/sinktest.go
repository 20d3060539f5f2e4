package sinktest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/sink"
)

// Harness tells Run how to build the sink under test and how to look at its destination.
type Harness struct {
	// Open returns a new sink delivering to a destination of its own, empty and healthy. Run calls
	// it once per subtest; Open registers the teardown of what it started with tb.Cleanup. Run
	// closes the sink itself (when it implements io.Closer) before those cleanups run. Required.
	Open func(tb testing.TB) Instance

	// Features switches the optional checks on. A feature that needs a function of Instance fails
	// the test when Open leaves that function nil.
	Features Features
}

// Instance is one sink under test together with the hooks Run needs to observe and disturb its
// destination.
type Instance struct {
	// Sink is the sink under test. Required.
	Sink sink.Sink

	// Received returns every event the destination holds, rebuilt from what it stored, in the order
	// it accepted them. Run calls it only after the Sends it checks have returned, so it need not
	// wait for anything: a Sink returns nil only when the destination has the event. Run calls it
	// once more after closing the sink, to see that nothing arrived late, so it must keep working
	// once the sink is closed (read with a client of its own, not the sink's). Required with
	// Features.ReadBack.
	Received func(ctx context.Context) ([]*fanbridge.Event, error)

	// FailTransient makes the destination fail every delivery with a failure another attempt could
	// cure (a retriable broker error, UNAVAILABLE, a 503) until heal is called, storing none of
	// them: the suite requires the event of a Send that failed meanwhile never to arrive. Required
	// with Features.TransientFailure.
	FailTransient func() (heal func())

	// FailPermanent makes the destination reject every delivery for good (an unknown topic, an
	// authorization failure, INVALID_ARGUMENT) until heal is called, storing none of them, as
	// FailTransient. Required with Features.PermanentFailure.
	FailPermanent func() (heal func())

	// Hang makes the destination stop answering, without failing, until release is called; release
	// must be safe to call more than once. Required with Features.Hang.
	Hang func() (release func())

	// Attempts, when set, returns how many deliveries the destination has been asked for so far,
	// accepted or refused. Failure/Transient and Failure/Permanent then check that a failing Send
	// asked exactly once: a sink never retries on its own, since the dispatcher's retry policy,
	// with its backoff, breaker and dead-letter queue, decides what happens next. Leave it nil when
	// a client library the sink drives retries inside by design (franz-go does, for retriable
	// broker codes). Optional.
	Attempts func() int
}

// Features switches on the parts of the suite that not every sink supports.
type Features struct {
	// ReadBack checks what arrived against what was sent, field by field, through
	// Instance.Received. Without it Run checks only what Send returns.
	ReadBack bool
	// Metadata: the destination keeps Event.Metadata, every key and value.
	Metadata bool
	// Raw: the destination keeps Event.Raw byte for byte.
	Raw bool
	// Ordered: Received lists events in the order the destination accepted them, so events sent one
	// after another (each Send returning before the next) come back in that order.
	Ordered bool
	// TransientFailure checks that a transient destination failure is retryable, through
	// Instance.FailTransient.
	TransientFailure bool
	// PermanentFailure checks that a permanent destination failure satisfies retry.IsPermanent,
	// through Instance.FailPermanent.
	PermanentFailure bool
	// Hang checks that Send returns by its context's deadline, and once its context is canceled,
	// when the destination does not answer, through Instance.Hang; with Batch, SendBatch returns
	// by its deadline too.
	Hang bool
	// Close: the sink implements io.Closer; Close keeps what was delivered, later Sends fail with
	// an error wrapping sink.ErrClosed, and a second Close is harmless.
	Close bool
	// Batch: the sink implements sink.Batcher with per-event results.
	Batch bool
}

// Run runs the conformance suite against the sink h describes, as subtests of t.
func Run(t *testing.T, h Harness) {
	t.Helper()
	if h.Open == nil {
		t.Fatal("sinktest: Harness.Open is nil")
	}
	s := &suite{h: h}
	t.Run("Deliver", func(t *testing.T) {
		t.Run("Intact", s.deliverIntact)
		t.Run("Many", s.deliverMany)
		t.Run("Concurrent", s.deliverConcurrent)
		t.Run("SharedEvent", s.deliverShared)
	})
	t.Run("Context", func(t *testing.T) {
		t.Run("Canceled", s.contextDone(false))
		t.Run("Expired", s.contextDone(true))
		t.Run("Deadline", s.contextDeadline)
		t.Run("CanceledInFlight", s.contextCanceledInFlight)
	})
	t.Run("Failure", func(t *testing.T) {
		t.Run("Transient", s.failure(false))
		t.Run("Permanent", s.failure(true))
	})
	t.Run("Close", func(t *testing.T) {
		t.Run("KeepsDeliveredThenRejects", s.closeRejects)
		t.Run("WhileSending", s.closeWhileSending)
	})
	t.Run("Batch", func(t *testing.T) {
		t.Run("Delivers", s.batchDelivers)
		t.Run("Canceled", s.batchCanceled)
		t.Run("Permanent", s.batchPermanent)
		t.Run("Transient", s.batchTransient)
		t.Run("Closed", s.batchClosed)
		t.Run("Hang", s.batchHang)
		t.Run("CanceledInFlight", s.batchCanceledInFlight)
	})
}

type suite struct {
	h Harness
}

// instance is an Instance opened for one subtest, with the Close that ends it.
type instance struct {
	Instance
	t         *testing.T
	closeOnce sync.Once
	closedOK  bool // Close returned nil or an error wrapping sink.ErrClosed, in time
}

// open builds an instance for one subtest, checks it has what the features need, and closes its
// sink when the subtest ends, unless settle closed it already.
func (s *suite) open(t *testing.T) *instance {
	t.Helper()
	in := &instance{Instance: s.h.Open(t), t: t}
	if in.Sink == nil {
		t.Fatal("sinktest: Harness.Open returned an Instance without a Sink")
	}
	f := s.h.Features
	need := func(on bool, have bool, what string) {
		if on && !have {
			t.Fatalf("sinktest: a feature is on but Instance.%s is nil", what)
		}
	}
	need(f.ReadBack, in.Received != nil, "Received")
	need(f.TransientFailure, in.FailTransient != nil, "FailTransient")
	need(f.PermanentFailure, in.FailPermanent != nil, "FailPermanent")
	need(f.Hang, in.Hang != nil, "Hang")
	t.Cleanup(func() { in.close() })
	return in
}

// close closes the sink the first time it is called, reports a Close that fails or hangs, and
// returns whether Close succeeded. A subtest that closed the sink itself (Features.Close) gets
// one more Close here, which a sink must take as harmless.
func (in *instance) close() bool {
	in.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), subtestTimeout)
		defer cancel()
		err, ok := waitBounded(ctx, func() error { return sink.Close(in.Sink) })
		switch {
		case ok && panicked(in.t, "closing the sink after the subtest", err):
		case !ok:
			in.t.Errorf("sinktest: closing the sink after the subtest had not returned %s after %s: Close hangs",
				returnLate, subtestTimeout)
		case err != nil && !errors.Is(err, sink.ErrClosed):
			in.t.Errorf("sinktest: closing the sink after the subtest: %v", err)
		default:
			in.closedOK = true
		}
	})
	return in.closedOK
}

func (s *suite) skipUnless(t *testing.T, on bool, feature string) {
	t.Helper()
	if !on {
		t.Skipf("sinktest: Features.%s is off", feature)
	}
}

// received reads the destination back, or returns false when ReadBack is off.
func (s *suite) received(t *testing.T, ctx context.Context, in *instance) ([]*fanbridge.Event, bool) {
	t.Helper()
	if !s.h.Features.ReadBack {
		return nil, false
	}
	got, err := in.Received(ctx)
	if err != nil {
		t.Fatalf("sinktest: Received: %v", err)
	}
	return got, true
}

func describe(err error) string {
	if err == nil {
		return "<nil>"
	}
	return fmt.Sprintf("%v (%T)", err, err)
}
