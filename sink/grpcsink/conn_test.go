package grpcsink_test

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/retry"
	"github.com/fanbridge/fanbridge/sink"
	"github.com/fanbridge/fanbridge/sink/grpcsink"
)

func TestServerDownThenUp(t *testing.T) {
	ctx := testContext(t)
	rec := newRecorder()
	lis := listen(t)
	addr := lis.Addr().String()
	first := serve(t, lis, rec)
	s := newSink(t, addr)
	require.NoError(t, s.Send(ctx, &fanbridge.Event{ID: "before"}))

	first.Stop()
	err := s.Send(ctx, &fanbridge.Event{ID: "while-down"})
	require.Error(t, err)
	assert.Equal(t, retry.ClassRetryable, retry.Classify(err), "a server that is down is worth retrying: %v", err)
	assert.Equal(t, codes.Unavailable, status.Code(err))

	// The same address comes back (another process could grab the port in between, but nothing
	// on this host listens on random high ports for long enough to matter).
	lis2, err := net.Listen("tcp", addr)
	require.NoError(t, err)
	serve(t, lis2, rec)

	// The dispatcher's Retrier is what waits between attempts; here it is told to try quickly.
	r, err := retry.New(retry.Policy{InitialInterval: 5 * time.Millisecond, MaxInterval: 50 * time.Millisecond, MaxAttempts: -1})
	require.NoError(t, err)
	err = r.Do(ctx, func(ctx context.Context) error { return s.Send(ctx, &fanbridge.Event{ID: "after"}) })
	require.NoError(t, err, "the sink reconnects to the restarted server")

	var ids []string
	for _, got := range rec.events() {
		ids = append(ids, got.event.ID)
	}
	assert.Equal(t, []string{"before", "after"}, ids)
}

func TestCallDeadline(t *testing.T) {
	entered := make(chan struct{}, 8)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	blocker := sink.Func(func(ctx context.Context, e *fanbridge.Event) error {
		entered <- struct{}{}
		select {
		case <-release:
		case <-ctx.Done(): // the client's deadline travels to the server
		}
		return ctx.Err()
	})
	addr := startServer(t, blocker)

	t.Run("call timeout", func(t *testing.T) {
		const timeout = 100 * time.Millisecond
		s := newSink(t, addr, grpcsink.WithCallTimeout(timeout))
		start := time.Now()
		err := s.Send(testContext(t), &fanbridge.Event{ID: "blocked"})
		elapsed := time.Since(start)
		require.Error(t, err)
		assert.Equal(t, codes.DeadlineExceeded, status.Code(err))
		assert.Equal(t, retry.ClassRetryable, retry.Classify(err))
		assert.GreaterOrEqual(t, elapsed, timeout)
		assert.Less(t, elapsed, testTimeout/2, "Send returned by its own deadline, not the test's")
		recv(t, entered)
	})

	t.Run("caller's deadline comes first", func(t *testing.T) {
		s := newSink(t, addr) // default 5 s call timeout
		ctx, cancel := context.WithTimeout(testContext(t), 50*time.Millisecond)
		defer cancel()
		err := s.Send(ctx, &fanbridge.Event{ID: "blocked"})
		require.Error(t, err)
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Equal(t, retry.ClassRetryable, retry.Classify(err))
		recv(t, entered)
	})

	// A consumer whose own backend timed out answers DeadlineExceeded long before the caller's
	// deadline, which is nearer than the call timeout (as in fanout's Sync mode): the error is
	// the consumer's, not the caller's deadline, and does not say the budget ran out.
	t.Run("the consumer's own deadline error", func(t *testing.T) {
		own := startServer(t, sink.Func(func(context.Context, *fanbridge.Event) error {
			return status.Error(codes.DeadlineExceeded, "database query timed out")
		}))
		s := newSink(t, own) // default 5 s call timeout
		ctx, cancel := context.WithTimeout(testContext(t), 3*time.Second)
		defer cancel()
		err := s.Send(ctx, &fanbridge.Event{ID: "backend-timeout"})
		require.Error(t, err)
		require.NoError(t, ctx.Err())
		assert.NotErrorIs(t, err, context.DeadlineExceeded, "%v", err)
		assert.Equal(t, codes.DeadlineExceeded, status.Code(err))
		assert.Equal(t, retry.ClassRetryable, retry.Classify(err))
	})

	t.Run("caller cancels", func(t *testing.T) {
		s := newSink(t, addr)
		ctx, cancel := context.WithCancel(testContext(t))
		go func() {
			defer cancel()
			select {
			case <-entered:
			case <-ctx.Done(): // the call never reached the server: Send fails on the test's deadline
			}
		}()
		err := s.Send(ctx, &fanbridge.Event{ID: "blocked"})
		require.Error(t, err)
		assert.ErrorIs(t, err, context.Canceled)
		assert.Equal(t, codes.Canceled, status.Code(err))
		assert.Equal(t, retry.ClassCanceled, retry.Classify(err), "our own cancellation is never a reason to dead-letter")
		assert.False(t, retry.IsPermanent(err))
	})
}

func TestRoundRobin(t *testing.T) {
	ctx := testContext(t)
	recs := []*recorder{newRecorder(), newRecorder(), newRecorder()}
	var addrs []string
	for _, r := range recs {
		addrs = append(addrs, startServer(t, r))
	}
	s := newSink(t, strings.Join(addrs, ","))

	// Connections come up one by one; round robin uses each as soon as it is ready.
	warm := 0
	for ; warm < 5000 && (recs[0].count() == 0 || recs[1].count() == 0 || recs[2].count() == 0); warm++ {
		require.NoError(t, s.Send(ctx, &fanbridge.Event{ID: "warm-up"}))
	}
	for i, r := range recs {
		require.NotZero(t, r.count(), "server %d never got an event in %d sends", i, warm)
	}

	base := []int{recs[0].count(), recs[1].count(), recs[2].count()}
	const n = 300
	for i := range n {
		require.NoError(t, s.Send(ctx, &fanbridge.Event{ID: "e" + string(rune('a'+i%26))}))
	}
	for i, r := range recs {
		share := r.count() - base[i]
		assert.InDelta(t, n/3, share, 2, "server %d got %d of %d", i, share, n)
	}
}

// An ingress or proxy with no route to the consumer yet answers plain HTTP 404, which grpc-go
// reports as Unimplemented: no gRPC server has answered, so the event is retried, not
// dead-lettered. A gRPC server that lacks the service is still permanent.
func TestProxyNotFoundIsRetryable(t *testing.T) {
	ctx := testContext(t)
	lis := listen(t)
	proto := new(http.Protocols)
	proto.SetUnencryptedHTTP2(true)
	srv := &http.Server{Protocols: proto, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNotFound)
	})}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(func() { _ = srv.Close() })

	err := newSink(t, lis.Addr().String()).Send(ctx, &fanbridge.Event{ID: "a"})
	require.Error(t, err)
	assert.Equal(t, codes.Unimplemented, status.Code(err))
	assert.Contains(t, err.Error(), "404")
	assert.Equal(t, retry.ClassRetryable, retry.Classify(err), "%v", err)

	assert.Equal(t, retry.ClassPermanent, retry.Classify(grpcsink.Classify(status.Error(codes.Unimplemented, "unknown service fanbridge.v1.EventSink"))))
}

// A ClientConn closed by its owner under a sink made with NewFromConn fails Sends with an error
// wrapping sink.ErrClosed, as a Sink closed itself does.
func TestSharedConnClosedByItsOwner(t *testing.T) {
	ctx := testContext(t)
	lis := listen(t)
	serve(t, lis, newRecorder())
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	s, err := grpcsink.NewFromConn(conn)
	require.NoError(t, err)
	require.NoError(t, s.Send(ctx, &fanbridge.Event{ID: "before"}))
	require.NoError(t, conn.Close())
	err = s.Send(ctx, &fanbridge.Event{ID: "after"})
	require.ErrorIs(t, err, sink.ErrClosed)
	assert.Equal(t, codes.Canceled, status.Code(err))
}
