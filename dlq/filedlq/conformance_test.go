package filedlq_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge/dlq"
	"github.com/fanbridge/fanbridge/dlq/dlqtest"
	"github.com/fanbridge/fanbridge/dlq/filedlq"
)

func TestConformance(t *testing.T) {
	policies := map[string]filedlq.SyncPolicy{
		"always":   filedlq.SyncAlways(),
		"interval": filedlq.SyncInterval(5e6),
		"never":    filedlq.SyncNever(),
	}
	for name, p := range policies {
		t.Run(name, func(t *testing.T) {
			dlqtest.Run(t, dlqtest.Harness{
				New: func(t *testing.T) dlqtest.Opener {
					dir := t.TempDir()
					return func(t *testing.T) dlqtest.Store {
						// Small segments, so that the suite crosses segment boundaries too.
						q, err := filedlq.Open(dir, filedlq.WithSync(p), filedlq.WithMaxSegmentSize(16<<10))
						require.NoError(t, err)
						return q
					}
				},
				// The queue lets go of its files as a killed process does; nothing is fsynced.
				Crash:    func(_ *testing.T, s dlqtest.Store) { s.(*filedlq.Queue).Crash() },
				Features: dlqtest.Features{Delete: true, Durable: true, Ordered: true},
			})
		})
	}
}

func TestConformanceReadOnly(t *testing.T) {
	// A read-only queue over a directory its writer filled: Delete is refused.
	dlqtest.Run(t, dlqtest.Harness{
		New: func(t *testing.T) dlqtest.Opener {
			dir := t.TempDir()
			return func(t *testing.T) dlqtest.Store {
				w, err := filedlq.Open(dir)
				require.NoError(t, err)
				r, err := filedlq.Open(dir, filedlq.WithReadOnly())
				require.NoError(t, err)
				return readWrite{Queue: w, reader: r}
			}
		},
		// The reader holds no file between calls: only the writer has anything to let go of.
		Crash:    func(_ *testing.T, s dlqtest.Store) { s.(readWrite).Queue.Crash() },
		Features: dlqtest.Features{Durable: true, Ordered: true},
	})
}

// readWrite puts through a writer and reads through a read-only queue on the same directory.
type readWrite struct {
	*filedlq.Queue
	reader *filedlq.Queue
}

func (rw readWrite) List(ctx context.Context, fn func(dlq.Entry) error) error {
	return rw.reader.List(ctx, fn)
}

func (rw readWrite) Get(ctx context.Context, id string) (dlq.Entry, error) {
	return rw.reader.Get(ctx, id)
}

func (rw readWrite) Delete(ctx context.Context, ids ...string) error {
	return rw.reader.Delete(ctx, ids...)
}

func (rw readWrite) Close() error {
	return errors.Join(rw.reader.Close(), rw.Queue.Close())
}
