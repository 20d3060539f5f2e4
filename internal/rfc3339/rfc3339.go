// Package rfc3339 reads RFC 3339 timestamps the one way fanbridge reads them, so that the
// intake, which takes an event's time in, and kafkasink.EventFromRecord, which reads it back from
// a record, take and refuse the same times.
package rfc3339

import "time"

// Parse parses an RFC 3339 timestamp ("2021-06-25T15:11:52.435Z": any number of fraction digits,
// "Z" or a "+hh:mm" offset) and returns it in UTC, without converting b to a string (an
// allocation per field on the intake's hot path). It does what time.Parse with
// time.RFC3339Nano does, with three differences. It takes two forms RFC 3339 allows and
// time.Parse refuses: a lower-case "t" or "z", and a leap second (second 60, read as the first
// second of the next minute). It refuses what time.Parse takes beyond the RFC's grammar, such as
// a comma before the fraction, a one-digit hour or an offset of "+24:00". And it refuses an
// instant outside the years 0001 to 9999 (see InYears).
func Parse(b []byte) (time.Time, bool) {
	if len(b) < len("2006-01-02T15:04:05Z") || b[4] != '-' || b[7] != '-' || b[10]|0x20 != 't' || b[13] != ':' ||
		b[16] != ':' {
		return time.Time{}, false
	}
	year, ok1 := digits(b[0:4])
	month, ok2 := digits(b[5:7])
	day, ok3 := digits(b[8:10])
	hour, ok4 := digits(b[11:13])
	minute, ok5 := digits(b[14:16])
	sec, ok6 := digits(b[17:19])
	if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 || !ok6 || month < 1 || month > 12 || day < 1 ||
		day > daysIn(month, year) || hour > 23 || minute > 59 || sec > 60 {
		return time.Time{}, false
	}
	rest := b[19:]
	nsec := 0
	if len(rest) > 0 && rest[0] == '.' {
		i := 1
		for i < len(rest) && isDigit(rest[i]) {
			i++
		}
		if i == 1 {
			return time.Time{}, false
		}
		// Digits past nanoseconds are dropped, as time.Parse drops them.
		frac, _ := digits(rest[1:min(i, 10)])
		for k := min(i, 10) - 1; k < 9; k++ {
			frac *= 10
		}
		nsec = frac
		rest = rest[i:]
	}
	offset := 0
	switch {
	case len(rest) == 1 && rest[0]|0x20 == 'z':
	case len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':':
		oh, ok1 := digits(rest[1:3])
		om, ok2 := digits(rest[4:6])
		if !ok1 || !ok2 || oh > 23 || om > 59 {
			return time.Time{}, false
		}
		offset = (oh*60 + om) * 60
		if rest[0] == '-' {
			offset = -offset
		}
	default:
		return time.Time{}, false
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC)
	return InYears(t.Add(-time.Duration(offset) * time.Second))
}

// InYears returns t and whether it falls in the years 0001 to 9999 in UTC. RFC 3339 writes no
// year before 0000 or after 9999, so a time beyond them ("0000-01-01T00:00:00+01:00", in the year
// -1 in UTC, or epoch milliseconds past 9999) could be neither produced to Kafka nor
// dead-lettered, and the intake would answer 503 at every retry of its sender; and a protobuf
// Timestamp, which grpcsink sends, starts at 0001, which leaves out the year 0000 as well.
func InYears(t time.Time) (time.Time, bool) {
	if y := t.Year(); y < 1 || y > 9999 {
		return time.Time{}, false
	}
	return t, true
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func digits(b []byte) (int, bool) {
	n := 0
	for _, c := range b {
		if !isDigit(c) {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}
