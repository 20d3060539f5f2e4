package service

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/cmd/fanbridge/internal/config"
	"github.com/fanbridge/fanbridge/filter"
	"github.com/fanbridge/fanbridge/sink"
	"github.com/fanbridge/fanbridge/sink/grpcsink"
)

// The cel limits of the file reach the routes a service builds, at start and on every reload:
// a reload that lowers the cost limit under what a route's expression needs makes the route stop
// matching, and one that goes back to the defaults makes it match again. A file with a bad limit,
// or with a time limit that the running write timeout leaves no time to answer after (the file
// raises write_timeout too, which only a restart changes), is refused and the running limits stay.
func TestReloadAppliesCELLimits(t *testing.T) {
	consumer, err := grpcsink.NewServer(sink.Func(func(context.Context, *fanbridge.Event) error { return nil }))
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	gs := grpc.NewServer()
	consumer.Register(gs)
	go func() { _ = gs.Serve(ln) }()
	t.Cleanup(gs.Stop)

	text := func(extra string) []byte {
		return fmt.Appendf(nil, `intake: [{path: /events, insecure_no_auth: true}]
sinks: [{name: consumer, grpc: {targets: [%q], insecure: true}}]
routes: [{name: last-id, cel: "data.ids.exists(i, i == 299)", sinks: [consumer]}]
%s`, ln.Addr().String(), extra)
	}
	ids := make([]int, 300)
	for i := range ids {
		ids[i] = i
	}
	body, err := json.Marshal(map[string]any{
		"version": "0", "id": "", "detail-type": "v2.test", "source": "aws.partner/genesys.com/cloud/test",
		"account": "123456789012", "time": "2024-01-01T00:00:00Z", "region": "us-east-1", "resources": []string{},
		"detail": map[string]any{"topicName": "v2.test", "eventBody": map[string]any{"ids": ids}},
	})
	require.NoError(t, err)

	logs := &lockedBuffer{}
	s, path := newServiceLoggingTo(t, text(""), slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	n := 0
	// post sends the event under a new id (deduplication would answer "duplicate") and returns
	// the status of the answer.
	post := func() string {
		t.Helper()
		n++
		b := bytes.Replace(body, []byte(`"id":""`), fmt.Appendf(nil, `"id":"e%d"`, n), 1)
		req := httptest.NewRequest(http.MethodPost, "/events", bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		s.routes(true).ServeHTTP(rec, req)
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		var answer struct{ Status string }
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &answer), rec.Body.String())
		return answer.Status
	}
	reload := func(extra string) error {
		t.Helper()
		require.NoError(t, os.WriteFile(path, text(extra), 0o600))
		return s.ReloadFile()
	}

	require.Equal(t, "delivered", post(), "the default limits let the route match")

	require.NoError(t, reload("cel: {cost_limit: 100}\n"))
	assert.Equal(t, "ignored", post(), "past the reloaded cost limit, the route does not match")
	// The operator who lowered the limit can see why at debug level: the filter's own record,
	// with the route's name, the event's id and the reason, never a value of the body.
	assert.Contains(t, logs.String(), "component=filter route=last-id")
	assert.Contains(t, logs.String(), "event_id=e2")
	assert.Contains(t, logs.String(), "cost limit")

	err = reload("cel: {cost_limit: -1}\n")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "config: cel.cost_limit: want 1 to")
	assert.Equal(t, "ignored", post(), "the running limit stays")

	err = reload("cel: {time_limit: 1m}\nlisten: {write_timeout: 2m}\n")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "config: cel.time_limit: plus the running listen.read_timeout (10s) and dispatch.dlq_timeout (2s) must be shorter than the running listen.write_timeout (30s)")
	assert.Equal(t, "ignored", post(), "the running limit stays")

	require.NoError(t, reload(""))
	assert.Equal(t, "delivered", post(), "back to the defaults, the route matches again")
}

// A CEL route's evaluation errors are logged naming the route, never with its expression: the
// text may hold a value ${ENV} expansion put there, which the configuration never shows.
func TestCELDebugLogNamesTheRoute(t *testing.T) {
	const secret = "tk_live_5f2a9c0d7e"
	text := []byte(`intake: [{path: /events, insecure_no_auth: true}]
sinks: [{name: k, kafka: {brokers: ["127.0.0.1:1"], topic: t}}]
routes:
  - {name: tenant, cel: "event.metadata.tenant == '${TENANT_KEY}' && data.x > 1", sinks: [k]}
  - {name: chats, cel: "data.mediaType == 'CHAT'", sinks: [k]}
  - {name: rest, all: true, sinks: [k]}
`)
	cfg, err := config.Parse(text, func(k string) (string, bool) {
		if k == "TENANT_KEY" {
			return secret, true
		}
		return "", false
	})
	require.NoError(t, err)
	logs := &lockedBuffer{}
	routes, err := buildRoutes(cfg, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	require.NoError(t, err)
	require.Len(t, routes, 3)
	e := &fanbridge.Event{ID: "e1", Type: "t", Data: []byte(`{}`)} // no data.x, no data.mediaType
	for _, r := range routes[:2] {
		ok, err := r.Filter.(*filter.Expression).Eval(e)
		require.Error(t, err)
		require.False(t, ok)
	}
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	require.Len(t, lines, 2, logs.String())
	assert.Contains(t, lines[0], `msg="CEL expression did not evaluate" component=filter route=tenant event_id=e1 reason="a field or key is missing"`)
	assert.Contains(t, lines[1], `msg="CEL expression did not evaluate" component=filter route=chats event_id=e1 reason="a field or key is missing"`)
	assert.NotContains(t, logs.String(), secret)
	assert.NotContains(t, logs.String(), "expr=", "no route's expression is logged")
	assert.NotContains(t, logs.String(), "CHAT")
}
