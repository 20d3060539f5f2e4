package notifications_test

import (
	"context"
	"testing"
	"time"

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
	return newHarness(t, topics, nil, append([]notifications.Option{notifications.WithMaxChannels(notifications.MaxChannels)}, opts...)...), firsts
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

// waitReplaced blocks until at least created channels were made and exactly one connected,
// subscribed channel per lane is left. A few more may have been made: the fake, like Genesys,
// evicts a channel without a socket first, and that can be another lane's channel created an
// instant before, while a closed channel's socket is still counted as connected; that lane then
// opens another (its old channel still serves meanwhile).
func waitReplaced(t *testing.T, h *harness, ctx context.Context, created int) {
	t.Helper()
	require.NoError(t, h.srv.WaitChannels(ctx, func(live []genesystest.ChannelInfo, n int) bool {
		connected := 0
		for _, c := range live {
			if c.Connected && c.Topics > 0 {
				connected++
			}
		}
		return n >= created && connected == notifications.MaxChannels
	}), "created %d, live %+v", h.srv.ChannelsCreated(), h.srv.Channels())
}

// A maintenance notice makes every channel open its successor at the same time; with MaxChannels
// lanes that fits Genesys' 20 channels, so no channel in use is evicted and no event is missed.
func TestReplacingEveryChannelAtOnceEvictsNoneInUse(t *testing.T) {
	const lanes = notifications.MaxChannels
	h, firsts := lanesHarness(t, notifications.WithOverlap(50*time.Millisecond))
	ctx := h.start(t)
	p := &publisher{h: h, firsts: firsts}
	waitReplaced(t, h, ctx, lanes)
	p.all(t)

	require.Equal(t, lanes, h.srv.SendSocketClosing())
	p.all(t)
	waitReplaced(t, h, ctx, 2*lanes)
	p.all(t)
	h.rec.waitCount(t, ctx, len(p.sent))
	assertExactlyOnce(t, p.sent, h.rec.snapshot())
	assert.Zero(t, h.srv.EvictedInUse(), "channels in use evicted")
	assert.Zero(t, h.counter(t, "fanbridge.notifications.reconnects", "reason", "socket_error"))
	assert.EqualValues(t, lanes, h.counter(t, "fanbridge.notifications.reconnects", "reason", "socket_closing"))
}

// A second notice while the first replacements still overlap their old channels makes each lane
// close its old channel before it opens a third; every lane stays subscribed throughout.
func TestSecondNoticeDuringOverlapKeepsEveryLaneSubscribed(t *testing.T) {
	const lanes = notifications.MaxChannels
	h, firsts := lanesHarness(t, notifications.WithOverlap(time.Second))
	ctx := h.start(t)
	p := &publisher{h: h, firsts: firsts}
	waitReplaced(t, h, ctx, lanes)
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
	waitReplaced(t, h, ctx, 3*lanes)
	p.all(t)
	h.rec.waitCount(t, ctx, len(p.sent))
	assertExactlyOnce(t, p.sent, h.rec.snapshot())
	assert.Zero(t, h.counter(t, "fanbridge.notifications.reconnects", "reason", "socket_error"))
	assert.EqualValues(t, 2*lanes, h.counter(t, "fanbridge.notifications.reconnects", "reason", "socket_closing"))
}
