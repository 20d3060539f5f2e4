package kafkasink_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fanbridge/fanbridge"
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

// When the client's own buffer fills with records the sink's slots do not count, a Send waits
// inside the client for room, and goes out once the broker answers: nothing fails for want of
// room (as the instant between a promise and the client counting its record out would make
// a non-waiting produce fail).
func TestFullClientBufferDelaysSend(t *testing.T) {
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

			release()
			require.NoError(t, recv(t, first))
			require.NoError(t, recv(t, second), "the Send that found the buffer full went out")
			var ids []string
			for _, r := range readAll(t, ctx, c, "events") {
				if e, err := kafkasink.EventFromRecord(r); err == nil { // not the other producer's
					ids = append(ids, e.ID)
				}
			}
			assert.ElementsMatch(t, []string{"warm", "first", "second"}, ids)
		})
	}
}

// Many concurrent Sends through a small client buffer, with the default WithMaxInFlight: every
// slot given back in a promise is reused at once, before the client has counted its record out,
// and no Send may fail for it.
func TestConcurrentSendsThroughASmallBuffer(t *testing.T) {
	ctx := testContext(t)
	c := newCluster(t, "events")
	cl := newClient(t, c, kgo.MaxBufferedRecords(8))
	s := newSink(t, cl, kafkasink.WithTopic("events"))
	const senders, each = 16, 25
	errs := make(chan error, senders*each)
	var wg sync.WaitGroup
	for g := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				errs <- s.Send(ctx, presenceEvent(fmt.Sprintf("e-%d-%d", g, i)))
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	assert.Len(t, readAll(t, ctx, c, "events"), senders*each)
}

// Close must keep its timeout, and later Sends their deadlines, while another Send waits inside
// the client for room in its buffer.
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
	assert.Contains(t, err.Error(), "2 records still unacknowledged", "the held record and the one waiting for room")

	after := make(chan error, 1)
	go func() { after <- s.Send(ctx, presenceEvent("after")) }()
	assert.ErrorIs(t, within(t, ctx, after, "Send after Close"), sink.ErrClosed)

	release()
	require.NoError(t, recv(t, first), "the held record is acknowledged after all")
	require.NoError(t, recv(t, second), "and the one that waited for room")
	assert.True(t, s.Close() == err, "closing twice is safe, and returns the first Close's result")
}

// With the default WithMaxInFlight the sink has as many slots as the client's buffer holds
// records, so a Send that finds them taken waits for one within its own context, never inside
// the client.
func TestDefaultMaxInFlightFollowsTheClientBuffer(t *testing.T) {
	ctx := testContext(t)
	c := newCluster(t, "events")
	cl := newClient(t, c, kgo.MaxBufferedRecords(1))
	s := newSink(t, cl, kafkasink.WithTopic("events"))
	require.NoError(t, s.Send(ctx, presenceEvent("warm")))

	release, arrived := hang(c)
	defer release()
	first := make(chan error, 1)
	go func() { first <- s.Send(ctx, presenceEvent("first")) }()
	waitFor(t, ctx, arrived, "the first produce request")

	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	second := make(chan error, 1)
	go func() { second <- s.Send(short, presenceEvent("second")) }()
	err := within(t, ctx, second, "a Send with a 100ms deadline while the only slot is taken")
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Contains(t, err.Error(), "1 records already wait for acknowledgement")

	release()
	require.NoError(t, recv(t, first))
	ids := map[string]bool{}
	for _, r := range readAll(t, ctx, c, "events") {
		e, err := kafkasink.EventFromRecord(r)
		require.NoError(t, err)
		ids[e.ID] = true
	}
	assert.Equal(t, map[string]bool{"warm": true, "first": true}, ids, "the Send that gave up produced nothing")
}
