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
