package filedlq_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Segments written before entries' JSON kept DEL, C1 controls and bidirectional controls out of
// embedded Raw and Data, and wrote them raw in strings, are read byte for byte, through deletes
// of other entries and puts of new ones.
func TestReadsTerminalControlsWrittenRaw(t *testing.T) {
	ctx := testCtx(t)
	raw := "{\"a\":\"a\x7fb\u009b\u202e\u2066\u00a0\u200d\"}"
	oldLine := func(id string) string {
		entry := `{"v":1,"id":"` + id + `","sink":"s","error":"e` + "\x7f\u0085\u202d" +
			`","event":{"id":"ev","data":` + raw + `,"raw":` + raw + `}}`
		return fmt.Sprintf(`{"crc32c":"%08x","entry":%s}`+"\n", crc32c([]byte(entry)), entry)
	}
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "dlq-00000000000000000001.jsonl"),
		[]byte(oldLine("A")+oldLine("B")+oldLine("C")), 0o600))

	q := open(t, dir)
	check := func(t *testing.T, ids ...string) {
		t.Helper()
		assert.Equal(t, ids, listIDs(t, ctx, q))
		for _, id := range ids {
			e, err := q.Get(ctx, id)
			require.NoError(t, err)
			assert.Equal(t, []byte(raw), e.Event.Raw, "%s", id)
			assert.Equal(t, []byte(raw), []byte(e.Event.Data), "%s", id)
			assert.Equal(t, "e\x7f\u0085\u202d", e.Error)
		}
	}
	check(t, "A", "B", "C")

	require.NoError(t, q.Delete(ctx, "B"))
	e, err := q.Get(ctx, "A")
	require.NoError(t, err)
	e.ID = "D"
	require.NoError(t, q.Put(ctx, e))
	check(t, "A", "C", "D")

	// The new entry is written in the escaped form.
	var all strings.Builder
	for _, seg := range segments(t, dir) {
		b, err := os.ReadFile(seg)
		require.NoError(t, err)
		all.Write(b)
	}
	found := false
	for line := range strings.Lines(all.String()) {
		if strings.Contains(line, `"id":"D"`) {
			found = true
			assert.NotContains(t, line, "\x7f")
			assert.Contains(t, line, `"raw_text":"{\"a\":\"a\u007fb\u009b\u202e\u2066`+"\u00a0\u200d"+`\"}"`)
		}
	}
	assert.True(t, found, "no line holds entry D")

	require.NoError(t, q.Close())
	q = open(t, dir)
	check(t, "A", "C", "D")
}
