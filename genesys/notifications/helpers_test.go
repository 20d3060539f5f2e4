package notifications_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/eventbridge"
	"github.com/fanbridge/fanbridge/genesys"
	"github.com/fanbridge/fanbridge/genesys/genesystest"
	"github.com/fanbridge/fanbridge/genesys/notifications"
	"github.com/fanbridge/fanbridge/retry"
)

const presence = "v2.users.e40f28ea-fa86-493f-a5b8-d559c8533c96.presence"

func userTopic(i int) string {
	return fmt.Sprintf("v2.users.00000000-0000-4000-8000-%012d.presence", i)
}

// recorder is a Dispatcher that records the "seq" of every event body it receives.
type recorder struct {
	mu     sync.Mutex
	seqs   []int64
	events []*fanbridge.Event
	update chan struct{} // closed and replaced on every event
}

func newRecorder() *recorder { return &recorder{update: make(chan struct{})} }

func (r *recorder) Dispatch(_ context.Context, e *fanbridge.Event) error {
	var body struct {
		Seq int64 `json:"seq"`
	}
	_ = json.Unmarshal(e.Data, &body)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seqs = append(r.seqs, body.Seq)
	r.events = append(r.events, e)
	close(r.update)
	r.update = make(chan struct{})
	return nil
}

// waitCount blocks until n events were recorded.
func (r *recorder) waitCount(t *testing.T, ctx context.Context, n int) {
	t.Helper()
	for {
		r.mu.Lock()
		got, ch := len(r.seqs), r.update
		r.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-ch:
		case <-ctx.Done():
			t.Fatalf("only %d of %d events dispatched: %v", got, n, ctx.Err())
		}
	}
}

func (r *recorder) snapshot() []int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int64(nil), r.seqs...)
}

// harness runs a Source against a fake Genesys Cloud.
type harness struct {
	srv    *genesystest.Server
	client *genesys.Client
	rec    *recorder
	reader *sdkmetric.ManualReader
	src    *notifications.Source
	runErr chan error
	cancel context.CancelFunc
}

// fastReconnect keeps reconnection waits short in tests.
var fastReconnect = retry.Policy{InitialInterval: 5 * time.Millisecond, MaxInterval: 50 * time.Millisecond, MaxAttempts: -1}

func newHarness(t *testing.T, topics []string, srvOpts []genesystest.Option, opts ...notifications.Option) *harness {
	t.Helper()
	return newHarnessWith(t, nil, topics, srvOpts, opts...)
}

// newHarnessWith is newHarness with the dispatcher d; nil means the harness' recorder.
func newHarnessWith(t *testing.T, d eventbridge.Dispatcher, topics []string, srvOpts []genesystest.Option, opts ...notifications.Option) *harness {
	t.Helper()
	return buildHarness(t, d, nil, topics, srvOpts, opts...)
}

// newHarnessVia is newHarness with the client's API requests passing through a proxy in front of
// the fake, which hands each answer to rewrite before the client sees it; the sockets connect to
// the fake directly.
func newHarnessVia(t *testing.T, rewrite func(*http.Response) error, topics []string, srvOpts []genesystest.Option, opts ...notifications.Option) *harness {
	t.Helper()
	return buildHarness(t, nil, rewrite, topics, srvOpts, opts...)
}

func buildHarness(t *testing.T, d eventbridge.Dispatcher, rewrite func(*http.Response) error, topics []string, srvOpts []genesystest.Option, opts ...notifications.Option) *harness {
	t.Helper()
	h := &harness{rec: newRecorder(), reader: sdkmetric.NewManualReader(), runErr: make(chan error, 1)}
	h.srv = genesystest.NewServer(append([]genesystest.Option{genesystest.WithHeartbeatInterval(100 * time.Millisecond)}, srvOpts...)...)
	t.Cleanup(h.srv.Close)
	api := h.srv.URL
	if rewrite != nil {
		target, err := url.Parse(h.srv.URL)
		require.NoError(t, err)
		proxy := httptest.NewServer(&httputil.ReverseProxy{
			Rewrite:        func(r *httputil.ProxyRequest) { r.SetURL(target) },
			ModifyResponse: rewrite,
		})
		t.Cleanup(proxy.Close)
		api = proxy.URL
	}
	var err error
	h.client, err = genesys.NewClient(genesys.USEast1, genesystest.DefaultClientID, genesystest.DefaultClientSecret,
		genesys.WithBaseURL(api), genesys.WithTokenURL(h.srv.TokenURL()),
		genesys.WithRetryPolicy(retry.Policy{InitialInterval: time.Millisecond, MaxInterval: 5 * time.Millisecond}))
	require.NoError(t, err)
	all := append([]notifications.Option{
		notifications.WithReconnectPolicy(fastReconnect),
		notifications.WithHeartbeatTimeout(5 * time.Second),
		notifications.WithMeterProvider(sdkmetric.NewMeterProvider(sdkmetric.WithReader(h.reader))),
	}, opts...)
	if d == nil {
		d = h.rec
	}
	h.src, err = notifications.New(h.client, topics, d, all...)
	require.NoError(t, err)
	return h
}

func (h *harness) start(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	h.cancel = cancel
	runCtx, stop := context.WithCancel(ctx)
	go func() { h.runErr <- h.src.Run(runCtx) }()
	t.Cleanup(func() {
		stop()
		select {
		case <-h.runErr:
		case <-time.After(20 * time.Second):
			t.Error("Run did not return after its context ended")
		}
		cancel()
	})
	return ctx
}

// counter returns the sum of the named counter's points whose attribute key has value ("" for
// all points).
func (h *harness) counter(t *testing.T, name, key, value string) int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	require.NoError(t, h.reader.Collect(context.Background(), &rm))
	var total int64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			assert.NotEmpty(t, m.Unit, "%s names no unit", name)
			sum, ok := m.Data.(metricdata.Sum[int64])
			require.True(t, ok, "%s is not an int64 sum", name)
			for _, p := range sum.DataPoints {
				if v, ok := p.Attributes.Value(attribute.Key(key)); key == "" || (ok && v.AsString() == value) {
					total += p.Value
				}
			}
		}
	}
	return total
}

// waitCounter polls a metric until it reaches at least n. Metrics have no change notification, so
// the tests poll them, as they do the fake's request log (waitRequests).
func (h *harness) waitCounter(t *testing.T, ctx context.Context, name, key, value string, n int64) {
	t.Helper()
	for {
		if h.counter(t, name, key, value) >= n {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s{%s=%s} stayed below %d (%d)", name, key, value, n, h.counter(t, name, key, value))
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// waitRequests polls the fake's request log until n requests of method to a path starting with
// prefix have been answered.
func waitRequests(t *testing.T, h *harness, ctx context.Context, method, prefix string, n int) {
	t.Helper()
	// Answered ones: the fake logs a request when it arrives, before it has done anything.
	answered := func() int {
		k := 0
		for _, r := range h.srv.Requests() {
			if r.Method == method && strings.HasPrefix(r.Path, prefix) && r.Status != 0 {
				k++
			}
		}
		return k
	}
	for answered() < n {
		select {
		case <-ctx.Done():
			t.Fatalf("only %d of %d %s %s requests answered", answered(), n, method, prefix)
		case <-time.After(5 * time.Millisecond):
		}
	}
}
