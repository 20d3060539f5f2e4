package filedlq_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge/dlq/filedlq"
)

// HoldsQueue takes a directory for a queue by the files the queue itself makes, named exactly
// as it names them, and by nothing else.
func TestHoldsQueue(t *testing.T) {
	ctx := testCtx(t)
	base := t.TempDir()
	opened := filepath.Join(base, "opened")
	q, err := filedlq.Open(opened)
	require.NoError(t, err)
	require.NoError(t, q.Put(ctx, entryFor("a", 0)))
	require.NoError(t, q.Close())
	segs, err := filepath.Glob(filepath.Join(opened, "dlq-*.jsonl"))
	require.NoError(t, err)
	require.Len(t, segs, 1)
	segment := filepath.Base(segs[0])

	for _, tc := range []struct {
		name  string
		files []string // regular files; a name ending in / is a directory
		want  bool
	}{
		{"empty", nil, false},
		{"a segment and the lock", []string{segment, "LOCK"}, true},
		{"a segment alone", []string{segment}, true},
		{"the lock alone", []string{"LOCK"}, true},
		{"a later segment", []string{"dlq-00000000000000004711.jsonl"}, true},
		{"an export of the entries", []string{"dlq-export.jsonl"}, false},
		{"segment number 0", []string{"dlq-00000000000000000000.jsonl"}, false},
		{"19 digits", []string{"dlq-0000000000000000001.jsonl"}, false},
		{"21 digits", []string{"dlq-000000000000000000001.jsonl"}, false},
		{"a leftover rewrite", []string{segment + ".tmp"}, false},
		{"another case", []string{"DLQ-00000000000000000001.JSONL", "lock"}, false},
		{"directories named as the queue's files", []string{segment + "/", "LOCK/"}, false},
		{"other files", []string{"README", "entries.json"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, name := range tc.files {
				if d, ok := strings.CutSuffix(name, "/"); ok {
					require.NoError(t, os.Mkdir(filepath.Join(dir, d), 0o700))
					continue
				}
				require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte("{}\n"), 0o600))
			}
			got, err := filedlq.HoldsQueue(dir)
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}

	got, err := filedlq.HoldsQueue(opened)
	require.NoError(t, err)
	assert.True(t, got, "a queue Open made")

	_, err = filedlq.HoldsQueue(filepath.Join(base, "missing"))
	assert.ErrorIs(t, err, fs.ErrNotExist)
	_, err = filedlq.HoldsQueue(segs[0])
	assert.Error(t, err, "a file is no directory")
}
