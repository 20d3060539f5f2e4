package fanout

import "github.com/fanbridge/fanbridge"

// Hooks into internal state for the black-box tests: they observe, never change, but for
// OnHandOut, which lets a test hold a dispatch where no caller's code runs.

// OnHandOut has d call f, before its first dispatch, in each dispatch that has begun handing its
// event out (counted in handingOut, no slot taken yet).
func OnHandOut(d *Dispatcher, f func(e *fanbridge.Event)) { d.handOutHook = f }

// OnMatchExprs has every dispatch call f where it evaluates its CEL routes together, until the
// returned function is called.
func OnMatchExprs(f func()) (restore func()) {
	matchExprsHook.Store(&f)
	return func() { matchExprsHook.Store(nil) }
}

// ClaimWaiting reports whether a dispatch is waiting for another dispatch of e to finish.
func ClaimWaiting(d *Dispatcher, e *fanbridge.Event) bool {
	id := DedupKey(e)
	s := d.claims.shard(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.held[id] != nil
}

// LaneCount returns how many ordering lanes the named sink holds open.
func LaneCount(d *Dispatcher, sinkName string) int {
	st := d.sinkState(sinkName)
	if st == nil {
		return -1
	}
	return st.laneCount()
}

// QueueDepth returns how many events the named sink has accepted and not finished.
func QueueDepth(d *Dispatcher, sinkName string) int64 {
	st := d.sinkState(sinkName)
	if st == nil {
		return -1
	}
	return st.reserved.Load()
}

func (d *Dispatcher) sinkState(name string) *sinkState {
	s := d.snap.Load()
	if s == nil {
		return nil
	}
	for _, st := range s.sinks {
		if st.name == name {
			return st
		}
	}
	return nil
}

// RunningSinks returns how many sinks of the name, of the current configuration or one an Update
// replaced, have workers not done.
func RunningSinks(d *Dispatcher, name string) int {
	d.sinkMu.Lock()
	defer d.sinkMu.Unlock()
	n := 0
	for st := range d.running {
		if st.name == name {
			n++
		}
	}
	return n
}

// CountedNames returns how many sink names the Dispatcher keeps counters for.
func CountedNames(d *Dispatcher) int {
	d.sinkMu.Lock()
	defer d.sinkMu.Unlock()
	return len(d.counts)
}
