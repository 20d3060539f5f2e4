package notifications

// dedup remembers the last n event IDs. It is used by the dispatch loop alone, so it needs no lock.
type dedup struct {
	seen map[string]struct{}
	ring []string
	next int
}

func newDedup(n int) *dedup {
	return &dedup{seen: make(map[string]struct{}, n), ring: make([]string, n)}
}

// add records id and reports whether it was new. The oldest id is forgotten when the window is
// full.
func (d *dedup) add(id string) bool {
	if _, ok := d.seen[id]; ok {
		return false
	}
	if old := d.ring[d.next]; old != "" {
		delete(d.seen, old)
	}
	d.ring[d.next] = id
	d.seen[id] = struct{}{}
	d.next = (d.next + 1) % len(d.ring)
	return true
}
