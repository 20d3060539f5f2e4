package filedlq_test

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/dlq"
	"github.com/fanbridge/fanbridge/dlq/filedlq"
	"github.com/fanbridge/fanbridge/sink"
)

// writeSegment puts the entries through a queue, closes it, and returns the path of its one
// segment and the segment's lines, each with its newline.
func writeSegment(t *testing.T, dir string, entries ...dlq.Entry) (string, [][]byte) {
	t.Helper()
	ctx := testCtx(t)
	q, err := filedlq.Open(dir)
	require.NoError(t, err)
	for _, e := range entries {
		require.NoError(t, q.Put(ctx, e))
	}
	require.NoError(t, q.Close())
	segs := segments(t, dir)
	require.Len(t, segs, 1)
	data, err := os.ReadFile(segs[0])
	require.NoError(t, err)
	lines := bytes.SplitAfter(data, []byte("\n"))
	require.Empty(t, lines[len(lines)-1])
	return segs[0], lines[:len(lines)-1]
}

func entriesFor(ids ...string) []dlq.Entry {
	var es []dlq.Entry
	for _, id := range ids {
		es = append(es, entryFor(id, 0))
	}
	return es
}

// redriveAll redrives every entry to a sink that takes them all, and returns the IDs it got.
func redriveAll(t *testing.T, ctx context.Context, q dlq.Reader) []string {
	t.Helper()
	var got []string
	s := sink.Func(func(_ context.Context, ev *fanbridge.Event) error {
		got = append(got, strings.TrimPrefix(ev.ID, "ev-"))
		return nil
	})
	rep, err := dlq.Redrive(ctx, q, map[string]sink.Sink{"kafka-orders": s}, nil)
	require.NoError(t, err)
	assert.Equal(t, len(got), rep.Removed)
	return got
}

// A corrupt byte on the newline between two lines merges them. Every entry whose bytes are intact
// must still be listed, fetched, redriven and deleted; only the damaged bytes are lost.
func TestDamagedNewline(t *testing.T) {
	cases := []struct {
		name string
		// damage changes the first two lines, given with their newlines, into what the segment
		// holds instead.
		damage func(a, b []byte) []byte
		want   []string
		// lost is where the damage, reported once, starts and how long it is (the newline
		// included), as offsets into the first line, or -1 when nothing is reported.
		lostAt, lostLen func(a, b []byte) int
	}{{
		// The entry before the damaged newline is intact too: only the newline is lost.
		name:    "newline-flipped",
		damage:  func(a, b []byte) []byte { a[len(a)-1] ^= 0x40; return slicesConcat(a, b) },
		want:    []string{"a", "b", "c"},
		lostAt:  func(a, b []byte) int { return len(a) - 1 },
		lostLen: func(a, b []byte) int { return 1 },
	}, {
		// A newline turned into a closing brace makes the line before it look like an entry
		// quoted inside another: it is reported as damaged, as before; the next one is kept.
		name:    "newline-became-a-brace",
		damage:  func(a, b []byte) []byte { a[len(a)-1] = '}'; return slicesConcat(a, b) },
		want:    []string{"b", "c"},
		lostAt:  func(a, b []byte) int { return 0 },
		lostLen: func(a, b []byte) int { return len(a) },
	}, {
		name: "entry-and-newline-damaged",
		damage: func(a, b []byte) []byte {
			a[bytes.Index(a, []byte("NOT_LEADER"))] = 'X'
			a[len(a)-1] = 0
			return slicesConcat(a, b)
		},
		want:    []string{"b", "c"},
		lostAt:  func(a, b []byte) int { return 0 },
		lostLen: func(a, b []byte) int { return len(a) },
	}, {
		name:    "newline-deleted",
		damage:  func(a, b []byte) []byte { return slicesConcat(a[:len(a)-1], b) },
		want:    []string{"a", "b", "c"},
		lostAt:  func(a, b []byte) int { return -1 },
		lostLen: func(a, b []byte) int { return 0 },
	}, {
		// A torn or garbled write: the second half of a line and its newline are gone, and
		// the next line follows the first half.
		name:    "line-cut-short",
		damage:  func(a, b []byte) []byte { return slicesConcat(a[:len(a)/2], b) },
		want:    []string{"b", "c"},
		lostAt:  func(a, b []byte) int { return 0 },
		lostLen: func(a, b []byte) int { return len(a) / 2 },
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testCtx(t)
			dir := t.TempDir()
			seg, lines := writeSegment(t, dir, entriesFor("a", "b", "c")...)
			data := slicesConcat(tc.damage(bytes.Clone(lines[0]), bytes.Clone(lines[1])), lines[2])
			require.NoError(t, os.WriteFile(seg, data, 0o600))

			var d damages
			q := open(t, dir, d.option())
			assert.Empty(t, q.Recovered(), "damage in the middle is not a torn tail")
			assert.Equal(t, tc.want, listIDs(t, ctx, q))
			if at := tc.lostAt(lines[0], lines[1]); at >= 0 {
				require.Len(t, d.list, 1, "%v", d.list)
				assert.ErrorIs(t, d.list[0].Err, filedlq.ErrBadLine)
				assert.Equal(t, int64(at), d.list[0].Offset)
				assert.Equal(t, int64(tc.lostLen(lines[0], lines[1])), d.list[0].Length)
			} else {
				assert.Empty(t, d.list)
			}
			for _, id := range tc.want {
				e, err := q.Get(ctx, id)
				require.NoError(t, err, id)
				dlqtestEqual(t, entryFor(id, 0), e)
			}

			// Redriving delivers and removes every entry that was listed, and keeps the damage.
			assert.ElementsMatch(t, tc.want, redriveAll(t, ctx, q))
			assert.Empty(t, listIDs(t, ctx, q))
			after, err := os.ReadFile(seg)
			require.NoError(t, err)
			if tc.lostAt(lines[0], lines[1]) >= 0 {
				assert.NotEmpty(t, after, "the damaged bytes are kept")
			}
		})
	}
}

// Garbage in a segment costs the entries it overwrote and no other.
func TestGarbageInASegment(t *testing.T) {
	forged := []byte(`{"crc32c":"00000000","entry":{"v":1,"id":"forged","event":{"id":""}}}`)
	cases := []struct {
		name   string
		damage func(a, b []byte) []byte
		want   []string
	}{
		{"inserted-before-a-line", func(a, b []byte) []byte {
			return slicesConcat(a, []byte("\x00\x01\"{[ garbage \\"), b)
		}, []string{"a", "b", "c"}},
		{"mid-line-through-the-newline", func(a, b []byte) []byte {
			return slicesConcat(a[:len(a)/2], []byte(`"}]}{"crc32c":"`), b)
		}, []string{"b", "c"}},
		{"mid-line-keeping-the-newline", func(a, b []byte) []byte {
			return slicesConcat(a[:len(a)/2], []byte("\x00\"garbage\""), a[len(a)/2:], b)
		}, []string{"b", "c"}},
		{"zeroed-end-of-line", func(a, b []byte) []byte {
			clear(a[len(a)/3:])
			return slicesConcat(a, b)
		}, []string{"b", "c"}},
		{"a-frame-with-a-wrong-checksum", func(a, b []byte) []byte {
			return slicesConcat(a, forged, []byte("x"), b)
		}, []string{"a", "b", "c"}},
		{"unbalanced-quotes-and-brackets", func(a, b []byte) []byte {
			return slicesConcat(a[:len(a)-1], []byte(`"[[[{{{\"`), b)
		}, []string{"a", "b", "c"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testCtx(t)
			dir := t.TempDir()
			seg, lines := writeSegment(t, dir, entriesFor("a", "b", "c")...)
			data := slicesConcat(tc.damage(bytes.Clone(lines[0]), bytes.Clone(lines[1])), lines[2])
			require.NoError(t, os.WriteFile(seg, data, 0o600))

			var d damages
			q := open(t, dir, d.option())
			assert.Equal(t, tc.want, listIDs(t, ctx, q))
			require.NotEmpty(t, d.list)
			for _, x := range d.list {
				assert.Error(t, x.Err)
				assert.False(t, x.Repaired)
			}
			_, err := q.Get(ctx, "forged")
			assert.ErrorIs(t, err, dlq.ErrNotFound)
			e, err := q.Get(ctx, "b")
			require.NoError(t, err)
			dlqtestEqual(t, entryFor("b", 0), e)
		})
	}
}

// A stretch of damage longer than the longest line a reader accepts, without a newline in it,
// does not hide the entry after it, even when it starts like an entry that never ends.
func TestLongDamageBeforeAnEntry(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 17 MiB")
	}
	ctx := testCtx(t)
	dir := t.TempDir()
	seg, lines := writeSegment(t, dir, entriesFor("a", "b", "c")...)
	zeros := slices.Concat([]byte(`{"crc32c":"01234567","entry":{"v":1,"id":"`), make([]byte, 17<<20))
	data := slicesConcat(lines[0], zeros, lines[1], lines[2])
	require.NoError(t, os.WriteFile(seg, data, 0o600))

	var d damages
	q := open(t, dir, d.option())
	assert.Equal(t, []string{"a", "b", "c"}, listIDs(t, ctx, q))
	require.Len(t, d.list, 1)
	assert.Equal(t, int64(len(lines[0])), d.list[0].Offset)
	assert.Equal(t, int64(len(zeros)), d.list[0].Length)

	require.NoError(t, q.Delete(ctx, "b"))
	after, err := os.ReadFile(seg)
	require.NoError(t, err)
	assert.True(t, bytes.Equal(slicesConcat(lines[0], zeros, []byte("\n"), lines[2]), after),
		"the damage is kept byte for byte")
	assert.Equal(t, []string{"a", "c"}, listIDs(t, ctx, q))
}

// An entry quoted verbatim inside another entry's event is never taken for an entry of its own,
// whether the entry around it is intact or damaged.
func TestQuotedEntryIsNotAnEntry(t *testing.T) {
	inner, err := filedlq.AppendLine(nil, entryFor("inner", 0))
	require.NoError(t, err)
	outer := entryFor("outer", 0)
	outer.Event.Raw = slices.Concat([]byte(`{"copy":`), inner[:len(inner)-1], []byte(`}`))
	outerAsData := entryFor("data", 0)
	outerAsData.Event.Data = inner[:len(inner)-1]

	cases := []struct {
		name   string
		damage func(line []byte) []byte
		want   []string
	}{
		{"newline-flipped", func(line []byte) []byte { line[len(line)-1] = 'x'; return line }, []string{"outer", "data", "c"}},
		{"outer-damaged", func(line []byte) []byte {
			line[bytes.Index(line, []byte("NOT_LEADER"))] = 'X'
			line[len(line)-1] = 'x'
			return line
		}, []string{"data", "c"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testCtx(t)
			dir := t.TempDir()
			seg, lines := writeSegment(t, dir, outer, outerAsData, entryFor("c", 0))
			data := slicesConcat(tc.damage(bytes.Clone(lines[0])), lines[1], lines[2])
			require.NoError(t, os.WriteFile(seg, data, 0o600))
			q := open(t, dir)
			assert.Equal(t, tc.want, listIDs(t, ctx, q))
		})
	}
}

// The last newline of a segment is part of an acknowledged entry: when it is damaged, Open keeps
// the entry and gives it its newline back, and truncates only what follows.
func TestDamagedLastNewline(t *testing.T) {
	cases := []struct {
		name string
		tail []byte // what replaces the last newline
	}{
		{"flipped", []byte("X")},
		{"flipped-then-torn-write", []byte(`X{"crc32c":"0badf00d","entry":{"v":1,"id`)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testCtx(t)
			dir := t.TempDir()
			seg, lines := writeSegment(t, dir, entriesFor("a", "b", "c")...)
			good := slicesConcat(lines...)
			damaged := slicesConcat(good[:len(good)-1], tc.tail)
			require.NoError(t, os.WriteFile(seg, damaged, 0o600))

			var rd damages
			ro := open(t, dir, filedlq.WithReadOnly(), rd.option())
			assert.Equal(t, []string{"a", "b", "c"}, listIDs(t, ctx, ro))
			require.Len(t, rd.list, 1)
			assert.ErrorIs(t, rd.list[0].Err, filedlq.ErrTorn)
			assert.Equal(t, int64(len(good)-1), rd.list[0].Offset)
			assert.Equal(t, int64(len(tc.tail)), rd.list[0].Length)

			var d damages
			q := open(t, dir, d.option())
			require.Len(t, q.Recovered(), 1)
			r := q.Recovered()[0]
			assert.True(t, r.Repaired)
			assert.ErrorIs(t, r.Err, filedlq.ErrTorn)
			assert.Equal(t, int64(len(good)-1), r.Offset)
			assert.Equal(t, int64(len(tc.tail)), r.Length)
			after, err := os.ReadFile(seg)
			require.NoError(t, err)
			assert.Equal(t, string(good), string(after), "the entry got its newline back")

			require.NoError(t, q.Put(ctx, entryFor("d", 0)))
			assert.Equal(t, []string{"a", "b", "c", "d"}, listIDs(t, ctx, q))
			assert.Len(t, d.list, 1, "nothing left to report after the repair")
		})
	}
}

// Delete rewrites a segment around its damage: it removes the deleted entries, entries found
// next to damage included, keeps every other entry and keeps the damaged bytes as they were.
func TestDeleteAroundDamage(t *testing.T) {
	garbage := []byte("\x00garbage\"{")
	cases := []struct {
		name   string
		delete []string
		// want is the segment after the Delete, from the lines a..e (newline included) and
		// the garbage.
		want func(l [][]byte) []byte
		ids  []string
	}{
		{"another-entry", []string{"d"}, func(l [][]byte) []byte {
			return slicesConcat(l[0][:len(l[0])-1], []byte("X"), l[1], garbage, l[2], l[4])
		}, []string{"a", "b", "c", "e"}},
		{"the-entry-after-garbage", []string{"c"}, func(l [][]byte) []byte {
			return slicesConcat(l[0][:len(l[0])-1], []byte("X"), l[1], garbage, []byte("\n"), l[3], l[4])
		}, []string{"a", "b", "d", "e"}},
		{"the-entry-before-a-damaged-newline", []string{"a"}, func(l [][]byte) []byte {
			return slicesConcat([]byte("X"), l[1], garbage, l[2], l[3], l[4])
		}, []string{"b", "c", "d", "e"}},
		{"the-entry-after-a-damaged-newline", []string{"b"}, func(l [][]byte) []byte {
			return slicesConcat(l[0][:len(l[0])-1], []byte("X\n"), garbage, l[2], l[3], l[4])
		}, []string{"a", "c", "d", "e"}},
		{"every-entry", []string{"a", "b", "c", "d", "e"}, func(l [][]byte) []byte {
			return slicesConcat([]byte("X\n"), garbage, []byte("\n"))
		}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testCtx(t)
			dir := t.TempDir()
			seg, l := writeSegment(t, dir, entriesFor("a", "b", "c", "d", "e")...)
			// a's newline is damaged, and garbage precedes c on its line.
			data := slicesConcat(l[0][:len(l[0])-1], []byte("X"), l[1], garbage, l[2], l[3], l[4])
			require.NoError(t, os.WriteFile(seg, data, 0o600))

			q := open(t, dir)
			require.Equal(t, []string{"a", "b", "c", "d", "e"}, listIDs(t, ctx, q))
			require.NoError(t, q.Delete(ctx, tc.delete...))
			after, err := os.ReadFile(seg)
			require.NoError(t, err)
			assert.Equal(t, string(tc.want(l)), string(after))
			assert.Equal(t, tc.ids, listIDs(t, ctx, q))

			// And the result reads the same after a reopen, which repairs nothing.
			require.NoError(t, q.Close())
			q = open(t, dir)
			assert.Empty(t, q.Recovered())
			assert.Equal(t, tc.ids, listIDs(t, ctx, q))
		})
	}
}

func TestCRCSpan(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	data := make([]byte, 3<<20)
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	for _, c := range []struct{ a, n int }{{0, 0}, {0, 1}, {5, 0}, {1, 1}, {7, 29}, {100, 4096}, {3, 1<<20 + 17}, {1 << 20, 2 << 20}} {
		a, b := data[:c.a], data[c.a:c.a+c.n]
		assert.Equal(t, crc32c(b), filedlq.CRCSpan(crc32c(a), crc32c(data[:c.a+c.n]), int64(c.n)), "%+v", c)
	}
	// A span whose length needs four bytes.
	long := make([]byte, 1<<24+1000)
	copy(long, data[:500])
	copy(long[len(long)-500:], data[500:])
	assert.Equal(t, crc32c(long[7:]), filedlq.CRCSpan(crc32c(long[:7]), crc32c(long), int64(len(long)-7)))
}

// Damage that ends with a frame's first 29 bytes (a write torn right after its prefix, followed
// by the next line) must not hide the intact line after it: that line's "{" is not the bogus
// frame's entry, and its own frame start must still be seen.
func TestFramePrefixBeforeAnIntactLine(t *testing.T) {
	for name, damage := range map[string]func(lines [][]byte) []byte{
		"torn after the prefix": func(lines [][]byte) []byte { return lines[1][:29] },
		"garbage ending in one": func([][]byte) []byte { return []byte(`xx{"crc32c":"00000000","entry":`) },
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path, lines := writeSegment(t, dir, entriesFor("a", "b", "c")...)
			d := damage(lines)
			require.Equal(t, `","entry":`, string(d[len(d)-10:]))
			require.NoError(t, os.WriteFile(path, slicesConcat(lines[0], d, lines[1], lines[2]), 0o600))
			q := open(t, dir, filedlq.WithReadOnly())
			assert.Equal(t, []string{"a", "b", "c"}, listIDs(t, testCtx(t), q))
		})
	}
}
