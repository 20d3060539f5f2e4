package fanout

// SinkStats counts what happened at one sink since it was configured. Delivered + DeadLettered +
// Failed + Queued accounts for every (event, sink) the sink was given, so an operator or a test
// can reconcile a run without a metrics pipeline. Once the sink's workers are idle the sum is
// exact; while they are busy it can count an event twice for a moment: when a Sync dispatch's
// budget runs out while its event still waits in the queue, the event is counted as dead-lettered
// or failed at once and leaves Queued at once too, unless QueueSize such withdrawn events already
// wait there: then it stays in Queued (and keeps its room in the queue) until a worker takes it
// off the queue and drops it.
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
	// Queued counts events accepted for the sink and not yet finished.
	Queued int64
	// Breaker is the circuit breaker's state: "closed", "half-open" or "open".
	Breaker string
}

// Stats returns the counters of the sinks of the current configuration, in configuration order
// (nil once Close has begun). A sink kept across Update keeps its counters; a new or changed one
// starts from zero, except under WithOrderingKey, where a changed one carries on the counters of
// the one it replaces, as it waits for that one's events and counts them against its QueueSize.
func (d *Dispatcher) Stats() []SinkStats {
	s := d.snap.Load()
	if s == nil {
		return nil
	}
	out := make([]SinkStats, 0, len(s.sinks))
	for _, st := range s.sinks {
		out = append(out, SinkStats{
			Name:         st.name,
			Delivered:    st.count.delivered.Load(),
			DeadLettered: st.count.deadLettered.Load(),
			Failed:       st.count.failed.Load(),
			Retried:      st.count.retried.Load(),
			Queued:       st.reserved.Load(),
			Breaker:      breakerName(st.breaker.state.Load()),
		})
	}
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
