package fanout

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/retry"
	"github.com/fanbridge/fanbridge/sink"
)

// closeGrace is how long Close waits, once the dead-letter queue has taken nothing for the DLQ
// timeout after Close's deadline, for deliveries to notice cancellation before it gives up on
// them.
const closeGrace = 100 * time.Millisecond

// Dispatcher routes each event to the sinks of the routes that match it and delivers it to each
// sink on its own: with the sink's retry policy, concurrency limit, queue and circuit breaker, and
// to the dead-letter queue when a sink cannot take it. See the package documentation for the
// delivery semantics. A Dispatcher is safe for concurrent use.
//
// Several intakes sharing one Dispatcher should each dispatch under their own WithDedupScope, or a
// sender authenticated for one can make another's events look like duplicates.
type Dispatcher struct {
	cfg        config
	snap       atomic.Pointer[snapshot]
	updateMu   sync.Mutex // serialises New/Update/SetRoutes/Close on the snapshot
	dedup      DedupStore
	claims     *claims
	tel        *telemetry
	dlqRetrier *retry.Retrier
	groups     sync.Pool
	tasks      sync.Pool
	timed      bool // a meter provider is set: measure delivery durations
	sysClock   bool // the clock is the system clock: time.Now readings can be shared with it
	// handOutHook, when set (by the tests only, before the first dispatch), runs once a dispatch
	// has begun handing its event out: it lets them hold one there.
	handOutHook func(*fanbridge.Event)

	// life is the context of Async deliveries; Close cancels it at its deadline.
	life     context.Context
	endLife  context.CancelFunc
	stopOnce sync.Once
	stopped  atomic.Bool
	// drain, set once Close's deadline has passed (before stopped), dead-letters what is left.
	drain atomic.Pointer[drain]
	// dlqWriting counts the dead-letter writes under way, for Close's report.
	dlqWriting atomic.Int64
	reg        registry

	sinkMu sync.Mutex
	// live holds, for each key (see closeKey), the running sinkStates counted under it.
	live map[any]*liveSink
	// newest holds, with ordering keys on, the latest sinkState started under each name until
	// its workers are done, even once an Update removed it: a sink of that name added again
	// later waits for it (see sinkState.after).
	newest map[string]*sinkState
	// counts holds, for each name with sinkStates started and whose workers are not done, the
	// counters they all share (see sinkState.count), which count them too: the entry goes once
	// the last of them has stopped, so that no name is kept across Updates. It follows every
	// sink of the name rather than the latest one, because without ordering keys they stop in
	// any order: a sink an Update changes and then removes can stop, holding nothing, while the
	// one it replaced still finishes its events, whose outcomes must still count where a sink
	// of the name added again counts its own.
	counts map[string]*counters
	// running holds every sinkState started and whose workers are not done, so that the drain
	// finds the backlog of sinks an Update removed as well as of the current ones, and the
	// queue-depth gauge and Stats count it (see Dispatcher.backlogs).
	running  map[*sinkState]struct{}
	retiring sync.WaitGroup
	// retired numbers the configurations handed to retire, in the order they were replaced
	// (Close's own last); guarded by updateMu. See closeFailure.
	retired uint64

	errMu    sync.Mutex
	sinkErrs []closeFailure // from closing sinks
	closing  map[string]int // sinks whose Close is running, by name
	lost     int64          // Async deliveries neither delivered nor dead-lettered
	lastLost error

	// sinkLife bounds every wait for a sink's close (see closeSink): Close ends it, past its
	// deadline, once the dead-letter queue has taken nothing for the DLQ timeout, just before it
	// gives up waiting. closeBegun is set once Close has begun: from then on, sinkLife alone
	// bounds the closes that begin.
	sinkLife    context.Context
	endSinkLife context.CancelFunc
	closeBegun  atomic.Bool

	closeOnce sync.Once
	closeErr  error

	// handingOut counts the dispatches handing their tasks to the sinks right now: from the
	// check that Close's deadline has not passed (see beginHandOut) to the last task given to a
	// queue or lane. The caller's code (DedupStore, filters, ordering function, clock, context,
	// meter) runs before or after, never in between, and nothing in between waits; should a
	// dispatch panic there all the same, a deferred check ends its count. The drain does not end
	// while one is counted, so that a dispatch either is refused or has its tasks written by the
	// drain. Every dispatch writes it: it comes last, away from the fields that deliveries read.
	handingOut atomic.Int64
}

// New returns a Dispatcher over cfg's sinks and routes, with its workers running. It checks the
// whole configuration first and names the route or sink at fault; on error nothing is started.
func New(cfg Config, opts ...Option) (*Dispatcher, error) {
	c := defaultConfig()
	for _, o := range opts {
		o.apply(&c)
	}
	switch {
	case c.mode != Sync && c.mode != Async:
		return nil, fmt.Errorf("%w: unknown mode %d", ErrInvalidConfig, c.mode)
	case c.budget <= 0:
		return nil, fmt.Errorf("%w: budget %v is not positive", ErrInvalidConfig, c.budget)
	case c.dlqReserve < 0:
		return nil, fmt.Errorf("%w: DLQ reserve %v is negative", ErrInvalidConfig, c.dlqReserve)
	case c.dlqTimeout <= 0:
		return nil, fmt.Errorf("%w: DLQ timeout %v is not positive", ErrInvalidConfig, c.dlqTimeout)
	case c.overloadAfter < 0:
		return nil, fmt.Errorf("%w: overload retry-after %v is negative", ErrInvalidConfig, c.overloadAfter)
	case c.clock == nil:
		return nil, fmt.Errorf("%w: nil clock", ErrInvalidConfig)
	}
	d := &Dispatcher{cfg: c, claims: newClaims(), live: make(map[any]*liveSink), newest: make(map[string]*sinkState),
		counts: make(map[string]*counters), running: make(map[*sinkState]struct{}), closing: map[string]int{},
		timed: c.meters != nil, sysClock: c.clock == retry.SystemClock}
	d.groups.New = func() any { return &group{done: make(chan struct{}, 1)} }
	d.tasks.New = func() any { return new(task) }
	if c.dedupSet {
		d.dedup = c.dedup
	} else {
		m, err := NewMemoryDedup(DefaultDedupWindow, DefaultDedupEntries, WithDedupClock(c.clock))
		if err != nil {
			return nil, err
		}
		d.dedup = m
	}
	var err error
	if d.dlqRetrier, err = retry.New(retry.Policy{InitialInterval: 20 * time.Millisecond,
		MaxInterval: 500 * time.Millisecond, MaxAttempts: -1}); err != nil {
		return nil, err
	}
	if d.tel, err = newTelemetry(&c, d); err != nil {
		return nil, err
	}
	s, fresh, err := d.build(cfg, nil)
	if err != nil {
		d.tel.close()
		return nil, err
	}
	d.life, d.endLife = context.WithCancel(context.Background())
	d.sinkLife, d.endSinkLife = context.WithCancel(context.Background())
	d.updateMu.Lock()
	d.commit(nil, s, fresh)
	d.updateMu.Unlock()
	return d, nil
}

// Dispatch delivers e to the sinks of every route that matches it, in the Dispatcher's Mode. It
// implements the Dispatcher interface of package eventbridge.
//
// It returns nil when every matched sink has the event, or the dead-letter queue has it for each
// sink that failed (Async: when every matched sink's queue has accepted it); an error wrapping
// fanbridge.ErrNoMatch when no route matched; fanbridge.ErrDuplicate when an event with the same
// ID was already handled within the deduplication window; fanbridge.ErrOverloaded, wrapped with
// retry.After, when a matched sink's queue is full (then no sink got the event); fanbridge.ErrClosed
// once Close has begun, and for a dispatch begun before that reaches the hand-out of the event to
// the sinks only once Close's deadline has passed (held in its DedupStore, a route's filter or
// the ordering-key function: then no sink got the event, and nothing is recorded for its ID);
// and otherwise a non-nil error (a *DeliveryError when some sink failed and the dead-letter
// queue is missing or refused the entry): the sender must retry. For the outcome at each sink,
// use Deliver.
//
// e must not be modified while Dispatch runs, nor, in Async mode, afterwards: the workers still
// read it.
func (d *Dispatcher) Dispatch(ctx context.Context, e *fanbridge.Event) error {
	return d.dispatch(ctx, e, d.cfg.mode, nil)
}

// Queues reports whether Dispatch returns nil once the event is queued, before it is delivered:
// true in Async mode. It implements eventbridge.Queuer, so that a Handler in front of an Async
// Dispatcher answers the sender "queued", not "delivered". The mode is set by New and never
// changes.
func (d *Dispatcher) Queues() bool { return d.cfg.mode == Async }

// Deliver is Dispatch in Sync mode, whatever the Dispatcher's mode, reporting the outcome at each
// matched sink. Its error is the one Dispatch would return in Sync mode.
//
// The eventbridge contract fixes Dispatch's signature, so the per-sink result lives here; an
// intake that wants it (to log or answer in detail) can call Deliver instead of Dispatch.
func (d *Dispatcher) Deliver(ctx context.Context, e *fanbridge.Event) (Result, error) {
	var r Result
	err := d.dispatch(ctx, e, Sync, &r)
	return r, err
}

func (d *Dispatcher) dispatch(ctx context.Context, e *fanbridge.Event, mode Mode, res *Result) (err error) {
	if e == nil {
		return errNilEvent
	}
	if !e.Time.IsZero() {
		if y := e.Time.UTC().Year(); y < 1 || y > 9999 {
			// No dead-letter entry can hold such a time (dlq.Prepare), nor the sinks' formats:
			// once accepted, the event could be neither delivered nor dead-lettered.
			return retry.Permanent(fmt.Errorf("fanout: event %q: time %v is outside the years 0001 to 9999", e.ID, e.Time.UTC()))
		}
	}
	if res != nil {
		res.ID = e.ID
	}
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("fanout: %w", cerr)
	}
	if tr := d.tel.tracer; tr != nil {
		var span trace.Span
		ctx, span = tr.Start(parentContext(ctx, e), "fanout.dispatch", trace.WithSpanKind(trace.SpanKindInternal),
			trace.WithAttributes(attribute.String("fanout.event.id", e.ID), attribute.String("fanout.event.type", e.Type)))
		defer func() {
			// An event no route wants, or one already handled, is a dispatch that did its job:
			// an attribute says which, where an exception event would mark the span as failed.
			switch {
			case err == nil:
			case errors.Is(err, fanbridge.ErrNoMatch):
				span.SetAttributes(attribute.String("fanout.outcome", "ignored"))
			case errors.Is(err, fanbridge.ErrDuplicate):
				span.SetAttributes(attribute.String("fanout.outcome", "duplicate"))
			default:
				span.RecordError(err)
				span.SetStatus(codes.Error, "dispatch failed")
			}
			span.End()
		}()
	}

	var key string // empty when deduplication is off, for this event or at all
	if d.dedup != nil && e.ID != "" {
		// Claimed before the configuration is taken: a dispatch waiting for the claim must not
		// hold an old configuration, whose removed sinks' queues close only once every dispatch
		// on it has handed its tasks out, while the claim's holder waits on a sink an Update
		// rebuilt behind one of them.
		key = scopedDedupKey(ctx, e)
		if cerr := d.claims.acquire(ctx, key); cerr != nil {
			return retry.After(fmt.Errorf("%w: %w", ErrInFlight, cerr), d.cfg.overloadAfter)
		}
		defer d.claims.release(key)
	}

	s := d.acquire()
	if s == nil {
		return errClosed
	}
	defer s.release()
	handing := true  // until the tasks are handed out (see snapshot.handing)
	counted := false // in handingOut: from beginHandOut to endHandOut
	defer func() {
		// On every return, and on a panic: a dispatch left counted would keep the drain, and
		// so Close, from ever ending.
		if counted {
			d.endHandOut()
		}
		if handing {
			s.handed()
		}
	}()

	g := d.newGroup(len(s.sinks))
	defer d.unref(g)
	if !s.match(ctx, e, g, d.tel) || len(g.targets) == 0 {
		return errNoMatch
	}

	if key != "" {
		rec, seen, serr := d.dedup.Seen(ctx, key)
		if serr != nil {
			// Delivering again is safer than dropping: at least once, never at most once.
			d.tel.logger.Warn("fanout: dedup lookup failed; delivering", "event_id", e.ID, "error", serr)
		}
		if seen {
			all := true
			for i := range g.targets {
				if rec.has(g.targets[i].sink.name) {
					g.targets[i].skip = true
				} else {
					all = false
				}
			}
			if all {
				if !rec.Complete {
					d.record(ctx, key, DedupRecord{Complete: true})
				}
				if res != nil {
					for _, tg := range g.targets {
						res.Sinks = append(res.Sinks, SinkResult{Sink: tg.sink.name, Route: tg.route, Outcome: SkippedDuplicate})
					}
				}
				return errDuplicate
			}
		}
	}

	// The user's ordering function runs before any slot is taken, so that a panic in it leaks none.
	order := d.orderingKey(e)

	if mode != Async {
		handing = false // deliverSync says when, once its tasks are queued
		return d.deliverSync(ctx, s, g, e, key, order, res)
	}
	// What the hand-out needs from the caller's code (the clock, the context's span) is read
	// before it begins: nothing in it may wait or panic (see handingOut).
	arrived := d.cfg.clock.Now()
	tctx := d.taskContext(ctx)
	// The caller's code (the DedupStore, the routes' filters, the ordering function) may have held
	// the dispatch past Close's deadline, even past Close's return: then the event is refused, as
	// a new one would be, rather than handed to a drain that may have ended.
	if !d.beginHandOut() {
		return errClosed
	}
	counted = true
	if d.handOutHook != nil {
		d.handOutHook(e)
	}
	if err := g.reserve(); err != nil {
		return err
	}
	d.enqueue(s, g, e, tctx, arrived, order)
	counted = false
	d.endHandOut()
	handing = false
	s.handed() // before the caller's DedupStore runs again
	// The meter is the caller's code too: it counts the event once it is handed out.
	s.countMatched(ctx, g, d.tel, nil)
	if key != "" {
		d.record(ctx, key, DedupRecord{Complete: true})
	}
	return nil
}

// reserve takes a slot in the queue of every sink g hands the event to, or none, and then
// returns the first full queue's error: all or nothing, so that a refused event is not half
// delivered and then duplicated by the sender's retry.
func (g *group) reserve() error {
	for i := range g.targets {
		tg := &g.targets[i]
		if tg.skip || tg.sink.reserve() {
			continue
		}
		for _, prev := range g.targets[:i] {
			if !prev.skip {
				prev.sink.reserved.Add(-1)
			}
		}
		return tg.sink.errOverloaded
	}
	return nil
}

// beginHandOut counts the dispatch in handingOut, unless Close's deadline has passed: then it
// reports false, and the dispatch must give up. The count comes first, so that stop, which sets
// stopped before the drain starts watching the count, cannot miss a dispatch that found stopped
// unset: either the dispatch sees stopped, or the drain sees the dispatch.
func (d *Dispatcher) beginHandOut() bool {
	d.handingOut.Add(1)
	if d.stopped.Load() {
		d.handingOut.Add(-1)
		return false
	}
	return true
}

// endHandOut ends the dispatch's count in handingOut: its tasks are in the sinks' queues and
// lanes (or, past the deadline, with the drain). When the deadline passed meanwhile, the drain's
// idle time restarts first, so that these tasks get the whole DLQ timeout, as the backlog did at
// the deadline, before the drain can give up.
func (d *Dispatcher) endHandOut() {
	if d.stopped.Load() {
		d.drain.Load().received()
	}
	d.handingOut.Add(-1)
}

func (d *Dispatcher) orderingKey(e *fanbridge.Event) string {
	if d.cfg.orderingKey == nil {
		return ""
	}
	return d.cfg.orderingKey(e)
}

// taskContext is the context an Async dispatch's tasks run under. The span the dispatch runs
// under (the Dispatcher's own, or an intake's when the Dispatcher does not trace) is the parent of
// the sink attempts and names the trace of dead letters, as in Sync mode, where the tasks run
// under the dispatch's context.
func (d *Dispatcher) taskContext(ctx context.Context) context.Context {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		return trace.ContextWithSpanContext(d.life, sc)
	}
	return d.life
}

// enqueue hands the event to every reserved sink's queue (Async), under tctx (see taskContext).
func (d *Dispatcher) enqueue(s *snapshot, g *group, e *fanbridge.Event, tctx context.Context, arrived time.Time, order string) {
	for _, tg := range g.targets {
		if tg.skip {
			continue
		}
		t := d.tasks.Get().(*task)
		t.sink, t.e, t.ctx, t.key, t.route, t.arrived, t.queue, t.g = tg.sink, e, tctx, order, tg.route, arrived, s.dlq, nil
		t.timed = d.timed
		t.snap = s
		s.async.Add(1)
		t.state.Store(taskQueued)
		tg.sink.submit(t)
	}
}

// deliverSync reserves a slot in every matched sink's queue, hands the event to the sinks'
// workers and waits for the outcomes. It says when the tasks are handed out (s.handed), as
// dispatch does in Async mode. dedupKey is empty when deduplication is off.
func (d *Dispatcher) deliverSync(ctx context.Context, s *snapshot, g *group, e *fanbridge.Event, dedupKey, order string, res *Result) error {
	handing, counted := true, false // as in dispatch
	defer func() {
		if counted {
			d.endHandOut()
		}
		if handing {
			s.handed()
		}
	}()
	// What the hand-out needs from the caller's code (the context's deadline and cancellation,
	// the clock) is read before it begins: nothing in it may wait or panic (see handingOut).
	now := time.Now()
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = now.Add(d.cfg.budget)
	}
	reserve := min(d.cfg.dlqReserve, deadline.Sub(now)/2)
	gctx, cancel := context.WithDeadline(ctx, deadline.Add(-reserve))
	defer cancel()
	arrived := now
	if !d.sysClock {
		arrived = d.cfg.clock.Now()
	}

	// As in dispatch: a dispatch held in the caller's code past Close's deadline is refused.
	if !d.beginHandOut() {
		return errClosed
	}
	counted = true
	if d.handOutHook != nil {
		d.handOutHook(e)
	}
	if err := g.reserve(); err != nil {
		return err
	}
	g.ctx, g.parent, g.cancel = gctx, ctx, cancel
	g.budget = deadline.Sub(now) - reserve
	d.register(g)
	defer d.unregister(g)

	timed := d.timed || res != nil
	n := 0
	for i := range g.targets {
		if !g.targets[i].skip {
			n++
		}
	}
	if cap(g.tasks) < n {
		g.tasks = make([]task, n)
	}
	g.tasks = g.tasks[:n]
	g.pending.Store(int32(n))
	g.refs.Add(int32(n))
	// Every task but one goes to its sink's workers at once, so that each sink starts without
	// waiting for the others. The first unordered one runs right here, on the caller's goroutine,
	// which would otherwise only wait: one hand-off fewer.
	inline := -1
	j := 0
	for _, tg := range g.targets {
		if tg.skip {
			continue
		}
		t := &g.tasks[j]
		t.sink, t.e, t.ctx, t.key, t.route, t.arrived, t.queue, t.g = tg.sink, e, gctx, order, tg.route, arrived, s.dlq, g
		t.timed = timed
		if inline < 0 && order == "" {
			inline = j
			t.state.Store(taskStarted)
		} else {
			t.state.Store(taskQueued)
			tg.sink.submit(t)
		}
		j++
	}
	counted = false
	d.endHandOut()
	handing = false
	s.handed()
	// A task this goroutine runs whose dead-letter write it would have to make while other tasks
	// are pending hands the write aside (see sinkState.deadLetter): this one must get to the
	// select below, which withdraws the queued tasks as soon as gctx ends, so that their writes
	// run beside that one rather than after it.
	offload := n > 1
	if inline >= 0 {
		t := &g.tasks[inline]
		t.runBy = runInline
		t.offload = offload
		if out := t.sink.deliver(t); out.Outcome != outcomeOffloaded {
			t.sink.reserved.Add(-1)
			d.complete(t, out)
			d.unref(g) // the hold it would have had in a queue
		}
	}
	// Then the caller takes back whatever no worker has started yet (workers may be slow to
	// wake on a busy machine), one task at a time, so that a task it runs never holds up one a
	// worker could take meanwhile. Ordered tasks stay with their lanes.
	if order == "" {
		for j := range g.tasks {
			t := &g.tasks[j]
			if j == inline || gctx.Err() != nil || !t.sink.takeBack(t) {
				continue
			}
			t.runBy = runTaken
			t.offload = offload
			if out := t.sink.deliver(t); out.Outcome != outcomeOffloaded {
				t.sink.reserved.Add(-1)
				d.complete(t, out)
			}
		}
	}

	select {
	case <-g.done:
	case <-gctx.Done():
		// Tasks no worker has started yet get their outcome here, now: a sink whose queue is
		// long must not hold the answer past the budget, nor past Close's deadline.
		d.withdrawQueued(g)
		<-g.done
	}
	failed := 0
	for j := range g.tasks {
		if g.tasks[j].out.Outcome == Failed {
			failed++
		}
	}
	// The meter is the caller's code: it counts the event once it is handed out, and once a
	// panic in it can leave no task behind.
	switch {
	case failed == 0:
		s.countMatched(ctx, g, d.tel, nil)
	case dedupKey != "":
		// The sender's retry goes only to the sinks that failed (the dedup record says which
		// have the event): routes whose sinks all have it are counted now, the others by it.
		failedTargets := make([]bool, len(g.targets))
		j := 0
		for i, tg := range g.targets {
			if tg.skip {
				continue
			}
			failedTargets[i] = g.tasks[j].out.Outcome == Failed
			j++
		}
		s.countMatched(ctx, g, d.tel, failedTargets)
	}
	// Without deduplication the retry goes to every sink again, and counts every route then.
	if res != nil {
		res.Sinks = make([]SinkResult, 0, len(g.targets))
		j := 0
		for _, tg := range g.targets {
			if tg.skip {
				res.Sinks = append(res.Sinks, SinkResult{Sink: tg.sink.name, Route: tg.route, Outcome: SkippedDuplicate})
				continue
			}
			res.Sinks = append(res.Sinks, g.tasks[j].out)
			j++
		}
	}
	if failed == 0 {
		if dedupKey != "" {
			d.record(ctx, dedupKey, DedupRecord{Complete: true})
		}
		return nil
	}

	derr := &DeliveryError{ID: e.ID, Failed: make([]SinkResult, 0, failed)}
	var have []string
	var wait time.Duration // the longest wait a failed sink asked for, within its policy's cap
	j = 0
	for _, tg := range g.targets {
		if tg.skip {
			have = append(have, tg.sink.name)
			continue
		}
		out := g.tasks[j].out
		j++
		if out.Outcome != Failed {
			have = append(have, out.Sink)
			continue
		}
		// A wait on a refusal (sink.Refused) parts the events of a batch the destination refused
		// (kafkasink's); it asks nothing of the sender, whose retry comes when the intake's own
		// default says.
		if d, ok := retry.RetryAfter(out.Err); ok && !sink.IsRefused(out.Err) {
			wait = max(wait, min(d, tg.sink.retrier.Policy().MaxRetryAfter))
		}
		derr.Failed = append(derr.Failed, out)
		cause := out.DeadLetterErr
		switch {
		case errors.Is(cause, ErrNoDLQ):
			cause = ErrNoDLQ
		case errors.Is(cause, ErrDLQ):
			cause = ErrDLQ
		case cause == nil:
			cause = context.Canceled
		}
		if !containsErr(derr.causes, cause) {
			derr.causes = append(derr.causes, cause)
		}
	}
	if wait > 0 {
		// The sender's retry is worth making only once the sink's wait is over: an intake
		// reads it with retry.RetryAfter (the eventbridge Handler's Retry-After).
		derr.causes = append(derr.causes, retry.After(errSinkWait, wait))
	}
	if dedupKey != "" && len(have) > 0 {
		d.record(ctx, dedupKey, DedupRecord{Sinks: have})
	}
	return derr
}

func containsErr(errs []error, err error) bool {
	for _, e := range errs {
		if e == err {
			return true
		}
	}
	return false
}

// record stores a deduplication record; a failure only costs a possible duplicate later.
func (d *Dispatcher) record(ctx context.Context, id string, rec DedupRecord) {
	if ctx.Err() != nil {
		ctx = context.WithoutCancel(ctx)
	}
	if err := d.dedup.Record(ctx, id, rec); err != nil {
		d.tel.logger.Warn("fanout: dedup record failed", "event_id", id, "error", err)
	}
}

// complete records a Sync task's outcome and wakes its dispatch when it was the last.
func (d *Dispatcher) complete(t *task, out SinkResult) {
	t.out = out
	if g := t.g; g.pending.Add(-1) == 0 {
		g.done <- struct{}{}
	}
}

// finish hands the outcome of a task a worker ran to whoever waits for it.
func (d *Dispatcher) finish(t *task, out SinkResult) {
	if g := t.g; g != nil {
		d.complete(t, out)
		d.unref(g)
		return
	}
	if out.Outcome == Failed {
		d.errMu.Lock()
		d.lost++
		d.lastLost = fmt.Errorf("event %q, sink %q: %w", t.e.ID, out.Sink, errors.Join(out.Err, out.DeadLetterErr))
		d.errMu.Unlock()
		d.tel.logger.Error("fanout: event lost: neither delivered nor dead-lettered", "event_id", t.e.ID,
			"sink", out.Sink, "route", out.Route, "error", out.Err, "dlq_error", out.DeadLetterErr)
	}
	s := t.snap
	*t = task{}
	d.tasks.Put(t)
	s.asyncDone()
}

// group is the state of one dispatch: its targets and, in Sync mode, its tasks. Groups are
// pooled; one goes back to the pool when its dispatch and every worker holding one of its tasks
// are done with it.
type group struct {
	targets []target
	slot    []int32  // per sink of the snapshot: 1 + its index in targets, 0 when not a target
	rules   []string // pattern rules the Matcher matched
	order   []int    // route indices to look at, in configuration order
	matched []int    // route indices that matched, counted once the event is accepted
	// exprHits and exprOK hold which of the snapshot's CEL expressions are true for the event.
	exprHits []int
	exprOK   []bool
	tasks    []task
	pending  atomic.Int32 // tasks without an outcome
	refs     atomic.Int32 // the dispatch, plus each task still in a queue or lane
	done     chan struct{}

	ctx    context.Context
	parent context.Context
	cancel context.CancelFunc
	budget time.Duration // ctx's time for attempts, from the dispatch's start to its deadline

	shard      *regShard
	prev, next *group
}

func (d *Dispatcher) newGroup(nSinks int) *group {
	g := d.groups.Get().(*group)
	g.refs.Store(1)
	if cap(g.slot) < nSinks {
		g.slot = make([]int32, nSinks)
	}
	g.slot = g.slot[:nSinks]
	return g
}

func (d *Dispatcher) unref(g *group) {
	if g.refs.Add(-1) != 0 {
		return
	}
	clear(g.slot)
	clear(g.rules)
	g.rules = g.rules[:0]
	g.matched = g.matched[:0]
	clear(g.targets)
	g.targets = g.targets[:0]
	for i := range g.tasks {
		g.tasks[i] = task{}
	}
	g.tasks = g.tasks[:0]
	g.ctx, g.parent, g.cancel = nil, nil, nil
	d.groups.Put(g)
}

// registry lists the Sync dispatches in progress, so that Close's deadline can cut them short.
type registry struct {
	next   atomic.Uint32
	shards [8]regShard
}

type regShard struct {
	mu   sync.Mutex
	head *group
}

func (d *Dispatcher) register(g *group) {
	sh := &d.reg.shards[d.reg.next.Add(1)%uint32(len(d.reg.shards))]
	g.shard = sh
	sh.mu.Lock()
	g.next = sh.head
	if sh.head != nil {
		sh.head.prev = g
	}
	sh.head = g
	sh.mu.Unlock()
	if d.stopped.Load() {
		g.cancel()
	}
}

func (d *Dispatcher) unregister(g *group) {
	sh := g.shard
	sh.mu.Lock()
	if g.prev != nil {
		g.prev.next = g.next
	} else {
		sh.head = g.next
	}
	if g.next != nil {
		g.next.prev = g.prev
	}
	sh.mu.Unlock()
	g.prev, g.next, g.shard = nil, nil, nil
}

// stop ends retrying everywhere: Close's deadline has come. Deliveries still going are cut short
// and dead-lettered, and the tasks no worker has started are taken off the sinks and
// dead-lettered side by side, with no attempt (see drain). Each write is bounded by dlqTimeout,
// and all of them end once the dead-letter queue has taken nothing for that long.
func (d *Dispatcher) stop() {
	d.stopOnce.Do(func() {
		dr := newDrain(d.cfg.dlqTimeout, &d.handingOut)
		d.drain.Store(dr)
		d.stopped.Store(true)
		// Only now may the drain end: a dispatch that found stopped unset is in handingOut by
		// then (see beginHandOut).
		dr.start()
		d.endLife()
		for i := range d.reg.shards {
			sh := &d.reg.shards[i]
			sh.mu.Lock()
			for g := sh.head; g != nil; g = g.next {
				g.cancel()
			}
			sh.mu.Unlock()
		}
		d.tel.logger.Warn("fanout: close deadline reached; dead-lettering what is left")
		d.shedBacklog()
	})
}

// Update swaps in a new configuration atomically. Dispatches already running finish with the
// configuration they started with; new ones use cfg. A sink keeps its queue, workers and breaker
// across the swap when its name, settings and Sink value are unchanged (values of uncomparable
// types, such as sink.Func, never count as unchanged: use SetRoutes to change only the routes).
// Every other old sink is stopped, and closed (see WithSinkClosing) unless a sink still running
// wraps the same sink, once the last dispatch that could reach it is done and its queue has
// drained; Update does not wait for that. With
// WithOrderingKey, a sink rebuilt under the same name (or removed and added again while the old
// one still runs) starts its workers only once the old one's are done, so that events of a key
// reach it in dispatch order across the swap: once the events queued to the old one are
// finished, whatever the other sinks of their dispatches still do. Events accepted meanwhile
// wait in its queue, and the old one's count against its QueueSize; the sink holds no goroutine
// until its workers start, however many Updates rebuild it behind an old one that is slow to
// finish.
//
// Events accepted before the swap are dead-lettered, when they fail, to the dead-letter queue of
// the configuration they were accepted under, for as long as they are queued (in Async mode, until
// their sink gets to them). So a dead-letter queue that cfg replaces is still in use when Update
// returns: close it only once Settle, called after Update, returns nil, or once Close has
// returned.
//
// cfg is checked first; on error nothing changes.
func (d *Dispatcher) Update(cfg Config) error {
	d.updateMu.Lock()
	defer d.updateMu.Unlock()
	old := d.snap.Load()
	if old == nil {
		return errClosed
	}
	s, fresh, err := d.build(cfg, old)
	if err != nil {
		return err
	}
	d.commit(old, s, fresh)
	return nil
}

// SetRoutes swaps in new routes over the current sinks and dead-letter queue, atomically, as
// Update does. routes is checked first; on error nothing changes.
func (d *Dispatcher) SetRoutes(routes []Route) error {
	d.updateMu.Lock()
	defer d.updateMu.Unlock()
	old := d.snap.Load()
	if old == nil {
		return errClosed
	}
	rs, err := buildRoutes(routes, old.sinks)
	if err != nil {
		return err
	}
	d.commit(old, newSnapshot(old.sinks, rs, old.dlq), nil)
	return nil
}

// Settle waits until the configurations that Update and SetRoutes replaced before it was called
// are done with: every event accepted under them is delivered, dead-lettered or failed, and the
// sinks only they had are closed (see WithSinkClosing). A dead-letter queue that only they had is
// then no longer used, and may be closed. In Async mode that takes as long as the events accepted
// before the swap wait in their sinks' queues. Settle returns nil at once when nothing was
// replaced, an error wrapping ctx's when ctx ends first, and fanbridge.ErrClosed (wrapped) once
// Close has begun: close the queues after Close returns.
//
// Once the configurations are done with, Settle returns nil, or, when sinks they alone had
// failed to close, those failures, each wrapping ErrSinkClose and the sink's own error, in the
// order Close would list them. The configurations are done with all the same: the dead-letter
// queue they alone had may be closed. Each failure to close is reported once: by the first
// Settle that returns once it has happened and that waited for the configuration it was
// retired with, or else by Close. A sink kept open for a while because another still reached the
// sink it wraps (see "Who closes what" in the package documentation) is closed, and its failure
// reported, with the configuration whose retirement closed it.
func (d *Dispatcher) Settle(ctx context.Context) error {
	s := d.snap.Load()
	if s == nil {
		return errClosed
	}
	select {
	case <-s.prevSettled:
		return d.takeCloseFailures(s.replaced)
	case <-ctx.Done():
		return fmt.Errorf("fanout: settle: %w", ctx.Err())
	}
}

// takeCloseFailures returns the failures to close of the sinks closed when the first upTo
// configurations retired, in the order Close lists them, and forgets them: each is reported
// once, by Settle or else by Close.
func (d *Dispatcher) takeCloseFailures(upTo uint64) error {
	d.errMu.Lock()
	defer d.errMu.Unlock()
	var taken []closeFailure
	d.sinkErrs = slices.DeleteFunc(d.sinkErrs, func(f closeFailure) bool {
		if f.retired > upTo {
			return false
		}
		taken = append(taken, f)
		return true
	})
	return errors.Join(closeFailureErrs(taken)...)
}

// closeFailureErrs returns the errors of fs in a fixed order, whichever close ended first (see
// closeFailure).
func closeFailureErrs(fs []closeFailure) []error {
	slices.SortFunc(fs, func(a, b closeFailure) int {
		return cmp.Or(cmp.Compare(a.retired, b.retired), cmp.Compare(a.at, b.at))
	})
	errs := make([]error, len(fs))
	for i, f := range fs {
		errs[i] = f.err
	}
	return errs
}

// withdrawQueued gives every task of g that no worker has started yet its outcome now that g's
// context has ended: dead-lettered (or failed, when the caller gave up), each beside the others
// (see aside), so that the answer waits for the slowest of those writes, not for their sum. It
// runs only once every task of g is handed out.
func (d *Dispatcher) withdrawQueued(g *group) {
	for j := range g.tasks {
		t := &g.tasks[j]
		if t.sink.withdraw(t) {
			released := t.state.Load() == taskReleased
			d.aside(func() {
				r := t.sink.abandon(t)
				if released {
					t.sink.count.withdrawing.Add(-1) // counted as dead-lettered or failed now
				}
				d.complete(t, r)
			})
		}
	}
}

// build checks cfg and makes a snapshot of it, reusing old's sinks where they are unchanged.
// Nothing is started: commit does that.
func (d *Dispatcher) build(cfg Config, old *snapshot) (*snapshot, []*sinkState, error) {
	var sinks, fresh []*sinkState
	names := make(map[string]bool, len(cfg.Sinks))
	for i, sc := range cfg.Sinks {
		if sc.Name == "" {
			return nil, nil, fmt.Errorf("%w: sink %d has no name", ErrInvalidConfig, i)
		}
		if names[sc.Name] {
			return nil, nil, fmt.Errorf("%w: sink %q is defined twice", ErrInvalidConfig, sc.Name)
		}
		names[sc.Name] = true
		if sc.Sink == nil || isNil(sc.Sink) {
			return nil, nil, fmt.Errorf("%w: sink %q: nil Sink", ErrInvalidConfig, sc.Name)
		}
		n, err := normalize(sc)
		if err != nil {
			return nil, nil, err
		}
		var st *sinkState
		if old != nil {
			for _, o := range old.sinks {
				if o.name == n.Name && o.same(n) {
					st = o
					break
				}
			}
		}
		if st == nil {
			if st, err = d.newSinkState(n); err != nil {
				return nil, nil, err
			}
			if d.cfg.orderingKey != nil {
				// The sink this one replaces, whether the last snapshot has it or an earlier
				// Update removed it and its lanes may still hold events: see sinkState.after.
				// (Its counters are shared at commit, in every mode: see Dispatcher.counts.)
				d.sinkMu.Lock()
				st.after = d.newest[n.Name]
				d.sinkMu.Unlock()
				if st.after != nil {
					st.reserved = st.after.reserved
				}
			}
			fresh = append(fresh, st)
		}
		sinks = append(sinks, st)
	}
	if cfg.DLQ != nil && isNil(cfg.DLQ) {
		return nil, nil, fmt.Errorf("%w: nil DLQ inside a non-nil interface", ErrInvalidConfig)
	}
	routes, err := buildRoutes(cfg.Routes, sinks)
	if err != nil {
		return nil, nil, err
	}
	return newSnapshot(sinks, routes, cfg.DLQ), fresh, nil
}

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// commit starts s's new sinks and makes s current; old, if any, is retired in the background.
// The caller holds updateMu.
func (d *Dispatcher) commit(old, s *snapshot, fresh []*sinkState) {
	d.sinkMu.Lock()
	for _, st := range fresh {
		if st.key != nil {
			l := d.live[st.key]
			if l == nil {
				l = new(liveSink)
				d.live[st.key] = l
			}
			l.n++
		}
		if d.cfg.orderingKey != nil {
			d.newest[st.name] = st
		}
		// Before st starts and before s is current, so that nothing has read st.count yet.
		if c := d.counts[st.name]; c != nil {
			st.count = c
		} else {
			d.counts[st.name] = st.count
		}
		st.count.sinks++
	}
	d.sinkMu.Unlock()
	for _, st := range fresh {
		st.start()
	}
	d.sinkMu.Lock()
	for _, st := range fresh {
		d.running[st] = struct{}{}
	}
	d.sinkMu.Unlock()
	if old == nil {
		s.prevAll, s.prevHanded, s.prevSettled = closedChan, closedChan, closedChan
		d.snap.Store(s)
		return
	}
	s.prevAll, s.prevHanded, s.prevSettled = old.all, old.allHanded, old.settled
	d.retired++
	s.replaced = d.retired
	d.snap.Store(s)
	var gone []*sinkState
	for _, o := range old.sinks {
		kept := false
		for _, n := range s.sinks {
			if n == o {
				kept = true
				break
			}
		}
		if !kept {
			gone = append(gone, o)
		}
	}
	d.retiring.Add(1)
	go d.retire(old, gone, s.replaced)
	old.handed()
	old.release()
}

// retire closes the queues of old's removed sinks once no dispatch can hand them a task any more,
// so that their workers finish what is queued and stop, and, once no dispatch can reach the sinks
// at all (a Sync dispatch also sends on its own goroutine), closes those no running sink shares.
// A sink rebuilt under ordering keys waits only for the first: for its predecessor's workers.
// Then, once the Async deliveries accepted under old (on sinks kept too) are finished, old has
// settled.
//
// Each of these waits can be long, and every later Update's retire waits behind it: an Async
// delivery may be pending for as long as its sink hangs, and a Sync dispatch holds its
// configuration for as long as a Send that ignores cancellation holds it. So retire holds old's
// channels only, never old, so that replaced configurations (their routes, their compiled
// Matcher) are not kept in a chain until then. Only a configuration still in use stays: held by
// the dispatches on it, or by an Async task accepted under it.
//
// seq is old's place among the configurations retired (see closeFailure).
func (d *Dispatcher) retire(old *snapshot, gone []*sinkState, seq uint64) {
	defer d.retiring.Done()
	handedOut, prevHanded, allHanded := old.handedOut, old.prevHanded, old.allHanded
	drained, prevAll, all := old.drained, old.prevAll, old.all
	quiet, prevSettled, settled := old.quiet, old.prevSettled, old.settled
	old = nil
	<-handedOut
	<-prevHanded
	close(allHanded)
	for _, st := range gone {
		close(st.queue)
	}
	<-drained // and with it old's own hold on its Async deliveries (see snapshot.release)
	<-prevAll
	close(all)
	// Each removed sink is forgotten and closed as soon as its own workers are done: one held by
	// a stuck Send must not keep the others counted as running, nor open. The last is waited
	// for on this goroutine, which would otherwise only wait for the others.
	forget := func(at int, st *sinkState) {
		st.workers.Wait()
		d.sinkMu.Lock()
		if d.newest[st.name] == st {
			delete(d.newest, st.name)
		}
		if st.count.sinks--; st.count.sinks == 0 {
			delete(d.counts, st.name) // a sink of the name added later starts from zero
		}
		delete(d.running, st)
		d.sinkMu.Unlock()
		d.dropSink(st, seq, at)
	}
	var forgotten sync.WaitGroup
	for i, st := range gone {
		if i == len(gone)-1 {
			forget(i, st)
		} else {
			forgotten.Go(func() { forget(i, st) })
		}
	}
	forgotten.Wait()
	<-quiet
	<-prevSettled
	close(settled)
}

// closeFailure is a sink's failure to close, and where Close's error lists it: removed sinks are
// closed side by side and finish in any order, but the report follows the configurations they
// were removed from, in the order those were replaced (retired; Close's own last), and within
// one, the order in which it listed its sinks (at).
type closeFailure struct {
	retired uint64
	at      int
	err     error
}

// liveSink is what the Dispatcher knows of the running sinks counted under one key.
type liveSink struct {
	n int // how many
	// closer is the last of them that went with a close method while others still ran: closed
	// in place of the last to go when that one has none, so that the order in which they go
	// does not decide whether the sink they share is closed. Its name and value only: the rest
	// of a sinkState (its queue) is not kept for it.
	closer     sink.Sink
	closerName string
}

// dropSink forgets st, and closes the sink it counts under (see closeKey) if no running sink
// reaches it any more: st was the at-th sink of the seq-th configuration retired. A value that
// goes while others still reach that sink is not closed, as its Close would close what they use.
// When the sink beneath the wrappers has no close method, the last wrapper with one is closed.
func (d *Dispatcher) dropSink(st *sinkState, seq uint64, at int) {
	if st.key == nil {
		// The Dispatcher closes no sinks, or whether another sink still uses this one cannot be
		// known; build refuses such a value that has a close method, so there is nothing to
		// close anyway.
		return
	}
	name, s := st.name, st.sink
	d.sinkMu.Lock()
	l := d.live[st.key]
	if l.n--; l.n > 0 {
		if closable(s) {
			l.closer, l.closerName = s, name
		}
		d.sinkMu.Unlock()
		return
	}
	delete(d.live, st.key)
	switch in, ok := st.key.(sink.Sink); {
	case ok && closable(in):
		// The sink beneath the wrappers is closed itself, as it would be given bare (with
		// CloseContext where it has one), rather than through a wrapper's Close, which may know
		// only one of its close methods.
		s = in
	case !closable(s) && l.closer != nil:
		name, s = l.closerName, l.closer
	}
	d.sinkMu.Unlock()
	if !closable(s) {
		return
	}
	d.errMu.Lock()
	d.closing[name]++
	d.errMu.Unlock()
	err := d.closeSink(s)
	d.errMu.Lock()
	if d.closing[name]--; d.closing[name] == 0 {
		delete(d.closing, name)
	}
	if err != nil {
		d.sinkErrs = append(d.sinkErrs, closeFailure{retired: seq, at: at, err: &sinkCloseError{name: name, err: err}})
	}
	d.errMu.Unlock()
}

// contextCloser is a sink whose close can be waited for within a context, as kafkasink's and
// grpcsink's can.
type contextCloser interface {
	CloseContext(ctx context.Context) error
}

// sinkCloseTimeout bounds the wait for the close of a sink that has a CloseContext and no Close,
// when an Update removed it before Close began.
const sinkCloseTimeout = 30 * time.Second

// closeSink closes s, turning a panic in its Close into an error: it may run on a background
// goroutine after a route swap, where a panic would end the process. Once Close has begun, a sink
// with CloseContext is closed with it, under a context that ends just before Close gives up, so
// that the sink's own error reaches Close's result instead of arriving after it. Before that, a
// sink is closed with its Close, or, when it has only CloseContext, with that, under a context
// that ends after sinkCloseTimeout (or when Close gives up, whichever comes first), so that a
// close that hangs cannot keep Settle waiting for ever.
func (d *Dispatcher) closeSink(s sink.Sink) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("close panicked: %v", p)
		}
	}()
	cc, withContext := s.(contextCloser)
	if withContext && d.closeBegun.Load() {
		return cc.CloseContext(d.sinkLife)
	}
	if c, ok := s.(io.Closer); ok {
		return c.Close()
	}
	if withContext {
		ctx, cancel := context.WithTimeout(d.sinkLife, sinkCloseTimeout)
		defer cancel()
		return cc.CloseContext(ctx)
	}
	return nil
}

// closable reports whether the Dispatcher would close s (see closeSink).
func closable(s sink.Sink) bool {
	switch s.(type) {
	case io.Closer, contextCloser:
		return true
	}
	return false
}

// unfinished says why Close gave up waiting: what was still in flight once the dead-letter queue
// had taken nothing for the DLQ timeout after Close's deadline, and the grace had passed.
func (d *Dispatcher) unfinished(s *snapshot) []error {
	// The sinks of the last configuration, and those an Update removed whose workers still run;
	// a sink rebuilt under ordering keys shares its count with the one it replaces.
	counts := map[*atomic.Int64]bool{}
	var n, sending int64
	add := func(st *sinkState) {
		sending += int64(len(st.sem))
		if !counts[st.reserved] {
			counts[st.reserved] = true
			n += st.reserved.Load()
		}
	}
	for _, st := range s.sinks {
		add(st)
	}
	d.sinkMu.Lock()
	for st := range d.running {
		if !slices.Contains(s.sinks, st) {
			add(st)
		}
	}
	d.sinkMu.Unlock()
	writing := d.dlqWriting.Load()

	var errs []error
	if n > 0 {
		var where []string
		if sending > 0 {
			where = append(where, fmt.Sprintf("%d in a sink's Send that ignored cancellation", sending))
		}
		if writing > 0 {
			where = append(where, fmt.Sprintf("%d in a dead-letter write that ignored cancellation", writing))
		}
		if rest := n - sending - writing; rest > 0 {
			where = append(where, fmt.Sprintf("%d waiting behind those", rest))
		}
		errs = append(errs, fmt.Errorf("fanout: close: %d deliveries still in flight when the dead-letter queue had "+
			"taken no entry for %v: %s", n, d.cfg.dlqTimeout, strings.Join(where, ", ")))
	}
	d.errMu.Lock()
	still := slices.Sorted(maps.Keys(d.closing))
	d.errMu.Unlock()
	if len(still) > 0 {
		errs = append(errs, fmt.Errorf("fanout: close: sinks %q still closing after the deadline", still))
	}
	// Dispatches that took a configuration before Close and have not handed their event out
	// yet: held in the caller's code they run first. The sinks' queues close only once they
	// have. None will hand it out now (see beginHandOut): each is refused as closed, unless its
	// filters or DedupStore answer first that no route matched or that it is a duplicate. Those
	// of the last configuration are counted (Close has let go of its own hold); of the
	// configurations an Update replaced, only whether any is left is known.
	handing := s.handing.Load()
	older := false
	select {
	case <-s.prevHanded:
	default:
		older = true
	}
	if handing > 0 || older {
		var who string
		switch {
		case handing == 1 && !older:
			who = "1 dispatch begun before Close had not handed its event out"
		case !older:
			who = fmt.Sprintf("%d dispatches begun before Close had not handed their event out", handing)
		case handing == 1:
			who = "1 dispatch, and others under a configuration an Update replaced, begun before " +
				"Close had not handed their event out"
		case handing > 0:
			who = fmt.Sprintf("%d dispatches, and others under a configuration an Update replaced, begun before "+
				"Close had not handed their event out", handing)
		default:
			who = "dispatches under a configuration an Update replaced, begun before Close, had not handed their event out"
		}
		errs = append(errs, fmt.Errorf("fanout: close: %s (held in the caller's code: a DedupStore, a route's "+
			"filter, the ordering-key function, the clock, the context or the logger): no sink will get it", who))
	}
	if n == 0 && len(still) == 0 && handing == 0 && !older {
		errs = append(errs, errors.New("fanout: close: the sinks' workers did not stop by the deadline"))
	}
	return errs
}

func isNil(v any) bool {
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Func, reflect.Pointer, reflect.Map, reflect.Slice, reflect.Interface, reflect.Chan:
		return rv.IsNil()
	}
	return false
}

// Close shuts the Dispatcher down. From its first moment every new dispatch fails with
// fanbridge.ErrClosed. Dispatches in progress and queued deliveries carry on, retries included,
// until all are done or ctx ends. A dispatch in progress that has not handed its event to the
// sinks when ctx ends (it is still in the caller's code: its DedupStore, a route's filter, the
// ordering-key function, the clock or the context) fails with fanbridge.ErrClosed too when it gets
// there, unless its filters or DedupStore answer first (ErrNoMatch, ErrDuplicate), and no sink
// gets the event;
// one handing it out at that moment is waited for, and its event dealt with as the rest. When
// ctx ends, retrying stops, and whatever is not delivered is dead-lettered (under a context
// detached from ctx), never dropped because of our own cancellation: deliveries under way once
// cut short, and the events still waiting in a sink's queue or ordering lane at once, without an
// attempt. Those writes are made up to 64 at a time,
// in both modes, whatever the sinks' Concurrency and however many Sync dispatches wait, besides
// those of the deliveries a sink's workers had under way. Then the sinks are closed (see WithSinkClosing); the dead-letter queue is
// not: the caller closes it after Close returns.
//
// After ctx ends, Close returns once every accepted event is delivered or dead-lettered, each
// dead-letter write bounded by the DLQ timeout; it stops waiting once the dead-letter queue has
// taken no entry for the DLQ timeout (plus a grace of 100ms for deliveries to notice
// cancellation). So a healthy queue is given the whole backlog, however long it takes, while a
// queue that hangs, or sinks that ignore cancellation, keep Close for about the DLQ timeout past
// ctx's end or the last entry written, whichever is later. A sink with a CloseContext(ctx)
// method (kafkasink's, grpcsink's) is closed with it, under a context that ends just before
// Close gives up, so that its own error is part of Close's. Close's error reports deliveries
// that could not even be dead-lettered (since New, in Async mode), sinks that failed to close,
// each wrapping ErrSinkClose, that no Settle reported (in a fixed order, whichever close ends
// first: those Updates removed, in the order of the Updates, then those of the last configuration,
// each configuration's in the order it lists them) or were still closing, and, when it stopped
// waiting, deliveries still in a sink's Send or a dead-letter write that ignored cancellation, and
// dispatches that had not handed their event out yet. Calling Close again returns the first call's
// result.
func (d *Dispatcher) Close(ctx context.Context) error {
	d.closeOnce.Do(func() { d.closeErr = d.close(ctx) })
	return d.closeErr
}

func (d *Dispatcher) close(ctx context.Context) error {
	d.updateMu.Lock()
	s := d.snap.Swap(nil)
	d.retired++
	seq := d.retired
	d.updateMu.Unlock()
	stopAtDeadline := context.AfterFunc(ctx, d.stop)
	defer stopAtDeadline()
	// Sinks closed from here on stop waiting for their close when Close itself is about to give
	// up, so that what they report is part of Close's answer.
	defer d.endSinkLife()
	d.closeBegun.Store(true)

	d.retiring.Add(1)
	go d.retire(s, s.sinks, seq)
	s.handed()
	s.release()

	done := make(chan struct{})
	go func() {
		d.retiring.Wait()
		close(done)
	}()
	var errs []error
	select {
	case <-done:
	case <-ctx.Done():
		d.stop()
		// Past the deadline, Close waits for as long as the dead-letter queue keeps taking
		// entries (the drain's context ends once it has taken none for the DLQ timeout), then a
		// grace for what was cut off to notice.
		dr := d.drain.Load()
		select {
		case <-done:
		case <-dr.ctx.Done():
			d.endSinkLife()
			grace := time.NewTimer(closeGrace)
			select {
			case <-done:
			case <-grace.C:
				errs = append(errs, d.unfinished(s)...)
			}
			grace.Stop()
		}
	}
	if dr := d.drain.Load(); dr != nil {
		dr.end()
	}
	d.endLife()
	d.tel.close()

	d.errMu.Lock()
	if d.lost > 0 {
		errs = append(errs, fmt.Errorf("fanout: %d deliveries neither delivered nor dead-lettered; last: %w", d.lost, d.lastLost))
	}
	// Those no Settle has reported.
	errs = append(errs, closeFailureErrs(d.sinkErrs)...)
	d.sinkErrs = nil
	d.errMu.Unlock()
	if len(errs) > 0 {
		d.tel.logger.Error("fanout: closed with losses or errors", "error", errors.Join(errs...))
	} else {
		d.tel.logger.Log(context.Background(), slog.LevelInfo, "fanout: closed; every accepted event delivered or dead-lettered")
	}
	return errors.Join(errs...)
}
