package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/retry"
	"github.com/fanbridge/fanbridge/sink"
)

// maxLine bounds one line of the log; an event that does not fit will never fit.
const maxLine = 1 << 20

var (
	errNilEvent = errors.New("auditlog: nil event")
	errNotUTF8  = errors.New("auditlog: event body is not valid UTF-8")
	errTooLarge = errors.New("auditlog: event too large for one line")
)

// AuditLog is a sink.Sink that appends each event to a file as one JSON line (JSON Lines), and
// syncs the file before Send returns, so an event it acknowledged survives a crash.
//
// It follows the rules every sink follows: it never retries on its own, it marks with
// retry.Permanent the failures no retry can cure (so the dispatcher dead-letters at once), it
// leaves every other failure unmarked (retryable), it returns by its context's deadline even
// when the disk does not answer, it is safe for concurrent use, and after Close it refuses events
// with an error wrapping sink.ErrClosed.
type AuditLog struct {
	// lock has one slot: whoever put a value in it holds the lock. Unlike a sync.Mutex, a Send
	// can stop waiting for it when its context ends.
	lock   chan struct{}
	w      io.Writer
	closed bool
	torn   bool // the file ends in half a line: the next line must start on a line of its own
}

// record is one line of the log. Data is the body as a JSON string, which keeps it byte for byte
// (jq -r '.data | fromjson' turns it back into JSON).
type record struct {
	ID       string            `json:"id"`
	Type     string            `json:"type"`
	Topic    string            `json:"topic,omitempty"`
	Source   string            `json:"source,omitempty"`
	Time     time.Time         `json:"time,omitzero"`
	Metadata map[string]string `json:"metadata,omitempty"`
	Data     string            `json:"data"`
}

// OpenAuditLog appends to the file at path, creating it if needed. A file it creates has its
// directory synced too, as syncing a new file does not make its name durable: without it, a
// machine crash could lose the file and the events it acknowledged. A file that does not end in
// a line break ends in half a line, left by a write that failed part-way before a crash or a
// restart: the first event is then written on a line of its own, so the half line cannot swallow
// it.
func OpenAuditLog(path string) (*AuditLog, error) {
	// Read as well as write: the last byte tells whether the file ends in half a line.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND, 0o600)
	created, file := false, path
	if errors.Is(err, fs.ErrNotExist) {
		// The file is missing, or path is a link to a file not made yet, which O_EXCL would
		// refuse: make the link's target then. O_EXCL, so that this call knows the file is its
		// own to remove when the sync below fails, even if another process makes it meanwhile.
		for range 40 { // as many links as the system follows
			dest, lerr := os.Readlink(file)
			if lerr != nil {
				break // not a link: the name to make
			}
			if !filepath.IsAbs(dest) {
				dest = filepath.Join(filepath.Dir(file), dest)
			}
			file = dest
		}
		f, err = os.OpenFile(file, os.O_RDWR|os.O_APPEND|os.O_CREATE|os.O_EXCL, 0o600)
		created = err == nil
		if errors.Is(err, fs.ErrExist) { // made meanwhile
			f, err = os.OpenFile(path, os.O_RDWR|os.O_APPEND, 0o600)
		}
	}
	if err != nil {
		return nil, err
	}
	if created {
		if err := syncDir(filepath.Dir(file)); err != nil {
			f.Close()
			os.Remove(file) // this call made it: so that the next open makes it, and syncs, again
			return nil, fmt.Errorf("auditlog: %w", err)
		}
	}
	torn, err := endsInHalfLine(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("auditlog: %w", err)
	}
	l := NewAuditLog(f)
	l.torn = torn
	return l, nil
}

// syncDir makes the entries of the directory at dir durable (a file created in it). A variable,
// so that a test can see it called.
var syncDir = func(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// endsInHalfLine reports whether f is not empty and does not end in a line break.
func endsInHalfLine(f *os.File) (bool, error) {
	info, err := f.Stat()
	if err != nil {
		return false, err
	}
	if info.Size() == 0 {
		return false, nil
	}
	last := make([]byte, 1)
	if _, err := f.ReadAt(last, info.Size()-1); err != nil {
		return false, err
	}
	return last[0] != '\n', nil
}

// NewAuditLog appends to w, which it owns from now on: Close closes it when it is an io.Closer,
// and Send syncs it after every line when it has a Sync method (as *os.File does). w is taken to
// be empty or to end in a line break; OpenAuditLog checks a file it opens.
func NewAuditLog(w io.Writer) *AuditLog {
	return &AuditLog{lock: make(chan struct{}, 1), w: w}
}

// Send appends e as one line and returns once the line is written and synced.
func (l *AuditLog) Send(ctx context.Context, e *fanbridge.Event) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	// Bad events are refused before anything is written, and for good: a retry would send the
	// same bytes.
	if e == nil {
		return retry.Permanent(errNilEvent)
	}
	if !utf8.Valid(e.Data) {
		return retry.Permanent(fmt.Errorf("%w: event %s", errNotUTF8, e.ID))
	}
	// Without HTML escaping (json.Marshal writes each <, > and & as six bytes), a JSON body
	// grows at most twice in the line (a quote or backslash gains one), so an event under the
	// intake's 260 KiB limit always fits.
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(record{ID: e.ID, Type: e.Type, Topic: e.Topic, Source: e.Source,
		Time: e.Time, Metadata: e.Metadata, Data: string(e.Data)}); err != nil {
		return retry.Permanent(fmt.Errorf("auditlog: event %s: %w", e.ID, err))
	}
	line := buf.Bytes() // ends in the line break Encode writes
	if len(line)-1 >= maxLine {
		return retry.Permanent(fmt.Errorf("%w: event %s, %d bytes", errTooLarge, e.ID, len(line)-1))
	}

	// Waiting for the lock ends with ctx: another Send may be stuck in a write to a disk that
	// does not answer.
	select {
	case l.lock <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("auditlog: event %s: %w", e.ID, ctx.Err())
	}
	if l.closed {
		<-l.lock
		return fmt.Errorf("auditlog: %w", sink.ErrClosed)
	}
	if err := ctx.Err(); err != nil { // both were ready, and select picked the lock
		<-l.lock
		return fmt.Errorf("auditlog: event %s: %w", e.ID, err)
	}
	// The write and sync run on their own, holding the lock until they end, so that Send can
	// return by its deadline when they hang (a stalled network file system, a dying disk). A line
	// they finish after that stays in the file, and the retry writes the event again: readers
	// deduplicate on id, as with every at-least-once sink.
	done := make(chan error, 1)
	go func() {
		defer func() { <-l.lock }()
		done <- l.write(line)
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("auditlog: event %s: %w", e.ID, ctx.Err())
	}
}

// write appends line and syncs the file; the caller holds the lock.
func (l *AuditLog) write(line []byte) error {
	if l.torn {
		line = append([]byte{'\n'}, line...)
	}
	n, err := l.w.Write(line)
	if err != nil {
		l.torn = l.torn || n > 0
		return classify(err)
	}
	l.torn = false
	// A failed sync leaves the line in the file, so the retry that follows may write the event a
	// second time: readers deduplicate on id.
	if s, ok := l.w.(interface{ Sync() error }); ok {
		if err := s.Sync(); err != nil {
			return classify(err)
		}
	}
	return nil
}

// Close syncs and closes the file. Sends after Close fail with sink.ErrClosed; a second Close
// does nothing.
// Close waits for a write in progress to end, however long that takes.
func (l *AuditLog) Close() error {
	l.lock <- struct{}{}
	defer func() { <-l.lock }()
	if l.closed {
		return nil
	}
	l.closed = true
	var err error
	if s, ok := l.w.(interface{ Sync() error }); ok {
		err = s.Sync()
	}
	if c, ok := l.w.(io.Closer); ok {
		err = errors.Join(err, c.Close())
	}
	return err
}

// classify decides once whether another attempt could succeed: a full disk may be cleared, but
// a read-only file system, a missing permission or a file at its size limit stay that way until
// someone acts, so those go to the dead-letter queue at once.
func classify(err error) error {
	if errors.Is(err, syscall.EROFS) || errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EFBIG) {
		return retry.Permanent(fmt.Errorf("auditlog: %w", err))
	}
	return fmt.Errorf("auditlog: %w", err)
}

// ReadAuditLog reads the events of a log back, oldest first. A line that is not a record (what a
// failed write may leave behind) is skipped.
func ReadAuditLog(r io.Reader) ([]*fanbridge.Event, error) {
	var events []*fanbridge.Event
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, maxLine+1)
	for sc.Scan() {
		var rec record
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil || rec.ID == "" {
			continue
		}
		events = append(events, &fanbridge.Event{ID: rec.ID, Type: rec.Type, Topic: rec.Topic, Source: rec.Source,
			Time: rec.Time, Metadata: rec.Metadata, Data: json.RawMessage(rec.Data)})
	}
	return events, sc.Err()
}
