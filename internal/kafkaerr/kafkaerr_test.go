package kafkaerr

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

func TestSharedBatchTooLarge(t *testing.T) {
	rec := &kgo.Record{Key: []byte("id-1"), Value: make([]byte, 1000),
		Headers: []kgo.RecordHeader{{Key: "ce_id", Value: []byte("id-1")}}}
	alone := 61 + 36 + 10 + 4 + 1000 + 5 + 4 // the most one record and a batch header take
	broker := func(code error, batch int) error {
		return fmt.Errorf("%w (uncompressed_bytes=%d, compressed_bytes=%d)", code, batch, batch)
	}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"broker, batch shared", broker(kerr.MessageTooLarge, 8800), true},
		{"broker, record list shared", broker(kerr.RecordListTooLarge, 8800), true},
		{"broker, record alone", broker(kerr.MessageTooLarge, 1090), false},
		{"broker, at the bound for one record", broker(kerr.MessageTooLarge, alone), false},
		{"broker, one byte past it", broker(kerr.MessageTooLarge, alone+1), true},
		{"wrapped further", fmt.Errorf("%w: last error: %w", kgo.ErrRecordTimeout, broker(kerr.MessageTooLarge, 8800)), true},
		{"client refusal carries the record's size only", fmt.Errorf("%w (uncompressed_bytes=%d)", kerr.MessageTooLarge, 8800), false},
		{"no size", kerr.MessageTooLarge, false},
		{"another code", broker(kerr.InvalidRecord, 8800), false},
		{"not a number", errors.Join(kerr.MessageTooLarge, errors.New("(uncompressed_bytes=x, compressed_bytes=1)")), false},
		{"negative", errors.Join(kerr.MessageTooLarge, errors.New("(uncompressed_bytes=-9000, compressed_bytes=1)")), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := SharedBatchTooLarge(tt.err, rec); got != tt.want {
				t.Errorf("SharedBatchTooLarge(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

func FuzzRefusedBatchBytes(f *testing.F) {
	f.Add("MESSAGE_TOO_LARGE (uncompressed_bytes=8800, compressed_bytes=8800)")
	f.Add("(uncompressed_bytes=1)")
	f.Add("(uncompressed_bytes=99999999999999999999, compressed_bytes=")
	f.Fuzz(func(t *testing.T, msg string) {
		n, ok := refusedBatchBytes(msg)
		if !ok {
			return
		}
		if n < 0 {
			t.Fatalf("refusedBatchBytes(%q) = %d", msg, n)
		}
		if !strings.Contains(msg, fmt.Sprintf("(uncompressed_bytes=%d, compressed_bytes=", n)) &&
			!strings.Contains(msg, "(uncompressed_bytes=+") && !strings.Contains(msg, "(uncompressed_bytes=0") {
			t.Fatalf("refusedBatchBytes(%q) = %d, which the message does not spell", msg, n)
		}
	})
}
