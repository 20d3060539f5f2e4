package grpcsink_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/internal/testwait"
	"github.com/fanbridge/fanbridge/sink"
	"github.com/fanbridge/fanbridge/sink/grpcsink"
)

// slowConsumer is a consumer whose handler holds the event "slow" until release is closed, and
// closes finished as it returns.
type slowConsumer struct {
	entered, release, finished chan struct{}
}

func newSlowConsumer() *slowConsumer {
	return &slowConsumer{entered: make(chan struct{}), release: make(chan struct{}), finished: make(chan struct{})}
}

func (c *slowConsumer) Send(_ context.Context, e *fanbridge.Event) error {
	if e.ID == "slow" {
		close(c.entered)
		<-c.release
		close(c.finished)
	}
	return nil
}

// closeResult is what one Close returned, and whether the slow handler had finished by then,
// read on the goroutine of the Close so that a Close returning early is caught whenever the test
// gets to look.
type closeResult struct {
	err      error
	finished bool
}

func closeAsync(s *grpcsink.Sink, c *slowConsumer) <-chan closeResult {
	ch := make(chan closeResult, 1)
	go func() {
		err := s.Close()
		r := closeResult{err: err}
		select {
		case <-c.finished:
			r.finished = true
		default:
		}
		ch <- r
	}()
	return ch
}

// constructors build a sink for addr either way; NewFromConn's connection is the test's.
var constructors = []struct {
	name string
	open func(t *testing.T, addr string) *grpcsink.Sink
}{
	{"New", func(t *testing.T, addr string) *grpcsink.Sink { return newSink(t, addr) }},
	{"NewFromConn", func(t *testing.T, addr string) *grpcsink.Sink {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		require.NoError(t, err)
		t.Cleanup(func() { _ = conn.Close() })
		s, err := grpcsink.NewFromConn(conn)
		require.NoError(t, err)
		t.Cleanup(func() { _ = s.Close() })
		return s
	}},
}

// startSlowSend sends "slow" to a new slow consumer and returns once its handler holds it.
func startSlowSend(t *testing.T, ctx context.Context, open func(*testing.T, string) *grpcsink.Sink) (*grpcsink.Sink, *slowConsumer, <-chan error) {
	t.Helper()
	c := newSlowConsumer()
	s := open(t, startServer(t, c))
	t.Cleanup(func() {
		select {
		case <-c.release:
		default:
			close(c.release) // so that the server can stop
		}
	})
	sent := make(chan error, 1)
	go func() { sent <- s.Send(ctx, &fanbridge.Event{ID: "slow"}) }()
	select {
	case <-c.entered:
	case <-ctx.Done():
		t.Fatal("the slow send never reached the server")
	}
	return s, c, sent
}

// Every Close, not only the first, waits for the Sends in flight; all of them return the same
// result.
func TestConcurrentCloseWaitsForTheSendInFlight(t *testing.T) {
	for _, tc := range constructors {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testContext(t)
			s, c, sent := startSlowSend(t, ctx, tc.open)

			first := closeAsync(s, c)
			// Once the close has begun, new Sends are refused at once.
			require.Eventually(t, func() bool {
				return errors.Is(s.Send(ctx, &fanbridge.Event{ID: "late"}), sink.ErrClosed)
			}, 5*time.Second, time.Millisecond)
			const more = 3
			others := make([]<-chan closeResult, more)
			for i := range others {
				others[i] = closeAsync(s, c)
			}

			// A Close whose own context ends first says so, and leaves the others waiting.
			short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
			defer cancel()
			err := s.CloseContext(short)
			require.ErrorIs(t, err, context.DeadlineExceeded)
			assert.ErrorContains(t, err, "still closing")
			for i, ch := range append([]<-chan closeResult{first}, others...) {
				select {
				case r := <-ch:
					t.Fatalf("Close %d returned %v while the consumer held a Send", i, r.err)
				default:
				}
			}

			close(c.release)
			want := recv(t, first)
			require.NoError(t, want.err)
			assert.True(t, want.finished, "the first Close returned while a Send was in flight")
			for i, ch := range others {
				r := recv(t, ch)
				assert.Equal(t, want.err, r.err, "Close %d", i+1)
				assert.True(t, r.finished, "Close %d returned while a Send was in flight", i+1)
			}
			require.NoError(t, recv(t, sent), "the send in flight completes on its connection")
			require.NoError(t, s.Close(), "a later Close returns the same result")
			done, cancelDone := context.WithCancel(ctx)
			cancelDone()
			require.NoError(t, s.CloseContext(done), "even with a context that has ended, once the sink is closed")
		})
	}
}

// A CloseContext that gives up waiting does not stop the close: it goes on, and a later Close
// waits for it to finish.
func TestCloseContextGivesUpButTheCloseGoesOn(t *testing.T) {
	for _, tc := range constructors {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testContext(t)
			s, c, sent := startSlowSend(t, ctx, tc.open)

			short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
			defer cancel()
			err := s.CloseContext(short)
			require.ErrorIs(t, err, context.DeadlineExceeded)
			assert.ErrorIs(t, s.Send(ctx, &fanbridge.Event{ID: "late"}), sink.ErrClosed, "the close has begun")

			later := closeAsync(s, c)
			close(c.release)
			r := recv(t, later)
			require.NoError(t, r.err)
			assert.True(t, r.finished, "Close returned while a Send was in flight")
			require.NoError(t, recv(t, sent))
		})
	}
}

// A CloseContext given a context that has already ended still closes the sink.
func TestCloseContextWithAnEndedContextStillCloses(t *testing.T) {
	ctx := testContext(t)
	s := newSink(t, startServer(t, newRecorder()))
	require.NoError(t, s.Send(ctx, &fanbridge.Event{ID: "1"}))
	done, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.CloseContext(done); err != nil {
		// The close may have finished before this call looked: then its result wins.
		require.ErrorIs(t, err, context.Canceled)
	}
	require.NoError(t, s.Close())
	assert.ErrorIs(t, s.Send(ctx, &fanbridge.Event{ID: "2"}), sink.ErrClosed)
}

// Close closes the connection New made, and with it ends every goroutine grpc-go runs for it:
// the resolver, the balancer, and the transport to each address. A Sink that left it open would
// hold them, and a connection to each consumer, for as long as the process lives.
func TestCloseEndsTheConnectionsGoroutines(t *testing.T) {
	first, second := startServer(t, newRecorder()), startServer(t, newRecorder())
	_, port, err := net.SplitHostPort(first)
	require.NoError(t, err)
	for _, tt := range []struct{ name, target string }{
		{"one address", first},
		{"a list of addresses", first + "," + second},
		// A name, not an IP address: grpc-go's dns resolver then runs a goroutine of its own.
		{"a dns name", "dns:///localhost:" + port},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testContext(t)
			before := goroutineIDs()
			s, err := grpcsink.New(tt.target, grpcsink.WithInsecure(), grpcsink.WithDialOptions(fastReconnect()))
			require.NoError(t, err)
			t.Cleanup(func() { _ = s.Close() })
			// New does not connect: the first Send does.
			require.NoError(t, s.Send(ctx, &fanbridge.Event{ID: "e1"}))
			require.NotEmpty(t, clientGoroutines(before), "the connection runs goroutines once it has sent")

			require.NoError(t, s.Close())

			// They end soon after Close, not during it: wait for them, as long as ctx lasts.
			tick := time.NewTicker(5 * time.Millisecond)
			defer tick.Stop()
			for left := clientGoroutines(before); len(left) > 0; left = clientGoroutines(before) {
				select {
				case <-ctx.Done():
					t.Fatalf("%d goroutines of the connection still run after Close:\n\n%s", len(left), strings.Join(left, "\n\n"))
				case <-tick.C:
				}
			}
		})
	}
}

// clientMarks are what the stack of a goroutine grpc-go runs for a client connection holds: the
// serializers of its resolver and balancer, grpc-go's dns resolver, and the reader and writer of
// each transport (created by transport.NewHTTP2Client). A server's goroutines have none of them.
var clientMarks = []string{
	"google.golang.org/grpc/internal/grpcsync.(*CallbackSerializer)",
	"google.golang.org/grpc/internal/resolver/dns.",
	"google.golang.org/grpc/internal/transport.NewHTTP2Client",
	"google.golang.org/grpc/internal/transport.(*http2Client)",
	"google.golang.org/grpc.(*ClientConn)",
	"google.golang.org/grpc.(*addrConn)",
}

// goroutineIDs returns the ids of the goroutines that run now.
func goroutineIDs() map[string]bool {
	ids := make(map[string]bool)
	for id := range testwait.Goroutines() {
		ids[id] = true
	}
	return ids
}

// clientGoroutines returns the stacks of the goroutines, begun since before was taken, that
// grpc-go runs for a client connection.
func clientGoroutines(before map[string]bool) []string {
	var found []string
	for id, stack := range testwait.Goroutines() {
		if before[id] {
			continue
		}
		for _, mark := range clientMarks {
			if strings.Contains(stack, mark) {
				found = append(found, stack)
				break
			}
		}
	}
	return found
}
