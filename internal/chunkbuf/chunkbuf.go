// Package chunkbuf collects a request body in pooled fixed-size chunks as it arrives, so that the
// memory held for a body follows the bytes received rather than the length a client announced,
// and then joins them into one slice of exactly their size.
//
// The caller keeps its chunks in a slice of its own: a small one then stays on its stack.
package chunkbuf

import (
	"errors"
	"net"
	"net/http"
	"os"
	"sync"
	"time"
)

// Size is the size of a chunk, and the largest body worth reading straight into one allocation.
const Size = 16 << 10

// Chunk is a piece of a body that is still arriving.
type Chunk [Size]byte

var pool = sync.Pool{New: func() any { return new(Chunk) }}

// Get returns a chunk from the pool.
func Get() *Chunk { return pool.Get().(*Chunk) }

// Put gives chunks back to the pool.
func Put(chunks []*Chunk) {
	for _, c := range chunks {
		pool.Put(c)
	}
}

// Join returns head followed by the first total-len(head) bytes of chunks, in one slice of
// exactly total bytes.
func Join(head []byte, chunks []*Chunk, total int64) []byte {
	body := make([]byte, total)
	off := copy(body, head)
	for _, c := range chunks {
		off += copy(body[off:], c[:])
	}
	return body
}

// TimedOut reports whether reading a body failed because a deadline passed: the server's
// ReadTimeout, for a body that arrived too slowly. The connection is still there, so the sender
// hears the answer, and, as the body may well arrive in time on another try, the answer should
// ask it to retry rather than call the request bad.
func TimedOut(err error) bool {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// AnswerTime gives the answer to a body that timed out (see TimedOut) a write deadline of its
// own: the server's may have passed with the read one, when WriteTimeout is no longer than
// ReadTimeout, and the sender must hear that it may retry.
func AnswerTime(w http.ResponseWriter) {
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(5 * time.Second))
}

// connectionClose is the value of the Connection header LeaveBody sets.
var connectionClose = []string{"close"}

// LeaveBody is for an answer that leaves the rest of r's body unread (a refusal before or while
// reading it). Over HTTP/1.x it asks for the connection to close after the answer, and gives the
// connection's reads leaveGrace from now: net/http reads up to 256 KiB more of the body once the
// handler returned (before the answer, unless the connection is to close), at the sender's pace,
// and without a deadline a refused sender holding its body back held a connection and a goroutine
// until the server's ReadTimeout. The grace lets the rest of a body on its way be read and the
// connection close cleanly: one closed with bytes unread is reset, and a sender still writing
// then fails its write, and some (and some systems) lose the answer. Over HTTP/2 it does nothing:
// the server resets the request's stream alone, and a Connection: close would make it shut the
// whole connection down, with the requests of everyone else sharing it.
//
// The deadline reaches the connection only through a ResponseWriter that is the server's own or
// unwraps to it (Unwrap, see http.ResponseController); behind one that does not
// (http.TimeoutHandler's), the connection still closes after the answer, but only the server's
// ReadTimeout bounds the reading.
func LeaveBody(w http.ResponseWriter, r *http.Request) {
	leaveBody(w, r, true)
}

// LeaveTimedOutBody is LeaveBody for a body whose reading the server's ReadTimeout ended (see
// TimedOut): that deadline has passed, so the connection's reads fail at once, and no grace
// prolongs them past the read timeout.
func LeaveTimedOutBody(w http.ResponseWriter, r *http.Request) {
	leaveBody(w, r, false)
}

func leaveBody(w http.ResponseWriter, r *http.Request, grace bool) {
	if r.ProtoMajor != 1 {
		return
	}
	w.Header()["Connection"] = connectionClose
	if !grace {
		return
	}
	d := leaveGrace
	if srv, ok := r.Context().Value(http.ServerContextKey).(*http.Server); ok && srv.ReadTimeout > 0 {
		// No longer than the server's read timeout lets a whole request take.
		d = min(d, srv.ReadTimeout)
	}
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(d))
}

// LeavePending is LeaveBody for an answer given before anything read r's body, when it has one
// (see Pending).
func LeavePending(w http.ResponseWriter, r *http.Request) {
	if Pending(r) {
		LeaveBody(w, r)
	}
}

// Pending reports whether r may have body bytes that nothing has read: it has a body, and no
// layer before buffered it (one that did offers it through a Bytes method, as package signature's
// verified bodies do).
func Pending(r *http.Request) bool {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return false
	}
	_, buffered := r.Body.(interface{ Bytes() []byte })
	return !buffered
}

// leaveGrace is how long LeaveBody lets the rest of a refused body arrive: enough for the 256 KiB
// net/http reads at 128 KiB/s, a fifth of the service's default ReadTimeout for a sender that
// holds the body back. It is never longer than the server's ReadTimeout.
const leaveGrace = 2 * time.Second
