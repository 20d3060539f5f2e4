package kafkasink_test

import (
	"context"
	"fmt"
	"math"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/retry"
	"github.com/fanbridge/fanbridge/sink"
	"github.com/fanbridge/fanbridge/sink/kafkasink"
)

// unbufferedHook counts the records whose fate the client has decided. It runs before the
// record's promise, so a Close that waited for every promise returns after the count went up.
type unbufferedHook struct{ n atomic.Int64 }

func (h *unbufferedHook) OnProduceRecordUnbuffered(*kgo.Record, error) { h.n.Add(1) }

// openSink builds a sink for topic "events" of c: with owned, through Dial, which owns its client;
// otherwise through New, around a client of the test's. kopts go to the client either way.
func openSink(t *testing.T, c *kfake.Cluster, owned bool, kopts []kgo.Opt, opts ...kafkasink.Option) *kafkasink.Sink {
	t.Helper()
	opts = append([]kafkasink.Option{kafkasink.WithTopic("events")}, opts...)
	if !owned {
		return newSink(t, newClient(t, c, kopts...), opts...)
	}
	s, err := kafkasink.Dial(kafkasink.ClientConfig{Brokers: c.ListenAddrs(), Opts: append(fastOpts(), kopts...)}, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// closeResult is what one Close returned, and how many records the client had finished with at
// that moment, read on the goroutine of the Close so that a Close returning early is caught
// whenever the test gets to look.
type closeResult struct {
	err      error
	finished int64
}

func closeAsync(s *kafkasink.Sink, hook *unbufferedHook) <-chan closeResult {
	ch := make(chan closeResult, 1)
	go func() {
		err := s.Close()
		ch <- closeResult{err: err, finished: hook.n.Load()}
	}()
	return ch
}

// Every Close, not only the first, waits until the records in flight are acknowledged; all of
// them return the same result.
func TestConcurrentCloseWaitsForTheFlush(t *testing.T) {
	for _, owned := range []bool{false, true} {
		t.Run(fmt.Sprintf("owned=%v", owned), func(t *testing.T) {
			ctx := testContext(t)
			c := newCluster(t, "events")
			hook := &unbufferedHook{}
			s := openSink(t, c, owned, []kgo.Opt{kgo.WithHooks(hook)}, kafkasink.WithCloseTimeout(testTimeout))
			require.NoError(t, s.Send(ctx, presenceEvent("warm")))
			require.EqualValues(t, 1, hook.n.Load())

			release, arrived := hang(c)
			defer release()
			inFlight := make(chan error, 1)
			go func() { inFlight <- s.Send(ctx, presenceEvent("in-flight")) }()
			waitFor(t, ctx, arrived, "the produce request")

			first := closeAsync(s, hook)
			// Only the state of the sink can tell that the first Close has begun: a Send would
			// produce a record if it had not.
			require.Eventually(t, func() bool { return kafkasink.Closing(s) }, returnBound, time.Millisecond)
			second := closeAsync(s, hook)

			// Sends fail at once while the close goes on.
			sctx, cancel := context.WithTimeout(ctx, returnBound)
			defer cancel()
			require.ErrorIs(t, s.Send(sctx, presenceEvent("late")), sink.ErrClosed)

			// A Close whose own context ends first says so, and leaves the others waiting.
			short, cancelShort := context.WithTimeout(ctx, 50*time.Millisecond)
			defer cancelShort()
			err := s.CloseContext(short)
			require.ErrorIs(t, err, context.DeadlineExceeded)
			assert.ErrorContains(t, err, "still closing")
			for i, ch := range []<-chan closeResult{first, second} {
				select {
				case r := <-ch:
					t.Fatalf("Close %d returned %v while the broker held the record", i, r.err)
				default:
				}
			}

			release()
			for i, ch := range []<-chan closeResult{first, second} {
				r := recv(t, ch)
				require.NoError(t, r.err, "Close %d", i)
				assert.EqualValues(t, 2, r.finished, "Close %d returned before the record in flight was acknowledged", i)
			}
			require.NoError(t, recv(t, inFlight))
			require.NoError(t, s.Close(), "a later Close returns the same result")
			done, cancelDone := context.WithCancel(ctx)
			cancelDone()
			require.NoError(t, s.CloseContext(done), "even with a context that has ended, once the sink is closed")

			var ids []string
			for _, e := range readEvents(t, ctx, c, "events") {
				ids = append(ids, e.ID)
			}
			assert.Equal(t, []string{"warm", "in-flight"}, ids, "no Send after the close began produced anything")
		})
	}
}

// When the close times out, every concurrent Close returns that same error.
func TestConcurrentCloseSameTimeoutError(t *testing.T) {
	for _, owned := range []bool{false, true} {
		t.Run(fmt.Sprintf("owned=%v", owned), func(t *testing.T) {
			ctx := testContext(t)
			c := newCluster(t, "events")
			s := openSink(t, c, owned, nil, kafkasink.WithCloseTimeout(100*time.Millisecond))
			require.NoError(t, s.Send(ctx, presenceEvent("warm")))

			release, arrived := hang(c)
			defer release()
			inFlight := make(chan error, 1)
			go func() { inFlight <- s.Send(ctx, presenceEvent("in-flight")) }()
			waitFor(t, ctx, arrived, "the produce request")

			const closers = 4
			errs := make(chan error, closers)
			for range closers {
				go func() { errs <- s.Close() }()
			}
			want := recv(t, errs)
			require.ErrorIs(t, want, context.DeadlineExceeded)
			assert.ErrorContains(t, want, "1 records still unacknowledged")
			for range closers - 1 {
				assert.True(t, recv(t, errs) == want, "every Close returns the first one's error")
			}
			assert.True(t, s.Close() == want, "so does a later Close")

			release()
			if err := recv(t, inFlight); owned {
				require.ErrorIs(t, err, sink.ErrClosed, "the sink closed its client, which failed the record")
			} else {
				require.NoError(t, err, "a caller's client stays open and delivers the record")
			}
		})
	}
}

// A CloseContext that gives up waiting does not stop the close: it goes on, and a later Close
// waits for it to finish.
func TestCloseContextGivesUpButTheCloseGoesOn(t *testing.T) {
	for _, owned := range []bool{false, true} {
		t.Run(fmt.Sprintf("owned=%v", owned), func(t *testing.T) {
			ctx := testContext(t)
			c := newCluster(t, "events")
			hook := &unbufferedHook{}
			s := openSink(t, c, owned, []kgo.Opt{kgo.WithHooks(hook)}, kafkasink.WithCloseTimeout(testTimeout))
			require.NoError(t, s.Send(ctx, presenceEvent("warm")))

			release, arrived := hang(c)
			defer release()
			inFlight := make(chan error, 1)
			go func() { inFlight <- s.Send(ctx, presenceEvent("in-flight")) }()
			waitFor(t, ctx, arrived, "the produce request")

			short, cancelShort := context.WithTimeout(ctx, 50*time.Millisecond)
			defer cancelShort()
			err := s.CloseContext(short)
			require.ErrorIs(t, err, context.DeadlineExceeded)
			assert.EqualValues(t, 1, hook.n.Load(), "the record in flight is still held")
			assert.ErrorIs(t, s.Send(ctx, presenceEvent("late")), sink.ErrClosed, "the close has begun")

			later := closeAsync(s, hook)
			release()
			r := recv(t, later)
			require.NoError(t, r.err)
			assert.EqualValues(t, 2, r.finished, "Close returned before the record in flight was acknowledged")
			require.NoError(t, recv(t, inFlight))
		})
	}
}

// A CloseContext given a context that has already ended still closes the sink.
func TestCloseContextWithAnEndedContextStillCloses(t *testing.T) {
	ctx := testContext(t)
	c := newCluster(t, "events")
	s := openSink(t, c, true, nil)
	require.NoError(t, s.Send(ctx, presenceEvent("warm")))
	done, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.CloseContext(done); err != nil {
		// The close may have finished before this call looked: then its result wins.
		require.ErrorIs(t, err, context.Canceled)
	}
	require.NoError(t, s.Close())
	assert.ErrorIs(t, s.Send(ctx, presenceEvent("late")), sink.ErrClosed)
}

// A client whose buffer is bounded in bytes may leave kgo.MaxBufferedRecords, and with it the
// default WithMaxInFlight, as large as the client allows. Close waits for the records in flight,
// not for every slot that could hold one: with none in flight it returns at once, without error.
func TestCloseWithAHugeRecordBuffer(t *testing.T) {
	for _, owned := range []bool{false, true} {
		t.Run(fmt.Sprintf("owned=%v", owned), func(t *testing.T) {
			ctx := testContext(t)
			c := newCluster(t, "events")
			hook := &unbufferedHook{}
			s := openSink(t, c, owned, []kgo.Opt{kgo.MaxBufferedRecords(math.MaxInt32), kgo.MaxBufferedBytes(64 << 20), kgo.WithHooks(hook)},
				kafkasink.WithCloseTimeout(3*time.Second))
			require.NoError(t, s.Send(ctx, presenceEvent("one")))

			release, arrived := hang(c)
			defer release()
			inFlight := make(chan error, 1)
			go func() { inFlight <- s.Send(ctx, presenceEvent("in-flight")) }()
			waitFor(t, ctx, arrived, "the produce request")
			closed := closeAsync(s, hook)
			release()
			res := recv(t, closed)
			require.NoError(t, res.err, "nothing was left in flight")
			assert.EqualValues(t, 2, res.finished, "Close returned once the record in flight was acknowledged")
			require.NoError(t, recv(t, inFlight))
		})
	}
}

// A closed sink refuses every event alike, retryably, whatever it would have made of the event:
// an event of an unmapped type, or with a time RFC 3339 cannot write, is no reason to
// dead-letter it while the service shuts down, and another instance may still deliver it.
func TestSendAfterCloseRefusesEveryEventAlike(t *testing.T) {
	ctx := testContext(t)
	c := newCluster(t, "events")
	s := newSink(t, newClient(t, c), kafkasink.WithTopicByType(map[string]string{customerEnd: "events"}, ""))
	require.NoError(t, s.Close())
	unmapped := presenceEvent("unmapped")
	timeless := customerEndEvent("timeless")
	timeless.Time = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
	for name, e := range map[string]*fanbridge.Event{"unmapped type": unmapped, "time past year 9999": timeless} {
		t.Run(name, func(t *testing.T) {
			err := s.Send(ctx, e)
			assert.ErrorIs(t, err, sink.ErrClosed)
			assert.False(t, retry.IsPermanent(err), "%v", err)

			err = sink.EventError(s.SendBatch(ctx, []*fanbridge.Event{e}), 0)
			assert.ErrorIs(t, err, sink.ErrClosed)
			assert.False(t, retry.IsPermanent(err), "%v", err)
		})
	}
}

// A Send still choosing its topic when Close runs produces nothing once Close has returned: Close
// waits only for the records already handed to the client, so that Send must see the sink closed
// before it hands its record over.
func TestSendChoosingItsTopicDuringCloseProducesNothing(t *testing.T) {
	ctx := testContext(t)
	c := newCluster(t, "events")
	choosing, release := make(chan struct{}), make(chan struct{})
	s := newSink(t, newClient(t, c), kafkasink.WithTopicFunc(func(e *fanbridge.Event) (string, error) {
		if e.ID == "slow" {
			close(choosing)
			<-release
		}
		return "events", nil
	}))
	result := make(chan error, 1)
	go func() { result <- s.Send(ctx, presenceEvent("slow")) }()
	waitFor(t, ctx, choosing, "the Send to choose its topic")
	require.NoError(t, s.Close())
	close(release)

	err := recv(t, result)
	assert.ErrorIs(t, err, sink.ErrClosed)
	assert.False(t, retry.IsPermanent(err), "%v", err)
	// Send returns only once the client is done with what it produced: an empty topic now
	// means the record never went out.
	assert.Empty(t, readAll(t, ctx, c, "events"))
}
