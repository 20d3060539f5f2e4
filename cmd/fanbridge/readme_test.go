package main_test

import (
	"context"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRepositoryReadmeDemo runs the demo commands of the repository's README.md, from the
// repository's root as a newcomer would, against the demo started with the README's flags, and
// checks that each prints what the README says it prints. Only the addresses change: the README
// shows the default ports, the test takes free ones.
func TestRepositoryReadmeDemo(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	require.NoError(t, err)
	readme := mustRead(t, filepath.Join(root, "README.md"))
	// The commands are the lines of the first shell block after "With a fixed key:", a
	// backslash joining a line to the next, each followed by the comment lines of what it prints.
	_, block, ok := strings.Cut(readme, "With a fixed key:\n\n```sh\n")
	require.True(t, ok, "README.md has no demo block")
	block, _, _ = strings.Cut(block, "```")
	var cmds []string
	var prints [][]string // prints[i]: the comment lines after cmds[i]
	for _, l := range strings.Split(strings.ReplaceAll(block, "\\\n", ""), "\n") {
		switch l = strings.TrimSpace(l); {
		case l == "":
		case strings.HasPrefix(l, "#"):
			require.NotEmpty(t, cmds, "README.md's demo block starts with a comment")
			prints[len(cmds)-1] = append(prints[len(cmds)-1], strings.TrimPrefix(strings.TrimPrefix(l, "#"), " "))
		default:
			cmds = append(cmds, strings.Join(strings.Fields(l), " "))
			prints = append(prints, nil)
		}
	}
	require.Len(t, cmds, 3, "README.md's demo block: %q", cmds)
	require.Len(t, prints[1], 1, "README.md's demo block: what curl prints: %q", prints[1])
	require.NotEmpty(t, prints[2], "README.md's demo block: what kcat prints")

	run := regexp.MustCompile(`^go run \./cmd/fanbridge (.*) &$`).FindStringSubmatch(cmds[0])
	require.NotNil(t, run, "the first command starts the demo in the background: %q", cmds[0])
	p := start(t, nil, append(strings.Fields(run[1]),
		"-listen", "127.0.0.1:0", "-kafka-port", "0", "-dlq-dir", filepath.Join(t.TempDir(), "dlq"))...)
	b := parseBanner(t, ctx, p)
	localize := strings.NewReplacer("http://127.0.0.1:8080/events", b.intake, "127.0.0.1:9092", b.kafka)

	sh := func(t *testing.T, tool, cmd string) string {
		t.Helper()
		for _, bin := range []string{"sh", tool} {
			if _, err := exec.LookPath(bin); err != nil {
				t.Skipf("%s is not installed", bin)
			}
		}
		c := exec.CommandContext(ctx, "sh", "-c", localize.Replace(cmd))
		c.Dir = root
		out, err := c.Output()
		require.NoError(t, err, "%s", cmd)
		return string(out)
	}
	t.Run("curl", func(t *testing.T) {
		require.True(t, strings.HasPrefix(cmds[1], "curl "), cmds[1])
		assert.Equal(t, prints[1][0], strings.TrimSpace(sh(t, "curl", cmds[1])))
	})
	t.Run("kcat", func(t *testing.T) {
		require.True(t, strings.HasPrefix(cmds[2], "kcat "), cmds[2])
		// The README shows the first lines of the record and abbreviates the rest with "...".
		// The comment marker takes the lines' leading spaces, so spacing is not compared.
		want, _, _ := strings.Cut(strings.Join(prints[2], "\n"), "...")
		out := sh(t, "kcat", cmds[2])
		assert.True(t, strings.HasPrefix(strings.Join(strings.Fields(out), ""), strings.Join(strings.Fields(want), "")),
			"kcat printed %q, README.md says %q", out, prints[2])
		// Line breaks are compared, though: the record is the body byte for byte, as the README
		// shows it, only when curl posts the file as it is (curl -d would strip them).
		assert.GreaterOrEqual(t, strings.Count(out, "\n"), strings.Count(want, "\n"),
			"kcat printed %q, README.md shows more lines: %q", out, prints[2])
	})

	p.signal(t, syscall.SIGTERM)
	code, err := p.exit(ctx)
	require.NoError(t, err)
	assert.Equal(t, 0, code)
}
