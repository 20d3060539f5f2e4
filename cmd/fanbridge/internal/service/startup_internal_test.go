package service

import (
	"bytes"
	"encoding/pem"
	"fmt"
	"log/slog"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
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

	// Values ${ENV} expansion put in the settings are cut out of a start's errors, as from
	// validation's: a Kafka DLQ's TLS file that changed since validation, a listener address or
	// a DLQ directory that cannot be used.
	t.Run("values from the environment", func(t *testing.T) {
		secretDir := filepath.Join(t.TempDir(), "tenant-7f3a9c-token")
		require.NoError(t, os.Mkdir(secretDir, 0o700))
		ca := filepath.Join(secretDir, "ca.pem")
		held, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		defer held.Close()
		file := filepath.Join(secretDir, "file")
		require.NoError(t, os.WriteFile(file, nil, 0o600))
		vars := map[string]string{"CA": ca, "ADDR": held.Addr().String(), "DIR": filepath.Join(file, "dlq")}
		lookup := func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
		const base = "intake: [{path: /e, insecure_no_auth: true}]\n" +
			"sinks: [{name: s, grpc: {targets: [\"127.0.0.1:1\"], insecure: true}}]\n" +
			"routes: [{name: r, all: true, sinks: [s]}]\n"
		const anyPort = "listen: {address: \"127.0.0.1:0\"}\n"
		for name, tc := range map[string]struct{ doc, key string }{
			"kafka dlq tls":  {base + anyPort + "dlq: {kafka: {brokers: [\"127.0.0.1:1\"], topic: dlq, tls: {ca_file: \"${CA}\"}}}\n", "config: dlq.kafka: "},
			"listen address": {base + "listen: {address: \"${ADDR}\"}\n", "config: listen.address: "},
			"dlq directory":  {base + anyPort + "dlq: {file: {dir: \"${DIR}\"}}\n", "config: dlq.file.dir: "},
		} {
			srv := httptest.NewTLSServer(nil)
			require.NoError(t, os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600))
			srv.Close()
			cfg, err := config.Parse([]byte(tc.doc), lookup)
			require.NoError(t, err, name)
			require.NoError(t, os.WriteFile(ca, []byte("not a certificate"), 0o600))
			s, err := New(cfg, quiet)
			require.Error(t, err, name)
			assert.Nil(t, s)
			assert.ErrorContains(t, err, tc.key, name)
			assert.NotContains(t, err.Error(), "tenant-7f3a9c-token", name)
			assert.NotContains(t, err.Error(), held.Addr().String(), name)
			if cfg.DLQ != nil {
				// As the dlq commands open the queue.
				_, _, err = OpenDLQ(cfg, cfg.DLQ, false, quiet.Logger)
				require.Error(t, err, name)
				assert.ErrorContains(t, err, "config: dlq.", name)
				assert.NotContains(t, err.Error(), "tenant-7f3a9c-token", name)
			}
		}
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

// An address given with -listen that cannot be listened on is reported as the flag's: the file's
// listen.address, which the flag overrides, is not what to fix.
func TestListenFlagErrorNamesTheFlag(t *testing.T) {
	held, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer held.Close()
	for _, addr := range []string{"127.0.0.1:99999", held.Addr().String()} {
		t.Run(addr, func(t *testing.T) {
			opts := Options{Logger: slog.New(slog.DiscardHandler), ListenAddress: addr}
			s, err := New(startupConfig(t, "127.0.0.1:0", t.TempDir()), opts)
			require.Error(t, err)
			assert.Nil(t, s)
			assert.True(t, strings.HasPrefix(err.Error(), "-listen: "), "names the flag: %v", err)
			assert.NotContains(t, err.Error(), "listen.address")
		})
	}
}
