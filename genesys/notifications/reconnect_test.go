package notifications_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge/genesys"
	"github.com/fanbridge/fanbridge/genesys/genesystest"
	"github.com/fanbridge/fanbridge/genesys/notifications"
	"github.com/fanbridge/fanbridge/retry"
	"github.com/fanbridge/fanbridge/retry/retrytest"
)

// laneLog is a slog.Handler that reports what a lane logs: the wait of every "replaced soon"
// warning to waits, of every "dropped again soon" warning to dropWaits, and of every failed attempt
// to open a channel to failures; every "channel subscribed" (logged once the lane has the answer to
// its subscription) to subscribed; every "subscribed again" to restored; every system notice read
// (logged once the reader has passed it on to the lane) to notices. Nil channels are not reported
// to.
type laneLog struct {
	waits, dropWaits, failures chan time.Duration
	// throttled gets the wait of every subscription request sent again after a refusal for now.
	throttled                     chan time.Duration
	subscribed, restored, notices chan struct{}
	// expiries gets the expiry of every channel subscribed, as the lane takes it, and
	// expiryWarnings every warning about the expiry Genesys gave, when there is room; they are
	// never waited for.
	expiries       chan time.Time
	expiryWarnings chan struct{}
	// kept gets every replaced channel kept open past the overlap because its reader was behind
	// the dispatcher, and keptPastExpiry every one still being read when it expired.
	kept, keptPastExpiry chan struct{}
	// unreadAtShutdown gets every socket closed by the shutdown while its reader was behind.
	unreadAtShutdown chan struct{}
	// replacing gets every channel the lane starts to replace, and failedWhileWaiting every one
	// whose socket failed while the lane waited for a channel replaced earlier.
	replacing, failedWhileWaiting chan struct{}
	// unsubscribeThrottled gets the wait of every removal of a replaced channel's subscriptions
	// sent again after a refusal for now, and unsubscribeFailed every removal that failed.
	unsubscribeThrottled chan time.Duration
	unsubscribeFailed    chan struct{}
}

func (h laneLog) Enabled(context.Context, slog.Level) bool { return true }
func (h laneLog) Handle(_ context.Context, r slog.Record) error {
	signal := func(ch chan struct{}) {
		if ch != nil {
			ch <- struct{}{}
		}
	}
	wait := func(ch chan time.Duration) {
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "wait" && ch != nil {
				ch <- a.Value.Duration()
				return false
			}
			return true
		})
	}
	switch r.Message {
	case "notifications: channel subscribed":
		signal(h.subscribed)
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "expires" && h.expiries != nil {
				select {
				case h.expiries <- a.Value.Time():
				default:
				}
			}
			return true
		})
	case "notifications: subscribed again after Genesys dropped the subscriptions":
		signal(h.restored)
	case "notifications: system notice":
		signal(h.notices)
	case "notifications: channel replaced soon after it was subscribed; waiting before opening another":
		wait(h.waits)
	case "notifications: subscriptions dropped again soon after they were restored; waiting before subscribing again":
		wait(h.dropWaits)
	case "notifications: Genesys gave a channel an expiry already past or more than 24 hours away; is the local clock wrong? Counting 24 hours from now":
		select {
		case h.expiryWarnings <- struct{}{}:
		default:
		}
	case "notifications: the replaced channel stays open until its socket is read to the end: the dispatcher is behind":
		signal(h.kept)
	case "notifications: a replaced channel expired before its socket was read to the end; reading it until Genesys closes it":
		signal(h.keptPastExpiry)
	case "notifications: closing a socket whose reader is behind the dispatcher; messages still waiting in it are not read":
		signal(h.unreadAtShutdown)
	case "notifications: replacing channel":
		signal(h.replacing)
	case "notifications: the channel to replace failed while a channel replaced earlier was still being read; opening its successor now":
		signal(h.failedWhileWaiting)
	case "notifications: removing the subscriptions of a replaced channel was refused for now; waiting before sending it again":
		wait(h.unsubscribeThrottled)
	case "notifications: removing the subscriptions of a replaced channel failed; it receives new events too until its socket is read to the end or it expires":
		signal(h.unsubscribeFailed)
	case "notifications: opening a channel failed, retrying":
		wait(h.failures)
	case "notifications: subscribing again after Genesys dropped the subscriptions was refused for now; waiting before sending it again":
		wait(h.throttled)
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

// budgets are reconnect policies that differ only in their attempt and age budgets. Those say
// when to give up opening a channel; they must neither end nor shorten the waits between
// channels replaced soon, or between subscriptions dropped again soon.
var budgets = []struct {
	name        string
	maxAttempts int
	maxAge      time.Duration
}{
	{"no budget", -1, 0},
	{"one attempt", 1, 0},
	{"age budget shorter than the waits", -1, 500 * time.Millisecond},
}

// A socket closed right after it is subscribed (by a proxy, say), or later but within the
// heartbeat timeout, is not replaced in a tight loop, each round a creation and a subscription of
// up to 1,000 topics against the organization's API rate limit: each such channel counts as a
// failed attempt of the reconnect policy, so the wait before the next channel grows as the
// policy's interval does, and nothing is requested during it, whatever the policy's attempt and
// age budgets. A channel that lives longer than the heartbeat timeout starts the count again. The
// waits run on a fake clock, so the test sees every one of them exactly.
func TestSocketClosedRightAfterSubscribingBacksOff(t *testing.T) {
	for _, b := range budgets {
		t.Run(b.name, func(t *testing.T) {
			const heartbeatTimeout = time.Minute
			clk := retrytest.NewClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
			logs := laneLog{waits: make(chan time.Duration, 16), subscribed: make(chan struct{}, 16)}
			policy := retry.Policy{InitialInterval: time.Second, Multiplier: 2, MaxInterval: 4 * time.Second, Jitter: retry.NoJitter,
				MaxAttempts: b.maxAttempts, MaxAge: b.maxAge}
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
			// live lets the channel live for d: the clock moves in steps of half the heartbeat
			// timeout, with heartbeats read after each, so that the socket never looks silent.
			live := func(d time.Duration) {
				t.Helper()
				for d > 0 {
					step := min(d, heartbeatTimeout/2)
					beats := h.counter(t, "fanbridge.notifications.messages", "kind", "heartbeat")
					clk.Advance(step)
					h.waitCounter(t, ctx, "fanbridge.notifications.messages", "kind", "heartbeat", beats+2)
					d -= step
				}
			}
			subscribed()
			const subscriptions = "/api/v2/notifications/channels/"
			// breakAfter breaks the socket once the channel has lived for lived, and checks that the
			// lane waits want before it opens the next channel, requesting nothing meanwhile.
			breakAfter := func(lived, want time.Duration) {
				t.Helper()
				live(lived)
				puts, posts := h.srv.Count(http.MethodPut, subscriptions), h.srv.Count(http.MethodPost, "/api/v2/notifications/channels")
				require.Equal(t, 1, h.srv.Disconnect())
				select {
				case w := <-logs.waits:
					assert.Equal(t, want, w)
				case <-logs.subscribed:
					t.Fatalf("a channel replaced %v after it was subscribed was replaced without a wait", lived)
				case <-ctx.Done():
					t.Fatal(ctx.Err())
				}
				waitDue(t, ctx, clk, want)
				assert.Equal(t, puts, h.srv.Count(http.MethodPut, subscriptions), "subscribed again during the wait")
				assert.Equal(t, posts, h.srv.Count(http.MethodPost, "/api/v2/notifications/channels"), "created a channel during the wait")
				clk.Advance(want)
				created++
				subscribed()
			}
			for _, c := range []struct{ lived, want time.Duration }{
				{0, time.Second},
				{0, 2 * time.Second},
				{heartbeatTimeout / 2, 4 * time.Second}, // within the heartbeat timeout still
				{0, 4 * time.Second},
				{0, 4 * time.Second},
			} {
				breakAfter(c.lived, c.want)
			}

			// The channel now lives longer than the heartbeat timeout.
			live(heartbeatTimeout)
			require.Equal(t, 1, h.srv.Disconnect())
			created++
			subscribed() // at once: the clock does not move
			assert.Empty(t, logs.waits, "waited after a channel that lived")
			assert.Zero(t, h.counter(t, "fanbridge.notifications.heartbeats_missed", "", ""))

			breakAfter(0, time.Second)
			assert.EqualValues(t, 7, h.counter(t, "fanbridge.notifications.reconnects", "reason", "socket_error"))
			assert.Equal(t, created, h.srv.Count(http.MethodPut, subscriptions), "one subscription per channel")
		})
	}
}

// Genesys dropping a channel's subscriptions again and again (a v2.system.no_longer_subscribed
// notice right after each restoration) does not cost a subscription request of up to 1,000 topics
// each time: a drop within the heartbeat timeout of the last restoration counts as a failed
// attempt of the reconnect policy, and the lane waits before subscribing again, longer each time,
// with nothing requested during the wait, whatever the policy's attempt and age budgets. Notices
// that come during the wait are answered by the one request after it. Once the subscriptions have
// held longer than the heartbeat timeout, the next drop is restored at once again. The channel is
// never replaced: every request succeeds.
func TestRepeatedNoLongerSubscribedBacksOff(t *testing.T) {
	for _, b := range budgets {
		t.Run(b.name, func(t *testing.T) {
			const heartbeatTimeout = time.Minute
			clk := retrytest.NewClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
			logs := laneLog{dropWaits: make(chan time.Duration, 16), subscribed: make(chan struct{}, 16),
				restored: make(chan struct{}, 16), notices: make(chan struct{}, 16)}
			policy := retry.Policy{InitialInterval: time.Second, Multiplier: 2, MaxInterval: 4 * time.Second, Jitter: retry.NoJitter,
				MaxAttempts: b.maxAttempts, MaxAge: b.maxAge}
			h := newHarness(t, []string{presence}, nil, notifications.WithClock(clk), notifications.WithReconnectPolicy(policy),
				notifications.WithHeartbeatTimeout(heartbeatTimeout), notifications.WithOverlap(0), notifications.WithLogger(slog.New(logs)))
			ctx := h.start(t)
			recv(t, ctx, logs.subscribed)
			require.NoError(t, h.srv.WaitSubscribed(ctx, presence, 1))
			id := h.srv.Channels()[0].ID
			const subscriptions = "/api/v2/notifications/channels/"
			notice := func() {
				t.Helper()
				msg := fmt.Sprintf(`{"topicName":"v2.system.no_longer_subscribed.%s","version":"2","eventBody":{"message":"subscriptions dropped"}}`, id)
				require.Equal(t, 1, h.srv.SendRaw([]byte(msg)))
				recv(t, ctx, logs.notices)
			}
			restoredAtOnce := func() {
				t.Helper()
				puts := h.srv.Count(http.MethodPut, subscriptions)
				notice()
				recv(t, ctx, logs.restored)
				assert.Equal(t, puts+1, h.srv.Count(http.MethodPut, subscriptions))
				assert.Empty(t, logs.dropWaits, "waited before restoring")
			}
			restoredAfter := func(want time.Duration, extra int) {
				t.Helper()
				puts := h.srv.Count(http.MethodPut, subscriptions)
				notice()
				assert.Equal(t, want, recv(t, ctx, logs.dropWaits))
				waitDue(t, ctx, clk, want)
				for range extra {
					notice()
				}
				assert.Equal(t, puts, h.srv.Count(http.MethodPut, subscriptions), "subscribed again during the wait")
				clk.Advance(want)
				recv(t, ctx, logs.restored)
				assert.Equal(t, puts+1, h.srv.Count(http.MethodPut, subscriptions), "one request after the wait")
			}

			restoredAtOnce()
			restoredAfter(time.Second, 0)
			restoredAfter(2*time.Second, 3)
			restoredAfter(4*time.Second, 0)
			restoredAfter(4*time.Second, 0)
			assert.Empty(t, logs.restored, "the notices during the wait were answered by one request")

			// The subscriptions now hold longer than the heartbeat timeout. The clock moves in two steps,
			// with heartbeats read in between, so that the socket never looks silent.
			beats := h.counter(t, "fanbridge.notifications.messages", "kind", "heartbeat")
			clk.Advance(heartbeatTimeout / 2)
			h.waitCounter(t, ctx, "fanbridge.notifications.messages", "kind", "heartbeat", beats+2)
			clk.Advance(heartbeatTimeout / 2)
			restoredAtOnce()
			restoredAfter(time.Second, 0)

			require.NoError(t, h.srv.WaitSubscribed(ctx, presence, 1))
			assert.Equal(t, 1, h.srv.ChannelsCreated())
			assert.Equal(t, id, h.srv.Channels()[0].ID)
			assert.Zero(t, h.counter(t, "fanbridge.notifications.reconnects", "reason", "no_longer_subscribed"))
		})
	}
}

// clockMovesWhileLogging is a laneLog whose "subscribed again" line, while armed, first moves the
// fake clock by step: the time the lane takes between the answer to its request and what follows
// the log line, stretched as far as a loaded machine may stretch it.
type clockMovesWhileLogging struct {
	laneLog
	clk   *retrytest.Clock
	step  time.Duration
	armed *atomic.Bool
}

func (h clockMovesWhileLogging) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "notifications: subscribed again after Genesys dropped the subscriptions" && h.armed.CompareAndSwap(true, false) {
		h.clk.Advance(h.step)
	}
	return h.laneLog.Handle(ctx, r)
}
func (h clockMovesWhileLogging) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h clockMovesWhileLogging) WithGroup(string) slog.Handler      { return h }

// Restored subscriptions hold from the answer to the request that restored them: a drop a whole
// heartbeat timeout after that answer is restored at once, however late the lane records the
// restoration. The clock moves half the timeout while the lane logs the restoration, and the other
// half after it, so a lane that took the time after its log line would see only half and wait.
func TestRestoredSubscriptionsHoldFromTheAnswer(t *testing.T) {
	const heartbeatTimeout = time.Minute
	clk := retrytest.NewClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	logs := laneLog{dropWaits: make(chan time.Duration, 16), subscribed: make(chan struct{}, 16),
		restored: make(chan struct{}, 16), notices: make(chan struct{}, 16)}
	var armed atomic.Bool
	policy := retry.Policy{InitialInterval: time.Second, Multiplier: 2, MaxInterval: 4 * time.Second, Jitter: retry.NoJitter, MaxAttempts: -1}
	h := newHarness(t, []string{presence}, nil, notifications.WithClock(clk), notifications.WithReconnectPolicy(policy),
		notifications.WithHeartbeatTimeout(heartbeatTimeout), notifications.WithOverlap(0),
		notifications.WithLogger(slog.New(clockMovesWhileLogging{laneLog: logs, clk: clk, step: heartbeatTimeout / 2, armed: &armed})))
	ctx := h.start(t)
	recv(t, ctx, logs.subscribed)
	require.NoError(t, h.srv.WaitSubscribed(ctx, presence, 1))
	id := h.srv.Channels()[0].ID
	notice := func() {
		t.Helper()
		msg := fmt.Sprintf(`{"topicName":"v2.system.no_longer_subscribed.%s","version":"2","eventBody":{"message":"subscriptions dropped"}}`, id)
		require.Equal(t, 1, h.srv.SendRaw([]byte(msg)))
		recv(t, ctx, logs.notices)
	}

	notice()
	recv(t, ctx, logs.restored)
	// Dropped again at once: the lane waits, then restores with the clock moving as it logs.
	notice()
	require.Equal(t, time.Second, recv(t, ctx, logs.dropWaits))
	waitDue(t, ctx, clk, time.Second)
	armed.Store(true)
	clk.Advance(time.Second)
	recv(t, ctx, logs.restored)
	require.False(t, armed.Load(), "the clock did not move while the restoration was logged")

	// Heartbeats read in between, so that the socket never looks silent.
	beats := h.counter(t, "fanbridge.notifications.messages", "kind", "heartbeat")
	h.waitCounter(t, ctx, "fanbridge.notifications.messages", "kind", "heartbeat", beats+2)
	clk.Advance(heartbeatTimeout / 2)
	puts := h.srv.Count(http.MethodPut, "/api/v2/notifications/channels/")
	notice()
	select {
	case <-logs.restored:
	case d := <-logs.dropWaits:
		t.Fatalf("waited %v before restoring subscriptions that held a whole heartbeat timeout", d)
	case <-ctx.Done():
		t.Fatal("the drop was not answered")
	}
	assert.Equal(t, puts+1, h.srv.Count(http.MethodPut, "/api/v2/notifications/channels/"))
	assert.Equal(t, 1, h.srv.ChannelsCreated())
	assert.Zero(t, h.counter(t, "fanbridge.notifications.heartbeats_missed", "", ""))
}

// A proxy that takes the connection but never answers the WebSocket handshake does not hold the
// lane for ever: the answer must come within the heartbeat timeout, on the source's clock, and an
// attempt without one is retried after the reconnect policy's wait, connecting the same channel
// again.
func TestUnansweredHandshakeIsRetried(t *testing.T) {
	const heartbeatTimeout = time.Minute
	clk := retrytest.NewClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	logs := laneLog{failures: make(chan time.Duration, 4), subscribed: make(chan struct{}, 4)}
	policy := retry.Policy{InitialInterval: time.Second, Multiplier: 2, MaxInterval: 4 * time.Second, Jitter: retry.NoJitter, MaxAttempts: -1}
	h := newHarness(t, []string{presence}, nil, notifications.WithClock(clk), notifications.WithReconnectPolicy(policy),
		notifications.WithHeartbeatTimeout(heartbeatTimeout), notifications.WithLogger(slog.New(logs)))
	hung, release := make(chan struct{}, 1), make(chan struct{})
	t.Cleanup(func() { close(release) }) // before the server closes, which waits for its handlers
	var first atomic.Bool
	first.Store(true)
	h.srv.SetHook(func(r *http.Request) {
		if r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/channels/") && first.CompareAndSwap(true, false) {
			hung <- struct{}{}
			<-release // a handshake that is never answered
		}
	})
	ctx := h.start(t)
	recv(t, ctx, hung)
	waitDue(t, ctx, clk, heartbeatTimeout)
	clk.Advance(heartbeatTimeout)
	assert.Equal(t, time.Second, recv(t, ctx, logs.failures))
	waitDue(t, ctx, clk, time.Second)
	clk.Advance(time.Second)
	recv(t, ctx, logs.subscribed)

	require.NoError(t, h.srv.WaitSubscribed(ctx, presence, 1))
	sent := publish(h.srv, presence, 1, 3)
	require.Len(t, sent, 3)
	h.rec.waitCount(t, ctx, len(sent))
	assert.Equal(t, 1, h.srv.ChannelsCreated(), "the channel is connected again, not replaced")
	assert.Equal(t, 2, h.srv.Count(http.MethodGet, "/channels/"), "handshakes")
}

// A channel creation answered with a 5xx and Retry-After (Genesys overloaded) is not sent again
// before the wait the server asked for: the creation may have been carried out, and each one sent
// may leave a channel that counts against the 20 for 24 hours. The wait runs on the source's
// clock, longer than the reconnect policy's own.
func TestCreationRetryAfterIsWaited(t *testing.T) {
	const channels = "/api/v2/notifications/channels"
	clk := retrytest.NewClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	logs := laneLog{failures: make(chan time.Duration, 4), subscribed: make(chan struct{}, 4)}
	policy := retry.Policy{InitialInterval: time.Second, Multiplier: 2, MaxInterval: 4 * time.Second, Jitter: retry.NoJitter,
		MaxAttempts: -1, MaxRetryAfter: time.Hour}
	h := newHarness(t, []string{presence}, nil, notifications.WithClock(clk), notifications.WithReconnectPolicy(policy),
		notifications.WithHeartbeatTimeout(time.Minute), notifications.WithLogger(slog.New(logs)))
	h.srv.Fail(genesystest.Fault{Method: http.MethodPost, Path: channels, Status: http.StatusServiceUnavailable, RetryAfter: "30"})
	ctx := h.start(t)
	assert.Equal(t, 30*time.Second, recv(t, ctx, logs.failures))
	waitDue(t, ctx, clk, 30*time.Second)
	assert.Equal(t, 1, h.srv.Count(http.MethodPost, channels), "created a channel during the wait")
	clk.Advance(30 * time.Second)
	recv(t, ctx, logs.subscribed)
	assert.Equal(t, 2, h.srv.Count(http.MethodPost, channels))
	assert.EqualValues(t, 1, h.counter(t, "fanbridge.notifications.channels", "origin", "unknown"))
}

// Genesys gives a channel's expiry on its own clock. One already past (a local clock more than a
// day ahead, or a bad answer) had the lane replace the channel at once, again and again, each time
// with a new channel, as an expiry never counted as a quick replacement and the account forgot
// the channel still in use; one more than 24 hours away kept the channel counted too long. Such
// an expiry gives way to 24 hours from the local time of the answer, with a warning unless
// Genesys' clock is only a little ahead.
func TestImplausibleChannelExpiryCountsFromLocalCreation(t *testing.T) {
	for _, tc := range []struct {
		name string
		skew time.Duration // of Genesys' clock
		warn bool
	}{
		{"already past", -25 * time.Hour, true},
		{"more than 24 hours away", 2 * time.Hour, true},
		{"a few seconds more than 24 hours away", 5 * time.Second, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logs := laneLog{expiries: make(chan time.Time, 16), expiryWarnings: make(chan struct{}, 16)}
			skewed := genesystest.WithClock(func() time.Time { return time.Now().Add(tc.skew) })
			h := newHarness(t, []string{presence}, []genesystest.Option{skewed}, notifications.WithOverlap(0),
				notifications.WithLogger(slog.New(logs)))
			before := time.Now()
			ctx := h.start(t)
			expires := recv(t, ctx, logs.expiries)
			after := time.Now()
			assert.False(t, expires.Before(before.Add(genesys.ChannelLifetime)), "expires %v", expires)
			assert.False(t, expires.After(after.Add(genesys.ChannelLifetime)), "expires %v", expires)

			// Events pass over the one channel; one replaced at once would have had successors
			// created meanwhile.
			require.NoError(t, h.srv.WaitSubscribed(ctx, presence, 1))
			for i := 1; i <= 10; i++ {
				require.Len(t, publish(h.srv, presence, i, i), 1)
				h.rec.waitCount(t, ctx, i)
			}
			assert.Equal(t, 1, h.srv.ChannelsCreated())
			assert.Zero(t, h.counter(t, "fanbridge.notifications.reconnects", "", ""))
			assert.Equal(t, tc.warn, len(logs.expiryWarnings) == 1, "warned %d times", len(logs.expiryWarnings))
		})
	}
}

// A channel that expires soon after it is subscribed (Genesys' answer gives it moments to live) is
// replaced at half its life, and such a replacement within the heartbeat timeout of subscribing
// counts as a quick one, as a socket that breaks at once does: the lane waits before the next
// channel, longer each time, instead of creating one after another.
func TestShortLivedChannelsBackOff(t *testing.T) {
	clk := retrytest.NewClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	logs := laneLog{waits: make(chan time.Duration, 16), subscribed: make(chan struct{}, 16)}
	policy := retry.Policy{InitialInterval: time.Second, Multiplier: 2, MaxInterval: 4 * time.Second, Jitter: retry.NoJitter, MaxAttempts: -1}
	// Each channel must be created, connected and subscribed within its real life, or the fake
	// forgets it under the lane: 3 s leaves room on a loaded machine.
	h := newHarness(t, []string{presence}, []genesystest.Option{genesystest.WithChannelLifetime(3 * time.Second)},
		notifications.WithClock(clk), notifications.WithReconnectPolicy(policy), notifications.WithHeartbeatTimeout(time.Minute),
		notifications.WithOverlap(0), notifications.WithLogger(slog.New(logs)))
	ctx := h.start(t)
	recv(t, ctx, logs.subscribed)
	for i, want := range []time.Duration{time.Second, 2 * time.Second} {
		assert.Equal(t, want, recv(t, ctx, logs.waits))
		waitDue(t, ctx, clk, want)
		assert.Equal(t, i+1, h.srv.ChannelsCreated(), "created a channel during the wait")
		clk.Advance(want)
		recv(t, ctx, logs.subscribed)
	}
}

// channelEnds are the ways a channel comes to be replaced while its lane is busy restoring its
// subscriptions: the lane must notice each at once.
var channelEnds = []struct {
	name     string
	lifetime time.Duration // of a channel; zero for 24 hours
	end      func(*genesystest.Server)
	reason   string
}{
	{name: "socket closing", end: func(srv *genesystest.Server) { srv.SendSocketClosing() }, reason: "socket_closing"},
	{name: "socket failed", end: func(srv *genesystest.Server) { srv.Disconnect() }, reason: "socket_error"},
	// Replaced halfway through its life (6 s, so that the test's steps before it fit on a
	// loaded machine), once the lane is busy.
	{name: "expiry", lifetime: 6 * time.Second, reason: "expiry"},
}

// While a lane waits before subscribing again the topics Genesys dropped again soon, the channel
// may have to be replaced anyway: Genesys announces it closes the socket (about a minute later),
// the socket fails, or the channel reaches its replacement time. The wait then ends at once and
// the channel is replaced, with no subscription request on the old one.
func TestReplacementEndsTheWaitBeforeSubscribingAgain(t *testing.T) {
	for _, tc := range channelEnds {
		t.Run(tc.name, func(t *testing.T) {
			clk := retrytest.NewClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
			logs := laneLog{waits: make(chan time.Duration, 16), dropWaits: make(chan time.Duration, 16),
				subscribed: make(chan struct{}, 16), restored: make(chan struct{}, 16), notices: make(chan struct{}, 16)}
			policy := retry.Policy{InitialInterval: time.Second, Multiplier: 2, MaxInterval: 4 * time.Second, Jitter: retry.NoJitter, MaxAttempts: -1}
			var srvOpts []genesystest.Option
			if tc.lifetime > 0 {
				srvOpts = append(srvOpts, genesystest.WithChannelLifetime(tc.lifetime))
			}
			h := newHarness(t, []string{presence}, srvOpts, notifications.WithClock(clk), notifications.WithReconnectPolicy(policy),
				notifications.WithHeartbeatTimeout(time.Minute), notifications.WithOverlap(0), notifications.WithLogger(slog.New(logs)))
			ctx := h.start(t)
			recv(t, ctx, logs.subscribed)
			require.NoError(t, h.srv.WaitSubscribed(ctx, presence, 1))
			id := h.srv.Channels()[0].ID
			notice := fmt.Sprintf(`{"topicName":"v2.system.no_longer_subscribed.%s","version":"2","eventBody":{"message":"subscriptions dropped"}}`, id)
			require.Equal(t, 1, h.srv.SendRaw([]byte(notice)))
			recv(t, ctx, logs.restored)
			require.Equal(t, 1, h.srv.SendRaw([]byte(notice)))
			assert.Equal(t, time.Second, recv(t, ctx, logs.dropWaits))
			if tc.end != nil {
				tc.end(h.srv)
			}

			// The channel lived less than the heartbeat timeout: the lane waits before the next.
			assert.Equal(t, time.Second, recv(t, ctx, logs.waits))
			waitDue(t, ctx, clk, time.Second)
			clk.Advance(time.Second)
			recv(t, ctx, logs.subscribed)
			assert.Equal(t, 2, h.srv.ChannelsCreated())
			// Two requests on the old channel (the first subscription, the restore after the first
			// notice) and one on the new. A replaced channel whose socket is still open also has its
			// subscriptions removed, in the background, by a third request on it, which may or may
			// not have arrived by now; a subscription again on it would be logged as restored.
			puts := h.srv.Count(http.MethodPut, "/api/v2/notifications/channels/")
			assert.Equal(t, 1, puts-h.srv.Count(http.MethodPut, "/api/v2/notifications/channels/"+id+"/"), "subscription requests on the new channel")
			assert.Contains(t, []int{2, 3}, h.srv.Count(http.MethodPut, "/api/v2/notifications/channels/"+id+"/"), "requests on the old channel")
			assert.EqualValues(t, 1, h.counter(t, "fanbridge.notifications.reconnects", "reason", tc.reason))
			assert.Empty(t, logs.restored, "subscribed again on the channel replaced")
		})
	}
}

// Genesys answers a request it refuses for now with 429 and Retry-After, a daily quota with hours.
// A refused WebSocket handshake is tried again after the wait its Retry-After asks for, and a
// subscription request after Genesys dropped a channel's subscriptions is sent again after it (up
// to the reconnect policy's MaxRetryAfter), on the same channel: a new channel would cost a
// creation against the same limit and one of the 20 places.
func TestRetryAfterOnConnectAndOnSubscribingAgain(t *testing.T) {
	const (
		channels      = "/api/v2/notifications/channels"
		subscriptions = "/api/v2/notifications/channels/"
	)
	policy := retry.Policy{InitialInterval: time.Second, Multiplier: 2, MaxInterval: 4 * time.Second, Jitter: retry.NoJitter,
		MaxAttempts: -1, MaxRetryAfter: 30 * time.Second}
	newSourceWith := func(t *testing.T, logs laneLog, policy retry.Policy) (*harness, *retrytest.Clock) {
		clk := retrytest.NewClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
		h := newHarness(t, []string{presence}, nil, notifications.WithClock(clk), notifications.WithReconnectPolicy(policy),
			notifications.WithHeartbeatTimeout(time.Minute), notifications.WithLogger(slog.New(logs)))
		return h, clk
	}
	t.Run("handshake", func(t *testing.T) {
		logs := laneLog{failures: make(chan time.Duration, 4), subscribed: make(chan struct{}, 4)}
		h, clk := newSourceWith(t, logs, policy)
		h.srv.Fail(genesystest.Fault{Method: http.MethodGet, Path: "/channels/", Status: http.StatusTooManyRequests, RetryAfter: "20"})
		ctx := h.start(t)
		assert.Equal(t, 20*time.Second, recv(t, ctx, logs.failures))
		waitDue(t, ctx, clk, 20*time.Second)
		assert.Equal(t, 1, h.srv.Count(http.MethodGet, "/channels/"), "handshakes")
		clk.Advance(20 * time.Second)
		recv(t, ctx, logs.subscribed)
		assert.Equal(t, 2, h.srv.Count(http.MethodGet, "/channels/"), "handshakes")
		assert.Equal(t, 1, h.srv.ChannelsCreated(), "the channel is connected again")
	})
	for _, tc := range []struct {
		name          string
		maxRetryAfter time.Duration
		want          time.Duration
	}{
		{"subscribing again", 30 * time.Second, 30 * time.Second},
		// The cap never takes the wait below the policy's first interval: the request carries
		// up to 1,000 topics.
		{"subscribing again, cap below the first interval", time.Millisecond, time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logs := laneLog{throttled: make(chan time.Duration, 4), subscribed: make(chan struct{}, 4), restored: make(chan struct{}, 4)}
			p := policy
			p.MaxRetryAfter = tc.maxRetryAfter
			h, clk := newSourceWith(t, logs, p)
			ctx := h.start(t)
			recv(t, ctx, logs.subscribed)
			require.NoError(t, h.srv.WaitSubscribed(ctx, presence, 1))
			id := h.srv.Channels()[0].ID
			// An hour: more than the client waits for itself, so the refusal reaches the lane.
			h.srv.Fail(genesystest.Fault{Method: http.MethodPut, Path: subscriptions, Status: http.StatusTooManyRequests, RetryAfter: "3600"})
			notice := fmt.Sprintf(`{"topicName":"v2.system.no_longer_subscribed.%s","version":"2","eventBody":{"message":"subscriptions dropped"}}`, id)
			require.Equal(t, 1, h.srv.SendRaw([]byte(notice)))
			assert.Equal(t, tc.want, recv(t, ctx, logs.throttled))
			waitDue(t, ctx, clk, tc.want)
			assert.Equal(t, 2, h.srv.Count(http.MethodPut, subscriptions), "subscription requests")
			clk.Advance(tc.want)
			recv(t, ctx, logs.restored)
			assert.Equal(t, 3, h.srv.Count(http.MethodPut, subscriptions), "subscription requests")
			assert.Equal(t, 1, h.srv.Count(http.MethodPost, channels), "channels created")
			assert.Zero(t, h.counter(t, "fanbridge.notifications.reconnects", "", ""))
			require.NoError(t, h.srv.WaitSubscribed(ctx, presence, 1))
			require.Len(t, publish(h.srv, presence, 1, 1), 1)
			h.rec.waitCount(t, ctx, 1)
		})
	}
}

// The request that restores dropped subscriptions may be waiting inside the genesys client, which
// waits out a Retry-After of up to minutes on its own before it gives up. If the channel must be
// replaced anyway meanwhile (Genesys announces it closes the socket, the socket fails, the channel
// reaches its replacement time), the request is cut short and the channel replaced at once:
// Genesys closes the socket a minute after its notice, and every event published until the
// request gave up would be lost. The refusal here asks for 100 s; the test's deadline is 30 s.
func TestReplacementCutsTheRequestToSubscribeAgain(t *testing.T) {
	for _, tc := range channelEnds {
		t.Run(tc.name, func(t *testing.T) {
			const subscriptions = "/api/v2/notifications/channels/"
			logs := laneLog{subscribed: make(chan struct{}, 16), restored: make(chan struct{}, 16)}
			var srvOpts []genesystest.Option
			if tc.lifetime > 0 {
				srvOpts = append(srvOpts, genesystest.WithChannelLifetime(tc.lifetime))
			}
			h := newHarness(t, []string{presence}, srvOpts, notifications.WithOverlap(0), notifications.WithLogger(slog.New(logs)))
			ctx := h.start(t)
			recv(t, ctx, logs.subscribed)
			require.NoError(t, h.srv.WaitSubscribed(ctx, presence, 1))
			id := h.srv.Channels()[0].ID
			h.srv.Fail(genesystest.Fault{Method: http.MethodPut, Path: subscriptions, Status: http.StatusTooManyRequests, RetryAfter: "100", Times: 1})
			puts := h.srv.Count(http.MethodPut, subscriptions)
			notice := fmt.Sprintf(`{"topicName":"v2.system.no_longer_subscribed.%s","version":"2","eventBody":{"message":"subscriptions dropped"}}`, id)
			require.Equal(t, 1, h.srv.SendRaw([]byte(notice)))
			waitRequests(t, h, ctx, http.MethodPut, subscriptions, puts+1) // refused: the client waits
			if tc.end != nil {
				tc.end(h.srv)
			}
			recv(t, ctx, logs.subscribed)
			require.NoError(t, h.srv.WaitSubscribed(ctx, presence, 1))
			assert.Equal(t, 2, h.srv.ChannelsCreated())
			assert.EqualValues(t, 1, h.counter(t, "fanbridge.notifications.reconnects", "reason", tc.reason))
			assert.Empty(t, logs.restored, "subscribed again on the channel replaced")
		})
	}
}
