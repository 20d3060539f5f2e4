package dlq

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/sink"
)

// withHashes replaces Redrive's hashes, to make them collide: keys gives each ID its key (a nil
// keys, or an ID it lacks, keeps the real hash), and a true sameFingerprint gives every entry
// one fingerprint.
func withHashes(keys map[string]uint64, sameFingerprint bool) Option {
	return optionFunc(func(c *redriveConfig) {
		if keys != nil {
			c.keyHook = func(id string) uint64 { return keys[id] }
		}
		if sameFingerprint {
			c.fpHook = func(_, _, _ string) uint64 { return 1 << 10 }
		}
	})
}

// sliceQueue lists the entries put while its List runs, and removes by exact ID, during a List
// too: a removed entry keeps its place, marked, so that a List goes on where it was.
type sliceQueue struct {
	mu      sync.Mutex
	entries []Entry
	gone    []bool
}

func (q *sliceQueue) put(e Entry) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.entries = append(q.entries, e)
	q.gone = append(q.gone, false)
}

func (q *sliceQueue) List(ctx context.Context, fn func(Entry) error) error {
	for i := 0; ; i++ {
		q.mu.Lock()
		if i >= len(q.entries) {
			q.mu.Unlock()
			return nil
		}
		e, gone := q.entries[i], q.gone[i]
		q.mu.Unlock()
		if err := ctx.Err(); err != nil {
			return err
		}
		if gone {
			continue
		}
		if err := fn(e); err != nil {
			return err
		}
	}
}

func (q *sliceQueue) Get(context.Context, string) (Entry, error) { return Entry{}, ErrNotFound }

func (q *sliceQueue) Delete(_ context.Context, ids ...string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	for i, e := range q.entries {
		if slices.Contains(ids, e.ID) {
			q.gone[i] = true
		}
	}
	return nil
}

func (q *sliceQueue) ids() []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	var ids []string
	for i, e := range q.entries {
		if !q.gone[i] {
			ids = append(ids, e.ID)
		}
	}
	return ids
}

func entryOf(id, sinkName, event string) Entry {
	return Entry{ID: id, Sink: sinkName, Event: fanbridge.Event{ID: event}}
}

// Redrive keeps hashes of IDs, not IDs: whatever collides, no entry is lost, and none is removed
// unless it was delivered.
func TestRedriveHashCollisions(t *testing.T) {
	abc := []Entry{entryOf("A", "s", "ev-1"), entryOf("B", "s", "ev-2"), entryOf("C", "s", "ev-1")}
	cases := []struct {
		name    string
		opt     Option
		entries []Entry
		want    Report
		sent    []string
		left    []string
	}{{
		name:    "none",
		opt:     withHashes(nil, false),
		entries: abc,
		want:    Report{Selected: 3, Redriven: 3, Removed: 3},
		sent:    []string{"ev-1", "ev-2", "ev-1"},
	}, {
		// A and C have one key but not one fingerprint: they are taken for a shared ID, and
		// kept unsent; B is redriven.
		name:    "keys",
		opt:     withHashes(map[string]uint64{"A": 7, "B": 8, "C": 7}, false),
		entries: abc,
		want:    Report{Selected: 3, Redriven: 1, Removed: 1, Conflicts: 2},
		sent:    []string{"ev-2"},
		left:    []string{"A", "C"},
	}, {
		// Keys and fingerprints both collide: the entries look like copies until they are
		// compared exactly in the second pass, after the first was sent. It stays, its removal
		// held back, and the others are conflicts.
		name:    "keys-and-fingerprints",
		opt:     withHashes(map[string]uint64{"A": 7, "B": 7, "C": 7}, true),
		entries: abc,
		want:    Report{Selected: 3, Redriven: 1, Conflicts: 2},
		sent:    []string{"ev-1"},
		left:    []string{"A", "B", "C"},
	}, {
		// One ID for two sinks, whose fingerprints collide: removing X after sink s took it
		// would remove the entry of sink t unsent.
		name:    "one-id-fingerprints",
		opt:     withHashes(nil, true),
		entries: []Entry{entryOf("X", "s", "ev-1"), entryOf("X", "t", "ev-1"), entryOf("Y", "s", "ev-2")},
		want:    Report{Selected: 3, Redriven: 2, Removed: 1, Conflicts: 1},
		sent:    []string{"ev-1", "ev-2"},
		left:    []string{"X", "X"},
	}, {
		// True copies are compared exactly, and removed together.
		name:    "copies-fingerprints",
		opt:     withHashes(nil, true),
		entries: []Entry{entryOf("X", "s", "ev-1"), entryOf("Y", "s", "ev-2"), entryOf("X", "s", "ev-1")},
		want:    Report{Selected: 2, Redriven: 2, Removed: 2, Copies: 1},
		sent:    []string{"ev-1", "ev-2"},
	}, {
		// Only fingerprints collide: different keys keep the entries apart.
		name:    "fingerprints",
		opt:     withHashes(nil, true),
		entries: abc,
		want:    Report{Selected: 3, Redriven: 3, Removed: 3},
		sent:    []string{"ev-1", "ev-2", "ev-1"},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			q := &sliceQueue{}
			for _, e := range tc.entries {
				q.put(e)
			}
			var sent []string
			s := sink.Func(func(_ context.Context, e *fanbridge.Event) error {
				sent = append(sent, e.ID)
				return nil
			})
			rep, err := Redrive(ctx, q, map[string]sink.Sink{"s": s, "t": s}, nil, tc.opt, WithDeleteBatch(1))
			require.NoError(t, err)
			assert.Equal(t, tc.want, rep)
			assert.Equal(t, tc.sent, sent)
			assert.Equal(t, tc.left, q.ids())
		})
	}
}

// An entry put during the redrive whose ID only collides with that of a delivered entry holds
// the delivered entry's removal back, as a true namesake would: the delivered entry stays, to be
// sent again, and the new one is neither sent nor removed. So does a true copy put during the
// redrive: it cannot be compared with the entry it copies, whose text Redrive did not keep. Two
// entries put during the redrive that share an ID are told apart the same way, whatever their
// fingerprints: neither was listed by the first pass.
func TestRedrivePutDuringRedrive(t *testing.T) {
	for _, tc := range []struct {
		name string
		put  []Entry
		opts []Option
		want Report
		sent []string
		left []string
	}{
		{"hash-collision", []Entry{entryOf("Z", "s", "ev-3")},
			[]Option{withHashes(map[string]uint64{"X": 7, "Y": 8, "Z": 7}, false)},
			Report{Selected: 3, Redriven: 2, Removed: 1, Conflicts: 1}, []string{"ev-1", "ev-2"}, []string{"X", "Z"}},
		{"copy", []Entry{entryOf("X", "s", "ev-1")}, nil,
			Report{Selected: 3, Redriven: 2, Removed: 1, Conflicts: 1}, []string{"ev-1", "ev-2"}, []string{"X", "X"}},
		// N of sink t is no copy of N of sink s, though their fingerprints collide: it is a
		// conflict, and the removal of the N that was delivered is held back.
		{"new-namesakes-fingerprints", []Entry{entryOf("N", "s", "ev-3"), entryOf("N", "t", "ev-4")},
			[]Option{withHashes(nil, true)},
			Report{Selected: 4, Redriven: 3, Removed: 2, Conflicts: 1}, []string{"ev-1", "ev-2", "ev-3"}, []string{"N", "N"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			q := &sliceQueue{}
			q.put(entryOf("X", "s", "ev-1"))
			// Y reaches the single worker only once X's send, which puts the new entries, is
			// over; so the List reaches them after X was delivered and before its removal (one
			// batch, at the end).
			q.put(entryOf("Y", "s", "ev-2"))
			var sent []string
			s := sink.Func(func(_ context.Context, e *fanbridge.Event) error {
				sent = append(sent, e.ID)
				if e.ID == "ev-1" {
					for _, p := range tc.put {
						q.put(p)
					}
				}
				return nil
			})
			rep, err := Redrive(ctx, q, map[string]sink.Sink{"s": s}, nil, tc.opts...)
			require.NoError(t, err)
			assert.Equal(t, tc.want, rep)
			assert.Equal(t, tc.sent, sent)
			assert.Equal(t, tc.left, q.ids())
		})
	}
}

// failingList fails its second List (the redrive's) after handing over the first n entries.
type failingList struct {
	*sliceQueue
	n     int
	lists int
}

func (q *failingList) List(ctx context.Context, fn func(Entry) error) error {
	q.lists++
	if q.lists == 1 {
		return q.sliceQueue.List(ctx, fn)
	}
	handed := 0
	return q.sliceQueue.List(ctx, func(e Entry) error {
		if handed == q.n {
			return errors.New("disk failure")
		}
		handed++
		return fn(e)
	})
}

// An entry with copies is removed only once the whole queue has been listed, since a namesake
// listed later could differ; a redrive stopped before keeps it, to be sent again. An entry
// without copies delivered before the stop is removed as usual.
func TestRedriveCopiesRemovedAfterTheWholeListing(t *testing.T) {
	cases := []struct {
		name    string
		entries []Entry
		want    Report
		left    []string
	}{
		{"copies", []Entry{entryOf("X", "s", "ev-1"), entryOf("X", "s", "ev-1"), entryOf("Y", "s", "ev-2")},
			Report{Selected: 1, Redriven: 1, Copies: 1}, []string{"X", "X", "Y"}},
		{"no-copies", []Entry{entryOf("X", "s", "ev-1"), entryOf("Z", "s", "ev-3"), entryOf("Y", "s", "ev-2")},
			Report{Selected: 2, Redriven: 2, Removed: 2}, []string{"Y"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			q := &failingList{sliceQueue: &sliceQueue{}, n: 2}
			for _, e := range tc.entries {
				q.put(e)
			}
			s := sink.Func(func(context.Context, *fanbridge.Event) error { return nil })
			rep, err := Redrive(ctx, q, map[string]sink.Sink{"s": s}, nil)
			require.ErrorContains(t, err, "disk failure")
			assert.Equal(t, tc.want, rep)
			assert.Equal(t, tc.left, q.ids())
		})
	}
}
