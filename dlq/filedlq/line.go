package filedlq

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/fanbridge/fanbridge/dlq"
)

// A line is {"crc32c":"<8 lowercase hex digits>","entry":<entry JSON>} and a newline. The
// checksum covers exactly the entry JSON bytes, so a line is checked without parsing JSON, and a
// torn or damaged line is rejected even when what is left happens to be valid JSON.
const (
	linePrefix = `{"crc32c":"`
	lineMiddle = `","entry":`
	// entryAt is where the entry JSON starts in a line.
	entryAt = len(linePrefix) + 8 + len(lineMiddle)
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Errors that say why bytes in a segment are not an entry. Damage.Err wraps one of them, or the
// error of dlq.Entry.UnmarshalJSON for a line whose checksum matched but whose entry did not
// decode.
var (
	// ErrTorn: bytes at the end of a segment without a final newline, the trace of a write
	// that was interrupted (a crash, a kill, a full disk) or, for a read-only reader, of a write
	// still in progress.
	ErrTorn = errors.New("filedlq: torn write")
	// ErrBadLine: a line that is not in the line format, or bytes of a line that hold no entry
	// next to the entries found in it.
	ErrBadLine = errors.New("filedlq: not a dead-letter line")
	// ErrChecksum: a line whose entry does not match its checksum.
	ErrChecksum = errors.New("filedlq: checksum mismatch")
	// ErrLineTooLong: a line longer than the reader accepts (see WithMaxEntrySize).
	ErrLineTooLong = errors.New("filedlq: line too long")
)

// AppendLine appends e as one line of the file format, newline included, to dst. It encodes e as
// it is: callers that did not get e from a queue run dlq.Prepare first.
func AppendLine(dst []byte, e dlq.Entry) ([]byte, error) {
	start := len(dst)
	dst = append(dst, linePrefix...)
	dst = append(dst, "00000000"...)
	dst = append(dst, lineMiddle...)
	dst, err := e.AppendJSON(dst)
	if err != nil {
		return dst[:start], err
	}
	sum := crc32.Checksum(dst[start+entryAt:], castagnoli)
	for i := 7; i >= 0; i-- {
		dst[start+len(linePrefix)+i] = "0123456789abcdef"[sum&0xF]
		sum >>= 4
	}
	return append(dst, '}', '\n'), nil
}

// ParseLine decodes one line of the file format, given without its newline. It returns an error
// wrapping ErrBadLine when the line is not in the format, ErrChecksum when the entry does not
// match its checksum, and the error of dlq.Entry.UnmarshalJSON when a checksummed entry does not
// decode, or one wrapping dlq.ErrMalformed when it names its ID twice (see decodeEntry). It never
// returns an entry whose checksum did not match.
func ParseLine(line []byte) (dlq.Entry, error) {
	entry, err := checkLine(line)
	if err != nil {
		return dlq.Entry{}, err
	}
	return decodeEntry(entry)
}

// decodeEntry decodes a checked line's entry JSON. An entry whose ID, as scans read it at the
// place AppendJSON writes it (see lineID), is not the ID decoding gives (a second "id" or "ID"
// member, which decoding takes instead, or invalid UTF-8, which it replaces) is refused with an
// error wrapping dlq.ErrMalformed: List, Get and Delete must agree on which entry a line holds,
// or a Delete of one ID could remove an entry listed under another. AppendJSON never writes such
// a line.
func decodeEntry(entry []byte) (dlq.Entry, error) {
	var e dlq.Entry
	if err := e.UnmarshalJSON(entry); err != nil {
		return dlq.Entry{}, err
	}
	if id, ok := quickID(entry); ok && id != e.ID {
		return dlq.Entry{}, fmt.Errorf("%w: the entry names its ID twice, or not in UTF-8", dlq.ErrMalformed)
	}
	return e, nil
}

// checkLine verifies a line's frame and checksum and returns the entry JSON inside it.
func checkLine(line []byte) ([]byte, error) {
	if len(line) < entryAt+3 || !bytes.HasPrefix(line, []byte(linePrefix)) ||
		string(line[len(linePrefix)+8:entryAt]) != lineMiddle || line[len(line)-1] != '}' {
		return nil, fmt.Errorf("%w: bad frame", ErrBadLine)
	}
	if bytes.IndexByte(line, '\n') >= 0 {
		return nil, fmt.Errorf("%w: newline inside the line", ErrBadLine)
	}
	want, ok := parseCRC(line[len(linePrefix) : len(linePrefix)+8])
	if !ok {
		return nil, fmt.Errorf("%w: bad checksum digits", ErrBadLine)
	}
	entry := line[entryAt : len(line)-1]
	if got := crc32.Checksum(entry, castagnoli); got != want {
		return nil, fmt.Errorf("%w: line says %08x, entry has %08x", ErrChecksum, want, got)
	}
	return entry, nil
}

// idPrefix is how AppendJSON starts every entry, which lets a scan read an entry's ID without
// decoding the entry.
var idPrefix = []byte(`{"v":1,"id":"`)

// lineID returns the ID of the entry in a checked line's entry JSON, decoding the whole entry only
// when the ID is not a plain string at the usual place.
func lineID(entry []byte) (string, error) {
	if id, ok := quickID(entry); ok {
		return id, nil
	}
	var e dlq.Entry
	if err := e.UnmarshalJSON(entry); err != nil {
		return "", err
	}
	return e.ID, nil
}

// quickID reads the ID at the place AppendJSON writes it, when it is a string without escapes.
func quickID(entry []byte) (string, bool) {
	if rest, ok := bytes.CutPrefix(entry, idPrefix); ok {
		if end := bytes.IndexByte(rest, '"'); end >= 0 && bytes.IndexByte(rest[:end], '\\') < 0 {
			return string(rest[:end]), true
		}
	}
	return "", false
}

// parseCRC reads the 8 lowercase hex digits of a frame's checksum.
func parseCRC(digits []byte) (uint32, bool) {
	var sum uint32
	for _, c := range digits {
		switch {
		case c >= '0' && c <= '9':
			sum = sum<<4 | uint32(c-'0')
		case c >= 'a' && c <= 'f':
			sum = sum<<4 | uint32(c-'a'+10)
		default:
			return 0, false
		}
	}
	return sum, true
}
