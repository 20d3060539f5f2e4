package main

import (
	"bytes"
	"context"
	"errors"
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
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	var out bytes.Buffer
	require.NoError(t, run(ctx, []string{"-out", path}, exampletest.Env(map[string]string{"DLQ_DIR": t.TempDir()}), &out))
	text := out.String()
	assert.Contains(t, text, "a body that is not UTF-8: auditlog: event body is not valid UTF-8: event not-utf8 (permanent)\n")
	assert.Equal(t, 4, strings.Count(text, ": 200 {\"status\":\"delivered\""))
	assert.Contains(t, text, "dead-letter queue:\n")

	// Every sample is in the log, body byte for byte.
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	events, err := ReadAuditLog(f)
	require.NoError(t, err)
	names, err := samples.ReadDir("samples")
	require.NoError(t, err)
	require.Len(t, events, len(names))
	for i, name := range names {
		raw, err := samples.ReadFile("samples/" + name.Name())
		require.NoError(t, err)
		assert.True(t, bytes.Contains(raw, events[i].Data), "%s: body not kept byte for byte", name.Name())
	}
}

func TestUnwritableLog(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := run(ctx, []string{"-out", filepath.Join(t.TempDir(), "missing", "audit.jsonl")}, exampletest.Env(nil), io.Discard)
	require.Error(t, err)
	assert.True(t, errors.Is(err, os.ErrNotExist), "%v", err)
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
