package fanout

import "sync/atomic"

// SinkStats counts what happened at the sinks of one name since the first of them was configured
// while no other sink of that name ran: a sink an Update changes carries on the counters of the
// one it replaces (see Dispatcher.Stats).
// Delivered + DeadLettered + Failed + Queued accounts for every (event, sink) the sinks of that
// name were given, so an operator or a test can reconcile a run without a metrics pipeline. Once
// the sink's workers are idle the sum is exact; while they are busy it can count an event twice
// for a moment: when a Sync dispatch's budget runs out while its event still waits in the queue,
// the event gives its room in the queue back at once but stays in Queued until its dead-letter
// write returns and counts it as dead-lettered or failed, unless QueueSize such withdrawn events
// already wait there: then it also keeps its room until a worker takes it off the queue and
// drops it.
type SinkStats struct {
	// Name is the sink's name.
	Name string
	// Delivered counts events the sink acknowledged.
	Delivered int64
	// DeadLettered counts events the dead-letter queue took for this sink.
	DeadLettered int64
	// Failed counts events neither delivered nor dead-lettered: in Sync mode the dispatch
	// reported them (the sender retries); in Async mode they are lost and Close reports them.
	Failed int64
	// Retried counts failed attempts that were retried.
	Retried int64
	// Queued counts events accepted for the sink and not yet finished, those still held by a
	// sink of the same name that an Update changed or removed included.
	Queued int64
	// Breaker is the circuit breaker's state: "closed", "half-open" or "open".
	Breaker string
}

// Stats returns the counters of the sinks of the current configuration, in configuration order
// (nil once Close has begun). A sink kept across Update keeps its counters, and a changed one
// carries on those of the one it replaces, whose unfinished events it counts in Queued until they
// are finished, so that the counters of a name reconcile across Updates. So does a sink added
// again while a sink of its name that an Update changed or removed still finishes its events,
// however many Updates ago: the sinks of a name share one set of counters for as long as any of
// them runs. A sink added once every sink of its name has stopped, or under a new name, starts
// from zero. Without WithOrderingKey a changed sink's QueueSize bounds only the events accepted
// for it, not those the old one still holds, so Queued can then be above QueueSize for a while.
func (d *Dispatcher) Stats() []SinkStats {
	s := d.snap.Load()
	if s == nil {
		return nil
	}
	queued := d.backlogs(s)
	out := make([]SinkStats, 0, len(s.sinks))
	for i, st := range s.sinks {
		out = append(out, SinkStats{
			Name:         st.name,
			Delivered:    st.count.delivered.Load(),
			DeadLettered: st.count.deadLettered.Load(),
			Failed:       st.count.failed.Load(),
			Retried:      st.count.retried.Load(),
			Queued:       queued[i].queued,
			Breaker:      breakerName(st.breaker.state.Load()),
		})
	}
	return out
}

// backlog is what the sinks of one name hold: the current one, and those an Update changed or
// removed whose workers still run.
type backlog struct {
	st     *sinkState // one of them, whose name and attributes stand for all
	queued int64      // the events accepted for them and not finished
}

// backlogs returns the backlog of each name: first those of s's sinks (s may be nil, once Close
// has begun), in s's order, then those of names s does not have. Sinks sharing a count (rebuilt
// under ordering keys) are counted once. It takes sinkMu, never taken on the path of an event:
// the cost of following the sinks across Updates falls on the readers of the counts.
func (d *Dispatcher) backlogs(s *snapshot) []backlog {
	var out []backlog
	at := map[string]int{}
	counted := map[*atomic.Int64]bool{}
	add := func(st *sinkState) {
		i, ok := at[st.name]
		if !ok {
			i = len(out)
			at[st.name] = i
			out = append(out, backlog{st: st})
		}
		if !counted[st.reserved] {
			counted[st.reserved] = true
			out[i].queued += st.reserved.Load()
		}
		// The sinks of a name share their counters: their withdrawn events are counted once.
		if w := &st.count.withdrawing; !counted[w] {
			counted[w] = true
			out[i].queued += w.Load()
		}
	}
	if s != nil {
		out = make([]backlog, 0, len(s.sinks))
		for _, st := range s.sinks {
			add(st)
		}
	}
	d.sinkMu.Lock()
	for st := range d.running {
		add(st)
	}
	d.sinkMu.Unlock()
	return out
}

func breakerName(state int32) string {
	switch state {
	case breakerOpen:
		return "open"
	case breakerHalfOpen:
		return "half-open"
	default:
		return "closed"
	}
}
