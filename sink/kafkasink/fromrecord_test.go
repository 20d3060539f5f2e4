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

// TestEventFromRecordReadsTheIntakesTimes: ce_time is read as the intake reads an event's time,
// no more: time.Parse also takes a comma before the fraction, which RFC 3339 does not, and the
// year 0000, which the intake refuses, and EventFromRecord used to read both. What it read
// before and the intake reads, it still reads, in UTC.
func TestEventFromRecordReadsTheIntakesTimes(t *testing.T) {
	record := func(v string) *kgo.Record {
		return &kgo.Record{Headers: []kgo.RecordHeader{{Key: "ce_id", Value: []byte("1")}, {Key: "ce_time", Value: []byte(v)}}}
	}
	for _, v := range []string{
		"2018-04-05T17:31:00,5Z", "0000-06-01T00:00:00Z", "0000-01-01T00:00:00+01:00",
		"0001-01-01T00:30:00+01:00", "9999-12-31T23:59:60Z", "2018-04-05T7:31:00Z", "2018-04-05T17:31:00+24:00",
	} {
		e, err := kafkasink.EventFromRecord(record(v))
		require.ErrorIs(t, err, kafkasink.ErrNotEvent, "%s read as %v", v, e)
		assert.Contains(t, err.Error(), "ce_time", v)
		assert.NotContains(t, err.Error(), v, "the error quotes no header value")
	}
	for v, want := range map[string]time.Time{
		"2018-04-05t17:31:00z":           time.Date(2018, 4, 5, 17, 31, 0, 0, time.UTC),
		"2016-12-31T23:59:60Z":           time.Date(2017, 1, 1, 0, 0, 0, 0, time.UTC),
		"2018-04-05T17:31:00.5+02:00":    time.Date(2018, 4, 5, 15, 31, 0, 5e8, time.UTC),
		"2018-04-05T17:31:00-07:30":      time.Date(2018, 4, 6, 1, 1, 0, 0, time.UTC),
		"0001-01-01T01:00:00+01:00":      time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC),
		"9999-12-31T23:59:59.999999999Z": time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
	} {
		e, err := kafkasink.EventFromRecord(record(v))
		require.NoError(t, err, v)
		assert.True(t, want.Equal(e.Time), "%s: got %v, want %v", v, e.Time, want)
		assert.Equal(t, time.UTC, e.Time.Location(), v)
	}
}
