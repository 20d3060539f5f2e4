package eventbridge_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/eventbridge"
)

// A body over the limit is answered 413 with the rest unread, and the server closes the connection
// at once instead of reading up to 256 KiB more of it, to reuse the connection, at the pace of a
// sender that holds it back.
func TestOversizedBodyIsNotReadToTheEnd(t *testing.T) {
	h := newHandler(t, eventbridge.DispatcherFunc(func(context.Context, *fanbridge.Event) error {
		t.Error("an oversized body was dispatched")
		return nil
	}), eventbridge.WithMaxBodySize(1024))
	srv := httptest.NewServer(h)
	defer srv.Close()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.SetDeadline(time.Now().Add(10*time.Second)))
	_, err = fmt.Fprintf(conn, "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n%s",
		strings.Repeat(" ", 4096))
	require.NoError(t, err)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
	assert.True(t, resp.Close)
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(5*time.Second)))
	_, err = br.ReadByte()
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatal("the server kept the connection open, reading the body it refused")
	}
	assert.ErrorIs(t, err, io.EOF)
}

// The 405 and 415 answers, given before the body is read, leave a body no verifier read in the
// same way.
func TestEarlyRefusalsDoNotWaitForTheBody(t *testing.T) {
	h := newHandler(t, eventbridge.DispatcherFunc(func(context.Context, *fanbridge.Event) error {
		t.Error("a refused request was dispatched")
		return nil
	}))
	srv := httptest.NewServer(h)
	defer srv.Close()
	for name, head := range map[string]string{
		"405": "PUT / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{",
		"415": "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 100000\r\n\r\n{",
	} {
		t.Run(name, func(t *testing.T) {
			conn, err := net.Dial("tcp", srv.Listener.Addr().String())
			require.NoError(t, err)
			defer conn.Close()
			require.NoError(t, conn.SetDeadline(time.Now().Add(10*time.Second)))
			_, err = io.WriteString(conn, head)
			require.NoError(t, err)
			br := bufio.NewReader(conn)
			resp, err := http.ReadResponse(br, nil)
			require.NoError(t, err, "no answer while the body is withheld")
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			assert.Equal(t, name, fmt.Sprint(resp.StatusCode))
			assert.True(t, resp.Close)
			_, err = br.ReadByte()
			if errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatal("the server kept the connection open, reading the body it refused")
			}
		})
	}
}
