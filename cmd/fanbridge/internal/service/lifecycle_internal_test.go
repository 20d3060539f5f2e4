package service

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge/cmd/fanbridge/internal/config"
	"github.com/fanbridge/fanbridge/dlq"
	"github.com/fanbridge/fanbridge/internal/testwait"
)

// newLoggedService is newTestService with the service's logs kept in a buffer.
func newLoggedService(t *testing.T, text []byte) (*Service, string, *lockedBuffer) {
	t.Helper()
	logs := &lockedBuffer{}
	s, path := newServiceLoggingTo(t, text, slog.NewTextHandler(logs, nil))
	return s, path, logs
}

// The "configuration reload rejected" log line says what is wrong with the file, never a value
// from the environment, nor a part of one: a CEL compiler quotes only the line it fails on.
func TestReloadRejectedLogShowsNoEnvironmentValue(t *testing.T) {
	t.Setenv("FANBRIDGE_TEST_SOURCE", "TOPSECRETVALUE")
	s, path, logs := newLoggedService(t, testConfig(t, "info"))
	for _, cel := range []string{
		`"event.source == '${FANBRIDGE_TEST_SOURCE}' && nosuchvar"`,
		`"event.source == '${FANBRIDGE_TEST_SOURCE}' && nosuchvar &&\n true"`,
	} {
		bad := strings.Replace(string(testConfig(t, "debug")), "all: true", "cel: "+cel, 1)
		require.NoError(t, os.WriteFile(path, []byte(bad), 0o600))
		err := s.ReloadFile()
		require.ErrorContains(t, err, "routes[0].cel")
		assert.NotContains(t, err.Error(), "TOPSECRET")
	}
	out := logs.String()
	assert.Equal(t, 2, strings.Count(out, "configuration reload rejected"), out)
	assert.Contains(t, out, "undeclared reference to 'nosuchvar'")
	assert.NotContains(t, out, "TOPSECRET")
}

// A setting that changes only with a restart is reported as such once the reload is applied;
// a rejected reload applies nothing, and says nothing of the kind.
func TestRestartOnlySettingsAreReportedOnlyForAnAppliedReload(t *testing.T) {
	s, _, logs := newLoggedService(t, testConfig(t, "info")) // write_timeout: the default, 30s
	const restart = "takes effect after a restart"
	text := func(extra string) []byte {
		return []byte(extra + `
sinks: [{name: consumer, grpc: {targets: ["127.0.0.1:1"], insecure: true}}]
routes: [{name: everything, all: true, sinks: [consumer]}]
health: {cache: 5s}
`)
	}
	// Valid as a file, refused by the running write_timeout.
	rejected, err := config.Parse(text(`listen: {write_timeout: 2m}
intake: [{path: /events, insecure_no_auth: true, dispatch_timeout: 1m}]`), nil)
	require.NoError(t, err)
	require.Error(t, s.Reload(rejected))
	assert.Contains(t, logs.String(), "configuration reload rejected")
	assert.NotContains(t, logs.String(), restart)

	applied, err := config.Parse(text(`intake: [{path: /events, insecure_no_auth: true}]`), nil)
	require.NoError(t, err)
	require.NoError(t, s.Reload(applied))
	out := logs.String()
	i, j := strings.Index(out, "configuration reloaded"), strings.Index(out, restart)
	require.True(t, i >= 0 && j > i, "the restart warning follows the reload: %s", out)
	assert.Contains(t, out[j:], "key=health")
}

// A reload asked for once the shutdown began (a SIGHUP while draining) is not done, and the log
// says so instead of dropping it without a word.
func TestReloadDuringShutdownIsLogged(t *testing.T) {
	s, _, logs := newLoggedService(t, testConfig(t, "info"))
	require.NoError(t, s.shutdown())
	require.ErrorIs(t, s.ReloadFile(), errShuttingDown)
	cfg, err := config.Parse(testConfig(t, "debug"), nil)
	require.NoError(t, err)
	require.ErrorIs(t, s.Reload(cfg), errShuttingDown)
	out := logs.String()
	assert.Equal(t, 2, strings.Count(out, "configuration reload skipped: shutting down"), out)
	assert.Contains(t, out, "level=INFO msg=\"configuration reload skipped")
	assert.NotContains(t, out, "configuration reload rejected")
}

// The admin listener closes together with the intake listener, not once the intake's last
// request is done: /healthz and /metrics must not answer for up to shutdown.http_timeout after
// the intake stopped taking requests.
func TestAdminListenerClosesWithTheIntakeListener(t *testing.T) {
	cfg, err := config.Parse([]byte(`listen: {address: "127.0.0.1:0", admin_address: "127.0.0.1:0", read_timeout: 1m, write_timeout: 2m}
intake: [{path: /events, insecure_no_auth: true}]
sinks: [{name: consumer, grpc: {targets: ["127.0.0.1:1"], insecure: true}}]
routes: [{name: everything, all: true, sinks: [consumer]}]
shutdown: {http_timeout: 1m}
`), nil)
	require.NoError(t, err)
	s, err := New(cfg, Options{Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ran := make(chan error, 1)
	go func() { ran <- s.Run(ctx) }()
	intake, admin := s.Addr().String(), s.AdminAddr().String()

	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get("http://" + admin + "/healthz")
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	// An intake request whose body never comes: the intake's shutdown waits for it. The server
	// answers 100 Continue once the handler reads the body, so the request is running.
	held, err := net.Dial("tcp", intake)
	require.NoError(t, err)
	defer held.Close()
	_, err = fmt.Fprintf(held, "POST /events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\nExpect: 100-continue\r\n\r\n")
	require.NoError(t, err)
	require.NoError(t, held.SetReadDeadline(time.Now().Add(10*time.Second)))
	line, err := bufio.NewReader(held).ReadString('\n')
	require.NoError(t, err)
	require.Contains(t, line, "100 Continue")

	cancel()
	refused := func(addr string) func() bool {
		return func() bool {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err != nil {
				return true
			}
			_ = c.Close()
			return false
		}
	}
	require.Eventually(t, refused(intake), 10*time.Second, 5*time.Millisecond, "the intake listener never closed")
	require.Eventually(t, refused(admin), 5*time.Second, 5*time.Millisecond,
		"the admin listener is still open while the intake's last request runs")
	select {
	case err := <-ran:
		t.Fatalf("the shutdown ended before the intake's request did: %v", err)
	default:
	}

	require.NoError(t, held.Close()) // the request ends, and with it the shutdown
	require.NoError(t, testwait.Recv(t, ran, 30*time.Second))
}

// The service leaves the dead-letter directory to filedlq.Open, which makes it, and any missing
// parent, with mode 0700: dead letters hold customer events.
func TestFileDLQDirectoryIsPrivate(t *testing.T) {
	parent := filepath.Join(t.TempDir(), "state")
	dir := filepath.Join(parent, "dlq")
	s, err := New(startupConfig(t, "127.0.0.1:0", dir), Options{Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	require.NoError(t, s.shutdown())
	for _, d := range []string{parent, dir} {
		fi, err := os.Stat(d)
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o700), fi.Mode().Perm(), d)
	}
}

// A body slower than listen.read_timeout is answered 503 with Retry-After through the whole
// service, behind a verifier, so that the sender retries: the configuration keeps write_timeout
// past read_timeout plus the dispatch budget, and the answer is written in time.
func TestSlowBodyGetsARetryableAnswer(t *testing.T) {
	s := runService(t, `listen: {address: "127.0.0.1:0", read_timeout: 300ms, write_timeout: 3s}
intake: [{path: /events, dispatch_timeout: 1s, verifiers: [{api_key: {header: X-Api-Key, keys: ["k-0123456789"]}}]}]
sinks: [{name: consumer, grpc: {targets: ["127.0.0.1:1"], insecure: true}}]
routes: [{name: everything, all: true, sinks: [consumer]}]
`)

	conn, err := net.Dial("tcp", s.Addr().String())
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.SetDeadline(time.Now().Add(10*time.Second)))
	_, err = fmt.Fprintf(conn, "POST /events HTTP/1.1\r\nHost: x\r\nX-Api-Key: k-0123456789\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"id\":")
	require.NoError(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err, "the sender hears an answer")
	_ = resp.Body.Close()
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.NotEmpty(t, resp.Header.Get("Retry-After"))
}

// An intake path taken from the environment may be meant to stay unknown (a hard-to-guess
// webhook path): /metrics, which needs no credentials, labels its series intake[N] instead.
func TestIntakePathFromTheEnvironmentStaysOffMetrics(t *testing.T) {
	const secretPath = "/hooks/s3cr3t-9f2b71"
	t.Setenv("HOOK_PATH", secretPath)
	s := runService(t, `listen: {address: "127.0.0.1:0"}
intake:
  - {path: /events, insecure_no_auth: true}
  - {path: "${HOOK_PATH}", verifiers: [{api_key: {header: X-Api-Key, keys: ["k-0123456789"]}}]}
sinks: [{name: consumer, grpc: {targets: ["127.0.0.1:1"], insecure: true}}]
routes: [{name: everything, all: true, sinks: [consumer]}]
`)

	client := &http.Client{Timeout: 10 * time.Second}
	for _, p := range []string{"/events", secretPath} {
		resp, err := client.Post("http://"+s.Addr().String()+p, "application/json", strings.NewReader(`{`))
		require.NoError(t, err)
		_ = resp.Body.Close()
	}
	resp, err := client.Get("http://" + s.Addr().String() + "/metrics")
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	require.NoError(t, err)
	metrics := string(body)
	assert.Contains(t, metrics, `intake="/events"`)
	assert.Contains(t, metrics, `intake="intake[1]"`)
	assert.NotContains(t, metrics, "s3cr3t")
}

// runService starts a service from the configuration text and stops it, waiting for its
// shutdown, when the test ends.
func runService(t *testing.T, text string) *Service {
	t.Helper()
	cfg, err := config.Parse([]byte(text), nil)
	require.NoError(t, err)
	s, err := New(cfg, Options{Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-ran
	})
	return s
}

// An event as large as an intake may take can be dead-lettered to a file queue, which keeps its
// envelope and its data apart: with filedlq's default entry size, an event of a little over
// 4 MiB was refused by the queue and answered 503 for as long as its sender retried. The tools
// read such an entry back.
func TestLargestEventsCanBeDeadLettered(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "dlq")
	s := runService(t, fmt.Sprintf(`listen: {address: "127.0.0.1:0", write_timeout: 30s}
intake: [{path: /events, insecure_no_auth: true, max_body: 16MiB, dispatch_timeout: 1s}]
sinks: [{name: consumer, grpc: {targets: ["127.0.0.1:1"], insecure: true}}]
routes: [{name: everything, all: true, sinks: [consumer]}]
dlq: {file: {dir: %q, fsync: never}}
`, dir))
	// Compact JSON whose detail is nearly the whole body, as large as max_body allows.
	const head = `{"version":"0","id":"big-1","detail-type":"v2.detail.events.conversation.{id}.customer.end","source":"aws.partner/genesys.com/cloud/o/b","account":"1","time":"2024-01-02T03:04:05Z","region":"us-east-1","resources":[],"detail":{"topicName":"v2.detail.events.conversation.c.customer.end","eventBody":{"notes":"`
	const tail = `"}}}`
	body := head + strings.Repeat("n", config.MaxMaxBody-len(head)-len(tail)) + tail
	require.Len(t, body, config.MaxMaxBody)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+s.Addr().String()+"/events", strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	answer, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "dead-lettered is accepted: %s", answer)

	r, closeR, err := OpenDLQ(nil, &config.DLQ{File: &config.FileDLQ{Dir: dir}}, true, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	defer func() { _ = closeR() }()
	var got []string
	require.NoError(t, r.List(ctx, func(e dlq.Entry) error {
		assert.Equal(t, body, string(e.Event.Raw))
		got = append(got, e.Event.ID)
		return nil
	}))
	assert.Equal(t, []string{"big-1"}, got)
}
