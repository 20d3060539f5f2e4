package fanout

import (
	"context"
	"fmt"
	"sync/atomic"

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

	// refs counts the dispatches using the snapshot, plus one while it is current.
	refs    atomic.Int64
	drained chan struct{}   // closed when refs reaches zero
	prevAll <-chan struct{} // closed when every older snapshot has drained
	all     chan struct{}   // closed when this one and every older one have drained
}

type routeState struct {
	name    string
	filter  filter.Predicate
	pattern *filter.Pattern // set for pattern routes
	shared  bool            // matched through snapshot.matcher
	sinks   []int           // indices into snapshot.sinks, in the order the route names them
	attrs   attrSet
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
	s := &snapshot{sinks: sinks, routes: routes, dlq: q, drained: make(chan struct{}), all: make(chan struct{})}
	s.refs.Store(1)
	n := 0
	for i := range routes {
		if routes[i].pattern != nil {
			n++
		}
	}
	if n >= minShared {
		s.matcher = filter.NewMatcher()
		s.byRule = make(map[string]int, n)
		for i := range routes {
			r := &routes[i]
			if r.pattern == nil {
				continue
			}
			// Route names are unique and non-empty, and the pattern is compiled: this cannot fail.
			if err := s.matcher.AddPattern(r.name, r.pattern); err == nil {
				r.shared = true
				s.byRule[r.name] = i
			}
		}
		// Build the Matcher's index now rather than on the first event.
		s.matcher.Match(&fanbridge.Event{Raw: []byte("{}")}, nil)
	}
	return s
}

func (s *snapshot) release() {
	if s.refs.Add(-1) == 0 {
		close(s.drained)
	}
}

// acquire returns the current snapshot with a reference taken, or nil once the Dispatcher is
// closed.
func (d *Dispatcher) acquire() *snapshot {
	for {
		s := d.snap.Load()
		if s == nil {
			return nil
		}
		for {
			r := s.refs.Load()
			if r <= 0 {
				break // drained after a swap: the pointer has moved on
			}
			if s.refs.CompareAndSwap(r, r+1) {
				return s
			}
		}
	}
}

// match appends to g.targets the sinks of every route matching e, each sink once, with the first
// route (in configuration order) that named it. It reports whether any route matched.
func (s *snapshot) match(ctx context.Context, e *fanbridge.Event, g *group, tel *telemetry) bool {
	if s.matcher != nil {
		g.rules = s.matcher.Match(e, g.rules[:0])
		if cap(g.hits) < len(s.routes) {
			g.hits = make([]bool, len(s.routes))
		}
		g.hits = g.hits[:len(s.routes)]
		for _, name := range g.rules {
			g.hits[s.byRule[name]] = true
		}
	}
	matched := false
	for i := range s.routes {
		r := &s.routes[i]
		if r.shared {
			if !g.hits[i] {
				continue
			}
		} else if !r.filter.Match(e) {
			continue
		}
		matched = true
		tel.matched.Add(ctx, 1, r.attrs.addOpts...)
		for _, k := range r.sinks {
			if g.seen[k] {
				continue
			}
			g.seen[k] = true
			g.targets = append(g.targets, target{sink: s.sinks[k], route: r.name})
		}
	}
	return matched
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
		rs := routeState{name: r.Name, filter: r.Filter, attrs: newAttrSet("route", r.Name)}
		if r.Pattern != nil {
			p, err := filter.ParsePattern(r.Pattern)
			if err != nil {
				return nil, fmt.Errorf("%w: route %q: %w", ErrInvalidConfig, r.Name, err)
			}
			rs.filter = p
		}
		if p, ok := rs.filter.(*filter.Pattern); ok {
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
