package main

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/retry"
)

// A log reopened on a file that a failed write left ending in half a line (the disk filled, the
// service was restarted) writes its first event on a line of its own, so that the event can be
// read back; a file that ends in a line break gets no blank line.
func TestReopenedLogStartsAfterHalfLine(t *testing.T) {
	const whole = `{"id":"e-1","type":"t","data":"{}"}` + "\n"
	cases := []struct {
		name, before string
		want         []string
	}{
		{"new file", "", []string{"e-3"}},
		{"ends in a line break", whole, []string{"e-1", "e-3"}},
		{"ends in half a line", whole + `{"id":"e-2","type":"t","da`, []string{"e-1", "e-3"}},
		{"only half a line", `{"id":"e-2"`, []string{"e-3"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			path := filepath.Join(t.TempDir(), "audit.jsonl")
			if c.before != "" {
				require.NoError(t, os.WriteFile(path, []byte(c.before), 0o600))
			}
			l, err := OpenAuditLog(path)
			require.NoError(t, err)
			require.NoError(t, l.Send(ctx, &fanbridge.Event{ID: "e-3", Type: "t", Data: []byte(`{"a":3}`)}))
			require.NoError(t, l.Close())

			content, err := os.ReadFile(path)
			require.NoError(t, err)
			f, err := os.Open(path)
			require.NoError(t, err)
			defer f.Close()
			events, err := ReadAuditLog(f)
			require.NoError(t, err)
			var ids []string
			for _, e := range events {
				ids = append(ids, e.ID)
			}
			assert.Equal(t, c.want, ids, "log:\n%s", content)
			assert.NotContains(t, string(content), "\n\n", "no blank line")
		})
	}
}

// gatedWriter is a disk that does not answer: each Write tells entered, then waits for release.
type gatedWriter struct {
	entered chan struct{}
	release chan struct{}
	mu      sync.Mutex
	lines   int
}

func (w *gatedWriter) Write(p []byte) (int, error) {
	w.entered <- struct{}{}
	<-w.release
	w.mu.Lock()
	w.lines++
	w.mu.Unlock()
	return len(p), nil
}

// Send returns by its deadline, with an error that wraps the context's and is retryable, both
// when its own write does not return and when it waits for another Send's write that does not.
func TestSendReturnsByDeadlineWhenTheDiskHangs(t *testing.T) {
	cases := []struct {
		name string
		busy bool // another Send is stuck in a write first
	}{
		{"own write hangs", false},
		{"waiting behind a hung write", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			w := &gatedWriter{entered: make(chan struct{}, 2), release: make(chan struct{})}
			l := NewAuditLog(w)
			first := make(chan error, 1)
			if c.busy {
				go func() { first <- l.Send(ctx, &fanbridge.Event{ID: "stuck", Type: "t"}) }()
				select {
				case <-w.entered:
				case <-ctx.Done():
					t.Fatal("the first Send never wrote")
				}
			}

			sendCtx, cancelSend := context.WithTimeout(ctx, 100*time.Millisecond)
			defer cancelSend()
			result := make(chan error, 1)
			go func() { result <- l.Send(sendCtx, &fanbridge.Event{ID: "e", Type: "t"}) }()
			select {
			case err := <-result:
				require.ErrorIs(t, err, context.DeadlineExceeded)
				assert.False(t, retry.IsPermanent(err), "a hang may end: not permanent")
			case <-ctx.Done():
				close(w.release)
				t.Fatal("Send with a 100 ms deadline did not return while the disk hangs")
			}

			// Once the disk answers again, what was in flight ends and the log works again.
			close(w.release)
			if c.busy {
				require.NoError(t, <-first)
			}
			require.NoError(t, l.Send(ctx, &fanbridge.Event{ID: "after", Type: "t"}))
			require.NoError(t, l.Close())
		})
	}
}
