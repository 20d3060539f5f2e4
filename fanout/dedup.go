package fanout

import (
	"context"
	"fmt"
	"hash/maphash"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/retry"
)

// DedupKey returns what identifies e for deduplication: the length of its Source in decimal, a
// colon, the Source and the ID ("0:" and the ID when it has no Source). Events are the same when
// both their Source and ID are, as CloudEvents defines it: two producers may both number their
// events from 1, and a sender's retry repeats both. The length makes the key unambiguous, also
// between an event with a Source and one without.
func DedupKey(e *fanbridge.Event) string {
	var b strings.Builder
	b.Grow(len(e.Source) + len(e.ID) + 4)
	writePrefixed(&b, e.Source, ':')
	b.WriteString(e.ID)
	return b.String()
}

// writePrefixed writes s's length in decimal, sep and s.
func writePrefixed(b *strings.Builder, s string, sep byte) {
	var n [20]byte
	b.Write(strconv.AppendInt(n[:0], int64(len(s)), 10))
	b.WriteByte(sep)
	b.WriteString(s)
}

// dedupScopeKey is the context key of WithDedupScope.
type dedupScopeKey struct{}

// WithDedupScope returns a copy of ctx under which a Dispatcher deduplicates events within scope
// only: an event dispatched under one scope is never a duplicate of one dispatched under another
// or under none, even with the same Source and ID. An empty scope is no scope.
//
// Source and ID come from the event, which a sender writes. Several intakes sharing one
// Dispatcher (an HTTP path per partner, say) should each dispatch under a scope of their own (the
// path, or a name), or else a sender authenticated for one can make another's events look like
// duplicates by sending their Source and ID first, and they would never be delivered.
func WithDedupScope(ctx context.Context, scope string) context.Context {
	return context.WithValue(ctx, dedupScopeKey{}, scope)
}

// scopedDedupKey returns DedupKey(e), preceded, when ctx carries a dedup scope, by the scope's
// length in decimal, a slash and the scope. The slash (where DedupKey has its colon) keeps scoped
// keys apart from unscoped ones, and the length keeps scopes apart from each other.
func scopedDedupKey(ctx context.Context, e *fanbridge.Event) string {
	scope, _ := ctx.Value(dedupScopeKey{}).(string)
	if scope == "" {
		return DedupKey(e)
	}
	var b strings.Builder
	b.Grow(len(scope) + len(e.Source) + len(e.ID) + 8)
	writePrefixed(&b, scope, '/')
	writePrefixed(&b, e.Source, ':')
	b.WriteString(e.ID)
	return b.String()
}

// DedupStore remembers, for a window, what became of each event (by DedupKey): whether every
// matched sink has the event, or which sinks do. The Dispatcher consults it before delivering and
// records into it once an event is handled, so that a sender's retry is acknowledged without
// redelivery and a retry of a partly failed event reaches only the sinks that lack it.
//
// The Dispatcher keeps concurrent dispatches of one ID apart on its own (see "Concurrency" in the
// package documentation), so a store needs no locking across calls; a store shared by several
// processes (Redis, say) should keep records for its window with a TTL. Implementations must be safe
// for concurrent use.
type DedupStore interface {
	// Seen returns what is recorded for id (an event's DedupKey, preceded by its scope when it
	// was dispatched under WithDedupScope), and false when nothing is (or its window has passed).
	Seen(ctx context.Context, id string) (DedupRecord, bool, error)
	// Record stores rec for id, replacing what was there, for the store's window.
	Record(ctx context.Context, id string, rec DedupRecord) error
}

// DedupRecord is what a DedupStore keeps for one event ID.
type DedupRecord struct {
	// Complete is true once every matched sink had the event, or the dead-letter queue had it for
	// the sinks that failed (Sync), or every matched sink's queue accepted it (Async).
	Complete bool
	// Sinks names the sinks that have the event (delivered or dead-lettered) when not Complete.
	Sinks []string
}

func (r DedupRecord) has(sinkName string) bool {
	return r.Complete || slices.Contains(r.Sinks, sinkName)
}

// MemoryDedup is the default DedupStore: a bounded in-memory record of event IDs, safe for
// concurrent use.
//
// It keeps two generations of records and, when the current one has held MaxEntries/2 IDs or has
// been current for a whole window, drops the older one wholesale and starts afresh: no per-ID
// eviction, no linked list, no allocation per ID once warm. An ID is therefore remembered for at
// least the window (between one and two windows) unless more than MaxEntries/2 other IDs arrive
// sooner, and at most MaxEntries IDs are held. IDs are kept as 128-bit hashes (two independent
// seeded hashes), not as strings, so that the garbage collector has nothing to scan; the chance
// that two IDs collide within one store is about 2^-100.
type MemoryDedup struct {
	window time.Duration
	genMax int
	clock  retry.Clock
	seeds  [2]maphash.Seed
	// base is the clock's reading at construction: ages are measured from it, so that the
	// system clock's monotonic reading, not its wall time, which an NTP step moves, decides.
	base time.Time

	mu        sync.Mutex
	cur, prev *dedupGen
}

type dedupKey [2]uint64

type dedupVal struct {
	at       int64 // recorded at, nanoseconds since base
	complete bool
}

type dedupGen struct {
	vals  map[dedupKey]dedupVal
	sinks map[dedupKey][]string // the partial records' sink lists
	start time.Time
}

func newDedupGen(size int) *dedupGen {
	return &dedupGen{vals: make(map[dedupKey]dedupVal, size), sinks: make(map[dedupKey][]string)}
}

// MemoryDedupOption configures a MemoryDedup.
type MemoryDedupOption interface{ applyDedup(*MemoryDedup) }

type dedupOptionFunc func(*MemoryDedup)

func (f dedupOptionFunc) applyDedup(m *MemoryDedup) { f(m) }

// WithDedupClock sets the clock a MemoryDedup measures its window with. The default is
// retry.SystemClock.
func WithDedupClock(c retry.Clock) MemoryDedupOption {
	return dedupOptionFunc(func(m *MemoryDedup) { m.clock = c })
}

// NewMemoryDedup returns a store that remembers each ID for window (see MemoryDedup for the
// exact bounds), holding at most maxEntries IDs: about 50 bytes each whatever the IDs' length
// (46 to 53 measured; about 5 MB for 100,000), plus the sink lists of partly failed events.
func NewMemoryDedup(window time.Duration, maxEntries int, opts ...MemoryDedupOption) (*MemoryDedup, error) {
	if window <= 0 {
		return nil, fmt.Errorf("%w: dedup window %v is not positive", ErrInvalidConfig, window)
	}
	if maxEntries <= 0 {
		return nil, fmt.Errorf("%w: dedup size %d is not positive", ErrInvalidConfig, maxEntries)
	}
	m := &MemoryDedup{window: window, genMax: max(1, maxEntries/2), clock: retry.SystemClock,
		seeds: [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}}
	for _, o := range opts {
		o.applyDedup(m)
	}
	if m.clock == nil {
		return nil, fmt.Errorf("%w: nil dedup clock", ErrInvalidConfig)
	}
	size := min(m.genMax, 4096)
	m.cur, m.prev = newDedupGen(size), newDedupGen(size)
	m.base = m.clock.Now()
	m.cur.start = m.base
	return m, nil
}

func (m *MemoryDedup) key(id string) dedupKey {
	return dedupKey{maphash.String(m.seeds[0], id), maphash.String(m.seeds[1], id)}
}

// Seen implements DedupStore. The returned record shares its Sinks with the store; callers must
// not modify it.
func (m *MemoryDedup) Seen(_ context.Context, id string) (DedupRecord, bool, error) {
	k := m.key(id)
	m.mu.Lock()
	g := m.cur
	v, ok := g.vals[k]
	if !ok {
		g = m.prev
		v, ok = g.vals[k]
	}
	if !ok {
		m.mu.Unlock()
		return DedupRecord{}, false, nil // the common case: no clock reading
	}
	rec := DedupRecord{Complete: v.complete}
	if !v.complete {
		rec.Sinks = g.sinks[k]
	}
	m.mu.Unlock()
	if int64(m.clock.Now().Sub(m.base))-v.at >= int64(m.window) {
		return DedupRecord{}, false, nil
	}
	return rec, true, nil
}

// Record implements DedupStore.
func (m *MemoryDedup) Record(_ context.Context, id string, rec DedupRecord) error {
	k := m.key(id)
	var sinks []string
	if !rec.Complete {
		sinks = slices.Clone(rec.Sinks)
	}
	now := m.clock.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, again := m.cur.vals[k]; !again && (len(m.cur.vals) >= m.genMax || now.Sub(m.cur.start) >= m.window) {
		// Rotate: the older generation goes, its maps are reused for the new one.
		old := m.prev
		m.prev = m.cur
		clear(old.vals)
		clear(old.sinks)
		old.start = now
		m.cur = old
	}
	m.cur.vals[k] = dedupVal{at: int64(now.Sub(m.base)), complete: rec.Complete}
	if sinks != nil {
		m.cur.sinks[k] = sinks
	} else {
		delete(m.cur.sinks, k)
	}
	return nil
}

// Len returns how many ID records the store holds (an ID recorded again after a rotation may
// count twice until the older generation goes).
func (m *MemoryDedup) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.cur.vals) + len(m.prev.vals)
}

// claims keeps concurrent dispatches of one event ID apart within this process: the first holds
// the claim, later ones wait for its release. Sharded so that unrelated IDs rarely share a lock.
type claims struct {
	seed   maphash.Seed
	shards [16]claimShard
}

type claimShard struct {
	mu sync.Mutex
	// held maps a claimed ID to the channel its waiters wait on, nil until one waits.
	held map[string]chan struct{}
}

func newClaims() *claims {
	c := &claims{seed: maphash.MakeSeed()}
	for i := range c.shards {
		c.shards[i].held = make(map[string]chan struct{})
	}
	return c
}

func (c *claims) shard(id string) *claimShard {
	return &c.shards[maphash.String(c.seed, id)%uint64(len(c.shards))]
}

// acquire claims id, waiting while another dispatch holds it. It fails only when ctx ends first.
func (c *claims) acquire(ctx context.Context, id string) error {
	s := c.shard(id)
	for {
		s.mu.Lock()
		ch, busy := s.held[id]
		if !busy {
			s.held[id] = nil
			s.mu.Unlock()
			return nil
		}
		if ch == nil {
			ch = make(chan struct{})
			s.held[id] = ch
		}
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// release gives up the claim on id and wakes its waiters.
func (c *claims) release(id string) {
	s := c.shard(id)
	s.mu.Lock()
	ch := s.held[id]
	delete(s.held, id)
	s.mu.Unlock()
	if ch != nil {
		close(ch)
	}
}
