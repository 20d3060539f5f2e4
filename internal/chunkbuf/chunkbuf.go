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
// handler returned, at the sender's pace, and without a deadline a refused sender holding its
// body back held a connection and a goroutine until the server's ReadTimeout. The grace lets a
// sender whose body is on its way have it read and the connection closed cleanly: one closed with
// unread bytes is reset, which can cost the sender the answer. Over HTTP/2 it does nothing: the
// server resets the request's stream alone, and a Connection: close would make it shut the whole
// connection down, with the requests of everyone else sharing it.
func LeaveBody(w http.ResponseWriter, r *http.Request) {
	if r.ProtoMajor != 1 {
		return
	}
	w.Header()["Connection"] = connectionClose
	// Not every ResponseWriter can (a wrapper without Unwrap); the connection still closes.
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(leaveGrace))
}

// leaveGrace is how long LeaveBody lets the rest of a refused body arrive: as long as net/http
// waits, after an answer to a body over an http.MaxBytesReader, before it closes the connection.
const leaveGrace = 500 * time.Millisecond
