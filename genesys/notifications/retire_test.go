package notifications_test

import (
	"context"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/eventbridge"
	"github.com/fanbridge/fanbridge/genesys"
	"github.com/fanbridge/fanbridge/genesys/genesystest"
	"github.com/fanbridge/fanbridge/genesys/notifications"
)

// A channel is replaced while the dispatcher is stuck: the reader of its socket holds an event for
// the full buffer, and the messages Genesys sent after it wait unread in the socket. The socket
// used to be closed at the end of the overlap, counted on the wall clock, and the close handshake
// read and dropped every message still in it, uncounted. It must stay open until its reader has
// caught up and then found nothing to read for the overlap; even past the channel's expiry, when
// Genesys closes the socket, what it sent before is read.
func TestReplacedChannelIsReadToTheEndBehindASlowDispatcher(t *testing.T) {
	const (
		overlap = 50 * time.Millisecond
		events  = 20
	)
	for _, tc := range []struct {
		name     string
		lifetime time.Duration // of a channel; zero for 24 hours
		// notice replaces the channel with a socket_closing notice, Genesys never closing the
		// socket; otherwise it is replaced at half its life.
		notice bool
		// afterExpiry keeps the dispatcher stuck until Genesys has expired the old channel, which
		// closes its socket.
		afterExpiry bool
	}{
		{name: "socket closing notice", notice: true},
		{name: "expiry", lifetime: 4 * time.Second},
		{name: "expiry, dispatcher back after the old channel expired", lifetime: 2 * time.Second, afterExpiry: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			release := make(chan struct{})
			unblock := sync.OnceFunc(func() { close(release) })
			rec := newRecorder()
			d := eventbridge.DispatcherFunc(func(ctx context.Context, e *fanbridge.Event) error {
				select {
				case <-release:
				case <-ctx.Done():
					return ctx.Err()
				}
				return rec.Dispatch(ctx, e)
			})
			srvOpts := []genesystest.Option{genesystest.WithSocketClosingDelay(-1)}
			if tc.lifetime > 0 {
				srvOpts = append(srvOpts, genesystest.WithChannelLifetime(tc.lifetime))
			}
			logs := laneLog{kept: make(chan struct{}, 8), keptPastExpiry: make(chan struct{}, 8)}
			h := newHarnessWith(t, d, []string{presence}, srvOpts, notifications.WithBufferSize(1),
				notifications.WithOverlap(overlap), notifications.WithLogger(slog.New(logs)))
			// The successor's creation waits until the events are in the old socket, so that
			// they come over it alone.
			var creations atomic.Int32
			creating, publishing := make(chan struct{}), make(chan struct{})
			published := sync.OnceFunc(func() { close(publishing) })
			if tc.notice {
				h.srv.SetHook(func(r *http.Request) {
					if r.Method == http.MethodPost && r.URL.Path == "/api/v2/notifications/channels" && creations.Add(1) == 2 {
						close(creating)
						<-publishing
					}
				})
			}
			ctx := h.start(t)
			// Before Run is stopped and the fake closed, so that a failure does not wait for the
			// drain timeout, nor the fake for the hook.
			t.Cleanup(unblock)
			t.Cleanup(published)
			require.NoError(t, h.srv.WaitSubscribed(ctx, presence, 1))
			first := h.srv.Channels()[0].ID
			if tc.notice {
				require.Equal(t, 1, h.srv.SendSocketClosing())
				recv(t, ctx, creating)
			}
			sent := publish(h.srv, presence, 1, events)
			require.Len(t, sent, events)
			// One event in Dispatch, one in the buffer, one held by the reader; the rest wait in
			// the socket.
			h.waitCounter(t, ctx, "fanbridge.notifications.messages", "kind", "event", 3)
			published()

			// The overlap is over once the successor is subscribed and the overlap has passed:
			// the old channel must still be open then.
			wctx, stopWatch := context.WithCancel(ctx)
			defer stopWatch()
			closed := make(chan struct{})
			go func() {
				// Still live, but without a socket: closed by the source, not expired.
				if h.srv.WaitChannels(wctx, func(live []genesystest.ChannelInfo, _ int) bool {
					return slices.ContainsFunc(live, func(c genesystest.ChannelInfo) bool { return c.ID == first && !c.Connected })
				}) == nil {
					close(closed)
				}
			}()
			select {
			case <-logs.kept:
			case <-closed:
				t.Fatalf("the replaced channel was closed with %d events unread in its socket", events-3)
			case <-ctx.Done():
				t.Fatal("the replaced channel was not kept open")
			}
			if tc.afterExpiry {
				require.NoError(t, h.srv.WaitChannels(ctx, func(live []genesystest.ChannelInfo, _ int) bool {
					return !slices.ContainsFunc(live, func(c genesystest.ChannelInfo) bool { return c.ID == first })
				}), "the fake expires the old channel")
				recv(t, ctx, logs.keptPastExpiry)
			} else {
				assert.True(t, connected(h.srv.Channels(), first), "the replaced channel is still open")
			}
			unblock()
			rec.waitCount(t, ctx, events)
			assertExactlyOnce(t, sent, rec.snapshot())
			assert.Zero(t, h.counter(t, "fanbridge.notifications.events", "outcome", "lost"))
			if tc.notice {
				// Read to the end, and idle for the overlap, the old socket is closed: Genesys
				// never closes it here.
				recv(t, ctx, closed)
				require.NoError(t, h.srv.WaitSubscribed(ctx, presence, 1))
			}
		})
	}
}

// connected reports whether the channel id is live and has a socket connected.
func connected(live []genesystest.ChannelInfo, id string) bool {
	return slices.ContainsFunc(live, func(c genesystest.ChannelInfo) bool { return c.ID == id && c.Connected })
}

// A replaced channel whose reader keeps up is closed soon after its replacement is subscribed,
// even while events keep coming over it: the overlap is the time its reader spent waiting for the
// socket in all, not a stretch of silence, which steady traffic would never leave. The removal of
// its subscriptions fails here, so that the events do keep coming over it. Each event is published
// once the one before is dispatched, so that the dispatcher is never behind.
func TestReplacedChannelClosesUnderSteadyTraffic(t *testing.T) {
	logs := laneLog{unsubscribeFailed: make(chan struct{}, 4)}
	h := newHarness(t, []string{presence}, []genesystest.Option{genesystest.WithSocketClosingDelay(-1)},
		notifications.WithOverlap(50*time.Millisecond), notifications.WithLogger(slog.New(logs)))
	ctx := h.start(t)
	require.NoError(t, h.srv.WaitSubscribed(ctx, presence, 1))
	first := h.srv.Channels()[0].ID
	h.srv.Fail(genesystest.Fault{Method: http.MethodPut, Path: "/api/v2/notifications/channels/" + first + "/subscriptions", Status: http.StatusBadRequest})
	require.Equal(t, 1, h.srv.SendSocketClosing())
	require.NoError(t, h.srv.WaitSubscribed(ctx, presence, 2))
	recv(t, ctx, logs.unsubscribeFailed)
	var sent []int64
	for seq := 1; connected(h.srv.Channels(), first); seq++ {
		require.NoError(t, ctx.Err(), "the replaced channel stayed open under steady traffic")
		sent = append(sent, publish(h.srv, presence, seq, seq)...)
		h.rec.waitCount(t, ctx, len(sent))
	}
	t.Logf("%d events published while the replaced channel was open", len(sent))
	assertExactlyOnce(t, sent, h.rec.snapshot())
}

// Close while a reader is behind the dispatcher closes its socket at once: the messages still
// unread in it are never read, and a warning says so.
func TestShutdownWarnsOfUnreadMessages(t *testing.T) {
	d := eventbridge.DispatcherFunc(func(ctx context.Context, e *fanbridge.Event) error {
		<-ctx.Done() // stuck until the drain timeout
		return ctx.Err()
	})
	logs := laneLog{unreadAtShutdown: make(chan struct{}, 4)}
	h := newHarnessWith(t, d, []string{presence}, nil, notifications.WithBufferSize(1),
		notifications.WithDrainTimeout(10*time.Millisecond), notifications.WithLogger(slog.New(logs)))
	ctx := h.start(t)
	require.NoError(t, h.srv.WaitSubscribed(ctx, presence, 1))
	require.Len(t, publish(h.srv, presence, 1, 10), 10)
	h.waitCounter(t, ctx, "fanbridge.notifications.messages", "kind", "event", 3)
	require.NoError(t, h.src.Close())
	assert.Len(t, logs.unreadAtShutdown, 1)
	assert.EqualValues(t, 3, h.counter(t, "fanbridge.notifications.events", "outcome", "lost"), "the events read")
}

// behind is a source whose dispatcher is stuck until release, with a buffer of one event, and
// whose first channel has been replaced after a socket_closing notice while events 1 to 20 waited
// in its socket, unread but for three: they came over it alone, since the successor's creation
// waited until they were published.
type behind struct {
	h             *harness
	ctx           context.Context
	rec           *recorder
	release       func()
	first, second string // the replaced channel and its successor
	sent          []int64
}

// replaceBehind builds a behind source; before, when not nil, is called with the first channel's
// id before it is replaced.
func replaceBehind(t *testing.T, logs laneLog, before func(h *harness, first string), opts ...notifications.Option) *behind {
	t.Helper()
	b := &behind{rec: newRecorder()}
	stuck := make(chan struct{})
	b.release = sync.OnceFunc(func() { close(stuck) })
	d := eventbridge.DispatcherFunc(func(ctx context.Context, e *fanbridge.Event) error {
		select {
		case <-stuck:
		case <-ctx.Done():
			return ctx.Err()
		}
		return b.rec.Dispatch(ctx, e)
	})
	b.h = newHarnessWith(t, d, []string{presence}, []genesystest.Option{genesystest.WithSocketClosingDelay(-1)},
		append([]notifications.Option{notifications.WithBufferSize(1), notifications.WithOverlap(50 * time.Millisecond),
			notifications.WithLogger(slog.New(logs))}, opts...)...)
	var creations atomic.Int32
	creating, publishing := make(chan struct{}), make(chan struct{})
	published := sync.OnceFunc(func() { close(publishing) })
	b.h.srv.SetHook(func(r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/api/v2/notifications/channels" && creations.Add(1) == 2 {
			close(creating)
			<-publishing
		}
	})
	b.ctx = b.h.start(t)
	// Before Run is stopped and the fake closed, so that a failure waits neither for the drain
	// timeout nor for the hook.
	t.Cleanup(b.release)
	t.Cleanup(published)
	require.NoError(t, b.h.srv.WaitSubscribed(b.ctx, presence, 1))
	b.first = b.h.srv.Channels()[0].ID
	if before != nil {
		before(b.h, b.first)
	}
	require.Equal(t, 1, b.h.srv.SendSocketClosing())
	recv(t, b.ctx, creating)
	b.sent = publish(b.h.srv, presence, 1, 20)
	require.Len(t, b.sent, 20)
	b.h.waitCounter(t, b.ctx, "fanbridge.notifications.messages", "kind", "event", 3)
	published()
	var second string
	require.NoError(t, b.h.srv.WaitChannels(b.ctx, func(live []genesystest.ChannelInfo, _ int) bool {
		i := slices.IndexFunc(live, func(c genesystest.ChannelInfo) bool { return c.ID != b.first && c.Connected && c.Topics == 1 })
		if i >= 0 {
			second = live[i].ID
		}
		return i >= 0
	}))
	b.second = second
	return b
}

// subscribedBesides returns a condition for WaitChannels: a channel other than those named is
// connected and subscribed.
func subscribedBesides(ids ...string) func([]genesystest.ChannelInfo, int) bool {
	return func(live []genesystest.ChannelInfo, _ int) bool {
		return slices.ContainsFunc(live, func(c genesystest.ChannelInfo) bool {
			return !slices.Contains(ids, c.ID) && c.Connected && c.Topics == 1
		})
	}
}

// waitAccounted waits until every event read has been dispatched or dropped as a duplicate.
func waitAccounted(t *testing.T, h *harness, ctx context.Context) {
	t.Helper()
	read := h.counter(t, "fanbridge.notifications.messages", "kind", "event")
	h.waitCounter(t, ctx, "fanbridge.notifications.events", "", "", read)
}

// The successor of a replaced channel must itself be replaced (a maintenance notice) while the
// replaced channel's socket is still read behind the dispatcher: the lane waits for that to end
// before it opens a third channel, so as to hold no more than two. Genesys then closes both
// sockets, as it does a minute after its notice. The lane must not wait on: no channel of it
// receives new events, and every event published until the dispatcher caught up with the old
// backlog would be lost. It opens the third channel at once, and the backlog is still dispatched.
func TestReplacementFailingWhileTheOldChannelIsReadIsReplacedAtOnce(t *testing.T) {
	logs := laneLog{replacing: make(chan struct{}, 8), failedWhileWaiting: make(chan struct{}, 8)}
	b := replaceBehind(t, logs, nil)
	h, ctx := b.h, b.ctx
	recv(t, ctx, logs.replacing)
	require.Equal(t, 2, h.srv.SendSocketClosing(), "the successor, and the old socket, whose reader is behind")
	recv(t, ctx, logs.replacing)
	require.Equal(t, 2, h.srv.Disconnect())

	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	require.NoError(t, h.srv.WaitChannels(wctx, subscribedBesides(b.first, b.second)),
		"no channel subscribed while the old backlog waits for the dispatcher: events published now are lost")
	recv(t, ctx, logs.failedWhileWaiting)
	later := publish(h.srv, presence, 21, 30)
	require.Len(t, later, 10)
	sent := append(b.sent, later...)
	b.release()
	b.rec.waitCount(t, ctx, len(sent))
	assertExactlyOnce(t, sent, b.rec.snapshot())
	assert.Zero(t, h.counter(t, "fanbridge.notifications.events", "outcome", "lost"))
	assert.Equal(t, 3, h.srv.ChannelsCreated())
}

// Once its successor is subscribed, a replaced channel's subscriptions are removed, so that its
// socket carries only what was already on its way. Left subscribed behind a dispatcher that stays
// behind, it would carry a second copy of every later event, so far behind the first that a dedup
// window shorter than the backlog (8 events here, 17 unread) no longer catches it: each would be
// dispatched twice. A removal refused for now is sent again after its wait. A 404 (the channel is
// gone) needs nothing more, and another failure leaves the channel subscribed, with a warning;
// either way the old socket is still read to the end and closed, and with a dedup window long
// enough every event is dispatched once.
func TestReplacedChannelIsUnsubscribed(t *testing.T) {
	for _, tc := range []struct {
		name       string
		status     int    // of the fault answering the removal; zero for none
		retryAfter string // of the fault
		removed    bool   // the subscriptions are removed in the end
	}{
		{name: "removed", removed: true},
		{name: "refused for now", status: http.StatusTooManyRequests, retryAfter: "3600", removed: true},
		{name: "channel gone", status: http.StatusNotFound},
		{name: "failed", status: http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			logs := laneLog{unsubscribeThrottled: make(chan time.Duration, 8), unsubscribeFailed: make(chan struct{}, 8)}
			var opts []notifications.Option
			if tc.removed {
				opts = append(opts, notifications.WithDedupWindow(8))
			}
			path := func(id string) string { return "/api/v2/notifications/channels/" + id + "/subscriptions" }
			b := replaceBehind(t, logs, func(h *harness, first string) {
				if tc.status != 0 {
					h.srv.Fail(genesystest.Fault{Method: http.MethodPut, Path: path(first), Status: tc.status, RetryAfter: tc.retryAfter})
				}
			}, opts...)
			h, ctx := b.h, b.ctx
			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			if tc.removed {
				require.NoError(t, h.srv.WaitChannels(wctx, func(live []genesystest.ChannelInfo, _ int) bool {
					return slices.ContainsFunc(live, func(c genesystest.ChannelInfo) bool { return c.ID == b.first && c.Topics == 0 })
				}), "the replaced channel keeps its subscriptions")
			} else {
				waitRequests(t, h, wctx, http.MethodPut, path(b.first), 2)
			}
			switch tc.status {
			case http.StatusTooManyRequests:
				// The reconnect policy's MaxRetryAfter, which defaults to its MaxInterval.
				assert.Equal(t, fastReconnect.MaxInterval, recv(t, ctx, logs.unsubscribeThrottled))
			case http.StatusBadRequest:
				recv(t, ctx, logs.unsubscribeFailed)
			}
			later := publish(h.srv, presence, 21, 40)
			require.Len(t, later, 20)
			sent := append(b.sent, later...)
			b.release()
			b.rec.waitCount(t, ctx, len(sent))
			// Read to the end, the old socket is closed: nothing more comes over it.
			require.NoError(t, h.srv.WaitChannels(ctx, func(live []genesystest.ChannelInfo, _ int) bool {
				return !connected(live, b.first)
			}))
			waitAccounted(t, h, ctx)
			assertExactlyOnce(t, sent, b.rec.snapshot())
			dups := h.counter(t, "fanbridge.notifications.events", "outcome", "duplicate")
			if tc.removed {
				assert.Zero(t, dups, "copies came over the replaced channel")
			} else {
				assert.EqualValues(t, 20, dups, "the replaced channel still subscribed carries a copy of each later event")
			}
			if tc.status != http.StatusBadRequest {
				assert.Empty(t, logs.unsubscribeFailed)
			}
			assert.Zero(t, h.counter(t, "fanbridge.notifications.events", "outcome", "lost"))
		})
	}
}

// An error no retry cures (credentials revoked) while a channel is replaced behind a stuck
// dispatcher ends Run at once, as Close would, with the error: it must not wait until a socket
// whose reader is behind has been read to the end, which the stuck dispatcher never allows. Those
// sockets are closed with the shutdown's warning, whether the channel is the one being replaced
// or an older one still being read.
func TestPermanentErrorDuringAReplacementEndsRunAtOnce(t *testing.T) {
	revoke := func(h *harness) {
		h.srv.Fail(genesystest.Fault{Path: "/oauth/token", Status: http.StatusUnauthorized, Code: "invalid_client", Times: 1000})
		h.srv.ExpireTokens()
	}
	for _, tc := range []struct {
		name string
		// start has a channel's reader behind a stuck dispatcher, revokes the credentials and
		// has the lane replace a channel.
		start func(t *testing.T, logs laneLog) *harness
	}{
		{"the channel replaced is behind", func(t *testing.T, logs laneLog) *harness {
			d := eventbridge.DispatcherFunc(func(ctx context.Context, _ *fanbridge.Event) error {
				<-ctx.Done() // stuck until the drain timeout
				return ctx.Err()
			})
			// A notice would wait unread behind the events: the channel is replaced at half
			// its life.
			h := newHarnessWith(t, d, []string{presence}, []genesystest.Option{genesystest.WithChannelLifetime(3 * time.Second)},
				notifications.WithBufferSize(1), notifications.WithDrainTimeout(50*time.Millisecond), notifications.WithLogger(slog.New(logs)))
			ctx := h.start(t)
			require.NoError(t, h.srv.WaitSubscribed(ctx, presence, 1))
			revoke(h)
			require.Len(t, publish(h.srv, presence, 1, 10), 10)
			h.waitCounter(t, ctx, "fanbridge.notifications.messages", "kind", "event", 3)
			return h
		}},
		{"a channel replaced earlier is still read", func(t *testing.T, logs laneLog) *harness {
			b := replaceBehind(t, logs, nil, notifications.WithDrainTimeout(50*time.Millisecond))
			revoke(b.h)
			require.Equal(t, 2, b.h.srv.Disconnect())
			return b.h
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			logs := laneLog{unreadAtShutdown: make(chan struct{}, 8)}
			h := tc.start(t, logs)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := recv(t, ctx, h.runErr)
			h.runErr <- err // for the harness' cleanup
			require.Error(t, err)
			assert.True(t, genesys.IsUnauthorized(err), "%v", err)
			assert.Len(t, logs.unreadAtShutdown, 1)
		})
	}
}
