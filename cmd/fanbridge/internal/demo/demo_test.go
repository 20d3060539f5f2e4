package demo_test

import (
	"bytes"
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
