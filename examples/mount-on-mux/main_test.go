package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/eventbridge"
	"github.com/fanbridge/fanbridge/examples/internal/demo"
	"github.com/fanbridge/fanbridge/examples/internal/exampletest"
	"github.com/fanbridge/fanbridge/retry"
	"github.com/fanbridge/fanbridge/signature"
)

const agent = "e40f28ea-fa86-493f-a5b8-d559c8533c96"

func TestOffline(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out bytes.Buffer
	// The demo checks every status it gets; run fails on the first surprise.
	require.NoError(t, run(ctx, nil, exampletest.Env(nil), &out))
	text := out.String()
	assert.Contains(t, text, "  -> 401 {\"error\":\"unauthorized\"}\n")
	assert.Contains(t, text, "  -> 405 Method Not Allowed (Allow: POST)\n")
	assert.Contains(t, text, `  -> 200 {"presence":"ON_QUEUE","routingStatus":"OFF_QUEUE","updated":"2026-03-02T09:03:17.047Z"}`)
	assert.Equal(t, 8, strings.Count(text, "  access: "), "every route goes through the service's chain")
}

func TestServeAfterDemo(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s := exampletest.Start(t, ctx, run, []string{"-serve"}, nil)
	s.WaitFor(t, "serving until Ctrl-C")

	resp, body := exampletest.Do(t, ctx, http.MethodGet, s.URL+"/api/agents/"+agent, nil, http.Header{"X-Request-Id": {"probe-1"}})
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "probe-1", resp.Header.Get("X-Request-Id"), "the caller's request id comes back")
	assert.Contains(t, body, `"presence":"ON_QUEUE"`)
	s.Stop(t)
}

func TestBehindASender(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s := exampletest.Start(t, ctx, run, nil, map[string]string{
		"EVENTBRIDGE_API_KEY": "test-key",
		"LISTEN_ADDR":         "127.0.0.1:0",
		"DLQ_DIR":             t.TempDir(),
	})
	presence, err := samples.ReadFile("samples/user-presence-on-queue.json")
	require.NoError(t, err)
	events := s.URL + "/events/genesys"

	cases := []struct {
		name, method, url string
		body              []byte
		header            http.Header
		status            int
		contains          string
	}{
		{"health", http.MethodGet, s.URL + "/healthz", nil, nil, http.StatusOK, "ok"},
		{"agent not known yet", http.MethodGet, s.URL + "/api/agents/" + agent, nil, nil, http.StatusNotFound, "unknown agent"},
		{"no credentials", http.MethodPost, events, presence, nil, http.StatusUnauthorized, "unauthorized"},
		{"the demo key", http.MethodPost, events, presence, http.Header{demo.APIKeyHeader: {demo.APIKey}}, http.StatusUnauthorized, "unauthorized"},
		{"a made-up signature", http.MethodPost, events, presence, http.Header{demo.HMACScheme.Header: {"00"}}, http.StatusUnauthorized, "unauthorized"},
		{"PUT on the events route", http.MethodPut, events, presence, http.Header{demo.APIKeyHeader: {"test-key"}}, http.StatusMethodNotAllowed, ""},
		{"POST on the API", http.MethodPost, s.URL + "/api/agents/" + agent, nil, nil, http.StatusMethodNotAllowed, ""},
		{"event", http.MethodPost, events, presence, http.Header{demo.APIKeyHeader: {"test-key"}}, http.StatusOK, `"status":"delivered"`},
		{"again", http.MethodPost, events, presence, http.Header{demo.APIKeyHeader: {"test-key"}}, http.StatusOK, `"status":"duplicate"`},
		{"agent known", http.MethodGet, s.URL + "/api/agents/" + agent, nil, nil, http.StatusOK, `"presence":"ON_QUEUE"`},
		{"unknown route", http.MethodGet, s.URL + "/api/queues", nil, nil, http.StatusNotFound, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, body := exampletest.Do(t, ctx, c.method, c.url, c.body, c.header)
			assert.Equal(t, c.status, resp.StatusCode, body)
			assert.Contains(t, body, c.contains)
			assert.NotEmpty(t, resp.Header.Get("X-Request-Id"), "the chain wraps every route")
		})
	}
	s.Stop(t)
}

func TestChainOrder(t *testing.T) {
	var order []string
	mark := func(name string) func(http.Handler) http.Handler {
		return func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				order = append(order, name)
				next.ServeHTTP(w, r)
			})
		}
	}
	h := chain(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { order = append(order, "handler") }),
		mark("outer"), mark("inner"))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
	assert.Equal(t, []string{"outer", "inner", "handler"}, order)
}

// A body too slow for the server's ReadTimeout is answered 503 with Retry-After through the
// service's chain as it is by the bare intake: the access log's writer lets the intake reach the
// server's (http.ResponseController) to give that answer a write deadline of its own, which it
// needs when the server's WriteTimeout has passed together with the read one.
func TestSlowBodyAnsweredThroughTheChain(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	intake, err := eventbridge.NewHandler(eventbridge.DispatcherFunc(func(context.Context, *fanbridge.Event) error { return nil }))
	require.NoError(t, err)
	verifier, err := demo.Verifier("", "test-secret")
	require.NoError(t, err)
	for name, h := range map[string]http.Handler{
		"intake":                   intake,
		"signature.Verify":         signature.Verify(verifier)(intake),
		"access log around intake": chain(intake, accessLog(io.Discard)),
		"the service's chain":      chain(signature.Verify(verifier)(intake), recoverPanics(io.Discard), requestID, accessLog(io.Discard)),
	} {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewUnstartedServer(h)
			// The worst case: the write deadline passes together with the read one.
			srv.Config.ReadTimeout = 200 * time.Millisecond
			srv.Config.WriteTimeout = 200 * time.Millisecond
			srv.Start()
			defer srv.Close()
			conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", srv.Listener.Addr().String())
			require.NoError(t, err)
			defer conn.Close()
			deadline, _ := ctx.Deadline()
			require.NoError(t, conn.SetDeadline(deadline))
			// A well-formed signature: the headers alone do not refuse it, and the body is read.
			_, err = io.WriteString(conn, "POST /events/genesys HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n"+
				demo.HMACScheme.Header+": "+strings.Repeat("0", 64)+"\r\n\r\n{\"id\":")
			require.NoError(t, err)
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			require.NoError(t, err, "the sender hears an answer")
			defer resp.Body.Close()
			assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
			assert.Equal(t, "1", resp.Header.Get("Retry-After"))
		})
	}
}

func TestRecoverPanics(t *testing.T) {
	var out bytes.Buffer
	h := recoverPanics(&out)(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") }))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/x", nil))
	assert.Equal(t, http.StatusInternalServerError, rec.Code)
	assert.Contains(t, out.String(), "panic serving /api/x: boom")
}

func TestBoard(t *testing.T) {
	ctx := context.Background()
	at := func(s string) time.Time {
		tm, err := time.Parse(time.RFC3339, s)
		require.NoError(t, err)
		return tm
	}
	presence := func(state string, when time.Time) *fanbridge.Event {
		return &fanbridge.Event{ID: state, Topic: "v2.users." + agent + ".presence", Time: when,
			Data: json.RawMessage(`{"presenceDefinition":{"systemPresence":"` + state + `"}}`)}
	}
	b := newBoard()
	require.NoError(t, b.Send(ctx, presence("ON_QUEUE", at("2026-03-02T10:00:00Z"))))
	require.NoError(t, b.Send(ctx, presence("AWAY", at("2026-03-02T09:00:00Z"))), "an older event is accepted")
	assert.Equal(t, "ON_QUEUE", b.agents[agent].Presence, "and changes nothing")
	require.NoError(t, b.Send(ctx, presence("BREAK", at("2026-03-02T11:00:00Z"))))
	assert.Equal(t, "BREAK", b.agents[agent].Presence)

	// A notification without an envelope time is placed by its body's timestamps: an old one
	// does not overwrite newer state, and one without any time never overwrites timed state.
	activity := func(presence, startTime string) *fanbridge.Event {
		return &fanbridge.Event{ID: "a" + presence, Topic: "v2.users." + agent + ".activity",
			Data: json.RawMessage(`{"routingStatus":{"status":"OFF_QUEUE","startTime":"` + startTime + `"},` +
				`"presence":{"presenceDefinition":{"systemPresence":"` + presence + `"},"modifiedDate":"` + startTime + `"}}`)}
	}
	require.NoError(t, b.Send(ctx, activity("AVAILABLE", "2021-05-14T09:03:17.067Z")))
	assert.Equal(t, "BREAK", b.agents[agent].Presence)
	require.NoError(t, b.Send(ctx, &fanbridge.Event{ID: "untimed", Topic: "v2.users." + agent + ".presence",
		Data: json.RawMessage(`{"presenceDefinition":{"systemPresence":"MEAL"}}`)}))
	assert.Equal(t, "BREAK", b.agents[agent].Presence)
	require.NoError(t, b.Send(ctx, activity("AVAILABLE", "2026-03-02T12:00:00Z")))
	assert.Equal(t, "AVAILABLE", b.agents[agent].Presence)
	assert.Equal(t, "OFF_QUEUE", b.agents[agent].RoutingStatus)
	assert.Equal(t, at("2026-03-02T12:00:00Z"), b.agents[agent].Updated)

	// Each field is placed by its own time, so the order of arrival does not matter: an event
	// newer for one field and older for the other changes only the first.
	for _, order := range [][]int{{0, 1}, {1, 0}} {
		events := []*fanbridge.Event{
			{ID: "p", Topic: "v2.users.u2.presence", Data: json.RawMessage(`{"presenceDefinition":{"systemPresence":"ON_QUEUE"},"modifiedDate":"2026-03-02T12:00:05Z"}`)},
			{ID: "a", Topic: "v2.users.u2.activity", Data: json.RawMessage(`{"routingStatus":{"status":"INTERACTING","startTime":"2026-03-02T12:00:03Z"},` +
				`"presence":{"presenceDefinition":{"systemPresence":"AVAILABLE"},"modifiedDate":"2026-03-02T12:00:01Z"}}`)},
		}
		b := newBoard()
		for _, i := range order {
			require.NoError(t, b.Send(ctx, events[i]))
		}
		s := b.agents["u2"]
		assert.Equal(t, "ON_QUEUE", s.Presence, "order %v", order)
		assert.Equal(t, "INTERACTING", s.RoutingStatus, "order %v", order)
		assert.Equal(t, at("2026-03-02T12:00:05Z"), s.Updated, "order %v", order)
	}

	err := b.Send(ctx, &fanbridge.Event{ID: "x", Topic: "v2.users." + agent + ".presence", Data: json.RawMessage(`[1]`)})
	assert.True(t, retry.IsPermanent(err), "a body of the wrong shape is refused for good: %v", err)
	err = b.Send(ctx, &fanbridge.Event{ID: "y", Topic: "v2.routing.queues.q.members", Data: json.RawMessage(`{}`)})
	assert.True(t, retry.IsPermanent(err), "%v", err)
}

// The offline demo, which runs when no credentials are set, listens only on loopback and keeps
// no dead letters: given an address or a dead-letter directory it refuses to start, naming the
// setting, and touches neither.
func TestOfflineRefusesAServicesSettings(t *testing.T) {
	exampletest.CheckOfflineRefuses(t, run, "EVENTBRIDGE_API_KEY or GENESYS_WEBHOOK_SECRET")
}
