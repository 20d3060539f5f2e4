package grpcsink_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/fanbridge/fanbridge/retry"
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
		t.Run(tt.name, func(t *testing.T) {
			rec := newRecorder()
			s := newSink(t, startServer(t, rec, tt.server...), tt.sink...)
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
