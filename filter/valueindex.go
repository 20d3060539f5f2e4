package filter

import (
	"hash/maphash"
	"slices"
)

// valueIndex finds, among the string values an event has at one leaf path, those equal to a given
// string, for the automaton's transitions that test exact strings only. A walk that reaches many
// nodes testing one path (100 rules, each for one queue and one routing status, on an event that
// lists the 100 queues) would otherwise look at every value at the path once per node: with the
// index, the first of those nodes looks at them, the second builds the index (one look at each
// value more), and each node after them looks up its own strings, at a cost that follows the
// values equal to them. The index is built once per leaf and event, when a second node needs it.
type valueIndex struct {
	seed  maphash.Seed
	epoch uint32
	// scanned and built mark, per leaf, when its values were looked at one by one and when its
	// index was built, in the current epoch; at and size give a built leaf's table, an open
	// addressing table[at:at+size] (size a power of two) of group numbers plus one (0 for a
	// free slot).
	scanned, built []uint32
	at, size       []int32
	table          []int32
	// groups are the distinct strings of the built leaves, each with its fields, in document
	// order: perm[start:start+n].
	groups []valueGroup
	perm   []int32
	group  []int32 // scratch: per field of the leaf being built, its group, or -1
}

type valueGroup struct {
	hash     uint64
	rep      int32 // a field holding the string
	start, n int32
}

// reset empties the index for a new event over leaves leaf paths.
func (x *valueIndex) reset(leaves int) {
	if x.seed == (maphash.Seed{}) {
		x.seed = maphash.MakeSeed()
	}
	if len(x.scanned) < leaves {
		x.scanned = make([]uint32, leaves)
		x.built = make([]uint32, leaves)
		x.at = make([]int32, leaves)
		x.size = make([]int32, leaves)
		x.epoch = 0
	}
	x.epoch++
	if x.epoch == 0 {
		clear(x.scanned)
		clear(x.built)
		x.epoch = 1
	}
	x.table = x.table[:0]
	x.groups = x.groups[:0]
	x.perm = x.perm[:0]
}

// big reports whether the index grew beyond what is worth keeping in a pool.
func (x *valueIndex) big() bool {
	return cap(x.table) > 1<<17 || cap(x.groups) > 1<<14 || cap(x.perm) > 1<<16 || cap(x.group) > 1<<16
}

// use reports whether a transition on leaf l with nkeys strings, whose search may choose among
// options values there, should look its strings up: when they are few beside the values (the
// values are the match's keyedMin or more, and at least keyedRatio times the strings) and the
// leaf's values were already looked at one by one in this match. It notes such a look otherwise.
func (x *valueIndex) use(fe *flatEvent, l int32, nkeys, options int) bool {
	if options < fe.lim.keyedMin || nkeys*fe.lim.keyedRatio > options {
		return false
	}
	if x.scanned[l] != x.epoch {
		x.scanned[l] = x.epoch
		return false
	}
	if x.built[l] != x.epoch {
		x.build(fe, l)
	}
	return true
}

// build indexes the string values at leaf l.
func (x *valueIndex) build(fe *flatEvent, l int32) {
	ks := fe.at(l)
	fe.work += len(ks)
	size := 2
	for size < 2*len(ks) {
		size <<= 1
	}
	at := len(x.table)
	x.at[l], x.size[l], x.built[l] = int32(at), int32(size), x.epoch
	x.table = slices.Grow(x.table, size)[:at+size]
	table := x.table[at:]
	clear(table)
	x.group = grow(x.group, len(ks))
	first := int32(len(x.groups))
	mask := uint64(size - 1)
	for i, k := range ks {
		fd := &fe.fields[k]
		x.group[i] = -1
		if fd.kind != kindString {
			continue
		}
		text := fe.textOf(fd)
		h := maphash.Bytes(x.seed, text)
		j := h & mask
		for ; table[j] > 0; j = (j + 1) & mask {
			g := &x.groups[table[j]-1]
			if g.hash == h && string(fe.textOf(&fe.fields[g.rep])) == string(text) {
				break
			}
		}
		if table[j] == 0 {
			x.groups = append(x.groups, valueGroup{hash: h, rep: k})
			table[j] = int32(len(x.groups))
		}
		x.groups[table[j]-1].n++
		x.group[i] = table[j] - 1
	}
	off := int32(len(x.perm))
	for gi := first; gi < int32(len(x.groups)); gi++ {
		g := &x.groups[gi]
		g.start = off
		off += g.n
		g.n = 0
	}
	x.perm = slices.Grow(x.perm, int(off)-len(x.perm))[:off]
	for i, k := range ks {
		if gi := x.group[i]; gi >= 0 {
			g := &x.groups[gi]
			x.perm[g.start+g.n] = k
			g.n++
		}
	}
}

// find returns the fields at leaf l, which must be built, whose string value is key, in document
// order.
func (x *valueIndex) find(fe *flatEvent, l int32, key string) []int32 {
	table := x.table[x.at[l] : x.at[l]+x.size[l]]
	mask := uint64(len(table) - 1)
	h := maphash.String(x.seed, key)
	for j := h & mask; table[j] > 0; j = (j + 1) & mask {
		fe.work++
		g := &x.groups[table[j]-1]
		if g.hash == h && string(fe.textOf(&fe.fields[g.rep])) == key {
			return x.perm[g.start : g.start+g.n]
		}
	}
	return nil
}
