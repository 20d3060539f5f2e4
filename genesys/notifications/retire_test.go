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
// socket in all, not a stretch of silence, which steady traffic would never leave. Each event is
// published once the one before is dispatched, so that the dispatcher is never behind.
func TestReplacedChannelClosesUnderSteadyTraffic(t *testing.T) {
	h := newHarness(t, []string{presence}, []genesystest.Option{genesystest.WithSocketClosingDelay(-1)},
		notifications.WithOverlap(50*time.Millisecond))
	ctx := h.start(t)
	require.NoError(t, h.srv.WaitSubscribed(ctx, presence, 1))
	first := h.srv.Channels()[0].ID
	require.Equal(t, 1, h.srv.SendSocketClosing())
	require.NoError(t, h.srv.WaitSubscribed(ctx, presence, 2))
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
