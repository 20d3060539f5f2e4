package fanout

import (
	"context"
	"fmt"
	"runtime/debug"
	"slices"
	"sync/atomic"
	"time"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/dlq"
	"github.com/fanbridge/fanbridge/filter"
)

// snapshot is one immutable configuration: sinks, routes and dead-letter queue. The Dispatcher
// holds the current one behind an atomic pointer; a dispatch takes a reference for as long as it
// uses it, so that a swap never changes the rules under an event in flight, and a sink removed by
// a swap is stopped only after the last dispatch that could reach it is done.
type snapshot struct {
	sinks  []*sinkState
	routes []routeState
	dlq    dlq.Queue
	// matcher matches every pattern route at once; byRule maps its rule names (the route names)
	// to route indices. nil when fewer than two routes are patterns.
	matcher *filter.Matcher
	byRule  map[string]int
	// others are the indices of the routes the Matcher does not match, in order; with a Matcher,
	// a dispatch looks at these and at the routes it matched, never at every route.
	others []int
	// exprs are the CEL expressions of the routes whose Filter is a *filter.Expression, evaluated
	// together by filter.MatchExprs so that an event's body is decoded once for all of them
	// rather than once per route. nil when fewer than two routes are CEL expressions.
	exprs []*filter.Expression

	// refs counts the dispatches using the snapshot, plus one while it is current.
	refs    atomic.Int64
	drained chan struct{}   // closed when refs reaches zero
	prevAll <-chan struct{} // closed when every older snapshot has drained
	all     chan struct{}   // closed when this one and every older one have drained

	// handing counts the dispatches that may still hand tasks to the sinks' queues, plus one
	// while the snapshot is current. A dispatch stops counting once its tasks are handed out,
	// long before it ends: a sink an Update removed can have its queue closed, and its workers
	// finish, while the dispatches that reached it still wait for other sinks.
	handing    atomic.Int64
	handedOut  chan struct{}   // closed when handing reaches zero
	prevHanded <-chan struct{} // closed when every older snapshot has handed out
	allHanded  chan struct{}   // closed when this one and every older one have handed out

	// async counts the Async deliveries accepted under the snapshot and not finished, which
	// write to its dead-letter queue, plus one until it has drained, when no dispatch can
	// accept another.
	async       atomic.Int64
	quiet       chan struct{}   // closed when async reaches zero
	prevSettled <-chan struct{} // closed when every older snapshot has settled
	// settled is closed when this one and every older one are quiet and their removed sinks
	// are closed: nothing they alone had is used any more (see Dispatcher.Settle).
	settled chan struct{}
	// replaced is the number of configurations retired before this one became current: those
	// prevSettled waits for (see closeFailure).
	replaced uint64
}

type routeState struct {
	name    string
	filter  filter.Predicate
	pattern *filter.Pattern // set for pattern routes
	shared  bool            // matched through snapshot.matcher
	expr    int             // 1 + the index of its expression in snapshot.exprs; 0 when not there
	sinks   []int           // indices into snapshot.sinks, in the order the route names them
	attrs   attrSet
	panics  *panicLog // when the filter last panicked, for spacing out the logs
}

// target is one sink an event goes to, and the first route that chose it.
type target struct {
	sink  *sinkState
	route string
	skip  bool // already has the event (deduplication)
}

// minShared is the number of pattern routes from which they are matched together: below it, one
// pattern's own Match is as cheap as a Matcher's.
const minShared = 2

func newSnapshot(sinks []*sinkState, routes []routeState, q dlq.Queue) *snapshot {
	s := &snapshot{sinks: sinks, routes: routes, dlq: q, drained: make(chan struct{}), all: make(chan struct{}),
		handedOut: make(chan struct{}), allHanded: make(chan struct{}), quiet: make(chan struct{}), settled: make(chan struct{})}
	s.refs.Store(1)
	s.handing.Store(1)
	s.async.Store(1)
	n, nx := 0, 0
	for i := range routes {
		if routes[i].pattern != nil {
			n++
		} else if _, ok := routes[i].filter.(*filter.Expression); ok {
			nx++
		}
	}
	if nx >= minShared {
		s.exprs = make([]*filter.Expression, 0, nx)
		for i := range routes {
			if x, ok := routes[i].filter.(*filter.Expression); ok && routes[i].pattern == nil {
				s.exprs = append(s.exprs, x)
				routes[i].expr = len(s.exprs)
			}
		}
	}
	if n >= minShared {
		s.matcher = filter.NewMatcher()
		s.byRule = make(map[string]int, n)
		for i := range routes {
			r := &routes[i]
			// Route names are unique and non-empty, and the pattern is compiled: AddPattern cannot
			// fail.
			if r.pattern != nil && s.matcher.AddPattern(r.name, r.pattern) == nil {
				r.shared = true
				s.byRule[r.name] = i
			} else {
				s.others = append(s.others, i)
			}
		}
		// Build the Matcher's index now rather than on the first event.
		s.matcher.Match(&fanbridge.Event{Raw: []byte("{}")}, nil)
	}
	return s
}

// release gives back a reference. The last one drains s: no dispatch can accept another
// Async delivery under it, so its own hold on async goes too.
func (s *snapshot) release() {
	if s.refs.Add(-1) == 0 {
		close(s.drained)
		s.asyncDone()
	}
}

// asyncDone ends an Async delivery accepted under s, or, once s has drained, s's own hold.
func (s *snapshot) asyncDone() {
	if s.async.Add(-1) == 0 {
		close(s.quiet)
	}
}

// handed ends a dispatch's, or the current snapshot's, hold on handing tasks out.
func (s *snapshot) handed() {
	if s.handing.Add(-1) == 0 {
		close(s.handedOut)
	}
}

// acquire returns the current snapshot with a reference and a hold on handing out taken (give
// them back with release and handed), or nil once the Dispatcher is closed.
func (d *Dispatcher) acquire() *snapshot {
	for {
		s := d.snap.Load()
		if s == nil {
			return nil
		}
		if !takeRef(&s.refs) {
			continue // drained after a swap: the pointer has moved on
		}
		if takeRef(&s.handing) {
			return s
		}
		s.release() // handed out after a swap: its queues may be closing
	}
}

// takeRef adds one to n unless it has reached zero, which it never leaves.
func takeRef(n *atomic.Int64) bool {
	for {
		r := n.Load()
		if r <= 0 {
			return false
		}
		if n.CompareAndSwap(r, r+1) {
			return true
		}
	}
}

// match appends to g.targets the sinks of every route matching e, each sink once, with the first
// route (in configuration order) that named it. It reports whether any route matched.
func (s *snapshot) match(ctx context.Context, e *fanbridge.Event, g *group, tel *telemetry) bool {
	exprs := len(s.exprs) > 0 && s.matchExprs(e, g)
	if s.matcher == nil {
		matched := false
		for i := range s.routes {
			if s.routes[i].matchesWith(ctx, e, tel, g, exprs) {
				matched = true
				s.take(i, g)
			}
		}
		return matched
	}
	// The candidates are the routes the Matcher matched plus the others, visited in configuration
	// order so that a sink is credited to the first route naming it. Matching a thousand pattern
	// routes thus costs the Matcher's work plus a few steps per matched route, not a step per route.
	g.rules = s.matcher.Match(e, g.rules[:0])
	g.order = g.order[:0]
	for _, name := range g.rules {
		g.order = append(g.order, s.byRule[name])
	}
	g.order = append(g.order, s.others...)
	slices.Sort(g.order)
	matched := false
	for _, i := range g.order {
		if !s.routes[i].shared && !s.routes[i].matchesWith(ctx, e, tel, g, exprs) {
			continue
		}
		matched = true
		s.take(i, g)
	}
	return matched
}

// matchExprs evaluates every expression of s.exprs on e, noting in g.exprOK which are true. A
// panic in one (a bug in CEL or in this module) must not cost the other routes their answer: it
// reports false, and each route's expression then runs on its own, under matches' guard, which
// counts and logs the panic against its route.
func (s *snapshot) matchExprs(e *fanbridge.Event, g *group) (ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	if h := matchExprsHook.Load(); h != nil {
		(*h)()
	}
	g.exprHits = filter.MatchExprs(e, s.exprs, g.exprHits[:0])
	if cap(g.exprOK) < len(s.exprs) {
		g.exprOK = make([]bool, len(s.exprs))
	}
	g.exprOK = g.exprOK[:len(s.exprs)]
	clear(g.exprOK)
	for _, k := range g.exprHits {
		g.exprOK[k] = true
	}
	return true
}

// matchExprsHook, when set (by tests), runs in matchExprs before the expressions.
var matchExprsHook atomic.Pointer[func()]

// matchesWith is matches, taking the answer of a route whose expression matchExprs evaluated
// (exprs) from g.
func (r *routeState) matchesWith(ctx context.Context, e *fanbridge.Event, tel *telemetry, g *group, exprs bool) bool {
	if exprs && r.expr > 0 {
		return g.exprOK[r.expr-1]
	}
	return r.matches(ctx, e, tel)
}

// matches reports whether route r matches e. A pattern is matched bare: it is this module's own
// code, so that a configuration of pattern routes alone makes no deferred call per event. Any other
// filter (a Go predicate, a CEL expression, a Predicate of the caller's) runs under recover: a
// panic there is a bug in it, but it must not end the caller of Dispatch (an intake's request,
// a WebSocket source's own goroutine, and with it the process), nor keep the event from the
// other routes that match it. The route does not match the event, and the panic is counted
// and logged (see filterPanicked).
func (r *routeState) matches(ctx context.Context, e *fanbridge.Event, tel *telemetry) bool {
	if r.pattern != nil {
		return r.pattern.Match(e)
	}
	return r.guardedMatch(ctx, e, tel)
}

func (r *routeState) guardedMatch(ctx context.Context, e *fanbridge.Event, tel *telemetry) (ok bool) {
	defer func() {
		if p := recover(); p != nil {
			ok = false
			r.filterPanicked(ctx, e, tel, p)
		}
	}()
	return r.filter.Match(e)
}

// panicLogEvery is how often at most the panics of one route's filter are logged: a filter that
// panics on every event would otherwise write a stack per event. The counter counts them all.
const panicLogEvery = time.Minute

// panicLog spaces out the logs of one route's filter panics.
type panicLog struct {
	next    atomic.Int64 // Unix nanoseconds before which a panic is counted but not logged
	skipped atomic.Int64 // panics not logged since the last one that was
}

// filterPanicked counts a panic of r's filter, and logs it with its stack at Error unless
// another was logged less than panicLogEvery ago; the log line then says how many were not.
func (r *routeState) filterPanicked(ctx context.Context, e *fanbridge.Event, tel *telemetry, p any) {
	tel.filterPanics.Add(ctx, 1, r.attrs.addOpts...)
	now := time.Now().UnixNano()
	next := r.panics.next.Load()
	if now < next || !r.panics.next.CompareAndSwap(next, now+int64(panicLogEvery)) {
		r.panics.skipped.Add(1)
		return
	}
	tel.logger.Error("fanout: route filter panicked; the route does not match the event", "route", r.name,
		"event_id", e.ID, "panic", fmt.Sprint(p), "stack", string(debug.Stack()),
		"not_logged_since_last", r.panics.skipped.Swap(0))
}

// take notes route i as matched and adds its sinks the event does not go to yet.
func (s *snapshot) take(i int, g *group) {
	r := &s.routes[i]
	g.matched = append(g.matched, i)
	for _, k := range r.sinks {
		if g.slot[k] != 0 {
			continue
		}
		g.targets = append(g.targets, target{sink: s.sinks[k], route: r.name})
		g.slot[k] = int32(len(g.targets))
	}
}

// countMatched counts the routes g matched, once the event is accepted: an event refused
// (overloaded, in flight elsewhere) or answered as a duplicate was counted when it was accepted,
// or will be when its sender's retry is. Of a retry that goes only to the sinks lacking the
// event, the routes none of whose sinks it goes to were counted the first time. failed, when not
// nil, says which of g's targets failed in a Sync dispatch that the sender will be asked to
// retry: a route one of whose sinks failed is counted by the retry that reaches that sink, not
// now, and one whose sinks all have the event now, which no retry will reach again, is.
func (s *snapshot) countMatched(ctx context.Context, g *group, tel *telemetry, failed []bool) {
	for _, i := range g.matched {
		live, lacking := false, false
		for _, k := range s.routes[i].sinks {
			if j := g.slot[k]; j != 0 && !g.targets[j-1].skip {
				live = true
				if failed != nil && failed[j-1] {
					lacking = true
				}
			}
		}
		if live && !lacking {
			tel.matched.Add(ctx, 1, s.routes[i].attrs.addOpts...)
		}
	}
}

// buildRoutes validates routes against sinks and resolves sink names to indices.
func buildRoutes(routes []Route, sinks []*sinkState) ([]routeState, error) {
	index := make(map[string]int, len(sinks))
	for i, st := range sinks {
		index[st.name] = i
	}
	names := make(map[string]bool, len(routes))
	out := make([]routeState, 0, len(routes))
	for i, r := range routes {
		if r.Name == "" {
			return nil, fmt.Errorf("%w: route %d has no name", ErrInvalidConfig, i)
		}
		if names[r.Name] {
			return nil, fmt.Errorf("%w: route %q is defined twice", ErrInvalidConfig, r.Name)
		}
		names[r.Name] = true
		hasFilter := r.Filter != nil && !isNil(r.Filter)
		switch {
		case hasFilter && r.Pattern != nil:
			return nil, fmt.Errorf("%w: route %q has both a Filter and a Pattern", ErrInvalidConfig, r.Name)
		case !hasFilter && r.Pattern == nil:
			return nil, fmt.Errorf("%w: route %q has no filter (use fanout.All to match every event)", ErrInvalidConfig, r.Name)
		}
		if len(r.Sinks) == 0 {
			return nil, fmt.Errorf("%w: route %q names no sink", ErrInvalidConfig, r.Name)
		}
		rs := routeState{name: r.Name, filter: r.Filter, attrs: newAttrSet("route", r.Name), panics: new(panicLog)}
		if r.Pattern != nil {
			p, err := filter.ParsePattern(r.Pattern)
			if err != nil {
				return nil, fmt.Errorf("%w: route %q: %w", ErrInvalidConfig, r.Name, err)
			}
			rs.filter = p
		}
		if p, ok := rs.filter.(*filter.Pattern); ok {
			// A Pattern is matched without recover (see matches), so one that could not match
			// (&filter.Pattern{}, never compiled) is refused here rather than met per event.
			if p.String() == "" {
				return nil, fmt.Errorf("%w: route %q: its *filter.Pattern was not made by filter.ParsePattern and would match nothing",
					ErrInvalidConfig, r.Name)
			}
			rs.pattern = p
		}
		seen := make(map[string]bool, len(r.Sinks))
		for _, n := range r.Sinks {
			k, ok := index[n]
			if !ok {
				return nil, fmt.Errorf("%w: route %q names unknown sink %q", ErrInvalidConfig, r.Name, n)
			}
			if seen[n] {
				return nil, fmt.Errorf("%w: route %q names sink %q twice", ErrInvalidConfig, r.Name, n)
			}
			seen[n] = true
			rs.sinks = append(rs.sinks, k)
		}
		out = append(out, rs)
	}
	return out, nil
}
