package filedlq_test

import (
	"context"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/dlq"
	"github.com/fanbridge/fanbridge/dlq/filedlq"
	"github.com/fanbridge/fanbridge/retry"
)

func testCtx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// entryFor returns a deterministic entry for id, so that a reader can check it byte for byte.
// Raw is size bytes of pseudo-random data derived from id (binary, so stored as base64) or, for
// size 0, a small JSON document.
func entryFor(id string, size int) dlq.Entry {
	raw := []byte(fmt.Sprintf(`{"id":%q,"detail-type":"v2.users.{id}.presence"}`, id))
	if size > 0 {
		h := fnv.New64a()
		h.Write([]byte(id))
		r := rand.New(rand.NewPCG(h.Sum64(), 7))
		raw = make([]byte, size)
		for i := range raw {
			raw[i] = byte(r.Uint32())
		}
	}
	return dlq.Entry{
		ID:           id,
		Sink:         "kafka-orders",
		Route:        "orders",
		Class:        retry.ClassRetryable,
		Error:        "kafka: NOT_LEADER_FOR_PARTITION",
		Attempts:     3,
		FirstAttempt: time.Date(2026, 3, 1, 10, 0, 0, 1, time.UTC),
		LastAttempt:  time.Date(2026, 3, 1, 10, 0, 2, 2, time.UTC),
		Condition:    dlq.ConditionAttempts,
		Event:        fanbridge.Event{ID: "ev-" + id, Type: "v2.users.{id}.presence", Raw: raw},
	}
}

func open(t testing.TB, dir string, opts ...filedlq.Option) *filedlq.Queue {
	t.Helper()
	q, err := filedlq.Open(dir, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { q.Close() })
	return q
}

func listIDs(t testing.TB, ctx context.Context, r dlq.Reader) []string {
	t.Helper()
	var ids []string
	require.NoError(t, r.List(ctx, func(e dlq.Entry) error {
		ids = append(ids, e.ID)
		return nil
	}))
	return ids
}

// segments returns the paths of the segment files in dir, in order.
func segments(t testing.TB, dir string) []string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(dir, "dlq-*.jsonl"))
	require.NoError(t, err)
	sort.Strings(paths)
	return paths
}

func appendBytes(t testing.TB, path string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	require.NoError(t, err)
	_, err = f.Write(b)
	require.NoError(t, err)
	require.NoError(t, f.Close())
}

// damages collects what a queue reports through WithOnDamage.
type damages struct{ list []filedlq.Damage }

func (d *damages) option() filedlq.Option {
	return filedlq.WithOnDamage(func(x filedlq.Damage) { d.list = append(d.list, x) })
}

// syncDirectory fsyncs dir, as the queue does by default.
func syncDirectory(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
