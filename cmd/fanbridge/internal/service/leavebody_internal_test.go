package service

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge/cmd/fanbridge/internal/config"
)

// Every answer the service gives without reading a request's body (a path it does not serve, a
// method it does not take, the health endpoints) leaves that body unread: a sender holding it
// back gets the answer at once and the connection closes within the grace, instead of the server
// reading up to 256 KiB of it first, until read_timeout.
func TestAnswersThatReadNoBodyDoNotWaitForIt(t *testing.T) {
	cfg, err := config.Parse([]byte(`listen: {address: "127.0.0.1:0", read_timeout: 1m, write_timeout: 2m}
intake: [{path: /events, insecure_no_auth: true}]
sinks: [{name: consumer, grpc: {targets: ["127.0.0.1:1"], insecure: true}}]
routes: [{name: everything, all: true, sinks: [consumer]}]
`), nil)
	require.NoError(t, err)
	s, err := New(cfg, Options{Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-ran:
		case <-time.After(30 * time.Second):
			t.Error("the service did not stop")
		}
	})

	for _, tt := range []struct{ method, path string }{
		{"POST", "/nope"},
		{"PUT", "/events"},
		{"GET", "/healthz"},
		{"POST", "/healthz"},
	} {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			conn, err := net.Dial("tcp", s.Addr().String())
			require.NoError(t, err)
			defer conn.Close()
			require.NoError(t, conn.SetDeadline(time.Now().Add(20*time.Second)))
			start := time.Now()
			_, err = fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: x\r\nContent-Length: 200000\r\n\r\n{", tt.method, tt.path)
			require.NoError(t, err)
			br := bufio.NewReader(conn)
			resp, err := http.ReadResponse(br, nil)
			require.NoError(t, err)
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			assert.True(t, resp.Close, "the answer says the connection closes")
			_, err = br.ReadByte()
			if errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatal("the connection is still open")
			}
			assert.Less(t, time.Since(start), 10*time.Second, "answered and closed only at the read timeout")
		})
	}
}
