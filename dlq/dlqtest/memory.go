package dlqtest

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/fanbridge/fanbridge/dlq"
)

// Memory is a dead-letter queue held in memory, for tests of code that writes to or redrives a
// queue. It keeps nothing across a restart, so it must not back a real intake. It implements
// dlq.Queue and dlq.Reader, passes the conformance suite (without Durable), and is safe for
// concurrent use.
type Memory struct {
	mu      sync.Mutex
	entries []dlq.Entry
	closed  bool
}

var (
	_ dlq.Queue  = (*Memory)(nil)
	_ dlq.Reader = (*Memory)(nil)
)

// NewMemory returns an empty in-memory queue.
func NewMemory() *Memory { return &Memory{} }

// Put stores a deep copy of e after dlq.Prepare, so that later changes to the caller's event do
// not reach the queue.
func (m *Memory) Put(ctx context.Context, e dlq.Entry) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("dlqtest: put: %w", err)
	}
	e, err := dlq.Prepare(e)
	if err != nil {
		return fmt.Errorf("dlqtest: put: %w", err)
	}
	e.Event = *e.Event.Clone()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return fmt.Errorf("dlqtest: put: %w", dlq.ErrClosed)
	}
	m.entries = append(m.entries, e)
	return nil
}

// List calls fn for each entry in the order they were put, on a snapshot taken when List starts.
func (m *Memory) List(ctx context.Context, fn func(dlq.Entry) error) error {
	m.mu.Lock()
	snapshot := slices.Clone(m.entries)
	m.mu.Unlock()
	for _, e := range snapshot {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("dlqtest: list: %w", err)
		}
		e.Event = *e.Event.Clone()
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
}

// Get returns the first entry with the given ID.
func (m *Memory) Get(ctx context.Context, id string) (dlq.Entry, error) {
	if err := ctx.Err(); err != nil {
		return dlq.Entry{}, fmt.Errorf("dlqtest: get: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, e := range m.entries {
		if e.ID == id {
			e.Event = *e.Event.Clone()
			return e, nil
		}
	}
	return dlq.Entry{}, fmt.Errorf("dlqtest: get %q: %w", id, dlq.ErrNotFound)
}

// Delete removes every entry with one of the given IDs.
func (m *Memory) Delete(ctx context.Context, ids ...string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("dlqtest: delete: %w", err)
	}
	drop := make(map[string]bool, len(ids))
	for _, id := range ids {
		drop[id] = true
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.entries = slices.DeleteFunc(m.entries, func(e dlq.Entry) bool { return drop[e.ID] })
	return nil
}

// Len returns the number of entries held.
func (m *Memory) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.entries)
}

// Close makes later Puts fail with dlq.ErrClosed; the entries stay readable.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	return nil
}
