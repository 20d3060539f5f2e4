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

// SetScanStallLimit sets a scan's stall window, for a test that cannot wait 30 s, and returns
// what restores it. Tests that call it do not run in parallel.
func SetScanStallLimit(d time.Duration) (restore func()) {
	old := scanStallLimit
	scanStallLimit = d
	return func() { scanStallLimit = old }
}

// StallWindow returns the stall window of a scan of q, from the options its reading client gets.
func StallWindow(q *Queue) time.Duration {
	cl, err := kgo.NewClient(q.readerOpts()...)
	if err != nil {
		panic(err)
	}
	defer cl.Close()
	return stallWindow(cl)
}
