package eventbridge

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/fanbridge/fanbridge/internal/jsonstr"
	"github.com/fanbridge/fanbridge/internal/rfc3339"
)

// Bounds on the strings a decoder copies into an Event. They keep hostile envelopes from turning
// ids and metadata into megabyte-sized Kafka headers or deduplication keys.
const (
	// maxAttrLen bounds ID, Type, Topic, Source and every metadata value, in bytes.
	maxAttrLen = 1024
	// maxMetadata bounds how many entries a webhook's metadata or CloudEvents extensions add.
	maxMetadata = 64
)

// object is a view of one JSON object in a scanned body: the members whose parent is parent.
type object struct {
	s      *scanner
	parent int32
}

func (s *scanner) root() object { return object{s: s, parent: -1} }

func (s *scanner) val(m *member) []byte    { return s.buf[m.valStart:m.valEnd] }
func (s *scanner) rawKey(m *member) []byte { return s.buf[m.keyStart:m.keyEnd] }

// key returns the member's name, unescaped when the body escaped it, so that "i\u0064" is "id"
// exactly as encoding/json sees it.
func (s *scanner) key(m *member) []byte {
	k := s.rawKey(m)
	if m.keyEscaped {
		k = unescape(k)
	}
	return k
}

// child returns the object value of member idx. Members recorded during the scan are used as they
// are; otherwise the value (already validated) is scanned on its own, by a scanner released
// together with s.
func (s *scanner) child(idx int32) object {
	m := &s.members[idx]
	if m.children {
		return object{s: s, parent: idx}
	}
	sub := getScanner()
	s.subs = append(s.subs, sub)
	// The value was validated as part of the whole body, so this cannot fail.
	_ = sub.scan(s.buf[m.valStart:m.valEnd])
	return sub.root()
}

// fields locates the named members of o in one pass. slot(name) returns the index in idx for a
// member name, or -1 to ignore the member. A name seen twice is an error: the two copies could be
// read differently by different parsers (a signature proxy and this decoder), so neither wins.
// Members whose value is JSON null count as absent, as encoding/json treats them.
//
// With names, the names slot knows, o is an object whose shape is ours to define (an envelope, a
// CloudEvent, a webhook, a notification), and a key that differs only in case from one of them
// ("Source", "ſource") is refused too: encoding/json's struct decoding matches keys ignoring case
// (Unicode folding) and keeps the last, so a consumer decoding Raw so would read it where this
// decoder read the exact key, or nothing. Without names (a generic event's detail, see
// decodeDetail; metadata, an eventBody: the sender's data), such keys are the sender's business.
func (o object) fields(where string, idx []int32, slot func(name []byte) int, names []string) error {
	for i := range idx {
		idx[i] = -1
	}
	ms := o.s.members
	for i := range ms {
		m := &ms[i]
		if m.parent != o.parent {
			continue
		}
		k := o.s.key(m)
		j := slot(k)
		if j < 0 {
			if err := caseVariant(where, k, names); err != nil {
				return err
			}
			continue
		}
		if idx[j] >= 0 {
			return fmt.Errorf("%w: duplicate key %s%s", ErrInvalidField, where, slotName(k))
		}
		idx[j] = int32(i)
	}
	for i, j := range idx {
		if j >= 0 && isNull(o.s.val(&ms[j])) {
			idx[i] = -1
		}
	}
	return nil
}

// spellings reports, for each of names (at most four), whether o has a member with that key
// (exact), whatever its value, and whether it has one whose key differs from it and equals it
// under Unicode case folding, as encoding/json matches keys (variant).
func (o object) spellings(names []string) (exact, variant [4]bool) {
	ms := o.s.members
	for i := range ms {
		if ms[i].parent != o.parent {
			continue
		}
		k := o.s.key(&ms[i])
		if j := slices.Index(names, string(k)); j >= 0 {
			exact[j] = true
		} else if n, ok := foldsToOneOf(k, names); ok {
			variant[slices.Index(names, n)] = true
		}
	}
	return exact, variant
}

// caseVariant refuses k, a key that is none of names, when it equals one of them under Unicode
// case folding.
func caseVariant(where string, k []byte, names []string) error {
	if len(names) == 0 {
		return nil
	}
	if n, ok := foldsToOneOf(k, names); ok {
		return &caseVariantError{fmt.Sprintf("%s: duplicate key %s%q, written in another case", ErrInvalidField, where, n)}
	}
	return nil
}

// caseVariantError is the error of caseVariant, which wraps ErrInvalidField.
type caseVariantError struct{ msg string }

func (e *caseVariantError) Error() string { return e.msg }
func (e *caseVariantError) Unwrap() error { return ErrInvalidField }

// foldsToOneOf returns the name of names, all ASCII, that k equals under Unicode case folding,
// as encoding/json matches a key to a struct field. An ASCII k folds only by the case of its
// letters, which keeps its length and every byte but for the bit 0x20 of a letter: most keys are
// told apart by their length and first byte before folding.
func foldsToOneOf(k []byte, names []string) (string, bool) {
	ascii := isASCII(k)
	for _, n := range names {
		if ascii {
			if len(k) != len(n) || len(k) == 0 || k[0]|0x20 != n[0]|0x20 {
				continue
			}
			same := true
			for i := range k {
				if lower(k[i]) != lower(n[i]) {
					same = false
					break
				}
			}
			if same {
				return n, true
			}
			continue
		}
		if strings.EqualFold(string(k), n) {
			return n, true
		}
	}
	return "", false
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// slotName renders a key for an error message: only keys the decoder asked for reach here, so this
// never echoes arbitrary body content, but bound it anyway.
func slotName(k []byte) string {
	if len(k) > 32 {
		k = k[:32]
	}
	return fmt.Sprintf("%q", k)
}

func isNull(v []byte) bool { return len(v) == 4 && v[0] == 'n' }

// kindName names a JSON value's type for error messages.
func kindName(v []byte) string {
	switch v[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	default:
		return "a number"
	}
}

func wrongType(field, want string, v []byte) error {
	return fmt.Errorf("%w: %s must be %s, not %s", ErrInvalidField, field, want, kindName(v))
}

func missing(field string) error {
	return fmt.Errorf("%w: %s is missing", ErrInvalidField, field)
}

func empty(field string) error {
	return fmt.Errorf("%w: %s is empty", ErrInvalidField, field)
}

// stringValue returns the contents of a JSON string value, unescaped when needed, checked for the
// bounds every attribute string shares: at most maxAttrLen bytes, no control characters.
func stringValue(field string, v []byte) ([]byte, error) {
	if v[0] != '"' {
		return nil, wrongType(field, "a string", v)
	}
	raw := v[1 : len(v)-1]
	if bytes.IndexByte(raw, '\\') >= 0 {
		// A lone surrogate escape would decode to U+FFFD: "\uDEAD" and "\uDEAE" would be one id,
		// and the second event a duplicate of the first.
		if jsonstr.LoneSurrogate(raw) {
			return nil, fmt.Errorf("%w: %s holds a \\u escape of an unpaired UTF-16 surrogate", ErrInvalidField, field)
		}
		raw = unescape(raw)
	}
	if len(raw) > maxAttrLen {
		return nil, fmt.Errorf("%w: %s is longer than %d bytes", ErrInvalidField, field, maxAttrLen)
	}
	if what := unsafeText(raw); what != "" {
		return nil, fmt.Errorf("%w: %s holds a %s", ErrInvalidField, field, what)
	}
	return raw, nil
}

// unsafeText names what in b may not reach an event's strings, or returns "": a control character
// (C0, DEL, or C1: U+0080 to U+009F, 0xC2 0x80 to 0xC2 0x9F in UTF-8, which terminals read as
// escape sequences too) or a bidirectional formatting character.
func unsafeText(b []byte) string {
	for i, c := range b {
		if c-0x20 < 0x7f-0x20 {
			continue // printable ASCII, the common case, in one comparison
		}
		if c < 0x80 || c == 0xc2 && i+1 < len(b) && b[i+1]&0xe0 == 0x80 {
			return "control character"
		}
		if (c == 0xe2 || c == 0xd8) && bidiControl(b[i:]) {
			return "bidirectional formatting character"
		}
	}
	return ""
}

// bidiControl reports whether b starts with the UTF-8 encoding of a character that reorders the
// text around it when shown (Unicode's Bidi_Control: U+061C, U+200E, U+200F, U+202A to U+202E
// and U+2066 to U+2069), which could make an id or a type read as another in a log or a
// terminal.
func bidiControl(b []byte) bool {
	if len(b) < 2 {
		return false
	}
	if b[0] == 0xd8 {
		return b[1] == 0x9c // U+061C
	}
	if len(b) < 3 || b[0] != 0xe2 {
		return false
	}
	switch b[1] {
	case 0x80:
		return b[2] == 0x8e || b[2] == 0x8f || b[2] >= 0xaa && b[2] <= 0xae
	case 0x81:
		return b[2] >= 0xa6 && b[2] <= 0xa9
	}
	return false
}

// requiredString is stringValue for a member that must be present and not empty.
func (s *scanner) requiredString(field string, idx int32) ([]byte, error) {
	if idx < 0 {
		return nil, missing(field)
	}
	b, err := stringValue(field, s.val(&s.members[idx]))
	if err == nil && len(b) == 0 {
		err = empty(field)
	}
	return b, err
}

// optionalString is stringValue for a member that may be absent (idx < 0 gives nil).
func (s *scanner) optionalString(field string, idx int32) ([]byte, error) {
	if idx < 0 {
		return nil, nil
	}
	return stringValue(field, s.val(&s.members[idx]))
}

// optionalTime parses an RFC 3339 string member; absent gives the zero time.
func (s *scanner) optionalTime(field string, idx int32) (time.Time, error) {
	b, err := s.optionalString(field, idx)
	if err != nil || b == nil {
		return time.Time{}, err
	}
	t, ok := parseTime(b)
	if !ok {
		return time.Time{}, fmt.Errorf("%w: %s is not an RFC 3339 timestamp of the years 0001 to 9999", ErrInvalidField, field)
	}
	return t, nil
}

// parseTime parses an RFC 3339 timestamp and returns it in UTC, as rfc3339.Parse does, which
// kafkasink.EventFromRecord also reads ce_time with. It takes two forms RFC 3339 allows and
// time.Parse refuses, a lower-case "t" or "z" and a leap second: refusing them would answer 400
// to a valid event, which senders do not retry.
func parseTime(b []byte) (time.Time, bool) { return rfc3339.Parse(b) }

// inYears returns t and whether it falls in the years 0001 to 9999 in UTC (see rfc3339.InYears).
func inYears(t time.Time) (time.Time, bool) { return rfc3339.InYears(t) }

// unescape decodes the backslash escapes of a JSON string's contents (without quotes), which the
// scanner has already validated.
func unescape(raw []byte) []byte {
	return jsonstr.AppendUnescaped(make([]byte, 0, len(raw)), raw)
}

// strtab gathers the strings one Event needs and makes them all with a single allocation.
type strtab struct {
	parts [][]byte
	all   string
	offs  []int
}

func (t *strtab) reset() {
	clear(t.parts) // drop references into the body
	t.parts = t.parts[:0]
	t.offs = t.offs[:0]
	t.all = ""
}

// add queues b and returns the handle to get it back after build; a nil or empty b gives -1.
func (t *strtab) add(b []byte) int {
	if len(b) == 0 {
		return -1
	}
	t.parts = append(t.parts, b)
	return len(t.parts) - 1
}

func (t *strtab) build() {
	n := 0
	for _, p := range t.parts {
		n += len(p)
	}
	var sb strings.Builder
	sb.Grow(n)
	off := 0
	for _, p := range t.parts {
		t.offs = append(t.offs, off)
		sb.Write(p)
		off += len(p)
	}
	t.offs = append(t.offs, off)
	t.all = sb.String()
}

func (t *strtab) get(h int) string {
	if h < 0 {
		return ""
	}
	return t.all[t.offs[h]:t.offs[h+1]]
}

// The keys each format's decoder reads by name in the objects whose shape is the format's (see
// fields): a key that differs from one of them only in case is refused.
var (
	envelopeKeys         = []string{"id", "detail-type", "source", "account", "region", "time", "detail"}
	notificationKeys     = []string{"topicName", "eventBody", "metadata", "timestamp"}
	correlationKeys      = []string{"CorrelationId"}
	webhookKeys          = []string{"event", "data", "metadata"}
	webhookAttributeKeys = []string{"id", "eventType", "timestamp", "source", "attributes"}
)
