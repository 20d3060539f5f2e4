package dlqtest_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge/dlq"
	"github.com/fanbridge/fanbridge/dlq/dlqtest"
)

// broken is a Memory with one promise broken by the hooks that are set.
type broken struct {
	*dlqtest.Memory
	put    func(m *dlqtest.Memory, ctx context.Context, e dlq.Entry) error
	list   func(m *dlqtest.Memory, ctx context.Context, fn func(dlq.Entry) error) error
	get    func(m *dlqtest.Memory, ctx context.Context, id string) (dlq.Entry, error)
	delete func(m *dlqtest.Memory, ctx context.Context, ids ...string) error
}

func (b *broken) Put(ctx context.Context, e dlq.Entry) error {
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

// brokenStores each break one promise; fails names a subtest the suite must fail with.
var brokenStores = map[string]struct {
	store func() *broken
	fails string
}{
	"raw-trimmed": {func() *broken {
		return &broken{put: func(m *dlqtest.Memory, ctx context.Context, e dlq.Entry) error {
			e.Event.Raw = bytes.TrimSpace(e.Event.Raw)
			return m.Put(ctx, e)
		}}
	}, "RoundTrip/trailing-newline"},
	"times-to-milliseconds": {func() *broken {
		return &broken{put: func(m *dlqtest.Memory, ctx context.Context, e dlq.Entry) error {
			e.LastAttempt = e.LastAttempt.Truncate(time.Millisecond)
			return m.Put(ctx, e)
		}}
	}, "RoundTrip/genesys-audit"},
	"metadata-dropped": {func() *broken {
		return &broken{put: func(m *dlqtest.Memory, ctx context.Context, e dlq.Entry) error {
			e.Event.Metadata = nil
			return m.Put(ctx, e)
		}}
	}, "RoundTrip/genesys-audit"},
	"accepts-invalid": {func() *broken {
		return &broken{put: func(m *dlqtest.Memory, ctx context.Context, e dlq.Entry) error {
			if e.Sink == "" {
				e.Sink = "made-up"
			}
			return m.Put(ctx, e)
		}}
	}, "InvalidEntry"},
	"ignores-context": {func() *broken {
		return &broken{put: func(m *dlqtest.Memory, _ context.Context, e dlq.Entry) error {
			return m.Put(context.Background(), e)
		}}
	}, "CanceledContext"},
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
	}, "ConcurrentPuts"},
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
	}, "ListStopsOnError"},
	"get-missing-without-error": {func() *broken {
		return &broken{get: func(m *dlqtest.Memory, ctx context.Context, id string) (dlq.Entry, error) {
			e, err := m.Get(ctx, id)
			if errors.Is(err, dlq.ErrNotFound) {
				return dlq.Entry{}, nil
			}
			return e, err
		}}
	}, "GetMissing"},
	"delete-does-nothing": {func() *broken {
		return &broken{delete: func(*dlqtest.Memory, context.Context, ...string) error { return nil }}
	}, "Delete"},
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
			return func(t *testing.T) dlqtest.Store {
				s := b.store()
				s.Memory = dlqtest.NewMemory()
				return s
			}
		},
		Features: dlqtest.Features{Delete: true, Ordered: true},
	})
}

// TestSuiteCatchesBrokenStores proves the suite can fail: each broken store must fail it, in the
// subtest about the promise it breaks.
func TestSuiteCatchesBrokenStores(t *testing.T) {
	if os.Getenv(brokenEnv) != "" {
		t.Skip("child process")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for name, b := range brokenStores {
		t.Run(name, func(t *testing.T) {
			cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestBrokenStore$", "-test.v")
			cmd.Env = append(os.Environ(), brokenEnv+"="+name)
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			require.ErrorAs(t, err, &exit, "the suite passed a broken store:\n%s", out)
			assert.Contains(t, string(out), "--- FAIL: TestBrokenStore/"+b.fails, "%s", out)
		})
	}
}
