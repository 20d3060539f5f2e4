package filter

import (
	"slices"
	"strings"
	"sync"

	"github.com/fanbridge/fanbridge"
)

// Pattern is a compiled Amazon EventBridge event pattern. It implements Predicate, matching the
// event's envelope (Event.Raw). A Pattern is immutable and safe for concurrent use. Make one with
// ParsePattern: the zero Pattern, like a nil *Pattern, matches nothing.
type Pattern struct {
	src      string
	branches []branch
	table    *pathTable
	steps    int // over all branches, for the search's memo
	// auto is the automaton a pattern of several branches matches with, built by the first
	// match (see automaton).
	autoOnce sync.Once
	auto     *snapshot
}

// branch is one way for the pattern to match: every step must hold (the pattern with each $or
// resolved to one of its alternatives).
type branch struct {
	// steps are in the order walkOrder gives, which reaches the answer EventBridge gives
	// checking the fields in path order.
	steps []step
	// after[i] holds the leaves tested by steps[i:]; memo is where the branch's entries start in
	// the search memo.
	after [][]uint64
	memo  int
}

type step struct {
	path string
	leaf int32 // in the owning table
	c    *cond
}

var _ Predicate = (*Pattern)(nil)

// ParsePattern compiles an EventBridge event pattern. Errors are *PatternError values that name
// the offending path and operator; they wrap ErrInvalidPattern, or ErrPatternTooComplex when the
// pattern exceeds one of the limits (MaxPatternBytes and the others).
func ParsePattern(src []byte) (*Pattern, error) {
	fcs, err := compilePattern(src)
	if err != nil {
		return nil, err
	}
	var paths []string
	seen := map[string]int32{}
	p := &Pattern{src: string(src)}
	for _, fc := range fcs {
		b := branch{steps: make([]step, len(fc))}
		for i, f := range fc {
			id, ok := seen[f.path]
			if !ok {
				id = int32(len(paths))
				seen[f.path] = id
				paths = append(paths, f.path)
			}
			b.steps[i] = step{path: f.path, leaf: id, c: f.c}
		}
		slices.SortFunc(b.steps, func(x, y step) int { return strings.Compare(x.path, y.path) })
		b.steps = walkOrder(b.steps)
		p.branches = append(p.branches, b)
	}
	p.table = newPathTable(paths)
	words := (len(paths) + 63) / 64
	for bi := range p.branches {
		b := &p.branches[bi]
		b.memo = p.steps
		p.steps += len(b.steps)
		b.after = make([][]uint64, len(b.steps)+1)
		b.after[len(b.steps)] = make([]uint64, words)
		for i := len(b.steps) - 1; i >= 0; i-- {
			b.after[i] = slices.Clone(b.after[i+1])
			l := b.steps[i].leaf
			b.after[i][l/64] |= 1 << (l % 64)
		}
	}
	return p, nil
}

// MustParsePattern is ParsePattern for patterns known to be valid, such as literals in code; it
// panics on error.
func MustParsePattern(src string) *Pattern {
	p, err := ParsePattern([]byte(src))
	if err != nil {
		panic(err)
	}
	return p
}

// String returns the pattern's source. It is empty only for a nil or zero Pattern: every pattern
// ParsePattern compiles is a JSON object, so a caller can tell by it that a *Pattern it was given
// was never compiled.
func (p *Pattern) String() string {
	if p == nil {
		return ""
	}
	return p.src
}

// Match reports whether the pattern matches the event's envelope: Event.Raw when it is an
// EventBridge envelope, otherwise the envelope view described in the package documentation. An
// event that MatchRaw refuses does not match, and neither does any event for a nil or zero
// Pattern.
func (p *Pattern) Match(e *fanbridge.Event) bool {
	if !p.compiled() || e == nil {
		return false
	}
	raw, buf := envelopeOf(e)
	ok, _ := p.MatchRaw(raw)
	releaseEnvelope(buf)
	return ok
}

// MatchRaw reports whether the pattern matches the JSON event raw. The error wraps
// ErrInvalidEvent when raw is not a JSON object, or when it repeats a key, or spells a path two
// ways, at a path the pattern reads (see the package documentation). A nil or zero Pattern
// matches nothing and reports no error.
func (p *Pattern) MatchRaw(raw []byte) (bool, error) {
	if !p.compiled() {
		return false, nil
	}
	return p.matchRaw(raw, defaultLimits)
}

// compiled reports whether p came from ParsePattern: a zero Pattern has no path table to read
// an event with.
func (p *Pattern) compiled() bool {
	return p != nil && p.table != nil
}

// matchRaw is MatchRaw with the limits lim.
func (p *Pattern) matchRaw(raw []byte, lim limits) (bool, error) {
	if len(p.branches) > 1 {
		return p.automaton().matchOne(raw, lim)
	}
	return p.searchRaw(raw, lim)
}

// searchRaw matches p against raw branch by branch (matchFlat), whatever the number of branches.
func (p *Pattern) searchRaw(raw []byte, lim limits) (bool, error) {
	fe := getFlat()
	defer putFlat(fe)
	if err := fe.flatten(p.table, raw, lim); err != nil {
		return false, err
	}
	return p.matchFlat(fe), nil
}

// automaton returns the pattern compiled as the one rule of a Matcher's automaton. Searched one
// by one, branches that begin with the same steps would each look at the values those steps
// read: a $or of 10 alternatives under each of three keys makes 1,000 branches, and 1,000 times
// the Matcher's work on an event with many values at the first path tested. In the automaton
// they share those steps, as a Matcher's rules do. It is built on first use, so that a pattern
// only ever matched as part of a Matcher does not carry one.
func (p *Pattern) automaton() *snapshot {
	p.autoOnce.Do(func() {
		p.auto = buildSnapshot([]string{""}, []*Pattern{p}, 0)
		p.auto.first = true
	})
	return p.auto
}

// Test reports whether the event pattern matches the JSON event, in the manner of EventBridge's
// TestEventPattern: the error says what is wrong with the pattern (a *PatternError) or with the
// event (wrapping ErrInvalidEvent). Unlike TestEventPattern, it does not ask the event for the
// envelope's fields (id, account, source, time, region, resources, detail-type): any JSON object
// is an event, as a route sees it.
func Test(pattern, event []byte) (bool, error) {
	p, err := ParsePattern(pattern)
	if err != nil {
		return false, err
	}
	return p.MatchRaw(event)
}

// matchFlat searches the branches one by one; MatchRaw leaves a pattern of several branches to
// its automaton instead.
func (p *Pattern) matchFlat(fe *flatEvent) bool {
	fe.newMemo(p.steps)
	for i := range p.branches {
		if p.evalSteps(fe, &p.branches[i], 0, nil) {
			return true
		}
	}
	return false
}

// evalSteps is the reference semantics of a branch: take its fields in path order; each needs a
// value that matches its condition and lies in the same array elements as the values chosen for
// the fields before it, or, for {"exists": false}, no such value at all. Backtrack over the
// choices. It takes the fields in the order walkOrder gives, which reaches the same answer with
// fewer choices. The Matcher reaches the same answers by other means, and the tests hold it to
// this.
//
// One refinement keeps the search linear when an event has many independent arrays: the array
// positions chosen so far are reduced to those the remaining steps can meet, and the outcome
// then depends on the step and those positions alone, so a step that failed with the same
// positions (often none, or only the element of an enclosing array) fails again at once.
func (p *Pattern) evalSteps(fe *flatEvent, b *branch, i int, cur []int32) bool {
	fe.work++
	if i == len(b.steps) {
		return true
	}
	top, optTop := len(fe.red), len(fe.opts)
	defer func() { fe.red, fe.opts = fe.red[:top], fe.opts[:optTop] }()
	if len(cur) > 0 {
		cur, _ = fe.reduce(&fe.red, b.after[i], cur)
	}
	memo := b.memo + i
	if len(cur) == 0 {
		if fe.memo[memo] == fe.memoEpoch {
			return false
		}
	} else if fe.memoPos[memo] == fe.memoEpoch && fe.states.has(int32(memo), cur) {
		return false
	}
	st := &b.steps[i]
	seen := false
	var v value
	ks := fe.options(p.table, st.leaf, cur)
	fe.work += len(ks)
	for _, k := range ks {
		if !fe.consistent(cur, k) {
			continue
		}
		seen = true
		fe.valueOf(k, &v)
		if !st.c.matches(&v) {
			continue
		}
		t0 := len(fe.red)
		fe.red = fe.join(fe.red, cur, k)
		ok := p.evalSteps(fe, b, i+1, fe.red[t0:])
		fe.red = fe.red[:t0]
		if ok {
			return true
		}
	}
	if st.c.absentOK && !seen && p.evalSteps(fe, b, i+1, cur) {
		return true
	}
	if len(cur) == 0 {
		fe.memo[memo] = fe.memoEpoch
	} else {
		fe.memoPos[memo] = fe.memoEpoch
		fe.states.add(int32(memo), cur)
	}
	return false
}

var flatPool = sync.Pool{New: func() any { return new(flatEvent) }}

func getFlat() *flatEvent { return flatPool.Get().(*flatEvent) }

func putFlat(fe *flatEvent) {
	// Keep buffers grown by an unusually large event out of the pool.
	if fe.outsized() {
		return
	}
	fe.raw, fe.table = nil, nil
	flatPool.Put(fe)
}
