package grpcsink_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/retry"
	"github.com/fanbridge/fanbridge/sink/grpcsink"
)

// ownService stands for a consumer that speaks its own proto (here grpc.health.v1.Health, a
// generated service that has nothing to do with fanbridge). It answers each request with the
// code named by its service field, and records what arrived.
type ownService struct {
	healthpb.UnimplementedHealthServer
	mu       sync.Mutex
	services []string
	md       []metadata.MD
	block    chan struct{}
}

var ownCodes = map[string]codes.Code{
	"ok": codes.OK, "gone": codes.NotFound, "busy": codes.Unavailable, "dup": codes.AlreadyExists,
}

func (o *ownService) Check(ctx context.Context, req *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	o.mu.Lock()
	o.services = append(o.services, req.GetService())
	o.md = append(o.md, md)
	o.mu.Unlock()
	if req.GetService() == "block" {
		select {
		case <-o.block:
		case <-ctx.Done():
		}
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	_ = grpc.SetHeader(ctx, metadata.Pairs("answered-by", "own-service"))
	if c := ownCodes[req.GetService()]; c != codes.OK {
		return nil, status.Error(c, req.GetService())
	}
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}

func (o *ownService) calls() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.services)
}

func TestAdapt(t *testing.T) {
	own := &ownService{block: make(chan struct{})}
	t.Cleanup(func() { close(own.block) })
	lis := listen(t)
	gs := grpc.NewServer()
	healthpb.RegisterHealthServer(gs, own)
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	client := healthpb.NewHealthClient(plainConn(t, lis.Addr().String()))

	convert := func(e *fanbridge.Event) (*healthpb.HealthCheckRequest, error) {
		if e.Type == "" {
			return nil, errors.New("event has no type")
		}
		return &healthpb.HealthCheckRequest{Service: e.Type}, nil
	}
	var header metadata.MD
	s, err := grpcsink.Adapt(client.Check, convert,
		grpcsink.WithCallTimeout(100*time.Millisecond), grpcsink.WithCallOptions(grpc.Header(&header)))
	require.NoError(t, err)

	t.Run("delivers with trace metadata and call options", func(t *testing.T) {
		e := sampleEvent(t)
		e.Type = "ok"
		require.NoError(t, s.Send(testContext(t), e))
		own.mu.Lock()
		md := own.md[len(own.md)-1]
		own.mu.Unlock()
		assert.Equal(t, []string{e.ID}, md.Get(grpcsink.MetadataEventID))
		assert.Equal(t, []string{e.Metadata[fanbridge.MetaTraceparent]}, md.Get(fanbridge.MetaTraceparent))
		assert.Equal(t, []string{e.Metadata[fanbridge.MetaTracestate]}, md.Get(fanbridge.MetaTracestate))
		assert.Equal(t, []string{"own-service"}, header.Get("answered-by"), "WithCallOptions reached the call")
	})

	tests := []struct {
		typ       string
		wantClass retry.Class
		wantCode  codes.Code
	}{
		{"gone", retry.ClassPermanent, codes.NotFound},
		{"busy", retry.ClassRetryable, codes.Unavailable},
		{"dup", "", codes.OK},
		{"block", retry.ClassRetryable, codes.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run("classifies "+tt.typ, func(t *testing.T) {
			err := s.Send(testContext(t), &fanbridge.Event{ID: tt.typ, Type: tt.typ})
			assert.Equal(t, tt.wantClass, retry.Classify(err), "%v", err)
			assert.Equal(t, tt.wantCode, status.Code(err))
		})
	}

	t.Run("convert error is permanent and calls nothing", func(t *testing.T) {
		before := own.calls()
		err := s.Send(testContext(t), &fanbridge.Event{ID: "no-type"})
		require.Error(t, err)
		assert.True(t, retry.IsPermanent(err))
		assert.ErrorContains(t, err, "event has no type")
		assert.Equal(t, before, own.calls())
	})

	t.Run("nil event and done context", func(t *testing.T) {
		assert.ErrorIs(t, s.Send(testContext(t), nil), grpcsink.ErrNilEvent)
		ctx, cancel := context.WithCancel(testContext(t))
		cancel()
		err := s.Send(ctx, &fanbridge.Event{ID: "x", Type: "ok"})
		assert.ErrorIs(t, err, context.Canceled)
		assert.Equal(t, retry.ClassCanceled, retry.Classify(err))
	})
}
