package notifications_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"strings"
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
	"github.com/fanbridge/fanbridge/internal/testwait"
	"github.com/fanbridge/fanbridge/retry"
	"github.com/fanbridge/fanbridge/retry/retrytest"
)

// publish sends events with seq from..to and returns the seqs that reached at least one socket.
func publish(srv *genesystest.Server, topic string, from, to int) []int64 {
	var sent []int64
	for i := from; i <= to; i++ {
		if _, n := srv.Publish(topic, map[string]any{"seq": i, "presenceDefinition": map[string]string{"systemPresence": "AVAILABLE"}}); n > 0 {
			sent = append(sent, int64(i))
		}
	}
	return sent
}

// assertExactlyOnce checks that every sent seq was dispatched once and nothing else was.
func assertExactlyOnce(t *testing.T, sent, got []int64) {
	t.Helper()
	counts := map[int64]int{}
	for _, s := range got {
		counts[s]++
	}
	for _, s := range sent {
		assert.Equal(t, 1, counts[s], "event %d dispatched %d times", s, counts[s])
		delete(counts, s)
	}
	assert.Empty(t, counts, "events dispatched that were never sent")
}

func TestDeliversEvents(t *testing.T) {
	h := newHarness(t, []string{presence, presence}, nil)
	ctx := h.start(t)
	require.NoError(t, h.srv.WaitSubscribed(ctx, presence, 1))
	sent := publish(h.srv, presence, 1, 20)
	require.Len(t, sent, 20)
	h.rec.waitCount(t, ctx, 20)
	assertExactlyOnce(t, sent, h.rec.snapshot())
	assert.Equal(t, sent, h.rec.snapshot(), "order is kept")

	ev := h.rec.events[0]
	assert.Equal(t, "v2.users.{id}.presence", ev.Type)
	assert.Equal(t, presence, ev.Topic)
	assert.Equal(t, "5e9c0000-0000-4000-8000-000000000001", ev.Meta(fanbridge.MetaCorrelationID))
	assert.Len(t, ev.ID, 32)
	assert.Equal(t, 1, h.src.Channels())
	assert.Len(t, h.srv.Channels(), 1, "a duplicate topic does not need another channel")
	// The outcome is counted once Dispatch has returned, just after the recorder saw the event.
	h.waitCounter(t, ctx, "fanbridge.notifications.events", "outcome", "delivered", 20)
	assert.EqualValues(t, 20, h.counter(t, "fanbridge.notifications.events", "outcome", "delivered"))
	assert.EqualValues(t, 20, h.counter(t, "fanbridge.notifications.messages", "kind", "event"))
}

func TestSurvivesForcedDisconnect(t *testing.T) {
	h := newHarness(t, []string{presence}, nil)
	ctx := h.start(t)
	require.NoError(t, h.srv.WaitSubscribed(ctx, presence, 1))
	sent := publish(h.srv, presence, 1, 25)
	h.rec.waitCount(t, ctx, len(sent))

	require.Equal(t, 1, h.srv.Disconnect())
	require.NoError(t, h.srv.WaitChannels(ctx, func(live []genesystest.ChannelInfo, created int) bool {
		return created == 2 && len(live) == 2 && live[1].Connected && live[1].Topics == 1
	}))
	after := publish(h.srv, presence, 26, 50)
	require.Len(t, after, 25, "every event after re-subscription reaches the new socket")
	sent = append(sent, after...)
	h.rec.waitCount(t, ctx, len(sent))
	assertExactlyOnce(t, sent, h.rec.snapshot())
	assert.EqualValues(t, 1, h.counter(t, "fanbridge.notifications.reconnects", "reason", "socket_error"))
}

func TestSocketClosingOverlapsWithoutDuplicates(t *testing.T) {
	// A long overlap keeps the old socket open, and the removal of the old channel's
	// subscriptions is held, while the test publishes, so that every event arrives twice; Genesys
	// closes the old socket a while after its notice (a minute; a few seconds here), and the new
	// one must be subscribed before.
	h := newHarness(t, []string{presence}, []genesystest.Option{genesystest.WithSocketClosingDelay(3 * time.Second)},
		notifications.WithOverlap(time.Minute))
	ctx := h.start(t)
	require.NoError(t, h.srv.WaitSubscribed(ctx, presence, 1))
	first := h.srv.Channels()[0].ID
	hold := make(chan struct{})
	release := sync.OnceFunc(func() { close(hold) })
	t.Cleanup(release) // before the fake is closed
	h.srv.SetHook(func(r *http.Request) {
		if r.Method == http.MethodPut && r.URL.Path == "/api/v2/notifications/channels/"+first+"/subscriptions" {
			<-hold
		}
	})
	sent := publish(h.srv, presence, 1, 5)
	h.rec.waitCount(t, ctx, 5)

	require.Equal(t, 1, h.srv.SendSocketClosing())
	require.NoError(t, h.srv.WaitSubscribed(ctx, presence, 2), "the new channel is subscribed before Genesys closes the old one")
	for i := 6; i <= 15; i++ {
		_, n := h.srv.Publish(presence, map[string]any{"seq": i})
		require.Equal(t, 2, n)
		sent = append(sent, int64(i))
	}
	h.waitCounter(t, ctx, "fanbridge.notifications.events", "outcome", "duplicate", 10)
	h.rec.waitCount(t, ctx, len(sent))
	assertExactlyOnce(t, sent, h.rec.snapshot())
	release()
	assert.EqualValues(t, 1, h.counter(t, "fanbridge.notifications.reconnects", "reason", "socket_closing"))
	assert.EqualValues(t, 1, h.counter(t, "fanbridge.notifications.messages", "kind", "system"))
}

// The dedup window remembers the last WithDedupWindow event ids, and forgets the oldest: with a
// window of 2, a copy of an event 3 events back is dispatched again, one 2 back is not.
func TestDedupWindowForgetsTheOldest(t *testing.T) {
	h := newHarness(t, []string{presence}, nil, notifications.WithDedupWindow(2))
	ctx := h.start(t)
	require.NoError(t, h.srv.WaitSubscribed(ctx, presence, 1))
	// Each seq is one event: the same topic, correlation id and body make the same id.
	event := func(seq int) []byte {
		return fmt.Appendf(nil, `{"topicName":%q,"version":"2","eventBody":{"seq":%d},"metadata":{"CorrelationId":"5e9c0000-0000-4000-8000-%012d"}}`,
			presence, seq, seq)
	}
	for _, seq := range []int{1, 2, 3, 1, 3, 4} {
		require.Equal(t, 1, h.srv.PublishRaw(presence, event(seq)))
	}
	// Events are dispatched in the order they were read.
	h.rec.waitCount(t, ctx, 4)
	require.Equal(t, []int64{1, 2, 3, 1}, h.rec.snapshot()[:4], "the copy of 1, three events after it, was dropped")
	h.rec.waitCount(t, ctx, 5)
	assert.Equal(t, []int64{1, 2, 3, 1, 4}, h.rec.snapshot(), "the copy of 3, two events after it, was dispatched")
	h.waitCounter(t, ctx, "fanbridge.notifications.events", "outcome", "duplicate", 1)
	assert.EqualValues(t, 1, h.counter(t, "fanbridge.notifications.events", "outcome", "duplicate"))
}

// A message larger than WithReadLimit closes the socket without being dispatched, and the channel
// is replaced: later events arrive over its successor.
func TestMessageOverTheReadLimitReplacesTheSocket(t *testing.T) {
	const limit = 2048
	h := newHarness(t, []string{presence}, nil, notifications.WithReadLimit(limit), patientHeartbeat)
	ctx := h.start(t)
	require.NoError(t, h.srv.WaitSubscribed(ctx, presence, 1))
	_, n := h.srv.Publish(presence, map[string]any{"seq": 1, "pad": strings.Repeat("x", 4*limit)})
	require.Equal(t, 1, n)
	h.waitCounter(t, ctx, "fanbridge.notifications.reconnects", "reason", "socket_error", 1)
	require.NoError(t, h.srv.WaitChannels(ctx, func(live []genesystest.ChannelInfo, created int) bool {
		return created == 2 && live[len(live)-1].Connected && live[len(live)-1].Topics == 1
	}))
	_, n = h.srv.Publish(presence, map[string]any{"seq": 2, "pad": strings.Repeat("x", limit/2)})
	require.Equal(t, 1, n)
	h.rec.waitCount(t, ctx, 1)
	assert.Equal(t, []int64{2}, h.rec.snapshot(), "only the message within the limit is dispatched")
}

func TestOldChannelClosedAfterOverlap(t *testing.T) {
	h := newHarness(t, []string{presence}, nil, notifications.WithOverlap(20*time.Millisecond))
	ctx := h.start(t)
	require.NoError(t, h.srv.WaitSubscribed(ctx, presence, 1))
	first := h.srv.Channels()[0].ID
	h.srv.SendSocketClosing()
	require.NoError(t, h.srv.WaitChannels(ctx, func(live []genesystest.ChannelInfo, created int) bool {
		connected := 0
		for _, c := range live {
			if c.Connected {
				connected++
				if c.ID == first {
					return false
				}
			}
		}
		return created == 2 && connected == 1
	}))
	sent := publish(h.srv, presence, 1, 3)
	require.Len(t, sent, 3)
	h.rec.waitCount(t, ctx, 3)
	assertExactlyOnce(t, sent, h.rec.snapshot())
}

func TestMissedHeartbeatReconnects(t *testing.T) {
	h := newHarness(t, []string{presence}, []genesystest.Option{genesystest.WithHeartbeatInterval(50 * time.Millisecond)},
		notifications.WithHeartbeatTimeout(400*time.Millisecond))
	ctx := h.start(t)
	require.NoError(t, h.srv.WaitSubscribed(ctx, presence, 1))
	h.waitCounter(t, ctx, "fanbridge.notifications.messages", "kind", "heartbeat", 1)
	require.Equal(t, 1, h.srv.Silence())

	require.NoError(t, h.srv.WaitChannels(ctx, func(live []genesystest.ChannelInfo, created int) bool {
		return created >= 2 && live[len(live)-1].Connected && live[len(live)-1].Topics == 1
	}))
	assert.GreaterOrEqual(t, h.counter(t, "fanbridge.notifications.heartbeats_missed", "", ""), int64(1))
	assert.GreaterOrEqual(t, h.counter(t, "fanbridge.notifications.reconnects", "reason", "heartbeat_missed"), int64(1))
	require.NoError(t, h.srv.WaitSubscribed(ctx, presence, 1))
	sent := publish(h.srv, presence, 1, 3)
	require.NotEmpty(t, sent)
	h.rec.waitCount(t, ctx, len(sent))
	assertExactlyOnce(t, sent, h.rec.snapshot())
}

func TestPingsKeepAQuietSocketAlive(t *testing.T) {
	// No heartbeats at all: only the pongs to our pings show the socket is alive.
	h := newHarness(t, []string{presence}, []genesystest.Option{genesystest.WithHeartbeatInterval(0)},
		notifications.WithHeartbeatTimeout(time.Second), notifications.WithPingInterval(25*time.Millisecond))
	ctx := h.start(t)
	require.NoError(t, h.srv.WaitSubscribed(ctx, presence, 1))
	h.waitCounter(t, ctx, "fanbridge.notifications.messages", "kind", "heartbeat", 60) // at least 1.5s of pongs
	assert.Zero(t, h.counter(t, "fanbridge.notifications.reconnects", "", ""))
	assert.Equal(t, 1, h.srv.ChannelsCreated())
}

func TestChannelExpiryRotates(t *testing.T) {
	h := newHarness(t, []string{presence}, []genesystest.Option{genesystest.WithChannelLifetime(600 * time.Millisecond)},
		notifications.WithOverlap(10*time.Millisecond))
	ctx := h.start(t)
	require.NoError(t, h.srv.WaitChannels(ctx, func(live []genesystest.ChannelInfo, created int) bool {
		return created >= 2 && len(live) > 0 && live[len(live)-1].Connected && live[len(live)-1].Topics == 1
	}))
	// Replaced at half its life, before the server expired it.
	assert.GreaterOrEqual(t, h.counter(t, "fanbridge.notifications.reconnects", "reason", "expiry"), int64(1))
	assert.Zero(t, h.counter(t, "fanbridge.notifications.reconnects", "reason", "socket_error"))
}

func TestManyTopicsUseSeveralChannels(t *testing.T) {
	topics := make([]string, 2500)
	for i := range topics {
		topics[i] = userTopic(i)
	}
	h := newHarness(t, topics, nil)
	assert.Equal(t, 3, h.src.Channels())
	ctx := h.start(t)
	require.NoError(t, h.srv.WaitChannels(ctx, func(live []genesystest.ChannelInfo, _ int) bool {
		n := 0
		for _, c := range live {
			if c.Connected && c.Topics > 0 {
				n++
			}
		}
		return n == 3
	}))
	var sizes []int
	for _, c := range h.srv.Channels() {
		sizes = append(sizes, c.Topics)
	}
	slices.Sort(sizes)
	assert.Equal(t, []int{500, 1000, 1000}, sizes)
	var sent []int64
	for i, topic := range []string{topics[0], topics[1500], topics[2499]} {
		_, n := h.srv.Publish(topic, map[string]any{"seq": i + 1})
		require.Equal(t, 1, n, topic)
		sent = append(sent, int64(i+1))
	}
	h.rec.waitCount(t, ctx, 3)
	assertExactlyOnce(t, sent, h.rec.snapshot())
}

func TestNewRejects(t *testing.T) {
	srv := genesystest.NewServer()
	t.Cleanup(srv.Close)
	client, err := genesys.NewClient(genesys.USEast1, "id", "secret", genesys.WithBaseURL(srv.URL), genesys.WithTokenURL(srv.TokenURL()))
	require.NoError(t, err)
	d := newRecorder()
	tooMany := make([]string, 10*genesys.MaxTopicsPerChannel+1)
	for i := range tooMany {
		tooMany[i] = userTopic(i)
	}
	tests := []struct {
		name   string
		client *genesys.Client
		topics []string
		d      eventbridge.Dispatcher
		opts   []notifications.Option
		target error
		text   string
	}{
		{"template", client, []string{presence, "v2.users.{id}.presence"}, d, nil, genesys.ErrTemplateTopic, "v2.users.{id}.presence"},
		{"no topics", client, nil, d, nil, notifications.ErrInvalidConfig, "no topics"},
		{"too many topics", client, tooMany, d, nil, genesys.ErrTooManyTopics, "11 channels"},
		{"nil client", nil, []string{presence}, d, nil, notifications.ErrInvalidConfig, "nil client"},
		{"nil dispatcher", client, []string{presence}, nil, nil, notifications.ErrInvalidConfig, "nil dispatcher"},
		{"20 channels", client, []string{presence}, d, []notifications.Option{notifications.WithMaxChannels(20)}, notifications.ErrInvalidConfig, "max channels"},
		{"11 channels", client, []string{presence}, d, []notifications.Option{notifications.WithMaxChannels(notifications.MaxChannels + 1)}, notifications.ErrInvalidConfig, "between 1 and 10"},
		{"zero channels", client, []string{presence}, d, []notifications.Option{notifications.WithMaxChannels(0)}, notifications.ErrInvalidConfig, "max channels"},
		{"zero buffer", client, []string{presence}, d, []notifications.Option{notifications.WithBufferSize(0)}, notifications.ErrInvalidConfig, "buffer"},
		// Run reserves the buffer and the window in full: New refuses what no memory holds.
		{"buffer beyond the cap", client, []string{presence}, d, []notifications.Option{notifications.WithBufferSize(notifications.MaxBufferSize + 1)}, notifications.ErrInvalidConfig, "buffer size must be between 1 and 1000000"},
		{"zero dedup window", client, []string{presence}, d, []notifications.Option{notifications.WithDedupWindow(0)}, notifications.ErrInvalidConfig, "dedup window"},
		{"dedup window beyond the cap", client, []string{presence}, d, []notifications.Option{notifications.WithDedupWindow(notifications.MaxDedupWindow + 1)}, notifications.ErrInvalidConfig, "dedup window must be between 1 and 1000000"},
		{"largest dedup window", client, []string{presence}, d, []notifications.Option{notifications.WithDedupWindow(math.MaxInt)}, notifications.ErrInvalidConfig, "dedup window"},
		{"bad policy", client, []string{presence}, d, []notifications.Option{notifications.WithDispatchPolicy(retry.Policy{Multiplier: 0.1})}, retry.ErrInvalidPolicy, "dispatch policy"},
		{"zero heartbeat", client, []string{presence}, d, []notifications.Option{notifications.WithHeartbeatTimeout(0)}, notifications.ErrInvalidConfig, "heartbeat"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := notifications.New(tt.client, tt.topics, tt.d, tt.opts...)
			require.Error(t, err)
			assert.Nil(t, s)
			assert.ErrorIs(t, err, tt.target)
			assert.Contains(t, err.Error(), tt.text)
		})
	}
	s, err := notifications.New(client, []string{presence}, d,
		notifications.WithBufferSize(notifications.MaxBufferSize), notifications.WithDedupWindow(notifications.MaxDedupWindow))
	require.NoError(t, err, "the caps themselves are allowed")
	assert.NotNil(t, s)
	assert.Empty(t, srv.Requests(), "New makes no request")
}

func TestDispatchFailuresAreRetriedNotDropped(t *testing.T) {
	var calls atomic.Int32
	rec := newRecorder()
	d := eventbridge.DispatcherFunc(func(ctx context.Context, e *fanbridge.Event) error {
		switch n := calls.Add(1); {
		case n <= 3:
			return errors.New("kafka unavailable")
		case n == 4:
			return retry.After(fanbridge.ErrOverloaded, time.Millisecond)
		}
		return rec.Dispatch(ctx, e)
	})
	h := newHarnessWith(t, d, []string{presence}, nil,
		notifications.WithDispatchPolicy(retry.Policy{InitialInterval: time.Millisecond, MaxInterval: 2 * time.Millisecond, MaxAttempts: -1}))
	ctx := h.start(t)
	require.NoError(t, h.srv.WaitSubscribed(ctx, presence, 1))
	sent := publish(h.srv, presence, 1, 3)
	rec.waitCount(t, ctx, 3)
	assertExactlyOnce(t, sent, rec.snapshot())
	assert.Equal(t, sent, rec.snapshot(), "a failing event is not overtaken")
	assert.EqualValues(t, 7, calls.Load())
	assert.EqualValues(t, 4, h.counter(t, "fanbridge.notifications.dispatch_retries", "", ""))
}

func TestAcknowledgingOutcomesAndPermanentFailures(t *testing.T) {
	logs := &strings.Builder{}
	var mu sync.Mutex
	var seen []string
	d := eventbridge.DispatcherFunc(func(ctx context.Context, e *fanbridge.Event) error {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, string(e.Data))
		switch len(seen) {
		case 1:
			return fanbridge.ErrNoMatch
		case 2:
			return fmt.Errorf("wrapped: %w", fanbridge.ErrDuplicate)
		case 3:
			return retry.Permanent(errors.New("schema rejected"))
		}
		return nil
	})
	h := newHarnessWith(t, d, []string{presence}, nil,
		notifications.WithLogger(slog.New(slog.NewTextHandler(lockedWriter{w: logs, mu: &mu}, nil))))
	ctx := h.start(t)
	require.NoError(t, h.srv.WaitSubscribed(ctx, presence, 1))
	publish(h.srv, presence, 1, 4)
	h.waitCounter(t, ctx, "fanbridge.notifications.events", "outcome", "delivered", 1)
	mu.Lock()
	assert.Len(t, seen, 4, "each event dispatched once")
	assert.Contains(t, logs.String(), "dispatcher failed permanently")
	mu.Unlock()
	assert.EqualValues(t, 2, h.counter(t, "fanbridge.notifications.events", "outcome", "ignored"))
	assert.EqualValues(t, 1, h.counter(t, "fanbridge.notifications.events", "outcome", "failed"))
}

// recv receives from ch, failing the test when ctx ends first.
func recv[T any](t *testing.T, ctx context.Context, ch <-chan T) T {
	t.Helper()
	return testwait.RecvCtx(t, ctx, ch)
}

type lockedWriter struct {
	w  *strings.Builder
	mu *sync.Mutex
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestSlowDispatcherBlocksReadingWithoutLoss: a dispatcher stuck for longer than the heartbeat
// timeout blocks reading, losing nothing, and does not count as a silent socket. The heartbeat
// timeout runs on a fake clock, so the test moves time past it without waiting.
func TestSlowDispatcherBlocksReadingWithoutLoss(t *testing.T) {
	const heartbeatTimeout = 30 * time.Second
	clk := retrytest.NewClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	release := make(chan struct{})
	rec := newRecorder()
	d := eventbridge.DispatcherFunc(func(ctx context.Context, e *fanbridge.Event) error {
		select {
		case <-release:
		case <-ctx.Done():
			return ctx.Err()
		}
		return rec.Dispatch(ctx, e)
	})
	h := newHarnessWith(t, d, []string{presence}, []genesystest.Option{genesystest.WithHeartbeatInterval(20 * time.Millisecond)},
		notifications.WithBufferSize(2), notifications.WithHeartbeatTimeout(heartbeatTimeout), notifications.WithClock(clk))
	ctx := h.start(t)
	require.NoError(t, h.srv.WaitSubscribed(ctx, presence, 1))
	sent := publish(h.srv, presence, 1, 20)
	require.Len(t, sent, 20)
	// While the dispatcher is stuck, heartbeats wait in the socket behind the events; the reader
	// is blocked on the full buffer, which must not count as a silent socket.
	h.waitCounter(t, ctx, "fanbridge.notifications.messages", "kind", "event", 4)
	clk.Advance(2 * heartbeatTimeout)
	assert.EqualValues(t, 4, h.counter(t, "fanbridge.notifications.messages", "kind", "event"), "one in dispatch, two buffered, one held by the reader")
	close(release)
	rec.waitCount(t, ctx, 20)
	assert.Equal(t, sent, rec.snapshot())
	assert.Zero(t, h.counter(t, "fanbridge.notifications.events", "outcome", "lost"))

	// The clock does govern the heartbeat timeout: once the socket is really silent, moving the
	// clock past the timeout replaces it. Before that, nothing was replaced.
	assert.Zero(t, h.counter(t, "fanbridge.notifications.reconnects", "", ""), "a slow dispatcher is not a dead socket")
	require.Equal(t, 1, h.srv.Silence())
	require.NoError(t, clk.WaitTimers(ctx, 1))
	clk.Advance(heartbeatTimeout)
	h.waitCounter(t, ctx, "fanbridge.notifications.heartbeats_missed", "", "", 1)
}

func TestCloseDrainsWhatWasRead(t *testing.T) {
	entered := make(chan struct{}, 10)
	release := make(chan struct{})
	rec := newRecorder()
	d := eventbridge.DispatcherFunc(func(ctx context.Context, e *fanbridge.Event) error {
		entered <- struct{}{}
		<-release
		return rec.Dispatch(ctx, e)
	})
	h := newHarnessWith(t, d, []string{presence}, nil, notifications.WithDrainTimeout(10*time.Second))
	src := h.src
	ctx := h.start(t)
	require.NoError(t, h.srv.WaitSubscribed(ctx, presence, 1))
	sent := publish(h.srv, presence, 1, 3)
	recv(t, ctx, entered)
	h.waitCounter(t, ctx, "fanbridge.notifications.messages", "kind", "event", 3) // all three are read

	closed := make(chan error, 1)
	go func() { closed <- src.Close() }()
	require.NoError(t, h.srv.WaitConnected(ctx, 0), "Close stops reading at once")
	close(release)
	require.NoError(t, recv(t, ctx, closed))
	assert.NoError(t, recv(t, ctx, h.runErr), "Run returns nil after Close")
	h.runErr <- nil // for the cleanup
	assertExactlyOnce(t, sent, rec.snapshot())
	assert.ErrorIs(t, src.Run(context.Background()), notifications.ErrClosed)
}

func TestDrainTimeoutCountsLostEvents(t *testing.T) {
	d := eventbridge.DispatcherFunc(func(ctx context.Context, e *fanbridge.Event) error {
		<-ctx.Done() // a dispatcher that never finishes
		return ctx.Err()
	})
	h := newHarnessWith(t, d, []string{presence}, nil, notifications.WithDrainTimeout(50*time.Millisecond))
	src := h.src
	ctx := h.start(t)
	require.NoError(t, h.srv.WaitSubscribed(ctx, presence, 1))
	publish(h.srv, presence, 1, 3)
	h.waitCounter(t, ctx, "fanbridge.notifications.messages", "kind", "event", 3)
	require.NoError(t, src.Close())
	assert.EqualValues(t, 3, h.counter(t, "fanbridge.notifications.events", "outcome", "lost"), "undelivered events are counted, not silently dropped")
}

// A retry the drain cuts off during its wait never reaches the dispatcher, and is not counted as
// one: the event is counted lost, and dispatch_retries stays at zero.
func TestRetryCutOffByTheDrainIsNotCounted(t *testing.T) {
	tried := make(chan struct{}, 4)
	d := eventbridge.DispatcherFunc(func(context.Context, *fanbridge.Event) error {
		tried <- struct{}{}
		return errors.New("kafka unavailable")
	})
	h := newHarnessWith(t, d, []string{presence}, nil, notifications.WithDrainTimeout(50*time.Millisecond),
		notifications.WithDispatchPolicy(retry.Policy{InitialInterval: time.Hour, MaxInterval: time.Hour, Jitter: retry.NoJitter, MaxAttempts: -1}))
	ctx := h.start(t)
	require.NoError(t, h.srv.WaitSubscribed(ctx, presence, 1))
	publish(h.srv, presence, 1, 1)
	recv(t, ctx, tried) // the first attempt failed; the retry waits an hour
	require.NoError(t, h.src.Close())
	assert.Len(t, tried, 0, "no second attempt")
	assert.Zero(t, h.counter(t, "fanbridge.notifications.dispatch_retries", "", ""))
	assert.EqualValues(t, 1, h.counter(t, "fanbridge.notifications.events", "outcome", "lost"))
}

func TestRunLifecycle(t *testing.T) {
	t.Run("permanent error at start", func(t *testing.T) {
		srv := genesystest.NewServer()
		t.Cleanup(srv.Close)
		client, err := genesys.NewClient(genesys.USEast1, genesystest.DefaultClientID, "wrong-secret",
			genesys.WithBaseURL(srv.URL), genesys.WithTokenURL(srv.TokenURL()))
		require.NoError(t, err)
		src, err := notifications.New(client, []string{presence}, newRecorder(), notifications.WithReconnectPolicy(fastReconnect))
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err = src.Run(ctx)
		require.Error(t, err)
		assert.True(t, genesys.IsUnauthorized(err))
		assert.NotContains(t, err.Error(), "wrong-secret")
	})
	t.Run("context end", func(t *testing.T) {
		h := newHarness(t, []string{presence}, nil)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- h.src.Run(ctx) }()
		wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer wcancel()
		require.NoError(t, h.srv.WaitSubscribed(wctx, presence, 1))
		assert.ErrorIs(t, h.src.Run(ctx), notifications.ErrAlreadyRunning)
		cancel()
		assert.ErrorIs(t, recv(t, wctx, done), context.Canceled)
		require.NoError(t, h.srv.WaitConnected(wctx, 0))
		assert.NoError(t, h.src.Close())
	})
	t.Run("close before run", func(t *testing.T) {
		h := newHarness(t, []string{presence}, nil)
		require.NoError(t, h.src.Close())
		assert.ErrorIs(t, h.src.Run(context.Background()), notifications.ErrClosed)
	})
}

// Genesys may drop a channel's subscriptions and say so with v2.system.no_longer_subscribed. The
// source subscribes the topics again on the same channel, which needs no place among the 20; only
// when that fails does it replace the channel. Either way the events published afterwards arrive.
func TestNoLongerSubscribedSubscribesAgain(t *testing.T) {
	for _, tc := range []struct {
		name     string
		fail     bool // the subscription request made after the notice fails
		channels int  // channels created in all
		replaced int64
	}{
		{"on the same channel", false, 1, 0},
		{"on a new channel when that fails", true, 2, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, []string{presence}, nil, notifications.WithOverlap(10*time.Millisecond))
			ctx := h.start(t)
			require.NoError(t, h.srv.WaitSubscribed(ctx, presence, 1))
			sent := publish(h.srv, presence, 1, 5)
			require.Len(t, sent, 5)
			h.rec.waitCount(t, ctx, len(sent))

			// Genesys drops the subscriptions, then tells the socket.
			first := h.srv.Channels()[0].ID
			require.NoError(t, h.client.SetSubscriptions(ctx, first, []string{}))
			_, n := h.srv.Publish(presence, map[string]any{"seq": 0})
			require.Zero(t, n, "the channel still has the topic")
			if tc.fail {
				h.srv.Fail(genesystest.Fault{Method: http.MethodPut, Path: "/api/v2/notifications/channels/", Status: http.StatusBadRequest})
			}
			puts := h.srv.Count(http.MethodPut, "/api/v2/notifications/channels/")
			notice := fmt.Sprintf(`{"topicName":"v2.system.no_longer_subscribed.%s","version":"2","eventBody":{"message":"subscriptions dropped"}}`, first)
			require.Equal(t, 1, h.srv.SendRaw([]byte(notice)))

			require.NoError(t, h.srv.WaitChannels(ctx, func(live []genesystest.ChannelInfo, created int) bool {
				// More channels than expected can only fail the check below: stop waiting.
				return created > tc.channels || (created == tc.channels && live[len(live)-1].Connected && live[len(live)-1].Topics == 1)
			}), "channels %+v", h.srv.Channels())
			assert.Equal(t, tc.channels, h.srv.ChannelsCreated())
			if !tc.fail {
				assert.Equal(t, puts+1, h.srv.Count(http.MethodPut, "/api/v2/notifications/channels/"), "subscription requests")
				assert.Equal(t, first, h.srv.Channels()[0].ID)
			}
			require.NoError(t, h.srv.WaitSubscribed(ctx, presence, 1))
			after := publish(h.srv, presence, 6, 15)
			require.Len(t, after, 10, "every event after the notice reaches a subscribed socket")
			sent = append(sent, after...)
			h.rec.waitCount(t, ctx, len(sent))
			assertExactlyOnce(t, sent, h.rec.snapshot())
			if !tc.fail {
				assert.Equal(t, puts+1, h.srv.Count(http.MethodPut, "/api/v2/notifications/channels/"), "one subscription request, on the same channel")
			}
			assert.EqualValues(t, tc.replaced, h.counter(t, "fanbridge.notifications.reconnects", "reason", "no_longer_subscribed"))
			assert.EqualValues(t, 1, h.counter(t, "fanbridge.notifications.messages", "kind", "system"))
		})
	}
}

// A Dispatcher may call Close, on an event it cannot handle, say. Run waits for Dispatch to
// return, so Close called from Dispatch starts the shutdown and returns without waiting for Run;
// Run then returns nil, as after any Close.
func TestCloseFromDispatch(t *testing.T) {
	closed := make(chan error, 1)
	var src *notifications.Source
	d := eventbridge.DispatcherFunc(func(context.Context, *fanbridge.Event) error {
		select {
		case closed <- src.Close():
		default:
		}
		return nil
	})
	h := newHarnessWith(t, d, []string{presence}, nil)
	src = h.src
	ctx := h.start(t)
	require.NoError(t, h.srv.WaitSubscribed(ctx, presence, 1))
	require.Len(t, publish(h.srv, presence, 1, 1), 1)
	require.NoError(t, recv(t, ctx, closed))
	assert.NoError(t, recv(t, ctx, h.runErr), "Run returns nil after Close")
	h.runErr <- nil // for the cleanup
	require.NoError(t, h.srv.WaitConnected(ctx, 0))
	assert.NoError(t, src.Close(), "Close after Run returned")
	assert.ErrorIs(t, src.Run(context.Background()), notifications.ErrClosed)
}
