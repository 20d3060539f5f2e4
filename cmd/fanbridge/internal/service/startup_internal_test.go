package service

import (
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge/cmd/fanbridge/internal/config"
)

// startupConfig listens on addr, with a file DLQ in dir.
func startupConfig(t *testing.T, addr, dir string) *config.Config {
	t.Helper()
	cfg, err := config.Parse(fmt.Appendf(nil, `listen: {address: %q}
intake:
  - path: /events
    insecure_no_auth: true
sinks:
  - name: consumer
    grpc: {targets: ["127.0.0.1:1"], insecure: true}
routes:
  - {name: everything, all: true, sinks: [consumer]}
dlq: {file: {dir: %q}}
`, addr, dir), nil)
	require.NoError(t, err)
	return cfg
}

// A failed start returns its error, after undoing what it had built; it must not crash in the
// undoing, or the error that says what to fix is never shown.
func TestNewReturnsStartupErrors(t *testing.T) {
	quiet := Options{Logger: slog.New(slog.DiscardHandler)}

	t.Run("address in use", func(t *testing.T) {
		held, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		defer held.Close()
		dir := t.TempDir()
		s, err := New(startupConfig(t, held.Addr().String(), dir), quiet)
		require.Error(t, err)
		assert.Nil(t, s)
		assert.ErrorContains(t, err, "listen.address")

		// The failed start released the DLQ directory: another start can take it.
		s, err = New(startupConfig(t, "127.0.0.1:0", dir), quiet)
		require.NoError(t, err)
		require.NoError(t, s.shutdown())
	})

	t.Run("DLQ directory held by a running service", func(t *testing.T) {
		dir := t.TempDir()
		first, err := New(startupConfig(t, "127.0.0.1:0", dir), quiet)
		require.NoError(t, err)
		defer func() { _ = first.shutdown() }()
		s, err := New(startupConfig(t, "127.0.0.1:0", dir), quiet)
		require.Error(t, err)
		assert.Nil(t, s)
		assert.ErrorContains(t, err, dir)
	})

	t.Run("DLQ directory cannot be made", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "file")
		require.NoError(t, os.WriteFile(file, nil, 0o600))
		s, err := New(startupConfig(t, "127.0.0.1:0", filepath.Join(file, "dlq")), quiet)
		require.Error(t, err)
		assert.Nil(t, s)
		// The key to fix, the directory, and what the system said.
		assert.ErrorContains(t, err, "config: dlq.file.dir: ")
		assert.ErrorContains(t, err, filepath.Join(file, "dlq"))
		assert.ErrorContains(t, err, "not a directory")
	})
}

// A file that would make net/http panic is refused, and the running service keeps its routes.
func TestReloadRefusesARootIntakePath(t *testing.T) {
	s, path := newTestService(t, testConfig(t, "info"))
	bad := bytes.Replace(testConfig(t, "debug"), []byte("path: /events"), []byte("path: /"), 1)
	require.NoError(t, os.WriteFile(path, bad, 0o600))
	err := s.ReloadFile()
	require.ErrorContains(t, err, "intake[0].path")
	s.mu.Lock()
	level := s.cfg.Logging.Level
	s.mu.Unlock()
	assert.Equal(t, "info", level, "the running configuration stays")
}
