package main_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
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

// shutdownConfig sends every event to a gRPC consumer and a Kafka topic. Small queues make
// overload (503) part of the run; the short dispatch budget makes a sync request whose consumer
// hangs end in the dead-letter queue within half a second.
const shutdownConfig = `
listen: {address: "127.0.0.1:0"}
intake:
  - path: /events
    verifiers:
      - api_key: {header: X-Api-Key, keys: ["${E2E_API_KEY}"]}
    dispatch_timeout: 1s
sinks:
  - name: analytics
    grpc: {targets: ["%[1]s"], insecure: true, call_timeout: 10s}
    retry: {max_attempts: 3, max_interval: 100ms}
    concurrency: 8
    queue_size: 64
  - name: kafka
    kafka: {brokers: ["%[2]s"], topic: load}
    concurrency: 8
    queue_size: 64
routes:
  - {name: everything, all: true, sinks: [analytics, kafka]}
dlq: {file: {dir: "%[3]s"}}
dispatch: {mode: %[4]s, dlq_timeout: 2s}
logging: {level: info, format: json}
shutdown: {http_timeout: %[5]s, drain_timeout: %[6]s}
`

const (
	shutdownHTTP  = 5 * time.Second
	shutdownDrain = time.Second
	shutdownDLQ   = 2 * time.Second
)

// TestShutdownUnderLoadLosesNothing sends SIGTERM to the binary while clients post as fast as
// they can and the gRPC consumer hangs, in both dispatch modes. Every request answered 2xx must
// be found at each of its sinks or in the dead-letter queue for that sink; requests started once
// shutdown has begun get 503 or a connection error; the process exits 0 within its shutdown
// timeouts.
func TestShutdownUnderLoadLosesNothing(t *testing.T) {
	for _, mode := range []string{"sync", "async"} {
		t.Run(mode, func(t *testing.T) { testShutdown(t, mode) })
	}
}

func testShutdown(t *testing.T, mode string) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	warmup, nPosters := 100, 8
	if *long {
		warmup, nPosters = 5000, 32
	}
	kc := newKafka(t, "load")
	broker := kc.ListenAddrs()[0]
	cons := newConsumer(t)
	dlqDir := filepath.Join(t.TempDir(), "dlq")
	cfgPath := filepath.Join(t.TempDir(), "fanbridge.yaml")
	writeFile(t, cfgPath, fmt.Sprintf(shutdownConfig, cons.addr, broker, dlqDir, mode, shutdownHTTP, shutdownDrain))
	p := startService(t, ctx, cfgPath, "E2E_API_KEY="+e2eAPIKey)

	const (
		running = iota
		signalled
		shuttingDown // the service logged "shutting down"
	)
	ps := startPosters(ctx, t, nPosters, p.url("/events"), e2eAPIKey, newEnvelopes(t), signalled)
	require.NoError(t, ps.waitFor(ctx, "warm-up", func(ok int, _ map[int32]int) bool { return ok >= warmup }))

	// The consumer hangs: sync requests wait for their budget and dead-letter; async deliveries
	// pile up in the queue that shutdown must drain or dead-letter. The signal follows as soon as
	// one delivery is held, with requests in flight and (async) deliveries queued.
	release := cons.hold()
	defer release()
	select {
	case <-cons.held:
	case <-ctx.Done():
		t.Fatal("no delivery reached the held consumer")
	}
	ps.phase.Store(signalled)
	from := p.stderr.len()
	sent := time.Now()
	p.signal(t, syscall.SIGTERM)
	_, _, err := p.stderr.wait(ctx, from, func(s string) bool { _, ok := logMsg(s, "shutting down"); return ok })
	require.NoError(t, err)
	ps.phase.Store(shuttingDown)

	code, err := p.exit(ctx)
	took := time.Since(sent)
	require.NoError(t, err)
	assert.Equal(t, 0, code, "exit code")
	assert.Less(t, took, shutdownHTTP+shutdownDrain+shutdownDLQ, "shutdown took %s", took)
	attempts := ps.stop()
	release()

	_, _, err = p.stderr.wait(ctx, from, func(s string) bool {
		_, ok := logMsg(s, "fanout: closed; every accepted event delivered or dead-lettered")
		return ok
	})
	assert.NoError(t, err, "the dispatcher reports no loss")

	// Where each event is now.
	at := map[string]map[string]bool{"analytics": {}, "kafka": {}}
	for _, r := range readAll(t, ctx, []string{broker}, "load") {
		at["kafka"][r.Event.ID] = true
	}
	for _, d := range cons.deliveries() {
		at["analytics"][d.Event.ID] = true
	}
	dead := map[string]map[string]bool{"analytics": {}, "kafka": {}}
	conditions := map[string]int{}
	for _, e := range readDLQ(t, ctx, dlqDir) {
		require.Contains(t, dead, e.Sink)
		dead[e.Sink][e.Event.ID] = true
		conditions[e.Sink+"/"+string(e.Condition)]++
	}

	var ok, refused, connErr, afterStart, lost int
	for _, a := range attempts {
		switch {
		case a.Err != nil:
			connErr++
			// The phase a request starts in is read before it reaches the network, so only one that
			// ended before the signal was sent proves a failure of the running service.
			assert.GreaterOrEqual(t, a.End, int32(signalled), "%s: a request failed before shutdown: %v", a.ID, a.Err)
		case a.Status == 503:
			refused++
		case a.Status == 200:
			ok++
			assert.Less(t, a.Start, int32(shuttingDown), "%s: accepted although posted after shutdown began", a.ID)
			for sink := range at {
				if !at[sink][a.ID] && !dead[sink][a.ID] {
					lost++
					assert.Fail(t, "acknowledged event lost", "%s (phases %d-%d): neither at %s nor dead-lettered for it", a.ID, a.Start, a.End, sink)
				}
			}
		default:
			assert.Fail(t, "unexpected answer", "%s: %d %s", a.ID, a.Status, a.Body)
		}
		if a.Start == shuttingDown {
			afterStart++
		}
	}
	t.Logf("%s: %d posts: %d accepted, %d refused (503), %d connection errors, %d posted after shutdown began; "+
		"delivered: kafka %d, analytics %d; dead letters: %v; shutdown took %s",
		mode, len(attempts), ok, refused, connErr, afterStart, len(at["kafka"]), len(at["analytics"]), conditions, took.Round(time.Millisecond))
	assert.Zero(t, lost, "acknowledged events lost")
	assert.NotEmpty(t, dead["analytics"], "the held consumer's events were dead-lettered")
	assert.GreaterOrEqual(t, ok, warmup)
	assert.True(t, strings.Contains(p.stderr.String(), `"msg":"shutdown complete"`), "clean shutdown logged")
}

// TestRequestArrivingDuringShutdownIsRefused finishes a request on a connection the server
// accepted before SIGTERM, once shutdown has begun: it is never accepted. Either the connection
// is closed without an answer (net/http drops a request whose header completes during Shutdown)
// or the answer is 503 with Retry-After and Connection: close; the event is delivered nowhere.
func TestRequestArrivingDuringShutdownIsRefused(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e := newE2E(t)
	p := startService(t, ctx, e.cfgPath, e.env...)
	body, err := os.ReadFile(filepath.Join("testdata", "genesys", "v2.detail.events.conversation.customer.end.json"))
	require.NoError(t, err)

	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", p.addr)
	require.NoError(t, err)
	defer conn.Close()
	dl, _ := ctx.Deadline()
	require.NoError(t, conn.SetDeadline(dl))
	head := fmt.Sprintf("POST /events HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nX-Api-Key: %s\r\nContent-Length: %d\r\n\r\n",
		p.addr, e2eAPIKey, len(body))
	_, err = io.WriteString(conn, head[:20])
	require.NoError(t, err)
	// A whole request on a second connection: the server's accept loop takes connections in the
	// order they were made, so once it answers, the first connection is accepted too, and waits
	// for the rest of its header.
	other := &http.Client{Transport: &http.Transport{}}
	status, _, err := post(ctx, other, p.url("/nowhere"), nil, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusNotFound, status)

	p.signal(t, syscall.SIGTERM)
	_, _, err = p.stderr.wait(ctx, 0, func(s string) bool { _, ok := logMsg(s, "shutting down"); return ok })
	require.NoError(t, err)
	_, _ = io.WriteString(conn, head[20:]+string(body)) // the server may have hung up already
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Logf("connection closed without an answer: %v", err)
	} else {
		answer, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
		assert.Equal(t, "1", resp.Header.Get("Retry-After"))
		assert.True(t, resp.Close, "Connection: close")
		assert.JSONEq(t, `{"error":"shutting down, retry later"}`, string(answer))
	}

	code, err := p.exit(ctx)
	require.NoError(t, err)
	assert.Equal(t, 0, code)
	assert.Empty(t, readAll(t, ctx, e.brokers, allTopics...), "the refused event went nowhere")
}
