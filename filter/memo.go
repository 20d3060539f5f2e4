package filter

// stateMemo is a set of search states: a step (or trie node) id with the array positions that
// still matter to it, as a set of element nodes (see flatEvent.consistent). Once the positions
// are reduced to those the rest of the search can meet, the outcome from a state depends on the
// state alone, so a state met twice need not be searched twice; that is what keeps the search
// linear when independent arrays share an element of an enclosing array. The set is emptied in
// O(1) per search by an epoch.
type stateMemo struct {
	slots []stateSlot // open addressing; the length is a power of two
	held  int         // states held in this epoch
	epoch uint32
	pos   []int32 // the positions of the states held in this epoch
}

type stateSlot struct {
	epoch uint32 // the slot is empty unless this is the memo's epoch
	id    int32
	hash  uint32
	off   int32 // pos[off:off+n] are the state's positions
	n     int32
}

// reset empties the set.
func (s *stateMemo) reset() {
	s.epoch++
	if s.epoch == 0 {
		clear(s.slots)
		s.epoch = 1
	}
	s.held = 0
	s.pos = s.pos[:0]
}

// stateHash hashes a state without regard to the order of its nodes.
func stateHash(id int32, cur []int32) uint32 {
	h := uint64(uint32(id)) * 0x9e3779b97f4a7c15
	for _, e := range cur {
		x := uint64(uint32(e))
		x ^= x >> 33
		x *= 0xff51afd7ed558ccd
		x ^= x >> 33
		h += x
	}
	h ^= h >> 29
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 32
	return uint32(h)
}

// has reports whether the state (id, cur) is in the set.
func (s *stateMemo) has(id int32, cur []int32) bool {
	if s.held == 0 {
		return false
	}
	h := stateHash(id, cur)
	mask := uint32(len(s.slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		sl := &s.slots[i]
		if sl.epoch != s.epoch {
			return false
		}
		if sl.hash == h && s.same(sl, id, cur) {
			return true
		}
	}
}

// add puts the state (id, cur) into the set and reports whether it was there already.
func (s *stateMemo) add(id int32, cur []int32) bool {
	if (s.held+1)*4 > len(s.slots)*3 {
		s.grow()
	}
	h := stateHash(id, cur)
	mask := uint32(len(s.slots) - 1)
	i := h & mask
	for ; ; i = (i + 1) & mask {
		sl := &s.slots[i]
		if sl.epoch != s.epoch {
			break
		}
		if sl.hash == h && s.same(sl, id, cur) {
			return true
		}
	}
	off := len(s.pos)
	s.pos = append(s.pos, cur...)
	s.slots[i] = stateSlot{epoch: s.epoch, id: id, hash: h, off: int32(off), n: int32(len(cur))}
	s.held++
	return false
}

// same reports whether slot sl holds the state (id, cur). A state holds each node once, so equal
// lengths and every node of cur found in the slot make the two equal.
func (s *stateMemo) same(sl *stateSlot, id int32, cur []int32) bool {
	if sl.id != id || int(sl.n) != len(cur) {
		return false
	}
	held := s.pos[sl.off : sl.off+sl.n]
outer:
	for _, e := range cur {
		for _, x := range held {
			if x == e {
				continue outer
			}
		}
		return false
	}
	return true
}

func (s *stateMemo) grow() {
	old := s.slots
	s.slots = make([]stateSlot, max(2*len(old), 64))
	mask := uint32(len(s.slots) - 1)
	for _, sl := range old {
		if sl.epoch != s.epoch {
			continue
		}
		i := sl.hash & mask
		for s.slots[i].epoch == s.epoch {
			i = (i + 1) & mask
		}
		s.slots[i] = sl
	}
}

// big reports whether the memo grew beyond what is worth keeping in a pool.
func (s *stateMemo) big() bool {
	return len(s.slots) > 1<<16 || cap(s.pos) > 1<<16
}
