// Package exampletest runs the example programs from their tests: in the background, with an
// environment of the test's choosing, until the test stops them, and talks to them over HTTP.
package exampletest

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge/dlq"
	"github.com/fanbridge/fanbridge/dlq/filedlq"
	"github.com/fanbridge/fanbridge/examples/internal/demo"
)

// Env is an environment holding vars and nothing else.
func Env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

// Program is an example program running in the background.
type Program struct {
	// URL is the first word of the line the program prints once it listens ("listening on URL"),
	// without a trailing comma.
	URL string

	ctx    context.Context
	cancel context.CancelFunc
	lines  <-chan string
	done   <-chan error
}

// Start runs the program in the background and returns once it listens. It fails the test when
// the program returns first or ctx ends; the program stops at the latest when the test ends.
func Start(t *testing.T, ctx context.Context, run demo.RunFunc, args []string, vars map[string]string) *Program {
	t.Helper()
	runCtx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := run(runCtx, args, Env(vars), pw)
		pw.Close()
		done <- err
	}()
	// The output is read to its end, so that the program never blocks on it; lines beyond what
	// the buffer holds, unread by the test, are dropped.
	lines := make(chan string, 1024)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
			}
		}
	}()
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("run returned before listening: %v", <-done)
			}
			if rest, found := strings.CutPrefix(line, "listening on "); found {
				url := strings.TrimSuffix(strings.Fields(rest)[0], ",")
				return &Program{URL: url, ctx: ctx, cancel: cancel, lines: lines, done: done}
			}
		case <-ctx.Done():
			t.Fatal("run did not start listening")
		}
	}
}

// WaitFor reads the program's output until a line that starts with prefix.
func (p *Program) WaitFor(t *testing.T, prefix string) {
	t.Helper()
	for {
		select {
		case line, ok := <-p.lines:
			require.True(t, ok, "output ended before %q", prefix)
			if strings.HasPrefix(line, prefix) {
				return
			}
		case <-p.ctx.Done():
			t.Fatalf("no line %q", prefix)
		}
	}
}

// RunServingHint reads the program's output until the hint an offline demo prints once it keeps
// serving ("serving until Ctrl-C; try:", then a command on the next line), runs that command as
// printed from the repository's root, as a reader would paste it, and returns what it wrote to
// its standard output. It skips the test when curl or sh is not installed.
func (p *Program) RunServingHint(t *testing.T) string {
	t.Helper()
	for _, tool := range []string{"curl", "sh"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed", tool)
		}
	}
	p.WaitFor(t, "serving until Ctrl-C; try:")
	var hint string
	select {
	case line, ok := <-p.lines:
		require.True(t, ok, "output ended after the hint's first line")
		hint = strings.TrimSpace(line)
	case <-p.ctx.Done():
		t.Fatal("no command after the hint's first line")
	}
	require.True(t, strings.HasPrefix(hint, "curl "), "the hint is a curl command: %q", hint)
	root, err := filepath.Abs(".")
	require.NoError(t, err)
	for {
		if _, err := os.Stat(filepath.Join(root, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(root)
		require.NotEqual(t, root, parent, "no go.mod above the test's directory")
		root = parent
	}
	cmd := exec.CommandContext(p.ctx, "sh", "-c", hint)
	cmd.Dir = root
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "%s\n%s", hint, stderr.String())
	return string(out)
}

// CheckServingHint runs an offline demo that keeps serving (-serve), runs the command it prints
// to try by hand as printed (see RunServingHint), and requires that it is taken as a sender's post is (JSON content type, the
// body as the file holds it): the demo posted that sample already, so it is acknowledged as a
// duplicate.
func CheckServingHint(t *testing.T, run demo.RunFunc) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p := Start(t, ctx, run, []string{"-serve"}, nil)
	answer := p.RunServingHint(t)
	assert.JSONEq(t, `{"status":"duplicate"}`, answer)
	p.Stop(t)
}

// Stop interrupts the program, as Ctrl-C does, and requires that it returns without error before
// the context given to Start ends.
func (p *Program) Stop(t *testing.T) {
	t.Helper()
	p.cancel()
	select {
	case err := <-p.done:
		require.NoError(t, err)
	case <-p.ctx.Done():
		t.Fatal("run did not stop")
	}
}

// Do sends a request with header and returns the answer and its body.
func Do(t *testing.T, ctx context.Context, method, url string, body []byte, header http.Header) (*http.Response, string) {
	t.Helper()
	resp, b, err := demo.Do(ctx, method, url, body, header)
	require.NoError(t, err)
	return resp, string(b)
}

// Post posts body with header and returns the answer's status code.
func Post(t *testing.T, ctx context.Context, url string, body []byte, header http.Header) int {
	t.Helper()
	resp, _ := Do(t, ctx, http.MethodPost, url, body, header)
	return resp.StatusCode
}

// DeadLetters returns the entries of the file dead-letter queue in dir, opened read-only.
func DeadLetters(t *testing.T, ctx context.Context, dir string) []dlq.Entry {
	t.Helper()
	q, err := filedlq.Open(dir, filedlq.WithReadOnly())
	require.NoError(t, err)
	defer q.Close()
	var entries []dlq.Entry
	for e, err := range dlq.All(ctx, q) {
		require.NoError(t, err)
		entries = append(entries, e)
	}
	return entries
}

// CheckOfflineRefuses requires that an offline demo (missing, the setting that makes the program a
// service, is unset) given a service's DLQ_DIR or LISTEN_ADDR refuses to start, naming both, and
// runs and writes nothing.
func CheckOfflineRefuses(t *testing.T, run demo.RunFunc, missing string) {
	t.Helper()
	for _, setting := range []string{"DLQ_DIR", "LISTEN_ADDR"} {
		t.Run(setting, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			dir := filepath.Join(t.TempDir(), "dlq")
			vars := map[string]string{"DLQ_DIR": dir, "LISTEN_ADDR": "0.0.0.0:0"}
			var out bytes.Buffer
			err := run(ctx, nil, Env(map[string]string{setting: vars[setting]}), &out)
			require.Error(t, err)
			assert.Contains(t, err.Error(), setting+" is set but "+missing+" is not")
			assert.Empty(t, out.String(), "nothing ran")
			assert.NoDirExists(t, dir)
		})
	}
}
