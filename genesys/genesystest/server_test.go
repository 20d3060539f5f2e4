package genesystest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge/genesys/genesystest"
)

// rawClient talks to the fake with plain net/http, so that the fake's own behaviour is checked
// without the genesys client in between.
type rawClient struct {
	t     *testing.T
	srv   *genesystest.Server
	token string
}

func (c *rawClient) do(method, path string, body any) (*http.Response, map[string]any) {
	c.t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(c.t, err)
		r = strings.NewReader(string(b))
	}
	req, err := http.NewRequest(method, c.srv.URL+path, r)
	require.NoError(c.t, err)
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(c.t, err)
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp, out
}

func tokenRequest(t *testing.T, srv *genesystest.Server, id, secret string) (*http.Response, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, srv.TokenURL(), strings.NewReader(url.Values{"grant_type": {"client_credentials"}}.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(id, secret)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var out map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	return resp, out
}

func TestFakeBehavesAsDocumented(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	srv := genesystest.NewServer(genesystest.WithClock(clock), genesystest.WithTokenLifetime(10*time.Minute))
	t.Cleanup(srv.Close)

	resp, body := tokenRequest(t, srv, genesystest.DefaultClientID, "wrong")
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.Equal(t, "invalid_client", body["error"])
	assert.NotEmpty(t, body["error_description"])
	assert.NotEmpty(t, body["description"])

	resp, body = tokenRequest(t, srv, genesystest.DefaultClientID, genesystest.DefaultClientSecret)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.EqualValues(t, 600, body["expires_in"])
	c := &rawClient{t: t, srv: srv, token: body["access_token"].(string)}

	resp, body = c.do(http.MethodGet, "/api/v2/organizations/me", nil)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, genesystest.DefaultOrganizationID, body["id"])

	resp, body = c.do(http.MethodPost, "/api/v2/notifications/channels", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	chID := body["id"].(string)
	assert.True(t, strings.HasPrefix(body["connectUri"].(string), "ws://"))
	assert.Equal(t, "2026-01-02T00:00:00.000Z", body["expires"])

	many := make([]map[string]string, 1001)
	for i := range many {
		many[i] = map[string]string{"id": fmt.Sprintf("v2.users.00000000-0000-4000-8000-%012d.presence", i)}
	}
	resp, body = c.do(http.MethodPut, "/api/v2/notifications/channels/"+chID+"/subscriptions", many)
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode, "over 1,000 topics is a 400")
	assert.NotEmpty(t, resp.Header.Get("ININ-Correlation-Id"))
	assert.Equal(t, "bad.request", body["code"])
	assert.EqualValues(t, 400, body["status"])

	resp, _ = c.do(http.MethodPut, "/api/v2/notifications/channels/"+chID+"/subscriptions", many[:1000])
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	resp, _ = c.do(http.MethodPut, "/api/v2/notifications/channels/"+chID+"/subscriptions", []map[string]string{{"id": "v2.users.{id}.presence"}})
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode, "templates are not WebSocket topics")

	resp, body = c.do(http.MethodPut, "/api/v2/integrations/none/config/current", map[string]any{"version": 1})
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
	assert.Equal(t, "not.found", body["code"])

	// The config PUT body is the whole config Genesys documents: without the advanced or the
	// credentials object it is malformed, and nothing is stored.
	id := srv.SeedEventBridgeIntegration("fanbridge-events", "123456789012", "eu-west-1", "suffix", []string{"v2.users.{id}.presence"})
	props := map[string]any{"awsAccountId": "123456789012", "awsAccountRegion": "eu-west-1", "eventSourceSuffix": "suffix",
		"eventFilter": []string{"v2.users.{id}.presence"}}
	for _, missing := range []string{"advanced", "credentials"} {
		put := map[string]any{"name": "fanbridge-events", "version": srv.ConfigVersion(id), "properties": props,
			"advanced": map[string]any{}, "credentials": map[string]any{}}
		delete(put, missing)
		resp, body = c.do(http.MethodPut, "/api/v2/integrations/"+id+"/config/current", put)
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode, "a PUT without %s", missing)
		assert.Equal(t, "bad.request", body["code"])
		put[missing] = nil
		resp, _ = c.do(http.MethodPut, "/api/v2/integrations/"+id+"/config/current", put)
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode, "a PUT with %s null", missing)
	}
	assert.Equal(t, 2, srv.ConfigVersion(id), "nothing stored")
	resp, _ = c.do(http.MethodPut, "/api/v2/integrations/"+id+"/config/current", map[string]any{"name": "fanbridge-events",
		"version": 2, "properties": props, "advanced": map[string]any{}, "credentials": map[string]any{}})
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, 3, srv.ConfigVersion(id))

	// An administrator's edit keeps the rest of the config and bumps the version.
	require.True(t, srv.EditIntegrationConfig(id, map[string]any{"extra": "x", "eventSourceSuffix": nil},
		map[string]any{"retries": 2}, map[string]any{"basicAuth": map[string]any{"id": "c1", "type": "userDefined"}}))
	resp, body = c.do(http.MethodGet, "/api/v2/integrations/"+id+"/config/current", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.EqualValues(t, 4, body["version"])
	assert.Equal(t, map[string]any{"awsAccountId": "123456789012", "awsAccountRegion": "eu-west-1", "extra": "x",
		"eventFilter": []any{"v2.users.{id}.presence"}}, body["properties"])
	assert.Equal(t, map[string]any{"retries": 2.0}, body["advanced"])
	assert.Equal(t, map[string]any{"basicAuth": map[string]any{"id": "c1", "type": "userDefined"}}, body["credentials"])
	assert.False(t, srv.EditIntegrationConfig("none", nil, nil, nil))

	now = now.Add(11 * time.Minute)
	resp, body = c.do(http.MethodGet, "/api/v2/organizations/me", nil)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "an expired token is refused")
	assert.Equal(t, "bad.credentials", body["code"])
}

// An injected fault answers as the real server would: every 429 carries Retry-After, and the token
// endpoint answers in the OAuth error shape of the login server, not the API's.
func TestFakeFaults(t *testing.T) {
	apiShape := func(code, message string) map[string]any {
		return map[string]any{"code": code, "message": message}
	}
	tokenShape := func(code, description string) map[string]any {
		return map[string]any{"error": code, "error_description": description, "description": description}
	}
	tests := []struct {
		name           string
		fault          genesystest.Fault
		token          bool // request the token endpoint instead of the API
		wantRetryAfter string
		wantBody       map[string]any
	}{
		{"API 429 without Retry-After", genesystest.Fault{Status: http.StatusTooManyRequests}, false,
			"1", apiShape("too.many.requests.retry.after", "Too Many Requests")},
		{"API 429 with Retry-After", genesystest.Fault{Status: http.StatusTooManyRequests, RetryAfter: "7"}, false,
			"7", apiShape("too.many.requests.retry.after", "Too Many Requests")},
		{"API 503", genesystest.Fault{Status: http.StatusServiceUnavailable}, false,
			"", apiShape("internal.server.error", "Service Unavailable")},
		{"API 400", genesystest.Fault{Status: http.StatusBadRequest}, false,
			"", apiShape("bad.request", "Bad Request")},
		{"API 401", genesystest.Fault{Status: http.StatusUnauthorized}, false,
			"", apiShape("bad.credentials", "Unauthorized")},
		{"API 403", genesystest.Fault{Status: http.StatusForbidden}, false,
			"", apiShape("missing.permissions", "Forbidden")},
		{"API 404", genesystest.Fault{Status: http.StatusNotFound}, false,
			"", apiShape("not.found", "Not Found")},
		{"API 409", genesystest.Fault{Status: http.StatusConflict}, false,
			"", apiShape("conflict", "Conflict")},
		{"API 422", genesystest.Fault{Status: http.StatusUnprocessableEntity}, false,
			"", apiShape("bad.request", "Unprocessable Entity")},
		{"API 404 with code and message", genesystest.Fault{Status: http.StatusNotFound, Code: "integration.not.found", Message: "gone"}, false,
			"", apiShape("integration.not.found", "gone")},
		{"token 429 without Retry-After", genesystest.Fault{Status: http.StatusTooManyRequests}, true,
			"1", tokenShape("temporarily_unavailable", "Too Many Requests")},
		{"token 502", genesystest.Fault{Status: http.StatusBadGateway}, true,
			"", tokenShape("server_error", "Bad Gateway")},
		{"token 401", genesystest.Fault{Status: http.StatusUnauthorized}, true,
			"", tokenShape("invalid_client", "Unauthorized")},
		{"token 400 with code and message", genesystest.Fault{Status: http.StatusBadRequest, Code: "invalid_grant", Message: "grant refused"}, true,
			"", tokenShape("invalid_grant", "grant refused")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := genesystest.NewServer()
			t.Cleanup(srv.Close)
			var resp *http.Response
			var body map[string]any
			if tt.token {
				tt.fault.Path = "/oauth/token"
				srv.Fail(tt.fault)
				resp, body = tokenRequest(t, srv, genesystest.DefaultClientID, genesystest.DefaultClientSecret)
			} else {
				tt.fault.Path = "/api/v2/organizations/me"
				srv.Fail(tt.fault)
				resp, body = (&rawClient{t: t, srv: srv}).do(http.MethodGet, "/api/v2/organizations/me", nil)
			}
			assert.Equal(t, tt.fault.Status, resp.StatusCode)
			assert.Equal(t, tt.wantRetryAfter, resp.Header.Get("Retry-After"))
			assert.NotEmpty(t, resp.Header.Get("ININ-Correlation-Id"))
			for k, v := range tt.wantBody {
				assert.Equal(t, v, body[k], "body field %q", k)
			}
			if tt.token {
				assert.NotContains(t, body, "code", "the login server does not answer in the API's shape")
				assert.NotContains(t, body, "message")
			}
			assert.Zero(t, srv.PendingFaults())
		})
	}
}

// The reported state a test sets is what the integration's reads and the listing report, until
// the integration is next enabled or disabled.
func TestFakeSetReportedState(t *testing.T) {
	srv := genesystest.NewServer()
	t.Cleanup(srv.Close)
	_, tok := tokenRequest(t, srv, genesystest.DefaultClientID, genesystest.DefaultClientSecret)
	c := &rawClient{t: t, srv: srv, token: tok["access_token"].(string)}
	id := srv.SeedEventBridgeIntegration("events", "123456789012", "eu-west-1", "prod", []string{"v2.users.{id}.presence"})
	reported := func() (from, listed map[string]any) {
		t.Helper()
		resp, body := c.do(http.MethodGet, "/api/v2/integrations/"+id, nil)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		from = body["reportedState"].(map[string]any)
		resp, body = c.do(http.MethodGet, "/api/v2/integrations?integrationType=amazon-eventbridge-source", nil)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		entities := body["entities"].([]any)
		require.Len(t, entities, 1)
		return from, entities[0].(map[string]any)["reportedState"].(map[string]any)
	}

	require.True(t, srv.SetReportedState(id, "ACTIVATING", ""))
	got, listed := reported()
	assert.Equal(t, "ACTIVATING", got["code"])
	assert.Equal(t, got, listed)
	assert.NotContains(t, got, "detail")

	require.True(t, srv.SetReportedState(id, "ERROR", "awsAccountId not found"))
	got, listed = reported()
	assert.Equal(t, "ERROR", got["code"])
	assert.Equal(t, map[string]any{"message": "awsAccountId not found"}, got["detail"])
	assert.Equal(t, got, listed)

	resp, body := c.do(http.MethodPatch, "/api/v2/integrations/"+id, map[string]string{"intendedState": "ENABLED"})
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "ACTIVE", body["reportedState"].(map[string]any)["code"], "enabled again, it reports the outcome")

	assert.False(t, srv.SetReportedState("no-such-integration", "ACTIVE", ""))
	assert.Panics(t, func() { srv.SetReportedState(id, "RUNNING", "") })
}

func TestFakeWebSocket(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	srv := genesystest.NewServer(genesystest.WithHeartbeatInterval(20 * time.Millisecond))
	t.Cleanup(srv.Close)
	_, body := tokenRequest(t, srv, genesystest.DefaultClientID, genesystest.DefaultClientSecret)
	c := &rawClient{t: t, srv: srv, token: body["access_token"].(string)}
	_, ch := c.do(http.MethodPost, "/api/v2/notifications/channels", nil)
	const topic = "v2.users.e40f28ea-fa86-493f-a5b8-d559c8533c96.presence"
	resp, _ := c.do(http.MethodPut, "/api/v2/notifications/channels/"+ch["id"].(string)+"/subscriptions", []map[string]string{{"id": topic}})
	require.Equal(t, http.StatusOK, resp.StatusCode)

	conn, _, err := websocket.Dial(ctx, ch["connectUri"].(string), nil)
	require.NoError(t, err)
	defer conn.CloseNow()
	require.NoError(t, srv.WaitSubscribed(ctx, topic, 1))

	read := func() map[string]any {
		_, data, err := conn.Read(ctx)
		require.NoError(t, err)
		var m map[string]any
		require.NoError(t, json.Unmarshal(data, &m))
		return m
	}
	hb := read()
	assert.Equal(t, "channel.metadata", hb["topicName"])
	assert.Equal(t, map[string]any{"message": "WebSocket Heartbeat"}, hb["eventBody"])

	seq, n := srv.Publish(topic, map[string]any{"seq": 1})
	assert.Equal(t, int64(1), seq)
	assert.Equal(t, 1, n)
	for {
		m := read()
		if m["topicName"] == topic {
			assert.Equal(t, map[string]any{"seq": float64(1)}, m["eventBody"])
			break
		}
	}
	require.NoError(t, conn.Write(ctx, websocket.MessageText, []byte(`{"message":"ping"}`)))
	for {
		m := read()
		if m["eventBody"].(map[string]any)["message"] == "pong" {
			break
		}
	}
	assert.Equal(t, 1, srv.SendSocketClosing())
	for {
		if m := read(); m["topicName"] == "v2.system.socket_closing" {
			break
		}
	}
	assert.Equal(t, 1, srv.Disconnect())
	_, _, err = conn.Read(ctx)
	assert.Error(t, err)
	require.NoError(t, srv.WaitConnected(ctx, 0))
	_, n = srv.Publish(topic, map[string]any{"seq": 2})
	assert.Equal(t, 0, n, "nobody is connected")
}

// Genesys closes a socket about a minute after its v2.system.socket_closing notice; the fake does
// so after WithSocketClosingDelay, with a close handshake, and keeps the channel.
func TestFakeClosesSocketsAfterSocketClosing(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	srv := genesystest.NewServer(genesystest.WithHeartbeatInterval(0), genesystest.WithSocketClosingDelay(50*time.Millisecond))
	t.Cleanup(srv.Close)
	_, body := tokenRequest(t, srv, genesystest.DefaultClientID, genesystest.DefaultClientSecret)
	c := &rawClient{t: t, srv: srv, token: body["access_token"].(string)}
	_, ch := c.do(http.MethodPost, "/api/v2/notifications/channels", nil)
	conn, _, err := websocket.Dial(ctx, ch["connectUri"].(string), nil)
	require.NoError(t, err)
	defer conn.CloseNow()
	require.NoError(t, srv.WaitConnected(ctx, 1))

	require.Equal(t, 1, srv.SendSocketClosing())
	_, data, err := conn.Read(ctx)
	require.NoError(t, err)
	assert.Contains(t, string(data), "v2.system.socket_closing")
	_, _, err = conn.Read(ctx)
	assert.Equal(t, websocket.StatusGoingAway, websocket.CloseStatus(err), "read: %v", err)
	require.NoError(t, srv.WaitConnected(ctx, 0))
	require.Len(t, srv.Channels(), 1)
	assert.Equal(t, ch["id"], srv.Channels()[0].ID)
}

// Genesys keeps 20 channels per OAuth client and the 21st evicts the oldest by creation, connected
// or not: an unconnected newer channel does not go first.
func TestFakeEvictsTheOldestChannel(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	srv := genesystest.NewServer(genesystest.WithHeartbeatInterval(0))
	t.Cleanup(srv.Close)
	_, body := tokenRequest(t, srv, genesystest.DefaultClientID, genesystest.DefaultClientSecret)
	c := &rawClient{t: t, srv: srv, token: body["access_token"].(string)}
	create := func() map[string]any {
		resp, ch := c.do(http.MethodPost, "/api/v2/notifications/channels", nil)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		return ch
	}
	const topic = "v2.users.e40f28ea-fa86-493f-a5b8-d559c8533c96.presence"
	var ids []string
	for range 20 {
		ids = append(ids, create()["id"].(string))
	}
	resp, _ := c.do(http.MethodPut, "/api/v2/notifications/channels/"+ids[0]+"/subscriptions", []map[string]string{{"id": topic}})
	require.Equal(t, http.StatusOK, resp.StatusCode)
	oldest, _, err := websocket.Dial(ctx, strings.Replace(srv.URL, "http", "ws", 1)+"/channels/"+ids[0], nil)
	require.NoError(t, err)
	defer oldest.CloseNow()
	require.NoError(t, srv.WaitConnected(ctx, 1))

	liveIDs := func() []string {
		var out []string
		for _, ch := range srv.Channels() {
			out = append(out, ch.ID)
		}
		return out
	}
	create()
	assert.Equal(t, 1, srv.EvictedInUse(), "the oldest channel goes although it is connected")
	live := liveIDs()
	require.Len(t, live, 20)
	assert.Equal(t, ids[1:], live[:19], "the unconnected channels, all newer, stay")
	_, _, err = oldest.Read(ctx)
	assert.Error(t, err, "the evicted channel's socket is closed")
	require.NoError(t, srv.WaitConnected(ctx, 0))
	resp, _ = c.do(http.MethodGet, "/api/v2/notifications/channels/"+ids[0]+"/subscriptions", nil)
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)

	create()
	assert.Equal(t, 1, srv.EvictedInUse(), "an unconnected channel is not in use")
	assert.Equal(t, ids[2:], liveIDs()[:18])
	assert.Equal(t, 22, srv.ChannelsCreated())
}

// DisconnectTopic breaks the sockets of the channels subscribed to one topic and leaves the others;
// a channel can be connected again.
func TestFakeDisconnectTopic(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	srv := genesystest.NewServer(genesystest.WithHeartbeatInterval(0))
	t.Cleanup(srv.Close)
	_, body := tokenRequest(t, srv, genesystest.DefaultClientID, genesystest.DefaultClientSecret)
	c := &rawClient{t: t, srv: srv, token: body["access_token"].(string)}
	topics := []string{"v2.users.e40f28ea-fa86-493f-a5b8-d559c8533c96.presence", "v2.users.e40f28ea-fa86-493f-a5b8-d559c8533c96.activity"}
	var (
		ids   []string
		conns []*websocket.Conn
	)
	for _, topic := range topics {
		_, ch := c.do(http.MethodPost, "/api/v2/notifications/channels", nil)
		resp, _ := c.do(http.MethodPut, "/api/v2/notifications/channels/"+ch["id"].(string)+"/subscriptions", []map[string]string{{"id": topic}})
		require.Equal(t, http.StatusOK, resp.StatusCode)
		conn, _, err := websocket.Dial(ctx, ch["connectUri"].(string), nil)
		require.NoError(t, err)
		defer conn.CloseNow()
		ids = append(ids, ch["id"].(string))
		conns = append(conns, conn)
	}
	require.NoError(t, srv.WaitConnected(ctx, 2))
	assert.Equal(t, ids[:1], srv.DisconnectTopic(topics[0]))
	_, _, err := conns[0].Read(ctx)
	assert.Error(t, err)
	require.NoError(t, srv.WaitConnected(ctx, 1))
	require.NoError(t, srv.WaitSubscribed(ctx, topics[1], 1), "the other channel stays connected")

	again, _, err := websocket.Dial(ctx, strings.Replace(srv.URL, "http", "ws", 1)+"/channels/"+ids[0], nil)
	require.NoError(t, err)
	defer again.CloseNow()
	require.NoError(t, srv.WaitSubscribed(ctx, topics[0], 1), "a channel whose socket broke can be connected again")
	assert.Equal(t, 2, srv.ChannelsCreated())
	info := srv.Channels()
	require.Len(t, info, 2)
	assert.Equal(t, 2, info[0].Sockets)
	assert.Equal(t, 1, info[1].Sockets)
}

func ExampleNewServer() {
	srv := genesystest.NewServer(genesystest.WithHeartbeatInterval(0))
	defer srv.Close()
	srv.Fail(genesystest.Fault{Method: http.MethodGet, Path: "/api/v2/integrations", Status: 429, RetryAfter: "1"})
	fmt.Println(strings.HasPrefix(srv.URL, "http://127.0.0.1:"), srv.PendingFaults(), len(genesystest.Topics()))
	// Output: true 1 237
}

// CreateIntegration installs what a creation does: a disabled integration with an empty config,
// whose id WithIntegrationIDs makes.
func TestFakeCreateIntegrationAndIDs(t *testing.T) {
	srv := genesystest.NewServer(genesystest.WithIntegrationIDs(func(n int) string { return fmt.Sprintf("z-%d", 10-n) }))
	t.Cleanup(srv.Close)
	_, tok := tokenRequest(t, srv, genesystest.DefaultClientID, genesystest.DefaultClientSecret)
	c := &rawClient{t: t, srv: srv, token: tok["access_token"].(string)}

	assert.Equal(t, "z-9", srv.CreateIntegration("amazon-eventbridge-source", "leftover"))
	resp, body := c.do(http.MethodPost, "/api/v2/integrations", map[string]any{"integrationType": map[string]any{"id": "amazon-eventbridge-source"}, "name": "n"})
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "z-8", body["id"])

	resp, body = c.do(http.MethodGet, "/api/v2/integrations/z-9", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "leftover", body["name"])
	assert.Equal(t, "DISABLED", body["intendedState"])
	assert.Equal(t, "INACTIVE", body["reportedState"].(map[string]any)["code"])
	assert.Equal(t, 1, srv.ConfigVersion("z-9"))
	assert.Equal(t, 2, srv.IntegrationCount("amazon-eventbridge-source"))
	assert.Panics(t, func() { srv.CreateIntegration("no-such-type", "x") })
}
