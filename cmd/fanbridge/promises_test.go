package main_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/signature"
	"github.com/fanbridge/fanbridge/sink"
	"github.com/fanbridge/fanbridge/sink/grpcsink"
)

// The tests in this file check what the manual (README.md) promises about shutdown, readiness,
// the allow lists of an intake path, reload metrics and the loss of an async delivery, against
// the built binary.

// promiseConfig sends every event to one gRPC consumer. %[1]s is the consumer's address and
// %[2]s the lines that differ from test to test (dlq, dispatch, health, shutdown).
const promiseConfig = `
listen: {address: "127.0.0.1:0"}
intake:
  - path: /events
    verifiers:
      - hmac: {header: X-Signature, encoding: hex, prefix: "sha256=", secrets: ["${E2E_HMAC}"]}
sinks:
  - name: analytics
    grpc: {targets: ["%[1]s"], insecure: true, call_timeout: 50s}
    retry: {max_attempts: 3, initial_interval: 5ms, max_interval: 10ms}
routes:
  - {name: everything, all: true, sinks: [analytics]}
logging: {level: info, format: json}
%[2]s`

func writePromiseConfig(t *testing.T, consumerAddr, extra string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "fanbridge.yaml")
	writeFile(t, path, fmt.Sprintf(promiseConfig, consumerAddr, extra))
	return path
}

// gate makes the calls that reach it wait while it is shut; each waiting call announces itself
// on entered.
type gate struct {
	mu      sync.Mutex
	shut    chan struct{} // non-nil while shut; closed to let the waiting calls through
	entered chan struct{}
}

func newGate() *gate { return &gate{entered: make(chan struct{}, 64)} }

// close shuts the gate until the returned open is called (also at the end of the test).
func (g *gate) close(t *testing.T) (open func()) {
	ch := make(chan struct{})
	g.mu.Lock()
	g.shut = ch
	g.mu.Unlock()
	var once sync.Once
	open = func() {
		once.Do(func() {
			g.mu.Lock()
			g.shut = nil
			g.mu.Unlock()
			close(ch)
		})
	}
	t.Cleanup(open)
	return open
}

func (g *gate) pass(ctx context.Context) error {
	g.mu.Lock()
	ch := g.shut
	g.mu.Unlock()
	if ch == nil {
		return nil
	}
	g.entered <- struct{}{}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// waitEntered waits until a call waits at the gate.
func (g *gate) waitEntered(t *testing.T, ctx context.Context, what string) {
	t.Helper()
	select {
	case <-g.entered:
	case <-ctx.Done():
		t.Fatalf("no %s reached the consumer", what)
	}
}

// gatedConsumer is a gRPC consumer with the standard health service. Deliver answers with
// answer (nil: the event is taken), and both Deliver and the health check can be held at a gate.
type gatedConsumer struct {
	addr    string
	deliver *gate
	health  *gate
	got     chan *fanbridge.Event
}

type healthFunc struct {
	healthpb.UnimplementedHealthServer
	check func(context.Context) error
}

func (h healthFunc) Check(ctx context.Context, _ *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	if err := h.check(ctx); err != nil {
		return nil, err
	}
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}

func newGatedConsumer(t *testing.T, answer error) *gatedConsumer {
	t.Helper()
	c := &gatedConsumer{deliver: newGate(), health: newGate(), got: make(chan *fanbridge.Event, 64)}
	h, err := grpcsink.NewServer(sink.Func(func(ctx context.Context, e *fanbridge.Event) error {
		if err := c.deliver.pass(ctx); err != nil {
			return err
		}
		if answer != nil {
			return answer
		}
		c.got <- e
		return nil
	}))
	require.NoError(t, err)
	srv := grpc.NewServer()
	h.Register(srv)
	healthpb.RegisterHealthServer(srv, healthFunc{check: c.health.pass})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	c.addr = ln.Addr().String()
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	return c
}

// signedPost posts body to the service's /events path, signed with the HMAC secret of
// promiseConfig and e2eConfig.
func signedPost(t *testing.T, ctx context.Context, p *proc, body []byte) (int, string) {
	t.Helper()
	sig, err := signature.SignHMAC(hmacScheme, e2eHMAC, body)
	require.NoError(t, err)
	status, answer, err := post(ctx, http.DefaultClient, p.url("/events"), body, map[string]string{"X-Signature": sig})
	require.NoError(t, err)
	return status, answer
}

// sample returns a Genesys sample from testdata with the envelope fields in set replaced (a nil
// value removes the field).
func sample(t *testing.T, file string, set map[string]any) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "genesys", file))
	require.NoError(t, err)
	if len(set) == 0 {
		return b
	}
	var env map[string]any
	require.NoError(t, json.Unmarshal(b, &env))
	for k, v := range set {
		if v == nil {
			delete(env, k)
		} else {
			env[k] = v
		}
	}
	b, err = json.Marshal(env)
	require.NoError(t, err)
	return b
}

// metricValue sums the samples of the Prometheus metric name whose labels include every
// key="value" pair in labels; found is false when no sample matches.
func metricValue(t *testing.T, text, name string, labels ...string) (sum float64, found bool) {
	t.Helper()
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, "#") || !strings.HasPrefix(line, name) {
			continue
		}
		rest := line[len(name):]
		var lbls string
		switch {
		case strings.HasPrefix(rest, "{"):
			end := strings.LastIndex(rest, "}")
			require.Positive(t, end, "metric line %q", line)
			lbls, rest = rest[1:end], rest[end+1:]
		case strings.HasPrefix(rest, " "):
		default:
			continue // another metric whose name starts with name
		}
		ok := true
		for _, l := range labels {
			if !strings.Contains(","+lbls+",", ","+l+",") {
				ok = false
			}
		}
		if !ok {
			continue
		}
		fields := strings.Fields(rest)
		require.NotEmpty(t, fields, "metric line %q", line)
		v, err := strconv.ParseFloat(fields[0], 64)
		require.NoError(t, err, "metric line %q", line)
		sum, found = sum+v, true
	}
	return sum, found
}

// scrape returns the service's /metrics text.
func scrape(t *testing.T, ctx context.Context, p *proc) string {
	t.Helper()
	status, text, err := get(ctx, p.url("/metrics"))
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, status)
	return text
}

// running reports whether the process has not exited yet.
func running(p *proc) bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// waitListenerClosed waits (up to 10s) until a new connection to the service is refused. Until
// then, any answer /readyz and /metrics give must already be those of a service shutting down.
func waitListenerClosed(t *testing.T, ctx context.Context, p *proc) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	closed := eventually(ctx, func() bool {
		status, body, err := get(ctx, p.url("/readyz"))
		if errors.Is(err, syscall.ECONNREFUSED) {
			return true
		}
		if err != nil {
			return false // a connection the closing listener had queued and then dropped
		}
		require.Equal(t, http.StatusServiceUnavailable, status, "/readyz once shutdown began: %s", body)
		require.JSONEq(t, `{"status":"shutting down"}`, body)
		status, text, err := get(ctx, p.url("/metrics"))
		if err == nil && status == http.StatusOK {
			v, found := metricValue(t, text, "fanbridge_ready")
			require.True(t, found, "fanbridge_ready on /metrics")
			require.Zero(t, v, "fanbridge_ready once shutdown began")
		}
		return false
	})
	require.True(t, closed, "the listener is still open")
}

// TestReadinessDuringShutdown follows the manual's shutdown steps with a /readyz request in
// flight (its consumer's health check held) and an async delivery queued (its consumer call
// held). At SIGTERM readiness fails at once: the request in flight answers 503 "shutting down",
// although every probe it ran passed. The listener then closes, so that while the dispatcher
// still has the delivery to finish, /readyz and /metrics refuse connections (any answer given
// before that must be "shutting down" and fanbridge_ready 0); the drain then delivers the
// queued event and the process exits 0.
func TestReadinessDuringShutdown(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cons := newGatedConsumer(t, nil)
	cfg := writePromiseConfig(t, cons.addr, fmt.Sprintf(`dlq: {file: {dir: %q}}
dispatch: {mode: async}
health: {cache: 1ms, probe_timeout: 50s}
shutdown: {http_timeout: 50s, drain_timeout: 50s}
`, filepath.Join(t.TempDir(), "dlq")))
	p := startService(t, ctx, cfg, "E2E_HMAC="+e2eHMAC)

	// Before: ready, and the gauge says so once a check has passed.
	var body string
	ready := eventually(ctx, func() bool {
		var status int
		status, body, _ = get(ctx, p.url("/readyz"))
		return status == http.StatusOK
	})
	require.True(t, ready, "not ready: %s", body)
	assert.JSONEq(t, `{"status":"ready"}`, body)
	v, found := metricValue(t, scrape(t, ctx, p), "fanbridge_ready")
	require.True(t, found, "fanbridge_ready on /metrics")
	assert.Equal(t, 1.0, v, "fanbridge_ready after a passing check")

	// An accepted event whose delivery the consumer holds: the drain has work to do.
	release := cons.deliver.close(t)
	status, answer := signedPost(t, ctx, p, sample(t, "v2.detail.events.conversation.customer.end.json", nil))
	require.Equal(t, http.StatusOK, status, answer)
	cons.deliver.waitEntered(t, ctx, "delivery")

	// A readiness request in flight: its probe waits in the consumer's health check.
	openHealth := cons.health.close(t)
	type answerT struct {
		status int
		body   string
		err    error
	}
	inFlight := make(chan answerT, 1)
	go func() {
		var a answerT
		a.status, a.body, a.err = get(ctx, p.url("/readyz"))
		inFlight <- a
	}()
	cons.health.waitEntered(t, ctx, "health check")

	from := p.stderr.len()
	p.signal(t, syscall.SIGTERM)
	_, _, err := p.stderr.wait(ctx, from, func(s string) bool { _, ok := logMsg(s, "shutting down"); return ok })
	require.NoError(t, err)

	// Step 1: the probe passes, but shutdown has begun: 503, not ready.
	openHealth()
	var a answerT
	select {
	case a = <-inFlight:
	case <-ctx.Done():
		t.Fatal("the /readyz request in flight got no answer")
	}
	require.NoError(t, a.err, "the /readyz request in flight is answered")
	assert.Equal(t, http.StatusServiceUnavailable, a.status, a.body)
	assert.JSONEq(t, `{"status":"shutting down"}`, a.body)

	// Steps 2 and 3: the listener closes while the drain still has work (the consumer holds the
	// one delivery, so the process cannot have finished).
	waitListenerClosed(t, ctx, p)
	require.True(t, running(p), "the process exited before its queued delivery was released")
	select {
	case e := <-cons.got:
		t.Fatalf("event %s delivered before the consumer was released", e.ID)
	default:
	}

	release()
	select {
	case <-cons.got:
	case <-ctx.Done():
		t.Fatal("the drain did not deliver the queued event")
	}
	code, err := p.exit(ctx)
	require.NoError(t, err)
	assert.Equal(t, 0, code, "exit code: the drain delivered everything")
}

// TestSecondSignalDuringDrainExits130 sends a second signal while the dispatcher drains (its
// consumer holds the one queued delivery until the end of the test): the process exits at once
// with code 130, without finishing the drain. The second signal follows the first within
// milliseconds, so a gap in the signal handling between the two (a registration stopped and
// made again) shows up as a dropped signal or a death by the signal's default action.
func TestSecondSignalDuringDrainExits130(t *testing.T) {
	for _, tc := range []struct {
		name          string
		first, second syscall.Signal
	}{
		{"SIGTERM twice", syscall.SIGTERM, syscall.SIGTERM},
		{"SIGINT then SIGTERM", syscall.SIGINT, syscall.SIGTERM},
		{"SIGTERM then SIGINT", syscall.SIGTERM, syscall.SIGINT},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cons := newConsumer(t)
			// The drain could last 50s; the test's deadline is shorter, so only the second signal
			// can end the process in time.
			cfg := writePromiseConfig(t, cons.addr, `dispatch: {mode: async}
shutdown: {http_timeout: 5s, drain_timeout: 50s}
`)
			p := startService(t, ctx, cfg, "E2E_HMAC="+e2eHMAC)

			release := cons.hold()
			t.Cleanup(release)
			status, answer := signedPost(t, ctx, p, sample(t, "v2.detail.events.conversation.customer.end.json", nil))
			require.Equal(t, http.StatusOK, status, answer)
			select {
			case <-cons.held:
			case <-ctx.Done():
				t.Fatal("no delivery reached the held consumer")
			}

			from := p.stderr.len()
			p.signal(t, tc.first)
			_, _, err := p.stderr.wait(ctx, from, func(s string) bool { _, ok := logMsg(s, "shutting down"); return ok })
			require.NoError(t, err)
			// The listener is closed (step 2) and the held delivery keeps the drain (step 3) from
			// finishing.
			waitListenerClosed(t, ctx, p)
			require.True(t, running(p), "the process exited before its queued delivery was released")
			require.Empty(t, cons.deliveries(), "the held delivery finished")

			sent := time.Now()
			p.signal(t, tc.second)
			code, err := p.exit(ctx)
			require.NoError(t, err, "the second signal did not end the process")
			assert.Equal(t, 130, code, "exit code")
			assert.Less(t, time.Since(sent), 10*time.Second, "exit after the second signal")
			assert.Empty(t, cons.deliveries(), "the drain was cut short")
		})
	}
}

// allowConfig lets /events take only the sources and accounts of three Genesys samples, each
// source allowed in one of the three forms: exact, a prefix ending in "/", a prefix ending in "*".
const allowConfig = `
listen: {address: "127.0.0.1:0"}
intake:
  - path: /events
    verifiers:
      - hmac: {header: X-Signature, encoding: hex, prefix: "sha256=", secrets: ["${E2E_HMAC}"]}
    allowed_sources:
      - aws.partner/genesys.com/cloud/23faea37-1117-4c0a-88a2-572c46780b03/quickstart-test
      - aws.partner/genesys.com.test/cloud/32aa07aa-db1b-4987-abd0-9483601ec29d/
      - aws.partner/genesys.com/cloud/cf6cb7d5-*
    allowed_accounts: ["123456789012", "490606849374", "765425735388"]
sinks:
  - name: analytics
    grpc: {targets: ["%[1]s"], insecure: true}
  - name: kafka
    kafka: {brokers: ["%[2]s"], topic: allowed}
routes:
  - {name: everything, all: true, sinks: [analytics, kafka]}
dlq: {file: {dir: "%[3]s"}}
logging: {level: info, format: json}
`

// TestAllowedSourcesAndAccounts posts signed samples whose source or account the intake path
// does not allow: each gets 403 with a JSON error body that echoes nothing, and reaches no sink
// and no dead-letter queue. Samples from each allowed form get 200 and are delivered.
func TestAllowedSourcesAndAccounts(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	kc := newKafka(t, "allowed")
	broker := kc.ListenAddrs()[0]
	cons := newConsumer(t)
	dlqDir := filepath.Join(t.TempDir(), "dlq")
	cfgPath := filepath.Join(t.TempDir(), "fanbridge.yaml")
	writeFile(t, cfgPath, fmt.Sprintf(allowConfig, cons.addr, broker, dlqDir))
	p := startService(t, ctx, cfgPath, "E2E_HMAC="+e2eHMAC)

	const (
		end         = "v2.detail.events.conversation.customer.end.json" // prefix "/" source, account 123456789012
		oauth       = "v2.audits.entitytype.OAuthClient.delete.json"    // exact source, account 490606849374
		transcript  = "v2.conversations.transcription.json"             // prefix "*" source, account 765425735388
		presence    = "v2.audits.entitytype.UserPresence.update.json"   // unlisted source
		endSource   = "aws.partner/genesys.com.test/cloud/32aa07aa-db1b-4987-abd0-9483601ec29d/test-event-bus"
		exactSource = "aws.partner/genesys.com/cloud/23faea37-1117-4c0a-88a2-572c46780b03/quickstart-test"
	)
	refused := []struct {
		name   string
		file   string
		set    map[string]any
		reason string
	}{
		{"source of another organisation", presence, map[string]any{"account": "123456789012"}, "source"},
		{"exact source with more after it", oauth, map[string]any{"source": exactSource + "-2"}, "source"},
		{"the '/' prefix without its slash", end, map[string]any{"source": strings.TrimSuffix(endSource, "/test-event-bus")}, "source"},
		{"the '/' prefix in another case", end, map[string]any{"source": strings.ToUpper(endSource)}, "source"},
		{"not the '*' prefix", transcript, map[string]any{"source": "aws.partner/genesys.com/cloud/cf6cb7d6-d0ea-45b5-b0cf-73ad5f5b8721/DA-VOICE-SB"}, "source"},
		{"unlisted account", end, map[string]any{"account": "210987654321"}, "account"},
		{"the account of the presence sample", oauth, map[string]any{"account": "123456789"}, "account"},
	}
	for i, tc := range refused {
		t.Run("403/"+tc.name, func(t *testing.T) {
			tc.set["id"] = fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
			body := sample(t, tc.file, tc.set)
			sig, err := signature.SignHMAC(hmacScheme, e2eHMAC, body)
			require.NoError(t, err)
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url("/events"), strings.NewReader(string(body)))
			require.NoError(t, err)
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("X-Signature", sig)
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			var answer map[string]any
			require.NoError(t, json.NewDecoder(resp.Body).Decode(&answer), "a JSON error body")
			assert.Equal(t, http.StatusForbidden, resp.StatusCode, "%v", answer)
			assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
			msg, _ := answer["error"].(string)
			assert.Contains(t, msg, tc.reason+" not allowed", "%v", answer)
			for k := range answer {
				assert.Contains(t, []string{"error", "id"}, k, "key of the error body")
			}
			if src, _ := tc.set["source"].(string); src != "" {
				assert.NotContains(t, msg, src, "the error does not echo the body")
			}
		})
	}

	allowed := map[string]string{} // event id -> how its source is allowed
	for form, file := range map[string]string{"prefix '/'": end, "exact": oauth, "prefix '*'": transcript} {
		body := sample(t, file, nil)
		status, answer := signedPost(t, ctx, p, body)
		require.Equal(t, http.StatusOK, status, "%s (%s): %s", file, form, answer)
		assert.Contains(t, answer, `"status":"delivered"`)
		var env struct{ ID string }
		require.NoError(t, json.Unmarshal(body, &env))
		allowed[env.ID] = form
	}
	require.Len(t, allowed, 3)

	// Sync dispatch: every answer above came after its deliveries, so the sinks hold now all
	// they will ever hold of these requests: exactly the allowed events.
	var kafkaIDs, grpcIDs []string
	for _, r := range readAll(t, ctx, []string{broker}, "allowed") {
		kafkaIDs = append(kafkaIDs, r.Event.ID)
	}
	for _, d := range cons.deliveries() {
		grpcIDs = append(grpcIDs, d.Event.ID)
	}
	var want []string
	for id := range allowed {
		want = append(want, id)
	}
	assert.ElementsMatch(t, want, kafkaIDs, "events in the Kafka topic")
	assert.ElementsMatch(t, want, grpcIDs, "events at the gRPC consumer")
	assert.Empty(t, readDLQ(t, ctx, dlqDir), "dead letters")

	metrics := scrape(t, ctx, p)
	for reason, want := range map[string]float64{"source": 5, "account": 2} {
		v, _ := metricValue(t, metrics, "fanbridge_eventbridge_rejected_total", `reason="`+reason+`"`)
		assert.Equal(t, want, v, "requests rejected for their %s", reason)
	}
	v, _ := metricValue(t, metrics, "fanbridge_eventbridge_dispatched_total")
	assert.Equal(t, float64(len(allowed)), v, "events dispatched")

	p.signal(t, syscall.SIGTERM)
	code, err := p.exit(ctx)
	require.NoError(t, err)
	assert.Equal(t, 0, code)
}

// TestReloadMetrics reloads the running binary with SIGHUP, with good and bad files, and checks
// that fanbridge_config_reloads_total counts each outcome under its result label.
func TestReloadMetrics(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cons := newConsumer(t)
	cfgPath := filepath.Join(t.TempDir(), "fanbridge.yaml")
	// Two good files (the second renames the route) and two bad ones made from the first.
	version := func(tag string) string { return fmt.Sprintf(promiseConfig, cons.addr, "") + "\n# " + tag }
	good1 := version("first")
	good2 := strings.Replace(version("second"), "name: everything", "name: all-of-it", 1)
	badKey := strings.Replace(good1, "all: true", "al: true", 1)
	badRef := strings.Replace(good1, "sinks: [analytics]}", "sinks: [analytics, nowhere]}", 1)
	require.NotEqual(t, good1, badKey)
	require.NotEqual(t, good1, badRef)
	writeFile(t, cfgPath, good1)
	p := startService(t, ctx, cfgPath, "E2E_HMAC="+e2eHMAC)

	count := func() (applied, rejected float64) {
		text := scrape(t, ctx, p)
		applied, _ = metricValue(t, text, "fanbridge_config_reloads_total", `result="applied"`)
		rejected, _ = metricValue(t, text, "fanbridge_config_reloads_total", `result="rejected"`)
		return applied, rejected
	}
	applied, rejected := count()
	require.Zero(t, applied+rejected, "no reload yet")

	for i, step := range []struct {
		text, want string
		applied    float64
		rejected   float64
	}{
		{good2, "configuration reloaded", 1, 0},
		{badKey, "configuration reload rejected; the running configuration stays", 1, 1},
		{badRef, "configuration reload rejected; the running configuration stays", 1, 2},
		{good1, "configuration reloaded", 2, 2},
	} {
		from := p.stderr.len()
		writeFile(t, cfgPath, step.text)
		p.signal(t, syscall.SIGHUP)
		line, _, err := p.stderr.wait(ctx, from, func(s string) bool {
			_, ok := logMsg(s, "configuration reloaded")
			_, rej := logMsg(s, "configuration reload rejected; the running configuration stays")
			return ok || rej
		})
		require.NoError(t, err, "step %d: no reload logged", i)
		_, ok := logMsg(line, step.want)
		require.True(t, ok, "step %d: want %q, got %s", i, step.want, line)
		applied, rejected = count()
		assert.Equal(t, step.applied, applied, "step %d: applied reloads", i)
		assert.Equal(t, step.rejected, rejected, "step %d: rejected reloads", i)
	}

	p.signal(t, syscall.SIGTERM)
	code, err := p.exit(ctx)
	require.NoError(t, err)
	assert.Equal(t, 0, code)
}

// TestAsyncLossExits1 runs async dispatch without a dead-letter queue. When the consumer refuses
// an accepted event for good (InvalidArgument), the delivery is lost: it is logged, counted in
// fanbridge_fanout_sink_failed_total, and the process exits 1 at SIGTERM. When the consumer takes
// it, nothing is counted and the exit is 0.
func TestAsyncLossExits1(t *testing.T) {
	for _, tc := range []struct {
		name   string
		answer error
		lost   bool
	}{
		{"consumer refuses", status.Error(codes.InvalidArgument, "this consumer takes no such event"), true},
		{"consumer takes it", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cons := newGatedConsumer(t, tc.answer)
			cfg := writePromiseConfig(t, cons.addr, "dispatch: {mode: async}\n")
			p := startService(t, ctx, cfg, "E2E_HMAC="+e2eHMAC)

			body := sample(t, "v2.detail.events.conversation.customer.end.json", nil)
			var env struct{ ID string }
			require.NoError(t, json.Unmarshal(body, &env))
			status, answer := signedPost(t, ctx, p, body)
			require.Equal(t, http.StatusOK, status, answer)
			assert.Contains(t, answer, `"status":"queued"`, "accepted, not yet delivered")

			if tc.lost {
				_, _, err := p.stderr.wait(ctx, 0, func(s string) bool {
					m, ok := logMsg(s, "fanout: event lost: neither delivered nor dead-lettered")
					return ok && m["event_id"] == env.ID && m["sink"] == "analytics"
				})
				require.NoError(t, err, "the loss is logged")
			} else {
				select {
				case e := <-cons.got:
					require.Equal(t, env.ID, e.ID)
				case <-ctx.Done():
					t.Fatal("the event was not delivered")
				}
			}
			// A loss is counted before it is logged; a delivery is counted once the consumer's
			// answer is back, after it has the event, so that one is polled for.
			text := scrape(t, ctx, p)
			if !tc.lost {
				ok := eventually(ctx, func() bool {
					text = scrape(t, ctx, p)
					d, _ := metricValue(t, text, "fanbridge_fanout_sink_delivered_total", `sink="analytics"`)
					return d > 0
				})
				require.True(t, ok, "the delivery is not counted:\n%s", text)
			}
			failed, _ := metricValue(t, text, "fanbridge_fanout_sink_failed_total", `sink="analytics"`)
			delivered, _ := metricValue(t, text, "fanbridge_fanout_sink_delivered_total", `sink="analytics"`)
			queued, _ := metricValue(t, text, "fanbridge_eventbridge_dispatched_total", `outcome="queued"`)
			assert.Equal(t, 1.0, queued, "the intake counts the event queued")
			_, counted := metricValue(t, text, "fanbridge_eventbridge_dispatched_total", `outcome="delivered"`)
			assert.False(t, counted, "the intake counts a queued event as delivered")
			if tc.lost {
				assert.Equal(t, 1.0, failed, "fanbridge_fanout_sink_failed_total")
				assert.Zero(t, delivered, "fanbridge_fanout_sink_delivered_total")
			} else {
				assert.Zero(t, failed, "fanbridge_fanout_sink_failed_total")
				assert.Equal(t, 1.0, delivered, "fanbridge_fanout_sink_delivered_total")
			}

			p.signal(t, syscall.SIGTERM)
			code, err := p.exit(ctx)
			require.NoError(t, err)
			if tc.lost {
				assert.Equal(t, 1, code, "exit code after a loss")
			} else {
				assert.Equal(t, 0, code, "exit code")
			}
		})
	}
}

// TestReadyDelayKeepsServing: with shutdown.ready_delay, /readyz fails from the signal on while
// intake requests are still taken and delivered as usual, so that a load balancer can stop
// sending before the listener closes; when the delay is over the shutdown goes on and the
// process exits 0.
func TestReadyDelayKeepsServing(t *testing.T) {
	const delay = 5 * time.Second // the window the checks below must fit in: a few local requests
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cons := newGatedConsumer(t, nil)
	cfg := writePromiseConfig(t, cons.addr, fmt.Sprintf(`dlq: {file: {dir: %q}}
health: {cache: 1ms}
shutdown: {ready_delay: %s, http_timeout: 5s, drain_timeout: 5s}
`, filepath.Join(t.TempDir(), "dlq"), delay))
	p := startService(t, ctx, cfg, "E2E_HMAC="+e2eHMAC)
	require.True(t, eventually(ctx, func() bool {
		status, _, _ := get(ctx, p.url("/readyz"))
		return status == http.StatusOK
	}), "never ready")

	from := p.stderr.len()
	signalled := time.Now()
	p.signal(t, syscall.SIGTERM)
	_, _, err := p.stderr.wait(ctx, from, func(s string) bool { _, ok := logMsg(s, "shutting down"); return ok })
	require.NoError(t, err)

	status, body, err := get(ctx, p.url("/readyz"))
	require.NoError(t, err)
	assert.Equal(t, http.StatusServiceUnavailable, status)
	assert.JSONEq(t, `{"status":"shutting down"}`, body)
	status, body, err = get(ctx, p.url("/healthz"))
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, status, body)
	status, answer := signedPost(t, ctx, p, sample(t, "v2.detail.events.conversation.customer.end.json", nil))
	assert.Equal(t, http.StatusOK, status, answer)
	assert.Contains(t, answer, `"status":"delivered"`)
	select {
	case e := <-cons.got:
		assert.Equal(t, "58fb5dac-f077-4eec-a25f-c638dbdd4368", e.ID)
	case <-ctx.Done():
		t.Fatal("the event taken during the ready delay did not reach the consumer")
	}
	assert.Less(t, time.Since(signalled), delay, "the checks above ran after the delay: they prove nothing")
	assert.Equal(t, -1, indexOf(p.stderr, from, "ready delay over; closing the listener"),
		"the listener closed before the checks above")

	code, err := p.exit(ctx)
	require.NoError(t, err)
	assert.Equal(t, 0, code)
	assert.GreaterOrEqual(t, time.Since(signalled), delay, "the process waited out the delay")
	assert.NotEqual(t, -1, indexOf(p.stderr, from, "ready delay over; closing the listener"))
}

// indexOf returns the index of the first log line at or after from whose message is msg, or -1.
func indexOf(l *lines, from int, msg string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := from; i < len(l.all); i++ {
		if _, ok := logMsg(l.all[i], msg); ok {
			return i
		}
	}
	return -1
}
