package filter

import (
	"math"
	"net/netip"
	"slices"
	"sync"
)

// A snapshot is the compiled, immutable form of a Matcher's rules. Matching runs in two phases:
//
//  1. Every recorded field value is looked up in the index of its path, which names the
//     conditions the value satisfies: exact values by map lookup, prefixes and suffixes by map
//     lookup per distinct length, numeric ranges in an interval tree, the rest (anything-but,
//     cidr, wildcards without literal ends) by a short per-path scan. Conditions are shared by
//     every rule that has the same test on the same path, so this phase costs the same for one
//     rule or ten thousand that look alike.
//  2. Each branch (a pattern with its $or resolved) is filed under its most selective condition,
//     its key. Only branches whose key was hit are checked, against the hits of phase 1, with
//     the same path-ordered, array-consistent search as Pattern.Match.
type snapshot struct {
	version  uint64
	names    []string
	table    *pathTable
	conds    []mcond
	branches []mbranch
	keyed    [][]int32 // per condition: the branches whose key it is
	always   []int32   // branches without a condition that can be a key
	idx      []pathIndex
	pool     sync.Pool
}

type mcond struct {
	leaf int32
	c    *cond
}

type mbranch struct {
	rule  int32
	steps []mstep // in path order
}

type mstep struct {
	leaf     int32
	cond     int32
	absentOK bool
}

// pathIndex finds the conditions on one path that a value satisfies.
type pathIndex struct {
	exact  map[string][]int32
	ip     map[netip.Addr][]int32
	numEq  map[int64][]int32
	numLit map[string][]int32
	trueC  []int32
	falseC []int32
	nullC  []int32

	prefix, suffix, foldPrefix, foldSuffix lenIndex
	fold                                   map[string][]int32
	ranges                                 intervalIndex
	exists                                 []int32
	scan                                   []guarded
}

// guarded is a condition reached through an index entry that still needs a full check (a
// wildcard found by its literal prefix), or, in pathIndex.scan, one checked against every value.
type guarded struct {
	cond   int32
	verify *valueMatcher
}

// lenIndex finds the prefixes (or suffixes) of a value among a set, with one map lookup per
// distinct length in the set.
type lenIndex struct {
	m    map[string][]guarded
	lens []int
}

func (x *lenIndex) add(s string, g guarded) {
	if x.m == nil {
		x.m = make(map[string][]guarded)
	}
	if _, ok := x.m[s]; !ok {
		i, found := slices.BinarySearch(x.lens, len(s))
		if !found {
			x.lens = slices.Insert(x.lens, i, len(s))
		}
	}
	x.m[s] = append(x.m[s], g)
}

// intervalIndex is a segment tree over the distinct range ends: a value's conditions are the
// ones stored on the path from its elementary segment to the root.
type intervalIndex struct {
	pts  []int64 // sorted starts of elementary segments
	tree [][]int32
	size int
}

type rangeEntry struct {
	lo, hi int64
	cond   int32
}

func buildIntervals(rs []rangeEntry) intervalIndex {
	var x intervalIndex
	if len(rs) == 0 {
		return x
	}
	for _, r := range rs {
		x.pts = append(x.pts, r.lo)
		if r.hi < math.MaxInt64 {
			x.pts = append(x.pts, r.hi+1)
		}
	}
	slices.Sort(x.pts)
	x.pts = slices.Compact(x.pts)
	x.size = 1
	for x.size < len(x.pts) {
		x.size <<= 1
	}
	x.tree = make([][]int32, 2*x.size)
	for _, r := range rs {
		if r.lo > r.hi {
			continue // an empty range such as > 0 and < 0.000001
		}
		a, _ := slices.BinarySearch(x.pts, r.lo)
		b := len(x.pts) - 1
		if r.hi < math.MaxInt64 {
			j, _ := slices.BinarySearch(x.pts, r.hi+1)
			b = j - 1
		}
		for l, h := a+x.size, b+x.size+1; l < h; l, h = l>>1, h>>1 {
			if l&1 == 1 {
				x.tree[l] = append(x.tree[l], r.cond)
				l++
			}
			if h&1 == 1 {
				h--
				x.tree[h] = append(x.tree[h], r.cond)
			}
		}
	}
	return x
}

// buildSnapshot compiles rules (sorted by name) into one snapshot.
func buildSnapshot(names []string, pats []*Pattern, version uint64) *snapshot {
	s := &snapshot{version: version, names: names}
	leafOf := map[string]int32{}
	var paths []string
	type condKey struct {
		leaf int32
		key  string
	}
	condOf := map[condKey]int32{}
	for r, p := range pats {
		for _, b := range p.branches {
			mb := mbranch{rule: int32(r), steps: make([]mstep, len(b.steps))}
			for i, st := range b.steps {
				leaf, ok := leafOf[st.path]
				if !ok {
					leaf = int32(len(paths))
					leafOf[st.path] = leaf
					paths = append(paths, st.path)
				}
				ck := condKey{leaf, st.c.key}
				id, ok := condOf[ck]
				if !ok {
					id = int32(len(s.conds))
					condOf[ck] = id
					s.conds = append(s.conds, mcond{leaf: leaf, c: st.c})
				}
				mb.steps[i] = mstep{leaf: leaf, cond: id, absentOK: st.c.absentOK}
			}
			s.branches = append(s.branches, mb)
		}
	}
	s.table = newPathTable(paths)

	// How many branches use each condition: a condition many rules share (mediaType CHAT) is a
	// poor key even if its values are exact, since every hit wakes all of those rules.
	freq := make([]int, len(s.conds))
	for _, b := range s.branches {
		for _, st := range b.steps {
			freq[st.cond]++
		}
	}
	s.keyed = make([][]int32, len(s.conds))
	for bi, b := range s.branches {
		best, bestCost := int32(-1), math.Inf(1)
		for _, st := range b.steps {
			if st.absentOK {
				continue // can hold without any hit, so it cannot gate the branch
			}
			if c := selectivity(s.conds[st.cond].c) * float64(freq[st.cond]); c < bestCost {
				best, bestCost = st.cond, c
			}
		}
		if best < 0 {
			s.always = append(s.always, int32(bi))
		} else {
			s.keyed[best] = append(s.keyed[best], int32(bi))
		}
	}

	s.idx = make([]pathIndex, len(paths))
	ranges := make([][]rangeEntry, len(paths))
	for ci, mc := range s.conds {
		x := &s.idx[mc.leaf]
		id := int32(ci)
		for mi := range mc.c.ms {
			m := &mc.c.ms[mi]
			switch m.op {
			case opExact:
				x.exact = appendMap(x.exact, m.s, id)
				if m.ip.IsValid() {
					if x.ip == nil {
						x.ip = make(map[netip.Addr][]int32)
					}
					x.ip[m.ip] = append(x.ip[m.ip], id)
				}
			case opNumber:
				if m.numOK {
					if x.numEq == nil {
						x.numEq = make(map[int64][]int32)
					}
					x.numEq[m.num] = append(x.numEq[m.num], id)
				}
				x.numLit = appendMap(x.numLit, m.s, id)
			case opTrue:
				x.trueC = append(x.trueC, id)
			case opFalse:
				x.falseC = append(x.falseC, id)
			case opNull:
				x.nullC = append(x.nullC, id)
			case opPrefix:
				x.prefix.add(m.s, guarded{cond: id})
			case opSuffix:
				x.suffix.add(m.s, guarded{cond: id})
			case opEqualsFold:
				x.fold = appendMap(x.fold, m.s, id)
			case opPrefixFold:
				x.foldPrefix.add(m.s, guarded{cond: id})
			case opSuffixFold:
				x.foldSuffix.add(m.s, guarded{cond: id})
			case opWildcard:
				g := m.glob
				switch {
				case len(g.parts) == 1:
					x.exact = appendMap(x.exact, g.parts[0], id)
				case g.literalPrefix() != "":
					x.prefix.add(g.literalPrefix(), guarded{cond: id, verify: m})
				case g.literalSuffix() != "":
					x.suffix.add(g.literalSuffix(), guarded{cond: id, verify: m})
				default:
					x.scan = append(x.scan, guarded{cond: id, verify: m})
				}
			case opNumeric:
				ranges[mc.leaf] = append(ranges[mc.leaf], rangeEntry{lo: m.lo, hi: m.hi, cond: id})
			case opExists:
				x.exists = append(x.exists, id)
			case opCIDR, opAnythingBut:
				x.scan = append(x.scan, guarded{cond: id, verify: m})
			}
		}
	}
	for l := range ranges {
		s.idx[l].ranges = buildIntervals(ranges[l])
	}
	s.pool.New = func() any { return s.newScratch() }
	return s
}

func appendMap(m map[string][]int32, k string, id int32) map[string][]int32 {
	if m == nil {
		m = make(map[string][]int32)
	}
	m[k] = append(m[k], id)
	return m
}

// selectivity guesses the share of events on which a condition holds. Only the order matters:
// exact values are rare, ranges and existence common.
func selectivity(c *cond) float64 {
	p := 0.0
	for i := range c.ms {
		m := &c.ms[i]
		switch m.op {
		case opExact, opNumber, opEqualsFold:
			p += 0.02
		case opTrue, opFalse, opNull:
			p += 0.3
		case opPrefix, opSuffix, opPrefixFold, opSuffixFold:
			if len(m.s) < 3 {
				p += 0.2
			} else {
				p += 0.05
			}
		case opWildcard:
			p += 0.1
		case opNumeric:
			p += 0.3
		case opCIDR:
			p += 0.2
		default: // exists, anything-but
			p += 0.9
		}
	}
	return min(p, 1)
}

// matchScratch is the per-call state of a snapshot match; it comes from the snapshot's pool.
type matchScratch struct {
	fe        flatEvent
	epoch     uint32
	hitEpoch  []uint32 // per condition: hit in this epoch
	hitHead   []int32  // per condition: last entry of its hit list
	hits      []hitEntry
	hitConds  []int32
	ruleEpoch []uint32
	matched   []int32
	cur       []memEntry
	v         value
}

type hitEntry struct {
	field, next int32
}

func (s *snapshot) newScratch() any {
	return &matchScratch{
		hitEpoch:  make([]uint32, len(s.conds)),
		hitHead:   make([]int32, len(s.conds)),
		ruleEpoch: make([]uint32, len(s.names)),
	}
}

func (m *matchScratch) next() {
	m.epoch++
	if m.epoch == 0 {
		clear(m.hitEpoch)
		clear(m.ruleEpoch)
		m.epoch = 1
	}
	m.hits = m.hits[:0]
	m.hitConds = m.hitConds[:0]
	m.matched = m.matched[:0]
}

func (m *matchScratch) hit(c, field int32) {
	if m.hitEpoch[c] != m.epoch {
		m.hitEpoch[c] = m.epoch
		m.hitHead[c] = -1
		m.hitConds = append(m.hitConds, c)
	} else if h := m.hitHead[c]; h >= 0 && m.hits[h].field == field {
		return // the same value satisfied another entry of the same condition
	}
	m.hits = append(m.hits, hitEntry{field: field, next: m.hitHead[c]})
	m.hitHead[c] = int32(len(m.hits) - 1)
}

func (m *matchScratch) hitAll(cs []int32, field int32) {
	for _, c := range cs {
		m.hit(c, field)
	}
}

func (m *matchScratch) hitGuarded(gs []guarded, field int32, v *value) {
	for i := range gs {
		if gs[i].verify == nil || gs[i].verify.match(v) {
			m.hit(gs[i].cond, field)
		}
	}
}

// match runs both phases on the flattened event in m.fe and leaves the matching rule ids,
// ascending, in m.matched.
func (s *snapshot) match(m *matchScratch) {
	m.next()
	fe := &m.fe
	v := &m.v
	for l := range s.idx {
		x := &s.idx[l]
		for _, k := range fe.at(int32(l)) {
			fe.valueOf(k, v)
			m.lookup(x, k, v)
		}
	}
	for _, c := range m.hitConds {
		for _, b := range s.keyed[c] {
			s.check(m, b)
		}
	}
	for _, b := range s.always {
		s.check(m, b)
	}
	slices.Sort(m.matched)
}

func (m *matchScratch) lookup(x *pathIndex, k int32, v *value) {
	m.hitAll(x.exists, k)
	switch v.kind {
	case kindString:
		if x.exact != nil {
			m.hitAll(x.exact[string(v.text)], k)
		}
		if x.ip != nil {
			if a, ok := parseIP(v.text); ok {
				m.hitAll(x.ip[a], k)
			}
		}
		if x.prefix.m != nil {
			for _, n := range x.prefix.lens {
				if n > len(v.text) {
					break
				}
				m.hitGuarded(x.prefix.m[string(v.text[:n])], k, v)
			}
		}
		if x.suffix.m != nil {
			for _, n := range x.suffix.lens {
				if n > len(v.text) {
					break
				}
				m.hitGuarded(x.suffix.m[string(v.text[len(v.text)-n:])], k, v)
			}
		}
		if x.fold != nil || x.foldPrefix.m != nil || x.foldSuffix.m != nil {
			f := v.foldedText()
			if x.fold != nil {
				m.hitAll(x.fold[string(f)], k)
			}
			for _, n := range x.foldPrefix.lens {
				if n > len(f) {
					break
				}
				m.hitGuarded(x.foldPrefix.m[string(f[:n])], k, v)
			}
			for _, n := range x.foldSuffix.lens {
				if n > len(f) {
					break
				}
				m.hitGuarded(x.foldSuffix.m[string(f[len(f)-n:])], k, v)
			}
		}
	case kindNumber:
		if v.numOK && x.numEq != nil {
			m.hitAll(x.numEq[v.num], k)
		}
		if x.numLit != nil {
			m.hitAll(x.numLit[string(v.text)], k)
		}
		if v.numOK && len(x.ranges.pts) > 0 {
			r := &x.ranges
			i, found := slices.BinarySearch(r.pts, v.num)
			if !found {
				i-- // the segment that starts below the value
			}
			if i >= 0 {
				for n := i + r.size; n >= 1; n >>= 1 {
					m.hitAll(r.tree[n], k)
				}
			}
		}
	case kindTrue:
		m.hitAll(x.trueC, k)
	case kindFalse:
		m.hitAll(x.falseC, k)
	case kindNull:
		m.hitAll(x.nullC, k)
	}
	m.hitGuarded(x.scan, k, v)
}

// check decides branch b and records its rule when it matches.
func (s *snapshot) check(m *matchScratch, bi int32) {
	b := &s.branches[bi]
	if m.ruleEpoch[b.rule] == m.epoch {
		return
	}
	fe := &m.fe
	simple := true
	for _, st := range b.steps {
		if !st.absentOK && m.hitEpoch[st.cond] != m.epoch {
			return
		}
		if fe.pathRel[st.leaf] {
			simple = false
		}
	}
	if simple {
		// No value on these paths lies in an array of objects, so any choice of values is
		// consistent: a condition holds when hit, or, with exists:false, when its path is empty.
		for _, st := range b.steps {
			if st.absentOK && m.hitEpoch[st.cond] != m.epoch && len(fe.at(st.leaf)) > 0 {
				return
			}
		}
	} else if !m.search(b.steps, m.cur[:0]) {
		return
	}
	m.ruleEpoch[b.rule] = m.epoch
	m.matched = append(m.matched, b.rule)
}

// search is evalSteps driven by the hit lists: the values that satisfy each step's condition
// are already known, so only array consistency is left to decide.
func (m *matchScratch) search(steps []mstep, cur []memEntry) bool {
	if len(steps) == 0 {
		return true
	}
	st := &steps[0]
	fe := &m.fe
	if m.hitEpoch[st.cond] == m.epoch {
		for h := m.hitHead[st.cond]; h >= 0; h = m.hits[h].next {
			k := m.hits[h].field
			if fe.consistent(cur, k) && m.search(steps[1:], fe.push(cur, k)) {
				return true
			}
		}
	}
	if !st.absentOK {
		return false
	}
	for _, k := range fe.at(st.leaf) {
		if fe.consistent(cur, k) {
			return false
		}
	}
	return m.search(steps[1:], cur)
}
