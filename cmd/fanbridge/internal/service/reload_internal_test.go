package service

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge/cmd/fanbridge/internal/config"
	"github.com/fanbridge/fanbridge/signature"
)

// testConfig is a configuration whose logging level tells which version is running.
func testConfig(t *testing.T, level string) []byte {
	t.Helper()
	return fmt.Appendf(nil, `listen: {address: "127.0.0.1:0"}
intake:
  - path: /events
    insecure_no_auth: true
sinks:
  - name: consumer
    grpc: {targets: ["127.0.0.1:1"], insecure: true}
routes:
  - {name: everything, all: true, sinks: [consumer]}
logging: {level: %s}
`, level)
}

// newTestService builds a service from the configuration text in a file, without serving it.
func newTestService(t *testing.T, text []byte) (*Service, string) {
	t.Helper()
	return newServiceLoggingTo(t, text, slog.DiscardHandler)
}

// newServiceLoggingTo is newTestService with the service's logs going to h.
func newServiceLoggingTo(t *testing.T, text []byte, h slog.Handler) (*Service, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "fanbridge.yaml")
	require.NoError(t, os.WriteFile(path, text, 0o600))
	cfg, err := config.Parse(text, nil)
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s, err := New(cfg, Options{ConfigPath: path, Logger: slog.New(h), Listener: ln, ConfigText: text})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.shutdown() })
	return s, path
}

// paused is one ReloadFile held between reading the file and applying it.
type paused struct{ release chan struct{} }

// Two reloads at once (the file watch and SIGHUP): the one that read the newer text applies
// last, and the remembered hash is the running text's.
func TestConcurrentReloadsApplyTheNewestText(t *testing.T) {
	s, path := newTestService(t, testConfig(t, "info"))
	v1, v2 := testConfig(t, "warn"), testConfig(t, "error")
	require.NoError(t, os.WriteFile(path, v1, 0o600))

	reads := make(chan paused)
	afterRead = func() {
		p := paused{release: make(chan struct{})}
		reads <- p
		<-p.release
	}
	t.Cleanup(func() { afterRead = nil })
	deadline := time.After(20 * time.Second)
	errs := make(chan error, 2)

	go func() { errs <- s.ReloadFile() }()
	var first paused
	select {
	case first = <-reads: // the first reload has read v1
	case <-deadline:
		t.Fatal("the first reload never read the file")
	}
	require.NoError(t, os.WriteFile(path, v2, 0o600))
	go func() { errs <- s.ReloadFile() }()
	select {
	case second := <-reads:
		// The second reload read v2 while the first had not applied v1: let it apply first, as
		// the race would, and see what is left running.
		t.Error("a reload read the file while another was between reading and applying it")
		close(second.release)
		require.NoError(t, <-errs)
		close(first.release)
	case <-time.After(200 * time.Millisecond):
		// The second reload waits for the first: a bounded check that it does not read early;
		// nothing below depends on this wait.
		close(first.release)
		select {
		case second := <-reads:
			close(second.release)
		case <-deadline:
			t.Fatal("the second reload never read the file")
		}
		require.NoError(t, <-errs)
	}
	require.NoError(t, <-errs)

	s.mu.Lock()
	level := s.cfg.Logging.Level
	s.mu.Unlock()
	assert.Equal(t, "error", level, "the newest text runs")
	assert.Equal(t, sha256.Sum256(v2), *s.fileSum.Load(), "the hash remembered is the running text's")
}

// A reload keeps the running listen settings, so an intake's dispatch_timeout is checked against
// the running write_timeout, not the file's: raising both is rejected and changes nothing.
func TestReloadChecksDispatchTimeoutAgainstRunningWriteTimeout(t *testing.T) {
	s, _ := newTestService(t, testConfig(t, "info")) // write_timeout: the default, 30s
	for _, tc := range []struct {
		name, text string
		applied    bool
	}{
		{"both raised", `listen: {write_timeout: 2m}
intake: [{path: /events, insecure_no_auth: true, dispatch_timeout: 1m}]`, false},
		{"equal to the running one", `listen: {write_timeout: 1m}
intake: [{path: /events, insecure_no_auth: true, dispatch_timeout: 30s}]`, false},
		{"under the running one, but not with the running read_timeout", `listen: {write_timeout: 1m}
intake: [{path: /events, insecure_no_auth: true, dispatch_timeout: 25s}]`, false},
		{"under the running one", `intake: [{path: /events, insecure_no_auth: true, dispatch_timeout: 10s}]`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text := tc.text + `
sinks: [{name: consumer, grpc: {targets: ["127.0.0.1:1"], insecure: true}}]
routes: [{name: everything, all: true, sinks: [consumer]}]
logging: {level: error}
`
			cfg, err := config.Parse([]byte(text), nil)
			require.NoError(t, err, "the file on its own is valid")
			s.mu.Lock()
			before := s.cfg
			s.mu.Unlock()
			err = s.Reload(cfg)
			s.mu.Lock()
			after := s.cfg
			s.mu.Unlock()
			if tc.applied {
				require.NoError(t, err)
				assert.Equal(t, 10*time.Second, after.Intake[0].DispatchTimeout.D())
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), "intake[0].dispatch_timeout")
			assert.Contains(t, err.Error(), "running listen.write_timeout (30s)")
			assert.Same(t, before, after, "nothing changes")
			assert.Equal(t, "info", after.Logging.Level)
		})
	}
}

// A reload keeps the replay cache of a standard_webhooks verifier whose path, position and
// replay_cache are unchanged, so a message accepted before the reload is still refused as a
// replay after it, also when the reload rotates the keys (a new one added beside the old, which
// still verifies the message); a new replay_cache size starts a new cache.
func TestReloadKeepsReplayCaches(t *testing.T) {
	secret, err := signature.NewStandardWebhooksSecret()
	require.NoError(t, err)
	other, err := signature.NewStandardWebhooksSecret()
	require.NoError(t, err)
	text := func(level string, size int, keys ...string) []byte {
		return fmt.Appendf(nil, `intake:
  - path: /webhooks
    verifiers:
      - standard_webhooks: {keys: [%s], replay_cache: %d}
sinks: [{name: consumer, grpc: {targets: ["127.0.0.1:1"], insecure: true}}]
routes: [{name: nothing, pattern: {source: ["never"]}, sinks: [consumer]}]
logging: {level: %s}
`, strings.Join(keys, ", "), size, level)
	}
	s, _ := newTestService(t, text("info", 100, secret))
	body, err := os.ReadFile(filepath.Join("..", "..", "testdata", "genesys", "v2.audits.entitytype.UserPresence.update.json"))
	require.NoError(t, err)
	ts := time.Now()
	post := func(key string) int {
		req := httptest.NewRequest(http.MethodPost, "/webhooks", bytes.NewReader(body))
		require.NoError(t, signature.SignStandardWebhooksRequest(req, "msg_1", ts, body, key))
		rec := httptest.NewRecorder()
		s.routes(true).ServeHTTP(rec, req)
		return rec.Code
	}
	reload := func(level string, size int, keys ...string) {
		cfg, err := config.Parse(text(level, size, keys...), nil)
		require.NoError(t, err)
		require.NoError(t, s.Reload(cfg))
	}

	require.Equal(t, http.StatusOK, post(secret), "accepted (no route matches)")
	require.Equal(t, http.StatusUnauthorized, post(secret), "the same message again is a replay")
	reload("warn", 100, secret)
	assert.Equal(t, http.StatusUnauthorized, post(secret), "still a replay after a reload")
	reload("warn", 100, other, secret)
	assert.Equal(t, http.StatusUnauthorized, post(secret), "still a replay after the keys are rotated")
	assert.Equal(t, http.StatusUnauthorized, post(other), "and under the new key")
	reload("warn", 200, other, secret)
	assert.Equal(t, http.StatusOK, post(other), "a new size, a new cache")
	assert.Equal(t, http.StatusUnauthorized, post(other))
}

// A reload that raises a verifier's tolerance keeps the ids already accepted for the longer
// time, and one that moves the verifier among others of other kinds keeps its cache: a message
// accepted right at the edge of the old tolerance, whose id the old tolerance would let go a
// moment later, stays refused while the new tolerance accepts its timestamp.
func TestReloadRaisingToleranceKeepsReplaysRefused(t *testing.T) {
	secret, err := signature.NewStandardWebhooksSecret()
	require.NoError(t, err)
	text := func(tolerance string, apiKeyFirst bool) []byte {
		verifiers := fmt.Sprintf("      - standard_webhooks: {keys: [%s], replay_cache: 100, tolerance: %s}\n", secret, tolerance)
		if apiKeyFirst {
			verifiers = "      - api_key: {header: X-Api-Key, keys: [\"k-0123456789\"]}\n" + verifiers
		}
		return fmt.Appendf(nil, `intake:
  - path: /webhooks
    verifiers:
%ssinks: [{name: consumer, grpc: {targets: ["127.0.0.1:1"], insecure: true}}]
routes: [{name: nothing, pattern: {source: ["never"]}, sinks: [consumer]}]
`, verifiers)
	}
	s, _ := newTestService(t, text("2s", false))
	body, err := os.ReadFile(filepath.Join("..", "..", "testdata", "genesys", "v2.audits.entitytype.UserPresence.update.json"))
	require.NoError(t, err)
	// Timestamps are whole seconds: this one is 1 to 2 s old, so stale under the old tolerance
	// within a second, when its id would be let go.
	ts := time.Now().Truncate(time.Second).Add(-time.Second)
	post := func() int {
		req := httptest.NewRequest(http.MethodPost, "/webhooks", bytes.NewReader(body))
		require.NoError(t, signature.SignStandardWebhooksRequest(req, "msg_edge", ts, body, secret))
		rec := httptest.NewRecorder()
		s.routes(true).ServeHTTP(rec, req)
		return rec.Code
	}
	require.Equal(t, http.StatusOK, post(), "accepted (no route matches)")
	cfg, err := config.Parse(text("1h", true), nil)
	require.NoError(t, err)
	require.NoError(t, s.Reload(cfg))
	// Let the old tolerance's horizon pass: the wall clock, not another goroutine, is waited for.
	time.Sleep(time.Until(ts.Add(2*time.Second + 20*time.Millisecond)))
	assert.Equal(t, http.StatusUnauthorized, post(), "still refused: the new tolerance accepts the timestamp")
}

// lockedBuffer is a log destination safe for the service's goroutines to write while a test reads.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A configuration that panics while it is applied is a rejected reload: the running
// configuration stays, the reload after it applies, and the panic does not reach the SIGHUP
// goroutine. The panics: a queue the Dispatcher cannot allocate (set past the checks that refuse
// it; a Dispatcher that refuses it with an error instead is as good), and one raised once the
// new sinks are built.
func TestReloadPanicIsARejectedReload(t *testing.T) {
	for _, tc := range []struct {
		name  string
		spoil func(*config.Config)
		swap  func()
	}{
		{name: "in the dispatcher", spoil: func(c *config.Config) { c.Sinks[0].QueueSize = math.MaxInt }},
		{name: "before the swap", spoil: func(c *config.Config) { c.Sinks[0].QueueSize = 7 }, swap: func() { panic("boom") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text := testConfig(t, "info")
			cfg, err := config.Parse(text, nil)
			require.NoError(t, err)
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			logs := &lockedBuffer{}
			s, err := New(cfg, Options{Logger: slog.New(slog.NewTextHandler(logs, nil)), Listener: ln, ConfigText: text})
			require.NoError(t, err)
			t.Cleanup(func() { _ = s.shutdown() })
			s.mu.Lock()
			before, sinkBefore := s.cfg, s.sinks["consumer"]
			s.mu.Unlock()

			bad, err := config.Parse(testConfig(t, "warn"), nil)
			require.NoError(t, err)
			tc.spoil(bad) // a changed sink: built anew before the swap
			beforeSwap = tc.swap
			t.Cleanup(func() { beforeSwap = nil })
			err = func() (err error) {
				defer func() {
					if p := recover(); p != nil {
						err = fmt.Errorf("Reload panicked: %v", p)
					}
				}()
				return s.Reload(bad)
			}()
			beforeSwap = nil
			require.Error(t, err)
			assert.NotContains(t, err.Error(), "Reload panicked")
			assert.Contains(t, logs.String(), "configuration reload rejected; the running configuration stays")

			s.mu.Lock()
			after, sinkAfter := s.cfg, s.sinks["consumer"]
			s.mu.Unlock()
			assert.Same(t, before, after, "nothing changes")
			assert.Same(t, sinkBefore, sinkAfter, "the running sink stays")
			assert.Equal(t, "info", after.Logging.Level)

			next, err := config.Parse(testConfig(t, "error"), nil)
			require.NoError(t, err)
			require.NoError(t, s.Reload(next), "no lock is left held")
			s.mu.Lock()
			assert.Equal(t, "error", s.cfg.Logging.Level)
			s.mu.Unlock()
		})
	}
}

// The file watch applies a change only once two reads a tick apart agree on it: a file written
// in place can be read half written, and half a file may still be valid. Each tick waits until
// the watch has handled it, so the file is never written while the watch reads it.
func TestWatchAppliesAChangeOnceTwoReadsAgree(t *testing.T) {
	logs := &lockedBuffer{}
	s, path := newServiceLoggingTo(t, testConfig(t, "info"), slog.NewTextHandler(logs, nil))
	handled := make(chan struct{})
	watchTicked = func() { handled <- struct{}{} }
	t.Cleanup(func() { watchTicked = nil })
	ticks := make(chan time.Time)
	go s.watch(t.Context(), ticks)
	deadline := time.After(20 * time.Second)
	tick := func() {
		t.Helper()
		for _, step := range []func() bool{
			func() bool {
				select {
				case ticks <- time.Time{}:
					return true
				case <-deadline:
					return false
				}
			},
			func() bool {
				select {
				case <-handled:
					return true
				case <-deadline:
					return false
				}
			},
		} {
			if !step() {
				t.Fatal("the watch stopped handling ticks")
			}
		}
	}
	reloads := func() int { return strings.Count(logs.String(), "configuration reloaded") }

	// The first part of a write in place, valid on its own, then the whole.
	full := testConfig(t, "warn")
	half := full[:bytes.Index(full, []byte("logging:"))]
	require.NoError(t, os.WriteFile(path, half, 0o600))
	tick() // reads the half
	require.NoError(t, os.WriteFile(path, full, 0o600))
	tick() // reads the whole, which differs from the half
	assert.Zero(t, reloads(), "a text read once is not applied")
	tick() // reads the whole again and applies it
	assert.Equal(t, 1, reloads(), "only the text read twice is applied")
	s.mu.Lock()
	assert.Equal(t, "warn", s.cfg.Logging.Level)
	s.mu.Unlock()
	assert.Equal(t, sha256.Sum256(full), *s.fileSum.Load())

	// A change undone before a second read is not applied.
	require.NoError(t, os.WriteFile(path, testConfig(t, "error"), 0o600))
	tick()
	require.NoError(t, os.WriteFile(path, full, 0o600))
	tick()
	tick()
	assert.Equal(t, 1, reloads())
	assert.Equal(t, sha256.Sum256(full), *s.fileSum.Load())
}

// A reload the watch starts reads the file once more and applies it only if it still holds the
// text the watch saw settle; otherwise nothing changes, not even the remembered hash.
func TestWatchReloadSkipsAFileThatChangedAgain(t *testing.T) {
	s, path := newTestService(t, testConfig(t, "info"))
	before := s.fileSum.Load()
	seen := sha256.Sum256(testConfig(t, "warn"))
	require.NoError(t, os.WriteFile(path, testConfig(t, "error"), 0o600))
	require.ErrorIs(t, s.reloadFile(&seen, true), errChangedAgain)
	s.mu.Lock()
	assert.Equal(t, "info", s.cfg.Logging.Level)
	s.mu.Unlock()
	assert.Equal(t, before, s.fileSum.Load())

	now := sha256.Sum256(testConfig(t, "error"))
	require.NoError(t, s.reloadFile(&now, true))
	s.mu.Lock()
	assert.Equal(t, "error", s.cfg.Logging.Level)
	s.mu.Unlock()
}

// A reload on SIGHUP applies the file only once two reads agree, as the watch does: a file
// being written in place is not applied half written. Here the writer finishes just after the
// first read, which finds a valid first part (without the logging section).
func TestReloadFileWaitsForTheFileToSettle(t *testing.T) {
	s, path := newTestService(t, testConfig(t, "error"))
	full := testConfig(t, "warn")
	half := full[:bytes.Index(full, []byte("logging:"))]
	require.NoError(t, os.WriteFile(path, half, 0o600))
	var once sync.Once
	finish := func() { once.Do(func() { require.NoError(t, os.WriteFile(path, full, 0o600)) }) }
	settleRead, afterRead = finish, finish
	t.Cleanup(func() { settleRead, afterRead = nil, nil })

	require.NoError(t, s.ReloadFile())
	s.mu.Lock()
	defer s.mu.Unlock()
	assert.Equal(t, "warn", s.cfg.Logging.Level, "the whole file is applied, not its first part")
	assert.Equal(t, sha256.Sum256(full), *s.fileSum.Load())
}

// A file that never holds still is rejected, and the running configuration stays.
func TestReloadFileRejectsAFileThatKeepsChanging(t *testing.T) {
	logs := &lockedBuffer{}
	s, path := newServiceLoggingTo(t, testConfig(t, "error"), slog.NewTextHandler(logs, nil))
	delay, limit := settleDelay, settleMax
	settleDelay, settleMax = time.Millisecond, 50*time.Millisecond
	levels := []string{"warn", "info", "debug"}
	n := 0
	settleRead = func() {
		n++
		require.NoError(t, os.WriteFile(path, testConfig(t, levels[n%len(levels)]), 0o600))
	}
	t.Cleanup(func() { settleDelay, settleMax, settleRead = delay, limit, nil })

	err := s.ReloadFile()
	require.ErrorContains(t, err, "was still changing after 50ms")
	assert.GreaterOrEqual(t, n, 2)
	s.mu.Lock()
	assert.Equal(t, "error", s.cfg.Logging.Level)
	s.mu.Unlock()
	assert.Contains(t, logs.String(), "configuration reload rejected")
}

// A file that cannot be read is rejected at once, with the read's error: not read again, since
// by then a file being replaced may be back half written.
func TestReloadFileRejectsAFileItCannotRead(t *testing.T) {
	logs := &lockedBuffer{}
	s, path := newServiceLoggingTo(t, testConfig(t, "error"), slog.NewTextHandler(logs, nil))
	require.NoError(t, os.Remove(path))
	reads := 0
	afterRead = func() { reads++ }
	t.Cleanup(func() { afterRead = nil })

	err := s.ReloadFile()
	require.ErrorIs(t, err, fs.ErrNotExist)
	assert.Zero(t, reads, "the file was not read a second time")
	s.mu.Lock()
	assert.Equal(t, "error", s.cfg.Logging.Level)
	s.mu.Unlock()
	assert.Contains(t, logs.String(), "configuration reload rejected")
}
