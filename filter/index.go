package filter

import (
	"maps"
	"math"
	"net/netip"
	"slices"
	"strings"
	"sync"
)

// A snapshot is the compiled, immutable form of a Matcher's rules: one automaton for all of them,
// in the manner of EventBridge's own matcher.
//
// Each branch of each pattern (the pattern with its $or resolved) is a sequence of steps, one per
// field, in the order walkOrder gives (the order of branch.steps); each step is a path and a condition on its value. The
// branches are merged into a trie: rules that begin with the same steps share the nodes for them. A
// node's outgoing transitions are grouped by path, and each group has an index from values to child
// nodes: exact values by map lookup, prefixes and suffixes by one map lookup per distinct length,
// numeric ranges in an interval tree, and the rest (anything-but, cidr, wildcards without literal
// ends) by a short scan. Matching flattens the event once and walks the trie from the root,
// following for each node only the transitions the event's values take, so its cost depends on how
// many rules partly match the event, not on how many rules there are.
//
// Arrays: a transition taken on a value inside an array of objects carries that value's array
// positions down the walk, and values in other elements of the same arrays are not used further
// down (all fields of a pattern must match within one element). Walks whose remaining steps
// cannot be affected by any position carried are merged, as are walks that reach one node with
// the same positions that matter below it, and walks that take one transition with the same
// positions that matter to it and below it, which keeps the walk linear in events with many
// independent arrays, whether or not they share an element of an enclosing array.
type snapshot struct {
	version   uint64
	names     []string
	table     *pathTable
	nodes     []tnode
	leafWords int
	pool      sync.Pool
	// first ends a match at the first rule matched, for a snapshot that only answers whether
	// any rule matches (a Pattern's, see Pattern.automaton).
	first bool
}

// tnode is a state of the automaton.
type tnode struct {
	accept  []int32  // rules matched on reaching the node
	trans   []ttrans // by path
	subtree []uint64 // the leaf paths tested at or below this node
}

// ttrans is a node's transitions on one path.
type ttrans struct {
	leaf   int32
	id     int32 // numbers the transitions of all nodes, for the search's memo
	idx    pathIndex
	absent []int32  // children taken when the path has no usable value ({"exists": false})
	leaves []uint64 // the leaf paths tested by the transition and below its children
	// keys are, when the transition tests exact strings only, those strings in ascending
	// order (see valueIndex); nil otherwise.
	keys []string
}

// pathIndex finds, for one value, the transitions it takes: the ids it holds are trie nodes.
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

// lenIndex finds the prefixes (or suffixes) of a value among a set. Walking the value once, it
// keeps a rolling hash of the first (or last) n bytes, and at each length some entry has it looks
// that hash up: one integer-keyed map lookup per distinct length, and no string hashing.
type lenIndex struct {
	m      map[string][]guarded // while building
	lens   []int
	byHash map[uint64][]hashedEntry
	suffix bool
}

type hashedEntry struct {
	s  string
	gs []guarded
}

const rollMul = 0x100000001b3

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

// seal builds the hash table; add must not be called afterwards.
func (x *lenIndex) seal(suffix bool) {
	x.suffix = suffix
	if x.m == nil {
		return
	}
	x.byHash = make(map[uint64][]hashedEntry, len(x.m))
	for s, gs := range x.m {
		h := rollHash([]byte(s), len(s), suffix)
		x.byHash[h] = append(x.byHash[h], hashedEntry{s: s, gs: gs})
	}
	x.m = nil
}

// rollHash hashes the first n bytes of b, or, for suffix, the last n bytes taken from the end.
func rollHash(b []byte, n int, suffix bool) uint64 {
	var h uint64
	for i := range n {
		c := b[i]
		if suffix {
			c = b[len(b)-1-i]
		}
		h = h*rollMul + uint64(c)
	}
	return h
}

// find pushes the children of every entry that is a prefix (suffix) of text.
func (x *lenIndex) find(m *matchScratch, text []byte, v *value) {
	var h uint64
	i := 0
	for _, n := range x.lens {
		if n > len(text) {
			return
		}
		for ; i < n; i++ {
			c := text[i]
			if x.suffix {
				c = text[len(text)-1-i]
			}
			h = h*rollMul + uint64(c)
		}
		for _, e := range x.byHash[h] {
			if x.suffix && string(text[len(text)-n:]) == e.s || !x.suffix && string(text[:n]) == e.s {
				m.collectGuarded(e.gs, v)
			}
		}
	}
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

// buildTrans collects one node's transitions on one path while the trie is built.
type buildTrans struct {
	leaf  int32
	child map[string]int32 // condition key -> child node
	conds []*cond
	kids  []int32
}

// walkOrder returns the order a branch's steps (given in path order) are tested in, by the
// automaton and by Pattern alike. Without {"exists": false} the order does not change the
// outcome, so the steps that narrow the walk most come first: exact values, then prefixes and
// suffixes, wildcards, ranges, and last the tests most values pass. That preference yields to
// one rule: the steps under one key are tested one after the other, as in path order. A walk
// holds a position in an array of objects from the first step that takes a value inside it to
// the last step that tests a field under it; kept together, the steps hold positions only in the
// arrays enclosing the field tested next, one chain of them, and a walk has as many states as
// that chain has elements. Interleaving the fields of sibling arrays (a.x, b.x, a.w, b.w) would
// hold a position in each at once, n^k states for k arrays of n objects; so would path order
// itself when one key is a prefix of another, as "a-b" sorts between "a" and "a.x".
//
// A step that accepts absence ({"exists": false}) is judged against the array elements chosen for
// the fields before it in path order, as EventBridge does. Those elements lie in arrays under the
// step's own top-level key (the event is an object, not an array), so the groups of different
// top-level keys are still ordered freely. Inside a group that holds such a step, each absence
// test keeps its place in path order, and so the set of steps before it; only the steps between
// two of them are reordered, grouped by key as above but in path order of their first step, so
// that a group an absence test interrupted is taken up again first.
func walkOrder(steps []step) []step {
	segs := make([][]string, len(steps))
	idx := make([]int, len(steps))
	for i := range steps {
		segs[i] = strings.Split(steps[i].path, ".")
		idx[i] = i
	}
	out := make([]step, 0, len(steps))
	for _, i := range orderUnder(steps, segs, idx, 0, true) {
		out = append(out, steps[i])
	}
	return out
}

// orderUnder orders the steps idx (indexes into steps, in path order), whose paths share their
// first depth segments: the steps whose paths continue with one key form a group, each group is
// ordered in turn and kept together, and the groups, and the steps whose paths end here, go most
// selective first (by the best rank in a group) when byRank is set, in path order of their first
// step otherwise, and among equals.
//
// Below the top level, a group holding a step that accepts absence is ordered by absenceOrder
// (see walkOrder).
func orderUnder(steps []step, segs [][]string, idx []int, depth int, byRank bool) []int {
	if len(idx) == 1 {
		return idx
	}
	if depth > 0 && byRank && slices.ContainsFunc(idx, func(i int) bool { return steps[i].c.absentOK }) {
		return absenceOrder(steps, segs, idx, depth)
	}
	type item struct {
		rank int
		idx  []int
	}
	var items []item
	at := map[string]int{}
	for _, i := range idx {
		if len(segs[i]) == depth {
			items = append(items, item{rank: condRank(steps[i].c), idx: []int{i}})
			continue
		}
		k := segs[i][depth]
		j, ok := at[k]
		if !ok {
			j = len(items)
			at[k] = j
			items = append(items, item{rank: math.MaxInt})
		}
		items[j].rank = min(items[j].rank, condRank(steps[i].c))
		items[j].idx = append(items[j].idx, i)
	}
	// Items are in the path order of their first step, which the stable sort keeps among equals.
	if byRank {
		slices.SortStableFunc(items, func(a, b item) int { return a.rank - b.rank })
	}
	out := make([]int, 0, len(idx))
	for _, it := range items {
		if len(it.idx) == 1 {
			out = append(out, it.idx[0])
			continue
		}
		out = append(out, orderUnder(steps, segs, it.idx, depth+1, byRank)...)
	}
	return out
}

// absenceOrder orders the steps idx of a group holding steps that accept absence: each of those
// stays where path order puts it, and the steps between two of them are grouped by key in path
// order of their first step.
func absenceOrder(steps []step, segs [][]string, idx []int, depth int) []int {
	out := make([]int, 0, len(idx))
	var stretch []int
	flush := func() {
		if len(stretch) > 0 {
			out = append(out, orderUnder(steps, segs, stretch, depth, false)...)
			stretch = nil
		}
	}
	for _, i := range idx {
		if steps[i].c.absentOK {
			flush()
			out = append(out, i)
			continue
		}
		stretch = append(stretch, i)
	}
	flush()
	return out
}

// condRank orders conditions from the most to the least selective.
func condRank(c *cond) int {
	r := 0
	for i := range c.ms {
		m := &c.ms[i]
		var k int
		switch m.op {
		case opExact, opNumber, opEqualsFold:
			k = 0
		case opPrefix, opSuffix, opPrefixFold, opSuffixFold:
			k = 1
			if len(m.s) < 3 {
				k = 2
			}
		case opWildcard, opTrue, opFalse, opNull:
			k = 2
		case opNumeric, opCIDR:
			k = 3
		default: // exists, anything-but
			k = 4
		}
		r = max(r, k)
	}
	return r
}

// buildSnapshot compiles rules (sorted by name) into one snapshot.
func buildSnapshot(names []string, pats []*Pattern, version uint64) *snapshot {
	s := &snapshot{version: version, names: names}
	leafOf := map[string]int32{}
	var paths []string
	type bnode struct {
		accept []int32
		trans  map[int32]*buildTrans
	}
	nodes := []bnode{{}}
	for r, p := range pats {
		for _, b := range p.branches {
			n := int32(0)
			for _, st := range b.steps {
				leaf, ok := leafOf[st.path]
				if !ok {
					leaf = int32(len(paths))
					leafOf[st.path] = leaf
					paths = append(paths, st.path)
				}
				if nodes[n].trans == nil {
					nodes[n].trans = map[int32]*buildTrans{}
				}
				bt := nodes[n].trans[leaf]
				if bt == nil {
					bt = &buildTrans{leaf: leaf, child: map[string]int32{}}
					nodes[n].trans[leaf] = bt
				}
				child, ok := bt.child[st.c.key]
				if !ok {
					child = int32(len(nodes))
					nodes = append(nodes, bnode{})
					bt.child[st.c.key] = child
					bt.conds = append(bt.conds, st.c)
					bt.kids = append(bt.kids, child)
				}
				n = child
			}
			if a := nodes[n].accept; len(a) == 0 || a[len(a)-1] != int32(r) {
				nodes[n].accept = append(nodes[n].accept, int32(r))
			}
		}
	}
	s.table = newPathTable(paths)
	s.leafWords = (len(paths) + 63) / 64
	s.nodes = make([]tnode, len(nodes))
	bits := make([]uint64, len(nodes)*s.leafWords)
	for i := range nodes {
		tn := &s.nodes[i]
		tn.accept = nodes[i].accept
		tn.subtree = bits[i*s.leafWords : (i+1)*s.leafWords : (i+1)*s.leafWords]
		for _, bt := range nodes[i].trans {
			tn.trans = append(tn.trans, buildTransitions(bt))
		}
		slices.SortFunc(tn.trans, func(a, b ttrans) int { return int(a.leaf - b.leaf) })
	}
	// Children always come after their parent, so one backward pass fills the subtrees.
	ntrans := 0
	for i := range s.nodes {
		ntrans += len(s.nodes[i].trans)
	}
	tbits := make([]uint64, ntrans*s.leafWords)
	id := int32(0)
	for i := len(s.nodes) - 1; i >= 0; i-- {
		tn := &s.nodes[i]
		for ti := range tn.trans {
			t := &tn.trans[ti]
			t.id = id
			t.leaves = tbits[int(id)*s.leafWords : int(id+1)*s.leafWords : int(id+1)*s.leafWords]
			id++
			t.leaves[t.leaf/64] |= 1 << (t.leaf % 64)
			for _, k := range nodes[i].trans[t.leaf].kids {
				for w, x := range s.nodes[k].subtree {
					t.leaves[w] |= x
				}
			}
			for w, x := range t.leaves {
				tn.subtree[w] |= x
			}
		}
	}
	s.pool.New = func() any { return s.newScratch() }
	return s
}

// buildTransitions indexes the conditions of one node's transitions on one path.
func buildTransitions(bt *buildTrans) ttrans {
	t := ttrans{leaf: bt.leaf}
	x := &t.idx
	var ranges []rangeEntry
	for ci, c := range bt.conds {
		id := bt.kids[ci]
		if c.absentOK {
			t.absent = append(t.absent, id)
		}
		for mi := range c.ms {
			m := &c.ms[mi]
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
				ranges = append(ranges, rangeEntry{lo: m.lo, hi: m.hi, cond: id})
			case opExists:
				x.exists = append(x.exists, id)
			case opCIDR, opAnythingBut:
				x.scan = append(x.scan, guarded{cond: id, verify: m})
			}
		}
	}
	x.ranges = buildIntervals(ranges)
	x.prefix.seal(false)
	x.suffix.seal(true)
	x.foldPrefix.seal(false)
	x.foldSuffix.seal(true)
	if x.exact != nil && x.ip == nil && x.numEq == nil && x.numLit == nil && x.fold == nil &&
		len(x.trueC)+len(x.falseC)+len(x.nullC)+len(x.exists)+len(x.scan)+len(x.ranges.pts) == 0 &&
		x.prefix.byHash == nil && x.suffix.byHash == nil && x.foldPrefix.byHash == nil && x.foldSuffix.byHash == nil {
		t.keys = slices.Sorted(maps.Keys(x.exact))
	}
	return t
}

func appendMap(m map[string][]int32, k string, id int32) map[string][]int32 {
	if m == nil {
		m = make(map[string][]int32)
	}
	m[k] = append(m[k], id)
	return m
}

// matchScratch is the per-call state of a snapshot match; it comes from the snapshot's pool.
type matchScratch struct {
	fe        flatEvent
	epoch     uint32
	seen      []uint32 // per node: visited in this epoch with no array positions that matter (fe.states has the others)
	stamp     uint32
	kidStamp  []uint32 // per node: already collected for the current value
	kids      []int32  // stack of children to visit
	stack     []int32  // sets of array positions, as element nodes
	ruleEpoch []uint32
	matched   []int32
	v         value
	values    valueIndex
}

func (s *snapshot) newScratch() any {
	return &matchScratch{
		seen:      make([]uint32, len(s.nodes)),
		kidStamp:  make([]uint32, len(s.nodes)),
		ruleEpoch: make([]uint32, len(s.names)),
	}
}

func (m *matchScratch) next() {
	m.epoch++
	if m.epoch == 0 {
		clear(m.seen)
		clear(m.ruleEpoch)
		m.epoch = 1
	}
	m.matched = m.matched[:0]
	m.kids = m.kids[:0]
	m.stack = m.stack[:0]
	m.fe.states.reset()
	m.values.reset(len(m.fe.table.paths))
}

func (m *matchScratch) collectOne(id int32) {
	if m.kidStamp[id] != m.stamp {
		m.kidStamp[id] = m.stamp
		m.kids = append(m.kids, id)
	}
}

// collect pushes the children in ids onto m.kids, once per value.
func (m *matchScratch) collect(ids []int32) {
	for _, id := range ids {
		if m.kidStamp[id] != m.stamp {
			m.kidStamp[id] = m.stamp
			m.kids = append(m.kids, id)
		}
	}
}

func (m *matchScratch) collectGuarded(gs []guarded, v *value) {
	for i := range gs {
		if gs[i].verify == nil || gs[i].verify.match(v) {
			m.collectOne(gs[i].cond)
		}
	}
}

// match walks the automaton over the flattened event in m.fe and leaves the matching rule ids,
// ascending, in m.matched.
func (s *snapshot) match(m *matchScratch) {
	m.next()
	s.visit(m, 0, nil)
	slices.Sort(m.matched)
}

func (s *snapshot) visit(m *matchScratch, n int32, cur []int32) {
	nd := &s.nodes[n]
	fe := &m.fe
	fe.work++
	top, optTop := len(m.stack), len(fe.opts)
	defer func() { m.stack, fe.opts = m.stack[:top], fe.opts[:optTop] }()
	if len(cur) > 0 {
		cur, _ = fe.reduce(&m.stack, nd.subtree, cur)
	}
	// A visit's effect depends only on the node and the array positions that matter below it,
	// so a second visit with the same ones (often none) has nothing left to do.
	if len(cur) == 0 {
		if m.seen[n] == m.epoch {
			return
		}
		m.seen[n] = m.epoch
	} else if fe.states.add(n, cur) {
		return
	}
	for _, r := range nd.accept {
		if m.ruleEpoch[r] != m.epoch {
			m.ruleEpoch[r] = m.epoch
			m.matched = append(m.matched, r)
		}
	}
	if s.first && len(m.matched) > 0 {
		return
	}
	v := &m.v
	all := cur
	for ti := range nd.trans {
		t := &nd.trans[ti]
		mark := len(m.stack)
		cur := all
		if len(cur) > 0 {
			// Like a visit, a transition's effect depends only on the positions that matter to
			// it, and rules that share the node may need positions this one does not: without
			// this, {"a": {"x": [1]}, "c": {"z": [1]}}, sharing its first step with a rule that
			// tests another field of a's element, would look at c's values once per element of a.
			var changed bool
			cur, changed = fe.reduce(&m.stack, t.leaves, cur)
			if changed && fe.states.add(int32(len(s.nodes))+t.id, cur) {
				m.stack = m.stack[:mark]
				continue
			}
		}
		usable := false
		ks := fe.options(s.table, t.leaf, cur)
		// With absence tests, looking strings up would not tell whether the path has a usable
		// value, unless every value there is usable, as it is with no positions held.
		if t.keys != nil && (len(t.absent) == 0 || len(cur) == 0) && m.values.use(fe, t.leaf, len(t.keys), len(ks)) {
			if s.visitKeys(m, t, cur) {
				return
			}
			usable = len(ks) > 0
			ks = nil
		}
		fe.work += len(ks)
		for _, k := range ks {
			if !fe.consistent(cur, k) {
				continue
			}
			usable = true
			fe.valueOf(k, v)
			base := len(m.kids)
			m.stamp++
			if m.stamp == 0 {
				clear(m.kidStamp)
				m.stamp = 1
			}
			m.lookup(&t.idx, v)
			if len(m.kids) == base {
				continue
			}
			next := cur
			if fe.fields[k].rel {
				t0 := len(m.stack)
				m.stack = fe.join(m.stack, cur, k)
				next = m.stack[t0:]
			}
			for i := base; i < len(m.kids); i++ {
				s.visit(m, m.kids[i], next)
			}
			m.kids = m.kids[:base]
			if s.first && len(m.matched) > 0 {
				return
			}
		}
		if !usable {
			for _, c := range t.absent {
				s.visit(m, c, cur)
			}
			if s.first && len(m.matched) > 0 {
				return
			}
		}
		m.stack = m.stack[:mark]
	}
}

// visitKeys does for transition t, which tests exact strings only, what visit's loop over the
// values does: it takes the transition's strings one by one and visits their children for each
// value equal to one, found through the value index, that the search may choose. It reports
// whether the walk is over (the snapshot's first rule matched).
func (s *snapshot) visitKeys(m *matchScratch, t *ttrans, cur []int32) bool {
	fe := &m.fe
	for _, key := range t.keys {
		fe.work++
		ks := m.values.find(fe, t.leaf, key)
		if len(ks) == 0 {
			continue
		}
		kids := t.idx.exact[key]
		optTop := len(fe.opts)
		ks = fe.narrow(s.table, t.leaf, cur, ks)
		fe.work += len(ks)
		for _, k := range ks {
			if !fe.consistent(cur, k) {
				continue
			}
			next := cur
			t0 := len(m.stack)
			if fe.fields[k].rel {
				m.stack = fe.join(m.stack, cur, k)
				next = m.stack[t0:]
			}
			for _, c := range kids {
				s.visit(m, c, next)
			}
			m.stack = m.stack[:t0]
			if s.first && len(m.matched) > 0 {
				return true
			}
		}
		fe.opts = fe.opts[:optTop]
	}
	return false
}

// lookup pushes onto m.kids the children that value v takes through index x.
func (m *matchScratch) lookup(x *pathIndex, v *value) {
	m.collect(x.exists)
	switch v.kind {
	case kindString:
		if x.exact != nil {
			m.collect(x.exact[string(v.text)])
		}
		if x.ip != nil {
			if a, ok := parseIP(v.text); ok {
				m.collect(x.ip[a])
			}
		}
		if x.prefix.byHash != nil {
			x.prefix.find(m, v.text, v)
		}
		if x.suffix.byHash != nil {
			x.suffix.find(m, v.text, v)
		}
		if x.fold != nil || x.foldPrefix.byHash != nil || x.foldSuffix.byHash != nil {
			f := v.foldedText()
			if x.fold != nil {
				m.collect(x.fold[string(f)])
			}
			if x.foldPrefix.byHash != nil {
				x.foldPrefix.find(m, f, v)
			}
			if x.foldSuffix.byHash != nil {
				x.foldSuffix.find(m, f, v)
			}
		}
	case kindNumber:
		if v.numOK && x.numEq != nil {
			m.collect(x.numEq[v.num])
		}
		if x.numLit != nil {
			m.collect(x.numLit[string(v.text)])
		}
		if v.numOK && len(x.ranges.pts) > 0 {
			r := &x.ranges
			i, found := slices.BinarySearch(r.pts, v.num)
			if !found {
				i-- // the segment that starts below the value
			}
			if i >= 0 {
				for n := i + r.size; n >= 1; n >>= 1 {
					m.collect(r.tree[n])
				}
			}
		}
	case kindTrue:
		m.collect(x.trueC)
	case kindFalse:
		m.collect(x.falseC)
	case kindNull:
		m.collect(x.nullC)
	}
	m.collectGuarded(x.scan, v)
}
