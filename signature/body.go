package signature

import (
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"

	"github.com/fanbridge/fanbridge/internal/chunkbuf"
)

// Body is the request body after verification: the bytes that were verified, readable again. Verify
// puts one in r.Body, so the next handler reads exactly what was verified. Besides io.ReadCloser it
// has Bytes, which hands over the whole body without another copy; a handler in any package finds it
// with a type assertion on the method alone:
//
//	if b, ok := r.Body.(interface{ Bytes() []byte }); ok { body = b.Bytes() }
//
// BodyBytes does the same. The bytes belong to the request: nothing in this package keeps or
// reuses them after the handler returns, so a handler may retain them (in an event, a queue).
type Body struct {
	b   []byte
	off int
}

// NewBody returns a Body over b, for tests and for frameworks that buffer the body themselves.
func NewBody(b []byte) *Body { return &Body{b: b} }

// Bytes returns the whole body, however much of it was already read.
func (b *Body) Bytes() []byte { return b.b }

// Len returns the number of bytes not yet read.
func (b *Body) Len() int { return len(b.b) - b.off }

// Read implements io.Reader.
func (b *Body) Read(p []byte) (int, error) {
	if b.off >= len(b.b) {
		return 0, io.EOF
	}
	n := copy(p, b.b[b.off:])
	b.off += n
	return n, nil
}

// WriteTo implements io.WriterTo, so io.Copy writes the unread bytes in one call.
func (b *Body) WriteTo(w io.Writer) (int64, error) {
	n, err := w.Write(b.b[b.off:])
	b.off += n
	return int64(n), err
}

// Close does nothing: the bytes stay readable through Bytes.
func (b *Body) Close() error { return nil }

// BodyBytes returns the whole body of r when an earlier layer (Verify, VerifyRequest) buffered it,
// and false otherwise.
func BodyBytes(r *http.Request) ([]byte, bool) {
	if b, ok := r.Body.(interface{ Bytes() []byte }); ok {
		return b.Bytes(), true
	}
	return nil, false
}

// firstReadSize bounds the buffer allocated before any byte of a body has arrived. Content-Length
// is only the client's claim: a client announcing 260 KiB and sending one byte must not make each
// connection it holds open pin 260 KiB. Nearly every event is smaller, and is read straight into
// one allocation of exactly its size.
const firstReadSize = chunkbuf.Size

// readBody reads r's body whole, refusing more than max bytes (ErrTooLarge). When Content-Length is
// known and not zero (the HTTP server guarantees the body has that length) the result is one slice of exactly
// that size (see readLength); otherwise too, after the body was collected in pooled chunks (see
// readUnknown).
func readBody(r *http.Request, max int64) ([]byte, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return []byte{}, nil
	}
	if err := checkDeclaredLength(r, max); err != nil {
		return nil, err
	}
	if body, ok := BodyBytes(r); ok {
		return body, nil // already buffered by an outer layer: reuse the bytes, no copy
	}
	// Zero is "unknown" for a request built as a client's (http.NewRequest over a reader of no
	// known size); a server gives a request with Content-Length: 0 http.NoBody, handled above.
	if r.ContentLength > 0 {
		return readLength(r.Body, r.ContentLength)
	}
	return readUnknown(r.Body, max)
}

// readUnknown reads a body of unknown length (chunked) up to its end, refusing more than max
// bytes, as readLength reads a large one: in pooled chunks as it arrives, then one slice of
// exactly its size.
func readUnknown(rd io.Reader, max int64) ([]byte, error) {
	// One byte past the limit tells that it was passed; a limit of math.MaxInt64 cannot be.
	limit := max + min(1, math.MaxInt64-max)
	var first [4]*chunkbuf.Chunk
	chunks := first[:0]
	defer func() { chunkbuf.Put(chunks) }()
	var total int64
	off := chunkbuf.Size // in the last chunk; a full one to begin with, so that the first is taken
	for total < limit {
		if off == chunkbuf.Size {
			chunks = append(chunks, chunkbuf.Get())
			off = 0
		}
		c := chunks[len(chunks)-1]
		n, err := rd.Read(c[off : off+int(min(int64(chunkbuf.Size-off), limit-total))])
		off += n
		total += int64(n)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, readError(err)
		}
	}
	if total > max {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, max)
	}
	return chunkbuf.Join(nil, chunks, total), nil
}

// checkDeclaredLength refuses a body whose announced size is over max, before any of it is read.
func checkDeclaredLength(r *http.Request, max int64) error {
	if body, ok := BodyBytes(r); ok {
		if int64(len(body)) > max {
			return fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(body), max)
		}
		return nil
	}
	if r.ContentLength > max {
		return fmt.Errorf("%w: Content-Length %d, limit %d", ErrTooLarge, r.ContentLength, max)
	}
	return nil
}

// readLength reads exactly n bytes from rd into one slice of exactly that size. A body of up to
// firstReadSize is read straight into it. A larger one is first collected in pooled chunks as it
// arrives, and the slice is allocated only once all of it is here: until then the memory held
// follows the bytes received, and the result is still one allocation.
func readLength(rd io.Reader, n int64) ([]byte, error) {
	if n <= firstReadSize {
		body := make([]byte, n)
		if _, err := io.ReadFull(rd, body); err != nil {
			return nil, readError(err)
		}
		return body, nil
	}
	// The list starts small and grows as chunks fill: n is only what the client claims.
	chunks := make([]*chunkbuf.Chunk, 0, min(n, 1<<20)/firstReadSize+1)
	defer func() { chunkbuf.Put(chunks) }()
	for got := int64(0); got < n; {
		c := chunkbuf.Get()
		chunks = append(chunks, c)
		m, err := io.ReadFull(rd, c[:min(n-got, firstReadSize)])
		got += int64(m)
		if err != nil {
			return nil, readError(err)
		}
	}
	return chunkbuf.Join(nil, chunks, n), nil
}

func readError(err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return fmt.Errorf("%w: more than %d bytes", ErrTooLarge, mbe.Limit)
	}
	return fmt.Errorf("%w: %w", ErrUnreadable, err)
}
