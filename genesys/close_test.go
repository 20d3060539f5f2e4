package genesys_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge/genesys"
	"github.com/fanbridge/fanbridge/genesys/genesystest"
	"github.com/fanbridge/fanbridge/internal/testwait"
	"github.com/fanbridge/fanbridge/retry"
	"github.com/fanbridge/fanbridge/retry/retrytest"
)

// handles are the goroutines (by id) and file descriptors of the process at one moment, so that
// a test can tell that a client let go of the connections it opened after that moment: each holds
// a socket on both ends and goroutines on both ends, and none of them closes for 90 seconds on
// its own.
type handles struct {
	goroutines map[string]bool
	fds        map[string]string
}

func takeHandles(t *testing.T) handles {
	t.Helper()
	if _, err := os.ReadDir("/proc/self/fd"); err != nil {
		t.Skipf("open file descriptors cannot be listed here: %v", err)
	}
	h := handles{goroutines: map[string]bool{}, fds: openFDs()}
	for id := range testwait.Goroutines() {
		h.goroutines[id] = true
	}
	return h
}

// added returns the goroutines and file descriptors that are there now and were not in h.
func (h handles) added() []string {
	var out []string
	for id, stack := range testwait.Goroutines() {
		if !h.goroutines[id] {
			out = append(out, stack)
		}
	}
	for fd, target := range openFDs() {
		if h.fds[fd] != target {
			out = append(out, "fd "+fd+" -> "+target)
		}
	}
	sort.Strings(out)
	return out
}

// requireReleased waits until every goroutine and file descriptor added since h is gone, and
// fails the test naming them when some are still there after 5 seconds.
func (h handles) requireReleased(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	poll := time.NewTicker(5 * time.Millisecond)
	defer poll.Stop()
	for {
		left := h.added()
		if len(left) == 0 {
			return
		}
		select {
		case <-poll.C:
		case <-ctx.Done():
			t.Fatalf("still there 5s after Close:\n%s", strings.Join(left, "\n\n"))
		}
	}
}

// openFDs returns what each open file descriptor refers to, by number.
func openFDs() map[string]string {
	out := map[string]string{}
	ents, _ := os.ReadDir("/proc/self/fd")
	for _, e := range ents {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		if err != nil || strings.HasPrefix(target, "/proc/") {
			continue // closed since, or the listing's own descriptor
		}
		out[e.Name()] = target
	}
	return out
}

func newTestClient(t *testing.T, srv *genesystest.Server, opts ...genesys.Option) *genesys.Client {
	t.Helper()
	all := append([]genesys.Option{genesys.WithBaseURL(srv.URL), genesys.WithTokenURL(srv.TokenURL())}, opts...)
	c, err := genesys.NewClient(genesys.USEast1, genesystest.DefaultClientID, genesystest.DefaultClientSecret, all...)
	require.NoError(t, err)
	return c
}

// newClientOf returns a Client of the server at url, for a test that uses only its HTTP client.
func newClientOf(t *testing.T, url string) *genesys.Client {
	t.Helper()
	c, err := genesys.NewClient(genesys.USEast1, "id", "secret", genesys.WithBaseURL(url), genesys.WithTokenURL(url+"/oauth/token"))
	require.NoError(t, err)
	return c
}

// organizations calls Organization n times at once and requires every call to succeed.
func organizations(t *testing.T, ctx context.Context, c *genesys.Client, n int) {
	t.Helper()
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			_, err := c.Organization(ctx)
			assert.NoError(t, err)
		})
	}
	testwait.Group(t, &wg, 10*time.Second)
}

func TestCloseReleasesConnections(t *testing.T) {
	srv := genesystest.NewServer()
	t.Cleanup(srv.Close) // only after the check: closing the server would close the connections too
	ctx := testContext(t)
	base := takeHandles(t)

	c := newTestClient(t, srv)
	organizations(t, ctx, c, 4)
	require.NotEmpty(t, base.added(), "the calls left no connection open to release")
	require.NoError(t, c.Close())
	base.requireReleased(t)

	// Calls after Close send nothing.
	before := len(srv.Requests())
	_, err := c.Organization(ctx)
	require.ErrorIs(t, err, genesys.ErrClosed)

	var sent int
	_, err = c.CreateChannel(genesys.WithSendCount(ctx, &sent))
	require.ErrorIs(t, err, genesys.ErrClosed)
	assert.NotErrorIs(t, err, genesys.ErrOutcomeUnknown, "a creation refused before it went out is not unclear")
	assert.Zero(t, sent)

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/api/v2/organizations/me", nil)
	require.NoError(t, err)
	resp, err := c.HTTPClient().Do(req)
	if resp != nil {
		resp.Body.Close()
	}
	require.ErrorIs(t, err, genesys.ErrClosed, "the client's own HTTP client refuses too")

	assert.Len(t, srv.Requests(), before)
	require.NoError(t, c.Close(), "a second Close")
	base.requireReleased(t)
}

// A long-lived Client keeps no record of the connections the server closed.
func TestClientForgetsClosedConnections(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	ctx := testContext(t)
	c, err := genesys.NewClient(genesys.USEast1, "id", "secret", genesys.WithBaseURL(srv.URL), genesys.WithTokenURL(srv.URL))
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	for range 20 {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
		require.NoError(t, err)
		resp, err := c.HTTPClient().Do(req)
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	// The transport closes a connection the server answered "close" on as the body is closed.
	require.Eventually(t, func() bool { return genesys.RecordedConns(c) <= 1 }, 5*time.Second, 5*time.Millisecond,
		"connections recorded: %d", genesys.RecordedConns(c))
}

// A connection the client's own HTTP client dialed half-closes as the one below it does, as a
// plain-HTTP upgrade's caller may ask of it.
func TestOwnConnectionsHalfClose(t *testing.T) {
	got := make(chan error, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "Upgrade")
		w.Header().Set("Upgrade", "test")
		w.WriteHeader(http.StatusSwitchingProtocols)
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			got <- err
			return
		}
		defer conn.Close()
		_, err = io.Copy(io.Discard, brw) // ends at the client's half-close
		got <- err
	}))
	t.Cleanup(srv.Close)
	ctx := testContext(t)
	c, err := genesys.NewClient(genesys.USEast1, "id", "secret", genesys.WithBaseURL(srv.URL), genesys.WithTokenURL(srv.URL))
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
	require.NoError(t, err)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "test")
	resp, err := c.HTTPClient().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
	cw, ok := resp.Body.(interface{ CloseWrite() error })
	require.True(t, ok, "the switched body is a %T", resp.Body)
	require.NoError(t, cw.CloseWrite())
	select {
	case err := <-got:
		require.NoError(t, err)
	case <-ctx.Done():
		t.Fatal("the server never saw the half-close")
	}
}

func TestCloseWithCallsInFlight(t *testing.T) {
	srv := genesystest.NewServer()
	t.Cleanup(srv.Close)
	ctx := testContext(t)
	base := takeHandles(t)
	c := newTestClient(t, srv)

	// Each call's request waits on the server until Close has been called.
	const calls = 3
	arrived, release := make(chan struct{}, calls), make(chan struct{})
	srv.SetHook(func(r *http.Request) {
		if r.URL.Path == "/api/v2/organizations/me" {
			arrived <- struct{}{}
			<-release
		}
	})
	errs := make(chan error, calls)
	for range calls {
		go func() {
			_, err := c.Organization(ctx)
			errs <- err
		}()
	}
	for range calls {
		testwait.RecvCtx(t, ctx, arrived)
	}
	var closers sync.WaitGroup
	for range 2 {
		closers.Go(func() { assert.NoError(t, c.Close()) })
	}
	testwait.Group(t, &closers, 10*time.Second)
	close(release)
	for range calls {
		require.NoError(t, testwait.RecvCtx(t, ctx, errs), "a request on its way when Close was called is answered as usual")
	}
	base.requireReleased(t)
}

func TestCloseRacingCalls(t *testing.T) {
	srv := genesystest.NewServer()
	t.Cleanup(srv.Close)
	ctx := testContext(t)
	base := takeHandles(t)
	c := newTestClient(t, srv)

	// Calls run in a loop on several goroutines, with and without new connections, while
	// Close is called: each ends answered or refused, and no connection outlives them.
	organizations(t, ctx, c, 1)
	var wg sync.WaitGroup
	started := make(chan struct{}, 8)
	for range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				_, err := c.Organization(ctx)
				if i == 0 {
					started <- struct{}{}
				}
				if err != nil {
					assert.ErrorIs(t, err, genesys.ErrClosed)
					return
				}
			}
		})
	}
	for range 8 {
		testwait.RecvCtx(t, ctx, started)
	}
	require.NoError(t, c.Close())
	testwait.Group(t, &wg, 10*time.Second)
	base.requireReleased(t)
}

// A request that passed Close's check before Close and asks for a connection after it makes
// net/http forget that Close asked it to close the connections that become idle: the connection
// it was given must still be closed once it ends.
func TestCloseWhileARequestWaitsForItsConnection(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "{}")
	}))
	t.Cleanup(srv.Close)
	ctx := testContext(t)
	base := takeHandles(t)
	c := newClientOf(t, srv.URL)

	trace := &httptrace.ClientTrace{GetConn: func(string) { assert.NoError(t, c.Close()) }}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), http.MethodGet, srv.URL, nil)
	require.NoError(t, err)
	resp, err := c.HTTPClient().Do(req)
	require.NoError(t, err, "the request passed the check before Close")
	_, _ = io.Copy(io.Discard, resp.Body)
	require.NoError(t, resp.Body.Close())
	base.requireReleased(t)
}

// An exchange that fails is over too: when it is the last one in flight, the connections the
// others left are closed.
func TestCloseAfterTheLastExchangeFailed(t *testing.T) {
	arrived := make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hang" {
			arrived <- struct{}{}
			<-r.Context().Done()
			return
		}
		_, _ = io.WriteString(w, "{}")
	}))
	t.Cleanup(srv.Close)
	ctx := testContext(t)
	base := takeHandles(t)
	c := newClientOf(t, srv.URL)

	// The request that fails is on its way when Close is called.
	hctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, 1)
	go func() {
		req, err := http.NewRequestWithContext(hctx, http.MethodGet, srv.URL+"/hang", nil)
		if err == nil {
			var resp *http.Response
			if resp, err = c.HTTPClient().Do(req); err == nil {
				resp.Body.Close()
			}
		}
		errs <- err
	}()
	testwait.RecvCtx(t, ctx, arrived)

	// Another one, on a connection of its own that Close does not close (see
	// TestCloseWhileARequestWaitsForItsConnection), ends first.
	trace := &httptrace.ClientTrace{GetConn: func(string) { assert.NoError(t, c.Close()) }}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), http.MethodGet, srv.URL, nil)
	require.NoError(t, err)
	resp, err := c.HTTPClient().Do(req)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	require.NoError(t, resp.Body.Close())

	cancel()
	require.ErrorIs(t, testwait.RecvCtx(t, ctx, errs), context.Canceled)
	base.requireReleased(t)
}

// newHTTP2Client starts a TLS server that speaks HTTP/2 (and HTTP/1.1, which WebSocket dials
// ask for) and returns it with a Client whose own HTTP client trusts it.
func newHTTP2Client(t *testing.T, h http.Handler) (*httptest.Server, *genesys.Client) {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	c := newClientOf(t, srv.URL)
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	genesys.OwnTransport(c).TLSClientConfig = &tls.Config{RootCAs: roots}
	return srv, c
}

// gate holds up what waits on it from hold until release.
type gate struct {
	mu   sync.Mutex
	held chan struct{}
}

func (g *gate) hold() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.held == nil {
		g.held = make(chan struct{})
	}
}

func (g *gate) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.held != nil {
		close(g.held)
		g.held = nil
	}
}

func (g *gate) wait() {
	g.mu.Lock()
	held := g.held
	g.mu.Unlock()
	if held != nil {
		<-held
	}
}

// gatedConn is a connection whose writes wait for its gate.
type gatedConn struct {
	net.Conn
	gate *gate
}

func (c *gatedConn) Write(p []byte) (int, error) {
	c.gate.wait()
	return c.Conn.Write(p)
}

// gatedBody is a request body whose Close waits for its gate.
type gatedBody struct {
	io.Reader
	gate *gate
}

func (b *gatedBody) Close() error {
	b.gate.wait()
	return nil
}

// Over HTTP/2, the transport returns an answer without body to a request with one before the
// request's stream has left its connection (it first closes the request body, which here waits):
// the connection still looks busy when the exchange ends, and must be closed all the same.
func TestCloseHTTP2AnswerWithoutBody(t *testing.T) {
	arrived, answer := make(chan struct{}, 1), make(chan struct{})
	srv, c := newHTTP2Client(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		arrived <- struct{}{}
		<-answer
		w.WriteHeader(http.StatusNoContent)
	}))
	ctx := testContext(t)
	g := &gate{}
	g.hold()
	t.Cleanup(g.release) // before the server closes, should the test fail
	base := takeHandles(t)

	errs := make(chan error, 1)
	go func() {
		req, err := http.NewRequestWithContext(ctx, http.MethodPut, srv.URL+"/subscriptions", &gatedBody{Reader: strings.NewReader("[]"), gate: g})
		if err == nil {
			var resp *http.Response
			if resp, err = c.HTTPClient().Do(req); err == nil {
				assert.Equal(t, 2, resp.ProtoMajor)
				assert.Equal(t, http.StatusNoContent, resp.StatusCode)
				err = resp.Body.Close()
			}
		}
		errs <- err
	}()
	testwait.RecvCtx(t, ctx, arrived)
	require.NoError(t, c.Close())
	close(answer)
	require.NoError(t, testwait.RecvCtx(t, ctx, errs))
	g.release() // the transport may now let go of the stream
	base.requireReleased(t)
}

// Over HTTP/2, a cancelled request's RoundTrip returns before its stream has left its connection
// (the transport first writes RST_STREAM, which here waits): the connection still looks busy when
// the exchange ends, and must be closed all the same, whether Close came before or after.
func TestCloseHTTP2CancelledExchange(t *testing.T) {
	for _, closeFirst := range []bool{true, false} {
		name := "Close then cancel"
		if !closeFirst {
			name = "cancel then Close"
		}
		t.Run(name, func(t *testing.T) {
			arrived := make(chan struct{}, 1)
			srv, c := newHTTP2Client(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				arrived <- struct{}{}
				<-r.Context().Done()
			}))
			ctx := testContext(t)
			g := &gate{}
			t.Cleanup(g.release)
			tr := genesys.OwnTransport(c)
			dial := tr.DialContext
			tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
				conn, err := dial(ctx, network, addr)
				if err != nil {
					return nil, err
				}
				return &gatedConn{Conn: conn, gate: g}, nil
			}
			base := takeHandles(t)

			hctx, cancel := context.WithCancel(ctx)
			defer cancel()
			errs := make(chan error, 1)
			go func() {
				req, err := http.NewRequestWithContext(hctx, http.MethodGet, srv.URL+"/organizations/me", nil)
				if err == nil {
					var resp *http.Response
					if resp, err = c.HTTPClient().Do(req); err == nil {
						resp.Body.Close()
					}
				}
				errs <- err
			}()
			testwait.RecvCtx(t, ctx, arrived)
			g.hold() // the client's writes wait from now on
			if closeFirst {
				require.NoError(t, c.Close())
			}
			cancel()
			require.ErrorIs(t, testwait.RecvCtx(t, ctx, errs), context.Canceled)
			if !closeFirst {
				require.NoError(t, c.Close())
			}
			g.release()
			base.requireReleased(t)
		})
	}
}

// Close leaves open a WebSocket dialed with the Client's HTTP client, also when the last exchange
// in flight ends afterwards and the connections left are closed.
func TestCloseLeavesWebSocketsOpen(t *testing.T) {
	for _, useTLS := range []bool{false, true} {
		name := "ws"
		if useTLS {
			name = "wss"
		}
		t.Run(name, func(t *testing.T) {
			arrived, answer := make(chan struct{}, 1), make(chan struct{})
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/ws" {
					arrived <- struct{}{}
					<-answer
					_, _ = io.WriteString(w, "{}")
					return
				}
				ws, err := websocket.Accept(w, r, nil)
				if err != nil {
					return
				}
				defer ws.CloseNow()
				for {
					typ, msg, err := ws.Read(r.Context())
					if err != nil || ws.Write(r.Context(), typ, msg) != nil {
						return
					}
				}
			})
			var srv *httptest.Server
			var c *genesys.Client
			if useTLS {
				srv, c = newHTTP2Client(t, h)
			} else {
				srv = httptest.NewServer(h)
				t.Cleanup(srv.Close)
				c = newClientOf(t, srv.URL)
			}
			ctx := testContext(t)
			base := takeHandles(t)

			ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/ws", &websocket.DialOptions{HTTPClient: c.HTTPClient()})
			require.NoError(t, err)
			defer ws.CloseNow()

			// An exchange in flight when Close is called ends after it.
			errs := make(chan error, 1)
			go func() {
				req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/organizations/me", nil)
				if err == nil {
					var resp *http.Response
					if resp, err = c.HTTPClient().Do(req); err == nil {
						_, _ = io.Copy(io.Discard, resp.Body)
						err = resp.Body.Close()
					}
				}
				errs <- err
			}()
			testwait.RecvCtx(t, ctx, arrived)
			require.NoError(t, c.Close())
			close(answer)
			require.NoError(t, testwait.RecvCtx(t, ctx, errs))

			require.NoError(t, ws.Write(ctx, websocket.MessageText, []byte("still there")))
			typ, msg, err := ws.Read(ctx)
			require.NoError(t, err, "the WebSocket was closed")
			assert.Equal(t, websocket.MessageText, typ)
			assert.Equal(t, "still there", string(msg))
			require.NoError(t, ws.Close(websocket.StatusNormalClosure, ""))
			base.requireReleased(t)
		})
	}
}

func TestCloseEndsACallWaitingToRetry(t *testing.T) {
	srv := genesystest.NewServer()
	t.Cleanup(srv.Close)
	ctx := testContext(t)
	clk := retrytest.NewClock(time.Now())
	c := newTestClient(t, srv, genesys.WithClock(clk),
		genesys.WithRetryPolicy(retry.Policy{InitialInterval: time.Second, Multiplier: 2, MaxInterval: time.Second, MaxAttempts: 5, Jitter: retry.NoJitter}))
	t.Cleanup(func() { _ = c.Close() })
	srv.Fail(genesystest.Fault{Path: "/api/v2/organizations/me", Status: http.StatusServiceUnavailable})

	errs := make(chan error, 1)
	go func() {
		_, err := c.Organization(ctx)
		errs <- err
	}()
	require.NoError(t, clk.WaitTimers(ctx, 1), "the call waits to retry after the 503")
	require.NoError(t, c.Close())
	clk.Advance(time.Second)
	err := testwait.RecvCtx(t, ctx, errs)
	require.ErrorIs(t, err, genesys.ErrClosed)
	var re *retry.Error
	assert.False(t, errors.As(err, &re), "ErrClosed ends the call without more attempts: %v", err)
	assert.Equal(t, 1, srv.Count(http.MethodGet, "/api/v2/organizations/me"), "nothing went out after Close")
}

func TestCloseLeavesCallersHTTPClient(t *testing.T) {
	srv := genesystest.NewServer()
	t.Cleanup(srv.Close)
	ctx := testContext(t)
	hc := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	t.Cleanup(hc.CloseIdleConnections)
	c := newTestClient(t, srv, genesys.WithHTTPClient(hc))

	_, err := c.Organization(ctx)
	require.NoError(t, err)
	require.NoError(t, c.Close())
	require.NoError(t, c.Close())

	_, err = c.Organization(ctx)
	require.ErrorIs(t, err, genesys.ErrClosed, "the Client is closed whatever its HTTP client")
	assert.Same(t, hc, c.HTTPClient())

	// The caller's client still works, on the connection the Client left idle: Close closed none.
	var reused bool
	trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) { reused = info.Reused }}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), http.MethodGet, srv.URL+"/api/v2/organizations/me", nil)
	require.NoError(t, err)
	resp, err := hc.Do(req)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "no token was sent")
	assert.True(t, reused, "the caller's idle connection was closed")
}

func TestRunProvisionCommandReleasesConnections(t *testing.T) {
	srv := genesystest.NewServer()
	t.Cleanup(srv.Close)
	env := map[string]string{
		"GENESYS_REGION":              "us-east-1",
		"GENESYS_CLIENT_ID":           genesystest.DefaultClientID,
		"GENESYS_CLIENT_SECRET":       genesystest.DefaultClientSecret,
		"AWS_ACCOUNT_ID":              "123456789012",
		"AWS_REGION":                  "us-east-1",
		"GENESYS_EVENT_SOURCE_SUFFIX": "fanbridge",
		"GENESYS_EVENTBRIDGE_TOPICS":  "v2.users.{id}.presence",
		"GENESYS_API_URL":             srv.URL,
		"GENESYS_TOKEN_URL":           srv.TokenURL(),
	}
	base := takeHandles(t)
	var out, errOut bytes.Buffer
	require.NoError(t, genesys.RunProvisionCommand(testContext(t), []string{"-name", "fanbridge"}, func(k string) string { return env[k] }, &out, &errOut))
	base.requireReleased(t)
}
