package kafkasink_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/retry"
	"github.com/fanbridge/fanbridge/sink"
	"github.com/fanbridge/fanbridge/sink/kafkasink"
)

// returnBound is how long a call that must not wait may take to return. It is a failure bound,
// not a synchronisation: a correct call returns in microseconds.
const returnBound = 5 * time.Second

// paddedEvent is a presence event with a body of about 1 KiB, so that byte limits on the client's
// buffer count records.
func paddedEvent(id string) *fanbridge.Event {
	e := presenceEvent(id)
	e.Data = []byte(`{"pad":"` + strings.Repeat("x", 1000) + `"}`)
	return e
}

// within waits for ch up to returnBound, and fails the test when nothing comes.
func within[T any](t testing.TB, ctx context.Context, ch <-chan T, what string) T {
	t.Helper()
	bound, cancel := context.WithTimeout(ctx, returnBound)
	defer cancel()
	select {
	case v := <-ch:
		return v
	case <-bound.Done():
		t.Fatalf("%s did not return within %s", what, returnBound)
		panic("unreachable")
	}
}

// When the client's own buffer is full, Produce would wait for room with no regard to the Send's
// context; Send fails at once with a retryable error instead.
func TestFullClientBufferFailsSendAtOnce(t *testing.T) {
	for _, tc := range []struct {
		name   string
		client []kgo.Opt
		sink   []kafkasink.Option
		fill   func(*testing.T, context.Context, *kgo.Client) // after the first record is held
	}{
		{name: "buffer bounded in bytes", client: []kgo.Opt{kgo.MaxBufferedBytes(1800)}},
		{
			name:   "client shared with another producer",
			client: []kgo.Opt{kgo.MaxBufferedRecords(2)},
			fill: func(t *testing.T, ctx context.Context, cl *kgo.Client) {
				cl.Produce(ctx, &kgo.Record{Topic: "events", Value: []byte("other")}, nil)
			},
		},
		{
			name:   "max in flight above the client's buffer",
			client: []kgo.Opt{kgo.MaxBufferedRecords(1)},
			sink:   []kafkasink.Option{kafkasink.WithMaxInFlight(4)},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testContext(t)
			c := newCluster(t, "events")
			cl := newClient(t, c, tc.client...)
			s := newSink(t, cl, append(tc.sink, kafkasink.WithTopic("events"))...)
			require.NoError(t, s.Send(ctx, paddedEvent("warm")))

			release, arrived := hang(c)
			defer release()
			first := make(chan error, 1)
			go func() { first <- s.Send(ctx, paddedEvent("first")) }()
			waitFor(t, ctx, arrived, "the first produce request")
			if tc.fill != nil {
				tc.fill(t, ctx, cl)
			}

			second := make(chan error, 1)
			go func() { second <- s.Send(ctx, paddedEvent("second")) }()
			err := within(t, ctx, second, "Send on a full client buffer")
			require.ErrorIs(t, err, kgo.ErrMaxBuffered)
			assert.Equal(t, retry.ClassRetryable, retry.Classify(err))
			assert.Contains(t, err.Error(), `"second"`)

			release()
			require.NoError(t, recv(t, first))
			// The client gives the room back just after it ran the first record's promise: wait
			// until it has (the other producer's record too), then there is room again.
			require.Eventually(t, func() bool { return cl.BufferedProduceRecords() == 0 }, returnBound, time.Millisecond)
			require.NoError(t, s.Send(ctx, paddedEvent("third")), "room again once the broker answers")
			var ids []string
			for _, r := range readAll(t, ctx, c, "events") {
				if e, err := kafkasink.EventFromRecord(r); err == nil { // not the other producer's
					ids = append(ids, e.ID)
				}
			}
			assert.Equal(t, []string{"warm", "first", "third"}, ids)
		})
	}
}

// Close must keep its timeout and later Sends their deadlines while another Send faces a full
// client buffer.
func TestCloseKeepsItsTimeoutBesideAFullBuffer(t *testing.T) {
	ctx := testContext(t)
	c := newCluster(t, "events")
	hook := newBufferedHook()
	cl := newClient(t, c, kgo.MaxBufferedRecords(1), kgo.WithHooks(hook))
	s := newSink(t, cl, kafkasink.WithTopic("events"), kafkasink.WithMaxInFlight(4),
		kafkasink.WithCloseTimeout(200*time.Millisecond))
	require.NoError(t, s.Send(ctx, presenceEvent("warm")))
	hook.waitBuffered(t, ctx, 1)

	release, arrived := hang(c)
	defer release()
	first := make(chan error, 1)
	go func() { first <- s.Send(ctx, presenceEvent("first")) }()
	waitFor(t, ctx, arrived, "the first produce request")
	hook.waitBuffered(t, ctx, 1)

	second := make(chan error, 1)
	go func() { second <- s.Send(ctx, presenceEvent("second")) }()
	hook.waitBuffered(t, ctx, 1) // the client has seen the record: it is in or past Produce

	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	err := within(t, ctx, closed, "Close with a 200ms timeout")
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Contains(t, err.Error(), "1 records still unacknowledged", "only the held record")
	assert.ErrorIs(t, within(t, ctx, second, "the Send facing the full buffer"), kgo.ErrMaxBuffered)

	after := make(chan error, 1)
	go func() { after <- s.Send(ctx, presenceEvent("after")) }()
	assert.ErrorIs(t, within(t, ctx, after, "Send after Close"), sink.ErrClosed)

	release()
	require.NoError(t, recv(t, first), "the held record is acknowledged after all")
	require.NoError(t, s.Close(), "closing twice is safe")
}
