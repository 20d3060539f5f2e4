package filedlq

import (
	"hash/crc32"
	"sync"
)

// resync finds the entries in a line that failed its check. Damage can merge lines (a corrupt
// newline, a write that was cut short and followed by the next) or put garbage before a line, so
// such a line may still hold whole entries. resync looks for every start of a frame,
// {"crc32c":"<8 hex digits>","entry":{, follows the brackets of the entry JSON from there to the
// brace that closes it, and takes the bytes from the frame's start to the frame's closing brace
// for an entry when:
//   - the frame's closing brace follows the entry;
//   - the checksum in the frame is the CRC-32C of the entry JSON;
//   - the frame is followed by the line's newline, or by any byte but ',', ']' and '}': in an
//     intact entry, a frame quoted inside the event's JSON is always followed by one of those,
//     so a quoted frame is never taken for an entry of its own. At the end of a segment, without
//     a newline, the frame is a torn write.
//
// Bytes are fed in pieces, in order, and scanned once: the state is the JSON string state and,
// for each frame still open, its bracket depth and the CRC of the line up to its entry. A
// candidate's checksum is then derived from two running CRCs in constant time (crcSpan), so that
// frames nested in frames, however deep, cost no more than one pass. Frames longer than max are
// given up, which bounds the bytes kept.
type resync struct {
	max int
	// entry receives each entry found, in order: its offset in the segment, its bytes without a
	// newline (valid until entry returns), and whether the line's newline follows it.
	entry func(off int64, rec []byte, nl bool) error
	// damage, when set, receives every other byte of the line, in order and in pieces.
	damage func(b []byte) error

	buf   []byte // the bytes of the line from base on
	base  int64  // the segment offset of buf[0]
	pos   int    // the next byte of buf to scan
	from  int    // bytes before from have been passed on
	inStr bool   // inside a JSON string
	esc   bool   // after a backslash inside a string
	open  []frame
	// gone frames, open[:gone], are longer than max: they stay to keep track of the brackets,
	// but are never checked, and their bytes are not kept.
	gone  int
	crc   uint32 // CRC-32C of the line's bytes before crcAt
	crcAt int64
}

// frame is a frame start whose entry has not been closed yet.
type frame struct {
	start int64  // segment offset of the frame's '{'
	want  uint32 // the checksum the frame states
	crc   uint32 // CRC-32C of the line's bytes before the entry
	depth int    // brackets open in the entry
}

// lookahead is how many bytes resync needs after a byte to judge it: a whole frame start.
const lookahead = entryAt + 1

// begin starts a line at the segment offset off.
func (r *resync) begin(off int64) {
	r.buf = r.buf[:0]
	r.base, r.pos, r.from = off, 0, 0
	r.inStr, r.esc = false, false
	r.open, r.gone = r.open[:0], 0
	r.crc, r.crcAt = 0, off
}

// feed scans more bytes of the line.
func (r *resync) feed(b []byte) error {
	r.buf = append(r.buf, b...)
	if err := r.scan(false, false); err != nil {
		return err
	}
	return r.compact()
}

// whole scans a whole line, b, given at once, which ends with a newline when eol is true; it
// saves copying b.
func (r *resync) whole(b []byte, eol bool) error {
	own := r.buf
	r.buf = b
	err := r.end(eol)
	r.buf = own[:0]
	return err
}

// end scans what is left of the line, which ends with a newline when eol is true and with the
// segment otherwise, and passes on the bytes after the last entry as damage.
func (r *resync) end(eol bool) error {
	if err := r.scan(true, eol); err != nil {
		return err
	}
	if r.damage != nil && r.from < len(r.buf) {
		if err := r.damage(r.buf[r.from:]); err != nil {
			return err
		}
	}
	r.from = len(r.buf)
	if cap(r.buf) > 1<<20 {
		r.buf = nil // do not keep a huge buffer for the next line
	}
	return nil
}

func (r *resync) scan(final, eol bool) error {
	stop := len(r.buf)
	if !final {
		stop -= lookahead
	}
	i := r.pos
	for ; i < stop; i++ {
		c := r.buf[i]
		// A frame start is never inside a string of intact JSON, where its quotes would be
		// escaped, so one seen inside a string means the string state is wrong: damage before.
		if c == '{' {
			if want, ok := frameStart(r.buf[i:]); ok {
				if n := len(r.open); n > 0 {
					r.open[n-1].depth++
				}
				at := r.base + int64(i)
				r.open = append(r.open, frame{start: at, want: want, crc: r.crcTo(at + int64(entryAt)), depth: 0})
				r.inStr, r.esc = false, false
				i += entryAt - 1 // the entry's '{' is scanned next: it may start a frame itself
				continue
			}
		}
		if r.inStr {
			switch {
			case r.esc:
				r.esc = false
			case c == '\\':
				r.esc = true
			case c == '"':
				r.inStr = false
			}
			continue
		}
		n := len(r.open)
		switch c {
		case '"':
			r.inStr = true
		case '{', '[':
			if n > 0 {
				r.open[n-1].depth++
			}
		case '}', ']':
			if n == 0 {
				continue
			}
			if r.open[n-1].depth--; r.open[n-1].depth > 0 {
				continue
			}
			f := r.open[n-1]
			r.open = r.open[:n-1]
			if n-1 < r.gone {
				r.gone = n - 1
				continue
			}
			if c != '}' {
				continue
			}
			end, ok := r.check(f, i, eol)
			if !ok {
				continue
			}
			start := int(f.start - r.base)
			if r.damage != nil && r.from < start {
				if err := r.damage(r.buf[r.from:start]); err != nil {
					return err
				}
			}
			if err := r.entry(f.start, r.buf[start:end], eol && end == len(r.buf)); err != nil {
				return err
			}
			r.from = end
			r.open, r.gone = r.open[:0], 0
			r.inStr, r.esc = false, false
			i = end - 1
		}
	}
	r.pos = i
	return nil
}

// check says whether the frame f, whose entry closes at buf[i], is an entry, and where it ends.
func (r *resync) check(f frame, i int, eol bool) (int, bool) {
	end := i + 2 // after the frame's closing brace
	switch {
	case end > len(r.buf) || r.buf[i+1] != '}':
		return 0, false
	case end < len(r.buf):
		if c := r.buf[end]; c == ',' || c == ']' || c == '}' {
			return 0, false
		}
	case !eol:
		return 0, false
	}
	entryStart := f.start + int64(entryAt)
	n := r.base + int64(i) + 1 - entryStart
	if crcSpan(f.crc, r.crcTo(r.base+int64(i)+1), n) != f.want {
		return 0, false
	}
	// Confirmed on the bytes themselves; entries taken do not overlap, so this costs one pass.
	entry := r.buf[entryStart-r.base : i+1]
	return end, crc32.Checksum(entry, castagnoli) == f.want
}

// compact passes on the bytes no frame can hold any more, and drops them together with frames
// longer than max, so that the bytes kept stay within about max plus one piece.
func (r *resync) compact() error {
	now := r.base + int64(r.pos)
	for r.gone < len(r.open) && now-r.open[r.gone].start > int64(r.max) {
		r.gone++
	}
	// Gone frames are never checked and sit below every other: dropping them changes nothing
	// but the memory they hold.
	if r.gone > 0 && r.gone >= len(r.open)-r.gone {
		r.open = r.open[:copy(r.open, r.open[r.gone:])]
		r.gone = 0
	}
	keep := r.pos
	if r.gone < len(r.open) {
		keep = int(r.open[r.gone].start - r.base)
	}
	if keep < len(r.buf)/2 || keep < 64<<10 {
		return nil
	}
	if r.damage != nil && r.from < keep {
		if err := r.damage(r.buf[r.from:keep]); err != nil {
			return err
		}
	}
	r.crcTo(r.base + int64(keep))
	n := copy(r.buf, r.buf[keep:])
	r.buf = r.buf[:n]
	r.base += int64(keep)
	r.pos -= keep
	r.from = max(r.from-keep, 0)
	return nil
}

// crcTo returns the CRC-32C of the line's bytes before the segment offset at, which is never
// before the last offset asked for.
func (r *resync) crcTo(at int64) uint32 {
	if at > r.crcAt {
		r.crc = crc32.Update(r.crc, castagnoli, r.buf[r.crcAt-r.base:at-r.base])
		r.crcAt = at
	}
	return r.crc
}

// frameStart reports whether b starts with a frame start, {"crc32c":"<8 hex>","entry":{, and
// returns the checksum it states.
func frameStart(b []byte) (uint32, bool) {
	if len(b) < lookahead || string(b[:len(linePrefix)]) != linePrefix ||
		string(b[len(linePrefix)+8:entryAt]) != lineMiddle || b[entryAt] != '{' {
		return 0, false
	}
	return parseCRC(b[len(linePrefix) : len(linePrefix)+8])
}

// CRC arithmetic. A CRC is the remainder of a polynomial over GF(2) divided by the CRC's
// polynomial; crc32 keeps it bit-reversed: bit 31 is the coefficient of x^0, bit 0 that of x^31.
// Appending n bytes to a message multiplies the remainder of what came before by x^(8n), so the
// CRC of the bytes between two offsets follows from the running CRCs at both:
//
//	crc(b) = crc(a || b) xor crc(a) * x^(8*len(b))   (mod the polynomial)
//
// which holds for crc32's pre- and post-inversion too, since the inversions of the two terms
// cancel.

// castagnoliPoly is the CRC-32C polynomial, bit-reversed, without its x^32 term.
const castagnoliPoly = 0x82f63b78

// xPow8 holds, for each byte k of a length n and each value v of that byte, x^(8 v 256^k) mod
// the polynomial, so that x^(8n) is the product of at most eight entries: a span's checksum costs
// the same however long the span. It is built on first use.
var xPow8 = sync.OnceValue(func() *[8][256]uint32 {
	var t [8][256]uint32
	step := uint32(1) << 23 // x^8, the first entry's step
	for k := range t {
		t[k][0] = 1 << 31 // x^0
		for v := 1; v < 256; v++ {
			t[k][v] = gfMul(t[k][v-1], step)
		}
		step = gfMul(t[k][255], step) // x^(8 256^(k+1))
	}
	return &t
})

// gfMul multiplies two remainders modulo the polynomial.
func gfMul(a, b uint32) uint32 {
	var p uint32
	for bit := uint32(1) << 31; bit != 0; bit >>= 1 {
		if a&bit != 0 {
			p ^= b
		}
		// b *= x: shift towards higher powers, folding x^32 back in.
		if b&1 != 0 {
			b = b>>1 ^ castagnoliPoly
		} else {
			b >>= 1
		}
	}
	return p
}

// crcSpan returns the CRC-32C of n bytes, from the CRC before them (prefix) and the CRC with
// them (whole).
func crcSpan(prefix, whole uint32, n int64) uint32 {
	t := xPow8()
	shift := uint32(1) << 31 // x^0
	for k, m := 0, uint64(n); m != 0; k, m = k+1, m>>8 {
		if v := m & 0xff; v != 0 {
			shift = gfMul(shift, t[k][v])
		}
	}
	return whole ^ gfMul(prefix, shift)
}
