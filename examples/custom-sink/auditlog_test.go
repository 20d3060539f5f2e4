package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/eventbridge"
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

// A body full of the characters json.Marshal escapes as six bytes (<, >, &) still fits on one
// line when it is under the intake's body limit, and comes back byte for byte.
func TestHTMLHeavyBodyFits(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	body := `{"html":"` + strings.Repeat(`<>&\"`, (eventbridge.DefaultMaxBodySize-64)/5) + `"}`
	require.Less(t, len(body), eventbridge.DefaultMaxBodySize)
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := OpenAuditLog(path)
	require.NoError(t, err)
	require.NoError(t, l.Send(ctx, &fanbridge.Event{ID: "html", Type: "t", Data: []byte(body)}))
	require.NoError(t, l.Close())

	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, 1, bytes.Count(b, []byte("\n")))
	var rec record
	require.NoError(t, json.Unmarshal(b, &rec))
	assert.Equal(t, body, rec.Data)
	assert.Less(t, len(b), 2*len(body)+200)
}

// A log file OpenAuditLog creates has its directory synced, so that its name survives a machine
// crash; reopening an existing one does not sync again. A sync that fails leaves no file behind,
// so that the next open creates it, and syncs, again.
func TestCreatedLogSyncsItsDirectory(t *testing.T) {
	var synced []string
	fail := false
	old := syncDir
	syncDir = func(dir string) error {
		synced = append(synced, dir)
		if fail {
			return errors.New("no sync")
		}
		return old(dir)
	}
	t.Cleanup(func() { syncDir = old })
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.jsonl")

	fail = true
	_, err := OpenAuditLog(path)
	require.ErrorContains(t, err, "no sync")
	_, err = os.Stat(path)
	require.ErrorIs(t, err, fs.ErrNotExist)

	fail = false
	l, err := OpenAuditLog(path)
	require.NoError(t, err)
	require.NoError(t, l.Close())
	l, err = OpenAuditLog(path)
	require.NoError(t, err)
	require.NoError(t, l.Close())
	assert.Equal(t, []string{dir, dir}, synced, "a sync at each creation, none at the reopening")
}

// A log path that is a symbolic link, or a chain of them, to a file not made yet creates the
// file, and syncs the directory of the file, not of the link.
func TestLogThroughALinkToAFileNotMadeYet(t *testing.T) {
	var synced []string
	old := syncDir
	syncDir = func(dir string) error {
		synced = append(synced, dir)
		return old(dir)
	}
	t.Cleanup(func() { syncDir = old })
	linkDir, fileDir := t.TempDir(), t.TempDir()
	target := filepath.Join(fileDir, "audit.jsonl")
	link := filepath.Join(linkDir, "audit.jsonl")
	// A chain: audit.jsonl -> mid.jsonl (relative) -> the target, not made yet.
	if err := os.Symlink(target, filepath.Join(linkDir, "mid.jsonl")); err != nil {
		t.Skipf("no symbolic links here: %v", err)
	}
	require.NoError(t, os.Symlink("mid.jsonl", link))
	l, err := OpenAuditLog(link)
	require.NoError(t, err)
	require.NoError(t, l.Send(context.Background(), &fanbridge.Event{ID: "e", Type: "t", Data: []byte(`{}`)}))
	require.NoError(t, l.Close())
	b, err := os.ReadFile(target)
	require.NoError(t, err)
	assert.Contains(t, string(b), `"id":"e"`)
	assert.Equal(t, []string{fileDir}, synced)
}
