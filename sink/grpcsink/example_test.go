package grpcsink_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/retry"
	"github.com/fanbridge/fanbridge/sink"
	"github.com/fanbridge/fanbridge/sink/grpcsink"
)

// exampleConsumer serves handler as an EventSink on a loopback port and returns its address and
// a function that stops it.
func exampleConsumer(handler sink.Sink) (string, func()) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	srv, err := grpcsink.NewServer(handler)
	if err != nil {
		panic(err)
	}
	gs := grpc.NewServer()
	srv.Register(gs)
	go func() { _ = gs.Serve(lis) }()
	return lis.Addr().String(), gs.Stop
}

func ExampleNew() {
	addr, stop := exampleConsumer(sink.Func(func(ctx context.Context, e *fanbridge.Event) error {
		fmt.Printf("consumer: %s %s, trace %s\n", e.ID, e.Type, e.Meta(fanbridge.MetaTraceparent))
		return nil
	}))
	defer stop()

	// One sink per consumer service. Plaintext only because the consumer is on this host; the
	// default is TLS with the system roots. A comma-separated list of addresses is balanced
	// round-robin.
	s, err := grpcsink.New(addr, grpcsink.WithInsecure(), grpcsink.WithCallTimeout(2*time.Second))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()

	err = s.Send(context.Background(), &fanbridge.Event{
		ID:       "58fb5dac-f077-4eec-a25f-c638dbdd4368",
		Type:     "v2.detail.events.conversation.{id}.customer.end",
		Data:     []byte(`{"conversationId":"2f7bf00a-0fc2-4d6a-9b56-92238191433e"}`),
		Metadata: map[string]string{fanbridge.MetaTraceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
	})
	fmt.Println("delivered:", err == nil)
	// Output:
	// consumer: 58fb5dac-f077-4eec-a25f-c638dbdd4368 v2.detail.events.conversation.{id}.customer.end, trace 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01
	// delivered: true
}

func ExampleNewFromConn() {
	addr, stop := exampleConsumer(sink.Func(func(ctx context.Context, e *fanbridge.Event) error {
		fmt.Printf("consumer: %s from sink %q\n", e.ID, grpcsink.SinkName(ctx))
		return nil
	}))
	defer stop()

	// A connection the application already has, shared by two sinks; Close leaves it open.
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.Close()
	presence, _ := grpcsink.NewFromConn(conn, grpcsink.WithName("presence"), grpcsink.WithoutRaw())
	conversations, _ := grpcsink.NewFromConn(conn, grpcsink.WithName("conversations"))
	defer presence.Close()
	defer conversations.Close()

	ctx := context.Background()
	fmt.Println(presence.Send(ctx, &fanbridge.Event{ID: "p-1", Type: "v2.users.{id}.presence"}))
	fmt.Println(conversations.Send(ctx, &fanbridge.Event{ID: "c-1", Type: "v2.detail.events.conversation.{id}.acw"}))
	// Output:
	// consumer: p-1 from sink "presence"
	// <nil>
	// consumer: c-1 from sink "conversations"
	// <nil>
}

func ExampleNewServer() {
	var mu sync.Mutex // the handler is called concurrently
	seen := map[string]bool{}
	handler := sink.Func(func(ctx context.Context, e *fanbridge.Event) error {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case seen[e.ID]:
			return fanbridge.ErrDuplicate // answered AlreadyExists: the sender counts it delivered
		case len(e.Data) == 0:
			return retry.Permanent(errors.New("event has no body")) // FailedPrecondition
		}
		seen[e.ID] = true
		return nil
	})
	addr, stop := exampleConsumer(handler)
	defer stop()

	s, _ := grpcsink.New(addr, grpcsink.WithInsecure())
	defer s.Close()
	ctx := context.Background()
	e := &fanbridge.Event{ID: "e-1", Data: []byte(`{}`)}
	fmt.Println("first:", s.Send(ctx, e))
	fmt.Println("again:", s.Send(ctx, e))
	err := s.Send(ctx, &fanbridge.Event{ID: "e-2"})
	fmt.Println("empty:", status.Code(err), retry.Classify(err))
	// Output:
	// first: <nil>
	// again: <nil>
	// empty: FailedPrecondition permanent
}

// healthChecker stands for a service with its own proto: grpc.health.v1.Health.
type healthChecker struct {
	healthpb.UnimplementedHealthServer
}

func (healthChecker) Check(ctx context.Context, req *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	fmt.Printf("service asked about %q\n", req.GetService())
	if req.GetService() == "" {
		return nil, status.Error(codes.InvalidArgument, "no service named")
	}
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}

func ExampleAdapt() {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	gs := grpc.NewServer()
	healthpb.RegisterHealthServer(gs, healthChecker{})
	go func() { _ = gs.Serve(lis) }()
	defer gs.Stop()

	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.Close()
	client := healthpb.NewHealthClient(conn)

	// The generated method and a conversion are all it takes; deadline, trace metadata and error
	// classification are the same as New's.
	s, err := grpcsink.Adapt(client.Check, func(e *fanbridge.Event) (*healthpb.HealthCheckRequest, error) {
		return &healthpb.HealthCheckRequest{Service: e.Topic}, nil
	}, grpcsink.WithCallTimeout(time.Second))
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx := context.Background()
	fmt.Println(s.Send(ctx, &fanbridge.Event{ID: "1", Topic: "v2.users.8f3c.presence"}))
	err = s.Send(ctx, &fanbridge.Event{ID: "2"})
	fmt.Println("permanent:", retry.IsPermanent(err))
	// Output:
	// service asked about "v2.users.8f3c.presence"
	// <nil>
	// service asked about ""
	// permanent: true
}

func ExampleClassify() {
	for _, err := range []error{
		status.Error(codes.Unavailable, "restarting"),
		status.Error(codes.PermissionDenied, "no access"),
		status.Error(codes.AlreadyExists, "have it"),
	} {
		result := "delivered"
		if c := grpcsink.Classify(err); c != nil {
			result = string(retry.Classify(c))
		}
		fmt.Printf("%-16v -> %s\n", status.Code(err), result)
	}
	// Output:
	// Unavailable      -> retryable
	// PermissionDenied -> permanent
	// AlreadyExists    -> delivered
}
