package genesys

import (
	"fmt"
	"io"
	"net/http"
	"sync"
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
// closes those that are idle at once, and the others once the last request in flight on them has
// ended. That client refuses new requests after Close, WebSocket dials with HTTPClient included,
// but leaves open a WebSocket it has already dialed. An HTTP client given with WithHTTPClient is
// the caller's: Close neither closes its connections nor stops it.
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
// flight, from RoundTrip until their answer's body is closed, so that Close can leave no
// connection open: net/http's CloseIdleConnections closes the connections that become idle after
// it only until a new request looks for one, so a request that began before Close and asked for
// a connection after it would keep its connection in the pool. Refusing new exchanges after
// Close, and closing the idle connections again when the last one ends, leaves none.
type ownTransport struct {
	base *http.Transport

	mu       sync.Mutex
	closed   bool
	inFlight int
}

func newOwnTransport() *ownTransport {
	return &ownTransport{base: http.DefaultTransport.(*http.Transport).Clone()}
}

func (t *ownTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if !t.begin() {
		if r.Body != nil {
			r.Body.Close() // a RoundTripper closes the body, even when it fails
		}
		return nil, ErrClosed
	}
	resp, err := t.base.RoundTrip(r)
	if err != nil {
		t.end()
		return nil, err
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		// The connection has left the pool for the protocol it switched to (a WebSocket), and
		// its body must stay the io.ReadWriteCloser the transport made.
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

// end counts an exchange out; the last one to end after close closes the connections it leaves.
func (t *ownTransport) end() {
	t.mu.Lock()
	t.inFlight--
	last := t.closed && t.inFlight == 0
	t.mu.Unlock()
	if last {
		t.base.CloseIdleConnections()
	}
}

func (t *ownTransport) close() {
	t.mu.Lock()
	t.closed = true
	t.mu.Unlock()
	t.base.CloseIdleConnections()
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
