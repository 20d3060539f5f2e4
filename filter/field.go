package filter

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"unsafe"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/internal/jsonstr"
)

// FieldRef names a value in the event body (Event.Data) by a dotted path, such as
// "propertyChanges.newValues". Its methods build Predicates that look the value up in the raw
// JSON bytes, without decoding the body.
//
// Paths follow event patterns: keys are separated by '.', and arrays on the way are looked
// through, so a predicate holds when any element satisfies it ("propertyChanges.newValues"
// reaches every new value of every property change). A backslash makes the next character
// literal, for keys that contain a dot ("a\.b" is the single key "a.b"). The empty path is the
// body itself. A missing field, a value of the wrong type or a body that is not JSON never
// matches and never panics.
type FieldRef struct {
	path []string
	src  string
}

// Field returns a reference to the value at path in the event body. Every string is a valid
// path.
func Field(path string) FieldRef {
	return FieldRef{path: parseFieldPath(path), src: path}
}

// String returns the path as given to Field.
func (f FieldRef) String() string { return f.src }

// parseFieldPath splits a dotted path into keys; '\' escapes the next character.
func parseFieldPath(s string) []string {
	if s == "" {
		return nil
	}
	var keys []string
	var cur strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
		case c == '.':
			keys = append(keys, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(c)
		}
	}
	return append(keys, cur.String())
}

// fieldPredicate is a FieldRef with a test for each value found at its path.
type fieldPredicate struct {
	f    FieldRef
	test func(kind valueKind, text []byte) bool
	desc string
}

// kindObject extends valueKind for Field lookups, which report objects too (for Exists).
const kindObject valueKind = 100

func (p *fieldPredicate) Match(e *fanbridge.Event) bool {
	if e == nil || len(e.Data) == 0 {
		return false
	}
	w := walkerPool.Get().(*fieldWalker)
	w.test, w.found = p.test, false
	_, _ = w.walk(e.Data, skipWS(e.Data, 0), p.f.path, 0)
	found := w.found
	w.test = nil
	walkerPool.Put(w)
	return found
}

var walkerPool = sync.Pool{New: func() any { return new(fieldWalker) }}

func (p *fieldPredicate) String() string { return "Field(" + strconv.Quote(p.f.src) + ")." + p.desc }

func (f FieldRef) predicate(desc string, test func(kind valueKind, text []byte) bool) Predicate {
	return &fieldPredicate{f: f, test: test, desc: desc}
}

// Exists matches when the path holds at least one value of any type, null and objects
// included. An empty array holds none.
func (f FieldRef) Exists() Predicate {
	return f.predicate("Exists()", func(valueKind, []byte) bool { return true })
}

// Eq matches when a value at the path equals v: a string equals a JSON string with the same
// text, a number (any Go integer or float type, or json.Number) equals a JSON number of the same
// value (5 equals 5.0), a bool equals true or false, and nil equals null. Eq panics on any other
// type of v, as a mistake in the code that builds the filter.
func (f FieldRef) Eq(v any) Predicate {
	t := eqTest("Eq", v)
	return f.predicate("Eq("+fmtArg(v)+")", t)
}

// In matches when a value at the path equals any of vs, as Eq decides.
func (f FieldRef) In(vs ...any) Predicate {
	tests := make([]func(valueKind, []byte) bool, len(vs))
	args := make([]string, len(vs))
	for i, v := range vs {
		tests[i] = eqTest("In", v)
		args[i] = fmtArg(v)
	}
	return f.predicate("In("+strings.Join(args, ", ")+")", func(k valueKind, text []byte) bool {
		for _, t := range tests {
			if t(k, text) {
				return true
			}
		}
		return false
	})
}

// Gt matches when a value at the path is a JSON number greater than n.
func (f FieldRef) Gt(n float64) Predicate {
	return f.numeric("Gt", n, func(x float64) bool { return x > n })
}

// Gte matches when a value at the path is a JSON number greater than or equal to n.
func (f FieldRef) Gte(n float64) Predicate {
	return f.numeric("Gte", n, func(x float64) bool { return x >= n })
}

// Lt matches when a value at the path is a JSON number less than n.
func (f FieldRef) Lt(n float64) Predicate {
	return f.numeric("Lt", n, func(x float64) bool { return x < n })
}

// Lte matches when a value at the path is a JSON number less than or equal to n.
func (f FieldRef) Lte(n float64) Predicate {
	return f.numeric("Lte", n, func(x float64) bool { return x <= n })
}

// Between matches when a value at the path is a JSON number in [lo, hi].
func (f FieldRef) Between(lo, hi float64) Predicate {
	return f.predicate(fmt.Sprintf("Between(%v, %v)", lo, hi), func(k valueKind, text []byte) bool {
		x, ok := numberOf(k, text)
		return ok && lo <= x && x <= hi
	})
}

func (f FieldRef) numeric(name string, n float64, test func(float64) bool) Predicate {
	return f.predicate(name+"("+strconv.FormatFloat(n, 'g', -1, 64)+")", func(k valueKind, text []byte) bool {
		x, ok := numberOf(k, text)
		return ok && test(x)
	})
}

// Prefix matches when a value at the path is a string starting with s.
func (f FieldRef) Prefix(s string) Predicate {
	return f.predicate("Prefix("+strconv.Quote(s)+")", func(k valueKind, text []byte) bool {
		return k == kindString && bytes.HasPrefix(text, []byte(s))
	})
}

// Suffix matches when a value at the path is a string ending with s.
func (f FieldRef) Suffix(s string) Predicate {
	return f.predicate("Suffix("+strconv.Quote(s)+")", func(k valueKind, text []byte) bool {
		return k == kindString && bytes.HasSuffix(text, []byte(s))
	})
}

// Contains matches when a value at the path is a string containing s.
func (f FieldRef) Contains(s string) Predicate {
	return f.predicate("Contains("+strconv.Quote(s)+")", func(k valueKind, text []byte) bool {
		return k == kindString && bytes.Contains(text, []byte(s))
	})
}

// EqualFold matches when a value at the path is a string equal to s ignoring case (Unicode simple
// case folding, as strings.EqualFold).
func (f FieldRef) EqualFold(s string) Predicate {
	return f.predicate("EqualFold("+strconv.Quote(s)+")", func(k valueKind, text []byte) bool {
		return k == kindString && strings.EqualFold(unsafeString(text), s)
	})
}

// Matches matches when a value at the path is a string that re matches.
func (f FieldRef) Matches(re *regexp.Regexp) Predicate {
	if re == nil {
		panic("filter: Field.Matches given a nil *regexp.Regexp")
	}
	return f.predicate("Matches("+strconv.Quote(re.String())+")", func(k valueKind, text []byte) bool {
		return k == kindString && re.Match(text)
	})
}

func fmtArg(v any) string {
	if s, ok := v.(string); ok {
		return strconv.Quote(s)
	}
	return fmt.Sprint(v)
}

// eqTest builds the equality test of Eq and In for one Go value.
func eqTest(fn string, v any) func(valueKind, []byte) bool {
	var n float64
	switch x := v.(type) {
	case nil:
		return func(k valueKind, _ []byte) bool { return k == kindNull }
	case string:
		return func(k valueKind, text []byte) bool { return k == kindString && string(text) == x }
	case bool:
		want := kindFalse
		if x {
			want = kindTrue
		}
		return func(k valueKind, _ []byte) bool { return k == want }
	case int:
		n = float64(x)
	case int8:
		n = float64(x)
	case int16:
		n = float64(x)
	case int32:
		n = float64(x)
	case int64:
		n = float64(x)
	case uint:
		n = float64(x)
	case uint8:
		n = float64(x)
	case uint16:
		n = float64(x)
	case uint32:
		n = float64(x)
	case uint64:
		n = float64(x)
	case float32:
		n = float64(x)
	case float64:
		n = x
	case json.Number:
		// A JSON number, and only one: "Inf", "NaN" or "0x1p4" are not. One past float64's
		// range reads as ±Inf, as the same number in an event does.
		f, err := strconv.ParseFloat(string(x), 64)
		if !isJSONNumber(string(x)) || err != nil && !errors.Is(err, strconv.ErrRange) {
			panic(fmt.Sprintf("filter: Field.%s given an invalid json.Number %q", fn, string(x)))
		}
		n = f
	default:
		panic(fmt.Sprintf("filter: Field.%s cannot compare with a %T; use a string, number, bool or nil", fn, v))
	}
	if math.IsNaN(n) {
		return func(valueKind, []byte) bool { return false }
	}
	return func(k valueKind, text []byte) bool {
		x, ok := numberOf(k, text)
		return ok && x == n
	}
}

func numberOf(k valueKind, text []byte) (float64, bool) {
	if k != kindNumber {
		return 0, false
	}
	// JSON numbers out of float64 range parse as ±Inf, which still compare sensibly.
	x, _ := strconv.ParseFloat(unsafeString(text), 64)
	return x, true
}

// unsafeString views b as a string for the duration of a call that keeps no reference to it.
func unsafeString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// fieldWalker finds the values at a path in raw JSON and tests each until one passes.
type fieldWalker struct {
	test  func(valueKind, []byte) bool
	found bool
	buf   [64]byte
}

// walk looks through the value at b[i] for path; it returns the offset after the value. It stops
// early, leaving the rest unread, once a value passes.
func (w *fieldWalker) walk(b []byte, i int, path []string, depth int) (int, error) {
	i = skipWS(b, i)
	if i >= len(b) {
		return i, syntaxErr(i, "unexpected end")
	}
	if depth > maxEventDepth {
		return i, syntaxErr(i, "nesting too deep")
	}
	switch c := b[i]; c {
	case '[':
		i = skipWS(b, i+1)
		if i < len(b) && b[i] == ']' {
			return i + 1, nil
		}
		for {
			var err error
			if i, err = w.walk(b, i, path, depth+1); err != nil || w.found {
				return i, err
			}
			i = skipWS(b, i)
			if i < len(b) && b[i] == ',' {
				i++
				continue
			}
			if i < len(b) && b[i] == ']' {
				return i + 1, nil
			}
			return i, syntaxErr(i, "expected ',' or ']'")
		}
	case '{':
		if len(path) == 0 {
			end, err := skipValue(b, i, depth)
			if err == nil && w.test(kindObject, nil) {
				w.found = true
			}
			return end, err
		}
		i = skipWS(b, i+1)
		if i < len(b) && b[i] == '}' {
			return i + 1, nil
		}
		for {
			kEnd, esc, err := scanString(b, i)
			if err != nil {
				return kEnd, err
			}
			key := b[i+1 : kEnd-1]
			if esc {
				key = jsonstr.AppendUnescaped(w.buf[:0], key)
			}
			hit := string(key) == path[0]
			i = skipWS(b, kEnd)
			if i >= len(b) || b[i] != ':' {
				return i, syntaxErr(i, "expected ':'")
			}
			if hit {
				i, err = w.walk(b, i+1, path[1:], depth+1)
			} else {
				i, err = skipValue(b, i+1, depth+1)
			}
			if err != nil || w.found {
				return i, err
			}
			i = skipWS(b, i)
			if i < len(b) && b[i] == ',' {
				i = skipWS(b, i+1)
				continue
			}
			if i < len(b) && b[i] == '}' {
				return i + 1, nil
			}
			return i, syntaxErr(i, "expected ',' or '}'")
		}
	}
	// A scalar: it is the value sought only when the path is used up.
	end, err := skipValue(b, i, depth)
	if err != nil || len(path) > 0 {
		return end, err
	}
	var kind valueKind
	text := b[i:end]
	switch b[i] {
	case '"':
		kind = kindString
		text = b[i+1 : end-1]
		if bytes.IndexByte(text, '\\') >= 0 {
			text = jsonstr.AppendUnescaped(w.buf[:0], text)
		}
	case 't':
		kind = kindTrue
	case 'f':
		kind = kindFalse
	case 'n':
		kind = kindNull
	default:
		kind = kindNumber
	}
	if w.test(kind, text) {
		w.found = true
	}
	return end, nil
}

// attrPredicate tests one string attribute of the event.
type attrPredicate struct {
	desc string
	get  func(e *fanbridge.Event) string
	want []string
	tmpl bool // want entries are topic templates
}

func (p *attrPredicate) Match(e *fanbridge.Event) bool {
	if e == nil {
		return false
	}
	got := p.get(e)
	for _, w := range p.want {
		if got == w || (p.tmpl && topicMatches(w, got)) {
			return true
		}
	}
	return false
}

func (p *attrPredicate) String() string {
	q := make([]string, len(p.want))
	for i, w := range p.want {
		q[i] = strconv.Quote(w)
	}
	return p.desc + "(" + strings.Join(q, ", ") + ")"
}

// topicMatches reports whether topic fits template: the same dot-separated segments, where a
// template segment written in braces ("{id}") stands for any one segment.
func topicMatches(template, topic string) bool {
	for {
		ts, trest, tmore := strings.Cut(template, ".")
		s, rest, more := strings.Cut(topic, ".")
		if ts != s && !(len(ts) >= 2 && ts[0] == '{' && ts[len(ts)-1] == '}' && s != "") {
			return false
		}
		if !tmore || !more {
			return tmore == more
		}
		template, topic = trest, rest
	}
}

// Type matches events whose Type is one of types. A type may be written as a topic template:
// a segment in braces matches any one segment, so "v2.users.{id}.presence" matches both the
// EventBridge detail-type "v2.users.{id}.presence" and a concrete "v2.users.8f2c.presence".
func Type(types ...string) Predicate {
	return &attrPredicate{desc: "Type", get: func(e *fanbridge.Event) string { return e.Type }, want: types, tmpl: true}
}

// Topic matches events whose Topic (the concrete topic, such as
// "v2.users.8f2c.presence") is one of topics, which may be templates as for Type.
func Topic(topics ...string) Predicate {
	return &attrPredicate{desc: "Topic", get: func(e *fanbridge.Event) string { return e.Topic }, want: topics, tmpl: true}
}

// Source matches events whose Source is exactly one of sources.
func Source(sources ...string) Predicate {
	return &attrPredicate{desc: "Source", get: func(e *fanbridge.Event) string { return e.Source }, want: sources}
}

// SourcePrefix matches events whose Source starts with prefix, such as
// "aws.partner/genesys.com/cloud/<org>/".
func SourcePrefix(prefix string) Predicate {
	return PredicateFunc(func(e *fanbridge.Event) bool {
		return e != nil && strings.HasPrefix(e.Source, prefix)
	})
}

// Meta matches events whose metadata value for key is exactly one of values.
func Meta(key string, values ...string) Predicate {
	return &attrPredicate{desc: "Meta[" + strconv.Quote(key) + "]", get: func(e *fanbridge.Event) string { return e.Meta(key) }, want: values}
}

// isJSONNumber reports whether s is one JSON number.
func isJSONNumber(s string) bool {
	return s != "" && (s[0] == '-' || '0' <= s[0] && s[0] <= '9') && json.Valid([]byte(s))
}
