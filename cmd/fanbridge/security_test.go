package main_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// twoIntakesConfig has two paths, each with its own key, in front of one gRPC consumer.
const twoIntakesConfig = `
listen:
  address: 127.0.0.1:0
%[2]s
intake:
  - path: /partner
    verifiers:
      - api_key: {header: X-Api-Key, keys: ["partner-key-0123456789"]}
  - path: /crm
    verifiers:
      - api_key: {header: X-Api-Key, keys: ["crm-key-0123456789"]}
sinks:
  - name: consumer
    grpc: {targets: ["%[1]s"], insecure: true, call_timeout: 2s}
routes:
  - name: all
    all: true
    sinks: [consumer]
logging: {level: debug, format: json}
health: {cache: 100ms}
`

// startTwoIntakes starts the service on twoIntakesConfig, with extra under listen, in front of a
// consumer of its own.
func startTwoIntakes(t *testing.T, ctx context.Context, extra string) (*proc, *consumer) {
	t.Helper()
	cons := newConsumer(t)
	cfgPath := filepath.Join(t.TempDir(), "fanbridge.yaml")
	writeFile(t, cfgPath, fmt.Sprintf(twoIntakesConfig, cons.addr, extra))
	return startService(t, ctx, cfgPath), cons
}

// TestKeyForOneIntakeCannotSuppressAnothersEvents: Source and ID are the sender's to write, so a
// sender holding only one path's key must not be able to make another path's events look like
// duplicates by sending their Source and ID first. Within a path, a retry is still a duplicate.
func TestKeyForOneIntakeCannotSuppressAnothersEvents(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, cons := startTwoIntakes(t, ctx, "")

	send := func(path, key, data string) string {
		t.Helper()
		body := `{"specversion":"1.0","source":"crm","id":"1001","type":"t","data":` + data + `}`
		status, answer, err := post(ctx, http.DefaultClient, p.url(path), []byte(body), map[string]string{"X-Api-Key": key})
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, status, "%s: %s", path, answer)
		return answer
	}
	// The partner claims the CRM's source and its next id.
	assert.Contains(t, send("/partner", "partner-key-0123456789", `{"fake":true}`), `"status":"delivered"`)
	// The CRM's real event 1001 arrives on its own path, with its own key.
	assert.Contains(t, send("/crm", "crm-key-0123456789", `{"real":true}`), `"status":"delivered"`,
		"a key valid only on /partner suppressed the /crm event")
	// The CRM's retry, and the partner's, are duplicates on their own paths.
	assert.Contains(t, send("/crm", "crm-key-0123456789", `{"real":true}`), `"status":"duplicate"`)
	assert.Contains(t, send("/partner", "partner-key-0123456789", `{"fake":true}`), `"status":"duplicate"`)

	var data []string
	for _, d := range cons.deliveries() {
		data = append(data, string(d.Event.Data))
	}
	assert.ElementsMatch(t, []string{`{"fake":true}`, `{"real":true}`}, data, "what the consumer got")
}

// TestReadyzNamesSinksNotHosts: /readyz is unauthenticated, so it names a sink that is down but
// not what its probe said (which names the target's host and port); the log has that.
func TestReadyzNamesSinksNotHosts(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, cons := startTwoIntakes(t, ctx, "")

	cons.stop()
	var status int
	var body string
	require.True(t, eventually(ctx, func() bool {
		status, body, _ = get(ctx, p.url("/readyz"))
		return status == http.StatusServiceUnavailable
	}), "still ready with the consumer down: %s", body)
	assert.JSONEq(t, `{"status":"unready","unready":{"consumer":"unavailable"}}`, body)
	_, port, err := net.SplitHostPort(cons.addr)
	require.NoError(t, err)
	assert.NotContains(t, body, port, "the target's port")

	line, _, err := p.stderr.wait(ctx, 0, func(s string) bool { _, ok := logMsg(s, "sink not ready"); return ok })
	require.NoError(t, err, "the probe's error is logged")
	m, _ := logMsg(line, "sink not ready")
	assert.Equal(t, "WARN", m["level"])
	assert.Equal(t, "consumer", m["sink"])
	assert.Contains(t, m["err"], cons.addr, "the log has the details")

	cons.restart(t)
	require.True(t, eventually(ctx, func() bool {
		status, body, _ = get(ctx, p.url("/readyz"))
		return status == http.StatusOK
	}), "not ready after the consumer came back: %s", body)
	_, _, err = p.stderr.wait(ctx, 0, func(s string) bool { _, ok := logMsg(s, "sink ready again"); return ok })
	require.NoError(t, err)
}

// TestAdminAddress: with listen.admin_address, /metrics is served there only, /healthz and /readyz
// on both listeners, and the intake paths on the intake's listener only; both close on shutdown.
func TestAdminAddress(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, _ := startTwoIntakes(t, ctx, "  admin_address: 127.0.0.1:0")
	line, _, err := p.stderr.wait(ctx, 0, func(s string) bool { _, ok := logMsg(s, "listening"); return ok })
	require.NoError(t, err)
	m, _ := logMsg(line, "listening")
	adminAddr, _ := m["admin_addr"].(string)
	require.NotEmpty(t, adminAddr, "the listening line names the admin address: %s", line)
	require.NotEqual(t, p.addr, adminAddr)
	admin := func(path string) string { return "http://" + adminAddr + path }

	status, answer, err := post(ctx, http.DefaultClient, p.url("/crm"),
		[]byte(`{"specversion":"1.0","source":"crm","id":"1","type":"t","data":{}}`), map[string]string{"X-Api-Key": "crm-key-0123456789"})
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, status, answer)

	cases := []struct {
		url    string
		status int
		has    string
	}{
		{p.url("/metrics"), http.StatusNotFound, `{"error":"no such path"}`},
		{p.url("/healthz"), http.StatusOK, `{"status":"ok"}`},
		{p.url("/readyz"), http.StatusOK, `{"status":"ready"}`},
		{admin("/metrics"), http.StatusOK, "fanbridge_eventbridge_requests_total"},
		{admin("/healthz"), http.StatusOK, `{"status":"ok"}`},
		{admin("/readyz"), http.StatusOK, `{"status":"ready"}`},
		{admin("/crm"), http.StatusNotFound, `{"error":"no such path"}`},
	}
	for _, c := range cases {
		status, body, err := get(ctx, c.url)
		require.NoError(t, err, c.url)
		assert.Equal(t, c.status, status, "%s: %s", c.url, body)
		assert.Contains(t, body, c.has, c.url)
	}
	status, answer, err = post(ctx, http.DefaultClient, admin("/crm"),
		[]byte(`{"specversion":"1.0","source":"crm","id":"2","type":"t","data":{}}`), map[string]string{"X-Api-Key": "crm-key-0123456789"})
	require.NoError(t, err)
	assert.Equal(t, http.StatusNotFound, status, "no intake on the admin listener: %s", answer)

	p.signal(t, syscall.SIGTERM)
	code, err := p.exit(ctx)
	require.NoError(t, err)
	assert.Equal(t, 0, code)
	_, _, err = get(ctx, admin("/healthz"))
	require.Error(t, err, "the admin listener is closed after shutdown")
}
