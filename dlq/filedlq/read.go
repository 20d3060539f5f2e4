package filedlq

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/fanbridge/fanbridge/dlq"
)

// view is what a reader sees of the queue: the segments to read, in order, and for the active one
// the size up to which its lines are complete.
//
// That size holds only until a Delete rewrites the active segment: the segment then shrinks, and
// Puts may grow it again past the size, which then falls inside a line written since. What the
// size still covers is every line the view saw and the Delete kept, since a rewrite keeps the
// order of the lines and only removes some, and perhaps lines written since; a line it cuts
// was written since, and scan skips it instead of taking it for a torn write.
type view struct {
	segs       []uint64
	activeSeq  uint64
	activeSize int64
}

func (v view) limit(seg uint64) int64 {
	if seg == v.activeSeq {
		return v.activeSize
	}
	return -1
}

func (q *Queue) view(op string) (view, error) {
	if q.cfg.readOnly {
		q.mu.Lock()
		closed := q.closed
		q.mu.Unlock()
		if closed {
			return view{}, fmt.Errorf("filedlq: %s: %w", op, dlq.ErrClosed)
		}
		// A writer elsewhere may have rotated or removed segments since the last look.
		segs, _, err := scanDir(q.dir)
		if err != nil {
			return view{}, fmt.Errorf("filedlq: %s: %w", op, err)
		}
		q.segMu.Lock()
		q.segs = segs
		q.segMu.Unlock()
		return view{segs: segs}, nil
	}
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return view{}, fmt.Errorf("filedlq: %s: %w", op, dlq.ErrClosed)
	}
	v := view{activeSeq: q.activeSeq, activeSize: q.size}
	q.mu.Unlock()
	// segMu is taken after mu is released, so that a reader waiting for a Delete's rewrite does
	// not hold up Puts. Segments started since are left out: they were empty when List began.
	q.segMu.Lock()
	for _, s := range q.segs {
		if s <= v.activeSeq {
			v.segs = append(v.segs, s)
		}
	}
	q.segMu.Unlock()
	return v, nil
}

// maxLine is the longest line a reader accepts.
func (q *Queue) maxLine() int { return max(2*q.cfg.maxEntrySize, 16<<20) }

// scan reads the segment's lines, up to limit bytes when limit is not negative. It calls onLine
// with each complete line's offset and bytes, newline excluded (valid until onLine returns), and
// onTail with bytes after the last newline, unless the limit cut them off a line that goes on in
// the file. A line longer than maxLine is reported as damage.
// A segment that no longer exists (removed by retention or emptied by a Delete) reads as empty.
func (q *Queue) scan(ctx context.Context, seg uint64, limit int64, maxLine int,
	onLine func(off int64, line []byte) error, onTail func(off int64, tail []byte) error) error {
	f, err := os.Open(filepath.Join(q.dir, segName(seg)))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	var r io.Reader = f
	lr := &io.LimitedReader{R: f, N: limit}
	if limit >= 0 {
		r = lr
	}
	br := bufio.NewReaderSize(r, 256<<10)
	var (
		off     int64  // offset of the line being read
		long    []byte // the line so far, when it does not fit the reader's buffer
		n       int64  // bytes of the line so far
		tooLong bool
	)
	for {
		chunk, err := br.ReadSlice('\n')
		n += int64(len(chunk))
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			if !tooLong && len(long)+len(chunk) > maxLine {
				tooLong, long = true, nil
			}
			if !tooLong {
				long = append(long, chunk...)
			}
			continue
		case err == nil:
			if err := ctx.Err(); err != nil {
				return err
			}
			if tooLong {
				q.report(Damage{Segment: segName(seg), Offset: off, Length: n,
					Err: fmt.Errorf("%w: %d bytes, at most %d", ErrLineTooLong, n, maxLine)})
			} else {
				line := chunk
				if long != nil {
					line = append(long, chunk...)
				}
				if err := onLine(off, line[:len(line)-1]); err != nil {
					return err
				}
			}
		case errors.Is(err, io.EOF):
			if n > 0 && limit >= 0 && lr.N == 0 {
				// The limit cut a line that goes on in the file. It is not a torn write: the
				// segment was rewritten by a Delete since the limit was taken, and grew again.
				var b [1]byte
				if k, _ := f.ReadAt(b[:], limit); k == 1 {
					return nil
				}
			}
			if n > 0 && !tooLong {
				return onTail(off, append(long, chunk...))
			}
			if n > 0 {
				q.report(Damage{Segment: segName(seg), Offset: off, Length: n, Err: fmt.Errorf("%w: unterminated", ErrTorn)})
			}
			return nil
		default:
			return err
		}
		off += n
		n, long, tooLong = 0, nil, false
	}
}

// reportTail reports bytes after a segment's last newline as a torn write.
func (q *Queue) reportTail(seg uint64) func(int64, []byte) error {
	return func(off int64, tail []byte) error {
		q.report(Damage{Segment: segName(seg), Offset: off, Length: int64(len(tail)),
			Err: fmt.Errorf("%w: %d bytes after the last complete line", ErrTorn, len(tail))})
		return nil
	}
}

// List calls fn with each entry, oldest first: segments in order, lines in the order they were
// written. It reads what was written before List started, except entries deleted meanwhile; when
// a Delete rewrote the active segment meanwhile, it may also read some entries written since.
// Damaged lines are skipped and reported (see Damage). fn may call Delete.
func (q *Queue) List(ctx context.Context, fn func(dlq.Entry) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("filedlq: list: %w", err)
	}
	v, err := q.view("list")
	if err != nil {
		return err
	}
	for _, seg := range v.segs {
		var fnErr error
		err := q.scan(ctx, seg, v.limit(seg), q.maxLine(), func(off int64, line []byte) error {
			e, err := ParseLine(line)
			if err != nil {
				q.report(Damage{Segment: segName(seg), Offset: off, Length: int64(len(line)) + 1, Err: err})
				return nil
			}
			if err := fn(e); err != nil {
				fnErr = err
				return err
			}
			return nil
		}, q.reportTail(seg))
		if fnErr != nil {
			return fnErr
		}
		if err != nil {
			return fmt.Errorf("filedlq: list: %w", err)
		}
	}
	return nil
}

// errFound ends the scan of Get.
var errFound = errors.New("found")

// Get returns the oldest entry with the given ID, or an error wrapping dlq.ErrNotFound.
func (q *Queue) Get(ctx context.Context, id string) (dlq.Entry, error) {
	if err := ctx.Err(); err != nil {
		return dlq.Entry{}, fmt.Errorf("filedlq: get: %w", err)
	}
	v, err := q.view("get")
	if err != nil {
		return dlq.Entry{}, err
	}
	var found dlq.Entry
	for _, seg := range v.segs {
		err := q.scan(ctx, seg, v.limit(seg), q.maxLine(), func(off int64, line []byte) error {
			entry, err := checkLine(line)
			if err != nil {
				q.report(Damage{Segment: segName(seg), Offset: off, Length: int64(len(line)) + 1, Err: err})
				return nil
			}
			got, err := lineID(entry)
			if err != nil {
				q.report(Damage{Segment: segName(seg), Offset: off, Length: int64(len(line)) + 1, Err: err})
				return nil
			}
			if got != id {
				return nil
			}
			e, err := ParseLine(line)
			if err != nil {
				q.report(Damage{Segment: segName(seg), Offset: off, Length: int64(len(line)) + 1, Err: err})
				return nil
			}
			if e.ID != id {
				return nil
			}
			found = e
			return errFound
		}, q.reportTail(seg))
		if errors.Is(err, errFound) {
			return found, nil
		}
		if err != nil {
			return dlq.Entry{}, fmt.Errorf("filedlq: get: %w", err)
		}
	}
	return dlq.Entry{}, fmt.Errorf("filedlq: get %q: %w", id, dlq.ErrNotFound)
}

// Delete removes the entries with the given IDs by rewriting each segment that holds one: the
// kept lines, byte for byte, go to a temporary file, which is fsynced and renamed over the
// segment, so that a crash leaves either the old or the new segment. A segment left without lines
// is removed unless it is the active one. Damaged lines are kept as they are. IDs that name no
// entry are ignored.
//
// Puts wait while the active segment is rewritten; other segments are rewritten beside them.
func (q *Queue) Delete(ctx context.Context, ids ...string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("filedlq: delete: %w", err)
	}
	if q.cfg.readOnly {
		return fmt.Errorf("filedlq: delete: read-only queue: %w", dlq.ErrUnsupported)
	}
	v, err := q.view("delete")
	if err != nil || len(ids) == 0 {
		return err
	}
	drop := make(map[string]bool, len(ids))
	for _, id := range ids {
		drop[id] = true
	}
	for _, seg := range v.segs {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("filedlq: delete: %w", err)
		}
		if err := q.deleteFrom(ctx, seg, drop); err != nil {
			return fmt.Errorf("filedlq: delete: %s: %w", segName(seg), err)
		}
	}
	return nil
}

func (q *Queue) deleteFrom(ctx context.Context, seg uint64, drop map[string]bool) error {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return dlq.ErrClosed
	}
	if seg == q.activeSeq {
		defer q.mu.Unlock()
		size, removed, err := q.rewrite(ctx, seg, q.size, drop)
		if err != nil || !removed {
			return err
		}
		// The new file holds every line written so far (mu keeps Puts out) and was fsynced, but
		// until the directory is fsynced a machine crash may bring the old file back, in which
		// lines still waiting for their fsync may never have reached the disk. So the directory
		// is fsynced first; only then are those lines marked durable, which acknowledges their
		// Puts, and only then does the new file become the one that fsync rounds and later Puts
		// use, so that no fsync of it can acknowledge a line before the rename is durable.
		// (An fsync round running meanwhile on the old file acknowledges rightly: whichever
		// file the name ends up on holds its lines, fsynced.) When the directory fsync fails,
		// the name may stay on either file, and new lines would go to a file the directory
		// may not keep: that breaks the queue, as a failed fsync does.
		if err := q.cfg.syncDir(q.dir); err != nil {
			q.failSync(fmt.Errorf("directory fsync after rewriting the active segment: %w", err))
			return err
		}
		q.markSynced(q.written.Load())
		f, err := os.OpenFile(filepath.Join(q.dir, segName(seg)), os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			q.broken = fmt.Errorf("reopening the rewritten active segment: %w", err)
			return err
		}
		q.fileMu.Lock()
		q.active.Close()
		q.active, q.size = f, size
		q.fileMu.Unlock()
		return nil
	}
	// Close waits for segMu before it releases the directory's lock; taking segMu before mu is
	// released, after closed was checked, makes sure no rewrite starts that Close does not wait
	// for.
	q.segMu.Lock()
	q.mu.Unlock()
	defer q.segMu.Unlock()
	if !slices.Contains(q.segs, seg) {
		return nil // removed by the retention meanwhile
	}
	size, removed, err := q.rewrite(ctx, seg, -1, drop)
	if err != nil || !removed {
		return err
	}
	if size > 0 {
		return q.cfg.syncDir(q.dir)
	}
	if err := os.Remove(filepath.Join(q.dir, segName(seg))); err != nil {
		return err
	}
	q.segs = slices.DeleteFunc(q.segs, func(s uint64) bool { return s == seg })
	return q.cfg.syncDir(q.dir)
}

// rewrite replaces the segment with a copy that lacks the lines of the dropped entries, and
// returns the new size and whether any line was dropped, in which case the caller makes the
// rename durable with syncDir. It leaves the segment untouched when no line was dropped, or when
// it fails.
func (q *Queue) rewrite(ctx context.Context, seg uint64, limit int64, drop map[string]bool) (int64, bool, error) {
	path := filepath.Join(q.dir, segName(seg))
	tmpPath := path + tmpSuffix
	tmp, err := os.OpenFile(tmpPath, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, q.cfg.fileMode)
	if err != nil {
		return 0, false, err
	}
	committed := false
	defer func() {
		if !committed {
			tmp.Close()
			os.Remove(tmpPath)
		}
	}()
	bw := bufio.NewWriterSize(tmp, 256<<10)
	var size int64
	removed := false
	keep := func(b []byte, newline bool) error {
		size += int64(len(b))
		if _, err := bw.Write(b); err != nil {
			return err
		}
		if newline {
			size++
			return bw.WriteByte('\n')
		}
		return nil
	}
	err = q.scan(ctx, seg, limit, int(^uint(0)>>1), func(_ int64, line []byte) error {
		if entry, err := checkLine(line); err == nil {
			if id, err := lineID(entry); err == nil && drop[id] {
				removed = true
				return nil
			}
		}
		return keep(line, true)
	}, func(_ int64, tail []byte) error { return keep(tail, false) })
	if err != nil || !removed {
		return 0, false, err
	}
	if err := bw.Flush(); err != nil {
		return 0, false, err
	}
	if err := tmp.Sync(); err != nil {
		return 0, false, err
	}
	if err := tmp.Close(); err != nil {
		return 0, false, err
	}
	committed = true
	if q.cfg.beforeRename != nil {
		q.cfg.beforeRename(segName(seg))
	}
	if err := os.Rename(tmpPath, path); err != nil {
		os.Remove(tmpPath)
		return 0, false, err
	}
	return size, true, nil
}
