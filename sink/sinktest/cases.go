package sinktest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"reflect"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/retry"
	"github.com/fanbridge/fanbridge/sink"
)

// subtestTimeout bounds every subtest, and returnLate is how long after a call's context ends the
// suite still waits for a call into the sink: a sink that hangs fails instead of stalling CI.
// (Variables only so that the package's own tests can shorten them.)
var (
	subtestTimeout = 30 * time.Second
	returnLate     = 5 * time.Second
)

const (
	// hangDeadline is the deadline a Send gets while the destination does not answer.
	hangDeadline = 250 * time.Millisecond
	// batchHangDeadline is the deadline a SendBatch gets while the destination does not answer:
	// shorter, since the sink is warmed up by then and only the wait is measured.
	batchHangDeadline = 100 * time.Millisecond
	// lateBase and lateFactor bound how late after its deadline such a call may return:
	// lateBase, plus lateFactor times the deadline, plus however late the suite itself saw the
	// deadline pass (see deadlineWatch). Tight enough that a sink waiting a second or more of its
	// own past a 250 ms deadline fails; wide enough for a sink that stops at its deadline to pass
	// under -race on a loaded machine with 2 cores, where a wake-up can come hundreds of
	// milliseconds late.
	lateBase   = time.Second
	lateFactor = 2
	// manyEvents is how many events the sequential check sends.
	manyEvents = 200
	// workers and perWorker shape the concurrent checks.
	workers   = 8
	perWorker = 25
)

func subtestContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), subtestTimeout)
	t.Cleanup(cancel)
	return ctx
}

// bounded runs f, a call into the sink named by what, and returns its error. When f has not
// returned returnLate after ctx ended, the sink hangs or ignores its context: bounded fails the
// test at once, naming the call, rather than let it stall the run, and leaves f running. When f
// panics, bounded fails the test with the panic's value and stack.
func bounded(t *testing.T, ctx context.Context, what string, f func() error) error {
	t.Helper()
	err, ok := waitBounded(ctx, f)
	if !ok {
		t.Fatalf("sinktest: %s had not returned %s after its context ended: the sink hangs, or ignores its context", what, returnLate)
	}
	if panicked(t, what, err) {
		t.FailNow()
	}
	return err
}

// waitBounded runs f and waits for it until returnLate after ctx ends; ok is false when f was
// still running then. A panic in f comes back as a *panicError.
func waitBounded(ctx context.Context, f func() error) (err error, ok bool) {
	done := make(chan error, 1)
	go func() { done <- guarded(f) }()
	select {
	case err := <-done:
		return err, true
	case <-ctx.Done():
	}
	late := time.NewTimer(returnLate)
	defer late.Stop()
	select {
	case err := <-done:
		return err, true
	case <-late.C:
		return nil, false
	}
}

// panicError is what guarded returns for a call into the sink that panicked. The suite reports it
// as a failure of the subtest instead of letting the panic, on a goroutine of its own, end the
// whole test binary with every other subtest's result.
type panicError struct {
	value any
	stack []byte
}

func (p *panicError) Error() string { return fmt.Sprintf("panic: %v", p.value) }

// guarded calls f, a call into the sink, and returns its error, or a *panicError when f panics.
func guarded(f func() error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &panicError{value: v, stack: debug.Stack()}
		}
	}()
	return f()
}

func isPanic(err error) bool {
	_, ok := err.(*panicError)
	return ok
}

// panicked reports, as a test error with the panic's value and the sink's stack, a call named by
// what whose guarded result err is a *panicError, and returns whether it was one.
func panicked(t *testing.T, what string, err error) bool {
	t.Helper()
	p, ok := err.(*panicError)
	if ok {
		t.Errorf("sinktest: %s panicked: %v\n%s", what, p.value, p.stack)
	}
	return ok
}

// boundedClose closes c within the subtest's deadline, failing the test when Close hangs.
func boundedClose(t *testing.T, c io.Closer) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), subtestTimeout)
	defer cancel()
	return bounded(t, ctx, "Close", c.Close)
}

// deadlineWatch times a call into the sink that a context with a short deadline bounds, or one
// canceled a short while in, and watches that context from a goroutine of the suite's own, to see
// how late the machine lets anyone notice it end: under -race on loaded cores a goroutine can
// wake hundreds of milliseconds after its timer, the sink's as much as the suite's.
type deadlineWatch struct {
	start    time.Time
	deadline time.Duration      // when, after start, the context ends
	ending   string             // how it ends, for messages
	seen     chan time.Duration // when, after start, the suite's goroutine saw the context end
}

// watchDeadline starts timing a call bounded by ctx, whose deadline is deadline from now.
func watchDeadline(ctx context.Context, deadline time.Duration) *deadlineWatch {
	return watchEnd(ctx, deadline, fmt.Sprintf("a deadline of %s", deadline))
}

// watchEnd starts timing a call bounded by ctx, which ends at from now, as ending says.
func watchEnd(ctx context.Context, at time.Duration, ending string) *deadlineWatch {
	w := &deadlineWatch{start: time.Now(), deadline: at, ending: ending, seen: make(chan time.Duration, 1)}
	go func() {
		<-ctx.Done()
		w.seen <- time.Since(w.start)
	}()
	return w
}

// check fails the test when the call, named by what, returned elapsed after it began, later than
// its deadline allows: lateBase plus lateFactor times the deadline, plus however late the
// suite's own goroutine saw the deadline pass. A sink that stops at its deadline returns within
// that bound on a slow machine, and one that waits on for a second or more of its own does not.
func (w *deadlineWatch) check(t *testing.T, what string, elapsed time.Duration) {
	t.Helper()
	// The context ends by then, so this waits at most until then, when the call returned early.
	noticed := max(<-w.seen-w.deadline, 0)
	allowed := lateBase + lateFactor*w.deadline + noticed
	if late := elapsed - w.deadline; late > allowed {
		t.Errorf("sinktest: %s returned %s after %s: %s late, and at most %s is allowed (%s, plus %d times the deadline, plus the %s the suite itself took to see the context end): a sink stops waiting when its context ends",
			what, elapsed.Round(time.Millisecond), w.ending, late.Round(time.Millisecond), allowed.Round(time.Millisecond),
			lateBase, lateFactor, noticed.Round(time.Millisecond))
	}
}

// send sends e and fails the test on error. It also checks that Send left e as it was.
func send(t *testing.T, ctx context.Context, s sink.Sink, e *fanbridge.Event) {
	t.Helper()
	what := fmt.Sprintf("Send(%q)", e.ID)
	if err := trySend(t, ctx, s, e, what); err != nil {
		t.Fatalf("sinktest: %s = %s, want nil", what, describe(err))
	}
}

// trySend sends e under bounded, as the call named by what, and returns Send's error. Whatever
// Send returned, it checks that Send left e as it was: a dispatcher hands one event to every sink
// it reaches, so a note a failing Send writes on it (its error in Metadata, say) reaches the other
// sinks' destinations, and races with their Sends.
func trySend(t *testing.T, ctx context.Context, s sink.Sink, e *fanbridge.Event, what string) error {
	t.Helper()
	before := e.Clone()
	err := bounded(t, ctx, what, func() error { return s.Send(ctx, e) })
	checkUnchanged(t, what, before, e, err)
	return err
}

// trySendBatch is trySend for SendBatch: it checks every event of the batch.
func trySendBatch(t *testing.T, ctx context.Context, b sink.Batcher, events []*fanbridge.Event, what string) error {
	t.Helper()
	before := cloneAll(events)
	err := bounded(t, ctx, what, func() error { return b.SendBatch(ctx, events) })
	for i, e := range events {
		if changed := changedFields(before[i], e); changed != nil {
			t.Errorf("sinktest: %s modified event %d (%q) it was given: %s changed%s", what, i, e.ID,
				strings.Join(changed, ", "), failedWith(sink.EventError(err, i)))
		}
	}
	return err
}

// checkUnchanged fails the test when the call named by what, which returned err, left e different
// from before, a clone taken before the call began.
func checkUnchanged(t *testing.T, what string, before, e *fanbridge.Event, err error) {
	t.Helper()
	if changed := changedFields(before, e); changed != nil {
		t.Errorf("sinktest: %s modified the event it was given: %s changed%s", what, strings.Join(changed, ", "), failedWith(err))
	}
}

// failedWith says, for a message about a call that modified its event, that the call failed, since
// a sink author may take a failed Send for one whose event nobody reads again.
func failedWith(err error) string {
	if err == nil {
		return ""
	}
	return fmt.Sprintf(" (the call failed with %s; the event is shared with every other sink, and a failed Send must leave it as it is too)", describe(err))
}

// changedFields names the fields of e that differ from before, or returns nil when none does.
func changedFields(before, e *fanbridge.Event) []string {
	var changed []string
	b, a := reflect.ValueOf(before).Elem(), reflect.ValueOf(e).Elem()
	for i := range b.NumField() {
		if b.Field(i).CanInterface() && !reflect.DeepEqual(b.Field(i).Interface(), a.Field(i).Interface()) {
			changed = append(changed, b.Type().Field(i).Name)
		}
	}
	if changed == nil && !reflect.DeepEqual(before, e) {
		changed = []string{"an unexported field"}
	}
	return changed
}

func cloneAll(events []*fanbridge.Event) []*fanbridge.Event {
	out := make([]*fanbridge.Event, len(events))
	for i, e := range events {
		out[i] = e.Clone()
	}
	return out
}

func (s *suite) deliverIntact(t *testing.T) {
	ctx := subtestContext(t)
	in := s.open(t)
	prefix := runPrefix()
	events := fixtures(prefix)
	for _, e := range events {
		send(t, ctx, in.Sink, e)
	}
	if got, ok := s.received(t, ctx, in); ok {
		s.checkArrived(t, events, ofRun(got, prefix))
		s.settle(t, ctx, in, prefix, got)
	}
}

func (s *suite) deliverMany(t *testing.T) {
	ctx := subtestContext(t)
	in := s.open(t)
	prefix := runPrefix()
	events := numbered(prefix, manyEvents)
	for _, e := range events {
		send(t, ctx, in.Sink, e)
	}
	if got, ok := s.received(t, ctx, in); ok {
		s.checkArrived(t, events, ofRun(got, prefix))
		s.settle(t, ctx, in, prefix, got)
	}
}

func (s *suite) deliverConcurrent(t *testing.T) {
	ctx := subtestContext(t)
	in := s.open(t)
	prefix := runPrefix()
	events := numbered(prefix, workers*perWorker)
	before := cloneAll(events)
	errs := make([]error, len(events))
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < len(events); i += workers {
				errs[i] = guarded(func() error { return in.Sink.Send(ctx, events[i]) })
			}
		})
	}
	bounded(t, ctx, "concurrent Sends", func() error { wg.Wait(); return nil })
	var failed, panics, modified int
	for i, err := range errs {
		what := fmt.Sprintf("concurrent Send(%q)", events[i].ID)
		if err != nil {
			failed++
		}
		if isPanic(err) {
			// One report, with its stack, tells the sink's author enough.
			if panics++; panics == 1 {
				panicked(t, what, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("sinktest: %s = %s, want nil", what, describe(err))
		}
		if changedFields(before[i], events[i]) != nil {
			if modified++; modified == 1 {
				checkUnchanged(t, what, before[i], events[i], err)
			}
		}
	}
	if panics > 1 {
		t.Errorf("sinktest: %d concurrent Sends panicked in all", panics)
	}
	if modified > 1 {
		t.Errorf("sinktest: %d concurrent Sends modified the event they were given in all", modified)
	}
	if failed > 0 {
		// Which events were acknowledged is already wrong: what arrived says no more.
		t.FailNow()
	}
	if got, ok := s.received(t, ctx, in); ok {
		// Concurrent sends have no order to keep; compare as a set.
		unordered := *s
		unordered.h.Features.Ordered = false
		unordered.checkArrived(t, events, ofRun(got, prefix))
		s.settle(t, ctx, in, prefix, got)
	}
}

// deliverShared sends one event from several goroutines at once, as a dispatcher does when several
// routes reach the same sink: under -race this catches a sink that writes to the event it was given.
func (s *suite) deliverShared(t *testing.T) {
	ctx := subtestContext(t)
	in := s.open(t)
	prefix := runPrefix()
	e := fixtures(prefix)[0]
	before := e.Clone()
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() { errs[i] = guarded(func() error { return in.Sink.Send(ctx, e) }) })
	}
	bounded(t, ctx, "concurrent Sends of one event", func() error { wg.Wait(); return nil })
	for _, err := range errs {
		if panicked(t, "Send of a shared event", err) {
			t.FailNow()
		}
		if err != nil {
			t.Errorf("sinktest: Send of a shared event = %s, want nil", describe(err))
		}
	}
	if !reflect.DeepEqual(before, e) {
		t.Error("sinktest: Send modified a shared event")
	}
	if got, ok := s.received(t, ctx, in); ok {
		// Each acknowledged Send is a delivery, but a destination may deduplicate on ID.
		if n := len(ofRun(got, prefix)); n < 1 || n > len(errs) {
			t.Errorf("sinktest: the shared event arrived %d times, want 1 to %d", n, len(errs))
		}
		s.settle(t, ctx, in, prefix, got)
	}
}

// contextDone checks a Send whose context is already canceled (or past its deadline): it fails with
// an error that is not permanent, because the caller stopped it, and delivers nothing.
func (s *suite) contextDone(expired bool) func(t *testing.T) {
	return func(t *testing.T) {
		ctx := subtestContext(t)
		in := s.open(t)
		prefix := runPrefix()
		var done context.Context
		var cancel context.CancelFunc
		if expired {
			done, cancel = context.WithDeadline(ctx, time.Now().Add(-time.Second))
		} else {
			done, cancel = context.WithCancel(ctx)
			cancel()
		}
		defer cancel()
		stopped := numberedEvent(prefix, 0)
		err := trySend(t, done, in.Sink, stopped, "Send with a done context")
		if err == nil {
			t.Fatal("sinktest: Send with a done context = nil, want an error")
		}
		if c := retry.Classify(err); c == retry.ClassPermanent {
			t.Errorf("sinktest: Send with a done context = %s, classified %s: a caller's cancellation is never permanent", describe(err), c)
		}
		want := context.Canceled
		if expired {
			want = context.DeadlineExceeded
		}
		if !errors.Is(err, want) {
			t.Errorf("sinktest: Send with a done context = %s, want an error wrapping %v", describe(err), want)
		}
		// A marker sent afterwards shows the destination is readable and lets the check see that
		// the stopped event is not there.
		marker := numberedEvent(prefix, 1)
		send(t, ctx, in.Sink, marker)
		if got, ok := s.received(t, ctx, in); ok {
			s.checkArrived(t, []*fanbridge.Event{marker}, ofRun(got, prefix))
			s.settle(t, ctx, in, prefix, got)
		}
	}
}

// contextDeadline checks that Send gives up by its deadline when the destination does not answer,
// with an error that is not permanent.
func (s *suite) contextDeadline(t *testing.T) {
	s.skipUnless(t, s.h.Features.Hang, "Hang")
	ctx := subtestContext(t)
	in := s.open(t)
	prefix := runPrefix()
	// Deliver one event first, so the hang applies to a sink that is connected and warmed up.
	send(t, ctx, in.Sink, numberedEvent(prefix, 0))

	release := in.Hang()
	t.Cleanup(release) // runs before the sink is closed, so Close has no hung request to wait for
	sendCtx, cancel := context.WithTimeout(ctx, hangDeadline)
	defer cancel()
	watch := watchDeadline(sendCtx, hangDeadline)
	result := make(chan error, 1)
	hung := numberedEvent(prefix, 1)
	before := hung.Clone()
	go func() { result <- guarded(func() error { return in.Sink.Send(sendCtx, hung) }) }()
	select {
	case err := <-result:
		elapsed := time.Since(watch.start)
		if panicked(t, "Send to a destination that does not answer", err) {
			t.FailNow()
		}
		checkUnchanged(t, "Send to a destination that does not answer", before, hung, err)
		if err == nil {
			t.Fatal("sinktest: Send to a destination that does not answer = nil, want a deadline error")
		}
		if c := retry.Classify(err); c == retry.ClassPermanent {
			t.Errorf("sinktest: Send past its deadline = %s, classified %s, want not permanent", describe(err), c)
		}
		watch.check(t, "Send", elapsed)
	case <-time.After(hangDeadline + 10*time.Second):
		t.Fatalf("sinktest: Send ignored its %s deadline for over 10 s", hangDeadline)
	}
	s.afterHang(t, ctx, in, prefix, release, hung)
}

// contextCanceledInFlight checks that a Send waiting for a destination that does not answer
// returns promptly once its context is canceled, with an error wrapping context.Canceled. The
// context has no deadline: a dispatcher cancels Sends under way when the sender goes away or it
// shuts down, and a sink that turns only its context's deadline into a timeout of its client
// would wait on however long that timeout is, holding the dispatcher's drain.
func (s *suite) contextCanceledInFlight(t *testing.T) {
	s.skipUnless(t, s.h.Features.Hang, "Hang")
	ctx := subtestContext(t)
	in := s.open(t)
	prefix := runPrefix()
	send(t, ctx, in.Sink, numberedEvent(prefix, 0))

	release := in.Hang()
	t.Cleanup(release) // as in contextDeadline
	// Canceled as late as Context/Deadline's deadline passes, so that the Send is as surely
	// waiting for the destination by then: one canceled before it began is Context/Canceled.
	sendCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	const what = "Send canceled while the destination does not answer"
	watch := watchEnd(sendCtx, hangDeadline, fmt.Sprintf("a cancellation %s in", hangDeadline))
	timer := time.AfterFunc(hangDeadline, cancel)
	defer timer.Stop()
	hung := numberedEvent(prefix, 1)
	err := trySend(t, sendCtx, in.Sink, hung, what)
	elapsed := time.Since(watch.start)
	if err == nil {
		t.Fatalf("sinktest: %s = nil, want an error wrapping context.Canceled", what)
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("sinktest: %s = %s, want an error wrapping context.Canceled", what, describe(err))
	}
	if c := retry.Classify(err); c == retry.ClassPermanent {
		t.Errorf("sinktest: %s = %s, classified %s: a caller's cancellation is never permanent", what, describe(err), c)
	}
	watch.check(t, "Send", elapsed)
	s.afterHang(t, ctx, in, prefix, release, hung)
}

// afterHang ends a subtest in which the destination stopped answering and the Send of hung gave
// up on it: once the destination answers again the sink works again, the events acknowledged
// before and after arrived once each, and hung may arrive late, once.
func (s *suite) afterHang(t *testing.T, ctx context.Context, in *instance, prefix string, release func(), hung *fanbridge.Event) {
	t.Helper()
	release()
	after := numberedEvent(prefix, 2)
	send(t, ctx, in.Sink, after)
	if got, ok := s.received(t, ctx, in); ok {
		acked := []*fanbridge.Event{numberedEvent(prefix, 0), after}
		s.checkAfterFailure(t, in, ofRun(got, prefix), acked, nil, []*fanbridge.Event{hung})
		// The destination may still complete the attempt Send gave up on.
		s.settle(t, ctx, in, prefix, got, hung)
	}
}

// failure checks that a destination failure reaches the caller classified, and that the sink
// recovers once the destination does.
func (s *suite) failure(permanent bool) func(t *testing.T) {
	return func(t *testing.T) {
		if permanent {
			s.skipUnless(t, s.h.Features.PermanentFailure, "PermanentFailure")
		} else {
			s.skipUnless(t, s.h.Features.TransientFailure, "TransientFailure")
		}
		ctx := subtestContext(t)
		in := s.open(t)
		prefix := runPrefix()
		send(t, ctx, in.Sink, numberedEvent(prefix, 0))

		arm := in.FailTransient
		if permanent {
			arm = in.FailPermanent
		}
		heal := arm()
		t.Cleanup(heal)
		var before int
		if in.Attempts != nil {
			before = in.Attempts()
		}
		err := trySend(t, ctx, in.Sink, numberedEvent(prefix, 1), "Send to a failing destination")
		heal()
		if in.Attempts != nil {
			if n := in.Attempts() - before; n != 1 {
				t.Errorf("sinktest: a failing Send asked the destination %d times, want once: a sink does not retry on its own", n)
			}
		}
		if err == nil {
			t.Fatal("sinktest: Send to a failing destination = nil, want an error")
		}
		if permanent && !retry.IsPermanent(err) {
			t.Errorf("sinktest: Send = %s, want an error satisfying retry.IsPermanent", describe(err))
		}
		if !permanent && retry.Classify(err) != retry.ClassRetryable {
			t.Errorf("sinktest: Send = %s, classified %s, want %s", describe(err), retry.Classify(err), retry.ClassRetryable)
		}
		if errors.Is(err, sink.ErrClosed) {
			t.Errorf("sinktest: Send = %s: a destination failure must not look like a closed sink", describe(err))
		}
		// The destination refused the failed Send, so its event must not be there at all, and the
		// events acknowledged around it must be there, once each: a sink that replays what it
		// had delivered, or keeps what failed and sends it again later, fails.
		after := numberedEvent(prefix, 2)
		send(t, ctx, in.Sink, after)
		if in.Attempts != nil {
			// The Send after the failure asked once more; a retry of the failed event in the
			// background, after the failing Send returned, would show here.
			if n := in.Attempts() - before; n != 2 {
				t.Errorf("sinktest: the destination was asked %d times for a failing Send and one after it, want 2: a sink does not retry on its own, in the background either", n)
			}
		}
		got, readBack := s.received(t, ctx, in)
		if readBack {
			acked := []*fanbridge.Event{numberedEvent(prefix, 0), after}
			s.checkAfterFailure(t, in, ofRun(got, prefix), acked, []*fanbridge.Event{numberedEvent(prefix, 1)}, nil)
		}
		if in.Attempts != nil {
			// Once more, after reading the destination back: a background retry a little later.
			if n := in.Attempts() - before; n != 2 {
				t.Errorf("sinktest: the destination was asked %d times by the end of the subtest, want 2: a sink does not retry on its own, in the background either", n)
			}
		}
		if readBack {
			// The destination answered the failing Send, so it has no attempt left to complete:
			// the failed event may not arrive from now on, even with Attempts left nil.
			s.settle(t, ctx, in, prefix, got)
		}
	}
}

// checkAfterFailure checks got, what the destination holds of a subtest in which some Sends
// failed. Each acknowledged event arrived once: a sink that replays what it had delivered when it
// recovers fails. Each refused event, whose Send failed while the destination refused every
// delivery (Instance.FailTransient and FailPermanent), is not there at all: the destination
// stored nothing while it refused, so such an event arrived only if the sink sent it again after
// its Send had returned (a retry of its own, a copy kept to send with a later event), which
// the sink may not do, whether or not Attempts can see it. Each abandoned event, whose Send gave
// up on a destination that did not answer, may or may not have reached it (at-least-once): at
// most once, or any number of times with Attempts left nil, since a client that retries inside by
// design may have its request stored more than once.
func (s *suite) checkAfterFailure(t *testing.T, in *instance, got, acked, refused, abandoned []*fanbridge.Event) {
	t.Helper()
	count := countIDs(got)
	for _, e := range acked {
		if count[e.ID] != 1 {
			t.Errorf("sinktest: event %q was acknowledged, and arrived %d times, want once", e.ID, count[e.ID])
		}
	}
	for _, e := range refused {
		if n := count[e.ID]; n != 0 {
			t.Errorf("sinktest: event %q failed while the destination refused every delivery, yet arrived %d times: the sink sent it again after its Send had returned (a retry of its own, or a copy kept for later), want none",
				e.ID, n)
		}
	}
	if in.Attempts == nil {
		return
	}
	for _, e := range abandoned {
		if n := count[e.ID]; n > 1 {
			t.Errorf("sinktest: the failed event %q arrived %d times", e.ID, n)
		}
	}
}

func countIDs(events []*fanbridge.Event) map[string]int {
	count := make(map[string]int, len(events))
	for _, e := range events {
		count[e.ID]++
	}
	return count
}

// settle is the last check of a subtest that reads its destination back; got is what that
// read-back returned. settle closes the sink, reads the destination again and fails every event
// of the subtest that arrived in between, or arrived again: once Send or SendBatch has returned,
// a sink does no more work for its events (no retry, no second copy in the background), and
// Close returns only once whatever work the sink had left has stopped. The events in inFlight
// are the exception: their Send gave up on a destination that had not answered, which may still
// complete that attempt, so each may arrive late, once (any number of times with Attempts left
// nil, as in checkAfterFailure). An event that was there and is gone after Close fails too.
func (s *suite) settle(t *testing.T, ctx context.Context, in *instance, prefix string, got []*fanbridge.Event, inFlight ...*fanbridge.Event) {
	t.Helper()
	if !s.h.Features.ReadBack || !in.close() {
		return
	}
	after, _ := s.received(t, ctx, in)
	was, now := countIDs(ofRun(got, prefix)), countIDs(ofRun(after, prefix))
	mayLand := make(map[string]bool, len(inFlight))
	for _, e := range inFlight {
		mayLand[e.ID] = true
	}
	ids := slices.Collect(maps.Keys(now))
	for id := range was {
		if _, ok := now[id]; !ok {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	for _, id := range ids {
		before, closed := was[id], now[id]
		switch {
		case closed < before:
			t.Errorf("sinktest: event %q was at the destination %d times when the subtest read it back, and %d times once Close had returned: Close keeps what was delivered",
				id, before, closed)
		case closed == before:
		case mayLand[id] && (in.Attempts == nil || closed <= 1):
			// The destination completed the attempt that Send gave up on.
		default:
			t.Errorf("sinktest: event %q arrived late: the destination held it %d times when the subtest read it back, and %d times once Close had returned; after Send returns, nothing more of its event may arrive (no retry, no second copy in the background), and Close stops what is left",
				id, before, closed)
		}
	}
}

func closer(t *testing.T, s sink.Sink) io.Closer {
	t.Helper()
	c, ok := s.(io.Closer)
	if !ok {
		t.Fatalf("sinktest: Features.Close is on but %T does not implement io.Closer", s)
	}
	return c
}

// sendAfterClose checks that a Send on a closed sink fails promptly with an error wrapping
// sink.ErrClosed, without panicking.
func sendAfterClose(t *testing.T, ctx context.Context, s sink.Sink, e *fanbridge.Event) {
	t.Helper()
	result := make(chan error, 1)
	before := e.Clone()
	go func() { result <- guarded(func() error { return s.Send(ctx, e) }) }()
	select {
	case err := <-result:
		if panicked(t, "Send after Close", err) {
			return
		}
		checkUnchanged(t, "Send after Close", before, e, err)
		if !errors.Is(err, sink.ErrClosed) {
			t.Errorf("sinktest: Send after Close = %s, want an error wrapping sink.ErrClosed", describe(err))
		}
		if retry.IsPermanent(err) {
			t.Errorf("sinktest: Send after Close = %s is permanent; a closed sink is no fault of the event", describe(err))
		}
	case <-ctx.Done():
		t.Fatal("sinktest: Send after Close did not return")
	}
}

func (s *suite) closeRejects(t *testing.T) {
	s.skipUnless(t, s.h.Features.Close, "Close")
	ctx := subtestContext(t)
	in := s.open(t)
	c := closer(t, in.Sink)
	prefix := runPrefix()
	events := numbered(prefix, 10)
	for _, e := range events {
		send(t, ctx, in.Sink, e)
	}
	if err := boundedClose(t, c); err != nil {
		t.Fatalf("sinktest: Close = %s, want nil", describe(err))
	}
	sendAfterClose(t, ctx, in.Sink, numberedEvent(prefix, 100))
	if err := boundedClose(t, c); err != nil && !errors.Is(err, sink.ErrClosed) {
		t.Errorf("sinktest: second Close = %s, want nil or an error wrapping sink.ErrClosed", describe(err))
	}
	if got, ok := s.received(t, ctx, in); ok {
		s.checkArrived(t, events, ofRun(got, prefix))
		s.settle(t, ctx, in, prefix, got)
	}
}

// closeWhileSending closes the sink while goroutines keep sending: every Send that returned nil
// must have arrived, every other one must have failed with an error that is not permanent.
func (s *suite) closeWhileSending(t *testing.T) {
	s.skipUnless(t, s.h.Features.Close, "Close")
	ctx := subtestContext(t)
	in := s.open(t)
	c := closer(t, in.Sink)
	prefix := runPrefix()

	const maxPerWorker = 5000
	type result struct {
		e, before  *fanbridge.Event // before: a clone taken before the Send
		err        error
		afterClose bool // the Send began after Close had returned
	}
	var closed atomic.Bool
	results := make([][]result, workers)
	delivered := make(chan struct{}, workers*maxPerWorker)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range maxPerWorker {
				e := numberedEvent(prefix, w*maxPerWorker+i)
				before := e.Clone()
				afterClose := closed.Load()
				err := guarded(func() error { return in.Sink.Send(ctx, e) })
				results[w] = append(results[w], result{e, before, err, afterClose})
				if err != nil {
					return
				}
				delivered <- struct{}{}
			}
		})
	}
	// Close once some events are through, so Close meets Sends in flight.
	for range workers {
		select {
		case <-delivered:
		case <-ctx.Done():
			t.Fatal("sinktest: no Send completed before the subtest's deadline")
		}
	}
	if err := boundedClose(t, c); err != nil {
		t.Errorf("sinktest: Close while sending = %s, want nil", describe(err))
	}
	closed.Store(true)
	bounded(t, ctx, "Sends racing Close", func() error { wg.Wait(); return nil })

	// A worker may have finished all its Sends before Close began (on a loaded machine), so only
	// the Sends that began after Close returned are bound to fail.
	var acked []*fanbridge.Event
	var panics, modified int
	for w := range results {
		for _, r := range results[w] {
			what := fmt.Sprintf("Send(%q) racing Close", r.e.ID)
			if changedFields(r.before, r.e) != nil {
				// One report tells the sink's author enough.
				if modified++; modified == 1 {
					checkUnchanged(t, what, r.before, r.e, r.err)
				}
			}
			switch {
			case isPanic(r.err):
				if panics++; panics == 1 {
					panicked(t, what, r.err)
				}
			case r.err == nil && r.afterClose:
				t.Errorf("sinktest: Send of %q, begun after Close returned, succeeded", r.e.ID)
			case r.err == nil:
				acked = append(acked, r.e)
			case retry.IsPermanent(r.err):
				t.Errorf("sinktest: Send racing Close = %s is permanent", describe(r.err))
			}
		}
	}
	if panics > 0 || modified > 0 {
		t.Errorf("sinktest: of the Sends racing Close, %d panicked and %d modified the event they were given", panics, modified)
	}
	sendAfterClose(t, ctx, in.Sink, numberedEvent(prefix, -1))
	if got, ok := s.received(t, ctx, in); ok {
		unordered := *s
		unordered.h.Features.Ordered = false
		unordered.checkArrived(t, acked, ofRun(got, prefix))
		s.settle(t, ctx, in, prefix, got)
	}
}

func batcher(t *testing.T, s sink.Sink) sink.Batcher {
	t.Helper()
	b, ok := s.(sink.Batcher)
	if !ok {
		t.Fatalf("sinktest: Features.Batch is on but %T does not implement sink.Batcher", s)
	}
	return b
}

func (s *suite) batchDelivers(t *testing.T) {
	s.skipUnless(t, s.h.Features.Batch, "Batch")
	ctx := subtestContext(t)
	in := s.open(t)
	b := batcher(t, in.Sink)
	if err := trySendBatch(t, ctx, b, nil, "SendBatch of no events"); err != nil {
		t.Errorf("sinktest: SendBatch of no events = %s, want nil", describe(err))
	}
	prefix := runPrefix()
	events := append(fixtures(prefix), numbered(prefix, 20)...)
	if err := trySendBatch(t, ctx, b, events, "SendBatch"); err != nil {
		t.Fatalf("sinktest: SendBatch = %s, want nil", describe(err))
	}
	if got, ok := s.received(t, ctx, in); ok {
		unordered := *s
		unordered.h.Features.Ordered = false // a batch need not arrive in order
		unordered.checkArrived(t, events, ofRun(got, prefix))
		s.settle(t, ctx, in, prefix, got)
	}
}

// checkBatchErrors checks that err gives each of n events an error satisfying ok.
func checkBatchErrors(t *testing.T, err error, n int, ok func(error) bool, want string) {
	t.Helper()
	if err == nil {
		t.Fatal("sinktest: SendBatch = nil, want an error")
	}
	var be *sink.BatchError
	if errors.As(err, &be) && len(be.Errs) != n {
		t.Fatalf("sinktest: SendBatch returned a BatchError with %d errors for %d events", len(be.Errs), n)
	}
	for i := range n {
		if e := sink.EventError(err, i); e == nil || !ok(e) {
			t.Errorf("sinktest: SendBatch's error for event %d = %s, want %s", i, describe(e), want)
		}
	}
}

func (s *suite) batchCanceled(t *testing.T) {
	s.skipUnless(t, s.h.Features.Batch, "Batch")
	ctx := subtestContext(t)
	in := s.open(t)
	b := batcher(t, in.Sink)
	prefix := runPrefix()
	done, cancel := context.WithCancel(ctx)
	cancel()
	events := numbered(prefix, 5)
	err := trySendBatch(t, done, b, events, "SendBatch with a done context")
	checkBatchErrors(t, err, len(events), func(e error) bool {
		return !retry.IsPermanent(e) && errors.Is(e, context.Canceled)
	}, "a non-permanent error wrapping context.Canceled")
	marker := numberedEvent(prefix, 99)
	send(t, ctx, in.Sink, marker)
	if got, ok := s.received(t, ctx, in); ok {
		s.checkArrived(t, []*fanbridge.Event{marker}, ofRun(got, prefix))
		s.settle(t, ctx, in, prefix, got)
	}
}

// batchTransient: a transient failure gives every event of a batch a retryable error, and the
// destination was asked at most once per event: a Batcher does not retry on its own either.
func (s *suite) batchTransient(t *testing.T) {
	s.skipUnless(t, s.h.Features.Batch, "Batch")
	s.skipUnless(t, s.h.Features.TransientFailure, "TransientFailure")
	ctx := subtestContext(t)
	in := s.open(t)
	b := batcher(t, in.Sink)
	prefix := runPrefix()
	send(t, ctx, in.Sink, numberedEvent(prefix, 0))
	heal := in.FailTransient()
	t.Cleanup(heal)
	var before int
	if in.Attempts != nil {
		before = in.Attempts()
	}
	events := numbered(prefix+"-batch", 3)
	err := trySendBatch(t, ctx, b, events, "SendBatch to a failing destination")
	heal()
	if in.Attempts != nil {
		if n := in.Attempts() - before; n > len(events) {
			t.Errorf("sinktest: a failing SendBatch of %d events asked the destination %d times: a sink does not retry on its own", len(events), n)
		}
	}
	checkBatchErrors(t, err, len(events), func(e error) bool {
		return retry.Classify(e) == retry.ClassRetryable && !errors.Is(e, sink.ErrClosed)
	}, "a retryable error")
	marker := numberedEvent(prefix, 99)
	send(t, ctx, in.Sink, marker)
	if got, ok := s.received(t, ctx, in); ok {
		acked := []*fanbridge.Event{numberedEvent(prefix, 0), marker}
		s.checkAfterFailure(t, in, ofRun(got, prefix), acked, events, nil)
		s.settle(t, ctx, in, prefix, got)
	}
}

// batchClosed: a SendBatch after Close gives every event an error wrapping sink.ErrClosed, not
// permanent, and delivers none of them.
func (s *suite) batchClosed(t *testing.T) {
	s.skipUnless(t, s.h.Features.Batch, "Batch")
	s.skipUnless(t, s.h.Features.Close, "Close")
	ctx := subtestContext(t)
	in := s.open(t)
	b := batcher(t, in.Sink)
	c := closer(t, in.Sink)
	prefix := runPrefix()
	first := numberedEvent(prefix, 0)
	send(t, ctx, in.Sink, first)
	if err := boundedClose(t, c); err != nil {
		t.Fatalf("sinktest: Close = %s, want nil", describe(err))
	}
	events := numbered(prefix+"-after", 3)
	err := trySendBatch(t, ctx, b, events, "SendBatch after Close")
	checkBatchErrors(t, err, len(events), func(e error) bool {
		return errors.Is(e, sink.ErrClosed) && !retry.IsPermanent(e)
	}, "a non-permanent error wrapping sink.ErrClosed")
	if got, ok := s.received(t, ctx, in); ok {
		s.checkArrived(t, []*fanbridge.Event{first}, ofRun(got, prefix))
		s.settle(t, ctx, in, prefix, got)
	}
}

func (s *suite) batchPermanent(t *testing.T) {
	s.skipUnless(t, s.h.Features.Batch, "Batch")
	s.skipUnless(t, s.h.Features.PermanentFailure, "PermanentFailure")
	ctx := subtestContext(t)
	in := s.open(t)
	b := batcher(t, in.Sink)
	prefix := runPrefix()
	send(t, ctx, in.Sink, numberedEvent(prefix, 0))
	heal := in.FailPermanent()
	t.Cleanup(heal)
	events := numbered(prefix+"-batch", 3)
	err := trySendBatch(t, ctx, b, events, "SendBatch to a failing destination")
	heal()
	checkBatchErrors(t, err, len(events), retry.IsPermanent, "a permanent error")
	if got, ok := s.received(t, ctx, in); ok {
		s.checkAfterFailure(t, in, ofRun(got, prefix), []*fanbridge.Event{numberedEvent(prefix, 0)}, events, nil)
		s.settle(t, ctx, in, prefix, got)
	}
}

// batchCanceledInFlight is contextCanceledInFlight for SendBatch: a batch waiting for a
// destination that does not answer returns promptly once its context, which has no deadline, is
// canceled, and reports every event failed with an error wrapping context.Canceled that is not
// permanent.
func (s *suite) batchCanceledInFlight(t *testing.T) {
	s.skipUnless(t, s.h.Features.Batch, "Batch")
	s.skipUnless(t, s.h.Features.Hang, "Hang")
	ctx := subtestContext(t)
	in := s.open(t)
	b := batcher(t, in.Sink)
	prefix := runPrefix()
	first := numberedEvent(prefix, 0)
	send(t, ctx, in.Sink, first)

	release := in.Hang()
	t.Cleanup(release) // as in batchHang
	hungCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	watch := watchEnd(hungCtx, batchHangDeadline, fmt.Sprintf("a cancellation %s in", batchHangDeadline))
	timer := time.AfterFunc(batchHangDeadline, cancel)
	defer timer.Stop()
	hung := numbered(prefix+"-hung", 3)
	const what = "SendBatch canceled while the destination does not answer"
	err := trySendBatch(t, hungCtx, b, hung, what)
	watch.check(t, "SendBatch", time.Since(watch.start))
	checkBatchErrors(t, err, len(hung), func(e error) bool {
		return !retry.IsPermanent(e) && errors.Is(e, context.Canceled)
	}, "a non-permanent error wrapping context.Canceled: the caller canceled a batch the destination acknowledged none of")
	release()

	again := numbered(prefix+"-again", 3)
	if err := trySendBatch(t, ctx, b, again, "SendBatch once the destination answers again"); err != nil {
		t.Fatalf("sinktest: SendBatch once the destination answers again = %s, want nil", describe(err))
	}
	if got, ok := s.received(t, ctx, in); ok {
		s.checkAfterFailure(t, in, ofRun(got, prefix), append([]*fanbridge.Event{first}, again...), nil, hung)
		s.settle(t, ctx, in, prefix, got, hung...)
	}
}

// batchHang: a SendBatch to a destination that does not answer returns by its context's
// deadline, and, since the destination acknowledged none of the batch, reports every event as
// failed with an error that is not permanent (retryable or canceled). Once the destination
// answers again, the sink delivers batches again.
func (s *suite) batchHang(t *testing.T) {
	s.skipUnless(t, s.h.Features.Batch, "Batch")
	s.skipUnless(t, s.h.Features.Hang, "Hang")
	ctx := subtestContext(t)
	in := s.open(t)
	b := batcher(t, in.Sink)
	prefix := runPrefix()
	// Deliver one event first, so the hang applies to a sink that is connected and warmed up.
	first := numberedEvent(prefix, 0)
	send(t, ctx, in.Sink, first)

	release := in.Hang()
	t.Cleanup(release) // runs before the sink is closed, so Close has no hung request to wait for
	hungCtx, cancel := context.WithTimeout(ctx, batchHangDeadline)
	defer cancel()
	hung := numbered(prefix+"-hung", 3)
	watch := watchDeadline(hungCtx, batchHangDeadline)
	err := trySendBatch(t, hungCtx, b, hung, "SendBatch to a destination that does not answer")
	watch.check(t, "SendBatch", time.Since(watch.start))
	checkBatchErrors(t, err, len(hung), func(e error) bool {
		c := retry.Classify(e)
		return c == retry.ClassRetryable || c == retry.ClassCanceled
	}, "a retryable or canceled error: the destination acknowledged none of the batch")
	release()

	// Once the destination answers again, the sink works again.
	again := numbered(prefix+"-again", 3)
	if err := trySendBatch(t, ctx, b, again, "SendBatch once the destination answers again"); err != nil {
		t.Fatalf("sinktest: SendBatch once the destination answers again = %s, want nil", describe(err))
	}
	if got, ok := s.received(t, ctx, in); ok {
		s.checkAfterFailure(t, in, ofRun(got, prefix), append([]*fanbridge.Event{first}, again...), nil, hung)
		// The destination may still complete the attempts SendBatch gave up on.
		s.settle(t, ctx, in, prefix, got, hung...)
	}
}
