package kafkasink_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fanbridge/fanbridge/sink/kafkasink"
)

// EventFromRecord reads every RFC 3339 time the intake reads, as the intake reads it: a
// lower-case "t" or "z", and a leap second, taken as the first second of the next minute. It
// refuses a record of another CloudEvents version.
func TestEventFromRecordTimesAndVersion(t *testing.T) {
	record := func(headers ...string) *kgo.Record {
		r := &kgo.Record{Value: []byte(`{}`)}
		for i := 0; i+1 < len(headers); i += 2 {
			r.Headers = append(r.Headers, kgo.RecordHeader{Key: headers[i], Value: []byte(headers[i+1])})
		}
		return r
	}
	times := map[string]time.Time{
		"2018-04-05T17:31:00Z":           time.Date(2018, 4, 5, 17, 31, 0, 0, time.UTC),
		"2018-04-05t17:31:00z":           time.Date(2018, 4, 5, 17, 31, 0, 0, time.UTC),
		"2018-04-05t17:31:00.5+02:00":    time.Date(2018, 4, 5, 15, 31, 0, 5e8, time.UTC),
		"2016-12-31T23:59:60Z":           time.Date(2017, 1, 1, 0, 0, 0, 0, time.UTC),
		"2016-12-31T23:59:60.25z":        time.Date(2017, 1, 1, 0, 0, 0, 25e7, time.UTC),
		"2022-06-14T16:12:11.435123456Z": time.Date(2022, 6, 14, 16, 12, 11, 435123456, time.UTC),
	}
	for v, want := range times {
		e, err := kafkasink.EventFromRecord(record("ce_specversion", "1.0", "ce_id", "1", "ce_time", v))
		require.NoError(t, err, v)
		assert.True(t, want.Equal(e.Time), "%s: got %v, want %v", v, e.Time, want)
	}
	for _, v := range []string{"2018-04-05 17:31:00Z", "2018-04-05T17:31:61Z", "2018-04-05T17:31:00", "2018-04-05x17:31:00Z"} {
		_, err := kafkasink.EventFromRecord(record("ce_id", "1", "ce_time", v))
		require.ErrorIs(t, err, kafkasink.ErrNotEvent, v)
	}
	_, err := kafkasink.EventFromRecord(record("ce_specversion", "0.3", "ce_id", "1"))
	require.ErrorIs(t, err, kafkasink.ErrNotEvent)
	assert.Contains(t, err.Error(), `"0.3"`)
}
