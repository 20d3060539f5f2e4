package demo_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge/cmd/fanbridge/internal/demo"
)

// dlqLine returns the banner's dlq line.
func dlqLine(t *testing.T, env *demo.Env) string {
	t.Helper()
	var b bytes.Buffer
	env.Banner(&b)
	for _, l := range strings.Split(b.String(), "\n") {
		if strings.HasPrefix(l, "  dlq:") {
			return l
		}
	}
	require.Fail(t, "the banner has no dlq line", b.String())
	return ""
}

// The temporary dead-letter directory the demo makes goes when it stops, entries and all: the
// banner says so, and how to keep one. A directory given to it stays, and the banner says
// nothing more of it.
func TestDeadLetterDirectory(t *testing.T) {
	t.Run("temporary", func(t *testing.T) {
		env, err := demo.Start(demo.Options{Listen: "127.0.0.1:0", KafkaPort: 0})
		require.NoError(t, err)
		closed := false
		defer func() {
			if !closed {
				env.Close()
			}
		}()
		assert.Equal(t, "  dlq:      "+env.DLQDir+"  (removed when the demo stops; use -dlq-dir to keep it)", dlqLine(t, env))
		require.NoError(t, os.MkdirAll(env.DLQDir, 0o700))
		require.NoError(t, os.WriteFile(filepath.Join(env.DLQDir, "dlq-00000000000000000001.jsonl"), []byte("{}\n"), 0o600))
		env.Close()
		closed = true
		assert.NoDirExists(t, env.DLQDir)
	})
	t.Run("given", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "dlq")
		env, err := demo.Start(demo.Options{Listen: "127.0.0.1:0", KafkaPort: 0, DLQDir: dir})
		require.NoError(t, err)
		assert.Equal(t, "  dlq:      "+dir, dlqLine(t, env))
		require.NoError(t, os.MkdirAll(dir, 0o700))
		env.Close()
		assert.DirExists(t, dir)
	})
}

// A sample is found by its name or by its last dot-separated parts, never by a part of one; an
// empty name finds none.
func TestFindSample(t *testing.T) {
	for name, want := range map[string]string{
		"customer.end": "v2.detail.events.conversation.customer.end",
		"end":          "v2.detail.events.conversation.customer.end",
		"v2.detail.events.conversation.customer.end": "v2.detail.events.conversation.customer.end",
		"no-external-contact":                        "v2.detail.events.conversation.customer.end.no-external-contact",
		"REPAIRED":                                   "websocket.v2.users.activity.REPAIRED",
	} {
		s, ok := demo.FindSample(name)
		if assert.True(t, ok, name) {
			assert.Equal(t, want, s.Name, name)
		}
	}
	for _, name := range []string{"", "d", "nd", "r.end", "ustomer.end", "contact", "type", ".end", "no.such.sample"} {
		s, ok := demo.FindSample(name)
		assert.False(t, ok, "%q found %s", name, s.Name)
	}
}

// Each sample is posted under an id of its own: the two files that are variants of another
// sample under its id (posted as they are, they would be answered as duplicates and routed
// nowhere) get it with a suffix, and the rest of their body is the file's.
func TestSamplesHaveDistinctIDs(t *testing.T) {
	samples := demo.Samples()
	require.Len(t, samples, 8)
	seen := map[string]string{}
	for _, s := range samples {
		var body map[string]any
		require.NoError(t, json.Unmarshal(s.Body, &body), s.Name)
		id, ok := body["id"].(string)
		if !ok {
			continue // the WebSocket notification has no id of its own
		}
		if other, dup := seen[id]; dup {
			assert.Failf(t, "a shared id", "%s and %s are both posted as %s", other, s.Name, id)
		}
		seen[id] = s.Name

		file, err := os.ReadFile(filepath.Join("samples", s.Name+".json"))
		require.NoError(t, err)
		var want map[string]any
		require.NoError(t, json.Unmarshal(file, &want))
		wantID := want["id"].(string)
		switch s.Name {
		case "v2.detail.events.conversation.customer.end.no-external-contact":
			wantID += "-no-external-contact"
		case "negative-test.mismatched-detail-type":
			wantID += "-mismatched-detail-type"
		}
		assert.Equal(t, wantID, id, s.Name)
		want["id"] = wantID
		assert.Equal(t, want, body, "%s: the file's body, the id aside", s.Name)
	}
	assert.Equal(t, "v2.detail.events.conversation.customer.end", seen["58fb5dac-f077-4eec-a25f-c638dbdd4368"], "the original keeps its id")
	assert.Equal(t, "v2.detail.events.conversation.customer.start", seen["adbcfa5b-0116-4baa-b66b-a3f5902e95bf"], "the original keeps its id")
}
