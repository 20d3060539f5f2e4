package service

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/internal/testwait"
	"github.com/fanbridge/fanbridge/sink"
	"github.com/fanbridge/fanbridge/sink/grpcsink"
	"github.com/fanbridge/fanbridge/sink/kafkasink"
)

// heldHealth answers health checks once proceed is closed, and says when one has arrived.
type heldHealth struct {
	healthpb.UnimplementedHealthServer
	arrived chan struct{}
	proceed chan struct{}
}

func (h heldHealth) Check(ctx context.Context, _ *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	select {
	case h.arrived <- struct{}{}:
	default:
	}
	select {
	case <-h.proceed:
		return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// A reload that rebuilds a gRPC sink must not fail a readiness check that is probing through
// the old sink's connections: they close only once no check uses them.
func TestReadyzDuringAReloadThatRebuildsASink(t *testing.T) {
	health := heldHealth{arrived: make(chan struct{}, 1), proceed: make(chan struct{})}
	consumer, err := grpcsink.NewServer(sink.Func(func(context.Context, *fanbridge.Event) error { return nil }))
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	gs := grpc.NewServer()
	consumer.Register(gs)
	healthpb.RegisterHealthServer(gs, health)
	go func() { _ = gs.Serve(ln) }()
	t.Cleanup(gs.Stop)

	configWith := func(callTimeout string) []byte {
		return fmt.Appendf(nil, `listen: {address: "127.0.0.1:0"}
intake:
  - path: /events
    insecure_no_auth: true
sinks:
  - name: consumer
    grpc: {targets: [%q], insecure: true, call_timeout: %s}
routes:
  - {name: everything, all: true, sinks: [consumer]}
health: {cache: 1ms, probe_timeout: 20s}
`, ln.Addr().String(), callTimeout)
	}
	s, path := newTestService(t, configWith("5s"))

	answered := checkReadiness(s)
	testwait.Recv(t, health.arrived, 10*time.Second) // the check is probing the sink

	// A changed call timeout rebuilds the sink and its probe.
	require.NoError(t, os.WriteFile(path, configWith("6s"), 0o600))
	reloaded := reloadUntilProbesSwapped(t, s)
	close(health.proceed)
	rec := testwait.Recv(t, answered, 10*time.Second)
	require.Equal(t, http.StatusOK, rec.Code, "a healthy sink reported unready during a reload: %s", rec.Body)
	require.NoError(t, testwait.Recv(t, reloaded, 10*time.Second))
}

// The same with a Kafka sink, whose client the Dispatcher closes on its own once a reload
// retired the sink and its work drained: the probe pings through a client of its own, which
// closes only once no check uses it.
func TestReadyzDuringAReloadThatRebuildsAKafkaSink(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "t"))
	require.NoError(t, err)
	t.Cleanup(c.Close)
	// Once armed, the next ping (a metadata request for no topic) is held until proceed closes.
	var armed atomic.Bool
	arrived := make(chan struct{}, 1)
	proceed := make(chan struct{})
	c.ControlKey(int16(kmsg.Metadata), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		m := req.(*kmsg.MetadataRequest)
		if m.Topics != nil && len(m.Topics) == 0 && armed.CompareAndSwap(true, false) {
			arrived <- struct{}{}
			c.SleepControl(func() { <-proceed })
		}
		return nil, nil, false
	})
	configWith := func(linger string) []byte {
		return fmt.Appendf(nil, `listen: {address: "127.0.0.1:0"}
intake:
  - path: /events
    insecure_no_auth: true
sinks:
  - name: k
    kafka: {brokers: [%q], topic: t, linger: %s}
routes:
  - {name: everything, all: true, sinks: [k]}
health: {cache: 1ms, probe_timeout: 20s}
`, c.ListenAddrs()[0], linger)
	}
	s, path := newTestService(t, configWith("0s"))
	s.mu.Lock()
	oldSink := s.sinks["k"].sink.(*kafkasink.Sink)
	oldProbe := s.sinks["k"].probe
	s.mu.Unlock()

	armed.Store(true)
	answered := checkReadiness(s)
	testwait.Recv(t, arrived, 10*time.Second) // the check is pinging the broker

	// A changed linger rebuilds the sink and its probe.
	require.NoError(t, os.WriteFile(path, configWith("1ms"), 0o600))
	reloaded := reloadUntilProbesSwapped(t, s)
	// The Dispatcher closes the retired, idle sink in the background and says nothing when it
	// has: wait for its client to be closed (a ping fails, with the broker up).
	require.Eventually(t, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		return oldSink.Client().Ping(ctx) != nil
	}, 10*time.Second, 5*time.Millisecond, "the Dispatcher never closed the retired sink")

	close(proceed)
	rec := testwait.Recv(t, answered, 10*time.Second)
	require.Equal(t, http.StatusOK, rec.Code, "a healthy Kafka sink reported unready during a reload: %s", rec.Body)
	require.NoError(t, testwait.Recv(t, reloaded, 10*time.Second))

	// The old probe's client is closed too, now that no check uses it: nothing is left open.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.Error(t, oldProbe(ctx), "the retired probe's client is still open")
	s.mu.Lock()
	newProbe := s.sinks["k"].probe
	s.mu.Unlock()
	require.NoError(t, newProbe(ctx))
}

// checkReadiness runs one /readyz check in the background and hands over its answer.
func checkReadiness(s *Service) <-chan *httptest.ResponseRecorder {
	answered := make(chan *httptest.ResponseRecorder, 1)
	go func() {
		rec := httptest.NewRecorder()
		s.ready.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		answered <- rec
	}()
	return answered
}

// reloadUntilProbesSwapped reloads s from its file in the background, returns once the new
// probes are in place, and hands over the reload's result.
func reloadUntilProbesSwapped(t *testing.T, s *Service) <-chan error {
	t.Helper()
	gen := s.ready.gen.Load()
	reloaded := make(chan error, 1)
	go func() { reloaded <- s.ReloadFile() }()
	deadline := time.Now().Add(10 * time.Second)
	for s.ready.gen.Load() == gen {
		require.True(t, time.Now().Before(deadline), "the reload never swapped the probes")
		runtime.Gosched()
	}
	return reloaded
}

// A sink may be named dlq: /readyz and the readiness logs tell it from the dead-letter queue,
// whichever of the two is down, and the queue answering its probe does not log that sink as
// ready again while it is down.
func TestReadinessTellsASinkNamedDLQFromTheDeadLetterQueue(t *testing.T) {
	unready := func(t *testing.T, s *Service) map[string]string {
		t.Helper()
		s.ready.gen.Add(1) // a fresh check, not the cached answer
		rec := testwait.Recv(t, checkReadiness(s), 20*time.Second)
		require.Equal(t, http.StatusServiceUnavailable, rec.Code, "%s", rec.Body)
		var body struct{ Unready map[string]string }
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
		return body.Unready
	}

	t.Run("the sink is down", func(t *testing.T) {
		s, _, logs := newLoggedService(t, fmt.Appendf(nil, `listen: {address: "127.0.0.1:0"}
intake: [{path: /events, insecure_no_auth: true}]
sinks: [{name: dlq, grpc: {targets: ["127.0.0.1:1"], insecure: true}}]
routes: [{name: everything, all: true, sinks: [dlq]}]
dlq: {file: {dir: %q}}
health: {probe_timeout: 10s}
`, t.TempDir()))
		for range 2 {
			require.Equal(t, map[string]string{"dlq": unavailable}, unready(t, s))
		}
		require.Contains(t, logs.String(), `sink=dlq err=`)
		require.NotContains(t, logs.String(), "ready again", "the sink is still down")
	})

	t.Run("the queue is down", func(t *testing.T) {
		sinkCluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "t"))
		require.NoError(t, err)
		t.Cleanup(sinkCluster.Close)
		dlqCluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "dead"))
		require.NoError(t, err)
		t.Cleanup(dlqCluster.Close)
		s, _, logs := newLoggedService(t, fmt.Appendf(nil, `listen: {address: "127.0.0.1:0"}
intake: [{path: /events, insecure_no_auth: true}]
sinks: [{name: dlq, kafka: {brokers: [%q], topic: t}}]
routes: [{name: everything, all: true, sinks: [dlq]}]
dlq: {kafka: {brokers: [%q], topic: dead}}
health: {probe_timeout: 2s}
`, sinkCluster.ListenAddrs()[0], dlqCluster.ListenAddrs()[0]))
		dlqCluster.Close()
		require.Equal(t, map[string]string{dlqProbe: unavailable}, unready(t, s))
		require.Contains(t, logs.String(), `sink="dead-letter queue" err=`)
		require.NotContains(t, logs.String(), "sink=dlq", "the sink is up")
	})
}
