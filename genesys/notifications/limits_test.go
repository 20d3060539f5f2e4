package notifications_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge/genesys"
	"github.com/fanbridge/fanbridge/genesys/genesystest"
	"github.com/fanbridge/fanbridge/genesys/notifications"
)

func TestMaxChannelsLeavesRoomToReplaceEveryChannel(t *testing.T) {
	assert.Equal(t, genesys.MaxChannels, 2*notifications.MaxChannels, "every channel needs room for its successor")
	topics := make([]string, (notifications.MaxChannels+1)*genesys.MaxTopicsPerChannel)
	for i := range topics {
		topics[i] = userTopic(i)
	}
	client, err := genesys.NewClient(genesys.USEast1, "id", "secret")
	require.NoError(t, err)
	d := newRecorder()
	for n := notifications.MaxChannels + 1; n < genesys.MaxChannels; n++ {
		_, err := notifications.New(client, topics[:genesys.MaxTopicsPerChannel], d, notifications.WithMaxChannels(n))
		require.ErrorIs(t, err, notifications.ErrInvalidConfig, "WithMaxChannels(%d)", n)
	}
	_, err = notifications.New(client, topics, d, notifications.WithMaxChannels(notifications.MaxChannels))
	require.ErrorIs(t, err, genesys.ErrTooManyTopics)
	s, err := notifications.New(client, topics[:notifications.MaxChannels*genesys.MaxTopicsPerChannel], d,
		notifications.WithMaxChannels(notifications.MaxChannels))
	require.NoError(t, err)
	assert.Equal(t, notifications.MaxChannels, s.Channels())
}

// patientHeartbeat keeps heartbeat timeouts out of tests that count channels: a loaded machine may
// stall a reader for seconds, and the replacement that follows would change the counts.
var patientHeartbeat = notifications.WithHeartbeatTimeout(time.Minute)

// lanesHarness runs a source with MaxChannels full lanes and returns the first topic of each.
func lanesHarness(t *testing.T, opts ...notifications.Option) (*harness, []string) {
	t.Helper()
	topics := make([]string, notifications.MaxChannels*genesys.MaxTopicsPerChannel)
	for i := range topics {
		topics[i] = userTopic(i)
	}
	firsts := make([]string, notifications.MaxChannels)
	for l := range firsts {
		firsts[l] = topics[l*genesys.MaxTopicsPerChannel]
	}
	return newHarness(t, topics, nil, append([]notifications.Option{notifications.WithMaxChannels(notifications.MaxChannels), patientHeartbeat}, opts...)...), firsts
}

// publisher publishes one event to each lane and remembers what it sent.
type publisher struct {
	h      *harness
	firsts []string
	seq    int64
	sent   []int64
}

func (p *publisher) all(t *testing.T) {
	t.Helper()
	for l, topic := range p.firsts {
		p.seq++
		_, n := p.h.srv.Publish(topic, map[string]any{"seq": p.seq})
		require.Positive(t, n, "lane %d has no subscribed socket", l)
		p.sent = append(p.sent, p.seq)
	}
}

// waitReplaced blocks until sockets connections were made in all and exactly one connected,
// subscribed channel per lane is left, then checks that exactly created channels were made and
// none evicted in use. Each lane connects one socket per replacement, and its old channel closes
// only after the new one is subscribed, so the state is final once both counts hold. No extra
// channel is ever made: Genesys evicts the oldest channel, never one an instant old, and the
// source creates no channel while 20 of its own live, connecting an unused one instead.
func waitReplaced(t *testing.T, h *harness, ctx context.Context, created, sockets int) {
	t.Helper()
	require.NoError(t, h.srv.WaitChannels(ctx, func(live []genesystest.ChannelInfo, n int) bool {
		connected, total := 0, 0
		for _, c := range live {
			total += c.Sockets
			if c.Connected && c.Topics > 0 {
				connected++
			}
		}
		// More channels than expected can only fail the check below: stop waiting.
		return n > created || (total >= sockets && connected == notifications.MaxChannels)
	}), "created %d, evicted in use %d, live %+v", h.srv.ChannelsCreated(), h.srv.EvictedInUse(), h.srv.Channels())
	reasons := map[string]int64{}
	for _, r := range []string{"socket_error", "heartbeat_missed", "socket_closing", "no_longer_subscribed", "expiry"} {
		reasons[r] = h.counter(t, "fanbridge.notifications.reconnects", "reason", r)
	}
	require.Equal(t, created, h.srv.ChannelsCreated(), "channels created; reconnects %v", reasons)
	require.Zero(t, h.srv.EvictedInUse(), "channels in use evicted")
}

// A maintenance notice makes every channel open its successor at the same time; with MaxChannels
// lanes that fits Genesys' 20 channels, so no channel in use is evicted and no event is missed.
func TestReplacingEveryChannelAtOnceEvictsNoneInUse(t *testing.T) {
	const lanes = notifications.MaxChannels
	h, firsts := lanesHarness(t, notifications.WithOverlap(50*time.Millisecond))
	ctx := h.start(t)
	p := &publisher{h: h, firsts: firsts}
	waitReplaced(t, h, ctx, lanes, lanes)
	p.all(t)

	require.Equal(t, lanes, h.srv.SendSocketClosing())
	p.all(t)
	waitReplaced(t, h, ctx, 2*lanes, 2*lanes)
	p.all(t)
	h.rec.waitCount(t, ctx, len(p.sent))
	assertExactlyOnce(t, p.sent, h.rec.snapshot())
	assert.Zero(t, h.srv.EvictedInUse(), "channels in use evicted")
	assert.Zero(t, h.counter(t, "fanbridge.notifications.reconnects", "reason", "socket_error"))
	assert.EqualValues(t, lanes, h.counter(t, "fanbridge.notifications.reconnects", "reason", "socket_closing"))
	assert.EqualValues(t, 2*lanes, h.counter(t, "fanbridge.notifications.channels", "origin", "created"))
	assert.Zero(t, h.counter(t, "fanbridge.notifications.channels", "origin", "reused"))
}

// A second notice while the first replacements still overlap their old channels makes each lane
// close its old channel before it opens a third; every lane stays subscribed throughout. The
// source then holds 20 channels, so each lane connects again one that was closed instead of
// creating one, which would evict the oldest.
func TestSecondNoticeDuringOverlapKeepsEveryLaneSubscribed(t *testing.T) {
	const lanes = notifications.MaxChannels
	h, firsts := lanesHarness(t, notifications.WithOverlap(time.Second))
	ctx := h.start(t)
	p := &publisher{h: h, firsts: firsts}
	waitReplaced(t, h, ctx, lanes, lanes)
	require.Equal(t, lanes, h.srv.SendSocketClosing())
	require.NoError(t, h.srv.WaitChannels(ctx, func(live []genesystest.ChannelInfo, n int) bool {
		if n < 2*lanes || len(live) < lanes {
			return false
		}
		for _, c := range live[len(live)-lanes:] { // the replacements, newest last
			if !c.Connected || c.Topics == 0 {
				return false
			}
		}
		return true
	}))
	p.all(t)
	got := h.srv.SendSocketClosing()
	require.GreaterOrEqual(t, got, lanes)
	t.Logf("second notice reached %d sockets", got)
	p.all(t)
	waitReplaced(t, h, ctx, 2*lanes, 3*lanes)
	p.all(t)
	h.rec.waitCount(t, ctx, len(p.sent))
	assertExactlyOnce(t, p.sent, h.rec.snapshot())
	assert.Zero(t, h.srv.EvictedInUse(), "channels in use evicted")
	assert.Zero(t, h.counter(t, "fanbridge.notifications.reconnects", "reason", "socket_error"))
	assert.EqualValues(t, 2*lanes, h.counter(t, "fanbridge.notifications.reconnects", "reason", "socket_closing"))
	assert.EqualValues(t, 2*lanes, h.counter(t, "fanbridge.notifications.channels", "origin", "created"))
	assert.EqualValues(t, lanes, h.counter(t, "fanbridge.notifications.channels", "origin", "reused"))
}

// onLog is a slog.Handler that calls f with the message of every record, from the goroutine that
// logs it.
type onLog func(msg string)

func (f onLog) Enabled(context.Context, slog.Level) bool { return true }
func (f onLog) Handle(_ context.Context, r slog.Record) error {
	f(r.Message)
	return nil
}
func (f onLog) WithAttrs([]slog.Attr) slog.Handler { return f }
func (f onLog) WithGroup(string) slog.Handler      { return f }

// Opening a channel fails again and again for one lane while the others stay connected: first
// Genesys refuses the socket, then subscribing fails. Genesys keeps every channel created for 24
// hours and the 21st evicts the oldest, so a lane that created a channel per attempt would soon
// evict the channels the other lanes use. Each attempt connects the channel of the one before
// instead: one channel is created in all, none is evicted, and the other lanes lose no event,
// including those published between the attempts.
func TestRepeatedConnectFailuresEvictNoChannelInUse(t *testing.T) {
	const (
		lanes         = notifications.MaxChannels
		refused       = 10 // socket upgrades refused
		subscribeFail = 3  // subscriptions failed, each after the client's 5 tries
		clientTries   = 5  // retry.DefaultMaxAttempts, the harness' client policy
	)
	var (
		mu       sync.Mutex
		between  func() // publishes to the healthy lanes; called after each failed attempt
		attempts int
	)
	logger := slog.New(onLog(func(msg string) {
		if msg != "notifications: opening a channel failed, retrying" {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		attempts++
		if between != nil {
			between()
		}
	}))
	h, firsts := lanesHarness(t, notifications.WithLogger(logger))
	ctx := h.start(t)
	waitReplaced(t, h, ctx, lanes, lanes)
	before := map[string]bool{}
	for _, c := range h.srv.Channels() {
		before[c.ID] = true
	}

	broken := lanes - 1
	healthy := &publisher{h: h, firsts: slices.Delete(slices.Clone(firsts), broken, broken+1)}
	var unreached []int64 // events between attempts that found no socket of a healthy lane
	mu.Lock()
	between = func() {
		for _, topic := range healthy.firsts {
			healthy.seq++
			if _, n := h.srv.Publish(topic, map[string]any{"seq": healthy.seq}); n == 1 {
				healthy.sent = append(healthy.sent, healthy.seq)
			} else {
				unreached = append(unreached, healthy.seq)
			}
		}
	}
	mu.Unlock()
	h.srv.Fail(genesystest.Fault{Method: http.MethodGet, Path: "/channels/", Status: http.StatusServiceUnavailable, Times: refused})
	h.srv.Fail(genesystest.Fault{Method: http.MethodPut, Path: "/api/v2/notifications/channels/", Status: http.StatusServiceUnavailable,
		Times: subscribeFail * clientTries})
	dropped := h.srv.DisconnectTopic(firsts[broken])
	require.Len(t, dropped, 1)

	// The broken lane is back once its channel has had a socket per subscription attempt and is
	// subscribed, and every lane has exactly one connected channel.
	waitReplaced(t, h, ctx, lanes+1, lanes+subscribeFail+1)
	mu.Lock()
	between = nil
	assert.Equal(t, refused+subscribeFail, attempts, "failed attempts")
	assert.Empty(t, unreached, "events published while a healthy lane had no socket")
	mu.Unlock()
	assert.Zero(t, h.srv.PendingFaults())

	for _, c := range h.srv.Channels() {
		switch {
		case c.ID == dropped[0]:
			assert.False(t, c.Connected, "the broken lane's old channel stays unused")
		case before[c.ID]:
			assert.True(t, c.Connected, "a healthy lane kept its channel")
			assert.Equal(t, 1, c.Sockets, "a healthy lane never reconnected")
		default:
			assert.True(t, c.Connected)
			assert.Equal(t, subscribeFail+1, c.Sockets, "every attempt that got a socket used the one new channel")
		}
	}

	p := &publisher{h: h, firsts: firsts, seq: 1_000_000}
	p.all(t)
	sent := append(healthy.sent, p.sent...)
	h.rec.waitCount(t, ctx, len(sent))
	assertExactlyOnce(t, sent, h.rec.snapshot())
	assert.EqualValues(t, 1, h.counter(t, "fanbridge.notifications.reconnects", "", ""), "only the broken lane reconnected")
	assert.EqualValues(t, 1, h.counter(t, "fanbridge.notifications.reconnects", "reason", "socket_error"))
	assert.EqualValues(t, lanes+1, h.counter(t, "fanbridge.notifications.channels", "origin", "created"))
}

// One lane's socket breaks again and again while the others stay connected. Each break makes the
// lane take another channel, and Genesys keeps the broken ones; once 20 channels of the source
// live, the lane connects again one it has closed instead of creating one, which would evict the
// oldest channel, in use by another lane.
func TestBreakingSocketReusesChannelsAtTheLimit(t *testing.T) {
	const (
		lanes  = notifications.MaxChannels
		breaks = genesys.MaxChannels - lanes + 5
	)
	h, firsts := lanesHarness(t)
	ctx := h.start(t)
	waitReplaced(t, h, ctx, lanes, lanes)
	broken := lanes - 1
	p := &publisher{h: h, firsts: firsts}
	for i := 1; i <= breaks; i++ {
		require.Len(t, h.srv.DisconnectTopic(firsts[broken]), 1, "break %d", i)
		waitReplaced(t, h, ctx, min(lanes+i, genesys.MaxChannels), lanes+i)
		p.all(t)
	}
	h.rec.waitCount(t, ctx, len(p.sent))
	assertExactlyOnce(t, p.sent, h.rec.snapshot())
	assert.EqualValues(t, breaks, h.counter(t, "fanbridge.notifications.reconnects", "reason", "socket_error"))
	assert.EqualValues(t, genesys.MaxChannels, h.counter(t, "fanbridge.notifications.channels", "origin", "created"))
	assert.EqualValues(t, lanes+breaks-genesys.MaxChannels, h.counter(t, "fanbridge.notifications.channels", "origin", "reused"))
}

// A channel that Genesys no longer has (another client with the same OAuth credentials created 20
// more, so it was evicted) is given up and another one opened, whether the socket or the
// subscription finds it gone; Run goes on.
func TestChannelGoneBeforeSubscribedIsReplaced(t *testing.T) {
	for _, tc := range []struct {
		name, method, path string
	}{
		{"before its socket connects", http.MethodGet, "/channels/"},
		{"before it is subscribed", http.MethodPut, "/api/v2/notifications/channels/"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var gone atomic.Int32
			logger := slog.New(onLog(func(msg string) {
				if strings.HasPrefix(msg, "notifications: Genesys no longer has the channel") {
					gone.Add(1)
				}
			}))
			h := newHarness(t, []string{presence}, nil, notifications.WithLogger(logger), patientHeartbeat)
			other, err := genesys.NewClient(genesys.USEast1, genesystest.DefaultClientID, genesystest.DefaultClientSecret,
				genesys.WithBaseURL(h.srv.URL), genesys.WithTokenURL(h.srv.TokenURL()))
			require.NoError(t, err)
			var (
				once      sync.Once
				hookErr   error
				evictedBy = make(chan struct{})
			)
			h.srv.SetHook(func(r *http.Request) {
				if r.Method != tc.method || !strings.HasPrefix(r.URL.Path, tc.path) {
					return
				}
				once.Do(func() {
					defer close(evictedBy)
					for range genesys.MaxChannels {
						if _, err := other.CreateChannel(r.Context()); err != nil {
							hookErr = err
							return
						}
					}
				})
			})
			ctx := h.start(t)
			require.NoError(t, h.srv.WaitSubscribed(ctx, presence, 1))
			recv(t, ctx, evictedBy)
			require.NoError(t, hookErr)
			assert.Equal(t, 1+genesys.MaxChannels+1, h.srv.ChannelsCreated())
			assert.EqualValues(t, 1, gone.Load(), "warnings about a channel gone")
			assert.EqualValues(t, 2, h.counter(t, "fanbridge.notifications.channels", "origin", "created"))

			sent := publish(h.srv, presence, 1, 3)
			require.Len(t, sent, 3)
			h.rec.waitCount(t, ctx, 3)
			assertExactlyOnce(t, sent, h.rec.snapshot())
			select {
			case err := <-h.runErr:
				t.Fatalf("Run returned %v", err)
			default:
			}
		})
	}
}

// The socket endpoint refusing the handshake with a 404 or a 410 does not make a channel gone while
// the API still has it (a proxy in front of the sockets, say): the channel still counts against
// the limit of 20, so the lane connects it again instead of creating another.
func TestHandshakeRefusedAloneKeepsTheChannel(t *testing.T) {
	for _, status := range []int{http.StatusNotFound, http.StatusGone} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			var gone atomic.Int32
			logger := slog.New(onLog(func(msg string) {
				if strings.HasPrefix(msg, "notifications: Genesys no longer has the channel") {
					gone.Add(1)
				}
			}))
			h := newHarness(t, []string{presence}, nil, notifications.WithLogger(logger), patientHeartbeat)
			const refusals = 3
			h.srv.Fail(genesystest.Fault{Method: http.MethodGet, Path: "/channels/", Status: status, Times: refusals})
			ctx := h.start(t)
			require.NoError(t, h.srv.WaitSubscribed(ctx, presence, 1))
			assert.Zero(t, h.srv.PendingFaults())
			assert.Equal(t, 1, h.srv.ChannelsCreated(), "a channel Genesys still has was given up")
			assert.Zero(t, gone.Load(), "warnings about a channel gone")
			assert.Equal(t, refusals+1, h.srv.Count(http.MethodGet, "/channels/"), "handshakes")
			assert.EqualValues(t, 1, h.counter(t, "fanbridge.notifications.channels", "origin", "created"))

			sent := publish(h.srv, presence, 1, 3)
			require.Len(t, sent, 3)
			h.rec.waitCount(t, ctx, 3)
			assertExactlyOnce(t, sent, h.rec.snapshot())
		})
	}
}

// An answer to a channel creation is lost after Genesys created the channel (a gateway answers
// 503). The creation is not sent again, and the source counts the channel it cannot see until it
// would expire: at 20 it connects an unused channel again instead of creating a 21st, which would
// evict the oldest channel, in use by a healthy lane.
func TestLostCreationAnswerEvictsNoChannelInUse(t *testing.T) {
	const (
		lanes     = notifications.MaxChannels
		lastLane  = 500 // topics of the last lane, so that its channel can be told apart
		allTopics = (lanes-1)*genesys.MaxTopicsPerChannel + lastLane
	)
	topics := make([]string, allTopics)
	firsts := make([]string, lanes)
	for i := range topics {
		topics[i] = userTopic(i)
		if i%genesys.MaxTopicsPerChannel == 0 {
			firsts[i/genesys.MaxTopicsPerChannel] = topics[i]
		}
	}
	h := newHarness(t, topics, nil, notifications.WithMaxChannels(lanes), patientHeartbeat)
	ctx := h.start(t)
	waitReplaced(t, h, ctx, lanes, lanes)
	// Break a lane that does not hold the oldest channel, which Genesys would evict first.
	broken := lanes - 1
	if h.srv.Channels()[0].Topics == lastLane {
		broken = 0
	}
	for i := 1; i < genesys.MaxChannels-lanes; i++ {
		require.Len(t, h.srv.DisconnectTopic(firsts[broken]), 1)
		waitReplaced(t, h, ctx, lanes+i, lanes+i)
	}
	// The source now counts 19 channels; Genesys creates the 20th, and its answer is lost.
	h.srv.Fail(genesystest.Fault{Method: http.MethodPost, Path: "/api/v2/notifications/channels", Status: http.StatusServiceUnavailable, Processed: true})
	require.Len(t, h.srv.DisconnectTopic(firsts[broken]), 1)
	waitReplaced(t, h, ctx, genesys.MaxChannels, genesys.MaxChannels)
	assert.Equal(t, genesys.MaxChannels, h.srv.Count(http.MethodPost, "/api/v2/notifications/channels"), "creations sent")
	assert.EqualValues(t, genesys.MaxChannels-lanes, h.counter(t, "fanbridge.notifications.reconnects", "reason", "socket_error"),
		"only the broken lane lost its socket")
	assert.EqualValues(t, genesys.MaxChannels-1, h.counter(t, "fanbridge.notifications.channels", "origin", "created"))
	assert.EqualValues(t, 1, h.counter(t, "fanbridge.notifications.channels", "origin", "unknown"))
	assert.EqualValues(t, 1, h.counter(t, "fanbridge.notifications.channels", "origin", "reused"))
	p := &publisher{h: h, firsts: firsts}
	p.all(t)
	h.rec.waitCount(t, ctx, len(p.sent))
	assertExactlyOnce(t, p.sent, h.rec.snapshot())
}

// Every channel creation fails with a 503 for a while, as in an outage of Genesys' API, whether or
// not Genesys created the channels. The source counts each as a channel until it would expire,
// so these alone soon fill the 20 places; it must not wait 24 hours for them to expire. Creating
// once more can only evict the oldest of them, none of which is in use, so the source goes on
// creating, and once the outage is over every lane is subscribed, with no channel in use evicted.
// The fake answers only after it has acted, so the grace period in which Genesys may still carry
// out a lost creation is cut short: with the real one, the outage would have to outlast it.
func TestCreationOutageDoesNotStopTheSource(t *testing.T) {
	const (
		lanes    = notifications.MaxChannels
		failures = 2*genesys.MaxChannels - 5 // more than the 20 places
	)
	for _, tc := range []struct {
		name      string
		processed bool
	}{
		{"Genesys created the channels", true},
		{"Genesys created nothing", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, firsts := lanesHarness(t, notifications.WithLateCreationGrace(time.Millisecond))
			h.srv.Fail(genesystest.Fault{Method: http.MethodPost, Path: "/api/v2/notifications/channels", Status: http.StatusServiceUnavailable,
				Processed: tc.processed, Times: failures})
			ctx, cancel := context.WithTimeout(h.start(t), 15*time.Second)
			defer cancel()
			created := lanes
			if tc.processed {
				created += failures
			}
			waitReplaced(t, h, ctx, created, lanes)
			assert.Zero(t, h.srv.PendingFaults())
			assert.Equal(t, failures+lanes, h.srv.Count(http.MethodPost, "/api/v2/notifications/channels"), "creations sent")
			assert.EqualValues(t, failures, h.counter(t, "fanbridge.notifications.channels", "origin", "unknown"))
			assert.EqualValues(t, lanes, h.counter(t, "fanbridge.notifications.channels", "origin", "created"))
			p := &publisher{h: h, firsts: firsts}
			p.all(t)
			h.rec.waitCount(t, ctx, len(p.sent))
			assertExactlyOnce(t, p.sent, h.rec.snapshot())
		})
	}
}

// Genesys announces maintenance while every channel creation fails. Each lane keeps its channel,
// in use, while it tries to create a successor; the lost creations fill the places left, and the
// lanes wait. When Genesys then closes the sockets, the channels they were on are no longer in
// use: the lanes connect them again at once instead of waiting for a place to expire.
func TestMaintenanceDuringCreationOutageRecovers(t *testing.T) {
	const lanes = notifications.MaxChannels
	h, firsts := lanesHarness(t)
	ctx, cancel := context.WithTimeout(h.start(t), 15*time.Second)
	defer cancel()
	waitReplaced(t, h, ctx, lanes, lanes)
	h.srv.Fail(genesystest.Fault{Method: http.MethodPost, Path: "/api/v2/notifications/channels", Status: http.StatusServiceUnavailable,
		Processed: true, Times: genesys.MaxChannels - lanes})
	require.Equal(t, lanes, h.srv.SendSocketClosing())
	h.waitCounter(t, ctx, "fanbridge.notifications.channel_limit_waits", "", "", lanes)
	assert.Zero(t, h.srv.PendingFaults())
	p := &publisher{h: h, firsts: firsts}
	p.all(t) // every lane still reads its channel while it waits

	require.Equal(t, lanes, h.srv.Disconnect())
	// A lane may connect the channel another lane was on, which shows that lane's topics until
	// it subscribes its own: wait for every lane's subscription first.
	waitRequests(t, h, ctx, http.MethodPut, "/api/v2/notifications/channels/", 2*lanes)
	waitReplaced(t, h, ctx, genesys.MaxChannels, 2*lanes)
	p.all(t)
	h.rec.waitCount(t, ctx, len(p.sent))
	assertExactlyOnce(t, p.sent, h.rec.snapshot())
	assert.EqualValues(t, genesys.MaxChannels-lanes, h.counter(t, "fanbridge.notifications.channels", "origin", "unknown"))
	assert.EqualValues(t, lanes, h.counter(t, "fanbridge.notifications.channels", "origin", "reused"))
	assert.EqualValues(t, lanes, h.counter(t, "fanbridge.notifications.channels", "origin", "created"))
}

// Genesys answers a channel creation with a 2xx that lacks the id and connectUri: it did create
// the channel, which counts against the 20 for 24 hours, though the answer cannot be used. The
// source must count it as a creation whose outcome is unknown, not forget it as a failure, or
// each retry would create one more channel it does not count, and at 20 Genesys would evict the
// oldest, which may be in use. Here one lane's socket breaks until the source has created 19
// channels; the 20th creation's answer is unusable, and the lane then connects again an unused
// channel instead of creating a 21st.
func TestUnusableCreationAnswerIsCounted(t *testing.T) {
	const channels = "/api/v2/notifications/channels"
	var posts atomic.Int32
	rewrite := func(resp *http.Response) error {
		if resp.Request.Method != http.MethodPost || resp.Request.URL.Path != channels || posts.Add(1) != genesys.MaxChannels {
			return nil
		}
		_ = resp.Body.Close()
		resp.Body = io.NopCloser(strings.NewReader(`{}`))
		resp.ContentLength = 2
		resp.Header.Set("Content-Length", "2")
		return nil
	}
	h := newHarnessVia(t, rewrite, []string{presence}, nil, patientHeartbeat)
	ctx := h.start(t)
	require.NoError(t, h.srv.WaitSubscribed(ctx, presence, 1))
	for i := 1; i < genesys.MaxChannels; i++ {
		require.Len(t, h.srv.DisconnectTopic(presence), 1)
		for h.srv.Count(http.MethodGet, "/channels/") <= i { // the handshake of the next socket
			select {
			case <-ctx.Done():
				t.Fatalf("no socket after %d breaks", i)
			case <-time.After(5 * time.Millisecond):
			}
		}
		require.NoError(t, h.srv.WaitSubscribed(ctx, presence, 1))
	}
	assert.Equal(t, genesys.MaxChannels, h.srv.ChannelsCreated(), "a channel created beyond the unusable answer")
	assert.EqualValues(t, 1, h.counter(t, "fanbridge.notifications.channels", "origin", "unknown"))
	assert.EqualValues(t, 1, h.counter(t, "fanbridge.notifications.channels", "origin", "reused"))
	sent := publish(h.srv, presence, 1, 3)
	require.Len(t, sent, 3)
	h.rec.waitCount(t, ctx, len(sent))
	assertExactlyOnce(t, sent, h.rec.snapshot())
}

// A channel id from Genesys reaches the logs (and Run's error) as it is: one that holds a terminal
// escape or a bidirectional override is refused by the genesys client as the answer is read, so
// the creation counts as one whose outcome is unknown, and the next attempt creates another.
func TestChannelIDWithEscapesIsNeverLogged(t *testing.T) {
	const channels = "/api/v2/notifications/channels"
	var rewritten atomic.Bool
	rewrite := func(resp *http.Response) error {
		if resp.Request.Method != http.MethodPost || resp.Request.URL.Path != channels || !rewritten.CompareAndSwap(false, true) {
			return nil
		}
		var ch map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&ch); err != nil {
			return err
		}
		_ = resp.Body.Close()
		ch["id"] = "5f3c\u009b2J\u202edeliver\x1b[0m"
		b, err := json.Marshal(ch)
		if err != nil {
			return err
		}
		resp.Body = io.NopCloser(bytes.NewReader(b))
		resp.ContentLength = int64(len(b))
		resp.Header.Set("Content-Length", strconv.Itoa(len(b)))
		return nil
	}
	logs := &lockedBuffer{}
	// The JSON handler writes C1 controls and bidirectional formatting characters as they are.
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h := newHarnessVia(t, rewrite, []string{presence}, nil, notifications.WithLogger(logger), patientHeartbeat)
	ctx := h.start(t)
	require.NoError(t, h.srv.WaitSubscribed(ctx, presence, 1))
	assert.True(t, rewritten.Load())
	assert.EqualValues(t, 1, h.counter(t, "fanbridge.notifications.channels", "origin", "unknown"))
	assert.EqualValues(t, 1, h.counter(t, "fanbridge.notifications.channels", "origin", "created"))
	out := logs.String()
	require.Contains(t, out, "channel id", "the refusal is logged")
	assert.Equal(t, -1, strings.IndexFunc(out, func(r rune) bool {
		return r != '\n' && (unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r))
	}), "logs %q", out)
}

// lockedBuffer is a bytes.Buffer safe for the concurrent writes of a logger.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A request that changes a channel's subscriptions may be carried out by Genesys after the client
// gave up on it, as a creation may: the removal of a replaced channel's subscriptions cut short
// once the old socket has been read to the end, a request to subscribe again cut short by a
// maintenance notice, a request the client sent again after a 5xx. Such a channel is not connected
// again by a lane at the limit of 20 until Genesys can no longer carry the request out: the lane
// connects another unused channel. Otherwise the late removal would empty the subscriptions of
// the lane that reuses the channel, whose socket would carry heartbeats and no event until the
// channel was next replaced, or a late request to subscribe would replace them with another lane's.
// The channel held back still counts: no channel is created beyond 20, none is evicted.
func TestChannelWithUnsettledSubscriptionsIsNotReused(t *testing.T) {
	path := func(id string) string { return "/api/v2/notifications/channels/" + id + "/subscriptions" }
	for _, tc := range []struct {
		name string
		// replace has the lane replace its channel old while a request that changes old's
		// subscriptions is left unsettled; held, when not nil, is where the fake holds a
		// request to old until the test releases it, to carry it out then.
		replace func(t *testing.T, h *harness, ctx context.Context, old string, held <-chan struct{})
		hold    bool
	}{
		{name: "removal cut short", hold: true, replace: func(t *testing.T, h *harness, ctx context.Context, _ string, held <-chan struct{}) {
			require.Equal(t, 1, h.srv.SendSocketClosing())
			recv(t, ctx, held) // the removal, once the successor is subscribed
		}},
		{name: "subscribing again cut short", hold: true, replace: func(t *testing.T, h *harness, ctx context.Context, old string, held <-chan struct{}) {
			notice := fmt.Sprintf(`{"topicName":"v2.system.no_longer_subscribed.%s","version":"2","eventBody":{"message":"subscriptions dropped"}}`, old)
			require.Equal(t, 1, h.srv.SendRaw([]byte(notice)))
			recv(t, ctx, held)
			require.Equal(t, 1, h.srv.SendSocketClosing())
		}},
		{name: "removal answered after a retry", replace: func(t *testing.T, h *harness, ctx context.Context, old string, _ <-chan struct{}) {
			h.srv.Fail(genesystest.Fault{Method: http.MethodPut, Path: path(old), Status: http.StatusBadGateway, Processed: true})
			require.Equal(t, 1, h.srv.SendSocketClosing())
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, []string{presence}, []genesystest.Option{genesystest.WithSocketClosingDelay(-1)},
				notifications.WithOverlap(50*time.Millisecond), patientHeartbeat)
			ctx := h.start(t)
			// subscribedOther returns the channel, other than not, that the lane reads, once its
			// other channels are closed; "" until then.
			subscribedOther := func(live []genesystest.ChannelInfo, not string) string {
				id := ""
				for _, c := range live {
					switch {
					case !c.Connected:
					case c.ID == not || id != "" || c.Topics == 0:
						return ""
					default:
						id = c.ID
					}
				}
				return id
			}
			var cur string
			replaced := func(created int) {
				t.Helper()
				prev := cur
				require.NoError(t, h.srv.WaitChannels(ctx, func(live []genesystest.ChannelInfo, n int) bool {
					cur = subscribedOther(live, prev)
					return cur != "" && n == created
				}), "live %+v", h.srv.Channels())
			}
			replaced(1)
			// Broken sockets have the lane create channels up to 19.
			for i := 2; i < genesys.MaxChannels; i++ {
				require.Len(t, h.srv.DisconnectTopic(presence), 1)
				replaced(i)
			}
			old := cur
			var (
				held    = make(chan struct{}, 1)
				release = make(chan struct{})
				once    sync.Once
			)
			if tc.hold {
				h.srv.SetHook(func(r *http.Request) {
					first := false
					if r.Method == http.MethodPut && r.URL.Path == path(old) {
						once.Do(func() { first = true })
					}
					if !first {
						return
					}
					body, _ := io.ReadAll(r.Body) // read before the client gives up
					r.Body = io.NopCloser(bytes.NewReader(body))
					held <- struct{}{}
					select {
					case <-release:
					case <-t.Context().Done():
					}
				})
			}
			tc.replace(t, h, ctx, old, held)
			replaced(genesys.MaxChannels) // old is closed and given back
			// At the limit of 20, the lane connects an unused channel again.
			require.Equal(t, 1, h.srv.SendSocketClosing())
			replaced(genesys.MaxChannels)
			assert.NotEqual(t, old, cur, "the channel whose subscriptions were left unsettled is connected again")
			// Genesys carries out the request it held.
			close(release)
			waitRequests(t, h, ctx, http.MethodPut, path(old), h.srv.Count(http.MethodPut, path(old)))

			sent := publish(h.srv, presence, 1, 3)
			require.Len(t, sent, 3, "no socket is subscribed to the lane's topic: events are lost; live %+v", h.srv.Channels())
			h.rec.waitCount(t, ctx, len(sent))
			assertExactlyOnce(t, sent, h.rec.snapshot())
			assert.Equal(t, genesys.MaxChannels, h.srv.ChannelsCreated())
			assert.Zero(t, h.srv.EvictedInUse(), "channels in use evicted")
			assert.EqualValues(t, 1, h.counter(t, "fanbridge.notifications.channels", "origin", "reused"))
		})
	}
}
