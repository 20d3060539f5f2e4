package eventbridge_test

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge/eventbridge"
)

// firstReadBound is the most the Handler may allocate for a body before any of it has arrived
// (plus the one byte that lets the last Read report EOF).
const firstReadBound = 16<<10 + 1

// meteredBody hands out data a few bytes per Read, as a slow client sends it, then ends with end.
// It records, for every Read, how many bytes had arrived and how large a buffer it was offered:
// the buffer the Handler allocated for the body.
type meteredBody struct {
	data  []byte
	step  int
	end   error
	off   int
	reads []offer
}

type offer struct{ arrived, size int }

func (b *meteredBody) Read(p []byte) (int, error) {
	b.reads = append(b.reads, offer{arrived: b.off, size: len(p)})
	if b.off >= len(b.data) {
		return 0, b.end
	}
	n := copy(p[:min(len(p), b.step)], b.data[b.off:])
	b.off += n
	return n, nil
}

func (b *meteredBody) Close() error { return nil }

// checkGrowth asserts that no buffer offered was larger than firstReadBound or about twice what
// had arrived: the memory a body holds follows the bytes received, not the Content-Length claimed.
func (b *meteredBody) checkGrowth(t *testing.T) {
	t.Helper()
	require.NotEmpty(t, b.reads, "the body was read")
	for _, r := range b.reads {
		require.LessOrEqual(t, r.size, max(firstReadBound, 2*r.arrived+2),
			"a %d-byte buffer was offered after %d bytes had arrived", r.size, r.arrived)
	}
}

// TestHandlerBodyBufferFollowsArrivedBytes: a client that announces the largest body allowed and
// sends one byte makes the Handler hold at most firstReadBound bytes for it; complete bodies of
// every size, announced or chunked, are still read whole, into one slice of exactly their size.
func TestHandlerBodyBufferFollowsArrivedBytes(t *testing.T) {
	t.Run("announced but not sent", func(t *testing.T) {
		for _, declared := range []int64{firstReadBound, eventbridge.DefaultMaxBodySize} {
			body := &meteredBody{data: []byte("{"), step: 1, end: io.ErrUnexpectedEOF}
			req := httptest.NewRequest(http.MethodPost, "/", nil)
			req.Body, req.ContentLength = body, declared
			w := httptest.NewRecorder()
			newHandler(t, failDispatcher(t)).ServeHTTP(w, req)
			assert.Equal(t, http.StatusBadRequest, w.Code)
			body.checkGrowth(t)
		}
	})

	t.Run("more than announced", func(t *testing.T) {
		// Only a body that ignores its Content-Length sends more; the Handler reads to the end.
		event := []byte(`{"id":"e1","detail-type":"t","source":"s","detail":{"pad":"` + strings.Repeat("x", 40000) + `"}}`)
		for _, announced := range []int64{0, 100, firstReadBound - 1} {
			body := &meteredBody{data: event, step: 1000, end: io.EOF}
			req := httptest.NewRequest(http.MethodPost, "/", nil)
			req.Body, req.ContentLength = body, announced
			d := &recorder{}
			w := httptest.NewRecorder()
			newHandler(t, d).ServeHTTP(w, req)
			require.Equal(t, http.StatusOK, w.Code, w.Body.String())
			e, _ := d.last(t)
			assert.Equal(t, event, e.Raw)

			body = &meteredBody{data: event, step: 1000, end: io.EOF}
			req = httptest.NewRequest(http.MethodPost, "/", nil)
			req.Body, req.ContentLength = body, announced
			w = httptest.NewRecorder()
			newHandler(t, failDispatcher(t), eventbridge.WithMaxBodySize(30000)).ServeHTTP(w, req)
			assert.Equal(t, http.StatusRequestEntityTooLarge, w.Code)
			assert.LessOrEqual(t, body.off, 30001+1000, "reading stops soon after the limit")
		}
	})

	for _, size := range []int{firstReadBound - 2, firstReadBound - 1, firstReadBound, 3*firstReadBound + 5, 256<<10 + 300} {
		event := []byte(`{"id":"e1","detail-type":"t","source":"s","detail":{"pad":"` +
			strings.Repeat("x", size-len(`{"id":"e1","detail-type":"t","source":"s","detail":{"pad":""}}`)) + `"}}`)
		require.Len(t, event, size)
		for _, announced := range []bool{true, false} {
			t.Run(fmt.Sprintf("%d bytes, announced %v", size, announced), func(t *testing.T) {
				body := &meteredBody{data: event, step: 1000, end: io.EOF}
				req := httptest.NewRequest(http.MethodPost, "/", nil)
				req.Body, req.ContentLength = body, -1
				if announced {
					req.ContentLength = int64(size)
				}
				d := &recorder{}
				w := httptest.NewRecorder()
				newHandler(t, d).ServeHTTP(w, req)
				require.Equal(t, http.StatusOK, w.Code, w.Body.String())
				e, _ := d.last(t)
				assert.Equal(t, event, e.Raw)
				if size > firstReadBound {
					assert.Equal(t, len(e.Raw), cap(e.Raw), "one slice of exactly the body's size")
				}
				body.checkGrowth(t)
			})
		}
	}
}

// TestLargestBodyLimit: a limit of math.MaxInt64 is a limit nothing passes, not one whose "one
// byte more" wraps around.
func TestLargestBodyLimit(t *testing.T) {
	event := []byte(`{"id":"e1","detail-type":"t","source":"s","detail":{"pad":"` + strings.Repeat("x", 40000) + `"}}`)
	for _, announced := range []bool{true, false} {
		body := &meteredBody{data: event, step: 1000, end: io.EOF}
		req := httptest.NewRequest(http.MethodPost, "/", nil)
		req.Body, req.ContentLength = body, -1
		if announced {
			req.ContentLength = int64(len(event))
		}
		d := &recorder{}
		w := httptest.NewRecorder()
		newHandler(t, d, eventbridge.WithMaxBodySize(math.MaxInt64)).ServeHTTP(w, req)
		require.Equal(t, http.StatusOK, w.Code, w.Body.String())
		e, _ := d.last(t)
		assert.Equal(t, event, e.Raw)
	}
}

// allocatedBy returns the bytes f allocates, as the runtime counts them.
func allocatedBy(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestClaimedLengthAllocatesNothing: a client that claims a terabyte and sends 20 KB makes the
// Handler allocate for the bytes it sent, not for the claim, whatever the body limit.
func TestClaimedLengthAllocatesNothing(t *testing.T) {
	h := newHandler(t, failDispatcher(t), eventbridge.WithMaxBodySize(math.MaxInt64))
	got := allocatedBy(func() {
		body := &meteredBody{data: []byte(`{"id":"` + strings.Repeat("x", 20000)), step: 4096, end: io.ErrUnexpectedEOF}
		req := httptest.NewRequest(http.MethodPost, "/", nil)
		req.Body, req.ContentLength = body, 1<<40
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		assert.Equal(t, http.StatusBadRequest, w.Code)
	})
	assert.Less(t, got, uint64(8<<20), "bytes allocated for a 20 KB body claiming 1 TiB")
}
