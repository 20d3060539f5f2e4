package fanout

import (
	"context"
	"fmt"
	"hash/maphash"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fanbridge/fanbridge/retry"
)

// DedupStore remembers, for a window, what became of each event ID: whether every matched sink has
// the event, or which sinks do. The Dispatcher consults it before delivering and records into it
// once an event is handled, so that a sender's retry is acknowledged without redelivery and a retry
// of a partly failed event reaches only the sinks that lack it.
//
// The Dispatcher keeps concurrent dispatches of one ID apart on its own (see "Concurrency" in the
// package documentation), so a store needs no locking across calls; a store shared by several
// processes (Redis, say) should keep records for its window with a TTL. Implementations must be safe
// for concurrent use.
type DedupStore interface {
	// Seen returns what is recorded for id, and false when nothing is (or its window has passed).
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

// MemoryDedup is the default DedupStore: a bounded in-memory map of IDs, dropping the oldest record
// first when full and every record once its window has passed. It is safe for concurrent use.
type MemoryDedup struct {
	window time.Duration
	max    int
	clock  retry.Clock

	mu         sync.Mutex
	entries    map[string]*dedupEntry
	head, tail *dedupEntry // head: least recently recorded
	free       *dedupEntry // evicted entries, reused
}

type dedupEntry struct {
	id         string
	rec        DedupRecord
	at         time.Time
	prev, next *dedupEntry
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

// NewMemoryDedup returns a store that keeps each ID for window, and at most maxEntries IDs.
// The memory it holds is bounded by maxEntries (about 150 bytes per ID plus the ID itself).
func NewMemoryDedup(window time.Duration, maxEntries int, opts ...MemoryDedupOption) (*MemoryDedup, error) {
	if window <= 0 {
		return nil, fmt.Errorf("%w: dedup window %v is not positive", ErrInvalidConfig, window)
	}
	if maxEntries <= 0 {
		return nil, fmt.Errorf("%w: dedup size %d is not positive", ErrInvalidConfig, maxEntries)
	}
	m := &MemoryDedup{window: window, max: maxEntries, clock: retry.SystemClock,
		entries: make(map[string]*dedupEntry, min(maxEntries, 4096))}
	for _, o := range opts {
		o.applyDedup(m)
	}
	if m.clock == nil {
		return nil, fmt.Errorf("%w: nil dedup clock", ErrInvalidConfig)
	}
	return m, nil
}

// Seen implements DedupStore. The returned record shares its Sinks with the store; callers must
// not modify it.
func (m *MemoryDedup) Seen(_ context.Context, id string) (DedupRecord, bool, error) {
	now := m.clock.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.entries[id]
	if e == nil || now.Sub(e.at) >= m.window {
		return DedupRecord{}, false, nil
	}
	return e.rec, true, nil
}

// Record implements DedupStore.
func (m *MemoryDedup) Record(_ context.Context, id string, rec DedupRecord) error {
	if !rec.Complete {
		rec.Sinks = slices.Clone(rec.Sinks)
	} else {
		rec.Sinks = nil
	}
	now := m.clock.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	for m.head != nil && now.Sub(m.head.at) >= m.window {
		m.evictLocked(m.head)
	}
	e := m.entries[id]
	if e != nil {
		m.unlinkLocked(e)
	} else {
		if len(m.entries) >= m.max {
			m.evictLocked(m.head)
		}
		e = m.free
		if e != nil {
			m.free = e.next
			e.next = nil
		} else {
			e = new(dedupEntry)
		}
		// A copy, so that a short ID cut from a long string does not keep the long one alive.
		e.id = strings.Clone(id)
		m.entries[e.id] = e
	}
	e.rec, e.at = rec, now
	m.pushLocked(e)
	return nil
}

// Len returns how many IDs the store holds, expired ones included until they are dropped.
func (m *MemoryDedup) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.entries)
}

func (m *MemoryDedup) evictLocked(e *dedupEntry) {
	m.unlinkLocked(e)
	delete(m.entries, e.id)
	*e = dedupEntry{next: m.free}
	m.free = e
}

func (m *MemoryDedup) unlinkLocked(e *dedupEntry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		m.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		m.tail = e.prev
	}
	e.prev, e.next = nil, nil
}

func (m *MemoryDedup) pushLocked(e *dedupEntry) {
	e.prev = m.tail
	if m.tail != nil {
		m.tail.next = e
	} else {
		m.head = e
	}
	m.tail = e
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
