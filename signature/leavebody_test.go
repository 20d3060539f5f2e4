package signature_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge/signature"
)

// serverClosesSoon fails the test unless the server closes conn, whose answer was read, within a
// few seconds: a server still reading the body it refused holds it open for as long as the sender
// keeps the body back.
func serverClosesSoon(t *testing.T, conn net.Conn, r *bufio.Reader) {
	t.Helper()
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(5*time.Second)))
	_, err := r.ReadByte()
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatal("the server kept the connection open, reading the body it refused")
	}
	assert.ErrorIs(t, err, io.EOF)
}

// A HeaderVerifier's 401 leaves the body unread; the server then closes the connection at once,
// rather than reading the rest of the body, which net/http does for up to 256 KiB to reuse the
// connection, at the pace of a sender that holds it back (until the server's ReadTimeout).
func TestRefusedBodyIsNotReadOverHTTP1(t *testing.T) {
	v := signature.Must(signature.APIKey("X-Api-Key", "secret-key"))
	srv := httptest.NewServer(signature.Verify(v)(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		t.Error("the next handler was called")
	})))
	defer srv.Close()
	for name, framing := range map[string]string{
		"announced length": "Content-Length: 100000\r\n",
		"chunked":          "Transfer-Encoding: chunked\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			conn, err := net.Dial("tcp", srv.Listener.Addr().String())
			require.NoError(t, err)
			defer conn.Close()
			require.NoError(t, conn.SetDeadline(time.Now().Add(10*time.Second)))
			_, err = fmt.Fprintf(conn, "POST /events HTTP/1.1\r\nHost: x\r\nX-Api-Key: wrong\r\n%s\r\n", framing)
			require.NoError(t, err)
			br := bufio.NewReader(conn)
			resp, err := http.ReadResponse(br, nil)
			require.NoError(t, err, "no answer while the body is withheld")
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
			assert.True(t, resp.Close, "the answer says the connection closes")
			serverClosesSoon(t, conn, br)
		})
	}
}

// Over HTTP/2 a refusal resets the request's stream alone: "Connection: close" would make Go's
// server shut the whole connection down, and every refused request would cost the senders sharing
// it a new connection and handshake.
func TestRefusalsKeepTheHTTP2Connection(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	v := signature.Must(signature.APIKey("X-Api-Key", "secret-key"))
	srv := httptest.NewUnstartedServer(signature.Verify(v, signature.WithMaxBodyBytes(1024))(http.HandlerFunc(
		func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })))
	srv.EnableHTTP2 = true
	var conns atomic.Int64
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.StartTLS()
	defer srv.Close()
	client := srv.Client()
	post := func(key string, size int) int {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/events", bytes.NewReader(make([]byte, size)))
		require.NoError(t, err)
		req.Header.Set("X-Api-Key", key)
		resp, err := client.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, 2, resp.ProtoMajor)
		return resp.StatusCode
	}
	require.Equal(t, http.StatusNoContent, post("secret-key", 10))
	for range 5 {
		assert.Equal(t, http.StatusUnauthorized, post("wrong", 10))
		assert.Equal(t, http.StatusRequestEntityTooLarge, post("secret-key", 4096))
		assert.Equal(t, http.StatusNoContent, post("secret-key", 10))
	}
	assert.Equal(t, int64(1), conns.Load(), "connections opened")
}

// A refused sender whose body is on its way, slowly, has it read and hears its answer: the
// connection closes cleanly once the rest arrived, rather than being reset under a sender still
// writing (which then fails its write, and on some systems loses the answer).
func TestSlowSenderHearsItsRefusal(t *testing.T) {
	v := signature.Must(signature.APIKey("X-Api-Key", "secret-key"))
	srv := httptest.NewServer(signature.Verify(v)(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		t.Error("the next handler was called")
	})))
	defer srv.Close()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.SetDeadline(time.Now().Add(20*time.Second)))
	const piece, pieces = 5000, 20 // 100 KB over a second and more
	_, err = fmt.Fprintf(conn, "POST /events HTTP/1.1\r\nHost: x\r\nX-Api-Key: wrong\r\nContent-Length: %d\r\n\r\n", piece*pieces)
	require.NoError(t, err)
	tick := time.NewTicker(60 * time.Millisecond)
	defer tick.Stop()
	chunk := bytes.Repeat([]byte("x"), piece)
	for i := range pieces {
		<-tick.C
		_, err := conn.Write(chunk)
		require.NoError(t, err, "piece %d: the server reset the connection under a sender still writing", i)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
}

// The grace never lets a connection outlive the server's ReadTimeout by much: a refusal gives the
// reads at most that timeout, and a body the timeout already cut gets none.
func TestLeftBodyGraceStaysWithinTheReadTimeout(t *testing.T) {
	const readTimeout = 300 * time.Millisecond
	v := signature.Must(signature.APIKey("X-Api-Key", "secret-key"))
	srv := httptest.NewUnstartedServer(signature.Verify(v)(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	})))
	srv.Config.ReadTimeout = readTimeout
	srv.Start()
	defer srv.Close()
	for name, tt := range map[string]struct {
		key    string
		status int
	}{
		"refused before the body": {"wrong", http.StatusUnauthorized},
		"body too slow":           {"secret-key", http.StatusServiceUnavailable},
	} {
		t.Run(name, func(t *testing.T) {
			conn, err := net.Dial("tcp", srv.Listener.Addr().String())
			require.NoError(t, err)
			defer conn.Close()
			require.NoError(t, conn.SetDeadline(time.Now().Add(10*time.Second)))
			start := time.Now()
			_, err = fmt.Fprintf(conn, "POST /events HTTP/1.1\r\nHost: x\r\nX-Api-Key: %s\r\nContent-Length: 100000\r\n\r\n{", tt.key)
			require.NoError(t, err)
			br := bufio.NewReader(conn)
			resp, err := http.ReadResponse(br, nil)
			require.NoError(t, err)
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			assert.Equal(t, tt.status, resp.StatusCode)
			serverClosesSoon(t, conn, br)
			// Two seconds of grace would close it at 2 s at the earliest.
			assert.Less(t, time.Since(start), 1700*time.Millisecond, "closed after %s", time.Since(start))
		})
	}
}

// VerifyRequest refuses from the headers what the middleware refuses from them, the body unread.
func TestVerifyRequestRefusesFromTheHeadersFirst(t *testing.T) {
	body := &trickleBody{data: []byte(`{"a":1}`), step: 1, end: io.ErrUnexpectedEOF}
	r := httptest.NewRequest(http.MethodPost, "/", nil)
	r.Body, r.ContentLength = body, 7
	_, err := signature.VerifyRequest(signature.Must(signature.GitHub("s3cret")), r, 0)
	require.ErrorIs(t, err, signature.ErrMissing)
	assert.False(t, body.read())
}
