package grpcsink_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/gzip"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
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
		name    string
		server  []grpc.ServerOption
		viaHTTP bool
		sink    []grpcsink.Option
	}{
		{name: "server's MaxRecvMsgSize", server: []grpc.ServerOption{grpc.MaxRecvMsgSize(1024)}},
		// Headers come before the refusal, as before an answer: how the status was framed does
		// not decide.
		{name: "server's MaxRecvMsgSize through ServeHTTP", server: []grpc.ServerOption{grpc.MaxRecvMsgSize(1024)}, viaHTTP: true},
		// The server refuses the compressed request by its size after decompression.
		{name: "server's MaxRecvMsgSize, compressed", server: []grpc.ServerOption{grpc.MaxRecvMsgSize(1024)},
			sink: []grpcsink.Option{grpcsink.WithCallOptions(grpc.UseCompressor(gzip.Name))}},
		{name: "server's MaxRecvMsgSize, compressed, through ServeHTTP", server: []grpc.ServerOption{grpc.MaxRecvMsgSize(1024)}, viaHTTP: true,
			sink: []grpcsink.Option{grpcsink.WithCallOptions(grpc.UseCompressor(gzip.Name))}},
		{name: "client's MaxCallSendMsgSize", sink: []grpcsink.Option{grpcsink.WithCallOptions(grpc.MaxCallSendMsgSize(1024))}},
	} {
		for built, build := range sinkBuilders {
			t.Run(tt.name+"/"+built, func(t *testing.T) {
				rec := newRecorder()
				s := build(t, startServerOn(t, tt.viaHTTP, rec, tt.server...), tt.sink...)
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

// gzip sends a request it cannot shrink a few bytes larger than it is. A server's refusal of it
// for its size on the wire is the refusal of the request, permanent, also when the server's limit
// is the client's receive limit, as the client's refusal of an answer would name it.
func TestCompressedRequestRefusedAtTheClientsLimitIsPermanent(t *testing.T) {
	raw := make([]byte, 100<<10)
	_, err := rand.Read(raw) // random bytes do not compress
	require.NoError(t, err)
	e := &fanbridge.Event{ID: "big", Data: []byte(`{}`), Raw: raw}
	for built, build := range sinkBuilders {
		t.Run(built, func(t *testing.T) {
			rec := newRecorder()
			// Through ServeHTTP, which sends headers before the refusal, so that its framing does
			// not decide.
			s := build(t, startServerOn(t, true, rec, grpc.MaxRecvMsgSize(64<<10)),
				grpcsink.WithCallOptions(grpc.UseCompressor(gzip.Name), grpc.MaxCallRecvMsgSize(64<<10)))

			err := s.Send(testContext(t), e)

			require.Error(t, err)
			assert.Contains(t, err.Error(), "grpc: received message larger than max")
			assert.Equal(t, retry.ClassPermanent, retry.Classify(err), "class of %v", err)
			assert.Zero(t, rec.count(), "the consumer never saw it")
		})
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
// port, through ServeHTTP when viaHTTP is set, and returns the address.
func startLargeAnswer(t testing.TB, viaHTTP bool, h sink.Sink, extra int, opts ...grpc.ServerOption) string {
	t.Helper()
	srv, err := grpcsink.NewServer(h)
	require.NoError(t, err)
	gs := grpc.NewServer(opts...)
	fanbridgev1.RegisterEventSinkServer(gs, largeAnswer{Server: srv, extra: extra})
	return serveOn(t, gs, viaHTTP)
}

// An answer over the client's receive limit is refused by grpc-go with the message a server uses
// for a request over its limit, but the consumer took the event: it stays retryable, as a lost
// answer does, and is never dead-lettered as too large.
func TestAnswerOverTheReceiveLimitIsRetryable(t *testing.T) {
	encodings := map[string][]grpc.CallOption{
		"plain": nil,
		// The answer compresses to less than the limit and is refused after decompression.
		"compressed": {grpc.UseCompressor(gzip.Name)},
	}
	for transport, viaHTTP := range transports {
		for encoded, callOpts := range encodings {
			for built, build := range sinkBuilders {
				t.Run(transport+"/"+encoded+"/"+built, func(t *testing.T) {
					rec := newRecorder()
					s := build(t, startLargeAnswer(t, viaHTTP, rec, 128<<10),
						grpcsink.WithCallOptions(append(callOpts, grpc.MaxCallRecvMsgSize(64<<10))...))

					err := s.Send(testContext(t), &fanbridge.Event{ID: "small", Data: []byte(`{}`)})

					require.Error(t, err)
					assert.Equal(t, codes.ResourceExhausted, status.Code(err))
					assert.Contains(t, err.Error(), "larger than max")
					assert.Equal(t, retry.ClassRetryable, retry.Classify(err), "class of %v", err)
					assert.Contains(t, err.Error(), "the consumer may have the event")
					assert.True(t, sink.IsRefused(err), "a refusal the consumer's side answered, not a sign it is down: %v", err)
					assert.Equal(t, 1, rec.count(), "the consumer has the event")
				})
			}
		}
	}
}

// The client's receive limit is the last grpc.MaxCallRecvMsgSize among a call's options, as
// grpc-go applies them, those of the connection's defaults first: an answer over it is told from
// a refusal of the request by the limit the refusal names, also when an earlier option set
// another.
func TestLastReceiveLimitCounts(t *testing.T) {
	lower, limit := grpc.MaxCallRecvMsgSize(16<<10), grpc.MaxCallRecvMsgSize(64<<10)
	builds := map[string]func(t *testing.T, addr string) sink.Sink{
		"call options/New": func(t *testing.T, addr string) sink.Sink {
			return sinkBuilders["New"](t, addr, grpcsink.WithCallOptions(lower, limit))
		},
		"call options/Adapt": func(t *testing.T, addr string) sink.Sink {
			return sinkBuilders["Adapt"](t, addr, grpcsink.WithCallOptions(lower, limit))
		},
		"connection default, then a call option/New": func(t *testing.T, addr string) sink.Sink {
			return newSink(t, addr, grpcsink.WithDialOptions(grpc.WithDefaultCallOptions(lower)), grpcsink.WithCallOptions(limit))
		},
	}
	for transport, viaHTTP := range transports {
		for built, build := range builds {
			t.Run(transport+"/"+built, func(t *testing.T) {
				rec := newRecorder()
				s := build(t, startLargeAnswer(t, viaHTTP, rec, 128<<10))

				err := s.Send(testContext(t), &fanbridge.Event{ID: "small", Data: []byte(`{}`)})

				require.Error(t, err)
				assert.Contains(t, err.Error(), "grpc: received message larger than max")
				assert.Equal(t, retry.ClassRetryable, retry.Classify(err), "class of %v", err)
				assert.True(t, sink.IsRefused(err), "%v", err)
				assert.Equal(t, 1, rec.count(), "the consumer has the event")
			})
		}
	}
}

// A consumer that relays each event with a grpcsink.Sink of its own answers as that Sink
// classified the event. An answer over the relay's receive limit, sent by the next consumer after
// taking the event, is retryable there, and stays retryable for the first sender instead of
// reading as the relay's refusal of a request too large, which would dead-letter it.
func TestRelayedAnswerOverTheReceiveLimitStaysRetryable(t *testing.T) {
	for transport, viaHTTP := range transports {
		for built, build := range sinkBuilders {
			t.Run(transport+"/"+built, func(t *testing.T) {
				rec := newRecorder()
				next := build(t, startLargeAnswer(t, false, rec, 128<<10), grpcsink.WithCallOptions(grpc.MaxCallRecvMsgSize(64<<10)))

				relayErr, err := sendThroughRelay(t, viaHTTP, next, false)

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
}

// The consumer's server refuses to send an answer over its own send limit (grpc.MaxSendMsgSize)
// after the consumer took the event, and reports it to the client in the words grpc-go uses for
// the client's own refusal to send a request: it is retryable, as a lost answer is, also when the
// answer, compressed, is no larger than the request could be, so that its size cannot tell.
func TestAnswerOverTheServersSendLimitIsRetryable(t *testing.T) {
	encodings := map[string]struct {
		limit    int
		callOpts []grpc.CallOption
	}{
		"plain": {limit: 64 << 10},
		// 128 KiB of zeros compress to fewer bytes than a request of that size may take.
		"compressed": {limit: 64, callOpts: []grpc.CallOption{grpc.UseCompressor(gzip.Name)}},
	}
	for transport, viaHTTP := range transports {
		for encoded, enc := range encodings {
			for built, build := range sinkBuilders {
				t.Run(transport+"/"+encoded+"/"+built, func(t *testing.T) {
					rec := newRecorder()
					s := build(t, startLargeAnswer(t, viaHTTP, rec, 128<<10, grpc.MaxSendMsgSize(enc.limit)),
						grpcsink.WithCallOptions(enc.callOpts...))
					e := &fanbridge.Event{ID: "small", Data: []byte(`{}`)}

					err := s.Send(testContext(t), e)

					require.Error(t, err)
					assert.Equal(t, codes.ResourceExhausted, status.Code(err))
					var size, limit int
					_, scanErr := fmt.Sscanf(statusMessage(t, err), "trying to send message larger than max (%d vs. %d)", &size, &limit)
					require.NoError(t, scanErr, "grpc-go's send refusal: %v", err)
					assert.Equal(t, enc.limit, limit, "the server's limit")
					if enc.callOpts != nil {
						requestSize := proto.Size(&fanbridgev1.DeliverRequest{Event: grpcsink.ToProto(e)})
						require.LessOrEqual(t, size, requestSize+256, "an answer no larger than the request could be")
					}
					assert.Equal(t, retry.ClassRetryable, retry.Classify(err), "class of %v", err)
					assert.Contains(t, err.Error(), "the consumer may have the event")
					assert.True(t, sink.IsRefused(err), "a refusal the consumer's side answered, not a sign it is down: %v", err)
					assert.Equal(t, 1, rec.count(), "the consumer has the event")
				})
			}
		}
	}
}

// A relay whose next consumer's server refuses to send its answer, after taking the event, gets a
// retryable error from its grpcsink.Sink, and the first sender reads it as retryable too.
func TestRelayedAnswerOverTheSendLimitStaysRetryable(t *testing.T) {
	for transport, viaHTTP := range transports {
		for built, build := range sinkBuilders {
			t.Run(transport+"/"+built, func(t *testing.T) {
				rec := newRecorder()
				next := build(t, startLargeAnswer(t, false, rec, 128<<10, grpc.MaxSendMsgSize(64<<10)))

				relayErr, err := sendThroughRelay(t, viaHTTP, next, false)

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
}

// The client's own send limit refuses the request before anything is sent, wherever the limit
// was set: on the call, as the connection's default, or in a service config; and whatever codec
// the connection encodes the request with, which may make it larger than its encoded size.
func TestClientsSendLimitIsPermanentWhereverSet(t *testing.T) {
	const serviceConfig = `{"methodConfig": [{"name": [{"service": "fanbridge.v1.EventSink"}], "maxRequestMessageBytes": 1024}]}`
	for _, tt := range []struct {
		name string
		dial []grpc.DialOption
		opts []grpcsink.Option
	}{
		{name: "WithCallOptions", opts: []grpcsink.Option{grpcsink.WithCallOptions(grpc.MaxCallSendMsgSize(1024))}},
		{name: "default call options", dial: []grpc.DialOption{grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(1024))}},
		{name: "service config", dial: []grpc.DialOption{grpc.WithDefaultServiceConfig(serviceConfig)}},
		{name: "default call options with a codec", dial: []grpc.DialOption{
			grpc.WithDefaultCallOptions(grpc.CallContentSubtype(jsonCodec{}.Name()), grpc.MaxCallSendMsgSize(1024)),
		}},
	} {
		builders := map[string]func(t *testing.T, addr string) sink.Sink{
			"New": func(t *testing.T, addr string) sink.Sink {
				return newSink(t, addr, append([]grpcsink.Option{grpcsink.WithDialOptions(tt.dial...)}, tt.opts...)...)
			},
			"Adapt": func(t *testing.T, addr string) sink.Sink {
				conn, err := grpc.NewClient(addr, append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, tt.dial...)...)
				require.NoError(t, err)
				t.Cleanup(func() { _ = conn.Close() })
				s, err := grpcsink.Adapt(fanbridgev1.NewEventSinkClient(conn).Deliver, func(e *fanbridge.Event) (*fanbridgev1.DeliverRequest, error) {
					return &fanbridgev1.DeliverRequest{Event: grpcsink.ToProto(e)}, nil
				}, tt.opts...)
				require.NoError(t, err)
				return s
			},
		}
		for built, build := range builders {
			t.Run(tt.name+"/"+built, func(t *testing.T) {
				rec := newRecorder()
				s := build(t, startServer(t, rec))

				err := s.Send(testContext(t), &fanbridge.Event{ID: "big", Data: []byte(`{}`), Raw: make([]byte, 20000)})

				require.Error(t, err)
				assert.Equal(t, codes.ResourceExhausted, status.Code(err))
				assert.Contains(t, err.Error(), "trying to send message larger than max")
				assert.Equal(t, retry.ClassPermanent, retry.Classify(err), "class of %v", err)
				assert.Zero(t, rec.count(), "the consumer never saw it")
			})
		}
	}
}

// A server that answers from the request headers alone (a rate limiter in grpc.InTapHandle, an
// unknown method) may send its status while the client is still encoding a request over the
// client's own send limit, and put a gRPC content-type in the call's metadata before the call
// ends. The client's refusal, of a request that never left, names the client's limit, and stays
// permanent however the status raced it.
func TestClientsSendRefusalWhileTheServerAnswersFromTheHeaders(t *testing.T) {
	rateLimited := func(ctx context.Context, _ *tap.Info) (context.Context, error) {
		return ctx, status.Error(codes.Unavailable, "rate limited")
	}
	servers := map[string]func(t *testing.T) string{
		// grpc.Server.ServeHTTP runs no tap handle.
		"rate limiter/Serve": func(t *testing.T) string {
			return startServerOn(t, false, newRecorder(), grpc.InTapHandle(rateLimited))
		},
		"unknown method/Serve": func(t *testing.T) string {
			return serveOn(t, grpc.NewServer(), false)
		},
		"unknown method/ServeHTTP": func(t *testing.T) string {
			return serveOn(t, grpc.NewServer(), true)
		},
	}
	limits := map[string]struct {
		opts  []grpcsink.Option
		build map[string]func(t *testing.T, addr string, opts ...grpcsink.Option) sink.Sink
	}{
		"WithCallOptions": {opts: []grpcsink.Option{grpcsink.WithCallOptions(grpc.MaxCallSendMsgSize(1024))}, build: sinkBuilders},
		// New's interceptor sees the connection's default call options.
		"default call options": {
			opts:  []grpcsink.Option{grpcsink.WithDialOptions(grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(1024)))},
			build: map[string]func(t *testing.T, addr string, opts ...grpcsink.Option) sink.Sink{"New": sinkBuilders["New"]},
		},
	}
	big := &fanbridge.Event{ID: "big", Data: []byte(`{}`), Raw: make([]byte, 8<<20)}
	for served, start := range servers {
		for limited, limit := range limits {
			for built, build := range limit.build {
				t.Run(served+"/"+limited+"/"+built, func(t *testing.T) {
					s := build(t, start(t), limit.opts...)
					ctx := testContext(t)
					// Connected first, so that the server's status can come while the request
					// is encoded.
					require.Error(t, s.Send(ctx, &fanbridge.Event{ID: "small", Data: []byte(`{}`)}))

					// Each attempt races the server's status against the client's refusal.
					for range 8 {
						err := s.Send(ctx, big)

						require.Error(t, err)
						assert.Equal(t, codes.ResourceExhausted, status.Code(err))
						assert.Contains(t, err.Error(), "trying to send message larger than max")
						assert.NotContains(t, err.Error(), "the consumer may have the event")
						assert.Equal(t, retry.ClassPermanent, retry.Classify(err), "class of %v", err)
					}
				})
			}
		}
	}
}

// A relay that refuses to send a larger request with its grpcsink.Sink's own send limit answers
// with that refusal, which the first sender, though the status came from a server, reads as a
// permanent refusal of a request: the Server adds a detail grpc-go's refusal of an answer lacks.
func TestRelayedSendRefusalOfTheRequestStaysPermanent(t *testing.T) {
	for transport, viaHTTP := range transports {
		for built, build := range sinkBuilders {
			t.Run(transport+"/"+built, func(t *testing.T) {
				rec := newRecorder()
				next := build(t, startServer(t, rec), grpcsink.WithCallOptions(grpc.MaxCallSendMsgSize(1024)))

				relayErr, err := sendThroughRelay(t, viaHTTP, next, true)

				require.Error(t, relayErr)
				require.Equal(t, retry.ClassPermanent, retry.Classify(relayErr), "the relay's own class, of %v", relayErr)
				require.Error(t, err)
				assert.Equal(t, codes.ResourceExhausted, status.Code(err))
				assert.Contains(t, err.Error(), "trying to send message larger than max")
				assert.Equal(t, retry.ClassPermanent, retry.Classify(err), "class of %v", err)
				assert.Zero(t, rec.count(), "the next consumer never saw it")
			})
		}
	}
}

// A relay that makes the event larger before handing it on (it adds the raw envelope it keeps,
// say) is refused by the next consumer's MaxRecvMsgSize: permanent there, and permanent for the
// first sender too, though the message refused, the relay's request, is larger than the first
// sender's request could be. Through ServeHTTP, nothing in the framing shows that the relay sent
// the status, so the Server marks it with a detail.
func TestRelayedRefusalOfTheRequestStaysPermanent(t *testing.T) {
	for transport, viaHTTP := range transports {
		for built, build := range sinkBuilders {
			t.Run(transport+"/"+built, func(t *testing.T) {
				rec := newRecorder()
				next := build(t, startServer(t, rec, grpc.MaxRecvMsgSize(1024)))

				relayErr, err := sendThroughRelay(t, viaHTTP, next, true)

				require.Error(t, relayErr)
				require.Equal(t, retry.ClassPermanent, retry.Classify(relayErr), "the relay's own class, of %v", relayErr)
				require.Error(t, err)
				assert.Equal(t, codes.ResourceExhausted, status.Code(err))
				assert.Contains(t, err.Error(), "larger than max")
				assert.Equal(t, retry.ClassPermanent, retry.Classify(err), "class of %v", err)
				assert.Zero(t, rec.count(), "the next consumer never saw it")
			})
		}
	}
}

// A handler that calls a gRPC service of its own with a plain generated client, and returns the
// error as it came, passes on that service's refusal of the handler's request for size: the
// request is as large on every attempt, so it is permanent for the first sender too, whether
// the handler's status comes Trailers-Only or after headers.
func TestHandlersOwnSizeRefusalStaysPermanent(t *testing.T) {
	for transport, viaHTTP := range transports {
		for built, build := range sinkBuilders {
			t.Run(transport+"/"+built, func(t *testing.T) {
				rec := newRecorder()
				client := fanbridgev1.NewEventSinkClient(plainConn(t, startServer(t, rec, grpc.MaxRecvMsgSize(1024))))
				called := make(chan error, 1)
				handler := sink.Func(func(ctx context.Context, e *fanbridge.Event) error {
					larger := grpcsink.ToProto(&fanbridge.Event{ID: e.ID, Raw: make([]byte, 4096)})
					_, err := client.Deliver(ctx, &fanbridgev1.DeliverRequest{Event: larger})
					called <- err
					return err
				})
				s := build(t, startServerOn(t, viaHTTP, handler))

				err := s.Send(testContext(t), &fanbridge.Event{ID: "small", Data: []byte(`{}`)})

				require.Contains(t, status.Convert(recv(t, called)).Message(), "larger than max", "the service refused the handler's request")
				require.Error(t, err)
				assert.Equal(t, codes.ResourceExhausted, status.Code(err))
				assert.Contains(t, err.Error(), "larger than max")
				assert.Equal(t, retry.ClassPermanent, retry.Classify(err), "class of %v", err)
				assert.NotContains(t, err.Error(), "the consumer may have the event")
				assert.Zero(t, rec.count(), "the service never saw it")
			})
		}
	}
}

// statusMessage returns the message of the gRPC status err wraps, which status.Convert would
// give as the whole wrapping text.
func statusMessage(t testing.TB, err error) string {
	t.Helper()
	var gs interface{ GRPCStatus() *status.Status }
	require.ErrorAs(t, err, &gs)
	return gs.GRPCStatus().Message()
}

// answerStatus is a consumer that answers every request with st, as a server that refuses the
// request does, with no grpcsink.Server in between.
type answerStatus struct {
	fanbridgev1.UnimplementedEventSinkServer
	st *status.Status
}

func (a answerStatus) Deliver(context.Context, *fanbridgev1.DeliverRequest) (*fanbridgev1.DeliverResponse, error) {
	return nil, a.st.Err()
}

// grpc-go refuses an answer over the client's receive limit, after the consumer took the event,
// with the message a server refuses a request over its own with. Send and Adapt take it for the
// answer's only when the limit is the client's (64 KiB here) and the message refused cannot be
// the request, whatever the framing; anything else is the server's refusal of the request,
// permanent. Each status here comes from a server, through ServeHTTP unless said otherwise, so
// that the numbers decide.
func TestReceiveRefusalIsTheAnswersOnlyWhenItCannotBeTheRequest(t *testing.T) {
	small := &fanbridge.Event{ID: "small", Data: []byte(`{}`)}
	large := sampleEvent(t)
	sizeOf := func(e *fanbridge.Event) int {
		return proto.Size(&fanbridgev1.DeliverRequest{Event: grpcsink.ToProto(e)})
	}
	require.Greater(t, sizeOf(large), 2048)
	// sized returns an event whose request encodes to exactly n bytes.
	sized := func(n int) *fanbridge.Event {
		e := &fanbridge.Event{ID: "sized", Data: []byte(`{}`)}
		for k := n; k > 0 && sizeOf(e) != n; k-- {
			e.Raw = make([]byte, k)
		}
		require.Equal(t, n, sizeOf(e))
		return e
	}
	mid, atLimit := sized(60000), sized(64<<10)
	refusal := func(size, limit int) string {
		return fmt.Sprintf("grpc: received message larger than max (%d vs. %d)", size, limit)
	}
	for _, tt := range []struct {
		name      string
		event     *fanbridge.Event
		msg       string
		detail    bool
		trailers  bool // through Serve, where the server refuses with a Trailers-Only response
		opts      []grpcsink.Option
		wantClass retry.Class
	}{
		{name: "the request's size", event: small, msg: refusal(sizeOf(small), sizeOf(small)-1), wantClass: retry.ClassPermanent},
		{name: "what compression may make of the request", event: small, msg: refusal(sizeOf(small)+200, 64), wantClass: retry.ClassPermanent},
		// A quarter and 256 bytes more than the request is what a compressor may send for it.
		{name: "what compression may make of the request, refused at the client's limit", event: mid,
			msg: refusal(60000+60000/4+256, 64<<10), wantClass: retry.ClassPermanent},
		{name: "more than compression may make of the request", event: mid, msg: refusal(60000+60000/4+257, 64<<10),
			wantClass: retry.ClassRetryable},
		{name: "larger than the request can be", event: small, msg: refusal(128<<10, 64<<10), wantClass: retry.ClassRetryable},
		{name: "larger than the request can be, over a limit not the client's", event: small, msg: refusal(128<<10, 32<<10),
			wantClass: retry.ClassPermanent},
		{name: "over what the machine can address", event: small,
			msg: "grpc: received message larger than max length allowed on current machine (4294967295 vs. 2147483647)", wantClass: retry.ClassRetryable},
		{name: "smaller than the request", event: large, msg: refusal(2048, 1024), wantClass: retry.ClassPermanent},
		{name: "after decompression, a limit the request is within", event: small,
			msg: "grpc: received message after decompression larger than max 65536", wantClass: retry.ClassRetryable},
		{name: "after decompression, a limit the request is over", event: large,
			msg: "grpc: received message after decompression larger than max 1024", wantClass: retry.ClassPermanent},
		{name: "after decompression, a limit the request is exactly at", event: atLimit,
			msg: "grpc: received message after decompression larger than max 65536", wantClass: retry.ClassRetryable},
		{name: "after decompression, a limit the request is within but not the client's", event: small,
			msg: "grpc: received message after decompression larger than max 32768", wantClass: retry.ClassPermanent},
		{name: "after decompression with sizes, a limit the request is within", event: small,
			msg: "grpc: message after decompression larger than max (65537 vs. 65536)", wantClass: retry.ClassRetryable},
		{name: "after decompression with sizes, a limit the request is over", event: large,
			msg: "grpc: message after decompression larger than max (1025 vs. 1024)", wantClass: retry.ClassPermanent},
		{name: "sizes not in grpc-go's form", event: small, msg: "grpc: received message larger than max (lots vs. 64)", wantClass: retry.ClassPermanent},
		{name: "no sizes", event: small, msg: "grpc: received message larger than max", wantClass: retry.ClassPermanent},
		{name: "with a detail, which grpc-go's own refusal never has", event: small, msg: refusal(128<<10, 64<<10), detail: true,
			wantClass: retry.ClassPermanent},
		{name: "in a Trailers-Only response", event: small, msg: refusal(128<<10, 64<<10), trailers: true, wantClass: retry.ClassPermanent},
		{name: "through a codec of the caller's, whose size is not known", event: small, msg: refusal(128<<10, 64<<10),
			opts: []grpcsink.Option{grpcsink.WithCallOptions(grpc.ForceCodecV2(encoding.GetCodecV2("proto")))}, wantClass: retry.ClassPermanent},
		{name: "through the protobuf codec named", event: small, msg: refusal(128<<10, 64<<10),
			opts: []grpcsink.Option{grpcsink.WithCallOptions(grpc.CallContentSubtype("proto"))}, wantClass: retry.ClassRetryable},
	} {
		for built, build := range sinkBuilders {
			t.Run(tt.name+"/"+built, func(t *testing.T) {
				st := status.New(codes.ResourceExhausted, tt.msg)
				if tt.detail {
					var err error
					st, err = st.WithDetails(&errdetails.ErrorInfo{Domain: "example.com", Reason: "TOO_LARGE"})
					require.NoError(t, err)
				}
				gs := grpc.NewServer()
				fanbridgev1.RegisterEventSinkServer(gs, answerStatus{st: st})
				opts := append([]grpcsink.Option{grpcsink.WithCallOptions(grpc.MaxCallRecvMsgSize(64 << 10))}, tt.opts...)
				s := build(t, serveOn(t, gs, !tt.trailers), opts...)

				err := s.Send(testContext(t), tt.event)

				require.Error(t, err)
				assert.Equal(t, codes.ResourceExhausted, status.Code(err))
				assert.Contains(t, err.Error(), tt.msg)
				assert.Equal(t, tt.wantClass, retry.Classify(err), "class of %v", err)
				assert.Equal(t, tt.wantClass == retry.ClassRetryable, strings.Contains(err.Error(), "the consumer may have the event"), "%v", err)
			})
		}
	}
}

// A consumer's server in another language refuses a request over its receive limit in its own
// words, and the answer on the wire is that status: ResourceExhausted with the text below, no
// details. Each is the server's refusal of the request, permanent, even when the limit it names is
// the client's and the size more than the request can be: the client is grpc-go, whose own
// refusal of an answer never reads so. Any other ResourceExhausted is throttling, retryable.
func TestOtherImplementationsSizeRefusalsArePermanent(t *testing.T) {
	small := &fanbridge.Event{ID: "small", Data: []byte(`{}`)}
	for _, tt := range []struct {
		name      string
		msg       string
		wantClass retry.Class
	}{
		{"grpc-js", "Received message larger than max (102418 vs 65536)", retry.ClassPermanent},
		{"gRPC core and newer grpc-js", "Received message larger than max (102418 vs. 65536)", retry.ClassPermanent},
		{"grpc-js after decompression", "Received message that decompresses to a size larger than 65536", retry.ClassPermanent},
		{"grpc-java", "gRPC message exceeds maximum size 4194304: 5000000", retry.ClassPermanent},
		{"grpc-java after decompression", "Decompressed gRPC message exceeds maximum size 4194304", retry.ClassPermanent},
		{"grpc-dotnet", "Received message exceeds the maximum configured message size.", retry.ClassPermanent},
		{"with a grpc: prefix", "grpc: Received message larger than max (102418 vs 65536)", retry.ClassPermanent},
		{"grpc-go's words in capitals", "GRPC: RECEIVED MESSAGE LARGER THAN MAX (102418 VS. 65536)", retry.ClassPermanent},
		{"throttled", "quota exceeded", retry.ClassRetryable},
		{"a server's own message mentioning a maximum size", "tenant backlog exceeds maximum size 100", retry.ClassRetryable},
	} {
		t.Run(tt.name+"/Classify", func(t *testing.T) {
			err := grpcsink.Classify(status.Error(codes.ResourceExhausted, tt.msg))
			assert.Equal(t, tt.wantClass, retry.Classify(err), "class of %v", err)
		})
		for transport, viaHTTP := range transports {
			for built, build := range sinkBuilders {
				t.Run(tt.name+"/"+transport+"/"+built, func(t *testing.T) {
					gs := grpc.NewServer()
					fanbridgev1.RegisterEventSinkServer(gs, answerStatus{st: status.New(codes.ResourceExhausted, tt.msg)})
					s := build(t, serveOn(t, gs, viaHTTP), grpcsink.WithCallOptions(grpc.MaxCallRecvMsgSize(64<<10)))

					err := s.Send(testContext(t), small)

					require.Error(t, err)
					assert.Equal(t, codes.ResourceExhausted, status.Code(err))
					assert.Contains(t, err.Error(), tt.msg)
					assert.Equal(t, tt.wantClass, retry.Classify(err), "class of %v", err)
					assert.False(t, sink.IsRefused(err), "%v", err)
				})
			}
		}
	}
}

// A send refusal that a server sent is that server's refusal to send its answer, whatever size
// it names, in a Trailers-Only response as after headers: the client's own arises before anything
// comes back. One with status details relays a refusal of a request, as a Server does.
func TestSendRefusalFromAServerIsTheAnswers(t *testing.T) {
	small := &fanbridge.Event{ID: "small", Data: []byte(`{}`)}
	requestSize := proto.Size(&fanbridgev1.DeliverRequest{Event: grpcsink.ToProto(small)})
	msg := fmt.Sprintf("trying to send message larger than max (%d vs. %d)", requestSize, requestSize-1)
	for _, tt := range []struct {
		name      string
		detail    bool
		wantClass retry.Class
	}{
		{name: "the request's size", wantClass: retry.ClassRetryable},
		{name: "with a detail", detail: true, wantClass: retry.ClassPermanent},
	} {
		for transport, viaHTTP := range transports {
			for built, build := range sinkBuilders {
				t.Run(tt.name+"/"+transport+"/"+built, func(t *testing.T) {
					st := status.New(codes.ResourceExhausted, msg)
					if tt.detail {
						var err error
						st, err = st.WithDetails(&errdetails.ErrorInfo{Domain: "example.com", Reason: "TOO_LARGE"})
						require.NoError(t, err)
					}
					gs := grpc.NewServer()
					fanbridgev1.RegisterEventSinkServer(gs, answerStatus{st: st})
					s := build(t, serveOn(t, gs, viaHTTP))

					err := s.Send(testContext(t), small)

					require.Error(t, err)
					assert.Equal(t, codes.ResourceExhausted, status.Code(err))
					assert.Contains(t, err.Error(), msg)
					assert.Equal(t, tt.wantClass, retry.Classify(err), "class of %v", err)
					assert.Equal(t, tt.wantClass == retry.ClassRetryable, strings.Contains(err.Error(), "the consumer may have the event"), "%v", err)
				})
			}
		}
	}
}

// jsonCodec encodes messages as protobuf JSON, which makes a request larger than its encoded size
// (proto.Size): bytes fields take a third more as base64.
type jsonCodec struct{}

func (jsonCodec) Marshal(v any) ([]byte, error) { return protojson.Marshal(v.(proto.Message)) }
func (jsonCodec) Unmarshal(data []byte, v any) error {
	return protojson.Unmarshal(data, v.(proto.Message))
}
func (jsonCodec) Name() string { return "fanbridge-test-json" }

func init() { encoding.RegisterCodec(jsonCodec{}) }

// A codec or a receive limit set as a connection's default call options is seen on the connection
// New makes, where an interceptor sees every option of a call; on a connection of the caller's it
// is not, and a receive refusal is the client's own only when it names the limit the Sink's call
// options give, or grpc-go's default. So a server's refusal of a request that a codec made larger
// than its encoded size stays permanent however the codec was given, unless the server's limit is
// the client's too (both 4 MiB by default) on a connection of the caller's; and a receive limit
// set on a connection of the caller's makes the client's refusal of an answer read as a refusal
// of the request: the event is dead-lettered, and a redrive brings the consumer a duplicate.
func TestOptionsOfTheConnection(t *testing.T) {
	codec := grpc.CallContentSubtype(jsonCodec{}.Name())
	limit := grpc.MaxCallRecvMsgSize(64 << 10)
	big := &fanbridge.Event{ID: "big", Data: []byte(`{}`), Raw: make([]byte, 20000)}
	// Within 4 MiB as protobuf, over it as JSON, by more than compression could add.
	huge := &fanbridge.Event{ID: "huge", Data: []byte(`{}`), Raw: make([]byte, 3500<<10)}
	small := &fanbridge.Event{ID: "small", Data: []byte(`{}`)}
	for _, tt := range []struct {
		name string
		// newSink builds the sink under test for addr, with opt as the connection's default call
		// option.
		newSink   func(t *testing.T, addr string, opt grpc.CallOption) sink.Sink
		refusal   func(t *testing.T, viaHTTP bool) (addr string, e *fanbridge.Event, consumer *recorder)
		opt       grpc.CallOption
		wantClass retry.Class
		// trailersOnlyClass, when set, is the class through Serve, whose Trailers-Only refusal
		// shows that the server sent it.
		trailersOnlyClass retry.Class
	}{
		{name: "codec/New", newSink: newWithDefault, refusal: requestRefusal(big, 1024), opt: codec, wantClass: retry.ClassPermanent},
		{name: "codec/NewFromConn", newSink: fromConnWithDefault, refusal: requestRefusal(big, 1024), opt: codec, wantClass: retry.ClassPermanent},
		{name: "codec/Adapt", newSink: adaptWithDefault, refusal: requestRefusal(big, 1024), opt: codec, wantClass: retry.ClassPermanent},
		{name: "codec, at the client's limit/New", newSink: newWithDefault, refusal: requestRefusal(huge, 4<<20), opt: codec,
			wantClass: retry.ClassPermanent},
		{name: "codec, at the client's limit, not seen/NewFromConn", newSink: fromConnWithDefault, refusal: requestRefusal(huge, 4<<20), opt: codec,
			wantClass: retry.ClassRetryable, trailersOnlyClass: retry.ClassPermanent},
		{name: "receive limit/New", newSink: newWithDefault, refusal: answerRefusal(small), opt: limit, wantClass: retry.ClassRetryable},
		{name: "receive limit, not seen/NewFromConn", newSink: fromConnWithDefault, refusal: answerRefusal(small), opt: limit,
			wantClass: retry.ClassPermanent},
		{name: "receive limit, not seen/Adapt", newSink: adaptWithDefault, refusal: answerRefusal(small), opt: limit,
			wantClass: retry.ClassPermanent},
	} {
		for transport, viaHTTP := range transports {
			t.Run(tt.name+"/"+transport, func(t *testing.T) {
				addr, e, rec := tt.refusal(t, viaHTTP)
				s := tt.newSink(t, addr, tt.opt)

				err := s.Send(testContext(t), e)

				require.Error(t, err)
				assert.Equal(t, codes.ResourceExhausted, status.Code(err))
				assert.Contains(t, err.Error(), "grpc: received message larger than max")
				wantClass := tt.wantClass
				if !viaHTTP && tt.trailersOnlyClass != "" {
					wantClass = tt.trailersOnlyClass
				}
				assert.Equal(t, wantClass, retry.Classify(err), "class of %v", err)
				wantTaken := 0
				if e == small {
					wantTaken = 1
				}
				assert.Equal(t, wantTaken, rec.count(), "events the consumer took")
			})
		}
	}
}

// requestRefusal starts a consumer with a MaxRecvMsgSize of limit, which e exceeds.
func requestRefusal(e *fanbridge.Event, limit int) func(t *testing.T, viaHTTP bool) (string, *fanbridge.Event, *recorder) {
	return func(t *testing.T, viaHTTP bool) (string, *fanbridge.Event, *recorder) {
		t.Helper()
		rec := newRecorder()
		return startServerOn(t, viaHTTP, rec, grpc.MaxRecvMsgSize(limit)), e, rec
	}
}

// answerRefusal starts a consumer that takes e and answers with 128 KiB.
func answerRefusal(e *fanbridge.Event) func(t *testing.T, viaHTTP bool) (string, *fanbridge.Event, *recorder) {
	return func(t *testing.T, viaHTTP bool) (string, *fanbridge.Event, *recorder) {
		t.Helper()
		rec := newRecorder()
		return startLargeAnswer(t, viaHTTP, rec, 128<<10), e, rec
	}
}

func newWithDefault(t *testing.T, addr string, opt grpc.CallOption) sink.Sink {
	t.Helper()
	return newSink(t, addr, grpcsink.WithDialOptions(grpc.WithDefaultCallOptions(opt)))
}

func fromConnWithDefault(t *testing.T, addr string, opt grpc.CallOption) sink.Sink {
	t.Helper()
	s, err := grpcsink.NewFromConn(connWithDefault(t, addr, opt))
	require.NoError(t, err)
	return s
}

func adaptWithDefault(t *testing.T, addr string, opt grpc.CallOption) sink.Sink {
	t.Helper()
	client := fanbridgev1.NewEventSinkClient(connWithDefault(t, addr, opt))
	s, err := grpcsink.Adapt(client.Deliver, func(e *fanbridge.Event) (*fanbridgev1.DeliverRequest, error) {
		return &fanbridgev1.DeliverRequest{Event: grpcsink.ToProto(e)}, nil
	})
	require.NoError(t, err)
	return s
}

// connWithDefault is a plaintext connection to addr, closed when the test ends, with opt as a
// default call option.
func connWithDefault(t *testing.T, addr string, opt grpc.CallOption) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithDefaultCallOptions(opt))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// sendThroughRelay sends a small event, over the transport viaHTTP names, to a consumer that
// hands it on with next (made larger first when enlarge is set, as a relay that adds the raw
// envelope it keeps would), and returns the relay's error from next and the first sender's.
func sendThroughRelay(t *testing.T, viaHTTP bool, next sink.Sink, enlarge bool) (relayErr, err error) {
	t.Helper()
	relayed := make(chan error, 1)
	relay := sink.Func(func(ctx context.Context, e *fanbridge.Event) error {
		if enlarge {
			e.Raw = make([]byte, 4096)
		}
		err := next.Send(ctx, e)
		relayed <- err
		return err
	})
	s := newSink(t, startServerOn(t, viaHTTP, relay))
	err = s.Send(testContext(t), &fanbridge.Event{ID: "small", Data: []byte(`{}`)})
	return recv(t, relayed), err
}
