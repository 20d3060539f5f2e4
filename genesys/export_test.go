package genesys

import "net/http"

// OwnTransport returns the transport of the HTTP client NewClient built for c, or nil when
// WithHTTPClient gave one, for tests that make it trust their TLS server or hold up its writes.
func OwnTransport(c *Client) *http.Transport {
	if c.own == nil {
		return nil
	}
	return c.own.base
}

// RecordedConns is the number of connections the transport of c's own HTTP client keeps to close
// at Close.
func RecordedConns(c *Client) int {
	c.own.mu.Lock()
	defer c.own.mu.Unlock()
	return len(c.own.conns)
}
