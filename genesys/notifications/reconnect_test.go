package notifications_test

import (
	"context"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge/genesys/genesystest"
	"github.com/fanbridge/fanbridge/genesys/notifications"
	"github.com/fanbridge/fanbridge/retry"
	"github.com/fanbridge/fanbridge/retry/retrytest"
)

// laneLog is a slog.Handler that sends the wait of every "replaced soon" warning to waits, and
// signals every "channel subscribed" to subscribed, which the lane logs once it has the answer to
// its subscription.
type laneLog struct {
	waits      chan time.Duration
	subscribed chan struct{}
}

func (h laneLog) Enabled(context.Context, slog.Level) bool { return true }
func (h laneLog) Handle(_ context.Context, r slog.Record) error {
	switch r.Message {
	case "notifications: channel subscribed":
		h.subscribed <- struct{}{}
	case "notifications: channel replaced soon after it was subscribed; waiting before opening another":
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "wait" {
				h.waits <- a.Value.Duration()
				return false
			}
			return true
		})
	}
	return nil
}
func (h laneLog) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h laneLog) WithGroup(string) slog.Handler      { return h }

// waitDue polls the fake clock until its earliest timer is due in d.
func waitDue(t *testing.T, ctx context.Context, clk *retrytest.Clock, d time.Duration) {
	t.Helper()
	for {
		if due, ok := clk.NextDue(); ok && due == d {
			return
		}
		select {
		case <-ctx.Done():
			due, _ := clk.NextDue()
			t.Fatalf("no timer due in %v; the earliest is due in %v", d, due)
		case <-time.After(time.Millisecond):
		}
	}
}

// A socket closed right after it is subscribed (by a proxy, say) is not replaced in a tight loop,
// each round a creation and a subscription of up to 1,000 topics against the organization's API
// rate limit: each such channel counts as a failed attempt of the reconnect policy, so the wait
// before the next channel grows as the policy's interval does, and nothing is requested during
// it. A channel that lives longer than the heartbeat timeout starts the count again. The waits run
// on a fake clock, so the test sees every one of them exactly.
func TestSocketClosedRightAfterSubscribingBacksOff(t *testing.T) {
	const heartbeatTimeout = time.Minute
	clk := retrytest.NewClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	logs := laneLog{waits: make(chan time.Duration, 16), subscribed: make(chan struct{}, 16)}
	policy := retry.Policy{InitialInterval: time.Second, Multiplier: 2, MaxInterval: 4 * time.Second, Jitter: retry.NoJitter, MaxAttempts: -1}
	h := newHarness(t, []string{presence}, nil, notifications.WithClock(clk), notifications.WithReconnectPolicy(policy),
		notifications.WithHeartbeatTimeout(heartbeatTimeout), notifications.WithOverlap(0), notifications.WithLogger(slog.New(logs)))
	ctx := h.start(t)
	created := 1
	// subscribed waits until the lane has subscribed a channel, and checks that it is the one
	// created last and the only one connected.
	subscribed := func() {
		t.Helper()
		recv(t, ctx, logs.subscribed)
		require.NoError(t, h.srv.WaitChannels(ctx, func(live []genesystest.ChannelInfo, n int) bool {
			connected := 0
			for _, c := range live {
				if c.Connected {
					connected++
				}
			}
			return n == created && connected == 1 && live[len(live)-1].Connected && live[len(live)-1].Topics == 1
		}), "created %d: %+v", h.srv.ChannelsCreated(), h.srv.Channels())
	}
	subscribed()
	const subscriptions = "/api/v2/notifications/channels/"
	breakRightAway := func(want time.Duration) {
		t.Helper()
		puts, posts := h.srv.Count(http.MethodPut, subscriptions), h.srv.Count(http.MethodPost, "/api/v2/notifications/channels")
		require.Equal(t, 1, h.srv.Disconnect())
		assert.Equal(t, want, recv(t, ctx, logs.waits))
		waitDue(t, ctx, clk, want)
		assert.Equal(t, puts, h.srv.Count(http.MethodPut, subscriptions), "subscribed again during the wait")
		assert.Equal(t, posts, h.srv.Count(http.MethodPost, "/api/v2/notifications/channels"), "created a channel during the wait")
		clk.Advance(want)
		created++
		subscribed()
	}
	for _, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 4 * time.Second, 4 * time.Second} {
		breakRightAway(want)
	}

	// The channel now lives longer than the heartbeat timeout. The clock moves in two steps, with
	// heartbeats read in between, so that the socket never looks silent.
	beats := h.counter(t, "fanbridge.notifications.messages", "kind", "heartbeat")
	clk.Advance(heartbeatTimeout / 2)
	h.waitCounter(t, ctx, "fanbridge.notifications.messages", "kind", "heartbeat", beats+2)
	clk.Advance(heartbeatTimeout / 2)
	require.Equal(t, 1, h.srv.Disconnect())
	created++
	subscribed() // at once: the clock does not move
	assert.Empty(t, logs.waits, "waited after a channel that lived")
	assert.Zero(t, h.counter(t, "fanbridge.notifications.heartbeats_missed", "", ""))

	breakRightAway(time.Second)
	assert.EqualValues(t, 7, h.counter(t, "fanbridge.notifications.reconnects", "reason", "socket_error"))
	assert.Equal(t, created, h.srv.Count(http.MethodPut, subscriptions), "one subscription per channel")
}
