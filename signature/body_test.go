package signature_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge/signature"
)

// firstReadBound is the most a body buffer may hold before any byte has arrived.
const firstReadBound = 16 << 10

// trickleBody is a request body that hands out data a few bytes at a time, as a slow client sends
// it, and then fails (the client went away) or ends. It records, for every Read, how many bytes had
// arrived and how large a buffer it was offered: the buffer the reader allocated for the body.
type trickleBody struct {
	data []byte
	step int
	end  error // returned once data is exhausted; io.EOF for a complete body

	mu    sync.Mutex
	off   int
	reads []offered
}

type offered struct{ arrived, size int }

func (b *trickleBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.reads = append(b.reads, offered{arrived: b.off, size: len(p)})
	if b.off >= len(b.data) {
		return 0, b.end
	}
	n := copy(p[:min(len(p), b.step)], b.data[b.off:])
	b.off += n
	return n, nil
}

func (b *trickleBody) Close() error { return nil }

// read reports whether any Read was made.
func (b *trickleBody) read() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.reads) > 0
}

// checkGrowth asserts that no buffer offered was larger than firstReadBound, or twice what had
// arrived: the memory a body holds follows the bytes received, not the Content-Length claimed.
func (b *trickleBody) checkGrowth(t *testing.T) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	require.NotEmpty(t, b.reads, "the body was read")
	for _, r := range b.reads {
		require.LessOrEqual(t, r.size, max(firstReadBound, 2*r.arrived),
			"a %d-byte buffer was offered after %d bytes had arrived", r.size, r.arrived)
	}
}

// TestBodyBufferFollowsArrivedBytes: a body is buffered as it arrives, so a client that announces
// the largest body allowed and sends one byte makes Verify hold at most firstReadBound bytes for
// it, whatever Content-Length said; a complete body of any size is still read whole and verified.
func TestBodyBufferFollowsArrivedBytes(t *testing.T) {
	gh := signature.Must(signature.GitHub(githubSecret))

	t.Run("announced but not sent", func(t *testing.T) {
		for _, declared := range []int64{firstReadBound + 1, signature.DefaultMaxBodyBytes} {
			body := &trickleBody{data: []byte("{"), step: 1, end: io.ErrUnexpectedEOF}
			r := httptest.NewRequest(http.MethodPost, "/", nil)
			r.Body, r.ContentLength = body, declared
			// Well formed, so that the headers alone do not refuse it: the body is read.
			r.Header.Set("X-Hub-Signature-256", "sha256="+strings.Repeat("0", 64))
			_, err := signature.VerifyRequest(gh, r, 0)
			require.ErrorIs(t, err, signature.ErrUnreadable)
			body.checkGrowth(t)
		}
	})

	// Sizes around the first buffer and its doublings, up to the limit.
	for _, size := range []int{0, 1, 2700, firstReadBound - 1, firstReadBound, firstReadBound + 1,
		3*firstReadBound + 5, signature.DefaultMaxBodyBytes} {
		t.Run(fmt.Sprintf("%d bytes", size), func(t *testing.T) {
			data := []byte(strings.Repeat("x", size))
			sig, err := signature.SignGitHub(githubSecret, data)
			require.NoError(t, err)
			body := &trickleBody{data: data, step: 1000, end: io.EOF}
			r := httptest.NewRequest(http.MethodPost, "/", nil)
			r.Body, r.ContentLength = body, int64(size)
			r.Header.Set("X-Hub-Signature-256", sig)
			_, err = signature.VerifyRequest(gh, r, 0)
			require.NoError(t, err)
			got, ok := signature.BodyBytes(r)
			require.True(t, ok)
			assert.Equal(t, data, got)
			assert.Equal(t, len(got), cap(got), "the body is one slice of exactly its size")
			if size > 0 {
				body.checkGrowth(t)
			}
		})
	}
}

// headerVerifiers are the verifiers that decide from the headers alone, each with a request header
// that passes it.
func headerVerifiers(t *testing.T) map[string]struct {
	v    signature.Verifier
	good http.Header
} {
	bearerFunc := signature.Must(signature.BearerFunc(func(_ context.Context, tok string) error {
		if tok != "good-token" {
			return errors.New("unknown token")
		}
		return nil
	}))
	apiKey := signature.Must(signature.APIKey("X-Api-Key", "key-one"))
	basic := signature.Must(signature.Basic(map[string]string{"eventbridge": "pass"}))
	return map[string]struct {
		v    signature.Verifier
		good http.Header
	}{
		"apikey":      {apiKey, headers("X-Api-Key", "key-one")},
		"basic":       {basic, headers("Authorization", basicAuth("eventbridge:pass"))},
		"bearer":      {signature.Must(signature.Bearer("tok-1")), headers("Authorization", "Bearer tok-1")},
		"bearerfunc":  {bearerFunc, headers("Authorization", "Bearer good-token")},
		"any of them": {signature.Must(signature.Any(apiKey, basic, bearerFunc)), headers("Authorization", "Bearer good-token")},
	}
}

func TestWhichVerifiersDecideFromHeaders(t *testing.T) {
	for name, hv := range headerVerifiers(t) {
		_, ok := hv.v.(signature.HeaderVerifier)
		assert.True(t, ok, name)
	}
	apiKey := signature.Must(signature.APIKey("X-Api-Key", "k"))
	for name, v := range map[string]signature.Verifier{
		"hmac":              signature.Must(signature.HMAC(signature.GitHubScheme, "s")),
		"github":            signature.Must(signature.GitHub("s")),
		"open messaging":    signature.Must(signature.OpenMessaging("s")),
		"standard webhooks": signature.Must(signature.StandardWebhooks([]string{secretA})),
		"any with github":   signature.Must(signature.Any(apiKey, signature.Must(signature.GitHub("s")))),
		"a VerifierFunc": signature.VerifierFunc(func(context.Context, http.Header, []byte) (signature.Identity, error) {
			return signature.Identity{}, nil
		}),
	} {
		_, ok := v.(signature.HeaderVerifier)
		assert.False(t, ok, "%s needs the body", name)
	}
}

// TestHeaderVerifiersRefuseBeforeReadingBody: with a verifier that decides from the headers, a
// request whose credentials fail is answered 401 without a byte of its body being read, and with
// Connection: close so the server does not read it afterwards either. One whose credentials pass
// has its body read, limited and handed on as with any other verifier.
func TestHeaderVerifiersRefuseBeforeReadingBody(t *testing.T) {
	const payload = `{"detail-type":"x"}`
	for name, hv := range headerVerifiers(t) {
		t.Run(name, func(t *testing.T) {
			var rejected error
			var passed []byte
			h := signature.Verify(hv.v, signature.WithMaxBodyBytes(1000),
				signature.WithOnReject(func(_ *http.Request, err error) { rejected = err }))(
				http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					passed, _ = io.ReadAll(r.Body)
				}))
			serve := func(header http.Header, body *trickleBody, declared int64) *httptest.ResponseRecorder {
				rejected, passed = nil, nil
				r := httptest.NewRequest(http.MethodPost, "/", nil)
				r.Body, r.ContentLength = body, declared
				for k, vs := range header {
					r.Header[k] = vs
				}
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r)
				return w
			}

			for what, header := range map[string]http.Header{
				"missing": headers(),
				"wrong":   headers("X-Api-Key", "key-two", "Authorization", "Bearer wrong"),
			} {
				body := &trickleBody{data: []byte(payload), step: 1, end: io.EOF}
				w := serve(header, body, int64(len(payload)))
				assert.Equal(t, http.StatusUnauthorized, w.Code, what)
				assert.Equal(t, "close", w.Header().Get("Connection"), what)
				assert.False(t, body.read(), "%s credentials: the body was read", what)
				assert.Error(t, rejected, what)
			}

			body := &trickleBody{data: []byte(payload), step: 3, end: io.EOF}
			w := serve(hv.good, body, int64(len(payload)))
			require.Equal(t, http.StatusOK, w.Code)
			assert.Empty(t, w.Header().Get("Connection"))
			assert.Equal(t, payload, string(passed), "the body is handed on whole")

			// Passing credentials do not lift the limit, announced or not.
			big := strings.Repeat("x", 1001)
			body = &trickleBody{data: []byte(big), step: 100, end: io.EOF}
			assert.Equal(t, http.StatusRequestEntityTooLarge, serve(hv.good, body, 1001).Code)
			assert.False(t, body.read(), "an announced oversize body is refused unread")
			body = &trickleBody{data: []byte(big), step: 100, end: io.EOF}
			assert.Equal(t, http.StatusRequestEntityTooLarge, serve(hv.good, body, -1).Code)
			assert.ErrorIs(t, rejected, signature.ErrTooLarge)
			assert.Nil(t, passed)

			// A body that breaks off after the credentials passed is still refused.
			body = &trickleBody{data: []byte(payload), step: 3, end: io.ErrUnexpectedEOF}
			assert.Equal(t, http.StatusBadRequest, serve(hv.good, body, 500).Code)
			assert.ErrorIs(t, rejected, signature.ErrUnreadable)
		})
	}
}

// TestVerifyRequestChecksHeadersFirst: VerifyRequest, like Verify, leaves the body unread when a
// verifier that decides from the headers refuses the request, and buffers it when it passes.
func TestVerifyRequestChecksHeadersFirst(t *testing.T) {
	v := signature.Must(signature.APIKey("X-Api-Key", "key-one"))
	body := &trickleBody{data: []byte("{}"), step: 1, end: io.EOF}
	r := httptest.NewRequest(http.MethodPost, "/", nil)
	r.Body, r.ContentLength = body, 2
	r.Header.Set("X-Api-Key", "wrong")
	_, err := signature.VerifyRequest(v, r, 0)
	require.ErrorIs(t, err, signature.ErrMismatch)
	assert.False(t, body.read())
	assert.Same(t, body, r.Body, "the body is left as it was")

	r.Header.Set("X-Api-Key", "key-one")
	id, err := signature.VerifyRequest(v, r, 0)
	require.NoError(t, err)
	assert.Equal(t, signature.SchemeAPIKey, id.Scheme)
	b, ok := signature.BodyBytes(r)
	require.True(t, ok)
	assert.Equal(t, "{}", string(b))

	r = httptest.NewRequest(http.MethodPost, "/", nil)
	r.Body, r.ContentLength = &trickleBody{data: []byte("{}"), step: 1, end: io.EOF}, 2
	r.Header.Set("X-Api-Key", "key-one")
	_, err = signature.VerifyRequest(v, r, 1)
	assert.ErrorIs(t, err, signature.ErrTooLarge)
}

// TestBearerFuncValidatesOncePerRequest: the middleware asks a HeaderVerifier once, so a token
// validator (an introspection call, say) runs once per request, not once per check.
func TestBearerFuncValidatesOncePerRequest(t *testing.T) {
	var mu sync.Mutex
	calls := 0
	v := signature.Must(signature.BearerFunc(func(context.Context, string) error {
		mu.Lock()
		calls++
		mu.Unlock()
		return nil
	}))
	e := newEndpoint(t, v)
	require.Equal(t, http.StatusOK, e.post(t, headers("Authorization", "Bearer tok"), []byte("{}"), false).status)
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, 1, calls)
}

// TestWrongKeyAnsweredWhileBodyIsWithheld is the attack over a real connection: a client announces
// the largest body allowed, sends a wrong API key and one byte, and waits. The 401 comes at once,
// with Connection: close, instead of the server waiting (with a buffer of the announced size) for a
// body that never comes.
func TestWrongKeyAnsweredWhileBodyIsWithheld(t *testing.T) {
	v := signature.Must(signature.APIKey("X-Api-Key", "secret-key"))
	srv := httptest.NewServer(signature.Verify(v)(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		t.Error("the next handler was called")
	})))
	defer srv.Close()

	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	require.NoError(t, err)
	defer conn.Close()
	// Only a server that never answers makes the deadline matter.
	require.NoError(t, conn.SetDeadline(time.Now().Add(10*time.Second)))
	_, err = fmt.Fprintf(conn, "POST /events HTTP/1.1\r\nHost: x\r\nX-Api-Key: wrong\r\nContent-Length: %d\r\n\r\n{",
		signature.DefaultMaxBodyBytes)
	require.NoError(t, err)

	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err, "no answer while the body is withheld")
	defer resp.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.True(t, resp.Close, "the server closes the connection")
}

// TestClaimedLengthAllocatesNothing: a client that claims a terabyte and sends 20 KB makes Verify
// allocate for the bytes it sent, not for the claim, whatever the body limit.
func TestClaimedLengthAllocatesNothing(t *testing.T) {
	v := signature.Must(signature.HMAC(signature.HMACScheme{Header: "X-Sig", Encoding: signature.Hex}, "s3cret"))
	h := signature.Verify(v, signature.WithMaxBodyBytes(math.MaxInt64))(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		t.Error("a body that broke off was passed on")
	}))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	req := httptest.NewRequest(http.MethodPost, "/", nil)
	req.Body = io.NopCloser(io.MultiReader(strings.NewReader(strings.Repeat("x", 20000)), iotest.ErrReader(io.ErrUnexpectedEOF)))
	req.ContentLength = 1 << 40
	req.Header.Set("X-Sig", strings.Repeat("0", 64)) // well formed: the body is read
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	runtime.ReadMemStats(&after)
	assert.Equal(t, http.StatusBadRequest, w.Code)
	assert.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(8<<20), "bytes allocated for a 20 KB body claiming 1 TiB")
}

// A body of unknown length (chunked) costs what one with a Content-Length does: it is collected in
// pooled chunks as it arrives and copied once into a slice of its size, not grown by doubling and
// then cloned.
func TestChunkedBodyIsAllocatedOnce(t *testing.T) {
	const size = 200 << 10
	body := bytes.Repeat([]byte("x"), size)
	v := signature.Must(signature.APIKey("X-Api-Key", "secret-key"))
	h := signature.Verify(v)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := signature.BodyBytes(r)
		if !ok || len(got) != size {
			t.Errorf("the next handler got %d bytes", len(got))
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	post := func() {
		req := httptest.NewRequest(http.MethodPost, "/events", nil)
		req.Body = io.NopCloser(struct{ io.Reader }{bytes.NewReader(body)})
		req.ContentLength = -1
		req.Header.Set("X-Api-Key", "secret-key")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		require.Equal(t, http.StatusNoContent, w.Code)
	}
	for range 3 {
		post() // fill the chunk pool
	}
	const runs = 20
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range runs {
		post()
	}
	runtime.ReadMemStats(&after)
	perRequest := (after.TotalAlloc - before.TotalAlloc) / runs
	assert.Less(t, perRequest, uint64(size+size/2), "bytes allocated per request for a %d-byte chunked body", size)
}
