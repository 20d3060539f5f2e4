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

// repairTail truncates a torn write off the end of the segment at path and makes the truncation
// durable. It returns the damage it repaired, if any.
func repairTail(dir string, seg uint64) (Damage, bool, error) {
	path := filepath.Join(dir, segName(seg))
	keep, size, err := tornTail(path)
	if err != nil || keep == size {
		return Damage{}, false, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return Damage{}, false, err
	}
	err = f.Truncate(keep)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return Damage{}, false, err
	}
	return Damage{
		Segment: segName(seg), Offset: keep, Length: size - keep, Repaired: true,
		Err: fmt.Errorf("%w: %d bytes after the last complete line", ErrTorn, size-keep),
	}, true, nil
}
