package fanout

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fanbridge/fanbridge/dlq"
)

// drainWidth is how many dead-letter writes the shutdown drain makes at once, whatever the sinks'
// Concurrency: a backlog queued behind a sink's few workers is written side by side, so that a
// queue that commits concurrent writes together (filedlq) batches them, and the bound keeps one
// that does not from being flooded.
const drainWidth = 64

// drain dead-letters what is left once Close's deadline has passed (see Dispatcher.stop): the
// tasks no worker had started, taken off the sinks' queues and ordering lanes, and the writes of
// Sync dispatches (their withdrawn tasks, and those their own goroutine ran) are made by up to
// drainWidth writers, and every dead-letter write from then on runs under ctx as well as its own
// DLQ timeout. ctx ends once the dead-letter queue has taken nothing for the DLQ timeout: a
// queue that keeps taking entries gets as long as the backlog needs, one that hangs or refuses
// is given up on, and so is a sink that holds its tasks past cancellation. It never ends while a
// dispatch is handing its tasks out (handing), nor sooner than the DLQ timeout after one has
// (see Dispatcher.endHandOut): a dispatch either is refused at the deadline or has its tasks
// written.
type drain struct {
	ctx     context.Context
	cancel  context.CancelFunc
	timeout time.Duration
	handing *atomic.Int64 // the Dispatcher's handingOut
	began   time.Time     // on the monotonic clock
	last    atomic.Int64  // when the queue last took an entry, as a time.Duration since began

	mu      sync.Mutex
	timer   *time.Timer // checks for progress
	backlog []func()    // dead-letter writes, each with what follows it, waiting for a writer
	writers int
}

func newDrain(timeout time.Duration, handing *atomic.Int64) *drain {
	dr := &drain{timeout: timeout, handing: handing, began: time.Now()}
	dr.ctx, dr.cancel = context.WithCancel(context.Background())
	return dr
}

// start lets the drain end from now on, once the queue has taken nothing for the timeout: stop
// calls it once the Dispatcher is marked stopped, so that every dispatch still handing its tasks
// out is counted in handing by then.
func (dr *drain) start() {
	dr.mu.Lock()
	if dr.ctx.Err() == nil {
		dr.timer = time.AfterFunc(dr.timeout, dr.check)
	}
	dr.mu.Unlock()
}

// aside runs write, a dead-letter write and what follows it, beside the caller: on a goroutine of
// its own, or, once Close's deadline has passed, on one of the drain's writers, so that the
// writes a Sync dispatch makes then, however many dispatches there are, keep within the drain's
// width. write must not wait for the drain itself.
func (d *Dispatcher) aside(write func()) {
	if d.stopped.Load() {
		d.drain.Load().do(write) // set before stopped
		return
	}
	go write()
}

// progress notes that the dead-letter queue has just taken an entry. last only moves forward,
// so that a note made earlier and stored later does not hide a later one.
func (dr *drain) progress() {
	now := int64(time.Since(dr.began))
	for {
		last := dr.last.Load()
		if last >= now || dr.last.CompareAndSwap(last, now) {
			return
		}
	}
}

// received notes that a dispatch has just handed tasks out past the deadline: the queue's idle
// time counts from now, so that the drain gives them as long as it gave the backlog.
func (dr *drain) received() {
	dr.progress()
}

// check ends the drain when the queue has taken nothing for the timeout and no dispatch is handing
// tasks out, or looks again when that time would be up. handing is read before the idle time: a
// dispatch that has stopped counting has noted its hand-out (received) by then.
func (dr *drain) check() {
	if dr.ctx.Err() != nil {
		return
	}
	wait := dr.timeout
	if dr.handing.Load() == 0 {
		idle := time.Since(dr.began) - time.Duration(dr.last.Load())
		if idle >= dr.timeout {
			dr.cancel()
			return
		}
		wait = dr.timeout - idle
	}
	dr.mu.Lock()
	dr.timer.Reset(wait)
	dr.mu.Unlock()
}

// end stops the drain: Close is returning.
func (dr *drain) end() {
	dr.cancel()
	dr.mu.Lock()
	if dr.timer != nil {
		dr.timer.Stop()
	}
	dr.mu.Unlock()
}

// put hands t, claimed (taskStarted) and not attempted, to the writers.
func (dr *drain) put(t *task) {
	dr.do(func() { t.sink.shed(t) })
}

// do hands write, a dead-letter write and what follows it, to the writers. write must not wait
// for the drain itself.
func (dr *drain) do(write func()) {
	dr.mu.Lock()
	dr.backlog = append(dr.backlog, write)
	spawn := dr.writers < drainWidth
	if spawn {
		dr.writers++
	}
	dr.mu.Unlock()
	if spawn {
		go dr.write()
	}
}

// write is one writer: it runs the writes of the backlog, oldest first, until none is left.
func (dr *drain) write() {
	for {
		dr.mu.Lock()
		if len(dr.backlog) == 0 {
			dr.backlog = nil // give the array back
			dr.writers--
			dr.mu.Unlock()
			return
		}
		w := dr.backlog[0]
		dr.backlog[0] = nil
		dr.backlog = dr.backlog[1:]
		dr.mu.Unlock()
		w()
	}
}

// shed dead-letters t, which no attempt was made for, because Close's deadline has passed.
func (st *sinkState) shed(t *task) {
	now := st.d.cfg.clock.Now()
	out := st.deadLetter(t, dlq.ConditionAge, 0, now, now, ErrShutdown, now)
	st.reserved.Add(-1)
	st.d.finish(t, out)
}

// shedBacklog takes, once Close's deadline has passed, every task no worker has started off the
// running sinks and hands it to the drain's writers: a sink's workers may be few, or held by
// Sends that ignore cancellation, and must not make the dead-letter writes of its backlog wait
// for one another, nor for them. The queues are read until they are closed, which catches the
// tasks of dispatches that were handing theirs out at the deadline; a task that comes later to a
// busy lane goes to the drain at once (see submit).
func (d *Dispatcher) shedBacklog() {
	d.sinkMu.Lock()
	sinks := make([]*sinkState, 0, len(d.running))
	for st := range d.running {
		sinks = append(sinks, st)
	}
	d.sinkMu.Unlock()
	for _, st := range sinks {
		st.shedLanes()
		go func() {
			for t := range st.queue {
				st.run(t)
			}
		}()
	}
}

// shedLanes takes the tasks waiting behind each ordering lane's current one out of the lanes:
// those not yet started go to the drain, in no particular order across keys, and the ghosts of
// withdrawn Sync tasks are dropped as a worker would drop them. The lanes themselves stay, held
// by their current tasks.
func (st *sinkState) shedLanes() {
	st.laneMu.Lock()
	var held *task
	for _, l := range st.lanes {
		if l.head == nil {
			continue
		}
		l.tail.next = held
		held = l.head
		l.head, l.tail = nil, nil
	}
	st.laneMu.Unlock()
	dr := st.d.drain.Load()
	for t := held; t != nil; {
		next := t.next
		t.next = nil
		if t.state.CompareAndSwap(taskQueued, taskStarted) {
			dr.put(t)
		} else {
			st.dropGhost(t)
		}
		t = next
	}
}
