package filter

import (
	"slices"
	"strings"
	"sync"

	"github.com/fanbridge/fanbridge"
)

// Pattern is a compiled Amazon EventBridge event pattern. It implements Predicate, matching the
// event's envelope (Event.Raw). A Pattern is immutable and safe for concurrent use.
type Pattern struct {
	src      string
	branches []branch
	table    *pathTable
}

// branch is one way for the pattern to match: every step must hold (the pattern with each $or
// resolved to one of its alternatives).
type branch struct {
	steps []step // ordered by path, the order EventBridge checks fields in
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
		p.branches = append(p.branches, b)
	}
	p.table = newPathTable(paths)
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

// String returns the pattern's source.
func (p *Pattern) String() string { return p.src }

// Match reports whether the pattern matches the event's envelope: Event.Raw, or, when Raw is
// empty, the envelope view described in the package documentation. An event that is not valid
// JSON does not match.
func (p *Pattern) Match(e *fanbridge.Event) bool {
	if e == nil {
		return false
	}
	raw, buf := envelopeOf(e)
	ok, _ := p.MatchRaw(raw)
	releaseEnvelope(buf)
	return ok
}

// MatchRaw reports whether the pattern matches the JSON event raw. The error wraps
// ErrInvalidEvent when raw is not a JSON object.
func (p *Pattern) MatchRaw(raw []byte) (bool, error) {
	fe := getFlat()
	defer putFlat(fe)
	if err := fe.flatten(p.table, raw); err != nil {
		return false, err
	}
	return p.matchFlat(fe), nil
}

// Test reports whether the event pattern matches the JSON event, in the manner of EventBridge's
// TestEventPattern: the error says what is wrong with the pattern (a *PatternError) or with the
// event (wrapping ErrInvalidEvent).
func Test(pattern, event []byte) (bool, error) {
	p, err := ParsePattern(pattern)
	if err != nil {
		return false, err
	}
	return p.MatchRaw(event)
}

func (p *Pattern) matchFlat(fe *flatEvent) bool {
	var curBuf [8]memEntry
	for i := range p.branches {
		if evalSteps(fe, p.branches[i].steps, curBuf[:0]) {
			return true
		}
	}
	return false
}

// evalSteps is the reference semantics of a branch: take its fields in path order; each needs a
// value that matches its condition and lies in the same array elements as the values chosen for
// the fields before it, or, for {"exists": false}, no such value at all. Backtrack over the
// choices. The Matcher reaches the same answers by other means, and the tests hold it to this.
func evalSteps(fe *flatEvent, steps []step, cur []memEntry) bool {
	if len(steps) == 0 {
		return true
	}
	st := &steps[0]
	seen := false
	var v value
	for _, k := range fe.at(st.leaf) {
		if !fe.consistent(cur, k) {
			continue
		}
		seen = true
		fe.valueOf(k, &v)
		if !st.c.matches(&v) {
			continue
		}
		next := fe.push(cur, k)
		if evalSteps(fe, steps[1:], next) {
			return true
		}
	}
	return st.c.absentOK && !seen && evalSteps(fe, steps[1:], cur)
}

var flatPool = sync.Pool{New: func() any { return new(flatEvent) }}

func getFlat() *flatEvent { return flatPool.Get().(*flatEvent) }

func putFlat(fe *flatEvent) {
	// Keep buffers grown by an unusually large event out of the pool.
	if cap(fe.fields) > 1<<14 || cap(fe.text) > 1<<20 || cap(fe.mem) > 1<<16 {
		return
	}
	fe.raw = nil
	flatPool.Put(fe)
}
