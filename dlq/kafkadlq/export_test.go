package kafkadlq

import (
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fanbridge/fanbridge/dlq"
)

// DecodeRecord exposes the record decoder to the fuzz test: the entry, or the ID a removal record
// removes.
func DecodeRecord(r *kgo.Record) (dlq.Entry, string, error) {
	d, err := decode(r)
	return d.entry, d.removes, err
}

// EncodeRecord exposes the record encoder to the fuzz test.
func EncodeRecord(e dlq.Entry) *kgo.Record {
	return record("t", []byte(e.Event.ID), &e)
}

// SetOffsetsLimit sets how long a listing of offsets may take, for a test that cannot wait 30 s,
// and returns what restores it. Tests that call it do not run in parallel.
func SetOffsetsLimit(d time.Duration) (restore func()) {
	old := offsetsLimit
	offsetsLimit = d
	return func() { offsetsLimit = old }
}

// SetScanStallLimit sets how long a scan waits for a fetch to bring anything, for a test that
// cannot wait 10 s, and returns what restores it. Tests that call it do not run in parallel.
func SetScanStallLimit(d time.Duration) (restore func()) {
	old := scanStallLimit
	scanStallLimit = d
	return func() { scanStallLimit = old }
}
