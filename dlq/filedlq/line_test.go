package filedlq_test

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge/dlq"
	"github.com/fanbridge/fanbridge/dlq/dlqtest"
	"github.com/fanbridge/fanbridge/dlq/filedlq"
	"github.com/fanbridge/fanbridge/retry"
)

func TestLineFormat(t *testing.T) {
	e := dlq.Entry{ID: "a", Sink: "s"}
	line, err := filedlq.AppendLine([]byte("prefix"), e)
	require.NoError(t, err)
	body := `{"v":1,"id":"a","sink":"s","event":{"id":""}}`
	assert.Equal(t, fmt.Sprintf("prefix{\"crc32c\":\"%08x\",\"entry\":%s}\n", crc32c([]byte(body)), body), string(line))

	got, err := filedlq.ParseLine(line[len("prefix") : len(line)-1])
	require.NoError(t, err)
	assert.Equal(t, "a", got.ID)

	_, err = filedlq.ParseLine(line[len("prefix"):])
	assert.ErrorIs(t, err, filedlq.ErrBadLine, "a line is parsed without its newline")

	bad := dlq.Entry{ID: "a", Sink: "s", LastAttempt: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}
	out, err := filedlq.AppendLine([]byte("keep"), bad)
	assert.ErrorIs(t, err, dlq.ErrInvalidEntry)
	assert.Equal(t, "keep", string(out))
}

// sampleLines are lines of real entries, the seeds of FuzzParseLine.
func sampleLines(t testing.TB) [][]byte {
	var lines [][]byte
	for _, ev := range dlqtest.SampleEvents() {
		e, err := dlq.Prepare(dlq.NewEntry(&ev, "kafka", "r", retry.Permanent(assert.AnError), time.Now(), time.Now()))
		require.NoError(t, err)
		line, err := filedlq.AppendLine(nil, e)
		require.NoError(t, err)
		lines = append(lines, line[:len(line)-1])
	}
	return lines
}

// FuzzParseLine feeds arbitrary bytes to the line parser: it must never panic, and a line it
// accepts must carry the right checksum and encode back to an entry equal to what it decoded.
func FuzzParseLine(f *testing.F) {
	for _, line := range sampleLines(f) {
		f.Add(line)
		f.Add(line[:len(line)/2])
		flipped := bytes.Clone(line)
		flipped[len(flipped)/2] ^= 1
		f.Add(flipped)
	}
	f.Add([]byte(`{"crc32c":"00000000","entry":}`))
	f.Add([]byte(`{"crc32c":"ABCDEF01","entry":{"v":1}}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		e, err := filedlq.ParseLine(line)
		if err != nil {
			return
		}
		const at = len(`{"crc32c":"00000000","entry":`)
		require.Equal(t, fmt.Sprintf("%08x", crc32c(line[at:len(line)-1])), string(line[len(`{"crc32c":"`):len(`{"crc32c":"`)+8]),
			"accepted a line whose checksum does not match")
		again, err := filedlq.AppendLine(nil, e)
		require.NoError(t, err)
		back, err := filedlq.ParseLine(again[:len(again)-1])
		require.NoError(t, err)
		dlqtest.AssertEntry(t, e, back)
	})
}
