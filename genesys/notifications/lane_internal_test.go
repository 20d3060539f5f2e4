package notifications

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge/genesys"
	"github.com/fanbridge/fanbridge/genesys/genesystest"
	"github.com/fanbridge/fanbridge/retry"
)

// A channel connected again was created long before its socket was opened: its replacement is
// planned from its creation, as the account knows it, whether or not Genesys' answer said when it
// expires.
func TestReplacementPlannedFromTheChannelsCreation(t *testing.T) {
	l := &lane{s: &Source{cfg: defaultConfig()}} // expiry margin 10 minutes
	for _, tc := range []struct {
		name        string
		left        time.Duration // life left when the socket is opened
		withExpires bool          // Genesys' answer named the expiry
		want        time.Duration
	}{
		{"new channel", genesys.ChannelLifetime, true, genesys.ChannelLifetime - DefaultExpiryMargin},
		{"new channel, no expiry in the answer", genesys.ChannelLifetime, false, genesys.ChannelLifetime - DefaultExpiryMargin},
		{"created 23 hours ago", time.Hour, true, time.Hour - DefaultExpiryMargin},
		{"created 23 hours ago, no expiry in the answer", time.Hour, false, time.Hour - DefaultExpiryMargin},
		{"15 minutes left: halfway", 15 * time.Minute, false, 15 * time.Minute / 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := time.Now()
			ch := &genesys.Channel{ID: "c", ConnectURI: "ws://x"}
			if tc.withExpires {
				ch.Expires = now.Add(tc.left)
			}
			c := &conn{ch: ch, claim: &claim{h: &held{ch: ch, expires: now.Add(tc.left)}}, opened: now}
			assert.InDelta(t, tc.want, l.rotateIn(c), float64(time.Second))
		})
	}
}

// The Retry-After of a refused handshake is read as Genesys sends it (delay-seconds) or as an
// HTTP-date; anything else is no wait, and no value makes a negative or overflowing one.
func FuzzDialRetryAfter(f *testing.F) {
	for _, v := range []string{"", "0", "1", "30", "3600", "1.5", "-1", "NaN", "Inf", "1e400", "abc",
		"Wed, 21 Oct 2015 07:28:00 GMT", "Sun, 06 Nov 2994 08:49:37 GMT", " 20 "} {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, v string) {
		resp := &http.Response{Header: http.Header{"Retry-After": []string{v}}}
		d, ok := dialRetryAfter(resp)
		if !ok {
			assert.Zero(t, d)
			return
		}
		assert.GreaterOrEqual(t, d, time.Duration(0))
		assert.LessOrEqual(t, d, time.Duration(maxRetryAfterSeconds)*time.Second)
		if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n >= 0 && n < maxRetryAfterSeconds {
			assert.Equal(t, time.Duration(n)*time.Second, d)
		}
	})
}

func TestDialRetryAfter(t *testing.T) {
	for _, tc := range []struct {
		value string
		want  time.Duration
		ok    bool
	}{
		{"30", 30 * time.Second, true},
		{"0", 0, true},
		{"1.5", 1500 * time.Millisecond, true},
		{"", 0, false},
		{"-1", 0, false},
		{"soon", 0, false},
		{"Wed, 21 Oct 2015 07:28:00 GMT", 0, true}, // past
	} {
		t.Run(tc.value, func(t *testing.T) {
			d, ok := dialRetryAfter(&http.Response{Header: http.Header{"Retry-After": []string{tc.value}}})
			assert.Equal(t, tc.ok, ok)
			assert.Equal(t, tc.want, d)
		})
	}
	_, ok := dialRetryAfter(nil)
	assert.False(t, ok, "no answer")
	d, ok := dialRetryAfter(&http.Response{Header: http.Header{"Retry-After": []string{time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)}}})
	assert.True(t, ok)
	assert.InDelta(t, time.Hour, d, float64(2*time.Second))
}

// A channel is held back only when a subscription request that changed it may still be carried
// out: it went out more than once, or went out once and its answer was not a 2xx or a 4xx read in
// full. The token request, a copy refused with a 401 and sent again with a new token, and a
// request cut short before it went out do not count: at the limit of 20, a needless hold makes a
// lane wait for the grace period.
func TestSubscriptionRequestHoldsBackOnlyWhatMayStillLand(t *testing.T) {
	srv := genesystest.NewServer()
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	policy := retry.Policy{InitialInterval: time.Millisecond, MaxInterval: 5 * time.Millisecond, MaxAttempts: 3, Jitter: retry.NoJitter}
	// newClient returns a client without a token, so that its first request fetches one. Its
	// transport is rt, or a clone of http.DefaultTransport when rt is nil; with once, it sends each
	// request once, whatever the answer.
	newClient := func(t *testing.T, rt http.RoundTripper, once bool) *genesys.Client {
		t.Helper()
		p := policy
		if once {
			p.MaxAttempts = 1
		}
		if rt == nil {
			tr := http.DefaultTransport.(*http.Transport).Clone()
			t.Cleanup(tr.CloseIdleConnections)
			rt = tr
		}
		c, err := genesys.NewClient(genesys.USEast1, genesystest.DefaultClientID, genesystest.DefaultClientSecret,
			genesys.WithHTTPClient(&http.Client{Transport: rt}),
			genesys.WithBaseURL(srv.URL), genesys.WithTokenURL(srv.TokenURL()), genesys.WithRetryPolicy(p))
		require.NoError(t, err)
		return c
	}
	ch, err := newClient(t, nil, false).CreateChannel(ctx)
	require.NoError(t, err)
	path := "/api/v2/notifications/channels/" + ch.ID + "/subscriptions"
	topics := []string{"v2.users.e40f28ea-fa86-493f-a5b8-d559c8533c96.presence"}
	for _, tc := range []struct {
		name string
		// transport, when set, returns the transport of the client.
		transport func(t *testing.T) http.RoundTripper
		// before prepares the request sent with c and returns its context.
		before func(t *testing.T, c *genesys.Client) context.Context
		once   bool // the client does not send the request again
		hold   bool
		err    bool
	}{
		{name: "sent once, the token fetched first",
			before: func(*testing.T, *genesys.Client) context.Context { return ctx }},
		{name: "sent once after a 401 and a new token",
			before: func(t *testing.T, c *genesys.Client) context.Context {
				require.NoError(t, c.SetSubscriptions(ctx, ch.ID, topics))
				srv.ExpireTokens()
				return ctx
			}},
		{name: "refused with a 400", err: true,
			before: func(*testing.T, *genesys.Client) context.Context {
				srv.Fail(genesystest.Fault{Method: http.MethodPut, Path: path, Status: http.StatusBadRequest})
				return ctx
			}},
		{name: "cancelled before it went out", err: true,
			before: func(*testing.T, *genesys.Client) context.Context {
				cctx, cancel := context.WithCancel(ctx)
				cancel()
				return cctx
			}},
		{name: "cancelled during the token request", err: true,
			before: func(t *testing.T, _ *genesys.Client) context.Context {
				cctx, cancel := context.WithCancel(ctx)
				srv.SetHook(func(r *http.Request) {
					if r.URL.Path == "/oauth/token" {
						cancel()
					}
				})
				t.Cleanup(func() { srv.SetHook(nil) })
				return cctx
			}},
		{name: "sent once, answered 502", once: true, hold: true, err: true,
			// A gateway's 5xx says nothing of what Genesys did with the request.
			before: func(*testing.T, *genesys.Client) context.Context {
				srv.Fail(genesystest.Fault{Method: http.MethodPut, Path: path, Status: http.StatusBadGateway, Processed: true})
				return ctx
			}},
		{name: "sent again after a 503", hold: true,
			before: func(*testing.T, *genesys.Client) context.Context {
				srv.Fail(genesystest.Fault{Method: http.MethodPut, Path: path, Status: http.StatusServiceUnavailable, Processed: true})
				return ctx
			}},
		{name: "sent again by the caller's transport after a 503, inside one exchange", hold: true,
			transport: func(t *testing.T) http.RoundTripper {
				tr := http.DefaultTransport.(*http.Transport).Clone()
				t.Cleanup(tr.CloseIdleConnections)
				return genesystest.ResendOn503{Base: tr}
			},
			before: func(*testing.T, *genesys.Client) context.Context {
				srv.Fail(genesystest.Fault{Method: http.MethodPut, Path: path, Status: http.StatusServiceUnavailable, Processed: true})
				return ctx
			}},
		{name: "a 503, then the dial for the caller's transport's copy refused", hold: true,
			// The exchange ends with a dial error after its first copy reached Genesys; the
			// client sends the request again, which succeeds.
			transport: func(t *testing.T) http.RoundTripper {
				l, err := net.Listen("tcp", "127.0.0.1:0")
				require.NoError(t, err)
				refused := l.Addr().String()
				require.NoError(t, l.Close())
				tr := http.DefaultTransport.(*http.Transport).Clone()
				tr.DisableKeepAlives = true // the copy dials a connection of its own
				var d net.Dialer
				var failNext atomic.Bool
				tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
					if failNext.CompareAndSwap(true, false) {
						addr = refused
					}
					return d.DialContext(ctx, network, addr)
				}
				return genesystest.ResendOn503{Base: tr, BeforeCopy: func() { failNext.Store(true) }}
			},
			before: func(*testing.T, *genesys.Client) context.Context {
				srv.Fail(genesystest.Fault{Method: http.MethodPut, Path: path, Status: http.StatusServiceUnavailable, Processed: true})
				return ctx
			}},
		{name: "a 503, then refused with a 400", hold: true, err: true,
			before: func(*testing.T, *genesys.Client) context.Context {
				// The answer to the second copy does not settle the first.
				srv.Fail(genesystest.Fault{Method: http.MethodPut, Path: path, Status: http.StatusServiceUnavailable})
				srv.Fail(genesystest.Fault{Method: http.MethodPut, Path: path, Status: http.StatusBadRequest})
				return ctx
			}},
		{name: "cut short once it went out", hold: true, err: true,
			before: func(t *testing.T, c *genesys.Client) context.Context {
				require.NoError(t, c.SetSubscriptions(ctx, ch.ID, topics)) // a token at hand
				cctx, cancel := context.WithCancel(ctx)
				srv.SetHook(func(r *http.Request) {
					if r.Method != http.MethodPut || r.URL.Path != path {
						return
					}
					_, _ = io.ReadAll(r.Body) // the whole request is in
					cancel()
					select {
					case <-r.Context().Done(): // the client hung up
					case <-ctx.Done():
					}
				})
				t.Cleanup(func() { srv.SetHook(nil) })
				return cctx
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var rt http.RoundTripper
			if tc.transport != nil {
				rt = tc.transport(t)
			}
			c := newClient(t, rt, tc.once)
			a := testAccount(t)
			l := &lane{s: &Source{client: c, log: slog.New(slog.DiscardHandler), account: a}}
			h := &held{ch: ch, expires: time.Now().Add(time.Hour), inUse: true}
			a.items = []*held{h}
			rctx := tc.before(t, c)
			err := l.setSubscriptions(rctx, &claim{a: a, h: h}, topics)
			if tc.err {
				require.Error(t, err)
			} else {
				require.NoError(t, err)
			}
			assert.Equal(t, tc.hold, !h.reuseAt.IsZero(), "held back until %v (error %v)", h.reuseAt, err)
		})
	}
}
