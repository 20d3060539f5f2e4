package grpcsink_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/dlq"
	"github.com/fanbridge/fanbridge/dlq/dlqtest"
	"github.com/fanbridge/fanbridge/fanout"
	"github.com/fanbridge/fanbridge/retry"
	"github.com/fanbridge/fanbridge/sink/grpcsink"
)

// sizeLimitedProxy serves h behind a body size limit, as nginx's client_max_body_size or an
// ingress's proxy-body-size does: a request whose body is over limit gets a plain HTTP 413 and
// never reaches the gRPC server. It returns the address.
func sizeLimitedProxy(t *testing.T, h *recorder, limit int) string {
	t.Helper()
	gs := grpc.NewServer()
	srv, err := grpcsink.NewServer(h)
	require.NoError(t, err)
	srv.Register(gs)
	lis := listen(t)
	protocols := new(http.Protocols)
	protocols.SetUnencryptedHTTP2(true)
	hs := &http.Server{Protocols: protocols, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, int64(limit)+1))
		if err != nil {
			return
		}
		if len(body) > limit {
			http.Error(w, "413 Request Entity Too Large", http.StatusRequestEntityTooLarge)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		gs.ServeHTTP(w, r)
	})}
	done := make(chan struct{})
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

// A body size limit in front of a healthy consumer refuses an oversized event on every attempt:
// the refusal is permanent, so the event is dead-lettered at once, and it does not open the
// breaker and dead-letter the valid events behind it.
func TestProxySizeLimitIsPermanent(t *testing.T) {
	ctx := testContext(t)
	const limit = 64 << 10
	rec := newRecorder()
	s := newSink(t, sizeLimitedProxy(t, rec, limit))
	big := func(id string) *fanbridge.Event {
		return &fanbridge.Event{ID: id, Data: []byte(`"` + strings.Repeat("x", 2*limit) + `"`)}
	}

	err := s.Send(ctx, big("big"))
	require.Error(t, err)
	assert.Equal(t, codes.Unknown, status.Code(err))
	assert.Contains(t, err.Error(), "413")
	assert.Equal(t, retry.ClassPermanent, retry.Classify(err), "%v", err)
	require.NoError(t, s.Send(ctx, &fanbridge.Event{ID: "small", Data: []byte(`{}`)}))

	queue := dlqtest.NewMemory()
	d, err := fanout.New(fanout.Config{
		Sinks: []fanout.SinkConfig{{Name: "consumer", Sink: s,
			Retry:   retry.Policy{MaxAttempts: 3, InitialInterval: time.Millisecond, MaxInterval: 2 * time.Millisecond},
			Breaker: fanout.Breaker{Failures: 2, Cooldown: time.Minute}}},
		Routes: []fanout.Route{{Name: "all", Filter: fanout.All, Sinks: []string{"consumer"}}},
		DLQ:    queue,
	}, fanout.WithSinkClosing(false))
	require.NoError(t, err)
	t.Cleanup(func() { _ = d.Close(context.Background()) })
	for i := range 3 {
		require.NoError(t, d.Dispatch(ctx, big(fmt.Sprint("big-", i))))
	}
	require.NoError(t, d.Dispatch(ctx, &fanbridge.Event{ID: "small-after", Data: []byte(`{}`)}))

	conditions := map[string]dlq.Condition{}
	require.NoError(t, queue.List(ctx, func(e dlq.Entry) error {
		conditions[e.Event.ID] = e.Condition
		return nil
	}))
	assert.Equal(t, map[string]dlq.Condition{
		"big-0": dlq.ConditionPermanent, "big-1": dlq.ConditionPermanent, "big-2": dlq.ConditionPermanent,
	}, conditions)
	assert.Equal(t, 2, rec.count(), "the valid events reach the consumer")
	assert.Equal(t, "closed", d.Stats()[0].Breaker)
}

// The rule reads grpc-go's report of a plain HTTP 413 or 431 alone: other statuses a proxy
// answers keep their code's class, and a handler's own Unknown that mentions 413 is retryable.
func TestProxySizeRefusalRule(t *testing.T) {
	for _, tt := range []struct {
		code codes.Code
		msg  string
		want retry.Class
	}{
		{codes.Unknown, "unexpected HTTP status code received from server: 413 (Request Entity Too Large)", retry.ClassPermanent},
		{codes.Unknown, "unexpected HTTP status code received from server: 413 (Request Entity Too Large); transport: received unexpected content-type \"text/html\"", retry.ClassPermanent},
		{codes.Unknown, "unexpected HTTP status code received from server: 431 (Request Header Fields Too Large)", retry.ClassPermanent},
		{codes.Unknown, "unexpected HTTP status code received from server: 500 (Internal Server Error)", retry.ClassRetryable},
		{codes.Unknown, "unexpected HTTP status code received from server: 4130 (x)", retry.ClassRetryable},
		{codes.Unavailable, "unexpected HTTP status code received from server: 429 (Too Many Requests)", retry.ClassRetryable},
		{codes.Unknown, "upstream said 413", retry.ClassRetryable},
		{codes.Internal, "unexpected HTTP status code received from server: 413 (Request Entity Too Large)", retry.ClassRetryable},
	} {
		err := grpcsink.Classify(fmt.Errorf("call: %w", status.Error(tt.code, tt.msg)))
		assert.Equal(t, tt.want, retry.Classify(err), "%s %q", tt.code, tt.msg)
	}
}
