package dlq

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/retry"
)

// JSONVersion is the version of the entry JSON shape that AppendJSON writes (the "v" member) and
// the newest that UnmarshalJSON reads. The shape is described in the package documentation.
const JSONVersion = 1

// MarshalJSON encodes e in the versioned JSON shape described in the package documentation. It is
// AppendJSON with a fresh buffer.
func (e Entry) MarshalJSON() ([]byte, error) {
	return e.AppendJSON(make([]byte, 0, 512+len(e.Event.Raw)+len(e.Event.Data)+len(e.Error)))
}

// AppendJSON appends e, encoded in the versioned JSON shape described in the package
// documentation, to dst, on one line, and returns the extended buffer. It fails only for a time
// outside the years 0 to 9999, which the shape cannot hold; Prepare rejects such entries first.
//
// Raw and Data are kept byte for byte: embedded as JSON when they are compact JSON that
// encoding/json would not rewrite, as a JSON string when they are other valid UTF-8, and as
// base64 otherwise. Other text that is not valid UTF-8 has each bad byte replaced by U+FFFD.
func (e Entry) AppendJSON(dst []byte) ([]byte, error) {
	for _, t := range [...]time.Time{e.FirstAttempt, e.LastAttempt, e.Event.Time} {
		if !t.IsZero() && !inRange(t) {
			return dst, fmt.Errorf("%w: time %v is outside the years 0 to 9999", ErrInvalidEntry, t)
		}
	}
	dst = append(dst, `{"v":`...)
	dst = strconv.AppendInt(dst, JSONVersion, 10)
	dst = appendStringField(dst, "id", e.ID)
	dst = appendStringField(dst, "sink", e.Sink)
	dst = appendStringField(dst, "route", e.Route)
	dst = appendStringField(dst, "class", string(e.Class))
	dst = appendStringField(dst, "error", e.Error)
	if e.Attempts != 0 {
		dst = append(dst, `,"attempts":`...)
		dst = strconv.AppendInt(dst, int64(e.Attempts), 10)
	}
	dst = appendTimeField(dst, "first_attempt", e.FirstAttempt)
	dst = appendTimeField(dst, "last_attempt", e.LastAttempt)
	dst = appendStringField(dst, "condition", string(e.Condition))
	dst = appendStringField(dst, "trace_id", e.TraceID)

	ev := &e.Event
	dst = append(dst, `,"event":{"id":`...)
	dst = appendString(dst, ev.ID)
	dst = appendStringField(dst, "type", ev.Type)
	dst = appendStringField(dst, "topic", ev.Topic)
	dst = appendStringField(dst, "source", ev.Source)
	dst = appendTimeField(dst, "time", ev.Time)
	if ev.Metadata != nil {
		dst = append(dst, `,"metadata":{`...)
		for i, k := range slices.Sorted(maps.Keys(ev.Metadata)) {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendString(dst, k)
			dst = append(dst, ':')
			dst = appendString(dst, ev.Metadata[k])
		}
		dst = append(dst, '}')
	}
	dst = appendBytesField(dst, "data", ev.Data)
	dst = appendBytesField(dst, "raw", ev.Raw)
	return append(dst, "}}"...), nil
}

func appendStringField(dst []byte, name, v string) []byte {
	if v == "" {
		return dst
	}
	dst = append(dst, ',', '"')
	dst = append(dst, name...)
	dst = append(dst, '"', ':')
	return appendString(dst, v)
}

func appendTimeField(dst []byte, name string, t time.Time) []byte {
	if t.IsZero() {
		return dst
	}
	dst = append(dst, ',', '"')
	dst = append(dst, name...)
	dst = append(dst, '"', ':', '"')
	dst = t.UTC().AppendFormat(dst, time.RFC3339Nano)
	return append(dst, '"')
}

// appendBytesField writes b under name (embedded JSON), name_text (a string) or name_b64, and
// nothing for a nil b: the three forms keep every byte while staying readable when they can.
func appendBytesField(dst []byte, name string, b []byte) []byte {
	if b == nil {
		return dst
	}
	dst = append(dst, ',', '"')
	dst = append(dst, name...)
	switch {
	case embeddable(b):
		dst = append(dst, '"', ':')
		return append(dst, b...)
	case utf8.Valid(b):
		dst = append(dst, `_text":`...)
		// The string view is only read, never kept, so it needs no copy.
		return appendString(dst, unsafe.String(unsafe.SliceData(b), len(b)))
	default:
		dst = append(dst, `_b64":"`...)
		dst = base64.StdEncoding.AppendEncode(dst, b)
		return append(dst, '"')
	}
}

// embeddable reports whether b can be embedded in an entry's JSON as a value and come back byte for
// byte, even through encoding/json, which compacts embedded values and escapes <, >, &, U+2028 and
// U+2029: b must be valid UTF-8 JSON with no whitespace outside strings and none of those
// characters. Nor may it hold a terminal control (see terminalControl), which an entry's JSON
// never holds raw; such bytes go in a JSON string, where they are escaped. Most EventBridge
// deliveries are such compact JSON.
func embeddable(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	inString, escaped := false, false
	for i := 0; i < len(b); i++ {
		c := b[i]
		// 0xC2 and 0xE2 only ever lead a UTF-8 sequence, so the checks below cannot match the
		// middle of another character; invalid UTF-8 is refused at the end.
		switch {
		case c == '<' || c == '>' || c == '&' || c == 0x7F:
			return false
		case c == 0xC2 && i+1 < len(b) && b[i+1] <= 0x9F: // U+0080 to U+009F
			return false
		case c == 0xE2 && i+2 < len(b) && b[i+1] == 0x80 && b[i+2] >= 0xA8 && b[i+2] <= 0xAE: // U+2028 to U+202E
			return false
		case c == 0xE2 && i+2 < len(b) && b[i+1] == 0x81 && b[i+2] >= 0xA6 && b[i+2] <= 0xA9: // U+2066 to U+2069
			return false
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			return false
		}
	}
	return utf8.Valid(b) && json.Valid(b)
}

const hexDigits = "0123456789abcdef"

// terminalControl reports whether r is a character a terminal may act on rather than show: DEL,
// the C1 controls (U+009B starts an escape sequence on some terminals) and the bidirectional
// embeddings, overrides and isolates, which reorder what follows them. An entry's JSON holds
// none of them raw (nor C0 controls, which JSON escapes anyway), so it is safe to print.
func terminalControl(r rune) bool {
	return r == 0x7F || (r >= 0x80 && r <= 0x9F) || (r >= 0x202A && r <= 0x202E) || (r >= 0x2066 && r <= 0x2069)
}

// appendString appends s as a JSON string. Control characters, quotes and backslashes are escaped,
// U+2028 and U+2029 too (so that a line is also safe JavaScript), and so are the terminal
// controls; each byte of invalid UTF-8 becomes \ufffd, as encoding/json does.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != 0x7F {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' || terminalControl(r) {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', hexDigits[r>>12], hexDigits[r>>8&0xF], hexDigits[r>>4&0xF], hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// entryJSON and eventJSON mirror the JSON shape for decoding. Unknown members are ignored, so
// that a later version 1 writer may add members an older reader skips.
type entryJSON struct {
	V            *int      `json:"v"`
	ID           string    `json:"id"`
	Sink         string    `json:"sink"`
	Route        string    `json:"route"`
	Class        string    `json:"class"`
	Error        string    `json:"error"`
	Attempts     int       `json:"attempts"`
	FirstAttempt string    `json:"first_attempt"`
	LastAttempt  string    `json:"last_attempt"`
	Condition    string    `json:"condition"`
	TraceID      string    `json:"trace_id"`
	Event        eventJSON `json:"event"`
}

type eventJSON struct {
	ID       string            `json:"id"`
	Type     string            `json:"type"`
	Topic    string            `json:"topic"`
	Source   string            `json:"source"`
	Time     string            `json:"time"`
	Metadata map[string]string `json:"metadata"`
	Data     json.RawMessage   `json:"data"`
	DataText *string           `json:"data_text"`
	DataB64  *string           `json:"data_b64"`
	Raw      json.RawMessage   `json:"raw"`
	RawText  *string           `json:"raw_text"`
	RawB64   *string           `json:"raw_b64"`
}

// UnmarshalJSON decodes an entry in the JSON shape described in the package documentation. It
// returns an error wrapping ErrUnknownVersion for a newer version and ErrMalformed for anything
// else it cannot read; on error e is left unchanged.
func (e *Entry) UnmarshalJSON(b []byte) error {
	var j entryJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	switch {
	case j.V == nil:
		return fmt.Errorf("%w: no version member", ErrMalformed)
	case *j.V > JSONVersion:
		return fmt.Errorf("%w: %d (this reader knows up to %d)", ErrUnknownVersion, *j.V, JSONVersion)
	case *j.V < 1:
		return fmt.Errorf("%w: version %d", ErrMalformed, *j.V)
	}
	out := Entry{
		ID:        j.ID,
		Sink:      j.Sink,
		Route:     j.Route,
		Class:     retry.Class(j.Class),
		Error:     j.Error,
		Attempts:  j.Attempts,
		Condition: Condition(j.Condition),
		TraceID:   j.TraceID,
		Event: fanbridge.Event{
			ID:       j.Event.ID,
			Type:     j.Event.Type,
			Topic:    j.Event.Topic,
			Source:   j.Event.Source,
			Metadata: j.Event.Metadata,
		},
	}
	var err error
	if out.FirstAttempt, err = parseTime("first_attempt", j.FirstAttempt); err != nil {
		return err
	}
	if out.LastAttempt, err = parseTime("last_attempt", j.LastAttempt); err != nil {
		return err
	}
	if out.Event.Time, err = parseTime("event.time", j.Event.Time); err != nil {
		return err
	}
	if out.Event.Data, err = decodeBytes("data", j.Event.Data, j.Event.DataText, j.Event.DataB64); err != nil {
		return err
	}
	if out.Event.Raw, err = decodeBytes("raw", j.Event.Raw, j.Event.RawText, j.Event.RawB64); err != nil {
		return err
	}
	*e = out
	return nil
}

func parseTime(name, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: %s: %v", ErrMalformed, name, err)
	}
	// A writer other than this package may give an offset; the instant is what is kept.
	return t.UTC(), nil
}

func decodeBytes(name string, embedded json.RawMessage, text, b64 *string) ([]byte, error) {
	forms := 0
	for _, present := range [...]bool{embedded != nil, text != nil, b64 != nil} {
		if present {
			forms++
		}
	}
	switch {
	case forms > 1:
		return nil, fmt.Errorf("%w: event.%s appears in more than one form", ErrMalformed, name)
	case embedded != nil:
		return []byte(embedded), nil
	case text != nil:
		return []byte(*text), nil
	case b64 != nil:
		b, err := base64.StdEncoding.DecodeString(*b64)
		if err != nil {
			return nil, fmt.Errorf("%w: event.%s_b64: %v", ErrMalformed, name, err)
		}
		return b, nil
	}
	return nil, nil
}
