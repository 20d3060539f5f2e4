package fanout

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/retry"
	"github.com/fanbridge/fanbridge/sink"
)

// sinkState is one sink at run time: its queue, its workers, its ordering lanes, its breaker. It is
// shared by every snapshot that keeps the sink, and stopped once the last of them has drained.
type sinkState struct {
	d    *Dispatcher
	name string
	sink sink.Sink
	// key is what the sink counts under among the sinks the Dispatcher closes (see closeKey): nil
	// when it is not counted, as when the Dispatcher closes no sinks.
	key      any
	cfg      SinkConfig // with defaults filled in
	retrier  *retry.Retrier
	attemptT time.Duration
	maxAge   time.Duration // the policy's MaxAge, 0 for none
	breaker  *breaker
	attrSet
	// after is the sink of the same name this one replaces in an Update, while ordering keys
	// are on (the one the last snapshot has, or one an earlier Update removed and whose workers
	// still run): its lanes may still hold earlier events of a key, so this one's workers start
	// only once its workers are done. start clears it, so that no chain of Updates is kept.
	after *sinkState
	// handMu guards done and next. done is set once the last of the sink's workers has left its
	// queue; until then next is the sink started with this one as its after, whose workers that
	// last worker launches (see start): a sink that waits for the one it replaces holds no
	// goroutine meanwhile, however many Updates rebuild it behind a Send that does not return.
	handMu sync.Mutex
	done   bool
	next   *sinkState
	// left counts the workers that have not yet left the queue, launched or not.
	left atomic.Int32

	// queue feeds the workers. reserved (never above cfg.QueueSize) counts the tasks accepted and
	// not finished; a sink rebuilt under ordering keys shares it with the one it replaces (see
	// after), whose tasks it waits for, so that the bound holds for the name across Updates.
	// Otherwise each has its own, and the queue-depth gauge and Stats add up those of the
	// sinks of a name still running (see Dispatcher.backlogs). ghosts (never above
	// cfg.QueueSize either) counts the tasks their Sync dispatch took back and ran, or withdrew
	// and answered for, still in the queue until a worker skips them. The queue holds both, so
	// its capacity is twice cfg.QueueSize, and a send after a successful reserve never blocks.
	queue    chan *task
	reserved *atomic.Int64
	ghosts   atomic.Int64
	workers  sync.WaitGroup
	// sem holds one token per Send in flight: cfg.Concurrency at most, whether the Send runs on a
	// worker or on a Sync dispatcher's own goroutine.
	sem chan struct{}

	laneMu    sync.Mutex
	lanes     map[string]*lane
	freeLanes *lane

	errOverloaded error
	// count is shared by every sink of this name whose workers run, whichever Updates changed,
	// removed or added them meanwhile (see Dispatcher.counts): whichever of them finishes an
	// event, Stats counts it under the name.
	count *counters
}

// counters are what Stats reports.
type counters struct {
	delivered, deadLettered, failed, retried atomic.Int64
	// withdrawing counts events withdrawn with their queue slot given back whose dead-letter
	// write still runs: they are in Queued until it returns (see SinkStats).
	withdrawing atomic.Int64
	// sinks counts the sinkStates sharing these counters whose workers are not done; guarded by
	// the Dispatcher's sinkMu, and never read on the path of an event.
	sinks int
}

// normalize fills in a SinkConfig's defaults and checks its ranges.
func normalize(sc SinkConfig) (SinkConfig, error) {
	switch {
	case sc.Concurrency < 0:
		return sc, fmt.Errorf("%w: sink %q: Concurrency %d is negative", ErrInvalidConfig, sc.Name, sc.Concurrency)
	case sc.QueueSize < 0:
		return sc, fmt.Errorf("%w: sink %q: QueueSize %d is negative", ErrInvalidConfig, sc.Name, sc.QueueSize)
	case sc.Concurrency > MaxConcurrency:
		return sc, fmt.Errorf("%w: sink %q: Concurrency %d is above %d", ErrInvalidConfig, sc.Name, sc.Concurrency, MaxConcurrency)
	case sc.QueueSize > MaxQueueSize:
		return sc, fmt.Errorf("%w: sink %q: QueueSize %d is above %d", ErrInvalidConfig, sc.Name, sc.QueueSize, MaxQueueSize)
	case sc.Breaker.Failures > MaxBreakerFailures:
		return sc, fmt.Errorf("%w: sink %q: Breaker.Failures %d is above %d", ErrInvalidConfig, sc.Name, sc.Breaker.Failures, MaxBreakerFailures)
	case sc.Breaker.Cooldown < 0:
		return sc, fmt.Errorf("%w: sink %q: Breaker.Cooldown %v is negative", ErrInvalidConfig, sc.Name, sc.Breaker.Cooldown)
	}
	if sc.Concurrency == 0 {
		sc.Concurrency = DefaultConcurrency
	}
	if sc.QueueSize == 0 {
		sc.QueueSize = DefaultQueueSize
	}
	if sc.Breaker.Failures == 0 {
		sc.Breaker.Failures = DefaultBreakerFailures
	}
	if sc.Breaker.Cooldown == 0 {
		sc.Breaker.Cooldown = DefaultBreakerCooldown
	}
	return sc, nil
}

func (d *Dispatcher) newSinkState(sc SinkConfig) (*sinkState, error) {
	st := &sinkState{d: d, name: sc.Name, sink: sc.Sink, cfg: sc, attrSet: newAttrSet("sink", sc.Name),
		lanes: make(map[string]*lane), reserved: new(atomic.Int64), count: new(counters)}
	if d.cfg.closeSinks {
		k, in, err := closeKey(sc.Sink)
		if err != nil {
			return nil, fmt.Errorf("%w: sink %q: %T: the sink it wraps cannot be found (%w), so the Dispatcher cannot "+
				"tell when no sink uses it: fix its Unwrap, or use WithSinkClosing(false)", ErrInvalidConfig, sc.Name, sc.Sink, err)
		}
		// A sink with a close method is closed once no sink uses it: of one that cannot be
		// compared, that cannot be known, so it would be closed by any Update, or under a name
		// still using it; whether it is given bare or under wrappers that can be compared, which
		// would pass their own close on to it.
		if closable(in) && !comparableSink(in) {
			return nil, fmt.Errorf("%w: sink %q: %T has a Close method but is not comparable, so the Dispatcher "+
				"cannot tell when no sink uses it: give a pointer to it, or use WithSinkClosing(false)", ErrInvalidConfig, sc.Name, in)
		}
		if k == nil && closable(sc.Sink) {
			return nil, fmt.Errorf("%w: sink %q: %T has a Close method but is not comparable, and wraps no sink that "+
				"is, so the Dispatcher cannot tell when no sink uses it: give a pointer to it, or use WithSinkClosing(false)",
				ErrInvalidConfig, sc.Name, sc.Sink)
		}
		st.key = k
	}
	r, err := retry.New(sc.Retry, retry.WithClock(d.cfg.clock))
	if err != nil {
		return nil, fmt.Errorf("%w: sink %q: %w", ErrInvalidConfig, sc.Name, err)
	}
	// The per-attempt timeout is the attempt's own (see attempt.op): it starts once the attempt
	// holds a send slot, so that waiting for one is not charged as a failed attempt. The Retrier
	// runs without it.
	st.attemptT = r.Policy().AttemptTimeout
	st.maxAge = r.Policy().MaxAge
	if st.attemptT > 0 {
		p := r.Policy()
		p.AttemptTimeout = 0
		if r, err = retry.New(p, retry.WithClock(d.cfg.clock)); err != nil {
			return nil, fmt.Errorf("%w: sink %q: %w", ErrInvalidConfig, sc.Name, err)
		}
	}
	st.retrier = r
	st.breaker = newBreaker(sc.Breaker, d.cfg.clock)
	st.errOverloaded = retry.After(fmt.Errorf("fanout: sink %q: queue full: %w", sc.Name, fanbridge.ErrOverloaded), d.cfg.overloadAfter)
	return st, nil
}

// start makes the sink ready to take tasks and launches its workers, or, when the sink it
// replaces (after) still has workers, leaves them to the last of those to launch: its queue
// takes tasks meanwhile, and its workers count as not done in the meantime.
func (st *sinkState) start() {
	st.queue = make(chan *task, 2*st.cfg.QueueSize)
	st.sem = make(chan struct{}, st.cfg.Concurrency)
	st.workers.Add(st.cfg.Concurrency)
	st.left.Store(int32(st.cfg.Concurrency))
	prev := st.after
	st.after = nil
	if prev != nil {
		prev.handMu.Lock()
		waits := !prev.done
		if waits {
			prev.next = st
		}
		prev.handMu.Unlock()
		if waits {
			return
		}
	}
	st.launch()
}

// launch starts the sink's workers.
func (st *sinkState) launch() {
	for range st.cfg.Concurrency {
		go st.work()
	}
}

// retried counts a failed attempt retried: called as the next attempt reaches the sink, so that
// a retry the budget, shutdown or an open breaker cut off before it happened is not counted.
func (st *sinkState) retried() {
	st.count.retried.Add(1)
	st.d.tel.retried.Add(context.Background(), 1, st.addOpts...)
}

// same reports whether st can stand for sc unchanged across an Update.
func (st *sinkState) same(sc SinkConfig) bool {
	a, b := st.cfg, sc
	a.Sink, b.Sink = nil, nil
	return a == b && sameSink(st.sink, sc.Sink)
}

// sameSink compares two sinks without panicking on uncomparable dynamic types (sink.Func is one):
// those are never the same.
func sameSink(a, b sink.Sink) bool {
	ta, tb := reflect.TypeOf(a), reflect.TypeOf(b)
	return ta == tb && ta != nil && comparableSink(a) && a == b
}

// comparableSink reports whether s can be compared with == and used as a map key without a panic.
// Its type says too little: a struct that holds an interface is a comparable type, yet holding
// a sink.Func it panics.
// A value that is not equal to itself (a float field holding NaN) counts as not comparable: it
// could never be found again, under its own key or as the same sink.
func comparableSink(s sink.Sink) bool {
	return reflect.ValueOf(s).Comparable() && s == s
}

// unwrapper is middleware that names the sink it wraps, as the sink package's middleware does.
type unwrapper interface {
	Unwrap() sink.Sink
}

// maxUnwrap is how many wrappers deep closeKey looks for the sink at the bottom of a chain: as
// many as sink.Innermost follows.
const maxUnwrap = 1000

// closeKey returns what s counts under among the sinks the Dispatcher closes: the sink at the
// bottom of its chain of wrappers (see unwrapper), so that the same sink wrapped anew by each
// reload, or under several names, is closed once, when the last sink that reaches it goes. When
// that one cannot be compared (a sink.Func, say), s itself is the key, as though it wrapped
// nothing; when neither can be, the key is nil: s is not counted. in is that sink at the bottom.
// It fails when the chain has no bottom (it loops, or runs deeper than maxUnwrap) or an Unwrap
// panics.
func closeKey(s sink.Sink) (key any, in sink.Sink, err error) {
	in, err = innermost(s)
	switch {
	case err != nil:
		return nil, nil, err
	case comparableSink(in):
		return in, in, nil
	case comparableSink(s):
		return s, in, nil
	}
	return nil, in, nil
}

// innermost follows s's Unwrap chain to the sink that wraps nothing (or whose Unwrap returns
// nil).
func innermost(s sink.Sink) (in sink.Sink, err error) {
	defer func() {
		if p := recover(); p != nil {
			in, err = nil, fmt.Errorf("its Unwrap panicked: %v", p)
		}
	}()
	seen := map[sink.Sink]bool{} // the comparable ones, to tell a loop from a long chain
	in = s
	for range maxUnwrap + 1 {
		u, ok := in.(unwrapper)
		if !ok {
			return in, nil
		}
		next := u.Unwrap()
		if next == nil || isNil(next) {
			return in, nil
		}
		if comparableSink(in) {
			seen[in] = true
		}
		if comparableSink(next) && seen[next] {
			return nil, errors.New("its Unwrap chain loops")
		}
		in = next
	}
	return nil, fmt.Errorf("it wraps sinks more than %d deep", maxUnwrap)
}

// takeBack claims t, still queued, for its own Sync dispatch to run, if the ghost it leaves in the
// queue fits the allowance.
func (st *sinkState) takeBack(t *task) bool {
	if len(st.sem) == cap(st.sem) {
		return false // the sink is at its limit: the dispatch would only wait for a slot
	}
	if st.ghosts.Add(1) > int64(st.cfg.QueueSize) {
		st.ghosts.Add(-1)
		return false
	}
	if !t.state.CompareAndSwap(taskQueued, taskStolen) {
		st.ghosts.Add(-1)
		return false
	}
	return true
}

// withdraw claims t, still queued, for its Sync dispatch to give an outcome to now that the
// budget has run out. Its queue slot is given back at once, leaving a ghost in the queue, so that
// an event that has its outcome no longer counts as queued nor takes room from new ones; only
// when the ghost allowance is full does the slot wait until a worker pops the task.
func (st *sinkState) withdraw(t *task) bool {
	if st.ghosts.Add(1) <= int64(st.cfg.QueueSize) {
		if t.state.CompareAndSwap(taskQueued, taskReleased) {
			st.count.withdrawing.Add(1)
			st.reserved.Add(-1)
			return true
		}
		st.ghosts.Add(-1)
		return false
	}
	st.ghosts.Add(-1)
	return t.state.CompareAndSwap(taskQueued, taskWithdrawn)
}

// reserve takes one slot of the sink's queue, or reports that it is full.
func (st *sinkState) reserve() bool {
	if st.reserved.Add(1) > int64(st.cfg.QueueSize) {
		st.reserved.Add(-1)
		return false
	}
	return true
}

// work is one worker: it runs tasks until the queue is closed (after the sink's last snapshot has
// drained) and empty. The last worker to leave launches the workers of the sink that waits for
// this one, if any (see start): this sink has then finished every task it will ever run.
func (st *sinkState) work() {
	for t := range st.queue {
		st.run(t)
	}
	last := st.left.Add(-1) == 0
	st.workers.Done()
	if !last {
		return
	}
	st.handMu.Lock()
	st.done = true
	next := st.next
	st.next = nil
	st.handMu.Unlock()
	if next != nil {
		next.launch()
	}
}

// lane is the FIFO of tasks waiting behind the one being delivered for an ordering key.
type lane struct {
	head, tail *task
	nextFree   *lane
}

// submit hands t to the sink. With an ordering key, the lane is taken here, on the dispatching
// side and under a lock, so that the order of dispatches is the order of delivery even with many
// workers: a task whose key is busy waits in the lane, outside the queue, and the worker that
// finishes the lane's current task carries on with it. One key therefore never occupies more than
// one worker, and other keys are never held up.
//
// Past Close's deadline, a task whose key is busy goes to the drain instead: shedLanes has taken
// the lanes' waiting tasks, or will under this lock, and one put behind them now would wait for
// the lane's current task, which a Send that ignores cancellation may hold past Close's return.
// A dispatch that was handing its tasks out when the deadline came hands them out that late (one
// that gets there after the deadline is refused: see Dispatcher.beginHandOut).
func (st *sinkState) submit(t *task) {
	if t.key != "" {
		st.laneMu.Lock()
		if l := st.lanes[t.key]; l != nil {
			if st.d.stopped.Load() {
				st.laneMu.Unlock()
				t.state.Store(taskStarted) // no one else has seen it yet
				st.d.drain.Load().put(t)
				return
			}
			if l.tail == nil {
				l.head = t
			} else {
				l.tail.next = t
			}
			l.tail = t
			st.laneMu.Unlock()
			return
		}
		l := st.freeLanes
		if l != nil {
			st.freeLanes = l.nextFree
			l.nextFree = nil
		} else {
			l = new(lane)
		}
		st.lanes[t.key] = l
		st.laneMu.Unlock()
	}
	st.queue <- t
}

// run delivers t, then the tasks waiting behind it in its lane, unless their dispatch withdrew
// them first. Each gives up its queue slot, and its lane goes when empty, before its outcome is
// handed over, so that a caller who has the outcome also sees the slot and lane free. Once
// Close's deadline has passed, a task not yet started gets no attempt: it goes to the drain,
// which dead-letters it beside the rest of the backlog.
func (st *sinkState) run(t *task) {
	for t != nil {
		key := t.key
		started := t.state.CompareAndSwap(taskQueued, taskStarted)
		shed := started && st.d.stopped.Load()
		var out SinkResult
		if started && !shed {
			out = st.deliver(t)
		}
		var next *task
		if key != "" {
			next = st.advance(key)
		}
		switch {
		case shed:
			st.d.drain.Load().put(t)
		case started:
			st.reserved.Add(-1)
			st.d.finish(t, out)
		default:
			st.dropGhost(t)
		}
		t = next
	}
}

// dropGhost lets go of t, which its Sync dispatch ran, withdrew or gave an outcome to while it
// waited in the queue or a lane, as t leaves them.
func (st *sinkState) dropGhost(t *task) {
	if s := t.state.Load(); s == taskStolen || s == taskReleased {
		// Its dispatch gave back its slot already: only the ghost is left.
		st.ghosts.Add(-1)
	} else {
		// Withdrawn while the ghost allowance was full: its slot is freed here, where it leaves
		// the queue.
		st.reserved.Add(-1)
	}
	st.d.unref(t.g)
}

// advance pops the next task of key's lane, or removes the lane when it is empty: memory stays
// bounded by the tasks in flight.
func (st *sinkState) advance(key string) *task {
	st.laneMu.Lock()
	defer st.laneMu.Unlock()
	l := st.lanes[key]
	t := l.head
	if t == nil {
		delete(st.lanes, key)
		l.nextFree = st.freeLanes
		st.freeLanes = l
		return nil
	}
	l.head = t.next
	if l.head == nil {
		l.tail = nil
	}
	t.next = nil
	return t
}

// lanes returns how many ordering lanes are open (for tests of bounded memory).
func (st *sinkState) laneCount() int {
	st.laneMu.Lock()
	defer st.laneMu.Unlock()
	return len(st.lanes)
}
