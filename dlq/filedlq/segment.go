package filedlq

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Segment files are named dlq-<20-digit sequence number>.jsonl, so that names sort like numbers;
// a rewrite goes through the same name with tmpSuffix.
const (
	segPrefix = "dlq-"
	segSuffix = ".jsonl"
	tmpSuffix = ".tmp"
	lockName  = "LOCK"
)

func segName(n uint64) string { return fmt.Sprintf("%s%020d%s", segPrefix, n, segSuffix) }

// parseSegName returns the sequence number of a segment file name.
func parseSegName(name string) (uint64, bool) {
	digits, ok := strings.CutPrefix(name, segPrefix)
	if !ok {
		return 0, false
	}
	digits, ok = strings.CutSuffix(digits, segSuffix)
	if !ok || len(digits) != 20 {
		return 0, false
	}
	n, err := strconv.ParseUint(digits, 10, 64)
	return n, err == nil && n > 0
}

// scanDir returns the sequence numbers of the segments in dir, in order, and the names of
// leftover temporary files of interrupted rewrites.
func scanDir(dir string) (segs []uint64, tmps []string, err error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, err
	}
	for _, de := range ents {
		name := de.Name()
		if !de.Type().IsRegular() {
			continue
		}
		if n, ok := parseSegName(name); ok {
			segs = append(segs, n)
		} else if base, ok := strings.CutSuffix(name, tmpSuffix); ok {
			if _, ok := parseSegName(base); ok {
				tmps = append(tmps, name)
			}
		}
	}
	slices.Sort(segs)
	return segs, tmps, nil
}

// HoldsQueue reports whether dir holds a queue: a segment file named as the queue names them
// (dlq-<20-digit sequence number from 1>.jsonl) or the LOCK file Open makes for writing. Open is
// no such check: for writing it creates what is missing, and for reading it takes any directory
// for an empty queue. A tool given a directory to read or redrive can ask HoldsQueue first, so
// that a mistyped directory, or the parent of a queue's, is not taken for an empty queue. Other
// files do not count, however they are named (an export of the entries saved as
// dlq-export.jsonl, a leftover .tmp file), nor does anything that is not a regular file. The
// error is the directory's, from opening or reading it (wrapping fs.ErrNotExist when there is
// none).
func HoldsQueue(dir string) (bool, error) {
	f, err := os.Open(dir)
	if err != nil {
		return false, err
	}
	defer f.Close()
	for {
		ents, err := f.ReadDir(256)
		for _, de := range ents {
			if !de.Type().IsRegular() {
				continue
			}
			if _, ok := parseSegName(de.Name()); ok || de.Name() == lockName {
				return true, nil
			}
		}
		switch {
		case errors.Is(err, io.EOF):
			return false, nil
		case err != nil:
			return false, err
		}
	}
}

// syncDir makes the directory's entries (created, renamed and removed files) durable.
func syncDir(dir string) error {
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

// tornTail returns the size the segment at path should have so that it ends at a newline, and its
// current size. The two differ when the last write was torn.
func tornTail(path string) (keep, size int64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, 0, err
	}
	size = fi.Size()
	buf := make([]byte, 64<<10)
	// Walk back from the end in chunks until a newline is found.
	for end := size; end > 0; {
		start := max(end-int64(len(buf)), 0)
		chunk := buf[:end-start]
		if _, err := f.ReadAt(chunk, start); err != nil && !errors.Is(err, io.EOF) {
			return 0, 0, err
		}
		if i := bytes.LastIndexByte(chunk, '\n'); i >= 0 {
			return start + int64(i) + 1, size, nil
		}
		end = start
	}
	return 0, size, nil
}

// cutAfter cuts the segment f after end, the end of its last entry, giving that entry back the
// newline it lost when end > keep. The newline overwrites the damaged byte before anything is
// cut, so that every state the disk may be left in (a crash between the two, a failed write)
// still has a byte after the entry: a segment ending right after an entry's "}" would read as a
// torn write at the next Open, and the entry kept here would be cut away.
func cutAfter(f interface {
	WriteAt([]byte, int64) (int, error)
	Truncate(int64) error
}, keep, end int64) error {
	if end > keep {
		if _, err := f.WriteAt([]byte{'\n'}, end); err != nil {
			return err
		}
		end++
	}
	return f.Truncate(end)
}

// repairTail removes a torn write from the end of the segment at path and makes the repair
// durable. It returns the damage it repaired, if any.
//
// The bytes after the last newline are usually the start of a line whose write was cut short, but
// they may also hold entries: when the newline of the last line was damaged, the whole entry is
// there, followed by the damaged byte. resync finds them; the segment is then cut after the last
// of them and given the newline it lost, so that no entry whose bytes are intact is lost.
func repairTail(dir string, seg uint64, maxLine int) (Damage, bool, error) {
	path := filepath.Join(dir, segName(seg))
	keep, size, err := tornTail(path)
	if err != nil || keep == size {
		return Damage{}, false, err
	}
	end, err := lastEntryEnd(path, keep, maxLine)
	if err != nil {
		return Damage{}, false, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return Damage{}, false, err
	}
	err = cutAfter(f, keep, end)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return Damage{}, false, err
	}
	what := "the last complete line"
	if end > keep {
		what = "the last entry"
	}
	return Damage{
		Segment: segName(seg), Offset: end, Length: size - end, Repaired: true,
		Err: fmt.Errorf("%w: %d bytes after %s", ErrTorn, size-end, what),
	}, true, nil
}

// lastEntryEnd returns the offset just after the last entry that resync finds in the segment at
// path from the offset from on, a stretch without a newline, or from when it finds none.
func lastEntryEnd(path string, from int64, maxLine int) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	end := from
	rs := resync{max: maxLine, entry: func(off int64, rec []byte, _ bool) error {
		end = off + int64(len(rec))
		return nil
	}}
	rs.begin(from)
	r := io.NewSectionReader(f, from, 1<<62)
	buf := make([]byte, 256<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if ferr := rs.feed(buf[:n]); ferr != nil {
				return 0, ferr
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0, err
		}
	}
	if err := rs.end(false); err != nil {
		return 0, err
	}
	return end, nil
}
