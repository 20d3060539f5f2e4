package dlqtest_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge/dlq"
	"github.com/fanbridge/fanbridge/dlq/dlqtest"
	"github.com/fanbridge/fanbridge/retry"
)

// broken is a Memory with one promise broken by the hooks that are set.
type broken struct {
	*dlqtest.Memory
	put    func(m *dlqtest.Memory, ctx context.Context, e dlq.Entry) error
	list   func(m *dlqtest.Memory, ctx context.Context, fn func(dlq.Entry) error) error
	get    func(m *dlqtest.Memory, ctx context.Context, id string) (dlq.Entry, error)
	delete func(m *dlqtest.Memory, ctx context.Context, ids ...string) error
	// reopened is set on a durable store opened over the storage of an earlier one.
	reopened bool
	// writeBehind makes a durable store work on a copy of its storage, which only Close writes
	// back: a driver whose Put returns before the entry is durable.
	writeBehind bool
	// backing is the storage a write-behind store writes back to.
	backing *dlqtest.Memory
	// refusal, while set by the harness's failure hooks, is the error the storage refuses every
	// write with; onRefusal, when set, answers such a Put instead of returning it.
	refusal   error
	onRefusal func(m *dlqtest.Memory, ctx context.Context, e dlq.Entry, refusal error) error
}

func (b *broken) Put(ctx context.Context, e dlq.Entry) error {
	if b.refusal != nil {
		if b.onRefusal != nil {
			return b.onRefusal(b.Memory, ctx, e, b.refusal)
		}
		return b.refusal
	}
	if b.put != nil {
		return b.put(b.Memory, ctx, e)
	}
	return b.Memory.Put(ctx, e)
}

func (b *broken) List(ctx context.Context, fn func(dlq.Entry) error) error {
	if b.list != nil {
		return b.list(b.Memory, ctx, fn)
	}
	return b.Memory.List(ctx, fn)
}

func (b *broken) Get(ctx context.Context, id string) (dlq.Entry, error) {
	if b.get != nil {
		return b.get(b.Memory, ctx, id)
	}
	return b.Memory.Get(ctx, id)
}

func (b *broken) Delete(ctx context.Context, ids ...string) error {
	if b.delete != nil {
		return b.delete(b.Memory, ctx, ids...)
	}
	return b.Memory.Delete(ctx, ids...)
}

// listInPages lists the entries of m in pages of 256, handing each page to page, which may drop
// or reorder it.
func listInPages(m *dlqtest.Memory, ctx context.Context, fn func(dlq.Entry) error, pages func([][]dlq.Entry) [][]dlq.Entry) error {
	var all []dlq.Entry
	if err := m.List(ctx, func(e dlq.Entry) error { all = append(all, e); return nil }); err != nil {
		return err
	}
	var split [][]dlq.Entry
	for len(all) > 0 {
		n := min(256, len(all))
		split, all = append(split, all[:n]), all[n:]
	}
	for _, p := range pages(split) {
		for _, e := range p {
			if err := fn(e); err != nil {
				return err
			}
		}
	}
	return nil
}

// brokenStores each break one promise; fails names a subtest the suite must fail with, and passes
// subtests it must pass nonetheless. A durable one keeps its entries across reopening, and is
// tested as Durable.
var brokenStores = map[string]struct {
	store   func() *broken
	fails   string
	durable bool
	passes  []string
}{
	"raw-trimmed": {func() *broken {
		return &broken{put: func(m *dlqtest.Memory, ctx context.Context, e dlq.Entry) error {
			e.Event.Raw = bytes.TrimSpace(e.Event.Raw)
			return m.Put(ctx, e)
		}}
	}, "RoundTrip/trailing-newline", false, nil},
	"times-to-milliseconds": {func() *broken {
		return &broken{put: func(m *dlqtest.Memory, ctx context.Context, e dlq.Entry) error {
			e.LastAttempt = e.LastAttempt.Truncate(time.Millisecond)
			return m.Put(ctx, e)
		}}
	}, "RoundTrip/genesys-audit", false, nil},
	"metadata-dropped": {func() *broken {
		return &broken{put: func(m *dlqtest.Memory, ctx context.Context, e dlq.Entry) error {
			e.Event.Metadata = nil
			return m.Put(ctx, e)
		}}
	}, "RoundTrip/genesys-audit", false, nil},
	"accepts-invalid": {func() *broken {
		return &broken{put: func(m *dlqtest.Memory, ctx context.Context, e dlq.Entry) error {
			if e.Sink == "" {
				e.Sink = "made-up"
			}
			return m.Put(ctx, e)
		}}
	}, "InvalidEntry", false, nil},
	"ignores-context": {func() *broken {
		return &broken{put: func(m *dlqtest.Memory, _ context.Context, e dlq.Entry) error {
			return m.Put(context.Background(), e)
		}}
	}, "CanceledContext", false, nil},
	"lists-twice": {func() *broken {
		return &broken{list: func(m *dlqtest.Memory, ctx context.Context, fn func(dlq.Entry) error) error {
			return m.List(ctx, func(e dlq.Entry) error {
				if err := fn(e); err != nil {
					return err
				}
				if e.ID == "c-3-7" {
					return fn(e)
				}
				return nil
			})
		}}
	}, "ConcurrentPuts", false, nil},
	"list-ignores-callback-error": {func() *broken {
		return &broken{list: func(m *dlqtest.Memory, ctx context.Context, fn func(dlq.Entry) error) error {
			var first error
			err := m.List(ctx, func(e dlq.Entry) error {
				if err := fn(e); err != nil && first == nil {
					first = err
				}
				return nil
			})
			return errors.Join(err, first)
		}}
	}, "ListStopsOnError", false, nil},
	// Wraps the error the callback returned, which a caller can then not compare with its own.
	"list-wraps-callback-error": {func() *broken {
		return &broken{list: func(m *dlqtest.Memory, ctx context.Context, fn func(dlq.Entry) error) error {
			if err := m.List(ctx, fn); err != nil {
				return fmt.Errorf("list: %w", err)
			}
			return nil
		}}
	}, "ListStopsOnError", false, []string{"Delete"}},
	"get-missing-without-error": {func() *broken {
		return &broken{get: func(m *dlqtest.Memory, ctx context.Context, id string) (dlq.Entry, error) {
			e, err := m.Get(ctx, id)
			if errors.Is(err, dlq.ErrNotFound) {
				return dlq.Entry{}, nil
			}
			return e, err
		}}
	}, "GetMissing", false, nil},
	"delete-does-nothing": {func() *broken {
		return &broken{delete: func(*dlqtest.Memory, context.Context, ...string) error { return nil }}
	}, "Delete", false, nil},
	// Removes one entry of each ID it is given, so that a copy of a redriven entry stays, to be
	// sent again.
	"delete-leaves-copies": {func() *broken {
		return &broken{delete: func(m *dlqtest.Memory, ctx context.Context, ids ...string) error {
			var all []dlq.Entry
			if err := m.List(ctx, func(e dlq.Entry) error { all = append(all, e); return nil }); err != nil {
				return err
			}
			if err := m.Delete(ctx, ids...); err != nil {
				return err
			}
			removed := map[string]bool{}
			for _, e := range all {
				switch {
				case !slices.Contains(ids, e.ID):
				case !removed[e.ID]:
					removed[e.ID] = true
				default:
					if err := m.Put(ctx, e); err != nil {
						return err
					}
				}
			}
			return nil
		}}
	}, "SameID", false, []string{"Delete", "Redrive"}},
	// Replaces the entry that has the ID of the one it is given, as an upsert keyed by ID does:
	// of entries that share an ID, only the last one put stays.
	"put-replaces-same-id": {func() *broken {
		return &broken{put: func(m *dlqtest.Memory, ctx context.Context, e dlq.Entry) error {
			if e.ID != "" {
				if err := m.Delete(ctx, e.ID); err != nil {
					return err
				}
			}
			return m.Put(ctx, e)
		}}
	}, "SameID", false, []string{"Delete", "RoundTrip/genesys-audit"}},
	"list-stops-after-a-page": {func() *broken {
		return &broken{list: func(m *dlqtest.Memory, ctx context.Context, fn func(dlq.Entry) error) error {
			return listInPages(m, ctx, fn, func(p [][]dlq.Entry) [][]dlq.Entry { return p[:min(1, len(p))] })
		}}
	}, "Many", false, nil},
	"list-pages-out-of-order": {func() *broken {
		return &broken{list: func(m *dlqtest.Memory, ctx context.Context, fn func(dlq.Entry) error) error {
			return listInPages(m, ctx, fn, func(p [][]dlq.Entry) [][]dlq.Entry {
				if len(p) > 1 {
					p[0], p[1] = p[1], p[0]
				}
				return p
			})
		}}
	}, "Many", false, nil},
	"order-lost-on-reopen": {func() *broken {
		b := &broken{}
		b.list = func(m *dlqtest.Memory, ctx context.Context, fn func(dlq.Entry) error) error {
			if !b.reopened {
				return m.List(ctx, fn)
			}
			return listInPages(m, ctx, fn, func(p [][]dlq.Entry) [][]dlq.Entry {
				for _, page := range p {
					slices.Reverse(page)
				}
				return p
			})
		}
		return b
	}, "ReopenOrder", true, nil},
	// Keeps the first 64 KiB of Raw, as a column or a message size limit would: an intake takes
	// envelopes of up to 260 KiB.
	"raw-capped": {func() *broken {
		return &broken{put: func(m *dlqtest.Memory, ctx context.Context, e dlq.Entry) error {
			if len(e.Event.Raw) > 64<<10 {
				e.Event.Raw = e.Event.Raw[:64<<10]
			}
			return m.Put(ctx, e)
		}}
	}, "RoundTrip/largest-raw", false, []string{"RoundTrip/genesys-audit", "Delete"}},
	// Matches IDs in Get and Delete whatever their case, as a SQL table with a case-insensitive
	// collation does: a redrive that delivered "abc" and deletes it removes "ABC" too, which its
	// sink may have refused.
	"ids-fold-case": {func() *broken {
		return &broken{
			get: func(m *dlqtest.Memory, ctx context.Context, id string) (dlq.Entry, error) {
				var found []dlq.Entry
				err := m.List(ctx, func(e dlq.Entry) error {
					if strings.EqualFold(e.ID, id) {
						found = append(found, e)
					}
					return nil
				})
				if err != nil || len(found) == 0 {
					return m.Get(ctx, id)
				}
				return found[0], nil
			},
			delete: func(m *dlqtest.Memory, ctx context.Context, ids ...string) error {
				var drop []string
				err := m.List(ctx, func(e dlq.Entry) error {
					if slices.ContainsFunc(ids, func(id string) bool { return strings.EqualFold(id, e.ID) }) {
						drop = append(drop, e.ID)
					}
					return nil
				})
				return errors.Join(err, m.Delete(ctx, drop...))
			},
		}
	}, "Delete", false, []string{"RoundTrip/largest-raw"}},
	// Drops quotes, backslashes and every character outside ASCII from the IDs it is given, as a
	// store that puts IDs into a query or a file name unescaped might.
	"ids-ascii-only": {func() *broken {
		return &broken{put: func(m *dlqtest.Memory, ctx context.Context, e dlq.Entry) error {
			e.ID = strings.Map(func(r rune) rune {
				if r > unicode.MaxASCII || r == '"' || r == '\\' {
					return -1
				}
				return r
			}, e.ID)
			return m.Put(ctx, e)
		}}
	}, "RoundTrip/id-quotes", false, []string{"RoundTrip/largest-raw", "RoundTrip/id-mixed-case"}},
	// Answers nil for a write its storage refused, as a driver that drops a produce error does.
	"refusal-reported-as-stored": {func() *broken {
		return &broken{onRefusal: func(*dlqtest.Memory, context.Context, dlq.Entry, error) error { return nil }}
	}, "TransientRefusal", false, []string{"RoundTrip/genesys-audit", "Delete"}},
	// Marks every refusal permanent, so that the dispatcher drops an event a retry would have kept.
	"refusal-always-permanent": {func() *broken {
		return &broken{onRefusal: func(_ *dlqtest.Memory, _ context.Context, _ dlq.Entry, refusal error) error {
			return retry.Permanent(refusal)
		}}
	}, "TransientRefusal", false, []string{"PermanentRefusal"}},
	// Keeps the entry its storage refused, and reports the refusal.
	"refusal-stored-anyway": {func() *broken {
		return &broken{onRefusal: func(m *dlqtest.Memory, ctx context.Context, e dlq.Entry, refusal error) error {
			return errors.Join(refusal, m.Put(ctx, e))
		}}
	}, "PermanentRefusal", false, nil},
	// Acknowledges entries it holds in memory and writes them out in Close: closing and reopening
	// cannot tell it from a durable store, a crash can.
	"write-behind": {func() *broken {
		return &broken{writeBehind: true}
	}, "Crash", true, []string{"Reopen", "ReopenOrder", "PutAfterClose", "Many", "Delete", "RoundTrip"}},
}

const brokenEnv = "DLQTEST_BROKEN_STORE"

// TestBrokenStore runs the suite against one broken store; it runs only in the child process of
// TestSuiteCatchesBrokenStores.
func TestBrokenStore(t *testing.T) {
	name := os.Getenv(brokenEnv)
	if name == "" {
		t.Skip("runs only as the child process of TestSuiteCatchesBrokenStores")
	}
	b, ok := brokenStores[name]
	require.True(t, ok, "unknown broken store %q", name)
	dlqtest.Run(t, dlqtest.Harness{
		New: func(t *testing.T) dlqtest.Opener {
			var backing *dlqtest.Memory // the storage a durable store reopens
			return func(t *testing.T) dlqtest.Store {
				s := b.store()
				switch {
				case !b.durable:
					s.Memory = dlqtest.NewMemory()
					return s
				case backing == nil:
					backing = dlqtest.NewMemory()
				default:
					s.reopened = true
				}
				s.Memory = backing
				if s.writeBehind {
					s.Memory, s.backing = copyMemory(t, backing), backing
				}
				return durable{s}
			}
		},
		// The Memory behind a durable store stands for its storage, which outlives the process;
		// the broken store over it is the process's own memory, which dies with it. Dropping the
		// store is all a crash does.
		Crash:         func(*testing.T, dlqtest.Store) {},
		FailTransient: refuseWrites(errors.New("storage unavailable")),
		FailPermanent: refuseWrites(retry.Permanent(errors.New("storage is read-only"))),
		Features:      dlqtest.Features{Delete: true, Ordered: true, Durable: b.durable},
	})
}

// refuseWrites returns a failure hook that has a broken store's storage refuse every write with
// err until restored.
func refuseWrites(err error) func(*testing.T, dlqtest.Store) func() {
	return func(t *testing.T, s dlqtest.Store) func() {
		b, ok := s.(*broken)
		if d, durable := s.(durable); durable {
			b, ok = d.broken, true
		}
		require.True(t, ok, "a store the Opener did not return")
		b.refusal = err
		return func() { b.refusal = nil }
	}
}

// durable is a broken store whose Close leaves its storage open for the next store.
type durable struct{ *broken }

// Close writes a write-behind store's copy back to its storage, and closes the copy; other
// durable stores leave their storage open for the next store.
func (d durable) Close() error {
	if !d.writeBehind {
		return nil
	}
	ctx := context.Background()
	var stale []string
	if err := d.backing.List(ctx, func(e dlq.Entry) error { stale = append(stale, e.ID); return nil }); err != nil {
		return err
	}
	if err := d.backing.Delete(ctx, stale...); err != nil {
		return err
	}
	err := d.Memory.List(ctx, func(e dlq.Entry) error { return d.backing.Put(ctx, e) })
	return errors.Join(err, d.Memory.Close())
}

// copyMemory returns a new Memory holding the entries of m.
func copyMemory(t *testing.T, m *dlqtest.Memory) *dlqtest.Memory {
	c := dlqtest.NewMemory()
	require.NoError(t, m.List(context.Background(), func(e dlq.Entry) error {
		return c.Put(context.Background(), e)
	}))
	return c
}

// TestSuiteCatchesBrokenStores proves the suite can fail: each broken store must fail it, in the
// subtest about the promise it breaks.
func TestSuiteCatchesBrokenStores(t *testing.T) {
	if os.Getenv(brokenEnv) != "" {
		t.Skip("child process")
	}
	for name, b := range brokenStores {
		t.Run(name, func(t *testing.T) {
			// A minute for each child, which takes two or three seconds: one for them all was
			// most of it used on a loaded machine, and the child running when it ran out was
			// killed without the lines checked below.
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestBrokenStore$", "-test.v")
			cmd.Env = append(os.Environ(), brokenEnv+"="+name)
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			require.ErrorAs(t, err, &exit, "the suite passed a broken store:\n%s", out)
			assert.Contains(t, string(out), "--- FAIL: TestBrokenStore/"+b.fails+" ", "%s", out)
			for _, p := range b.passes {
				assert.Contains(t, string(out), "--- PASS: TestBrokenStore/"+p+" ", "%s", out)
			}
		})
	}
}
