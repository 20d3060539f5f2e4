package genesys_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge/genesys"
	"github.com/fanbridge/fanbridge/genesys/genesystest"
	"github.com/fanbridge/fanbridge/retry"
)

func TestChannels(t *testing.T) {
	f := newFixture(t, nil)
	ctx := testContext(t)

	ch, err := f.client.CreateChannel(ctx)
	require.NoError(t, err)
	assert.NotEmpty(t, ch.ID)
	assert.Contains(t, ch.ConnectURI, ch.ID)
	assert.WithinDuration(t, time.Now().Add(genesys.ChannelLifetime), ch.Expires, time.Minute)

	topics := []string{"v2.users.e40f28ea-fa86-493f-a5b8-d559c8533c96.presence", "v2.routing.queues.4750048b-1994-41d4-8410-a5760c49a6cd.users"}
	require.NoError(t, f.client.SetSubscriptions(ctx, ch.ID, topics))
	info := f.srv.Channels()
	require.Len(t, info, 1)
	assert.Equal(t, 2, info[0].Topics)

	t.Run("rejected before any request", func(t *testing.T) {
		f.srv.ResetLog()
		err := f.client.SetSubscriptions(ctx, ch.ID, []string{"v2.users.{id}.presence"})
		assert.ErrorIs(t, err, genesys.ErrTemplateTopic)
		assert.Contains(t, err.Error(), "v2.users.{id}.presence")

		many := make([]string, genesys.MaxTopicsPerChannel+1)
		for i := range many {
			many[i] = fmt.Sprintf("v2.users.00000000-0000-4000-8000-%012d.presence", i)
		}
		err = f.client.SetSubscriptions(ctx, ch.ID, many)
		assert.ErrorIs(t, err, genesys.ErrTooManyTopics)

		assert.Error(t, f.client.SetSubscriptions(ctx, ch.ID, []string{""}))
		assert.Error(t, f.client.SetSubscriptions(ctx, "", topics))
		assert.Empty(t, f.srv.Requests())
	})
	t.Run("server refuses unknown topics", func(t *testing.T) {
		err := f.client.SetSubscriptions(ctx, ch.ID, []string{"v2.users.x.mood"})
		assert.ErrorIs(t, err, genesys.ErrBadRequest)
	})
	t.Run("unknown channel", func(t *testing.T) {
		err := f.client.SetSubscriptions(ctx, "no-such-channel", topics)
		assert.True(t, genesys.IsNotFound(err))
	})
	t.Run("the 21st channel evicts the oldest", func(t *testing.T) {
		for range genesys.MaxChannels {
			_, err := f.client.CreateChannel(ctx)
			require.NoError(t, err)
		}
		assert.Len(t, f.srv.Channels(), genesys.MaxChannels)
		assert.Equal(t, http.StatusOK, f.srv.Requests()[len(f.srv.Requests())-1].Status)
	})
}

// A channel creation whose outcome is unclear is never sent again: Genesys may hold the channel
// already, and a second one would count against MaxChannels unknown to the caller. Only a 429,
// which Genesys answers before doing anything, is retried.
func TestCreateChannelIsNotRepeatedAfterAnUnclearFailure(t *testing.T) {
	const path = "/api/v2/notifications/channels"
	for _, tc := range []struct {
		name    string
		fault   *genesystest.Fault
		abort   bool // the server drops the connection once it has read the request
		created int  // channels Genesys holds afterwards
		// wait is the Retry-After the error carries for the caller, who may try again: zero
		// for none.
		wait time.Duration
	}{
		{name: "5xx after Genesys created the channel", created: 1,
			fault: &genesystest.Fault{Method: http.MethodPost, Path: path, Status: http.StatusServiceUnavailable, Processed: true}},
		{name: "5xx before Genesys created it",
			fault: &genesystest.Fault{Method: http.MethodPost, Path: path, Status: http.StatusBadGateway}},
		{name: "5xx with Retry-After", wait: 30 * time.Second,
			fault: &genesystest.Fault{Method: http.MethodPost, Path: path, Status: http.StatusServiceUnavailable, RetryAfter: "30"}},
		{name: "connection broken after the request was sent", abort: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, nil)
			ctx := testContext(t)
			if tc.fault != nil {
				f.srv.Fail(*tc.fault)
			}
			if tc.abort {
				f.srv.SetHook(func(r *http.Request) {
					if r.Method == http.MethodPost && r.URL.Path == path {
						panic(http.ErrAbortHandler)
					}
				})
			}
			ch, err := f.client.CreateChannel(ctx)
			require.ErrorIs(t, err, genesys.ErrOutcomeUnknown)
			assert.Nil(t, ch)
			assert.Equal(t, 1, f.srv.Count(http.MethodPost, path), "creations sent")
			assert.Equal(t, tc.created, f.srv.ChannelsCreated())
			wait, ok := retry.RetryAfter(err)
			assert.Equal(t, tc.wait != 0, ok, "the error carries a wait")
			assert.Equal(t, tc.wait, wait)
		})
	}
	t.Run("429 is retried", func(t *testing.T) {
		f := newFixture(t, nil)
		f.srv.Fail(genesystest.Fault{Method: http.MethodPost, Path: path, Status: http.StatusTooManyRequests, RetryAfter: "0", Times: 2})
		ch, err := f.client.CreateChannel(testContext(t))
		require.NoError(t, err)
		assert.NotEmpty(t, ch.ID)
		assert.Equal(t, 3, f.srv.Count(http.MethodPost, path), "creations sent")
		assert.Equal(t, 1, f.srv.ChannelsCreated())
	})
	t.Run("refused connection is retried", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		closed := "http://" + l.Addr().String()
		require.NoError(t, l.Close())
		f := newFixture(t, nil, genesys.WithBaseURL(closed))
		_, err = f.client.CreateChannel(testContext(t))
		require.Error(t, err)
		assert.NotErrorIs(t, err, genesys.ErrOutcomeUnknown, "nothing reached the server")
		var re *retry.Error
		require.ErrorAs(t, err, &re)
		assert.Equal(t, fastPolicy.MaxAttempts, re.Attempts, "every attempt of the policy was made")
	})
	t.Run("a refused connection for the copy of one that reached Genesys", func(t *testing.T) {
		// A proxy resets the creation's stream with GOAWAY once Genesys has it: net/http's
		// HTTP/2 transport sends it again on a new connection, whose dial is refused. The
		// exchange ends with a dial error, yet the first copy may have created the channel.
		f := newFixture(t, nil)
		g := newResetGateway(t, f.srv.URL, func(method, p string) gatewayReset {
			if method == http.MethodPost && p == path {
				return resetConnectionDialFails
			}
			return passAnswer
		})
		c, err := genesys.NewClient(genesys.USEast1, genesystest.DefaultClientID, genesystest.DefaultClientSecret,
			genesys.WithHTTPClient(&http.Client{Transport: g.transport(t)}),
			genesys.WithBaseURL(g.URL), genesys.WithTokenURL(f.srv.TokenURL()), genesys.WithRetryPolicy(fastPolicy))
		require.NoError(t, err)
		sends := 0
		_, err = c.CreateChannel(genesys.WithSendCount(testContext(t), &sends))
		var op *net.OpError
		require.ErrorAs(t, err, &op, "the exchange ended with the refused dial")
		assert.ErrorIs(t, err, genesys.ErrOutcomeUnknown)
		assert.True(t, retry.IsPermanent(err))
		assert.Equal(t, 1, f.srv.Count(http.MethodPost, path), "creations sent")
		assert.Equal(t, 1, f.srv.ChannelsCreated())
		assert.Equal(t, 1, sends)
	})
}

// A caller that gives up once the creation was sent does not know whether Genesys created the
// channel, which counts against MaxChannels; one that gives up before sends nothing.
func TestCreateChannelCancelled(t *testing.T) {
	const path = "/api/v2/notifications/channels"
	t.Run("once sent", func(t *testing.T) {
		f := newFixture(t, nil)
		ctx, cancel := context.WithCancel(testContext(t))
		defer cancel()
		release := make(chan struct{})
		t.Cleanup(sync.OnceFunc(func() { close(release) }))
		f.srv.SetHook(func(r *http.Request) {
			if r.Method == http.MethodPost && r.URL.Path == path {
				cancel()
				<-release // Genesys creates the channel once the caller has given up
			}
		})
		ch, err := f.client.CreateChannel(ctx)
		require.ErrorIs(t, err, genesys.ErrOutcomeUnknown)
		assert.ErrorIs(t, err, context.Canceled)
		assert.Nil(t, ch)
		assert.Equal(t, 1, f.srv.Count(http.MethodPost, path), "creations sent")
	})
	t.Run("before", func(t *testing.T) {
		f := newFixture(t, nil)
		_, err := f.client.Organization(testContext(t)) // a token at hand, so the POST is next
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(testContext(t))
		cancel()
		_, err = f.client.CreateChannel(ctx)
		require.ErrorIs(t, err, context.Canceled)
		assert.NotErrorIs(t, err, genesys.ErrOutcomeUnknown, "nothing was sent")
		assert.Equal(t, retry.ClassCanceled, retry.Classify(err))
		assert.Zero(t, f.srv.Count(http.MethodPost, path))
	})
	// notSent checks the error of a creation cancelled before any of it was written.
	notSent := func(t *testing.T, err error) {
		t.Helper()
		require.ErrorIs(t, err, context.Canceled)
		assert.NotErrorIs(t, err, genesys.ErrOutcomeUnknown, "nothing was sent")
		assert.False(t, retry.IsPermanent(err))
		assert.Equal(t, retry.ClassCanceled, retry.Classify(err))
	}
	t.Run("during the TLS handshake", func(t *testing.T) {
		tokens := genesystest.NewServer()
		t.Cleanup(tokens.Close)
		// A server that takes the connection and never answers the ClientHello.
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		t.Cleanup(func() { _ = l.Close() })
		ctx, cancel := context.WithCancel(testContext(t))
		defer cancel()
		go func() {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			defer conn.Close()
			_, _ = conn.Read(make([]byte, 1)) // the handshake has begun
			cancel()
			<-ctx.Done()
			_, _ = io.Copy(io.Discard, conn) // until the client hangs up
		}()
		c, err := genesys.NewClient(genesys.USEast1, genesystest.DefaultClientID, genesystest.DefaultClientSecret,
			genesys.WithBaseURL("https://"+l.Addr().String()), genesys.WithTokenURL(tokens.TokenURL()),
			genesys.WithRetryPolicy(fastPolicy))
		require.NoError(t, err)
		_, err = c.CreateChannel(ctx)
		notSent(t, err)
	})
	t.Run("waiting for a connection of the pool", func(t *testing.T) {
		hc := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1}}
		t.Cleanup(hc.CloseIdleConnections)
		f := newFixture(t, nil, genesys.WithHTTPClient(hc))
		ctx := testContext(t)
		_, err := f.client.Organization(ctx) // a token at hand, so the POST is next
		require.NoError(t, err)
		holding, release := make(chan struct{}), make(chan struct{})
		releaseOnce := sync.OnceFunc(func() { close(release) })
		t.Cleanup(releaseOnce)
		f.srv.SetHook(func(r *http.Request) {
			if r.Method == http.MethodGet && r.URL.Path == "/api/v2/notifications/availabletopics" {
				close(holding)
				<-release
			}
		})
		held := make(chan error, 1)
		go func() {
			_, err := f.client.AvailableTopics(ctx) // holds the only connection
			held <- err
		}()
		<-holding
		// The caller's own trace still runs beside the client's: it cancels once the creation
		// looks for a connection, which it must wait for.
		cctx, cancel := context.WithCancel(ctx)
		defer cancel()
		var asked atomic.Bool
		cctx = httptrace.WithClientTrace(cctx, &httptrace.ClientTrace{GetConn: func(string) { asked.Store(true); cancel() }})
		_, err = f.client.CreateChannel(cctx)
		assert.True(t, asked.Load(), "the caller's trace was called")
		notSent(t, err)
		assert.Zero(t, f.srv.Count(http.MethodPost, path))
		releaseOnce()
		require.NoError(t, <-held)
	})
	t.Run("while reading a refusal", func(t *testing.T) {
		tokens := genesystest.NewServer()
		t.Cleanup(tokens.Close)
		release := make(chan struct{})
		api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Length", "100")
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = io.WriteString(w, `{"message":"slow down`)
			w.(http.Flusher).Flush()
			<-release // the rest of the body never comes
		}))
		t.Cleanup(api.Close)
		t.Cleanup(func() { close(release) })
		ctx, cancel := context.WithCancel(testContext(t))
		defer cancel()
		hc := &http.Client{Transport: cancelOnAnswer{base: http.DefaultTransport, path: path, cancel: cancel}}
		c, err := genesys.NewClient(genesys.USEast1, genesystest.DefaultClientID, genesystest.DefaultClientSecret,
			genesys.WithBaseURL(api.URL), genesys.WithTokenURL(tokens.TokenURL()),
			genesys.WithRetryPolicy(fastPolicy), genesys.WithHTTPClient(hc))
		require.NoError(t, err)
		_, err = c.CreateChannel(ctx)
		require.ErrorIs(t, err, context.Canceled)
		assert.NotErrorIs(t, err, genesys.ErrOutcomeUnknown, "a 429 creates nothing")
		assert.Equal(t, retry.ClassCanceled, retry.Classify(err))
	})
	t.Run("through a transport that reports nothing", func(t *testing.T) {
		// A transport of the caller's that calls no httptrace hook cannot say whether anything
		// went out: the creation stays unclear.
		f := newFixture(t, nil)
		ctx, cancel := context.WithCancel(testContext(t))
		defer cancel()
		hc := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
			if r.URL.Path != path {
				return http.DefaultTransport.RoundTrip(r.WithContext(context.WithoutCancel(r.Context())))
			}
			cancel()
			<-r.Context().Done()
			return nil, r.Context().Err()
		})}
		c, err := genesys.NewClient(genesys.USEast1, genesystest.DefaultClientID, genesystest.DefaultClientSecret,
			genesys.WithBaseURL(f.srv.URL), genesys.WithTokenURL(f.srv.TokenURL()),
			genesys.WithRetryPolicy(fastPolicy), genesys.WithHTTPClient(hc))
		require.NoError(t, err)
		_, err = c.CreateChannel(ctx)
		require.ErrorIs(t, err, genesys.ErrOutcomeUnknown)
		assert.ErrorIs(t, err, context.Canceled)
	})
}

// cancelOnAnswer is a transport that calls cancel once the headers of the answer to a request
// for path are in, so that its body is read under a cancelled context.
type cancelOnAnswer struct {
	base   http.RoundTripper
	path   string
	cancel context.CancelFunc
}

func (t cancelOnAnswer) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(r)
	if err == nil && r.URL.Path == t.path {
		t.cancel()
	}
	return resp, err
}

// The status of an answer whose body was cut off says what the server did: a 4xx (429 included)
// refused the creation, which may then be sent again; a 2xx made it, and a 5xx may have.
func TestCreateChannelAnswerCutOff(t *testing.T) {
	const path = "/api/v2/notifications/channels"
	for _, tc := range []struct {
		status  int
		unknown bool
	}{
		{http.StatusBadRequest, false},
		{http.StatusNotFound, false},
		{http.StatusTooManyRequests, false},
		{http.StatusOK, true},
		{http.StatusServiceUnavailable, true},
	} {
		t.Run(strconv.Itoa(tc.status), func(t *testing.T) {
			tokens := genesystest.NewServer()
			t.Cleanup(tokens.Close)
			var posts atomic.Int32
			api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				posts.Add(1)
				conn, buf, err := http.NewResponseController(w).Hijack()
				if err != nil {
					return
				}
				defer conn.Close()
				fmt.Fprintf(buf, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"mess", tc.status, http.StatusText(tc.status))
				_ = buf.Flush()
			}))
			t.Cleanup(api.Close)
			c, err := genesys.NewClient(genesys.USEast1, genesystest.DefaultClientID, genesystest.DefaultClientSecret,
				genesys.WithBaseURL(api.URL), genesys.WithTokenURL(tokens.TokenURL()), genesys.WithRetryPolicy(fastPolicy))
			require.NoError(t, err)
			_, err = c.CreateChannel(testContext(t))
			require.ErrorIs(t, err, io.ErrUnexpectedEOF)
			if tc.unknown {
				assert.ErrorIs(t, err, genesys.ErrOutcomeUnknown)
				assert.True(t, retry.IsPermanent(err))
				assert.EqualValues(t, 1, posts.Load(), "creations sent")
				return
			}
			assert.NotErrorIs(t, err, genesys.ErrOutcomeUnknown)
			var re *retry.Error
			require.ErrorAs(t, err, &re)
			assert.Equal(t, retry.ReasonAttempts, re.Reason)
			assert.EqualValues(t, fastPolicy.MaxAttempts, posts.Load(), "creations sent")
		})
	}
}

// A success answer to a channel creation that cannot be used (no id, no connectUri, a body that
// does not decode) still means that Genesys created a channel, which counts against MaxChannels:
// the error must say the outcome is unknown, or a caller would count the creation as failed and
// create another, uncounted, each time.
func TestCreateChannelUnusableSuccessAnswerIsOutcomeUnknown(t *testing.T) {
	const path = "/api/v2/notifications/channels"
	for _, tc := range []struct{ name, body string }{
		{"empty object", `{}`},
		{"no connectUri", `{"id":"5f3c0000-0000-4000-8000-000000000001"}`},
		{"no id", `{"connectUri":"wss://streaming.mypurecloud.com/channels/x"}`},
		{"not JSON", `<html>ok</html>`},
		// The id is logged and put in errors: a terminal escape or a bidirectional override in it
		// makes the channel as unusable as no id.
		{"id with escapes", `{"id":"5f3c\u009b2J\u202e\u001b[0m","connectUri":"wss://streaming.mypurecloud.com/channels/x"}`},
		{"id over 128 bytes", `{"id":"` + strings.Repeat("5f3c0000", 17) + `","connectUri":"wss://streaming.mypurecloud.com/channels/x"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tokens := genesystest.NewServer()
			t.Cleanup(tokens.Close)
			var posts atomic.Int32
			api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method != http.MethodPost || r.URL.Path != path {
					http.NotFound(w, r)
					return
				}
				posts.Add(1)
				w.Header().Set("Content-Type", "application/json")
				_, _ = io.WriteString(w, tc.body)
			}))
			t.Cleanup(api.Close)
			c, err := genesys.NewClient(genesys.USEast1, genesystest.DefaultClientID, genesystest.DefaultClientSecret,
				genesys.WithBaseURL(api.URL), genesys.WithTokenURL(tokens.TokenURL()), genesys.WithRetryPolicy(fastPolicy))
			require.NoError(t, err)
			ch, err := c.CreateChannel(testContext(t))
			require.ErrorIs(t, err, genesys.ErrOutcomeUnknown)
			assert.True(t, retry.IsPermanent(err), "not to be sent again blindly")
			assert.Nil(t, ch)
			assert.EqualValues(t, 1, posts.Load(), "creations sent")
			assert.Equal(t, -1, unsafeIndex(err.Error()), "%q", err.Error())
			assert.NotContains(t, err.Error(), strings.Repeat("5f3c0000", 17))
		})
	}
}

func TestAvailableTopics(t *testing.T) {
	f := newFixture(t, nil)
	topics, err := f.client.AvailableTopics(testContext(t))
	require.NoError(t, err)
	require.Len(t, topics, len(genesystest.Topics()))
	byID := map[string]genesys.Topic{}
	for _, tp := range topics {
		byID[tp.ID] = tp
	}
	assert.True(t, byID["v2.users.{id}.presence"].SupportsEventBridge())
	assert.False(t, byID["v2.system.socket_closing"].SupportsEventBridge())
	assert.True(t, genesys.Topic{ID: "x"}.SupportsEventBridge(), "unknown transports are assumed to work")
	assert.True(t, genesys.Topic{Transports: []string{"eventbridge"}}.SupportsEventBridge())
	reqs := f.srv.Requests()
	assert.Contains(t, reqs[len(reqs)-1].Query, "expand=transports")
}

// WithSendCount counts the times a call's request went out, and only those: not the token
// request, not a copy refused with a 401 and sent again with a new token, not a try that never had
// a connection. A caller that holds a channel back while a subscription request may still be
// carried out reads it (package notifications).
func TestSetSubscriptionsSendCount(t *testing.T) {
	f := newFixture(t, nil)
	ctx := testContext(t)
	ch, err := f.client.CreateChannel(ctx)
	require.NoError(t, err)
	path := "/api/v2/notifications/channels/" + ch.ID + "/subscriptions"
	topics := []string{"v2.users.e40f28ea-fa86-493f-a5b8-d559c8533c96.presence"}
	// fresh returns a client that has no token yet, so that its first call fetches one.
	fresh := func(t *testing.T, opts ...genesys.Option) *genesys.Client {
		t.Helper()
		c, err := genesys.NewClient(genesys.USEast1, genesystest.DefaultClientID, genesystest.DefaultClientSecret,
			append([]genesys.Option{genesys.WithBaseURL(f.srv.URL), genesys.WithTokenURL(f.srv.TokenURL()), genesys.WithRetryPolicy(fastPolicy)}, opts...)...)
		require.NoError(t, err)
		return c
	}
	for _, tc := range []struct {
		name string
		// before prepares the call made with c; it returns the context of the call.
		before func(t *testing.T, c *genesys.Client) context.Context
		sends  int // as counted
		puts   int // as the server saw them
		err    error
	}{
		{name: "once, the token fetched first", sends: 1, puts: 1,
			before: func(*testing.T, *genesys.Client) context.Context { return ctx }},
		{name: "once, after a 401 and a new token", sends: 1, puts: 2,
			before: func(t *testing.T, c *genesys.Client) context.Context {
				require.NoError(t, c.SetSubscriptions(ctx, ch.ID, topics))
				f.srv.ExpireTokens()
				f.srv.ResetLog()
				return ctx
			}},
		{name: "twice, after a 503", sends: 2, puts: 2,
			before: func(*testing.T, *genesys.Client) context.Context {
				f.srv.Fail(genesystest.Fault{Method: http.MethodPut, Path: path, Status: http.StatusServiceUnavailable})
				return ctx
			}},
		{name: "once, refused with a 400", sends: 1, puts: 1, err: genesys.ErrBadRequest,
			before: func(*testing.T, *genesys.Client) context.Context {
				f.srv.Fail(genesystest.Fault{Method: http.MethodPut, Path: path, Status: http.StatusBadRequest})
				return ctx
			}},
		{name: "once, a second 401 final", sends: 1, puts: 2, err: genesys.ErrUnauthorized,
			before: func(t *testing.T, c *genesys.Client) context.Context {
				require.NoError(t, c.SetSubscriptions(ctx, ch.ID, topics))
				f.srv.ResetLog()
				f.srv.Fail(genesystest.Fault{Method: http.MethodPut, Path: path, Status: http.StatusUnauthorized, Times: 2})
				return ctx
			}},
		{name: "never, cancelled before", err: context.Canceled,
			before: func(*testing.T, *genesys.Client) context.Context {
				cctx, cancel := context.WithCancel(ctx)
				cancel()
				return cctx
			}},
		{name: "never, cancelled while the token was fetched", err: context.Canceled,
			before: func(t *testing.T, _ *genesys.Client) context.Context {
				cctx, cancel := context.WithCancel(ctx)
				f.srv.SetHook(func(r *http.Request) {
					if r.URL.Path == "/oauth/token" {
						cancel()
					}
				})
				t.Cleanup(func() { f.srv.SetHook(nil) })
				return cctx
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := fresh(t)
			cctx := tc.before(t, c)
			f.srv.ResetLog()
			sends := 0
			err := c.SetSubscriptions(genesys.WithSendCount(cctx, &sends), ch.ID, topics)
			if tc.err == nil {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, tc.err)
			}
			assert.Equal(t, tc.sends, sends, "sends counted")
			assert.Equal(t, tc.puts, f.srv.Count(http.MethodPut, path), "requests the server saw")
		})
	}
	t.Run("never, the connection refused", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		dead := "http://" + l.Addr().String()
		require.NoError(t, l.Close())
		sends := 0
		err = fresh(t, genesys.WithBaseURL(dead)).SetSubscriptions(genesys.WithSendCount(ctx, &sends), ch.ID, topics)
		var op *net.OpError
		require.ErrorAs(t, err, &op)
		assert.Zero(t, sends)
	})
}

// A transport may send a request more than once inside one exchange: net/http's HTTP/2 transport
// sends it again after a proxy reset its stream with PROTOCOL_ERROR, which a proxy may do once the
// backend has the request, and a transport of the caller's may send it again after a 503. Every
// copy counts, but one answered with a 401 and sent again with a new token, also when the exchange
// ends with the failed dial of a later copy.
func TestSendCountCountsEachCopyOfOneExchange(t *testing.T) {
	srv := genesystest.NewServer()
	t.Cleanup(srv.Close)
	ctx := testContext(t)
	plain, err := genesys.NewClient(genesys.USEast1, genesystest.DefaultClientID, genesystest.DefaultClientSecret,
		genesys.WithBaseURL(srv.URL), genesys.WithTokenURL(srv.TokenURL()), genesys.WithRetryPolicy(fastPolicy))
	require.NoError(t, err)
	ch, err := plain.CreateChannel(ctx)
	require.NoError(t, err)
	path := "/api/v2/notifications/channels/" + ch.ID + "/subscriptions"
	topics := []string{"v2.users.e40f28ea-fa86-493f-a5b8-d559c8533c96.presence"}
	// throughGateway returns a client that speaks HTTP/2 to a gateway in front of srv, which
	// resets the first subscription request as reset says once srv has it.
	throughGateway := func(t *testing.T, reset gatewayReset) *genesys.Client {
		var resets atomic.Int32
		g := newResetGateway(t, srv.URL, func(method, p string) gatewayReset {
			if method == http.MethodPut && p == path && resets.Add(1) == 1 {
				return reset
			}
			return passAnswer
		})
		c, err := genesys.NewClient(genesys.USEast1, genesystest.DefaultClientID, genesystest.DefaultClientSecret,
			genesys.WithHTTPClient(&http.Client{Transport: g.transport(t)}),
			genesys.WithBaseURL(g.URL), genesys.WithTokenURL(srv.TokenURL()), genesys.WithRetryPolicy(fastPolicy))
		require.NoError(t, err)
		return c
	}
	for _, tc := range []struct {
		name string
		// client returns the client of the call, ready for it.
		client func(t *testing.T) *genesys.Client
		sends  int // as counted
		puts   int // as the server saw them
	}{
		{name: "HTTP/2, sent again after its stream was reset", sends: 2, puts: 2,
			client: func(t *testing.T) *genesys.Client { return throughGateway(t, resetStream) }},
		{name: "HTTP/2, sent again after its stream was reset, then a 401", sends: 2, puts: 3,
			client: func(t *testing.T) *genesys.Client {
				c := throughGateway(t, resetStream)
				_, err := c.AvailableTopics(ctx) // a token at hand, which srv then refuses
				require.NoError(t, err)
				srv.ExpireTokens()
				return c
			}},
		{name: "HTTP/2, its stream reset with a GOAWAY, the dial for the copy refused, then sent again", sends: 2, puts: 2,
			client: func(t *testing.T) *genesys.Client {
				// The first exchange ends with the refused dial of its second copy; its first
				// counts all the same. The retrier then sends the request again.
				return throughGateway(t, resetConnectionDialFails)
			}},
		{name: "sent again by the caller's transport after a 503", sends: 2, puts: 2,
			client: func(t *testing.T) *genesys.Client {
				tr := http.DefaultTransport.(*http.Transport).Clone()
				t.Cleanup(tr.CloseIdleConnections)
				c, err := genesys.NewClient(genesys.USEast1, genesystest.DefaultClientID, genesystest.DefaultClientSecret,
					genesys.WithHTTPClient(&http.Client{Transport: genesystest.ResendOn503{Base: tr}}),
					genesys.WithBaseURL(srv.URL), genesys.WithTokenURL(srv.TokenURL()), genesys.WithRetryPolicy(fastPolicy))
				require.NoError(t, err)
				srv.Fail(genesystest.Fault{Method: http.MethodPut, Path: path, Status: http.StatusServiceUnavailable, Processed: true})
				return c
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.client(t)
			srv.ResetLog()
			sends := 0
			require.NoError(t, c.SetSubscriptions(genesys.WithSendCount(ctx, &sends), ch.ID, topics))
			assert.Equal(t, tc.puts, srv.Count(http.MethodPut, path), "requests the server saw")
			assert.Equal(t, tc.sends, sends, "sends counted")
		})
	}
}
