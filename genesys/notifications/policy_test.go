package notifications_test

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/eventbridge"
	"github.com/fanbridge/fanbridge/genesys/genesystest"
	"github.com/fanbridge/fanbridge/genesys/notifications"
	"github.com/fanbridge/fanbridge/retry"
)

// A dispatch policy that sets only its intervals (MaxAttempts zero, which package retry reads as
// 5) does not give up an event read from a channel after five retryable failures: the event has
// no sender to send it again.
func TestDispatchPolicyWithoutAttemptLimitKeepsTheEvent(t *testing.T) {
	var calls atomic.Int32
	rec := newRecorder()
	d := eventbridge.DispatcherFunc(func(ctx context.Context, e *fanbridge.Event) error {
		if calls.Add(1) <= 8 {
			return fanbridge.ErrOverloaded // retryable: a sink's queue is full for a while
		}
		return rec.Dispatch(ctx, e)
	})
	h := newHarnessWith(t, d, []string{presence}, nil,
		notifications.WithDispatchPolicy(retry.Policy{InitialInterval: time.Millisecond, MaxInterval: 2 * time.Millisecond}))
	ctx := h.start(t)
	require.NoError(t, h.srv.WaitSubscribed(ctx, presence, 1))
	sent := publish(h.srv, presence, 1, 1)
	rec.waitCount(t, ctx, 1)
	assert.Equal(t, sent, rec.snapshot())
	assert.EqualValues(t, 9, calls.Load())
	assert.Zero(t, h.counter(t, "fanbridge.notifications.events", "outcome", "failed"))
}

// A limit set on purpose is kept: the event is given up when it runs out, and the log says that
// the retries ran out, not that the dispatcher failed permanently.
func TestDispatchPolicyLimitGivesTheEventUp(t *testing.T) {
	logs := &strings.Builder{}
	var mu sync.Mutex
	d := eventbridge.DispatcherFunc(func(context.Context, *fanbridge.Event) error { return fanbridge.ErrOverloaded })
	h := newHarnessWith(t, d, []string{presence}, nil,
		notifications.WithLogger(slog.New(slog.NewTextHandler(lockedWriter{w: logs, mu: &mu}, nil))),
		notifications.WithDispatchPolicy(retry.Policy{InitialInterval: time.Millisecond, MaxInterval: 2 * time.Millisecond, MaxAttempts: 3}))
	ctx := h.start(t)
	require.NoError(t, h.srv.WaitSubscribed(ctx, presence, 1))
	publish(h.srv, presence, 1, 1)
	h.waitCounter(t, ctx, "fanbridge.notifications.events", "outcome", "failed", 1)
	mu.Lock()
	defer mu.Unlock()
	assert.Contains(t, logs.String(), "the dispatch policy's retries ran out")
	assert.NotContains(t, logs.String(), "failed permanently")
}

// A reconnect policy that sets only its intervals does not end Run after five rounds of 503s
// from the subscription endpoint (each of which the API client itself tries several times): an
// outage a retry cures.
func TestReconnectPolicyWithoutAttemptLimitOutlastsAnOutage(t *testing.T) {
	h := newHarness(t, []string{presence}, nil,
		notifications.WithReconnectPolicy(retry.Policy{InitialInterval: 2 * time.Millisecond, MaxInterval: 5 * time.Millisecond}))
	h.srv.Fail(genesystest.Fault{Method: http.MethodPut, Path: "/api/v2/notifications/channels/", Status: http.StatusServiceUnavailable, Times: 40})
	ctx := h.start(t)
	require.NoError(t, h.srv.WaitSubscribed(ctx, presence, 1))
	select {
	case err := <-h.runErr:
		h.runErr <- err
		t.Fatalf("Run ended: %v", err)
	default:
	}
	sent := publish(h.srv, presence, 1, 1)
	h.rec.waitCount(t, ctx, 1)
	assert.Equal(t, sent, h.rec.snapshot())
}
