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

// visitor receives what scan finds in a segment, in order.
type visitor struct {
	// entry receives each line that is in the line format with a matching checksum, and each
	// such frame that resync found in a line that is not: off is its offset, n the bytes it
	// takes up (its newline included, when it has one), rec its bytes without the newline and
	// entry the entry JSON inside, both valid until entry returns.
	entry func(off, n int64, rec, entry []byte) error
	// damage, when set, receives every other byte but the newlines, in order and in pieces.
	damage func(b []byte) error
	// newline, when set, is called at the end of every line.
	newline func() error
	// report makes scan report the damaged bytes (see Damage).
	report bool
}

// scan reads the segment, up to limit bytes when limit is not negative, and hands its entries and
// the rest of its bytes to v. A line that fails its check, or is longer than maxLine, goes
// through resync, so that the entries in it are found; the bytes between them are damage. Bytes
// after the last newline are a torn write, unless the limit cut them off a line that goes on in
// the file, in which case they are skipped.
// A segment that no longer exists (removed by retention or emptied by a Delete) reads as empty.
func (q *Queue) scan(ctx context.Context, seg uint64, limit int64, v visitor) error {
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
	maxLine := q.maxLine()
	s := &lineScan{q: q, seg: seg, v: v}
	s.rs = resync{max: maxLine, entry: s.found, damage: v.damage}
	var (
		off       int64  // offset of the line being read
		long      []byte // the line so far, when it does not fit the reader's buffer
		n         int64  // bytes of the line so far
		streaming bool   // the line is too long to keep: resync has it
	)
	for {
		chunk, err := br.ReadSlice('\n')
		n += int64(len(chunk))
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			if err := ctx.Err(); err != nil {
				return err
			}
			var ferr error
			switch {
			case streaming:
				ferr = s.rs.feed(chunk)
			case len(long)+len(chunk) > maxLine:
				streaming = true
				s.begin(off)
				if ferr = s.rs.feed(long); ferr == nil {
					ferr = s.rs.feed(chunk)
				}
				long = nil
			default:
				long = append(long, chunk...)
			}
			if ferr != nil {
				return ferr
			}
			continue
		case err == nil:
			if err := ctx.Err(); err != nil {
				return err
			}
			if streaming {
				if err = s.rs.feed(chunk[:len(chunk)-1]); err == nil {
					err = s.end(n, true, fmt.Errorf("%w: %d bytes, at most %d", ErrLineTooLong, n, maxLine))
				}
			} else {
				line := chunk
				if long != nil {
					line = append(long, chunk...)
				}
				line = line[:len(line)-1]
				if entry, cerr := checkLine(line); cerr == nil {
					err = v.entry(off, n, line, entry)
				} else {
					s.begin(off)
					err = s.whole(line, n, true, cerr)
				}
			}
			if err == nil && v.newline != nil {
				err = v.newline()
			}
			if err != nil {
				return err
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
			if n == 0 {
				return nil
			}
			torn := fmt.Errorf("%w: %d bytes after the last complete line", ErrTorn, n)
			if !streaming {
				s.begin(off)
				return s.whole(append(long, chunk...), n, false, torn)
			}
			if err := s.rs.feed(chunk); err != nil {
				return err
			}
			return s.end(n, false, torn)
		default:
			return err
		}
		off += n
		n, long, streaming = 0, nil, false
	}
}

// lineScan follows a line that resync scans, to report the damage between its entries.
type lineScan struct {
	q       *Queue
	seg     uint64
	v       visitor
	rs      resync
	start   int64 // the line's offset
	gap     int64 // where the bytes not yet in an entry start
	entries int   // entries found in the line
}

func (s *lineScan) begin(off int64) {
	s.start, s.gap, s.entries = off, off, 0
	s.rs.begin(off)
}

func (s *lineScan) found(off int64, rec []byte, nl bool) error {
	if off > s.gap {
		s.damaged(s.gap, off-s.gap, fmt.Errorf("%w: %d bytes before an entry", ErrBadLine, off-s.gap))
	}
	s.gap = off + int64(len(rec))
	s.entries++
	n := int64(len(rec))
	if nl {
		n++
	}
	return s.v.entry(off, n, rec, rec[entryAt:len(rec)-1])
}

// whole scans a line given at once, n bytes long with its newline when eol is true (b is without
// it). lineErr says what is wrong with the line when it holds no entry.
func (s *lineScan) whole(b []byte, n int64, eol bool, lineErr error) error {
	if err := s.rs.whole(b, eol); err != nil {
		return err
	}
	s.report(n, eol, lineErr)
	return nil
}

// end finishes a line fed to resync in pieces, like whole.
func (s *lineScan) end(n int64, eol bool, lineErr error) error {
	if err := s.rs.end(eol); err != nil {
		return err
	}
	s.report(n, eol, lineErr)
	return nil
}

// report reports the damage after the line's last entry, or the whole line when it has none.
func (s *lineScan) report(n int64, eol bool, lineErr error) {
	lineEnd, content := s.start+n, s.start+n
	if eol {
		content--
	}
	switch {
	case s.entries == 0:
		s.damaged(s.start, n, lineErr)
	case s.gap == content:
		// Nothing after the last entry but its newline.
	case !eol:
		s.damaged(s.gap, lineEnd-s.gap, fmt.Errorf("%w: %d bytes after the last entry", ErrTorn, lineEnd-s.gap))
	default:
		s.damaged(s.gap, lineEnd-s.gap, fmt.Errorf("%w: %d bytes after an entry", ErrBadLine, content-s.gap))
	}
}

func (s *lineScan) damaged(off, n int64, err error) {
	if s.v.report {
		s.q.report(Damage{Segment: segName(s.seg), Offset: off, Length: n, Err: err})
	}
}

// List calls fn with each entry, oldest first: segments in order, lines in the order they were
// written. It reads what was written before List started, except entries deleted meanwhile; when
// a Delete rewrote the active segment meanwhile, it may also read some entries written since.
// Damaged bytes are skipped and reported (see Damage); the entries among them are found and
// returned (see the package documentation). fn may call Delete.
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
		err := q.scan(ctx, seg, v.limit(seg), visitor{report: true, entry: func(off, n int64, _, entry []byte) error {
			e, err := decodeEntry(entry)
			if err != nil {
				q.report(Damage{Segment: segName(seg), Offset: off, Length: n, Err: err})
				return nil
			}
			if err := fn(e); err != nil {
				fnErr = err
				return err
			}
			return nil
		}})
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
		err := q.scan(ctx, seg, v.limit(seg), visitor{report: true, entry: func(off, n int64, rec, entry []byte) error {
			got, err := lineID(entry)
			if err != nil {
				q.report(Damage{Segment: segName(seg), Offset: off, Length: n, Err: err})
				return nil
			}
			if got != id {
				return nil
			}
			e, err := ParseLine(rec)
			if err != nil {
				q.report(Damage{Segment: segName(seg), Offset: off, Length: n, Err: err})
				return nil
			}
			if e.ID != id {
				return nil
			}
			found = e
			return errFound
		}})
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
// rest, byte for byte, goes to a temporary file, which is fsynced and renamed over the
// segment, so that a crash leaves either the old or the new segment. A segment left without lines
// is removed unless it is the active one. Damaged bytes are kept as they are, and so are the
// entries found among them unless deleted. IDs that name no entry are ignored.
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
		q.rewritingActive.Store(true)
		defer q.rewritingActive.Store(false)
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
			q.breakWith(fmt.Errorf("reopening the rewritten active segment: %w", err))
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
	write := func(b []byte) error {
		size += int64(len(b))
		_, err := bw.Write(b)
		return err
	}
	// A line loses its newline when it held deleted entries and nothing else: entries that shared
	// a line with damage leave the damage on a line of its own.
	var dropped, kept bool
	err = q.scan(ctx, seg, limit, visitor{
		report: true,
		entry: func(off, n int64, rec, entry []byte) error {
			// A line goes only when it decodes to the entry List showed under that ID; one that
			// does not is damage, kept and reported.
			if id, err := lineID(entry); err == nil && drop[id] {
				e, err := decodeEntry(entry)
				if err == nil && e.ID == id {
					removed, dropped = true, true
					return nil
				}
				if err == nil {
					err = fmt.Errorf("%w: the entry's ID reads differently when decoded", dlq.ErrMalformed)
				}
				q.report(Damage{Segment: segName(seg), Offset: off, Length: n, Err: err})
			}
			kept = true
			return write(rec)
		},
		damage: func(b []byte) error {
			kept = kept || len(b) > 0
			return write(b)
		},
		newline: func() error {
			defer func() { dropped, kept = false, false }()
			if dropped && !kept {
				return nil
			}
			return write([]byte{'\n'})
		},
	})
	if err != nil || !removed {
		return 0, false, err
	}
	if err := bw.Flush(); err != nil {
		return 0, false, err
	}
	if err := q.cfg.syncFile(tmp); err != nil {
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
