package filedlq

import (
	"bytes"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"
)

// Frame starts that never close, nested one in the other, are given up once they are older than
// the longest line; the reader must then let go of them too, or its memory grows with the damage
// instead of staying within a few times that length.
func TestResyncMemoryStaysBounded(t *testing.T) {
	const max = 1 << 20
	rs := resync{max: max, entry: func(int64, []byte, bool) error { return nil }}
	rs.begin(0)
	piece := bytes.Repeat([]byte(`{"crc32c":"00000000","entry":{`), (256<<10)/30)
	for fed := 0; fed < 32*max; fed += len(piece) {
		require.NoError(t, rs.feed(piece))
	}
	frames := cap(rs.open) * int(unsafe.Sizeof(frame{}))
	require.LessOrEqual(t, frames, 3*max, "bytes of open frames after 32 MiB of nested frame starts")
	require.LessOrEqual(t, cap(rs.buf), 3*max, "bytes buffered")
}
