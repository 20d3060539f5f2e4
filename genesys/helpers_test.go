package genesys_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"

	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge/genesys"
	"github.com/fanbridge/fanbridge/genesys/genesystest"
	"github.com/fanbridge/fanbridge/retry"
	"github.com/fanbridge/fanbridge/retry/retrytest"
)

// fastPolicy retries quickly so that tests with real time stay short.
var fastPolicy = retry.Policy{InitialInterval: time.Millisecond, MaxInterval: 5 * time.Millisecond, MaxAttempts: 5, Jitter: retry.NoJitter}

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a logger.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// fixture is a fake Genesys Cloud and a client pointed at it, logging at debug level into logs.
type fixture struct {
	srv    *genesystest.Server
	client *genesys.Client
	logs   *syncBuffer
}

func newFixture(t *testing.T, srvOpts []genesystest.Option, opts ...genesys.Option) *fixture {
	t.Helper()
	srv := genesystest.NewServer(srvOpts...)
	t.Cleanup(srv.Close)
	logs := &syncBuffer{}
	all := append([]genesys.Option{
		genesys.WithBaseURL(srv.URL),
		genesys.WithTokenURL(srv.TokenURL()),
		genesys.WithRetryPolicy(fastPolicy),
		genesys.WithLogger(slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))),
	}, opts...)
	c, err := genesys.NewClient(genesys.USEast1, genesystest.DefaultClientID, genesystest.DefaultClientSecret, all...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return &fixture{srv: srv, client: c, logs: logs}
}

// unsafeIndex returns the index of the first rune in s that must not reach a terminal from the
// server, or -1: a control character other than a line break (C1 ones too: CSI, U+009B, starts an
// escape sequence on some terminals) or a bidirectional formatting character.
func unsafeIndex(s string) int {
	return strings.IndexFunc(s, func(r rune) bool {
		return r != '\n' && (unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r))
	})
}

// rewritingProxy returns the URL of a proxy in front of srv that hands every JSON answer, decoded,
// to rewrite, and passes on what rewrite leaves.
func rewritingProxy(t *testing.T, srv *genesystest.Server, rewrite func(r *http.Request, answer any)) string {
	t.Helper()
	target, err := url.Parse(srv.URL)
	require.NoError(t, err)
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.ModifyResponse = func(r *http.Response) error {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			return err
		}
		var answer any
		if json.Unmarshal(b, &answer) == nil {
			rewrite(r.Request, answer)
			if b, err = json.Marshal(answer); err != nil {
				return err
			}
		}
		r.Body = io.NopCloser(bytes.NewReader(b))
		r.ContentLength = int64(len(b))
		r.Header.Set("Content-Length", strconv.Itoa(len(b)))
		return nil
	}
	front := httptest.NewServer(proxy)
	t.Cleanup(front.Close)
	return front.URL
}

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// assertNoSecrets fails when the client secret or any issued token appears in s.
func assertNoSecrets(t *testing.T, srv *genesystest.Server, what, s string) {
	t.Helper()
	require.NotContains(t, s, genesystest.DefaultClientSecret, "%s contains the client secret", what)
	for _, tok := range srv.Tokens() {
		require.NotContains(t, s, tok, "%s contains an access token", what)
	}
}

// onFakeClock runs f, advancing clk to each timer as soon as one waits (as fanout's tests do),
// and returns f's error and how far the clock went.
func onFakeClock(t *testing.T, ctx context.Context, clk *retrytest.Clock, f func() error) (error, time.Duration) {
	t.Helper()
	start := clk.Now()
	adv, stop := context.WithCancel(ctx)
	advancing := make(chan struct{})
	go func() {
		defer close(advancing)
		for clk.WaitTimers(adv, 1) == nil {
			if due, ok := clk.NextDue(); ok {
				clk.Advance(due)
			}
		}
	}()
	err := f()
	stop()
	<-advancing
	return err, clk.Now().Sub(start)
}
