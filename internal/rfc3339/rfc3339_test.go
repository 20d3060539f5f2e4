package rfc3339_test

import (
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/fanbridge/fanbridge/internal/rfc3339"
)

// shape is the grammar of an RFC 3339 date-time (section 5.6), "t" and "z" in either case.
var shape = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$`)

// oracle reads s with time.Parse(time.RFC3339Nano) after putting the two forms RFC 3339 allows
// and time.Parse refuses into ones it takes: a lower-case "t" or "z" is made upper-case, and a
// leap second (second 60) is read as second 59 plus one second.
func oracle(s string) (time.Time, error) {
	b := []byte(s)
	leap := false
	if len(b) >= 20 {
		if b[10] == 't' {
			b[10] = 'T'
		}
		if b[len(b)-1] == 'z' {
			b[len(b)-1] = 'Z'
		}
		if string(b[17:19]) == "60" {
			b[17], b[18], leap = '5', '9', true
		}
	}
	t, err := time.Parse(time.RFC3339Nano, string(b))
	if leap {
		t = t.Add(time.Second)
	}
	return t, err
}

// FuzzParse holds Parse to the oracle: it reads a string exactly when the string has the RFC's
// shape, time.Parse (with the oracle's two corrections) reads it, and the instant falls in the
// years 0001 to 9999; and then as the same instant, in UTC.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"2021-06-25T15:11:52Z", "2021-06-25T15:11:52.435Z", "2024-02-29T00:00:00+14:00",
		"2023-02-29T00:00:00Z", "2021-06-25t15:11:52.123456789z", "2021-06-25T15:11:52.12345678901Z", "2021-06-25T24:00:00Z",
		"2021-06-25T15:11:52-07:30", "0000-01-01T00:00:00Z", "2016-12-31T23:59:60Z", "2016-12-31t23:59:60.5+00:00",
		"2018-04-05T17:31:00,5Z", "0000-06-01T00:00:00Z", "0001-01-01T00:30:00+01:00", "9999-12-31T23:59:60Z",
		"2021-06-25T5:11:52Z", "2021-06-25T15:11:52+24:00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := rfc3339.Parse([]byte(s))
		want, err := oracle(s)
		inYears := err == nil && want.UTC().Year() >= 1 && want.UTC().Year() <= 9999
		if wantOK := shape.MatchString(s) && err == nil && inYears; ok != wantOK {
			t.Fatalf("Parse(%q) reads it: %v; the oracle: %v (%v, %v)", s, ok, wantOK, want, err)
		}
		if !ok {
			return
		}
		if !got.Equal(want) || got.Location() != time.UTC {
			t.Fatalf("Parse(%q) = %v, the oracle %v", s, got, want)
		}
	})
}

func TestParse(t *testing.T) {
	for s, want := range map[string]time.Time{
		"2021-06-25T15:11:52Z":            time.Date(2021, 6, 25, 15, 11, 52, 0, time.UTC),
		"2021-06-25T15:11:52.000000001Z":  time.Date(2021, 6, 25, 15, 11, 52, 1, time.UTC),
		"2024-02-29T00:00:00+14:00":       time.Date(2024, 2, 28, 10, 0, 0, 0, time.UTC),
		"2021-06-25T15:11:52-07:30":       time.Date(2021, 6, 25, 22, 41, 52, 0, time.UTC),
		"2016-12-31t23:59:59z":            time.Date(2016, 12, 31, 23, 59, 59, 0, time.UTC),
		"2016-12-31T23:59:60Z":            time.Date(2017, 1, 1, 0, 0, 0, 0, time.UTC),
		"2016-12-31T18:59:60.25-05:00":    time.Date(2017, 1, 1, 0, 0, 0, 25e7, time.UTC),
		"2021-06-25T15:11:52.1234567891Z": time.Date(2021, 6, 25, 15, 11, 52, 123456789, time.UTC),
		"0001-01-01T01:00:00+01:00":       time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC),
		"9999-12-31T22:59:59-01:00":       time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC),
	} {
		got, ok := rfc3339.Parse([]byte(s))
		if assert.True(t, ok, s) {
			assert.True(t, want.Equal(got), "%s: got %v, want %v", s, got, want)
			assert.Equal(t, time.UTC, got.Location(), s)
		}
	}
	for _, s := range []string{"", "2021-06-25T15:11:52,5Z", "2021-06-25T5:11:52Z", "2021-06-25T15:11:52+24:00",
		"2023-02-29T00:00:00Z", "2021-06-25T24:00:00Z", "2021-06-25 15:11:52Z", "2021-06-25T15:11:52",
		"2021-06-25T15:11:61Z", "2021-06-25T15:11:52.Z", "2021-06-25T15:11:52+0200", "21-06-25T15:11:52Z",
		"0000-06-01T00:00:00Z", "0001-01-01T00:30:00+01:00", "9999-12-31T23:59:60Z", "9999-12-31T23:00:00-01:00"} {
		_, ok := rfc3339.Parse([]byte(s))
		assert.False(t, ok, s)
	}
}

func TestInYears(t *testing.T) {
	for _, c := range []struct {
		t  time.Time
		ok bool
	}{
		{time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), true},
		{time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC), true},
		{time.Date(0, 12, 31, 23, 59, 59, 999999999, time.UTC), false},
		{time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), false},
	} {
		_, ok := rfc3339.InYears(c.t)
		assert.Equal(t, c.ok, ok, c.t)
	}
}
