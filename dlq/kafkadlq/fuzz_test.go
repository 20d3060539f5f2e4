package kafkadlq_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fanbridge/fanbridge/dlq"
	"github.com/fanbridge/fanbridge/dlq/dlqtest"
	"github.com/fanbridge/fanbridge/dlq/kafkadlq"
	"github.com/fanbridge/fanbridge/retry"
)

// headerBlob joins headers as key=value lines, the fuzzer's encoding of a record's headers.
func headerBlob(r *kgo.Record) []byte {
	var b bytes.Buffer
	for _, h := range r.Headers {
		b.WriteString(h.Key)
		b.WriteByte('=')
		b.Write(h.Value)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// FuzzDecodeRecord decodes records with arbitrary headers and values: it must never panic, and an
// entry it accepts must encode and decode again to the same entry.
func FuzzDecodeRecord(f *testing.F) {
	for _, ev := range dlqtest.SampleEvents() {
		e, err := dlq.Prepare(dlq.NewEntry(&ev, "s", "r", retry.Permanent(assert.AnError), time.Now(), time.Now()))
		require.NoError(f, err)
		r := kafkadlq.EncodeRecord(e)
		f.Add(headerBlob(r), r.Value)
	}
	f.Add([]byte("dlq.v=1\ndlq.op=remove\ndlq.id=x\n"), []byte(nil))
	f.Add([]byte("dlq.v=1\ndlq.id=x\ndlq.sink=s\nevent.data-span=2:3\nmeta.k=v\n"), []byte("0123456"))
	f.Add([]byte("dlq.v=1\ndlq.id=x\ndlq.sink=s\nevent.time=2026-01-01T00:00:00+02:00\n"), []byte("{}"))
	f.Fuzz(func(t *testing.T, blob, value []byte) {
		r := &kgo.Record{Value: value}
		for _, line := range bytes.Split(blob, []byte("\n")) {
			k, v, _ := bytes.Cut(line, []byte("="))
			r.Headers = append(r.Headers, kgo.RecordHeader{Key: string(k), Value: v})
		}
		e, removes, err := kafkadlq.DecodeRecord(r)
		if err != nil || removes != "" {
			return
		}
		require.LessOrEqual(t, len(e.Event.Data), len(value)+len(blob))
		again, removes, err := kafkadlq.DecodeRecord(kafkadlq.EncodeRecord(e))
		require.NoError(t, err)
		require.Empty(t, removes)
		dlqtest.AssertEntry(t, e, again)
	})
}
