package grpcsink_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/metadata"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/internal/testwait"
	"github.com/fanbridge/fanbridge/sink"
	"github.com/fanbridge/fanbridge/sink/grpcsink"
)

// testTimeout bounds every test that talks to a server, so that a bug hangs nothing.
const testTimeout = 20 * time.Second

func testContext(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// recv returns the next value on ch, and fails the test when none comes within testTimeout.
func recv[T any](t testing.TB, ch <-chan T) T {
	t.Helper()
	return testwait.Recv(t, ch, testTimeout)
}

// fastReconnect shortens gRPC's connect backoff (1 s base by default) so that a restarted server
// is found again quickly.
func fastReconnect() grpc.DialOption {
	return grpc.WithConnectParams(grpc.ConnectParams{
		Backoff:           backoff.Config{BaseDelay: 5 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 50 * time.Millisecond},
		MinConnectTimeout: 5 * time.Second,
	})
}

// listen opens a TCP listener on a free loopback port.
func listen(t testing.TB) net.Listener {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	return lis
}

// serve runs a gRPC server with a grpcsink.Server for h on lis until the test ends.
func serve(t testing.TB, lis net.Listener, h sink.Sink, opts ...grpc.ServerOption) *grpc.Server {
	t.Helper()
	gs := grpc.NewServer(opts...)
	srv, err := grpcsink.NewServer(h)
	require.NoError(t, err)
	srv.Register(gs)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = gs.Serve(lis)
	}()
	t.Cleanup(func() {
		gs.Stop()
		recv(t, done)
	})
	return gs
}

// startServer serves h on a new loopback port and returns the address.
func startServer(t testing.TB, h sink.Sink, opts ...grpc.ServerOption) string {
	t.Helper()
	lis := listen(t)
	serve(t, lis, h, opts...)
	return lis.Addr().String()
}

// transports are the two ways a consumer serves gRPC, by whether it goes through ServeHTTP:
// grpc.Server.Serve, which refuses a request before any answer with a Trailers-Only response, and
// an http.Server speaking HTTP/2 without TLS that hands each request to grpc.Server.ServeHTTP (one
// port shared with HTTP handlers), which sends headers before every status, as a proxy may.
var transports = map[string]bool{"Serve": false, "ServeHTTP": true}

// serveOn serves gs on a new loopback port until the test ends, through gs.ServeHTTP when viaHTTP
// is set and gs.Serve otherwise, and returns the address.
func serveOn(t testing.TB, gs *grpc.Server, viaHTTP bool) string {
	t.Helper()
	lis := listen(t)
	done := make(chan struct{})
	if !viaHTTP {
		go func() {
			defer close(done)
			_ = gs.Serve(lis)
		}()
		t.Cleanup(func() {
			gs.Stop()
			recv(t, done)
		})
		return lis.Addr().String()
	}
	protocols := new(http.Protocols)
	protocols.SetUnencryptedHTTP2(true)
	hs := &http.Server{Handler: gs, Protocols: protocols}
	go func() {
		defer close(done)
		_ = hs.Serve(lis)
	}()
	t.Cleanup(func() {
		_ = hs.Close()
		recv(t, done)
	})
	return lis.Addr().String()
}

// startServerOn serves h as startServer does, through gs.ServeHTTP when viaHTTP is set.
func startServerOn(t testing.TB, viaHTTP bool, h sink.Sink, opts ...grpc.ServerOption) string {
	t.Helper()
	gs := grpc.NewServer(opts...)
	srv, err := grpcsink.NewServer(h)
	require.NoError(t, err)
	srv.Register(gs)
	return serveOn(t, gs, viaHTTP)
}

// newSink builds a plaintext Sink for addr that the test closes.
func newSink(t testing.TB, target string, opts ...grpcsink.Option) *grpcsink.Sink {
	t.Helper()
	opts = append([]grpcsink.Option{grpcsink.WithInsecure(), grpcsink.WithDialOptions(fastReconnect())}, opts...)
	s, err := grpcsink.New(target, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// received is one event a recorder got, with what came with the call.
type received struct {
	event    *fanbridge.Event
	md       metadata.MD
	sinkName string
}

// recorder is a consumer that keeps every event it is handed and answers with err.
type recorder struct {
	mu   sync.Mutex
	got  []received
	err  func(e *fanbridge.Event) error
	seen chan struct{}
}

func newRecorder() *recorder { return &recorder{seen: make(chan struct{}, 1024)} }

func (r *recorder) Send(ctx context.Context, e *fanbridge.Event) error {
	md, _ := metadata.FromIncomingContext(ctx)
	r.mu.Lock()
	r.got = append(r.got, received{event: e, md: md, sinkName: grpcsink.SinkName(ctx)})
	r.mu.Unlock()
	select {
	case r.seen <- struct{}{}:
	default:
	}
	if r.err != nil {
		return r.err(e)
	}
	return nil
}

func (r *recorder) events() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.got...)
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got)
}

// sampleEvent decodes the Genesys sample envelope in testdata the way an intake would.
func sampleEvent(t testing.TB) *fanbridge.Event {
	t.Helper()
	raw, err := os.ReadFile("testdata/v2.detail.events.conversation.customer.end.json")
	require.NoError(t, err)
	var env struct {
		ID         string    `json:"id"`
		DetailType string    `json:"detail-type"`
		Source     string    `json:"source"`
		Account    string    `json:"account"`
		Region     string    `json:"region"`
		Time       time.Time `json:"time"`
		Detail     struct {
			TopicName string          `json:"topicName"`
			EventBody json.RawMessage `json:"eventBody"`
			Metadata  struct {
				CorrelationID string `json:"CorrelationId"`
			} `json:"metadata"`
		} `json:"detail"`
	}
	require.NoError(t, json.Unmarshal(raw, &env))
	return &fanbridge.Event{
		ID:     env.ID,
		Type:   env.DetailType,
		Topic:  env.Detail.TopicName,
		Source: env.Source,
		Time:   env.Time,
		Data:   env.Detail.EventBody,
		Metadata: map[string]string{
			fanbridge.MetaCorrelationID: env.Detail.Metadata.CorrelationID,
			fanbridge.MetaAccount:       env.Account,
			fanbridge.MetaRegion:        env.Region,
			fanbridge.MetaFormat:        "eventbridge",
			fanbridge.MetaTraceparent:   "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
			fanbridge.MetaTracestate:    "genesys=t61rcWkgMzE",
		},
		Raw: raw,
	}
}

// assertSameEvent checks that got carries every field of want.
func assertSameEvent(t testing.TB, want, got *fanbridge.Event) {
	t.Helper()
	assert.Equal(t, want.ID, got.ID, "ID")
	assert.Equal(t, want.Type, got.Type, "Type")
	assert.Equal(t, want.Topic, got.Topic, "Topic")
	assert.Equal(t, want.Source, got.Source, "Source")
	assert.True(t, want.Time.Equal(got.Time), "Time: want %v, got %v", want.Time, got.Time)
	assert.Equal(t, string(want.Data), string(got.Data), "Data")
	assert.Equal(t, want.Metadata, got.Metadata, "Metadata")
	assert.Equal(t, want.Raw, got.Raw, "Raw")
}
