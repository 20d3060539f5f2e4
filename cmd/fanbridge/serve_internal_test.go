//go:build unix

package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge/internal/testwait"
)

// logWatch is a log that lets a test wait, without polling, for a text to appear in it.
type logWatch struct {
	mu      sync.Mutex
	text    strings.Builder
	changed chan struct{}
}

func newLogWatch() *logWatch { return &logWatch{changed: make(chan struct{})} }

func (l *logWatch) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.text.Write(p)
	close(l.changed)
	l.changed = make(chan struct{})
	return len(p), nil
}

// count returns how often s occurs in the log, and a channel closed at the next write.
func (l *logWatch) count(s string) (int, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.text.String(), s), l.changed
}

// wait waits until s occurs n times in the log.
func (l *logWatch) wait(ctx context.Context, t *testing.T, s string, n int) {
	t.Helper()
	for {
		got, changed := l.count(s)
		if got >= n {
			return
		}
		select {
		case <-changed:
		case <-ctx.Done():
			t.Fatalf("%q not logged %d times: %v; the log:\n%s", s, n, ctx.Err(), l.String())
		}
	}
}

func (l *logWatch) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.text.String()
}

// serveFunc is how a goroutine's stack names cmdServe and the functions it made: in a test binary,
// by the package's import path rather than main.
const serveFunc = "/cmd/fanbridge.cmdServe"

// goroutinesOf returns the stacks of the running goroutines that mention fn.
func goroutinesOf(fn string) []string {
	var out []string
	for _, g := range testwait.Goroutines() {
		if strings.Contains(g, fn) {
			out = append(out, g)
		}
	}
	return out
}

// TestServeLeavesNoGoroutines runs the service twice in one process. Once the first run returned,
// none of the goroutines it started may be left: the one that read SIGHUP would otherwise take
// the reloads meant for the second run, which must get every SIGHUP sent to it.
func TestServeLeavesNoGoroutines(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	path := filepath.Join(t.TempDir(), "fanbridge.yaml")
	require.NoError(t, os.WriteFile(path, []byte(`listen: {address: "127.0.0.1:0"}
intake:
  - path: /events
    insecure_no_auth: true
sinks:
  - name: consumer
    grpc: {targets: ["127.0.0.1:1"], insecure: true}
routes:
  - {name: everything, all: true, sinks: [consumer]}
logging: {level: info, format: text}
`), 0o600))
	serve := func(log *logWatch) <-chan int {
		code := make(chan int, 1)
		go func() { code <- run([]string{"-config", path}, io.Discard, log) }()
		log.wait(ctx, t, "msg=listening", 1)
		return code
	}
	exit := func(code <-chan int) int {
		select {
		case c := <-code:
			return c
		case <-ctx.Done():
			t.Fatalf("the service did not stop: %v", ctx.Err())
			return -1
		}
	}

	first := newLogWatch()
	code := serve(first)
	require.NoError(t, syscall.Kill(os.Getpid(), syscall.SIGTERM))
	require.Equal(t, exitOK, exit(code), first.String())
	assert.Empty(t, goroutinesOf(serveFunc), "goroutines of the first run left after it returned")

	second := newLogWatch()
	code = serve(second)
	const reloads = 3
	for i := 1; i <= reloads; i++ {
		// One at a time: the channel SIGHUP arrives on holds one, and several count as one.
		require.NoError(t, syscall.Kill(os.Getpid(), syscall.SIGHUP))
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		second.wait(wctx, t, "SIGHUP: reloading", i)
		cancel()
	}
	require.NoError(t, syscall.Kill(os.Getpid(), syscall.SIGTERM))
	require.Equal(t, exitOK, exit(code), second.String())
	taken, _ := first.count("SIGHUP: reloading")
	assert.Zero(t, taken, "the first run, stopped, took SIGHUPs sent to the second")
	assert.Empty(t, goroutinesOf(serveFunc), "goroutines of the second run left after it returned")
}
