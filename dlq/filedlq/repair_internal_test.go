package filedlq

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fileOps records the writes and truncations of a repair, and can fail one of them.
type fileOps struct {
	ops  []string
	fail string
}

func (f *fileOps) WriteAt(b []byte, off int64) (int, error) {
	f.ops = append(f.ops, "write")
	if f.fail == "write" {
		return 0, errors.New("write failed")
	}
	return len(b), nil
}

func (f *fileOps) Truncate(int64) error {
	f.ops = append(f.ops, "truncate")
	if f.fail == "truncate" {
		return errors.New("truncate failed")
	}
	return nil
}

// The repair of a damaged last newline writes the newline back before it cuts anything: cut
// first, a crash or a failed write would leave the entry at the very end of the segment, where
// the next Open takes it for a torn write and cuts it away.
func TestRepairWritesTheNewlineBeforeCutting(t *testing.T) {
	f := &fileOps{}
	require.NoError(t, cutAfter(f, 10, 20))
	assert.Equal(t, []string{"write", "truncate"}, f.ops)

	f = &fileOps{fail: "write"}
	require.Error(t, cutAfter(f, 10, 20))
	assert.Equal(t, []string{"write"}, f.ops, "nothing is cut when the newline could not be written")

	f = &fileOps{}
	require.NoError(t, cutAfter(f, 10, 10))
	assert.Equal(t, []string{"truncate"}, f.ops, "a plain torn tail is only cut")
}
