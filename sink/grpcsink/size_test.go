package grpcsink_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/fanbridge/fanbridge"
	fanbridgev1 "github.com/fanbridge/fanbridge/proto/fanbridge/v1"
	"github.com/fanbridge/fanbridge/retry"
	"github.com/fanbridge/fanbridge/sink"
	"github.com/fanbridge/fanbridge/sink/grpcsink"
)

// An event over a message size limit is as large on every attempt: retrying it, or redriving it
// from the dead-letter queue, only fails again.
func TestMessageOverTheSizeLimitIsPermanent(t *testing.T) {
	for _, tt := range []struct {
		name   string
		server []grpc.ServerOption
		sink   []grpcsink.Option
	}{
		{name: "server's MaxRecvMsgSize", server: []grpc.ServerOption{grpc.MaxRecvMsgSize(1024)}},
		{name: "client's MaxCallSendMsgSize", sink: []grpcsink.Option{grpcsink.WithCallOptions(grpc.MaxCallSendMsgSize(1024))}},
	} {
		for built, build := range sinkBuilders {
			t.Run(tt.name+"/"+built, func(t *testing.T) {
				rec := newRecorder()
				s := build(t, startServer(t, rec, tt.server...), tt.sink...)
				e := sampleEvent(t)
				require.Greater(t, len(e.Raw), 1024, "the sample is over the limit")

				err := s.Send(testContext(t), e)

				require.Error(t, err)
				assert.Equal(t, codes.ResourceExhausted, status.Code(err))
				assert.Contains(t, err.Error(), "larger than max")
				assert.Equal(t, retry.ClassPermanent, retry.Classify(err), "class of %v", err)
				assert.Zero(t, rec.count(), "the consumer never saw it")

				small := sampleEvent(t)
				small.Raw, small.Data = nil, []byte(`{}`)
				require.NoError(t, s.Send(testContext(t), small), "a smaller event still goes through")
			})
		}
	}
}

func TestClassifyResourceExhausted(t *testing.T) {
	for _, tt := range []struct {
		name      string
		msg       string
		retryInfo bool
		want      retry.Class
		hinted    bool
	}{
		{"server's receive limit", "grpc: received message larger than max (4096 vs. 1024)", false, retry.ClassPermanent, false},
		{"client's send limit", "trying to send message larger than max (4096 vs. 1024)", false, retry.ClassPermanent, false},
		{"after decompression", "grpc: received message after decompression larger than max 1024", false, retry.ClassPermanent, false},
		{"decompressed message", "grpc: message after decompression larger than max (4096 vs. 1024)", false, retry.ClassPermanent, false},
		{"throttled", "quota exceeded", false, retry.ClassRetryable, false},
		{"a server's own message mentioning a maximum", "tenant backlog larger than max", false, retry.ClassRetryable, false},
		{"size limit with RetryInfo", "grpc: received message larger than max (4096 vs. 1024)", true, retry.ClassRetryable, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			st := status.New(codes.ResourceExhausted, tt.msg)
			if tt.retryInfo {
				var err error
				st, err = st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(time.Second)})
				require.NoError(t, err)
			}
			err := grpcsink.Classify(st.Err())
			assert.Equal(t, tt.want, retry.Classify(err))
			_, hinted := retry.RetryAfter(err)
			assert.Equal(t, tt.hinted, hinted)
		})
	}
	t.Run("another code saying larger than max", func(t *testing.T) {
		err := grpcsink.Classify(status.Error(codes.Unavailable, "larger than max"))
		assert.Equal(t, retry.ClassRetryable, retry.Classify(err))
	})
}

// sinkBuilders build a sink for a consumer at addr in the two ways that make the call
// themselves: New, and Adapt over the generated client of a connection of the test's.
var sinkBuilders = map[string]func(t *testing.T, addr string, opts ...grpcsink.Option) sink.Sink{
	"New": func(t *testing.T, addr string, opts ...grpcsink.Option) sink.Sink {
		return newSink(t, addr, opts...)
	},
	"Adapt": func(t *testing.T, addr string, opts ...grpcsink.Option) sink.Sink {
		client := fanbridgev1.NewEventSinkClient(plainConn(t, addr))
		s, err := grpcsink.Adapt(client.Deliver, func(e *fanbridge.Event) (*fanbridgev1.DeliverRequest, error) {
			return &fanbridgev1.DeliverRequest{Event: grpcsink.ToProto(e)}, nil
		}, opts...)
		require.NoError(t, err)
		return s
	},
}

// largeAnswer is a consumer that takes each event and answers OK with a response carrying extra
// bytes in a field this version of the proto does not know, as a newer consumer's may.
type largeAnswer struct {
	*grpcsink.Server
	extra int
}

func (l largeAnswer) Deliver(ctx context.Context, req *fanbridgev1.DeliverRequest) (*fanbridgev1.DeliverResponse, error) {
	resp, err := l.Server.Deliver(ctx, req)
	if err != nil {
		return nil, err
	}
	unknown := protowire.AppendTag(nil, 15, protowire.BytesType)
	resp.ProtoReflect().SetUnknown(protowire.AppendBytes(unknown, make([]byte, l.extra)))
	return resp, nil
}

// startLargeAnswer serves a largeAnswer consumer that hands each event to h, on a new loopback
// port, and returns the address.
func startLargeAnswer(t testing.TB, h sink.Sink, extra int) string {
	t.Helper()
	srv, err := grpcsink.NewServer(h)
	require.NoError(t, err)
	lis := listen(t)
	gs := grpc.NewServer()
	fanbridgev1.RegisterEventSinkServer(gs, largeAnswer{Server: srv, extra: extra})
	done := make(chan struct{})
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

// An answer over the client's receive limit is refused by grpc-go with the message a server uses
// for a request over its limit, but the consumer took the event: it stays retryable, as a lost
// answer does, and is never dead-lettered as too large.
func TestAnswerOverTheReceiveLimitIsRetryable(t *testing.T) {
	for name, build := range sinkBuilders {
		t.Run(name, func(t *testing.T) {
			rec := newRecorder()
			s := build(t, startLargeAnswer(t, rec, 128<<10), grpcsink.WithCallOptions(grpc.MaxCallRecvMsgSize(64<<10)))

			err := s.Send(testContext(t), &fanbridge.Event{ID: "small", Data: []byte(`{}`)})

			require.Error(t, err)
			assert.Equal(t, codes.ResourceExhausted, status.Code(err))
			assert.Contains(t, err.Error(), "larger than max")
			assert.Equal(t, retry.ClassRetryable, retry.Classify(err), "class of %v", err)
			assert.Contains(t, err.Error(), "the consumer may have the event")
			assert.Equal(t, 1, rec.count(), "the consumer has the event")
		})
	}
}

// A consumer that relays each event with a grpcsink.Sink of its own answers as that Sink
// classified the event. An answer over the relay's receive limit, sent by the next consumer after
// taking the event, is retryable there, and stays retryable for the first sender instead of
// reading as the relay's refusal of a request too large, which would dead-letter it.
func TestRelayedAnswerOverTheReceiveLimitStaysRetryable(t *testing.T) {
	for name, build := range sinkBuilders {
		t.Run(name, func(t *testing.T) {
			rec := newRecorder()
			next := build(t, startLargeAnswer(t, rec, 128<<10), grpcsink.WithCallOptions(grpc.MaxCallRecvMsgSize(64<<10)))
			relayed := make(chan error, 1)
			relay := sink.Func(func(ctx context.Context, e *fanbridge.Event) error {
				err := next.Send(ctx, e)
				relayed <- err
				return err
			})
			s := newSink(t, startServer(t, relay))

			err := s.Send(testContext(t), &fanbridge.Event{ID: "small", Data: []byte(`{}`)})

			relayErr := recv(t, relayed)
			require.Error(t, relayErr)
			require.Equal(t, retry.ClassRetryable, retry.Classify(relayErr), "the relay's own class, of %v", relayErr)
			require.Error(t, err)
			assert.Equal(t, codes.ResourceExhausted, status.Code(err))
			assert.Equal(t, retry.ClassRetryable, retry.Classify(err), "class of %v", err)
			assert.Contains(t, err.Error(), "the consumer may have the event")
			assert.Equal(t, 1, rec.count(), "the next consumer has the event")
		})
	}
}
