package demo_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/eventbridge"
	"github.com/fanbridge/fanbridge/examples/internal/demo"
	"github.com/fanbridge/fanbridge/fanout"
	"github.com/fanbridge/fanbridge/signature"
	"github.com/fanbridge/fanbridge/sink/memsink"
)

func TestSplitList(t *testing.T) {
	for in, want := range map[string][]string{
		"":                  nil,
		"a":                 {"a"},
		" a:1 ,, b:2 , ":    {"a:1", "b:2"},
		"dns:///x:443,y:80": {"dns:///x:443", "y:80"},
	} {
		got, err := demo.SplitList("ADDRS", in)
		require.NoError(t, err, "%q", in)
		assert.Equal(t, want, got, "%q", in)
	}
	// Set, but to nothing: a mistake, not the offline demo.
	for _, in := range []string{" ", " , ,", ","} {
		_, err := demo.SplitList("ADDRS", in)
		assert.ErrorContains(t, err, "ADDRS is set but names nothing", "%q", in)
	}
}

func TestVerifier(t *testing.T) {
	body := []byte(`{"id":"e-1"}`)
	sig, err := signature.SignHMAC(demo.HMACScheme, "s3cret", body)
	require.NoError(t, err)
	withKey := http.Header{demo.APIKeyHeader: {"k3y"}}
	withSig := http.Header{demo.HMACScheme.Header: {sig}}
	cases := []struct {
		name, apiKey, secret string
		header               http.Header
		want                 int
	}{
		{"key accepted", "k3y", "", withKey, http.StatusOK},
		{"signature refused without a secret", "k3y", "", withSig, http.StatusUnauthorized},
		{"signature accepted", "", "s3cret", withSig, http.StatusOK},
		{"either accepted: key", "k3y", "s3cret", withKey, http.StatusOK},
		{"either accepted: signature", "k3y", "s3cret", withSig, http.StatusOK},
		{"nothing refused", "k3y", "s3cret", http.Header{}, http.StatusUnauthorized},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v, err := demo.Verifier(c.apiKey, c.secret)
			require.NoError(t, err)
			h := signature.Verify(v)(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
			req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(string(body)))
			for k, vs := range c.header {
				req.Header[k] = vs
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			assert.Equal(t, c.want, rec.Code)
		})
	}

	_, err = demo.Verifier("", "")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "never runs unauthenticated")
}

// A blank credential, or one with white space around it (a line break kept from a secret file),
// stops the program, naming the variable and never the value: a one-space secret guards
// nothing, and a padded one makes every signed post 401, which senders do not retry.
func TestVerifierRefusesBlanks(t *testing.T) {
	cases := []struct {
		name, apiKey, secret, want string
	}{
		{"blank secret", "", " ", "GENESYS_WEBHOOK_SECRET: the secret is blank"},
		{"tab and line break secret", "", "\t\n", "GENESYS_WEBHOOK_SECRET: the secret is blank"},
		{"secret from a file", "", "s3cret\n", "GENESYS_WEBHOOK_SECRET: the secret has leading or trailing whitespace"},
		{"secret after a space", "", " s3cret", "GENESYS_WEBHOOK_SECRET: the secret has leading or trailing whitespace"},
		{"padded secret beside a good key", "k3y", "s3cret ", "GENESYS_WEBHOOK_SECRET: the secret has leading or trailing whitespace"},
		{"blank key", " ", "", "EVENTBRIDGE_API_KEY: "},
		{"key from a file", "k3y\n", "", "EVENTBRIDGE_API_KEY: "},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v, err := demo.Verifier(c.apiKey, c.secret)
			require.Error(t, err)
			assert.Nil(t, v)
			assert.Contains(t, err.Error(), c.want)
			if s := strings.TrimSpace(c.secret); s != "" {
				assert.NotContains(t, err.Error(), s, "the secret is never echoed")
			}
		})
	}
	// Inner white space is part of a secret, and so are other characters.
	_, err := demo.Verifier("", "s3cret with spaces")
	require.NoError(t, err)
}

func TestDLQDir(t *testing.T) {
	dir, remove, err := demo.DLQDir("/var/lib/dlq", false, "x")
	require.NoError(t, err)
	assert.Equal(t, "/var/lib/dlq", dir)
	remove() // never deletes a directory it did not make

	_, remove, err = demo.DLQDir("", false, "x")
	require.ErrorContains(t, err, "DLQ_DIR")
	require.NotNil(t, remove)

	_, _, err = demo.DLQDir("/var/lib/dlq", true, "x")
	require.ErrorContains(t, err, "DLQ_DIR", "the offline demo takes no directory of a service's")

	dir, remove, err = demo.DLQDir("", true, "x")
	require.NoError(t, err)
	assert.DirExists(t, dir)
	remove()
	assert.NoDirExists(t, dir)
}

func TestPostSamples(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// An intake that checks the demo's key and answers as eventbridge.Handler does.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(demo.APIKeyHeader) != demo.APIKey || r.Header.Get("Content-Type") != "application/json" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if strings.Contains(r.URL.Path, "refuse") {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		buf := make([]byte, 64)
		n, _ := r.Body.Read(buf)
		w.Write(append([]byte(`{"status":`), buf[:n]...))
		w.Write([]byte("}\n"))
	}))
	defer srv.Close()
	fsys := fstest.MapFS{
		"samples/b.json": {Data: []byte(`"ignored"`)},
		"samples/a.json": {Data: []byte(`"delivered"`)},
	}
	cases := []struct {
		show  demo.Show
		names []string
		want  string
	}{
		{demo.ShowBody, []string{"b.json", "a.json"}, "POST b.json\n  answer: 200 {\"status\":\"ignored\"}\nPOST a.json\n  answer: 200 {\"status\":\"delivered\"}\n"},
		{demo.ShowStatus, []string{"a.json"}, "POST a.json\n  answer: 200 delivered\n"},
		{demo.ShowLine, nil, "POST a.json: 200 {\"status\":\"delivered\"}\nPOST b.json: 200 {\"status\":\"ignored\"}\n"},
	}
	for _, c := range cases {
		var out strings.Builder
		delivered, err := demo.PostSamples(ctx, srv.URL, fsys, c.names, &out, c.show)
		require.NoError(t, err)
		assert.Equal(t, c.want, out.String())
		assert.Equal(t, 1, delivered)
	}

	var out strings.Builder
	_, err := demo.PostSamples(ctx, srv.URL+"/refuse", fsys, []string{"a.json", "b.json"}, &out, demo.ShowBody)
	require.ErrorContains(t, err, "a.json: answered 503")
	assert.NotContains(t, out.String(), "b.json", "stops at the first refusal")

	_, err = demo.PostSamples(ctx, srv.URL, fsys, []string{"missing.json"}, &out, demo.ShowBody)
	require.ErrorIs(t, err, os.ErrNotExist)
}

// Report prints an outcome's condition and error only when there is an error: a duplicate the
// sink already had is no failure.
func TestReportLines(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dedup, err := fanout.NewMemoryDedup(time.Minute, 100)
	require.NoError(t, err)
	d, err := fanout.New(fanout.Config{
		Sinks:  []fanout.SinkConfig{{Name: "crm", Sink: memsink.New()}},
		Routes: []fanout.Route{{Name: "all", Filter: fanout.All, Sinks: []string{"crm"}}},
	}, fanout.WithDedup(dedup))
	require.NoError(t, err)
	defer d.Close(ctx)
	var out strings.Builder
	report := demo.Report(d, &out, func(s fanout.SinkResult) string { return s.Sink + ": " + string(s.Outcome) }, func(*fanbridge.Event) string { return "unrouted" })
	e := &fanbridge.Event{ID: "e1", Source: "s", Type: "t", Data: []byte(`{}`)}
	require.NoError(t, report.Dispatch(ctx, e))
	_ = report.Dispatch(ctx, e)
	assert.NotContains(t, out.String(), "<nil>", out.String())
	assert.Contains(t, out.String(), "e1 -> crm: ", out.String())
}

// A client whose signature looks right (the headers alone cannot refuse it) and that trickles a
// body cannot hold a connection past the server's ReadTimeout: the HMAC verifier has to read the
// body before it can refuse it, and the server ends the read, answering 503 with Retry-After,
// which a real sender retries. (With no signature at all it is refused 401 at once.)
func TestSlowBodyIsAnswered(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), demo.ReadTimeout+10*time.Second)
	defer cancel()
	v, err := demo.Verifier("k3y", "s3cret")
	require.NoError(t, err)
	dispatched := make(chan struct{}, 1)
	intake, err := eventbridge.NewHandler(eventbridge.DispatcherFunc(func(context.Context, *fanbridge.Event) error {
		dispatched <- struct{}{}
		return nil
	}))
	require.NoError(t, err)
	srv, err := demo.Listen("", true, signature.Verify(v)(intake))
	require.NoError(t, err)
	defer srv.Shutdown(ctx)

	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", strings.TrimPrefix(srv.URL, "http://"))
	require.NoError(t, err)
	defer conn.Close()
	start := time.Now()
	_, err = io.WriteString(conn, "POST / HTTP/1.1\r\nHost: intake\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n"+
		demo.HMACScheme.Header+": "+strings.Repeat("0", 64)+"\r\n\r\n{\"id\":")
	require.NoError(t, err)
	// The answer, or the connection closed, whichever comes first.
	type answer struct {
		resp *http.Response
		err  error
	}
	answered := make(chan answer, 1)
	go func() {
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		answered <- answer{resp, err}
	}()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case a := <-answered:
			elapsed := time.Since(start)
			require.NoError(t, a.err, "after %s", elapsed)
			assert.Equal(t, http.StatusServiceUnavailable, a.resp.StatusCode)
			assert.NotEmpty(t, a.resp.Header.Get("Retry-After"))
			assert.Less(t, elapsed, demo.ReadTimeout+5*time.Second, "answered once the read timed out")
			assert.Empty(t, dispatched, "nothing unverified is dispatched")
			return
		case <-tick.C:
			// One more byte of the body: the client is slow, not gone. Once the server has
			// answered, a write may fail; the answer tells what happened.
			_, _ = io.WriteString(conn, " ")
		case <-ctx.Done():
			t.Fatalf("after %s the request is still open, unanswered", time.Since(start).Round(time.Second))
		}
	}
}

// The server's write deadline leaves room for everything an answer may wait for: the body, which
// may take ReadTimeout to arrive, the intake's dispatch budget and the dead-letter writes that
// may end after it.
func TestServerTimeouts(t *testing.T) {
	assert.Greater(t, demo.ReadTimeout, time.Duration(0))
	assert.LessOrEqual(t, demo.ReadHeaderTimeout, demo.ReadTimeout)
	assert.Greater(t, demo.WriteTimeout, demo.ReadTimeout+eventbridge.DefaultDispatchTimeout+fanout.DefaultDLQTimeout)
	assert.Greater(t, demo.IdleTimeout, time.Duration(0))
}
