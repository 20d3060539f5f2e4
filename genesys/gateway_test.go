package genesys_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// gatewayReset says how the gateway answers a request it has passed on.
type gatewayReset int

const (
	// passAnswer passes the backend's answer back.
	passAnswer gatewayReset = iota
	// resetStream answers RST_STREAM PROTOCOL_ERROR: net/http's HTTP/2 transport sends the
	// request again, inside the same http.Client.Do, on the same connection.
	resetStream
	// resetConnection answers GOAWAY, then RST_STREAM PROTOCOL_ERROR: the transport sends the
	// request again, inside the same http.Client.Do, on a connection it dials.
	resetConnection
	// resetConnectionDialFails is resetConnection, and the dial for the next copy, of a transport
	// made by the gateway's transport method, is refused: the exchange ends with a dial error.
	resetConnectionDialFails
)

// resetGateway is an HTTP/2 front end to a fake Genesys, as a proxy or a load balancer is: it passes
// every request on to the backend over HTTP/1 and its answer back. The requests that reset picks
// are passed on all the same, so that the backend acts on them, and then answered with a reset:
// the client cannot tell that the backend has them.
type resetGateway struct {
	URL     string
	addr    string
	backend string
	tls     *tls.Config // trusts the gateway's certificate
	reset   func(method, path string) gatewayReset
	// dialFails makes the next dial to the gateway, of a transport made by transport, fail.
	dialFails atomic.Bool
	refused   string // an address where nobody listens
}

func newResetGateway(t *testing.T, backend string, reset func(method, path string) gatewayReset) *resetGateway {
	t.Helper()
	g := &resetGateway{backend: backend, reset: reset}
	srv := httptest.NewUnstartedServer(http.NotFoundHandler())
	srv.TLS = &tls.Config{NextProtos: []string{"h2"}}
	// The server hands each connection that chose h2 to serve, which speaks the frames itself:
	// net/http's server cannot reset a stream with PROTOCOL_ERROR.
	srv.Config.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){
		"h2": func(_ *http.Server, c *tls.Conn, _ http.Handler) { g.serve(c) },
	}
	srv.StartTLS()
	t.Cleanup(srv.Close) // closes the connections still open, and waits for serve to return
	g.URL, g.addr = srv.URL, srv.Listener.Addr().String()
	g.tls = srv.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	g.refused = l.Addr().String()
	require.NoError(t, l.Close())
	return g
}

// transport returns a clone of http.DefaultTransport, which speaks HTTP/2 to the gateway, whose
// dial to the gateway fails, refused, once dialFails is set.
func (g *resetGateway) transport(t *testing.T) *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = g.tls
	var d net.Dialer
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if addr == g.addr && g.dialFails.CompareAndSwap(true, false) {
			addr = g.refused
		}
		return d.DialContext(ctx, network, addr)
	}
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

// serve speaks HTTP/2 on c until the client closes it.
func (g *resetGateway) serve(c net.Conn) {
	preface := make([]byte, len(http2.ClientPreface))
	if _, err := io.ReadFull(c, preface); err != nil || string(preface) != http2.ClientPreface {
		return
	}
	fr := http2.NewFramer(c, c)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	if fr.WriteSettings() != nil {
		return
	}
	type stream struct {
		method, path string
		header       http.Header
		body         bytes.Buffer
	}
	streams := map[uint32]*stream{}
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return // the client closed the connection, or the test server did
		}
		var s *stream
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				_ = fr.WriteSettingsAck()
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				_ = fr.WritePing(true, f.Data)
			}
		case *http2.MetaHeadersFrame:
			s = &stream{method: f.PseudoValue("method"), path: f.PseudoValue("path"), header: http.Header{}}
			for _, hf := range f.RegularFields() {
				s.header.Add(hf.Name, hf.Value)
			}
			streams[f.StreamID] = s
			if !f.StreamEnded() {
				s = nil
			}
		case *http2.DataFrame:
			if s = streams[f.StreamID]; s != nil {
				s.body.Write(f.Data())
				if !f.StreamEnded() {
					s = nil
				}
			}
		}
		if s == nil {
			continue
		}
		id := f.Header().StreamID
		delete(streams, id)
		if err := g.answer(fr, id, s.method, s.path, s.header, s.body.Bytes()); err != nil {
			return
		}
	}
}

// answer passes one request on to the backend and answers it on stream id.
func (g *resetGateway) answer(fr *http2.Framer, id uint32, method, path string, h http.Header, body []byte) error {
	req, err := http.NewRequest(method, g.backend+path, bytes.NewReader(body))
	if err != nil {
		return fr.WriteRSTStream(id, http2.ErrCodeInternal)
	}
	req.Header = h
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fr.WriteRSTStream(id, http2.ErrCodeInternal)
	}
	answer, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return fr.WriteRSTStream(id, http2.ErrCodeInternal)
	}
	switch g.reset(method, path) {
	case resetConnectionDialFails:
		g.dialFails.Store(true)
		fallthrough
	case resetConnection:
		if err := fr.WriteGoAway(id, http2.ErrCodeNo, nil); err != nil {
			return err
		}
		fallthrough
	case resetStream:
		return fr.WriteRSTStream(id, http2.ErrCodeProtocol)
	}
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	_ = enc.WriteField(hpack.HeaderField{Name: ":status", Value: strconv.Itoa(resp.StatusCode)})
	for k, vs := range resp.Header {
		switch k = strings.ToLower(k); k {
		case "connection", "keep-alive", "transfer-encoding", "content-length":
			continue
		}
		for _, v := range vs {
			_ = enc.WriteField(hpack.HeaderField{Name: k, Value: v})
		}
	}
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: hb.Bytes(), EndHeaders: true, EndStream: len(answer) == 0}); err != nil {
		return err
	}
	for len(answer) > 0 {
		n := min(len(answer), 16<<10) // the default largest frame
		if err := fr.WriteData(id, n == len(answer), answer[:n]); err != nil {
			return err
		}
		answer = answer[n:]
	}
	return nil
}
