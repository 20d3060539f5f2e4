package filedlq_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge/dlq"
	"github.com/fanbridge/fanbridge/dlq/dlqtest"
	"github.com/fanbridge/fanbridge/dlq/filedlq"
	"github.com/fanbridge/fanbridge/retry"
)

// fuzzSegment returns the segment FuzzSegmentReader damages: small entries, one with a real event,
// one with binary Raw (base64), and one whose event quotes another entry's line verbatim.
func fuzzSegment(t testing.TB) []byte {
	t.Helper()
	ev := dlqtest.SampleEvents()[0]
	real, err := dlq.Prepare(dlq.NewEntry(&ev, "kafka", "r", retry.Permanent(errors.New("refused")),
		time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC), time.Date(2026, 3, 1, 10, 0, 1, 0, time.UTC)))
	require.NoError(t, err)
	real.ID = "real"
	inner, err := filedlq.AppendLine(nil, entryFor("inner", 0))
	require.NoError(t, err)
	quoting := entryFor("quoting", 0)
	quoting.Event.Raw = slices.Concat([]byte(`{"copy":`), inner[:len(inner)-1], []byte(`}`))
	var seg []byte
	for _, e := range []dlq.Entry{entryFor("a", 0), real, entryFor("bin", 40), quoting, entryFor("z", 0)} {
		seg, err = filedlq.AppendLine(seg, e)
		require.NoError(t, err)
	}
	return seg
}

// damage applies the edits that ops encodes to seg. It returns the damaged bytes and, for each
// of them, the offset in seg it came from unchanged, or -1.
//
// Each edit is 4 bytes: kind, a 16-bit position and a length; an insertion takes its bytes from
// the ops that follow.
func damage(seg, ops []byte) ([]byte, []int) {
	data := bytes.Clone(seg)
	origin := make([]int, len(data))
	for i := range origin {
		origin[i] = i
	}
	for len(ops) >= 4 {
		kind, n := ops[0]%6, int(ops[3])
		pos := int(binary.BigEndian.Uint16(ops[1:3])) % (len(data) + 1)
		ops = ops[4:]
		end := min(pos+n, len(data))
		switch kind {
		case 0: // flip bits of one byte
			if pos < len(data) && n != 0 {
				data[pos] ^= byte(n)
				origin[pos] = -1
			}
		case 1: // delete bytes
			data = slices.Delete(data, pos, end)
			origin = slices.Delete(origin, pos, end)
		case 2: // insert bytes
			ins := ops[:min(n, len(ops))]
			ops = ops[len(ins):]
			data = slices.Insert(data, pos, ins...)
			origin = slices.Insert(origin, pos, slices.Repeat([]int{-1}, len(ins))...)
		case 3: // zero bytes
			clear(data[pos:end])
			for i := pos; i < end; i++ {
				origin[i] = -1
			}
		case 4: // truncate
			data, origin = data[:pos], origin[:pos]
		case 5: // copy bytes from elsewhere in the segment, as a misdirected write would
			from := int(n) * len(data) / 256
			cp := bytes.Clone(data[from:min(from+64, len(data))])
			data = slices.Insert(data, pos, cp...)
			origin = slices.Insert(origin, pos, slices.Repeat([]int{-1}, len(cp))...)
		}
	}
	return data, origin
}

// untouched returns the IDs of the lines of seg whose every byte, newline included, is still in
// data, in order and next to each other.
func untouched(t *testing.T, seg, data []byte, origin []int) []string {
	at := make(map[int]int, len(origin))
	for i, o := range origin {
		if o >= 0 {
			at[o] = i
		}
	}
	var ids []string
	start := 0
	for _, line := range bytes.SplitAfter(seg, []byte("\n")) {
		if len(line) == 0 {
			break
		}
		i, ok := at[start]
		for k := 1; ok && k < len(line); k++ {
			ok = i+k < len(origin) && origin[i+k] == start+k
		}
		if ok {
			e, err := filedlq.ParseLine(line[:len(line)-1])
			require.NoError(t, err)
			ids = append(ids, e.ID)
		}
		start += len(line)
	}
	return ids
}

// isSubsequence says whether every element of sub appears in seq, in the same order.
func isSubsequence(sub, seq []string) bool {
	for _, s := range seq {
		if len(sub) > 0 && sub[0] == s {
			sub = sub[1:]
		}
	}
	return len(sub) == 0
}

// FuzzSegmentReader damages a valid segment with the edits its input encodes (flipped bits,
// deleted, inserted, zeroed and copied bytes, truncation) and reads it back, read-only and then
// with a writer that repairs it and deletes from it. Reading must never panic, must return only
// entries whose line, checksum included, is in the segment as written by AppendLine, and must
// return every entry whose line, newline included, the edits left untouched, in order. A Delete
// must remove exactly the deleted entries and keep the others.
func FuzzSegmentReader(f *testing.F) {
	seg := fuzzSegment(f)
	nl := func(k int) uint16 { // offset of the k-th newline
		i := -1
		for range k + 1 {
			i += 1 + bytes.IndexByte(seg[i+1:], '\n')
		}
		return uint16(i)
	}
	edit := func(kind byte, pos uint16, n byte, ins ...byte) []byte {
		return append([]byte{kind, byte(pos >> 8), byte(pos), n}, ins...)
	}
	f.Add([]byte{})
	f.Add(edit(0, nl(0), 0x40))
	f.Add(slices.Concat(edit(0, nl(0), 0x40), edit(0, nl(1), 1), edit(0, nl(2), 0x77)))
	f.Add(edit(1, nl(1), 1))
	f.Add(edit(2, nl(0)+1, 5, 0, '"', '{', '[', '\\'))
	f.Add(edit(3, nl(1)-40, 60))
	f.Add(edit(4, nl(3)-3, 0))
	f.Add(edit(0, uint16(len(seg)-1), 'X'^'\n'))
	f.Add(slices.Concat(edit(0, nl(3), 0x40), edit(0, nl(3)-300, 1)))
	f.Add(edit(5, nl(2)+1, 0))
	f.Fuzz(func(t *testing.T, ops []byte) {
		data, origin := damage(seg, ops)
		dir := t.TempDir()
		path := filepath.Join(dir, "dlq-00000000000000000001.jsonl")
		require.NoError(t, os.WriteFile(path, data, 0o600))
		check := func(r *filedlq.Queue, what string) []string {
			var ids []string
			require.NoError(t, r.List(t.Context(), func(e dlq.Entry) error {
				line, err := filedlq.AppendLine(nil, e)
				require.NoError(t, err)
				require.True(t, bytes.Contains(data, line[:len(line)-1]),
					"%s returned %s, which the segment does not hold", what, e.ID)
				ids = append(ids, e.ID)
				return nil
			}))
			return ids
		}
		var reported []filedlq.Damage
		onDamage := filedlq.WithOnDamage(func(d filedlq.Damage) { reported = append(reported, d) })
		ro, err := filedlq.Open(dir, filedlq.WithReadOnly(), onDamage)
		require.NoError(t, err)
		got := check(ro, "read-only List")
		require.NoError(t, ro.Close())
		want := untouched(t, seg, data, origin)
		require.True(t, isSubsequence(want, got), "untouched %v, listed %v", want, got)
		for _, d := range reported {
			require.True(t, d.Offset >= 0 && d.Length >= 0 && d.Offset+d.Length <= int64(len(data)),
				"damage %v outside %d bytes", d, len(data))
		}

		// A writer repairs the tail and then lists the same entries.
		q, err := filedlq.Open(dir, filedlq.WithSync(filedlq.SyncNever()), onDamage,
			filedlq.WithDirSyncFunc(func(string) error { return nil }))
		require.NoError(t, err)
		defer q.Close()
		require.Equal(t, got, check(q, "List after repair"))

		// Deleting every other entry keeps the rest, in order.
		var del []string
		keep := map[string]bool{}
		for i, id := range got {
			if _, seen := keep[id]; !seen {
				keep[id] = i%2 == 1
				if i%2 == 0 {
					del = append(del, id)
				}
			}
		}
		require.NoError(t, q.Delete(t.Context(), del...))
		var left []string
		for _, id := range got {
			if keep[id] {
				left = append(left, id)
			}
		}
		var after []string
		require.NoError(t, q.List(t.Context(), func(e dlq.Entry) error { after = append(after, e.ID); return nil }))
		require.Equal(t, left, after, fmt.Sprintf("deleted %v", del))
	})
}
