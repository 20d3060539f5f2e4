package service

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fanbridge/fanbridge/cmd/fanbridge/internal/config"
	"github.com/fanbridge/fanbridge/dlq"
	"github.com/fanbridge/fanbridge/dlq/filedlq"
	"github.com/fanbridge/fanbridge/genesys/genesystest"
	"github.com/fanbridge/fanbridge/internal/testwait"
)

// The users whose presence and activity the tests subscribe, and a topic no route matches.
const (
	wsPresence = "v2.users.e40f28ea-fa86-493f-a5b8-d559c8533c96.presence"
	wsActivity = "v2.users.6b9e1d2a-3c4f-4a5b-8c7d-0e1f2a3b4c5d.activity"
	wsRouting  = "v2.users.e40f28ea-fa86-493f-a5b8-d559c8533c96.routingStatus"
)

// wsSecret is the client secret the tests give through the environment.
const wsSecret = "ws-client-secret-5d1c8e2f9a"

// wsConfig is a service with no intake path that takes the WebSocket source's events from the
// fake Genesys srv, with the client secret from the environment: presence to the Kafka topic
// genesys.presence (keyed by user), activity to genesys.activity, and dead letters in dir.
func wsConfig(srv *genesystest.Server, broker, dir string, topics []string, extra string) []byte {
	return fmt.Appendf(nil, `listen: {address: "127.0.0.1:0"}
notifications:
  region: us-east-1
  client_id: %s
  client_secret: "${FANBRIDGE_TEST_GENESYS_SECRET}"
  api_url: %q
  token_url: %q
  topics: [%s]
sinks:
  - name: presence
    kafka: {brokers: [%q], topic: genesys.presence, key: user}
  - name: activity
    kafka: {brokers: [%q], topic: genesys.activity}
routes:
  - name: presence
    pattern: {detail-type: ["v2.users.{id}.presence"]}
    sinks: [presence]
  - name: activity
    cel: "event.type == 'v2.users.{id}.activity'"
    sinks: [activity]
dlq: {file: {dir: %q}}
health: {cache: 1ms}
%s`, genesystest.DefaultClientID, srv.URL, srv.TokenURL(), strings.Join(topics, ", "), broker, broker, dir, extra)
}

// wsHarness is a service running against a fake Genesys Cloud and a kfake cluster.
type wsHarness struct {
	srv     *genesystest.Server
	kafka   *kfake.Cluster
	svc     *Service
	path    string
	logs    *lockedBuffer
	dlqDir  string
	ran     chan error
	stop    context.CancelFunc
	stopped bool
}

// wsTopics are the topics the service subscribes unless a test says otherwise.
var wsTopics = []string{wsPresence, wsActivity, wsRouting}

// newWSHarness starts the fake Genesys Cloud, the Kafka cluster and the service, with secret as
// the client secret in the service's environment (the fake takes DefaultClientSecret), and runs
// it; extra is appended to the configuration. hook, if set, is installed on the cluster before
// the service starts.
func newWSHarness(t *testing.T, secret string, topics []string, extra string, hook func(*kfake.Cluster)) *wsHarness {
	t.Helper()
	t.Setenv("FANBRIDGE_TEST_GENESYS_SECRET", secret)
	h := &wsHarness{ran: make(chan error, 1), dlqDir: filepath.Join(t.TempDir(), "dlq"), logs: &lockedBuffer{}}
	h.srv = genesystest.NewServer()
	t.Cleanup(h.srv.Close)
	var err error
	h.kafka, err = kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "genesys.presence", "genesys.activity"))
	require.NoError(t, err)
	t.Cleanup(h.kafka.Close)
	if hook != nil {
		hook(h.kafka)
	}
	h.svc, h.path = newServiceLoggingTo(t, wsConfig(h.srv, h.kafka.ListenAddrs()[0], h.dlqDir, topics, extra), slog.NewTextHandler(h.logs, nil))
	ctx, cancel := context.WithCancel(context.Background())
	h.stop = cancel
	t.Cleanup(cancel)
	go func() { h.ran <- h.svc.Run(ctx) }()
	return h
}

// shutdown stops the service as a signal does and returns what Run returned.
func (h *wsHarness) shutdown(t *testing.T) error {
	t.Helper()
	h.stop()
	return testwait.Recv(t, h.ran, 60*time.Second)
}

// presenceBody is the body of the nth presence change the tests publish.
func presenceBody(n int) map[string]any {
	return map[string]any{
		"n":                  n,
		"presenceDefinition": map[string]string{"systemPresence": "AVAILABLE"},
		"modifiedDate":       "2024-05-01T10:00:00.000Z",
	}
}

// consume reads records of topic from the cluster until want have come, and returns them; with
// want -1, until it has read every record the topic holds.
func consume(t *testing.T, ctx context.Context, c *kfake.Cluster, topic string, want int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	require.NoError(t, err)
	defer cl.Close()
	var out []*kgo.Record
	for {
		f := cl.PollFetches(ctx)
		require.NoError(t, ctx.Err(), "only %d of %d records on %s", len(out), want, topic)
		caughtUp := false
		f.EachPartition(func(p kgo.FetchTopicPartition) {
			out = append(out, p.Records...)
			next := int64(0)
			if len(out) > 0 {
				next = out[len(out)-1].Offset + 1
			}
			caughtUp = next >= p.HighWatermark
		})
		if want >= 0 && len(out) >= want || want < 0 && caughtUp {
			return out
		}
	}
}

// metricValue is the value of the series of /metrics whose line starts with name and holds
// every label of labels, or -1 while there is none.
func metricValue(t *testing.T, s *Service, name string, labels ...string) float64 {
	t.Helper()
	rec := httptest.NewRecorder()
	s.tel.metrics.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	for l := range strings.Lines(rec.Body.String()) {
		if !strings.HasPrefix(l, name+"{") {
			continue
		}
		all := true
		for _, lb := range labels {
			all = all && strings.Contains(l, lb)
		}
		if all {
			v, err := strconv.ParseFloat(strings.TrimSpace(l[strings.LastIndexByte(l, ' '):]), 64)
			require.NoError(t, err, l)
			return v
		}
	}
	return -1
}

// waitMetric waits, checking every few milliseconds until ctx ends, for a series of /metrics
// to reach want.
func waitMetric(t *testing.T, ctx context.Context, s *Service, want float64, name string, labels ...string) {
	t.Helper()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for metricValue(t, s, name, labels...) < want {
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatalf("%s%v stayed at %v, want %v", name, labels, metricValue(t, s, name, labels...), want)
		}
	}
}

func readyz(s *Service) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	s.ready.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	return rec
}

// Events published on Genesys' WebSocket channels reach the Kafka topics the routes pick, through
// the same Dispatcher as the intake paths (a pattern route and a CEL route; an event no route
// matches goes nowhere); the source's metrics are served at /metrics; /readyz names no problem;
// and a reload that changes the section keeps the running one, saying it takes a restart.
func TestNotificationsReachKafkaThroughTheRoutes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	h := newWSHarness(t, genesystest.DefaultClientSecret, wsTopics, "", nil)
	for _, topic := range []string{wsPresence, wsActivity, wsRouting} {
		require.NoError(t, h.srv.WaitSubscribed(ctx, topic, 1), topic)
	}
	const presences = 3
	for i := range presences {
		_, n := h.srv.Publish(wsPresence, presenceBody(i))
		require.Equal(t, 1, n, "one socket subscribes the topic")
	}
	h.srv.Publish(wsRouting, map[string]any{"routingStatus": map[string]string{"status": "IDLE"}})
	h.srv.Publish(wsActivity, map[string]any{"routingStatus": map[string]string{"status": "OFF_QUEUE"}, "activeQueueIds": []string{}})

	recs := consume(t, ctx, h.kafka, "genesys.presence", presences)
	for i, r := range recs {
		var body map[string]any
		require.NoError(t, json.Unmarshal(r.Value, &body))
		assert.EqualValues(t, i, body["n"], "in the order published")
		assert.Equal(t, "e40f28ea-fa86-493f-a5b8-d559c8533c96", string(r.Key), "keyed by user, as the sink says")
	}
	act := consume(t, ctx, h.kafka, "genesys.activity", 1)
	assert.Contains(t, string(act[0].Value), `"OFF_QUEUE"`)

	// Five events read, four delivered; the routing status matched no route.
	waitMetric(t, ctx, h.svc, 1, "fanbridge_notifications_events_total", `outcome="ignored"`)
	assert.EqualValues(t, 4, metricValue(t, h.svc, "fanbridge_notifications_events_total", `outcome="delivered"`))
	assert.EqualValues(t, 5, metricValue(t, h.svc, "fanbridge_notifications_messages_total", `kind="event"`))
	assert.EqualValues(t, 3, metricValue(t, h.svc, "fanbridge_fanout_route_matched_total", `route="presence"`))

	rec := readyz(h.svc)
	assert.Equal(t, http.StatusOK, rec.Code, rec.Body.String())

	// The manual's metrics table has a row for each of the source's series.
	manual, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	require.NoError(t, err)
	m := httptest.NewRecorder()
	h.svc.tel.metrics.ServeHTTP(m, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	names := regexp.MustCompile(`(?m)^(fanbridge_notifications_[a-z_]+)\{`).FindAllStringSubmatch(m.Body.String(), -1)
	require.NotEmpty(t, names)
	for _, n := range names {
		assert.Contains(t, string(manual), "| `"+n[1]+"` |", "README.md's metrics table")
	}

	// A changed section is a restart's: the source keeps its topics and goes on delivering.
	text, err := os.ReadFile(h.path)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(h.path, []byte(strings.Replace(string(text), ", "+wsRouting+"]", "]", 1)), 0o600))
	require.NoError(t, h.svc.ReloadFile())
	assert.Regexp(t, `msg="setting changed in the file takes effect after a restart" key=notifications`, h.logs.String())
	h.srv.Publish(wsPresence, presenceBody(presences))
	consume(t, ctx, h.kafka, "genesys.presence", presences+1)
	assert.Len(t, h.srv.Channels(), 1)
	assert.Equal(t, 3, h.srv.Channels()[0].Topics, "the running subscription stays")

	require.NoError(t, h.shutdown(t))
	assert.NotContains(t, h.logs.String(), wsSecret)
	assert.NotContains(t, h.logs.String(), genesystest.DefaultClientSecret)
}

// A shutdown with events read from the socket and not yet delivered loses none of them: the
// Kafka broker holds the first one's records until the source has closed its socket, so that
// this one is in flight and the others wait in the source's buffer; each is then delivered or
// dead-lettered, the source's drain coming before the Dispatcher's.
func TestNotificationsShutdownWithEventsInFlightLosesNothing(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	hold := make(chan struct{})
	var releaseOnce sync.Once
	release := func() { releaseOnce.Do(func() { close(hold) }) }
	defer release()
	held := make(chan struct{}, 1)
	h := newWSHarness(t, genesystest.DefaultClientSecret, wsTopics, "shutdown: {http_timeout: 30s, drain_timeout: 10s}\n", func(c *kfake.Cluster) {
		c.ControlKey(kmsg.Produce.Int16(), func(kmsg.Request) (kmsg.Response, error, bool) {
			c.KeepControl()
			select {
			case held <- struct{}{}:
			default:
			}
			c.SleepControl(func() { <-hold })
			return nil, nil, false
		})
	})
	require.NoError(t, h.srv.WaitSubscribed(ctx, wsPresence, 1))
	const events = 8
	for i := range events {
		h.srv.Publish(wsPresence, presenceBody(i))
	}
	testwait.RecvCtx(t, ctx, held) // the first event is at the broker, which does not answer
	waitMetric(t, ctx, h.svc, events, "fanbridge_notifications_messages_total", `kind="event"`)
	require.Equal(t, -1.0, metricValue(t, h.svc, "fanbridge_notifications_events_total", `outcome="delivered"`), "nothing is delivered yet")

	// The broker answers again once the source has closed its socket: from then on no event
	// is read, and what was read is still to be dispatched.
	go func() {
		if h.srv.WaitConnected(ctx, 0) == nil {
			release()
		}
	}()
	require.NoError(t, h.shutdown(t), "nothing was lost")
	select {
	case <-hold:
	default:
		t.Fatal("the shutdown ended before the source closed its socket")
	}

	delivered := map[int]bool{}
	for _, r := range consume(t, ctx, h.kafka, "genesys.presence", -1) {
		var body struct{ N int }
		require.NoError(t, json.Unmarshal(r.Value, &body))
		delivered[body.N] = true
	}
	dead := map[int]bool{}
	q, err := filedlq.Open(h.dlqDir)
	require.NoError(t, err)
	require.NoError(t, q.List(ctx, func(e dlq.Entry) error {
		var body struct{ N int }
		require.NoError(t, json.Unmarshal(e.Event.Data, &body))
		dead[body.N] = true
		return nil
	}))
	require.NoError(t, q.Close())
	for i := range events {
		assert.True(t, delivered[i] || dead[i], "event %d is neither at its sink nor in the dead-letter queue", i)
	}
	assert.NotContains(t, h.logs.String(), "events read but not delivered")
	assert.Equal(t, -1.0, metricValue(t, h.svc, "fanbridge_notifications_events_total", `outcome="lost"`))
}

// A source whose Run ended with an error no retry cures makes the service unready, /readyz
// saying why in words that quote nothing of the error, and the log giving the error without the
// client secret; the service itself goes on.
func TestNotificationsSourceThatStoppedMakesTheServiceUnready(t *testing.T) {
	cases := []struct {
		name, secret string
		topics       []string
		reason       string
	}{
		{"refused credentials", wsSecret, wsTopics, "stopped: Genesys Cloud refused the OAuth client's credentials"},
		{"a topic Genesys refuses", genesystest.DefaultClientSecret, []string{wsPresence, "v2.users.e40f28ea-fa86-493f-a5b8-d559c8533c96.nosuchthing"},
			"stopped: Genesys Cloud refused a request (a topic?)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			h := newWSHarness(t, tc.secret, tc.topics, "", nil)
			waitStopped(t, ctx, h.svc)
			rec := readyz(h.svc)
			assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
			assert.JSONEq(t, `{"status":"unready","unready":{"genesys notifications":"`+tc.reason+`"}}`, rec.Body.String())
			out := h.logs.String()
			assert.Contains(t, out, "notifications source stopped")
			assert.Regexp(t, `level=WARN msg="sink not ready" component=readiness sink="genesys notifications" err="stopped: `, out)
			for _, text := range []string{rec.Body.String(), out} {
				assert.NotContains(t, text, tc.secret)
				assert.NotContains(t, text, "5d1c8e2f")
				for _, token := range h.srv.Tokens() {
					assert.NotContains(t, text, token)
				}
			}
			// /healthz still answers, and the shutdown is clean.
			hz := httptest.NewRecorder()
			h.svc.routes(true).ServeHTTP(hz, httptest.NewRequest(http.MethodGet, "/healthz", nil))
			assert.Equal(t, http.StatusOK, hz.Code)
			require.NoError(t, h.shutdown(t))
		})
	}
}

// waitStopped waits until the service's source has stopped with an error.
func waitStopped(t *testing.T, ctx context.Context, s *Service) {
	t.Helper()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for s.ws.failed.Load() == nil {
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatal("the source did not stop")
		}
	}
}

// A service started without a notifications section refuses a reload whose file adds one in
// place of its intake paths: the section would take effect only after a restart, and until then
// the service would take nothing.
func TestReloadAddingNotificationsWithoutIntakeIsRejected(t *testing.T) {
	s, _, logs := newLoggedService(t, testConfig(t, "info"))
	cfg, err := config.Parse([]byte(`listen: {address: "127.0.0.1:0"}
notifications:
  region: us-east-1
  client_id: fanbridge-client
  client_secret: `+wsSecret+`
  topics: [`+wsPresence+`]
sinks:
  - name: consumer
    grpc: {targets: ["127.0.0.1:1"], insecure: true}
routes:
  - {name: everything, all: true, sinks: [consumer]}
`), nil)
	require.NoError(t, err, "the file is valid")
	err = s.Reload(cfg)
	require.ErrorContains(t, err, "config: intake: at least one intake path is required")
	assert.Contains(t, logs.String(), "configuration reload rejected")
	assert.NotContains(t, logs.String(), wsSecret)
	assert.Len(t, s.cfg.Intake, 1, "the running configuration stays")
}
