package genesys

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"sync"
	"sync/atomic"
)

// Close releases the connections the Client keeps open, and makes the calls that start after it
// fail with an error wrapping ErrClosed. It always returns nil, and may be called more than once,
// and concurrently with calls in flight.
//
// Close does not wait for calls in flight. A request already on its way is answered as usual; the
// next attempt of its call, after a retry wait or to renew a refused token, fails with ErrClosed
// (nothing of it goes out), so a call waiting to retry ends once its wait is over, or earlier
// when its context ends.
//
// The HTTP client NewClient built, when WithHTTPClient gave none, keeps each connection open for
// up to 90 seconds after its last request (http.DefaultTransport's IdleConnTimeout): Close
// closes those that are idle at once, and all the others, HTTP/1.1 and HTTP/2 alike, at the
// latest once the last request in flight has ended (its answer's body closed, or the request
// failed). That client refuses new requests after Close, WebSocket dials with HTTPClient
// included, but leaves open a WebSocket it has already dialed. An HTTP client given with
// WithHTTPClient is the caller's: Close neither closes its connections nor stops it.
func (c *Client) Close() error {
	c.closed.Store(true)
	if c.own != nil {
		c.own.close()
	}
	return nil
}

// errIfClosed returns the error of an attempt of r that starts after Close, or nil.
func (c *Client) errIfClosed(r request) error {
	if c.closed.Load() {
		return fmt.Errorf("genesys: %s %s: %w", r.method, r.path, ErrClosed)
	}
	return nil
}

// ownTransport is the transport of the HTTP client NewClient builds. It counts the exchanges in
// flight, from RoundTrip until their answer's body is closed or RoundTrip fails, refuses new ones
// after Close, and once Close has been called and none is left in flight, closes every connection
// it dialed.
//
// net/http's CloseIdleConnections alone would leave connections open: it skips those in use, and
// closes those that become idle after it only until a new request looks for one, so a request
// that began before Close and asked for a connection after it keeps its connection in the pool.
// HTTP/2 has no such "close once idle" at all, and its transport may return from RoundTrip (a
// cancelled request, an answer without body to a request with one) before the stream has left its
// connection, so that connection still looks busy when the exchange ends. The transport's
// connections are therefore recorded as they are dialed, below the TLS the transport adds on
// top, and closed there.
type ownTransport struct {
	base *http.Transport

	mu       sync.Mutex
	closed   bool
	inFlight int
	conns    map[*ownConn]struct{} // open connections, until the transport is closed and idle
}

func newOwnTransport() *ownTransport {
	t := &ownTransport{
		base:  http.DefaultTransport.(*http.Transport).Clone(),
		conns: map[*ownConn]struct{}{},
	}
	dial := t.base.DialContext
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	t.base.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return t.record(c)
	}
	return t
}

func (t *ownTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if !t.begin() {
		if r.Body != nil {
			r.Body.Close() // a RoundTripper closes the body, even when it fails
		}
		return nil, ErrClosed
	}
	// A request that asks to switch protocols (a WebSocket dial) may take its connection out of
	// the transport: it learns which one. (A connection switched for a request that did not
	// ask, which HTTP forbids, is closed with the others.)
	var sw *switchTrace
	if r.Header.Get("Upgrade") != "" {
		sw = &switchTrace{}
		r = r.WithContext(httptrace.WithClientTrace(r.Context(), sw.hooks()))
	}
	resp, err := t.base.RoundTrip(r)
	if err != nil {
		t.end()
		return nil, err
	}
	if _, switched := resp.Body.(io.ReadWriteCloser); switched && resp.StatusCode == http.StatusSwitchingProtocols {
		// The connection has left the transport for the protocol it switched to, whose user
		// owns it now: Close leaves it open. Its body must stay the io.ReadWriteCloser the
		// transport made.
		if sw != nil {
			t.forget(sw.conn.Load())
		}
		t.end()
		return resp, nil
	}
	resp.Body = &countedBody{ReadCloser: resp.Body, end: t.end}
	return resp, nil
}

// CloseIdleConnections closes the idle connections, for http.Client.CloseIdleConnections.
func (t *ownTransport) CloseIdleConnections() { t.base.CloseIdleConnections() }

// begin counts an exchange in, unless the transport is closed.
func (t *ownTransport) begin() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	t.inFlight++
	return true
}

// end counts an exchange out; the last one to end after close closes the connections.
func (t *ownTransport) end() {
	t.mu.Lock()
	t.inFlight--
	conns, last := t.takeConnsIfDone()
	t.mu.Unlock()
	if last {
		t.closeConns(conns)
	}
}

func (t *ownTransport) close() {
	t.mu.Lock()
	t.closed = true
	conns, done := t.takeConnsIfDone()
	t.mu.Unlock()
	if done {
		t.closeConns(conns)
		return
	}
	t.base.CloseIdleConnections()
}

// takeConnsIfDone reports whether the transport is closed with no exchange in flight and, the
// first time it is, hands over the connections to close. From then on, no exchange starts, and
// record closes each connection a dial still in progress opens. t.mu must be held.
func (t *ownTransport) takeConnsIfDone() (map[*ownConn]struct{}, bool) {
	if !t.closed || t.inFlight > 0 {
		return nil, false
	}
	conns := t.conns
	t.conns = nil
	return conns, true
}

// closeConns closes the connections of a closed transport with no exchange in flight: the idle
// ones through the transport, the others, which HTTP/2 may still count busy, below their TLS.
func (t *ownTransport) closeConns(conns map[*ownConn]struct{}) {
	t.base.CloseIdleConnections()
	for c := range conns {
		c.Conn.Close()
	}
}

// record adds a connection the transport has dialed to those to close, or closes it when the
// transport is closed with no exchange in flight: no exchange will use it.
func (t *ownTransport) record(nc net.Conn) (net.Conn, error) {
	c := &ownConn{Conn: nc, t: t}
	t.mu.Lock()
	if t.conns == nil {
		t.mu.Unlock()
		nc.Close()
		return nil, ErrClosed
	}
	t.conns[c] = struct{}{}
	t.mu.Unlock()
	return c, nil
}

// forget removes a connection from those to close; c may be nil.
func (t *ownTransport) forget(c *ownConn) {
	if c == nil {
		return
	}
	t.mu.Lock()
	delete(t.conns, c)
	t.mu.Unlock()
}

// ownConn is a connection the transport dialed. It leaves the record when it is closed, so that
// a long-lived Client does not collect the connections that the server or the transport's idle
// timeout closed.
type ownConn struct {
	net.Conn
	t *ownTransport
}

func (c *ownConn) Close() error {
	c.t.forget(c)
	return c.Conn.Close()
}

// CloseWrite half-closes the connection as the one below does (a *net.TCPConn), so that the body
// of a plain-HTTP 101 answer offers what net/http's own connections offer.
func (c *ownConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

// recordedConn returns the connection the transport dialed that c is, or is built on (TLS, TLS
// through an HTTPS proxy), or nil.
func recordedConn(c net.Conn) *ownConn {
	for range 4 {
		switch v := c.(type) {
		case *ownConn:
			return v
		case interface{ NetConn() net.Conn }:
			c = v.NetConn()
		default:
			return nil
		}
	}
	return nil
}

// switchTrace learns which connection carried a request that asks to switch protocols.
type switchTrace struct {
	conn atomic.Pointer[ownConn]
}

func (s *switchTrace) hooks() *httptrace.ClientTrace {
	return &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) { s.conn.Store(recordedConn(info.Conn)) }}
}

// countedBody is an answer's body that counts its exchange out when it is closed.
type countedBody struct {
	io.ReadCloser
	once sync.Once
	end  func()
}

func (b *countedBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.end)
	return err
}
