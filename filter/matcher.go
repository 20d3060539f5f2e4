package filter

import (
	"maps"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/fanbridge/fanbridge"
)

// Matcher matches an event against many named event patterns at once, at a cost that stays
// nearly flat as rules are added (see the package documentation for how). The zero value is an
// empty Matcher ready to use.
//
// Matching is lock-free and safe for concurrent use; Add and Remove may run alongside it and are
// serialised among themselves. The first match after a change compiles the rules into a new
// immutable snapshot, so a burst of changes costs one compilation.
type Matcher struct {
	mu      sync.Mutex // serialises changes and snapshot builds
	rules   map[string]*Pattern
	version atomic.Uint64 // bumped by every change
	snap    atomic.Pointer[snapshot]
}

// NewMatcher returns an empty Matcher.
func NewMatcher() *Matcher { return &Matcher{} }

// Add compiles pattern and stores it under name, replacing any rule of that name. On error
// (ErrInvalidName, or a *PatternError from ParsePattern) the Matcher is unchanged.
func (m *Matcher) Add(name string, pattern []byte) error {
	if name == "" {
		return ErrInvalidName
	}
	p, err := ParsePattern(pattern)
	if err != nil {
		return err
	}
	return m.AddPattern(name, p)
}

// AddPattern stores an already compiled pattern under name, replacing any rule of that name.
// A Pattern that did not come from ParsePattern (a zero Pattern) is refused with an error
// wrapping ErrInvalidPattern, as it could never match; the Matcher is then unchanged.
func (m *Matcher) AddPattern(name string, p *Pattern) error {
	if name == "" || p == nil {
		return ErrInvalidName
	}
	if !p.compiled() {
		return errZeroPattern
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.rules == nil {
		m.rules = make(map[string]*Pattern)
	}
	m.rules[name] = p
	m.version.Add(1)
	return nil
}

// Remove deletes the rule called name and reports whether there was one.
func (m *Matcher) Remove(name string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.rules[name]; !ok {
		return false
	}
	delete(m.rules, name)
	m.version.Add(1)
	return true
}

// Len returns the number of rules.
func (m *Matcher) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.rules)
}

// Names returns the rule names in ascending order.
func (m *Matcher) Names() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Sorted(maps.Keys(m.rules))
}

// current returns a snapshot that reflects every change made so far, building one if needed.
func (m *Matcher) current() *snapshot {
	s := m.snap.Load()
	if s != nil && s.version == m.version.Load() {
		return s
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	v := m.version.Load()
	if s = m.snap.Load(); s != nil && s.version == v {
		return s
	}
	names := slices.Sorted(maps.Keys(m.rules))
	pats := make([]*Pattern, len(names))
	for i, n := range names {
		pats[i] = m.rules[n]
	}
	s = buildSnapshot(names, pats, v)
	m.snap.Store(s)
	return s
}

// Match appends to dst the names of the rules whose pattern matches the event's envelope
// (Event.Raw, or the envelope view; see the package documentation), in ascending order, and returns the
// extended slice. An event that MatchRaw refuses matches nothing. Reusing dst across
// calls (dst[:0]) makes matching free of allocations after warm-up.
func (m *Matcher) Match(e *fanbridge.Event, dst []string) []string {
	if e == nil {
		return dst
	}
	s := m.current()
	if len(s.names) == 0 {
		return dst
	}
	raw, buf := envelopeOf(e)
	dst, _ = s.matchRaw(raw, dst, defaultLimits)
	releaseEnvelope(buf)
	return dst
}

// MatchRaw is Match for a JSON event. When raw is not a JSON object, or repeats a key, or spells
// one path two ways, where some rule reads it (see the package documentation), it returns dst
// unchanged and an error wrapping ErrInvalidEvent: such an event is refused for every rule.
func (m *Matcher) MatchRaw(raw []byte, dst []string) ([]string, error) {
	return m.current().matchRaw(raw, dst, defaultLimits)
}

// matchRaw appends to dst the names of the rules that match the JSON event raw, matched with the
// limits lim.
func (s *snapshot) matchRaw(raw []byte, dst []string, lim limits) ([]string, error) {
	ms := s.pool.Get().(*matchScratch)
	defer s.release(ms)
	if err := ms.fe.flatten(s.table, raw, lim); err != nil {
		return dst, err
	}
	s.match(ms)
	for _, r := range ms.matched {
		dst = append(dst, s.names[r])
	}
	return dst, nil
}

// matchOne reports whether some rule matches the JSON event raw, matched with the limits lim.
func (s *snapshot) matchOne(raw []byte, lim limits) (bool, error) {
	ms := s.pool.Get().(*matchScratch)
	defer s.release(ms)
	if err := ms.fe.flatten(s.table, raw, lim); err != nil {
		return false, err
	}
	s.match(ms)
	return len(ms.matched) > 0, nil
}

func (s *snapshot) release(ms *matchScratch) {
	fe := &ms.fe
	if fe.outsized() || cap(ms.stack) > 1<<16 || ms.values.big() {
		return // do not keep what an outsized event grew
	}
	fe.raw, fe.table = nil, nil
	s.pool.Put(ms)
}
