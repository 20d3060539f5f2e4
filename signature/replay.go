package signature

import (
	"container/heap"
	"context"
	"errors"
	"sync"
	"time"
)

// ReplayCache remembers the messages that were verified, so that a captured request cannot be
// replayed while its timestamp is still inside the tolerance. Implement it over a shared store
// (Redis SET NX with an expiry, a database row with a unique key) when several instances receive
// the same sender; NewMemoryReplayCache serves a single instance.
//
// The StandardWebhooks verifier claims "<webhook-id>.<webhook-timestamp>": the two values a
// replayed request cannot change without breaking its signature. A sender's own retry of a message
// carries a new timestamp, so it is claimed afresh. Ids are the sender's: give each
// StandardWebhooks verifier its own cache, or prefix the ids in your implementation, when senders
// could reuse each other's ids.
//
// A claim is "in flight" while the middleware handles its request: a copy of the request that
// arrives then is answered 503 (see Verify). Each verifier keeps its own set of such claims,
// unless its cache has a method PendingClaims() *PendingClaims, as MemoryReplayCache has: the
// set it returns is then shared by every verifier using the cache, so that a verifier built anew
// (a reloaded configuration) sees the claims of the one it replaces. A wrapper around a
// MemoryReplayCache should pass the method on.
type ReplayCache interface {
	// Claim records id until expires and reports true, or reports false when id is already
	// recorded and its record has not expired at now. It must be atomic: of two concurrent claims
	// of one id, one wins. An error makes the request fail with ErrUnavailable.
	Claim(ctx context.Context, id string, now, expires time.Time) (bool, error)
	// Release forgets id, so that the sender's next attempt of a message that was verified but not
	// accepted (the handler answered outside 2xx) verifies again.
	Release(ctx context.Context, id string) error
}

// MemoryReplayCache is a ReplayCache in memory, bounded in size. Each id is kept until the expiry
// given to Claim (the message timestamp plus the verifier's tolerance), then dropped.
//
// When the cache is full, Claim evicts the id that would expire first. That id could then be
// replayed until its own expiry, so size the cache above the number of messages accepted within
// twice the tolerance (300 messages/s with a 5-minute tolerance: 180,000 ids, about 27 MB for
// 30-byte webhook ids with their timestamps).
type MemoryReplayCache struct {
	max int

	mu      sync.Mutex
	entries map[string]time.Time
	order   expiryHeap
	evicted uint64

	pending PendingClaims
}

// PendingClaims returns the set of claims whose requests are being handled, shared by every
// verifier that uses c (see ReplayCache).
func (c *MemoryReplayCache) PendingClaims() *PendingClaims { return &c.pending }

// NewMemoryReplayCache returns an empty cache holding at most maxEntries ids. It fails when
// maxEntries is not positive.
func NewMemoryReplayCache(maxEntries int) (*MemoryReplayCache, error) {
	if maxEntries <= 0 {
		return nil, errors.New("signature: replay cache size must be positive")
	}
	return &MemoryReplayCache{max: maxEntries, entries: make(map[string]time.Time)}, nil
}

// Claim implements ReplayCache.
func (c *MemoryReplayCache) Claim(_ context.Context, id string, now, expires time.Time) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pruneLocked(now)
	if exp, ok := c.entries[id]; ok && exp.After(now) {
		return false, nil
	}
	for len(c.entries) >= c.max && c.popLocked() {
		c.evicted++
	}
	c.entries[id] = expires
	heap.Push(&c.order, expiryEntry{id: id, expires: expires})
	// Released ids leave stale heap entries behind; rebuild before they outnumber the live ones.
	if len(c.order) > 2*c.max {
		c.order = c.order[:0]
		for id, exp := range c.entries {
			c.order = append(c.order, expiryEntry{id: id, expires: exp})
		}
		heap.Init(&c.order)
	}
	return true, nil
}

// Release implements ReplayCache.
func (c *MemoryReplayCache) Release(_ context.Context, id string) error {
	c.mu.Lock()
	delete(c.entries, id)
	c.mu.Unlock()
	return nil
}

// Extend makes every id the cache holds expire d later (nothing when d is not positive). An id is
// kept until its message's timestamp goes stale under the verifier's tolerance; a service that
// raises the tolerance and keeps the cache calls Extend with the difference, so that the ids it
// holds stay for as long as the new tolerance accepts their timestamps. Ids already let go are
// not brought back: such a service must also refuse messages older than the old tolerance
// allowed at the raise, whose ids may be gone, and have claims made under the old tolerance
// after the raise keep their ids as long.
func (c *MemoryReplayCache) Extend(d time.Duration) {
	if d <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, exp := range c.entries {
		c.entries[id] = exp.Add(d)
	}
	// Shifting every entry by d keeps the heap's order, and stale entries left by released ids
	// stay stale: each still differs from its id's record, if any.
	for i := range c.order {
		c.order[i].expires = c.order[i].expires.Add(d)
	}
}

// Len returns the number of ids held, expired ones not yet dropped included.
func (c *MemoryReplayCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

// Evicted returns how many ids were dropped before their expiry because the cache was full.
func (c *MemoryReplayCache) Evicted() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.evicted
}

// pruneLocked drops every id whose expiry is not after now. It pops only heap entries that have
// expired: an entry left behind by a released id is skipped on its own, never with the live id
// after it.
func (c *MemoryReplayCache) pruneLocked(now time.Time) {
	for len(c.order) > 0 && !c.order[0].expires.After(now) {
		e := heap.Pop(&c.order).(expiryEntry)
		if exp, ok := c.entries[e.id]; ok && exp.Equal(e.expires) {
			delete(c.entries, e.id)
		}
	}
}

// popLocked removes the heap's earliest entries up to the first that is still the live record of
// its id, and that id: the eviction of a full cache. It reports whether a live id was removed.
func (c *MemoryReplayCache) popLocked() bool {
	for len(c.order) > 0 {
		e := heap.Pop(&c.order).(expiryEntry)
		if exp, ok := c.entries[e.id]; ok && exp.Equal(e.expires) {
			delete(c.entries, e.id)
			return true
		}
	}
	return false
}

type expiryEntry struct {
	id      string
	expires time.Time
}

type expiryHeap []expiryEntry

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].expires.Before(h[j].expires) }
func (h expiryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap) Push(x any)        { *h = append(*h, x.(expiryEntry)) }
func (h *expiryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}
