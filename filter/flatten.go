package filter

import (
	"bytes"
	"math/bits"
	"slices"
	"sort"
	"strings"

	"github.com/fanbridge/fanbridge/internal/jsonstr"
)

// pathTable lists the field paths some pattern reads, as a tree of object keys. A path is the
// object keys from the event's root joined with "." and arrays leave no trace, so, as in
// EventBridge, {"a.b": 1} and {"a": {"b": 1}} both have a field at "a.b": the tree is keyed by the
// dot-separated segments and an event key with a dot in it is followed segment by segment. The
// flattener only descends into keys that lead to a listed path.
type pathTable struct {
	nodes []pathNode // nodes[0] is the root, the event object itself
	paths []string   // leaf paths by leaf id
	below [][]uint64 // per node: the leaves whose path is this node's path or lies under it
	node  []int32    // per leaf: its node
	// nodePath is, per node, its path (the root's is empty), for the error about an event that
	// reaches a node twice.
	nodePath []string
}

type pathNode struct {
	leaf int32            // leaf id, or -1 when no pattern tests this path itself
	kids map[string]int32 // next segment -> node
	// first and lens rule most keys out before the map lookup: the first bytes and the lengths
	// (up to 63; 63 stands for longer) of the segments in kids.
	first [4]uint64
	lens  uint64
}

// newPathTable builds a table whose leaf ids are the indexes of paths.
func newPathTable(paths []string) *pathTable {
	t := &pathTable{nodes: []pathNode{{leaf: -1}}, paths: paths, node: make([]int32, len(paths)), nodePath: []string{""}}
	chains := make([][]int32, len(paths))
	for i, p := range paths {
		n := int32(0)
		end := -1
		for _, seg := range strings.Split(p, ".") {
			end += 1 + len(seg)
			next, ok := t.nodes[n].kids[seg]
			if !ok {
				next = int32(len(t.nodes))
				t.nodes = append(t.nodes, pathNode{leaf: -1})
				t.nodePath = append(t.nodePath, p[:end])
				if t.nodes[n].kids == nil {
					t.nodes[n].kids = map[string]int32{}
				}
				t.nodes[n].kids[seg] = next
				// An event key that starts with '.' leads through an empty segment (".x" is the
				// path of {"": {"x": …}} too), so an empty segment admits the first byte '.'.
				c := byte('.')
				if seg != "" {
					c = seg[0]
				}
				t.nodes[n].first[c/64] |= 1 << (c % 64)
				t.nodes[n].lens |= 1 << min(len(seg), 63)
			}
			n = next
			chains[i] = append(chains[i], n)
		}
		t.nodes[n].leaf = int32(i)
		t.node[i] = n
	}
	words := (len(paths) + 63) / 64
	bits := make([]uint64, len(t.nodes)*words)
	t.below = make([][]uint64, len(t.nodes))
	for i := range t.below {
		t.below[i] = bits[i*words : (i+1)*words : (i+1)*words]
	}
	for i, chain := range chains {
		for _, n := range chain {
			t.below[n][i/64] |= 1 << (i % 64)
		}
	}
	return t
}

// child returns the node reached from n by the object key key, if it leads to a listed path.
func (t *pathTable) child(n int32, key []byte) (int32, bool) {
	nd := &t.nodes[n]
	if len(key) > 0 && nd.first[key[0]/64]&(1<<(key[0]%64)) == 0 {
		return 0, false
	}
	if bytes.IndexByte(key, '.') < 0 {
		if nd.lens&(1<<min(len(key), 63)) == 0 {
			return 0, false
		}
		id, ok := nd.kids[string(key)]
		return id, ok
	}
	for {
		seg, rest, more := bytes.Cut(key, []byte{'.'})
		id, ok := t.nodes[n].kids[string(seg)]
		if !ok {
			return 0, false
		}
		if !more {
			return id, true
		}
		n, key = id, rest
	}
}

// field is one leaf value of a flattened event.
type field struct {
	leaf   int32 // leaf path id in the table
	kind   valueKind
	numOK  bool
	inText bool // text is in flatEvent.text (unescaped) rather than in the raw event
	rel    bool // lies in an array where array consistency applies (pos >= 0)
	num    int64
	tOff   int32
	tLen   int32
	elem   int32 // the innermost array element it lies in (an index in elems), or -1
	// pos is the innermost element it lies in of an array where consistency applies, or -1: its
	// positions are those of pos and of the elements around pos in such arrays (see elemNode).
	pos int32
}

// span is a range of field indexes.
type span struct{ lo, hi int32 }

// frame is one open object (arr < 0) or array on the walk down the event. below is the index in
// the stack of the nearest array frame under it, or -1, and elem, for an array, the node in
// elems of its current element, or -1 until a value inside the element needs it.
type frame struct {
	arr, idx    int32
	below, elem int32
}

// elemNode is an element of an array that some recorded value lies in; parent is the element
// of the nearest array around that one, or -1. The nodes form a tree with one node per element,
// and a value's array positions are read up its chain of parents rather than copied for each
// value, so that the memory a flattened event takes follows its size, however deep its arrays
// nest. The walk adds the nodes in document order, an element's node before the nodes inside the
// element and those before it leaves the element, so the nodes inside element e are a range,
// elems[e+1:elemEnd[e]], and so are those inside the elements of one array.
//
// A search holds the positions of the values it has chosen as a set of nodes (see consistent):
// each stands for its own position and those of the elements around it, and none lies inside
// another, so a set of positions in many nested arrays takes one node per value chosen.
type elemNode struct {
	arr, idx, parent int32
}

// flatEvent is an event reduced to the leaf values at listed paths, each with the array elements
// it lies in. It is reused from a pool: after warm-up flattening does not allocate.
type flatEvent struct {
	raw    []byte
	table  *pathTable
	fields []field
	text   []byte
	elems  []elemNode
	arrays []bool // per array id: consistency applies (two or more elements, one holding an object)
	// elemUp is, per element node, the nearest node at or above it in an array where
	// consistency applies, or -1, and elemEnd the end of the nodes inside it. arrLo and arrHi
	// give, per array id, the nodes inside its elements: elems[arrLo:arrHi].
	elemUp       []int32
	elemEnd      []int32
	arrLo, arrHi []int32
	// arrStamp marks, per array id, the arrays options has looked at, when it equals stamp.
	arrStamp []uint32
	stamp    uint32
	// arrayNode is, per array id, the path table node of the path the array sits at, and
	// arraySpan the fields that lie in the array: fields[lo:hi].
	arrayNode []int32
	arraySpan []span

	byPath    []int32 // field indexes grouped by leaf path
	pathStart []int32 // byPath[pathStart[l]:pathStart[l+1]] are the fields at leaf l
	pathRel   []bool  // some field at leaf l has rel set
	// holdLeaves lists, per array id, the leaves with a field that has a position in the array
	// (holdLeaves[holdStart[arr]:holdEnd[arr]], each leaf once): positions in it matter only to
	// steps at those leaves. Sparse, so that its size follows the event's fields, not the
	// number of arrays times the number of paths the rules name; when the list would outgrow
	// holdMax, holdAll is set and matters works the answer out from the path table instead
	// (using ownHeld). arrMark is scratch for it.
	holdLeaves []int32
	holdStart  []int32
	holdEnd    []int32
	holdAll    bool
	ownHeld    []bool
	arrMark    []int32

	keyBuf []byte
	stack  []frame
	fold   []byte // scratch for case folding

	// reached records, per path table node, the last time the walk reached it through an object
	// key, valid when its stamp equals epoch. ctxs holds the element contexts that are open, the
	// event root (0) first and then, for each array the walk is in, the element it is in; lastCtx
	// is the last context id given out. Ids are given out in the order the walk enters elements.
	// ctxParent and ctxArr give, per context id, the context around it and its array's id.
	reached           []reach
	epoch             uint32
	ctxs              []int32
	lastCtx           int32
	ctxParent, ctxArr []int32

	// opts holds the fields a search step may choose from (see options), as a stack, and holes
	// the ranges options leaves out, scratch that keeps its capacity across events.
	opts  []int32
	holes []span

	// red holds sets of positions while a search runs; memo marks (branch, step) searches that
	// failed with no position that mattered, in the current memoEpoch, and memoPos the steps
	// for which states records failures with positions that mattered.
	red       []int32
	memo      []uint32
	memoPos   []uint32
	memoEpoch uint32
	states    stateMemo

	// work counts the search's steps and the values it looks at, for tests that bound it.
	work int
	// lim are the limits of the match under way.
	lim limits
}

// reach is the last time the walk reached a node through an object key: in element context
// ctx, which was then at index depth of flatEvent.ctxs.
type reach struct {
	stamp      uint32
	ctx, depth int32
}

// outsized reports whether an unusually large event grew f's buffers beyond what the pools
// should keep.
func (f *flatEvent) outsized() bool {
	return cap(f.fields) > 1<<14 || cap(f.text) > 1<<20 || cap(f.arrays) > 1<<14 ||
		cap(f.elems) > 1<<14 || cap(f.holdLeaves) > 1<<16 || cap(f.ctxParent) > 1<<16 || f.states.big()
}

func (f *flatEvent) reset(raw []byte) {
	f.raw = raw
	f.table = nil
	f.fields = f.fields[:0]
	f.text = f.text[:0]
	f.elems = f.elems[:0]
	f.arrays = f.arrays[:0]
	f.arrayNode = f.arrayNode[:0]
	f.arraySpan = f.arraySpan[:0]
	f.stack = f.stack[:0]
	f.opts = f.opts[:0]
	f.ctxs = append(f.ctxs[:0], 0)
	f.lastCtx = 0
	f.ctxParent = append(f.ctxParent[:0], -1)
	f.ctxArr = append(f.ctxArr[:0], -1)
	f.epoch++
	if f.epoch == 0 {
		clear(f.reached[:cap(f.reached)])
		f.epoch = 1
	}
}

// flatten reads raw, which must be one JSON object, and records the leaf values at t's paths,
// for a match with the limits lim.
func (f *flatEvent) flatten(t *pathTable, raw []byte, lim limits) error {
	f.reset(raw)
	f.lim = lim
	if len(f.reached) < len(t.nodes) {
		// A new slice is zero, and a reused one holds stamps of earlier events only.
		f.reached = grow(f.reached, len(t.nodes))
	}
	i := skipWS(raw, 0)
	if i >= len(raw) || raw[i] != '{' {
		return syntaxErr(i, "the event must be a JSON object")
	}
	end, err := f.object(t, i, 0, 0)
	if err != nil {
		return err
	}
	if err := checkTrailing(raw, end); err != nil {
		return err
	}
	f.table = t
	f.group(t)
	return nil
}

func (f *flatEvent) object(t *pathTable, i, depth int, node int32) (int, error) {
	b := f.raw
	if depth >= maxEventDepth {
		return i, syntaxErr(i, "nesting too deep")
	}
	// Every array between this object and the enclosing one now holds an object, so its
	// elements can give different paths, and array consistency applies to it. An array already
	// marked was marked with all those under it, so the walk stops there and costs nothing
	// more for the next object in the same array, however many arrays are around it.
	for k := len(f.stack) - 1; k >= 0 && f.stack[k].arr >= 0 && !f.arrays[f.stack[k].arr]; k-- {
		f.arrays[f.stack[k].arr] = true
	}
	f.stack = append(f.stack, frame{arr: -1, below: f.nearestArray(), elem: -1})
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == '}' {
		f.stack = f.stack[:len(f.stack)-1]
		return i + 1, nil
	}
	for {
		kStart := i
		kEnd, esc, err := scanString(b, i)
		if err != nil {
			return kEnd, err
		}
		key := b[kStart+1 : kEnd-1]
		if esc {
			f.keyBuf = jsonstr.AppendUnescaped(f.keyBuf[:0], key)
			key = f.keyBuf
		}
		id, listed := t.child(node, key)
		i = skipWS(b, kEnd)
		if i >= len(b) || b[i] != ':' {
			return i, syntaxErr(i, "expected ':'")
		}
		if listed {
			if !f.reach(id) {
				return kStart, ambiguousErr(kStart, t.nodePath[id])
			}
			i, err = f.value(t, i+1, depth+1, id)
		} else {
			i, err = skipValue(b, i+1, depth+1)
		}
		if err != nil {
			return i, err
		}
		i = skipWS(b, i)
		if i < len(b) && b[i] == ',' {
			i = skipWS(b, i+1)
			continue
		}
		if i < len(b) && b[i] == '}' {
			f.stack = f.stack[:len(f.stack)-1]
			return i + 1, nil
		}
		return i, syntaxErr(i, "expected ',' or '}'")
	}
}

func (f *flatEvent) value(t *pathTable, i, depth int, id int32) (int, error) {
	b := f.raw
	n := t.nodes[id]
	i = skipWS(b, i)
	if i >= len(b) {
		return i, syntaxErr(i, "unexpected end")
	}
	switch c := b[i]; c {
	case '{':
		if len(n.kids) == 0 {
			return skipValue(b, i, depth)
		}
		return f.object(t, i, depth, id)
	case '[':
		if depth >= maxEventDepth {
			return i, syntaxErr(i, "nesting too deep")
		}
		arr := int32(len(f.arrays))
		f.arrays = append(f.arrays, false)
		f.arrayNode = append(f.arrayNode, id)
		f.arraySpan = append(f.arraySpan, span{lo: int32(len(f.fields))})
		f.stack = append(f.stack, frame{arr: arr, below: f.nearestArray(), elem: -1})
		top := len(f.stack) - 1
		i = skipWS(b, i+1)
		if i < len(b) && b[i] == ']' {
			f.stack = f.stack[:top]
			f.arraySpan[arr].hi = int32(len(f.fields))
			return i + 1, nil
		}
		f.ctxs = append(f.ctxs, 0)
		ctxTop := len(f.ctxs) - 1
		for idx := int32(0); ; idx++ {
			f.stack[top].idx = idx
			f.stack[top].elem = -1
			f.lastCtx++
			f.ctxs[ctxTop] = f.lastCtx
			f.ctxParent = append(f.ctxParent, f.ctxs[ctxTop-1])
			f.ctxArr = append(f.ctxArr, arr)
			var err error
			if i, err = f.value(t, i, depth+1, id); err != nil {
				return i, err
			}
			i = skipWS(b, i)
			if i < len(b) && b[i] == ',' {
				i++
				continue
			}
			if i < len(b) && b[i] == ']' {
				f.stack = f.stack[:top]
				f.ctxs = f.ctxs[:ctxTop]
				f.arraySpan[arr].hi = int32(len(f.fields))
				if idx == 0 {
					// Every value with a position in an array of one element holds the same
					// one, so the array can never set two values apart.
					f.arrays[arr] = false
				}
				return i + 1, nil
			}
			return i, syntaxErr(i, "expected ',' or ']'")
		}
	case '"':
		end, esc, err := scanString(b, i)
		if err != nil || n.leaf < 0 {
			return end, err
		}
		fd := field{leaf: n.leaf, kind: kindString}
		if esc {
			off := len(f.text)
			f.text = jsonstr.AppendUnescaped(f.text, b[i+1:end-1])
			fd.inText, fd.tOff, fd.tLen = true, int32(off), int32(len(f.text)-off)
		} else {
			fd.tOff, fd.tLen = int32(i+1), int32(end-i-2)
		}
		f.record(fd)
		return end, nil
	case 't', 'f', 'n':
		lit, kind := "true", kindTrue
		if c == 'f' {
			lit, kind = "false", kindFalse
		} else if c == 'n' {
			lit, kind = "null", kindNull
		}
		end, err := scanLiteral(b, i, lit)
		if err != nil || n.leaf < 0 {
			return end, err
		}
		f.record(field{leaf: n.leaf, kind: kind})
		return end, nil
	default:
		end, err := scanNumber(b, i)
		if err != nil || n.leaf < 0 {
			return end, err
		}
		num, ok := comparableNumber(b[i:end])
		f.record(field{leaf: n.leaf, kind: kindNumber, num: num, numOK: ok, tOff: int32(i), tLen: int32(end - i)})
		return end, nil
	}
}

// reach records that the walk reached node id through an object key, and reports whether the
// event is still unambiguous there: every earlier reach of the node lies in a different element of
// one array than the current one, that is, where the chains of element contexts of the two reaches
// part, the two contexts below the parting are elements of the same array. An event without
// repeated keys or a path spelled two ways reaches a node more than once only so, and array
// consistency keeps the values of one reach apart from those of another. A repeated key, a dotted
// key beside the nested spelling of its path, or spellings in elements of two different arrays
// give instead copies of the values there whose array positions never conflict, and a search
// testing several fields under them would have to try every combination of an element of one
// copy with an element of another.
//
// Context ids are given out in the order the walk enters elements, and a context still open is
// an ancestor of every one given out after it, so the earlier reach is in the current context, or
// one around or inside it, exactly when its context is still open or was given out after the
// current one; otherwise the two chains are walked up (ctxParent) to where they part, at most the
// nesting depth. Comparing with the last reach only is enough: the walk never re-enters an element
// it left, so where the current reach parts from any earlier one, it parts from the last one at
// the same place or below it, inside an element of the array the earlier two were told apart by.
func (f *flatEvent) reach(id int32) bool {
	r := &f.reached[id]
	cur, depth := f.ctxs[len(f.ctxs)-1], int32(len(f.ctxs)-1)
	if r.stamp == f.epoch {
		if r.ctx >= cur || r.depth < int32(len(f.ctxs)) && f.ctxs[r.depth] == r.ctx {
			return false
		}
		a, d := r.ctx, r.depth
		for d > depth {
			a = f.ctxParent[a]
			d--
		}
		var ca, cc int32
		for f.ctxs[d] != a {
			ca, cc = a, f.ctxs[d]
			a = f.ctxParent[a]
			d--
		}
		if f.ctxArr[ca] != f.ctxArr[cc] {
			return false // the reaches part in elements of two different arrays
		}
	}
	*r = reach{stamp: f.epoch, ctx: cur, depth: depth}
	return true
}

// nearestArray returns the index in the stack of the innermost open array, or -1.
func (f *flatEvent) nearestArray() int32 {
	n := len(f.stack)
	if n == 0 {
		return -1
	}
	if f.stack[n-1].arr >= 0 {
		return int32(n - 1)
	}
	return f.stack[n-1].below
}

// record adds a leaf value with the innermost array element it lies in; group lists its array
// positions. As in event-ruler, only an object or an array takes a position in the array
// holding it: a value that is itself an element of the innermost array has none there, so it
// never conflicts with the fields of that array's objects. The stack's top frame is the object
// or array holding the value, and the array under that frame is the innermost one where the
// value has a position.
func (f *flatEvent) record(fd field) {
	fd.elem = f.element(f.stack[len(f.stack)-1].below)
	f.fields = append(f.fields, fd)
}

// element returns the node of the current element of the array at stack index k (or -1 for no
// array), adding it and the elements around it to elems the first time a value needs them.
func (f *flatEvent) element(k int32) int32 {
	if k < 0 {
		return -1
	}
	if e := f.stack[k].elem; e >= 0 {
		return e
	}
	parent := f.element(f.stack[k].below)
	e := int32(len(f.elems))
	f.elems = append(f.elems, elemNode{arr: f.stack[k].arr, idx: f.stack[k].idx, parent: parent})
	f.stack[k].elem = e
	return e
}

// group works out, per field, the innermost element of an array where consistency applies
// that it lies in, orders the fields by leaf path and lists, per array, the leaves whose
// fields have a position in it.
func (f *flatEvent) group(t *pathTable) {
	leaves := len(t.paths)
	f.pathStart = grow(f.pathStart, leaves+1)
	clear(f.pathStart)
	f.pathRel = grow(f.pathRel, leaves)
	clear(f.pathRel)
	arrays := len(f.arrays)
	// Parents come before their children in elems, so one pass forward finds, per element, the
	// nearest element at or above it that counts, and one backward the end of its subtree.
	f.elemUp = grow(f.elemUp, len(f.elems))
	f.elemEnd = grow(f.elemEnd, len(f.elems))
	for i, e := range f.elems {
		up := int32(-1)
		if e.parent >= 0 {
			up = f.elemUp[e.parent]
		}
		if f.arrays[e.arr] {
			up = int32(i)
		}
		f.elemUp[i], f.elemEnd[i] = up, int32(i+1)
	}
	for i := len(f.elems) - 1; i >= 0; i-- {
		if p := f.elems[i].parent; p >= 0 {
			f.elemEnd[p] = max(f.elemEnd[p], f.elemEnd[i])
		}
	}
	// An array's element nodes come in the order of its elements, each after the nodes inside
	// the one before.
	f.arrLo = grow(f.arrLo, arrays)
	f.arrHi = grow(f.arrHi, arrays)
	clear(f.arrHi)
	for i, e := range f.elems {
		if f.arrHi[e.arr] == 0 {
			f.arrLo[e.arr] = int32(i)
		}
		f.arrHi[e.arr] = f.elemEnd[i]
	}
	for k := range f.fields {
		fd := &f.fields[k]
		fd.pos, fd.rel = -1, false
		if fd.elem >= 0 {
			if u := f.elemUp[fd.elem]; u >= 0 {
				fd.pos, fd.rel = u, true
				f.pathRel[fd.leaf] = true
			}
		}
		f.pathStart[fd.leaf+1]++
	}
	for l := 1; l <= leaves; l++ {
		f.pathStart[l] += f.pathStart[l-1]
	}
	f.byPath = grow(f.byPath, len(f.fields))
	// Fill each leaf's slot range in field order; pathStart[l] ends up at the next leaf's start,
	// so shift it back afterwards.
	for k := range f.fields {
		l := f.fields[k].leaf
		f.byPath[f.pathStart[l]] = int32(k)
		f.pathStart[l]++
	}
	for l := leaves; l > 0; l-- {
		f.pathStart[l] = f.pathStart[l-1]
	}
	f.pathStart[0] = 0
	f.holdAll = !f.listHolds(leaves)
	if f.holdAll {
		f.markOwnHeld(t)
	}
}

// listHolds fills holdLeaves and reports whether it fits in holdMax. It goes leaf by leaf and
// walks each field's positions up to the first array that already lists the leaf, whose own
// positions the walk that listed it went through: twice (counting, then placing), each time a
// step per field and one per pair listed.
func (f *flatEvent) listHolds(leaves int) bool {
	arrays := len(f.arrays)
	f.holdStart = grow(f.holdStart, arrays+1)
	clear(f.holdStart)
	f.arrMark = grow(f.arrMark, arrays)
	clear(f.arrMark)
	limit, total := f.holdMax(), 0
	for l := range int32(leaves) {
		if !f.pathRel[l] {
			continue
		}
		for _, k := range f.at(l) {
			for e := f.fields[k].pos; e >= 0; e = f.up(e) {
				a := f.elems[e].arr
				if f.arrMark[a] == l+1 {
					break
				}
				f.arrMark[a] = l + 1
				f.holdStart[a+1]++
				if total++; total > limit {
					return false
				}
			}
		}
	}
	for a := 1; a <= arrays; a++ {
		f.holdStart[a] += f.holdStart[a-1]
	}
	f.holdLeaves = grow(f.holdLeaves, total)
	f.holdEnd = grow(f.holdEnd, arrays)
	copy(f.holdEnd, f.holdStart[:arrays])
	for l := range int32(leaves) {
		if !f.pathRel[l] {
			continue
		}
		for _, k := range f.at(l) {
			for e := f.fields[k].pos; e >= 0; e = f.up(e) {
				a := f.elems[e].arr
				if f.arrMark[a] == -(l + 1) {
					break
				}
				f.arrMark[a] = -(l + 1)
				f.holdLeaves[f.holdEnd[a]] = l
				f.holdEnd[a]++
			}
		}
	}
	return true
}

// holdMax is the number of (array, leaf) pairs listHolds may list for the event: half its size in
// bytes, plus the limits' holdFloor. An event needs arrays nested deep around fields at many paths
// some rule names to come near it.
func (f *flatEvent) holdMax() int { return len(f.raw)/2 + f.lim.holdFloor }

// markOwnHeld sets ownHeld for the arrays where a field at the array's own path has a position:
// a value in an array nested in one of its elements.
func (f *flatEvent) markOwnHeld(t *pathTable) {
	f.ownHeld = grow(f.ownHeld, len(f.arrays))
	clear(f.ownHeld)
	for k := range f.fields {
		fd := &f.fields[k]
		for e := fd.pos; e >= 0; e = f.up(e) {
			a := f.elems[e].arr
			if f.arrayNode[a] != t.node[fd.leaf] || f.ownHeld[a] {
				break
			}
			f.ownHeld[a] = true
		}
	}
}

// up returns the nearest element above node e in an array where consistency applies, or -1.
func (f *flatEvent) up(e int32) int32 {
	if p := f.elems[e].parent; p >= 0 {
		return f.elemUp[p]
	}
	return -1
}

// inside reports whether node u is node e or lies inside it.
func (f *flatEvent) inside(u, e int32) bool {
	return u >= e && u < f.elemEnd[e]
}

// at returns the indexes of the fields at leaf l, in document order.
func (f *flatEvent) at(l int32) []int32 {
	return f.byPath[f.pathStart[l]:f.pathStart[l+1]]
}

func (f *flatEvent) textOf(fd *field) []byte {
	if fd.inText {
		return f.text[fd.tOff : fd.tOff+fd.tLen]
	}
	return f.raw[fd.tOff : fd.tOff+fd.tLen]
}

// valueOf fills v with field k's value.
func (f *flatEvent) valueOf(k int32, v *value) {
	fd := &f.fields[k]
	*v = value{kind: fd.kind, num: fd.num, numOK: fd.numOK, fold: &f.fold}
	if fd.kind == kindString || fd.kind == kindNumber {
		v.text = f.textOf(fd)
	}
}

// options returns the fields at leaf l that a search holding the array positions cur (a set of
// element nodes, see consistent) may choose from, as a slice of l's fields or on the f.opts
// stack. It leaves out, by binary search, the fields that lie in another element of an array
// where cur holds a position, which consistent would reject one by one: without this, a pattern
// testing two fields of one array of n objects would look at n values for each of n elements.
// The fields it returns still need consistent.
func (f *flatEvent) options(t *pathTable, l int32, cur []int32) []int32 {
	return f.narrow(t, l, cur, f.at(l))
}

// narrow is options for ks, some of the fields at leaf l in ascending order.
func (f *flatEvent) narrow(t *pathTable, l int32, cur, ks []int32) []int32 {
	if len(cur) == 0 || len(ks) < f.lim.optionsMin || !f.pathRel[l] {
		return ks
	}
	// holes are ranges of ks to leave out, two per array of cur that l lies strictly under.
	// Only there does every field of the array at l carry a position in it (a scalar element of
	// the array itself has none), and the fields of one element come together, in the order of
	// the elements, as do their positions. There is no limit on their number: with one, a
	// search holding positions in more arrays than it allows stops narrowing, and work on
	// arrays nested that deep grows with the square of the event. The arrays around the nodes
	// of cur are looked at once each: the walk up from a node stops at an array already seen,
	// whose own surroundings were seen with it.
	holes := f.holes[:0]
	if len(f.arrStamp) < len(f.arrays) {
		f.arrStamp = make([]uint32, len(f.arrays)+len(f.arrays)/4)
		f.stamp = 0
	}
	f.stamp++
	if f.stamp == 0 {
		clear(f.arrStamp)
		f.stamp = 1
	}
	for _, c := range cur {
		for e := c; e >= 0; e = f.up(e) {
			f.work++
			a := f.elems[e].arr
			if f.arrStamp[a] == f.stamp {
				break
			}
			f.arrStamp[a] = f.stamp
			an := f.arrayNode[a]
			if an == t.node[l] || t.below[an][l/64]&(1<<(l%64)) == 0 {
				continue
			}
			sp := f.arraySpan[a]
			lo, _ := slices.BinarySearch(ks, sp.lo)
			hi, _ := slices.BinarySearch(ks, sp.hi)
			in := ks[lo:hi]
			end := f.elemEnd[e]
			eLo := lo + sort.Search(len(in), func(i int) bool { f.work++; return f.fields[in[i]].pos >= e })
			eHi := lo + sort.Search(len(in), func(i int) bool { f.work++; return f.fields[in[i]].pos >= end })
			holes = append(holes, span{int32(lo), int32(eLo)}, span{int32(eHi), int32(hi)})
		}
	}
	f.holes = holes
	if len(holes) == 0 {
		return ks
	}
	slices.SortFunc(holes, func(a, b span) int { return int(a.lo - b.lo) })
	t0 := len(f.opts)
	pos := int32(0)
	for _, h := range holes {
		if h.lo > pos {
			f.opts = append(f.opts, ks[pos:h.lo]...)
		}
		pos = max(pos, h.hi)
	}
	f.opts = append(f.opts, ks[pos:]...)
	return f.opts[t0:]
}

// consistent reports whether field k can be chosen together with the fields chosen so far, whose
// positions are cur: no array where k and one of them lie in different elements. cur is a set of
// element nodes in arrays where consistency applies, none inside another, each standing for its
// own position and the positions of the elements around it (see join).
func (f *flatEvent) consistent(cur []int32, k int32) bool {
	fd := &f.fields[k]
	if !fd.rel || len(cur) == 0 {
		return true
	}
	f.work += len(cur)
	for _, c := range cur {
		if !f.agree(c, fd.pos) {
			return false
		}
	}
	return true
}

// agree reports whether the positions of nodes c and u agree: in every array where both have
// one, it is the same element. Going up from c, the first array in which u has a position (u
// lies inside one of its elements) decides: if u lies in the element c's chain has there, the
// two chains share everything above it, otherwise they part in that array. The walk takes at
// most one step per array around c.
func (f *flatEvent) agree(c, u int32) bool {
	if f.inside(u, c) || f.inside(c, u) {
		return true
	}
	for e := c; e >= 0; e = f.up(e) {
		f.work++
		if a := f.elems[e].arr; u >= f.arrLo[a] && u < f.arrHi[a] {
			return f.inside(u, e)
		}
	}
	return true
}

// join appends to s the positions cur together with field k's, which must agree with them: the
// nodes of cur that k's node does not lie inside, and k's node unless it lies inside (or is) one
// of cur, which then stands for it.
func (f *flatEvent) join(s, cur []int32, k int32) []int32 {
	u := f.fields[k].pos
	if u < 0 {
		return append(s, cur...)
	}
	f.work += len(cur)
	covered := false
	for _, c := range cur {
		if f.inside(c, u) {
			covered = true
		} else if f.inside(u, c) {
			continue // u's chain holds c's
		}
		s = append(s, c)
	}
	if !covered {
		s = append(s, u)
	}
	return s
}

// newMemo starts a search over n steps.
func (f *flatEvent) newMemo(n int) {
	if cap(f.memo) < n {
		f.memo = make([]uint32, n)
		f.memoPos = make([]uint32, n)
		f.memoEpoch = 0
	}
	f.memo = f.memo[:n]
	f.memoPos = f.memoPos[:n]
	f.memoEpoch++
	if f.memoEpoch == 0 {
		clear(f.memo[:cap(f.memo)])
		clear(f.memoPos[:cap(f.memoPos)])
		f.memoEpoch = 1
	}
	f.red = f.red[:0]
	f.states.reset()
}

// matters reports whether array arr holds a field at one of the leaves in leaves, a bitset.
func (f *flatEvent) matters(arr int32, leaves []uint64) bool {
	if f.holdAll {
		return f.mattersByPath(arr, leaves)
	}
	for _, l := range f.holdLeaves[f.holdStart[arr]:f.holdEnd[arr]] {
		if leaves[l/64]&(1<<(l%64)) != 0 {
			return true
		}
	}
	return false
}

// mattersByPath is matters without holdLeaves. A field at a leaf under the array's path that
// lies among the array's fields has a position in it, one at the array's own path only if it
// lies in an array nested in the array (ownHeld).
func (f *flatEvent) mattersByPath(arr int32, leaves []uint64) bool {
	t := f.table
	an := f.arrayNode[arr]
	own := t.nodes[an].leaf
	sp := f.arraySpan[arr]
	for w, word := range t.below[an] {
		word &= leaves[w]
		for word != 0 {
			f.work++
			l := int32(w*64 + bits.TrailingZeros64(word))
			word &= word - 1
			if l == own {
				if f.ownHeld[arr] {
					return true
				}
				continue
			}
			ks := f.at(l)
			if i, _ := slices.BinarySearch(ks, sp.lo); i < len(ks) && ks[i] < sp.hi {
				return true
			}
		}
	}
	return false
}

// reduce returns cur without the positions in arrays that hold no field at the leaves in leaves,
// and whether that changed it. A field with a position in an array has one in every array around
// it where consistency applies, so the positions that stay are, for each node of cur, those of
// the innermost node at or around it whose array holds such a field and of the nodes around that
// one. The result, when it differs, is built on *s: those nodes, each once and none inside
// another, in ascending order.
func (f *flatEvent) reduce(s *[]int32, leaves []uint64, cur []int32) ([]int32, bool) {
	f.work += len(cur)
	i := 0
	for i < len(cur) && f.matters(f.elems[cur[i]].arr, leaves) {
		i++
	}
	if i == len(cur) {
		return cur, false
	}
	t0 := len(*s)
	out := append(*s, cur[:i]...)
	for _, c := range cur[i:] {
		e := c
		for e >= 0 && !f.matters(f.elems[e].arr, leaves) {
			f.work++
			e = f.up(e)
		}
		if e >= 0 {
			out = append(out, e)
		}
	}
	red := out[t0:]
	slices.Sort(red)
	// In ascending order a node comes before the nodes inside it, and the last one kept is the
	// only one that can hold the next.
	n := 0
	for _, e := range red {
		if n > 0 && f.inside(e, red[n-1]) {
			red[n-1] = e
			continue
		}
		red[n] = e
		n++
	}
	*s = out[:t0+n]
	return red[:n], true
}

// grow returns s with length n, reusing its array when it is large enough. The contents are
// whatever they were: callers clear or overwrite them.
func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n, n+n/4)
	}
	return s[:n]
}
