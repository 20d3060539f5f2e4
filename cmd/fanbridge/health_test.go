package main_test

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestHealthReadinessAndMetrics(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	e := newE2E(t)
	p := startService(t, ctx, e.cfgPath, e.env...)

	status, body, err := get(ctx, p.url("/healthz"))
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, status)
	assert.JSONEq(t, `{"status":"ok"}`, body)

	status, body, err = get(ctx, p.url("/readyz"))
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, status, body)
	assert.JSONEq(t, `{"status":"ready"}`, body)

	// The gRPC consumer goes away: readiness fails and names the sink.
	e.cons.stop()
	var last string
	ok := eventually(ctx, func() bool {
		status, last, _ = get(ctx, p.url("/readyz"))
		return status == http.StatusServiceUnavailable
	})
	require.True(t, ok, "still ready with the consumer down: %s", last)
	assert.Contains(t, last, `"status":"unready"`)
	assert.Contains(t, last, `"analytics":`)
	assert.NotContains(t, last, `"kafka-all"`, "only the sink that is down is named")
	// Liveness does not depend on the sinks.
	status, _, err = get(ctx, p.url("/healthz"))
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, status)

	// It comes back: ready again.
	e.cons.restart(t)
	ok = eventually(ctx, func() bool {
		status, last, _ = get(ctx, p.url("/readyz"))
		return status == http.StatusOK
	})
	require.True(t, ok, "not ready after the consumer came back: %s", last)

	// Traffic, then the metrics of every package appear in Prometheus text format.
	body0, err := os.ReadFile(filepath.Join("testdata", "genesys", "v2.detail.events.conversation.customer.end.json"))
	require.NoError(t, err)
	st, answer, err := post(ctx, http.DefaultClient, p.url("/events"), body0, map[string]string{"X-Api-Key": e2eAPIKey})
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, st, answer)
	st, _, err = post(ctx, http.DefaultClient, p.url("/events"), body0, map[string]string{"X-Api-Key": "wrong-key-0123456"})
	require.NoError(t, err)
	require.Equal(t, http.StatusUnauthorized, st)

	status, metrics, err := get(ctx, p.url("/metrics"))
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, status)
	for _, name := range []string{
		"fanbridge_eventbridge_requests_total",
		"fanbridge_eventbridge_dispatched_total",
		"fanbridge_eventbridge_request_duration",
		"fanbridge_signature_verified_total",
		"fanbridge_signature_rejected_total",
		"fanbridge_fanout_route_matched_total",
		"fanbridge_fanout_sink_delivered_total",
		"fanbridge_fanout_sink_delivery_duration",
		"fanbridge_fanout_sink_queue_depth",
		"fanbridge_fanout_sink_breaker_state",
		"fanbridge_ready",
	} {
		assert.Contains(t, metrics, name, "metric %s", name)
	}
	assert.Contains(t, metrics, `sink="analytics"`)
	// The intake's series carry its path.
	for _, m := range []struct {
		name, label string
		want        float64
	}{
		{"fanbridge_eventbridge_requests_total", "", 1},
		{"fanbridge_eventbridge_dispatched_total", `outcome="delivered"`, 1},
		{"fanbridge_signature_verified_total", `scheme="api-key"`, 1},
		{"fanbridge_signature_rejected_total", `reason="mismatch"`, 1},
	} {
		labels := []string{`intake="/events"`}
		if m.label != "" {
			labels = append(labels, m.label)
		}
		v, found := metricValue(t, metrics, m.name, labels...)
		assert.True(t, found, "%s{%s}", m.name, strings.Join(labels, ","))
		assert.Equal(t, m.want, v, "%s{%s}", m.name, strings.Join(labels, ","))
	}
	assert.NotContains(t, metrics, e2eAPIKey)

	// Shutting down: the process exits 0 and stops listening.
	p.signal(t, syscall.SIGTERM)
	_, _, err = p.stderr.wait(ctx, 0, func(s string) bool { _, ok := logMsg(s, "shutting down"); return ok })
	require.NoError(t, err)
	code, err := p.exit(ctx)
	require.NoError(t, err)
	assert.Equal(t, 0, code)
	_, _, err = get(ctx, p.url("/readyz"))
	require.Error(t, err, "the listener is closed after shutdown")
}

func TestMethodsAndUnknownPaths(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e := newE2E(t)
	p := startService(t, ctx, e.cfgPath, e.env...)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url("/events"), nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	answer, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	require.NoError(t, err)
	assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode, string(answer))
	assert.Equal(t, http.MethodPost, resp.Header.Get("Allow"))
	assert.JSONEq(t, `{"error":"method not allowed"}`, string(answer))
	status, body, err := get(ctx, p.url("/nowhere"))
	require.NoError(t, err)
	assert.Equal(t, http.StatusNotFound, status)
	assert.JSONEq(t, `{"error":"no such path"}`, body)
	status, body, err = post(ctx, http.DefaultClient, p.url("/events"), []byte(`{}`), map[string]string{"X-Api-Key": "wrong-key-0123456"})
	require.NoError(t, err)
	assert.Equal(t, http.StatusUnauthorized, status)
	assert.JSONEq(t, `{"error":"unauthorized"}`, body)
	status, body, err = post(ctx, http.DefaultClient, p.url("/events"), []byte(`{}`), map[string]string{"X-Api-Key": e2eAPIKey, "Content-Type": "text/plain"})
	require.NoError(t, err)
	assert.Equal(t, http.StatusUnsupportedMediaType, status, body)
	status, body, err = post(ctx, http.DefaultClient, p.url("/events"), []byte(strings.Repeat(" ", 300<<10)), map[string]string{"X-Api-Key": e2eAPIKey})
	require.NoError(t, err)
	assert.Equal(t, http.StatusRequestEntityTooLarge, status, body)
}

// The service's own paths take GET and HEAD only: another method is answered 405 with the
// methods they take, on the intake's listener and on the admin listener, where it was answered
// 404 as if the path were not there.
func TestOpsPathsRefuseOtherMethods(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, _ := startTwoIntakes(t, ctx, "  admin_address: 127.0.0.1:0")
	line, _, err := p.stderr.wait(ctx, 0, func(s string) bool { _, ok := logMsg(s, "listening"); return ok })
	require.NoError(t, err)
	m, _ := logMsg(line, "listening")
	adminAddr, _ := m["admin_addr"].(string)
	require.NotEmpty(t, adminAddr, line)

	do := func(method, url string) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(`{}`))
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		b, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		require.NoError(t, err)
		return resp, string(b)
	}
	urls := []string{p.url("/healthz"), p.url("/readyz"), "http://" + adminAddr + "/healthz", "http://" + adminAddr + "/readyz", "http://" + adminAddr + "/metrics"}
	for _, url := range urls {
		for _, method := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch, http.MethodOptions} {
			resp, body := do(method, url)
			assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode, "%s %s: %s", method, url, body)
			assert.Equal(t, "GET, HEAD", resp.Header.Get("Allow"), "%s %s", method, url)
			assert.JSONEq(t, `{"error":"method not allowed"}`, body, "%s %s", method, url)
		}
		// A probe may ask with HEAD: the GET answer without its body.
		resp, body := do(http.MethodHead, url)
		assert.Equal(t, http.StatusOK, resp.StatusCode, "HEAD %s", url)
		assert.Empty(t, body, "HEAD %s", url)
		resp, _ = do(http.MethodGet, url)
		assert.Equal(t, http.StatusOK, resp.StatusCode, "GET %s", url)
	}
	// The intake's listener has no /metrics when an admin listener serves it: any method finds
	// no such path there.
	resp, body := do(http.MethodPost, p.url("/metrics"))
	assert.Equal(t, http.StatusNotFound, resp.StatusCode, body)
	assert.JSONEq(t, `{"error":"no such path"}`, body)
}
