package fanout

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/dlq"
	"github.com/fanbridge/fanbridge/retry"
	"github.com/fanbridge/fanbridge/sink"
)

// A task's state moves once from queued to one of the others, by compare-and-swap, so that exactly
// one party runs it or answers for it.
const (
	taskQueued    uint32 = iota
	taskStarted          // run by a worker, or inline by its Sync dispatch before being queued
	taskStolen           // taken back from the queue and run by its Sync dispatch
	taskWithdrawn        // given up by its Sync dispatch when the budget ran out; it keeps its slot
	taskReleased         // withdrawn, its slot given back at once: only a ghost is left, as when stolen
)

// task is one event on its way to one sink.
type task struct {
	sink    *sinkState
	e       *fanbridge.Event
	ctx     context.Context // Sync: the dispatch's budget context; Async: the Dispatcher's lifetime
	key     string
	route   string
	arrived time.Time // for the retry policy's age budget
	queue   dlq.Queue // the dead-letter queue of the snapshot the event started with
	snap    *snapshot // Async: that snapshot, which counts the task until it is finished
	state   atomic.Uint32
	g       *group // the Sync dispatch waiting for the task; nil in Async mode
	runBy   uint8  // who runs it: a worker, or the Sync dispatch's own goroutine (runInline, runTaken)
	offload bool   // run by the dispatch's goroutine, with other tasks pending: see deadLetter
	next    *task  // in its ordering lane
	timed   bool   // measure durations (metrics on, or a Result wanted)
	out     SinkResult
}

// attempt is the state of one task's retry loop.
type attempt struct {
	st          *sinkState
	t           *task
	n           int
	first, last time.Time
	lastErr     error // the last attempt's error
	sinkErr     error // the last error that was the sink's, not our own context's
	circuit     bool  // the breaker refused an attempt
	aged        bool  // the age budget was spent when an attempt got its send slot
	replay      error // the inline first attempt's error, handed to the Retrier as its attempt 1
}

// op is one attempt, as the Retrier calls it.
func (a *attempt) op(ctx context.Context) error {
	if err := a.replay; err != nil {
		a.replay = nil
		return err
	}
	st := a.st
	// A slot of the sink's concurrency limit, held for the Send only, not across retry waits.
	select {
	case st.sem <- struct{}{}:
	default:
		// The wait ends with the task's context or, when there is one, the age budget.
		var aged <-chan time.Time
		if st.maxAge > 0 {
			timer := st.d.cfg.clock.NewTimer(st.maxAge - st.d.cfg.clock.Now().Sub(a.t.arrived))
			defer timer.Stop()
			aged = timer.C()
		}
		select {
		case st.sem <- struct{}{}:
		case <-aged:
			a.aged = true
			a.lastErr = fmt.Errorf("fanout: sink %q: no send slot free (Concurrency %d) within MaxAge %v: %w",
				st.name, cap(st.sem), st.maxAge, retry.ErrAgeSpent)
			return retry.Permanent(a.lastErr) // stops the Retrier at once
		case <-ctx.Done():
			// Not the sink's fault, but the reason this attempt failed: remember it, or an
			// attempt that never got a slot would leave nothing to dead-letter with.
			a.lastErr = fmt.Errorf("fanout: sink %q: no send slot free (Concurrency %d): %w", st.name, cap(st.sem), ctx.Err())
			return a.lastErr
		}
	}
	defer func() { <-st.sem }()
	if st.attemptT > 0 {
		// The attempt's time starts now, with its slot: a wait for one is bounded by the task's
		// own context (the dispatch's budget, the age budget below), not charged as a failed
		// attempt of a sink that is only busy.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, st.attemptT)
		defer cancel()
	}
	now := st.d.cfg.clock.Now()
	if st.maxAge > 0 {
		// No attempt starts past the age budget, however long it waited for its slot: the
		// checks before (deliver's, the Retrier's) could not count that wait.
		if age := now.Sub(a.t.arrived); age >= st.maxAge {
			a.aged = true
			a.lastErr = fmt.Errorf("fanout: sink %q: the event waited %v, past MaxAge %v: %w",
				st.name, age.Round(time.Millisecond), st.maxAge, retry.ErrAgeSpent)
			return retry.Permanent(a.lastErr) // stops the Retrier at once
		}
	}
	ok, probe := st.breaker.allow()
	if !ok {
		a.circuit = true
		return errCircuitOpen
	}
	started := now // on the system clock, which Sync budgets run on
	if !st.d.sysClock {
		started = time.Now()
	}
	if a.n == 0 {
		a.first = now
	}
	a.last = now
	a.n++
	if a.n > 1 {
		st.retried()
	}
	var span trace.Span
	if tr := st.d.tel.tracer; tr != nil {
		ctx, span = tr.Start(ctx, "fanout.send", trace.WithSpanKind(trace.SpanKindProducer),
			trace.WithAttributes(attribute.String("fanout.sink", st.name), attribute.Int("fanout.attempt", a.n)))
	}
	err := st.send(ctx, a.t.e)
	if span != nil {
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, "send failed")
		}
		span.End()
	}
	v := healthy
	if err != nil {
		a.lastErr = err
		switch {
		case a.t.ctx.Err() != nil || budgetRanOut(a.t, err):
			v = st.cutVerdict(a.t, started)
		case retry.IsPermanent(err), sink.IsRefused(err):
			a.sinkErr = err // the sink answered: it is up, though a refusal is still retried
		default:
			a.sinkErr = err
			v = sick
		}
	}
	st.breaker.record(v, probe)
	return err
}

// cutVerdict judges an attempt, started at started on the system clock, that its task's context
// cut short. Shutdown and the caller going away say nothing about the sink. A Sync budget running
// out does when the attempt itself had at least half of it, and minHang: without that, a sink that hangs until
// every budget ends (one with no Policy.AttemptTimeout) would never open its breaker, and every
// request would wait out its whole budget for it. An attempt that started late, after retries,
// says nothing.
func (st *sinkState) cutVerdict(t *task, started time.Time) verdict {
	g := t.g
	if g == nil || st.d.stopped.Load() || errors.Is(t.ctx.Err(), context.Canceled) {
		return neutral // no budget, shutdown, or the caller went away
	}
	if elapsed := time.Since(started); elapsed >= g.budget/2 && elapsed >= minHang {
		return sick
	}
	return neutral
}

// budgetRanOut reports whether err, from an attempt whose task's context has not ended yet, is
// that context's deadline all the same: a sink that passes its deadline on (grpcsink sends it as
// grpc-timeout) can hear from the far side that it passed before the context's own timer has
// fired, since that timer runs late on a busy machine and a deadline sent as a duration is
// rounded. Such an attempt was cut by its budget, not failed by the sink.
func budgetRanOut(t *task, err error) bool {
	if !errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	dl, ok := t.ctx.Deadline()
	return ok && time.Until(dl) <= deadlineSlack
}

// deadlineSlack is how early before its context's deadline a sink's deadline error still counts
// as that deadline. An attempt long enough to say something about the sink is judged as any
// attempt its budget cut (see cutVerdict), so the slack only spares attempts that began late.
const deadlineSlack = 20 * time.Millisecond

// minHang is the least time an attempt cut by its Sync budget must have run to count against
// the sink: a caller that came with a few milliseconds left says nothing about a healthy sink.
const minHang = 250 * time.Millisecond

// send calls the sink's Send. A panic there is a bug in the sink, but it must not take the
// process, and every event queued in memory, down with it: it becomes a permanent failure of this
// one delivery, so the event is dead-lettered, and the panic is logged with its stack. An error
// that panics when read (a nil *T returned as an error, whose Error dereferences it) is the same
// bug one step later, where no recover would catch it: on a worker, or in the caller of a Sync
// dispatch. It is replaced here by a permanent error of our own.
func (st *sinkState) send(ctx context.Context, e *fanbridge.Event) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = retry.Permanent(fmt.Errorf("fanout: sink %q panicked: %v", st.name, p))
			st.d.tel.logger.Error("fanout: sink panicked", "sink", st.name, "event_id", e.ID,
				"panic", fmt.Sprint(p), "stack", string(debug.Stack()))
		}
	}()
	err = st.sink.Send(ctx, e)
	if err != nil {
		if p, stack := readErr(err); p != nil {
			// Neither the error's text nor the panic's goes into the replacement: the first
			// cannot be read, and the second may quote what the sink holds.
			typ := fmt.Sprintf("%T", err)
			err = retry.Permanent(fmt.Errorf("fanout: sink %q returned an error (%s) that panics when read", st.name, typ))
			st.d.tel.logger.Error("fanout: sink returned an error that panics when read", "sink", st.name,
				"event_id", e.ID, "error_type", typ, "panic", fmt.Sprint(p), "stack", stack)
		}
	}
	return err
}

// readErr asks of err, under recover, all that a delivery later asks of an error from a sink or
// a dead-letter queue: its text, and whether its chain of Unwrap, Is and As methods holds a
// permanent mark, a wait, a cancellation, a sink.Refused mark or a retry.Error. It returns what
// panicked, if anything, and where.
func readErr(err error) (p any, stack string) {
	defer func() {
		if p = recover(); p != nil {
			stack = string(debug.Stack())
		}
	}()
	_ = err.Error()
	_ = retry.Classify(err) // a permanent mark, then context.Canceled
	_, _ = retry.RetryAfter(err)
	_ = sink.IsRefused(err)
	var re *retry.Error
	_ = errors.As(err, &re)
	return nil, ""
}

// deliver runs t's retry loop and, when it ends without delivery, dead-letters the event. The
// first attempt runs without the Retrier, so that the common case (delivered at once) costs no
// Retrier call and one clock reading.
func (st *sinkState) deliver(t *task) SinkResult {
	d := st.d
	if st.maxAge > 0 {
		// No attempt starts past the age budget, counted from arrival: an event that waited in
		// the queue that long is dead-lettered without one.
		if now := d.cfg.clock.Now(); now.Sub(t.arrived) >= st.maxAge {
			cause := fmt.Errorf("fanout: sink %q: the event waited %v, past MaxAge %v: %w",
				st.name, now.Sub(t.arrived).Round(time.Millisecond), st.maxAge, retry.ErrAgeSpent)
			return st.deadLetter(t, dlq.ConditionAge, 0, now, now, cause, now)
		}
	}
	a := attempt{st: st, t: t}
	err := st.firstAttempt(&a)
	if err == nil {
		return st.delivered(t, &a)
	}
	if t.ctx.Err() == nil && !retry.IsPermanent(err) {
		a.replay = err
		err = st.retrier.Do(t.ctx, a.op, retry.Since(t.arrived), retry.EndBeforeDeadline())
		if err == nil {
			return st.delivered(t, &a)
		}
	}
	if a.n == 0 {
		a.first = d.cfg.clock.Now()
		a.last = a.first
	}
	// Why did it stop?
	var cond dlq.Condition
	var re *retry.Error
	switch {
	case a.circuit:
		cond = dlq.ConditionCircuitOpen
	case a.aged:
		cond = dlq.ConditionAge
	case retry.IsPermanent(err):
		cond = dlq.ConditionPermanent
	case errors.As(err, &re) && re.Reason == retry.ReasonAttempts:
		cond = dlq.ConditionAttempts
	case errors.As(err, &re) && re.Reason == retry.ReasonAge:
		cond = dlq.ConditionAge
	default: // the task's context ended, or would have before the next attempt (EndBeforeDeadline)
		if !d.deadLetterOnCancel(t) {
			return st.failed(t, a.n, a.lastErr, a.first, "", nil)
		}
		cond = dlq.ConditionAge
	}
	cause := a.sinkErr
	if cause == nil {
		switch {
		case a.circuit:
			cause = ErrCircuitOpen
		case d.stopped.Load():
			cause = ErrShutdown
		case a.lastErr != nil:
			cause = a.lastErr
		case t.ctx.Err() != nil:
			cause = t.ctx.Err()
		default:
			cause = err // the Retrier's own account
		}
	}
	return st.deadLetter(t, cond, a.n, a.first, a.last, cause, a.first)
}

// firstAttempt runs attempt 1 (op applies the per-attempt timeout once it holds a send slot).
func (st *sinkState) firstAttempt(a *attempt) error {
	return a.op(a.t.ctx)
}

func (st *sinkState) delivered(t *task, a *attempt) SinkResult {
	d := st.d
	var dur time.Duration
	if t.timed {
		dur = d.cfg.clock.Now().Sub(a.first)
		d.tel.latency.Record(t.ctx, dur.Seconds(), st.recOpts...)
	}
	st.count.delivered.Add(1)
	d.tel.delivered.Add(t.ctx, 1, st.addOpts...)
	return SinkResult{Sink: st.name, Route: t.route, Outcome: Delivered, Attempts: a.n, Duration: dur}
}

// deadLetterOnCancel decides what a delivery cut short by its context becomes. Our own budget and
// our own shutdown dead-letter the event (the sender is told "done", so we must keep it); the
// caller's cancellation (the client went away) does not: the dispatch fails, the sender retries,
// and deduplication sends the retry only to the sinks that lack the event.
func (d *Dispatcher) deadLetterOnCancel(t *task) bool {
	if d.stopped.Load() || t.g == nil {
		return true
	}
	return !errors.Is(t.g.parent.Err(), context.Canceled)
}

// abandon gives an outcome to a task its dispatch withdrew before any worker started it.
func (st *sinkState) abandon(t *task) SinkResult {
	d := st.d
	start := d.cfg.clock.Now()
	if !d.deadLetterOnCancel(t) {
		return st.failed(t, 0, t.g.parent.Err(), start, "", nil)
	}
	cause := t.ctx.Err()
	if d.stopped.Load() {
		cause = ErrShutdown
	}
	return st.deadLetter(t, dlq.ConditionAge, 0, start, start, cause, start)
}

func (st *sinkState) failed(t *task, n int, err error, start time.Time, cond dlq.Condition, dlqErr error) SinkResult {
	d := st.d
	st.count.failed.Add(1)
	d.tel.failed.Add(context.Background(), 1, st.addOpts...)
	return SinkResult{Sink: st.name, Route: t.route, Outcome: Failed, Attempts: n, Err: err, Condition: cond,
		DeadLetterErr: dlqErr, Duration: d.cfg.clock.Now().Sub(start)}
}

// Who runs a task of a Sync dispatch other than a worker.
const (
	runInline = 1 + iota // the dispatch's own goroutine, the task it keeps
	runTaken             // the dispatch's own goroutine, a task it took back from the queue
)

// outcomeOffloaded is what deliver returns to the Sync dispatch's goroutine for a task whose
// dead-letter write went to a goroutine of its own, which finishes the task.
const outcomeOffloaded Outcome = "offloaded"

// deadLetter writes one entry for (t.e, this sink). The write runs under a context detached from
// the task's cancellation, bounded by the DLQ timeout (and, once Close's deadline has passed, by
// the drain: see dlqContext), and is retried with backoff within that bound.
//
// A task the Sync dispatch's goroutine runs while other tasks of the dispatch are pending
// (t.offload) has its write made beside it (see Dispatcher.aside), which then finishes the task
// as that goroutine would have, and outcomeOffloaded is returned: the dispatch's goroutine must
// not wait for it, as it alone withdraws the queued tasks once the budget ends (or Close's
// deadline comes), and their writes must run beside this one, not after it. Past Close's
// deadline, the dispatch's goroutine hands its other writes to the drain too, and waits for them:
// the writes of Sync dispatches then keep within the drain's width, however many there are.
func (st *sinkState) deadLetter(t *task, cond dlq.Condition, n int, first, last time.Time, cause error, start time.Time) SinkResult {
	if t.runBy == 0 {
		return st.writeDeadLetter(t, cond, n, first, last, cause, start)
	}
	d := st.d
	if t.offload {
		t.offload = false
		g, runBy := t.g, t.runBy
		d.aside(func() {
			out := st.writeDeadLetter(t, cond, n, first, last, cause, start)
			st.reserved.Add(-1)
			d.complete(t, out)
			if runBy == runInline {
				d.unref(g) // the hold it would have had in a queue
			}
		})
		return SinkResult{Outcome: outcomeOffloaded}
	}
	if d.stopped.Load() {
		done := make(chan SinkResult, 1)
		d.drain.Load().do(func() { done <- st.writeDeadLetter(t, cond, n, first, last, cause, start) })
		return <-done
	}
	return st.writeDeadLetter(t, cond, n, first, last, cause, start)
}

// writeDeadLetter is deadLetter's write, made where it is called.
func (st *sinkState) writeDeadLetter(t *task, cond dlq.Condition, n int, first, last time.Time, cause error, start time.Time) SinkResult {
	d := st.d
	if cause == nil {
		cause = errors.New("fanout: delivery failed for no recorded reason") // never expected
	}
	if t.queue == nil {
		return st.failed(t, n, cause, start, cond, ErrNoDLQ)
	}
	entry := dlq.Entry{
		ID:           dlq.NewID(), // ours, so that the log line below can name it
		Event:        *t.e,
		Sink:         st.name,
		Route:        t.route,
		Class:        retry.Classify(cause),
		Error:        dlq.TruncateError(cause.Error()),
		Attempts:     n,
		FirstAttempt: first,
		LastAttempt:  last,
		Condition:    cond,
		TraceID:      traceID(t.ctx, t.e),
	}
	ctx, cancel := d.dlqContext(t.ctx)
	d.dlqWriting.Add(1)
	err := d.dlqRetrier.Do(ctx, func(ctx context.Context) error { return putEntry(ctx, t.queue, &entry) })
	d.dlqWriting.Add(-1)
	cancel()
	if err != nil {
		var re *retry.Error
		if errors.As(err, &re) {
			err = re.Last
		}
		if d.tel.logger.Enabled(context.Background(), slog.LevelError) {
			d.tel.logger.Error("fanout: dead-letter write failed", "event_id", t.e.ID, "sink", st.name,
				"route", t.route, "condition", string(cond), "error", err)
		}
		return st.failed(t, n, cause, start, cond, fmt.Errorf("%w: %w", ErrDLQ, err))
	}
	if dr := d.drain.Load(); dr != nil {
		dr.progress()
	}
	st.count.deadLettered.Add(1)
	d.tel.deadLettered.Add(context.Background(), 1, st.addOpts...)
	dur := d.cfg.clock.Now().Sub(start)
	d.tel.latency.Record(context.Background(), dur.Seconds(), st.recOpts...)
	if d.tel.logger.Enabled(context.Background(), slog.LevelWarn) {
		d.tel.logger.Warn("fanout: event dead-lettered", "event_id", t.e.ID, "entry_id", entry.ID, "sink", st.name, "route", t.route,
			"condition", string(cond), "attempts", n, "class", string(entry.Class), "error", entry.Error)
	}
	return SinkResult{Sink: st.name, Route: t.route, Outcome: DeadLettered, Attempts: n, Err: cause, Condition: cond,
		Duration: dur}
}

// putEntry writes entry to q. A panic in the queue's Put becomes a permanent failure of this
// write, as a panic in a Send does: it may run on a sink's worker, where it would end the process
// and lose every event queued in memory. So does an error from Put that panics when read.
func putEntry(ctx context.Context, q dlq.Queue, entry *dlq.Entry) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = retry.Permanent(fmt.Errorf("dead-letter queue panicked: %v", p))
		}
	}()
	err = q.Put(ctx, *entry)
	if err != nil {
		if p, _ := readErr(err); p != nil {
			err = retry.Permanent(fmt.Errorf("dead-letter queue returned an error (%T) that panics when read", err))
		}
	}
	return err
}

// dlqContext returns the context of a dead-letter write: never cancelled by the dispatch, and
// bounded by the DLQ timeout; once Close's deadline has passed, also ended with the drain, when
// the dead-letter queue has taken nothing for that long.
func (d *Dispatcher) dlqContext(ctx context.Context) (context.Context, context.CancelFunc) {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.cfg.dlqTimeout)
	if dr := d.drain.Load(); dr != nil {
		stop := context.AfterFunc(dr.ctx, cancel)
		return wctx, func() {
			stop()
			cancel()
		}
	}
	return wctx, cancel
}
