package grpcsink_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/fanbridge/fanbridge"
	fanbridgev1 "github.com/fanbridge/fanbridge/proto/fanbridge/v1"
	"github.com/fanbridge/fanbridge/retry"
	"github.com/fanbridge/fanbridge/sink"
	"github.com/fanbridge/fanbridge/sink/grpcsink"
	"github.com/fanbridge/fanbridge/sink/sinktest"
)

// consumer is the destination of the conformance suite: a gRPC service built with
// grpcsink.NewServer that stores what it is handed and can be told to fail or hang.
type consumer struct {
	mu     sync.Mutex
	events []*fanbridge.Event
	fail   error         // returned instead of storing, when set
	hang   chan struct{} // blocks deliveries until closed, when set
	asked  int           // deliveries requested, stored or not
}

func (c *consumer) Send(ctx context.Context, e *fanbridge.Event) error {
	c.mu.Lock()
	fail, hang := c.fail, c.hang
	c.asked++
	c.mu.Unlock()
	if hang != nil {
		select {
		case <-hang:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if fail != nil {
		return fail
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.events = append(c.events, e)
	return nil
}

func (c *consumer) received(context.Context) ([]*fanbridge.Event, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*fanbridge.Event(nil), c.events...), nil
}

func (c *consumer) attempts() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.asked
}

func (c *consumer) failWith(err error) func() (heal func()) {
	return func() func() {
		c.mu.Lock()
		c.fail = err
		c.mu.Unlock()
		return func() {
			c.mu.Lock()
			c.fail = nil
			c.mu.Unlock()
		}
	}
}

func (c *consumer) stall() (release func()) {
	hang := make(chan struct{})
	c.mu.Lock()
	c.hang = hang
	c.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			c.mu.Lock()
			c.hang = nil
			c.mu.Unlock()
			close(hang)
		})
	}
}

// instance serves a fresh consumer and wraps the sink that send builds for its address.
func instance(tb testing.TB, build func(tb testing.TB, addr string) sink.Sink) sinktest.Instance {
	c := &consumer{}
	addr := startServer(tb, c)
	return sinktest.Instance{
		Sink:          build(tb, addr),
		Received:      c.received,
		FailTransient: c.failWith(errors.New("consumer: database unavailable")),
		FailPermanent: c.failWith(retry.Permanent(errors.New("consumer: event rejected"))),
		Hang:          c.stall,
		Attempts:      c.attempts,
	}
}

var everyFeature = sinktest.Features{
	ReadBack: true, Metadata: true, Raw: true, Ordered: true,
	TransientFailure: true, PermanentFailure: true, Hang: true, Close: true,
}

func plainConn(tb testing.TB, addr string) *grpc.ClientConn {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()), fastReconnect())
	require.NoError(tb, err)
	tb.Cleanup(func() { _ = conn.Close() })
	return conn
}

func TestConformance(t *testing.T) {
	t.Run("New", func(t *testing.T) {
		sinktest.Run(t, sinktest.Harness{
			Features: everyFeature,
			Open: func(tb testing.TB) sinktest.Instance {
				return instance(tb, func(tb testing.TB, addr string) sink.Sink {
					s, err := grpcsink.New(addr, grpcsink.WithInsecure(), grpcsink.WithDialOptions(fastReconnect()))
					require.NoError(tb, err)
					return s
				})
			},
		})
	})

	t.Run("NewFromConn", func(t *testing.T) {
		sinktest.Run(t, sinktest.Harness{
			Features: everyFeature,
			Open: func(tb testing.TB) sinktest.Instance {
				return instance(tb, func(tb testing.TB, addr string) sink.Sink {
					s, err := grpcsink.NewFromConn(plainConn(tb, addr))
					require.NoError(tb, err)
					return s
				})
			},
		})
	})

	t.Run("Adapt", func(t *testing.T) {
		noClose := everyFeature
		noClose.Close = false // an adapter has no connection of its own to close
		sinktest.Run(t, sinktest.Harness{
			Features: noClose,
			Open: func(tb testing.TB) sinktest.Instance {
				return instance(tb, func(tb testing.TB, addr string) sink.Sink {
					client := fanbridgev1.NewEventSinkClient(plainConn(tb, addr))
					s, err := grpcsink.Adapt(client.Deliver, func(e *fanbridge.Event) (*fanbridgev1.DeliverRequest, error) {
						return &fanbridgev1.DeliverRequest{Event: grpcsink.ToProto(e)}, nil
					})
					require.NoError(tb, err)
					return s
				})
			},
		})
	})
}

func BenchmarkConformance(b *testing.B) {
	sinktest.RunBenchmarks(b, sinktest.Harness{
		Open: func(tb testing.TB) sinktest.Instance {
			return instance(tb, func(tb testing.TB, addr string) sink.Sink {
				s, err := grpcsink.New(addr, grpcsink.WithInsecure())
				require.NoError(tb, err)
				return s
			})
		},
	})
}
