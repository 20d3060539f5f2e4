package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/examples/internal/demo"
	"github.com/fanbridge/fanbridge/examples/internal/exampletest"
	"github.com/fanbridge/fanbridge/retry"
	"github.com/fanbridge/fanbridge/signature"
	"github.com/fanbridge/fanbridge/sink"
	"github.com/fanbridge/fanbridge/sink/sinktest"
)

// disk is the audit log's file with failures on demand: a full disk (which may clear), a
// read-only file system (which will not), or a disk that stops answering.
type disk struct {
	*os.File
	mu   sync.Mutex
	fail error
	gate chan struct{} // while not nil, writes wait until it is closed
}

func (d *disk) Write(p []byte) (int, error) {
	d.mu.Lock()
	err, gate := d.fail, d.gate
	d.mu.Unlock()
	if gate != nil {
		<-gate
	}
	if err != nil {
		return 0, &os.PathError{Op: "write", Path: d.Name(), Err: err}
	}
	return d.File.Write(p)
}

// hang makes writes wait until release is called.
func (d *disk) hang() (release func()) {
	gate := make(chan struct{})
	d.mu.Lock()
	d.gate = gate
	d.mu.Unlock()
	return sync.OnceFunc(func() {
		d.mu.Lock()
		d.gate = nil
		d.mu.Unlock()
		close(gate)
	})
}

func (d *disk) failWith(err error) func() (heal func()) {
	return func() func() {
		d.mu.Lock()
		d.fail = err
		d.mu.Unlock()
		return func() {
			d.mu.Lock()
			d.fail = nil
			d.mu.Unlock()
		}
	}
}

// TestConformance runs the suite every fanbridge sink passes, as you would for a sink of yours.
func TestConformance(t *testing.T) {
	sinktest.Run(t, sinktest.Harness{
		Features: sinktest.Features{
			ReadBack: true, Metadata: true, Ordered: true,
			TransientFailure: true, PermanentFailure: true, Hang: true, Close: true,
		},
		Open: func(tb testing.TB) sinktest.Instance {
			path := filepath.Join(tb.TempDir(), "audit.jsonl")
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
			if err != nil {
				tb.Fatal(err)
			}
			d := &disk{File: f}
			return sinktest.Instance{
				Sink: NewAuditLog(d),
				Received: func(ctx context.Context) ([]*fanbridge.Event, error) {
					f, err := os.Open(path)
					if err != nil {
						return nil, err
					}
					defer f.Close()
					return ReadAuditLog(f)
				},
				FailTransient: d.failWith(syscall.ENOSPC),
				FailPermanent: d.failWith(syscall.EROFS),
				Hang:          d.hang,
			}
		},
	})
}

// tornWriter writes only part of its first line, then fails, as a disk filling up mid-write does.
type tornWriter struct {
	bytes.Buffer
	torn bool
}

func (w *tornWriter) Write(p []byte) (int, error) {
	if !w.torn {
		w.torn = true
		n, _ := w.Buffer.Write(p[:len(p)/2])
		return n, syscall.ENOSPC
	}
	return w.Buffer.Write(p)
}

func TestTornLineIsSkipped(t *testing.T) {
	ctx := context.Background()
	w := &tornWriter{}
	log := NewAuditLog(w)
	e := &fanbridge.Event{ID: "e-1", Type: "t", Data: []byte(`{"a":1}`)}
	err := log.Send(ctx, e)
	require.Error(t, err)
	assert.Equal(t, retry.ClassRetryable, retry.Classify(err))
	require.NoError(t, log.Send(ctx, e))

	events, err := ReadAuditLog(bytes.NewReader(w.Bytes()))
	require.NoError(t, err)
	require.Len(t, events, 1, "the half line is skipped, the retry is whole:\n%s", w.Bytes())
	assert.Equal(t, "e-1", events[0].ID)
	assert.JSONEq(t, `{"a":1}`, string(events[0].Data))
}

func TestClassification(t *testing.T) {
	cases := []struct {
		name  string
		event *fanbridge.Event
		fail  error
		want  retry.Class
	}{
		{"full disk", &fanbridge.Event{ID: "e"}, syscall.ENOSPC, retry.ClassRetryable},
		{"i/o error", &fanbridge.Event{ID: "e"}, syscall.EIO, retry.ClassRetryable},
		{"read-only file system", &fanbridge.Event{ID: "e"}, syscall.EROFS, retry.ClassPermanent},
		{"no permission", &fanbridge.Event{ID: "e"}, syscall.EACCES, retry.ClassPermanent},
		{"file too large", &fanbridge.Event{ID: "e"}, syscall.EFBIG, retry.ClassPermanent},
		{"body not UTF-8", &fanbridge.Event{ID: "e", Data: []byte{0xff}}, nil, retry.ClassPermanent},
		{"body too large", &fanbridge.Event{ID: "e", Data: []byte(`"` + strings.Repeat("x", maxLine) + `"`)}, nil, retry.ClassPermanent},
		{"time out of range", &fanbridge.Event{ID: "e", Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}, nil, retry.ClassPermanent},
		{"nil event", nil, nil, retry.ClassPermanent},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := os.Create(filepath.Join(t.TempDir(), "audit.jsonl"))
			require.NoError(t, err)
			d := &disk{File: f}
			d.failWith(c.fail)()
			log := NewAuditLog(d)
			defer log.Close()
			err = log.Send(context.Background(), c.event)
			require.Error(t, err)
			assert.Equal(t, c.want, retry.Classify(err), "%v", err)
			info, statErr := f.Stat()
			require.NoError(t, statErr)
			assert.Zero(t, info.Size(), "nothing is written")
		})
	}
}

func TestSendAfterClose(t *testing.T) {
	log := NewAuditLog(io.Discard)
	require.NoError(t, log.Close())
	err := log.Send(context.Background(), &fanbridge.Event{ID: "e"})
	assert.ErrorIs(t, err, sink.ErrClosed)
	assert.False(t, retry.IsPermanent(err))
	assert.NoError(t, log.Close())
}

func TestOffline(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out bytes.Buffer
	require.NoError(t, run(ctx, nil, exampletest.Env(nil), &out))
	text := out.String()
	assert.Contains(t, text, "a body that is not UTF-8: auditlog: event body is not valid UTF-8: event not-utf8 (permanent)\n")
	names, err := samples.ReadDir("samples")
	require.NoError(t, err)
	assert.Equal(t, len(names), strings.Count(text, ": 200 {\"status\":\"delivered\""))
	assert.Contains(t, text, fmt.Sprintf("%d events in the log:\n", len(names)))

	// The log was a temporary file, gone with the demo.
	_, rest, ok := strings.Cut(text, ", appending to ")
	require.True(t, ok, text)
	path, _, _ := strings.Cut(rest, "\n")
	assert.True(t, filepath.IsAbs(path), path)
	assert.NoFileExists(t, path)
}

// The offline demo, which runs when no credentials are set, writes only a temporary file and
// listens only on loopback: given a file, a dead-letter directory or an address it refuses to
// start, naming the setting, and touches none of them.
func TestOfflineRefusesAServicesSettings(t *testing.T) {
	cases := []struct {
		name    string
		args    []string
		vars    func(dir string) map[string]string
		setting string
	}{
		{"-out", []string{"-out", "audit.jsonl"}, func(string) map[string]string { return nil }, "-out"},
		{"DLQ_DIR", nil, func(dir string) map[string]string { return map[string]string{"DLQ_DIR": filepath.Join(dir, "dlq")} }, "DLQ_DIR"},
		{"LISTEN_ADDR", nil, func(string) map[string]string { return map[string]string{"LISTEN_ADDR": "0.0.0.0:0"} }, "LISTEN_ADDR"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			dir := t.TempDir()
			t.Chdir(dir) // where a relative -out would land
			var out bytes.Buffer
			err := run(ctx, c.args, exampletest.Env(c.vars(dir)), &out)
			require.Error(t, err)
			assert.Contains(t, err.Error(), c.setting+" is set but EVENTBRIDGE_API_KEY or GENESYS_WEBHOOK_SECRET is not")
			assert.Empty(t, out.String(), "nothing ran")
			entries, err := os.ReadDir(dir)
			require.NoError(t, err)
			assert.Empty(t, entries, "nothing written")
		})
	}
}

func TestUnwritableLog(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := run(ctx, []string{"-out", filepath.Join(t.TempDir(), "missing", "audit.jsonl")},
		exampletest.Env(map[string]string{"EVENTBRIDGE_API_KEY": "k", "LISTEN_ADDR": "127.0.0.1:0"}), io.Discard)
	require.Error(t, err)
	assert.True(t, errors.Is(err, os.ErrNotExist), "%v", err)
}

// Every sample a sender posts is in the log once answered, its body byte for byte.
func TestEverySampleKept(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	p := exampletest.Start(t, ctx, run, []string{"-out", path}, map[string]string{
		"EVENTBRIDGE_API_KEY": "test-key",
		"LISTEN_ADDR":         "127.0.0.1:0",
		"DLQ_DIR":             t.TempDir(),
	})
	names, err := samples.ReadDir("samples")
	require.NoError(t, err)
	for _, name := range names {
		body, err := samples.ReadFile("samples/" + name.Name())
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, exampletest.Post(t, ctx, p.URL, body, http.Header{demo.APIKeyHeader: {"test-key"}}), name.Name())
	}

	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	events, err := ReadAuditLog(f)
	require.NoError(t, err)
	require.Len(t, events, len(names))
	for i, name := range names {
		raw, err := samples.ReadFile("samples/" + name.Name())
		require.NoError(t, err)
		assert.True(t, bytes.Contains(raw, events[i].Data), "%s: body not kept byte for byte", name.Name())
	}
	p.Stop(t)
}

func TestBehindASender(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	p := exampletest.Start(t, ctx, run, []string{"-out", path}, map[string]string{
		"GENESYS_WEBHOOK_SECRET": "test-secret",
		"LISTEN_ADDR":            "127.0.0.1:0",
	})

	body, err := samples.ReadFile("samples/customer-end.json")
	require.NoError(t, err)
	send := func(h http.Header) int { return exampletest.Post(t, ctx, p.URL, body, h) }
	assert.Equal(t, http.StatusUnauthorized, send(http.Header{}))
	assert.Equal(t, http.StatusUnauthorized, send(http.Header{demo.APIKeyHeader: {demo.APIKey}}), "the demo key is not accepted")
	sig, err := signature.SignHMAC(demo.HMACScheme, "test-secret", body)
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, send(http.Header{demo.HMACScheme.Header: {sig}}))

	// Acknowledged means in the file, before shutdown.
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	events, err := ReadAuditLog(f)
	require.NoError(t, err)
	require.Len(t, events, 1)
	assert.Equal(t, "58fb5dac-f077-4eec-a25f-c638dbdd4368", events[0].ID)

	p.Stop(t)
}

// The command the offline demo prints to try by hand does what it says when pasted.
func TestServingHint(t *testing.T) { exampletest.CheckServingHint(t, run) }
