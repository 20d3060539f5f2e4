package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/fanbridge/fanbridge/filter"
)

// decoder walks the YAML node tree into a Config by reflection, so that every problem is reported
// with the key path where it sits (yaml.v3 itself reports line numbers only), unknown keys are
// refused, and ${ENV} expansion applies to scalar values after parsing, where it cannot add
// structure.
type decoder struct {
	lookup  func(string) (string, bool)
	errs    *Errors
	fromEnv envValues // key path -> what ${ENV} expansion put there
	secret  bool      // decoding a setting tagged config:"secret"
	// left is how many more nodes the decoder may visit, aliases followed (see spend): yaml.v3
	// does not bound the expansion of aliases in the node tree it returns, and each of a few
	// aliases that repeat another multiplies the work, so a small file could exhaust memory.
	left, limit int
	spent       bool // the budget ran out and that was reported
	// patterns holds the JSON of each pattern node already written out, for routes that share
	// a pattern through an alias: it is written, and counted against the budget, once.
	patterns map[*yaml.Node][]byte
	// merging holds the mappings whose merge keys are being carried out, to refuse one merged
	// into itself; mergedOf, the keys of each mapping merged into another so far (see pairs).
	merging  map[*yaml.Node]bool
	mergedOf map[*yaml.Node]merged
}

// newDecoder returns a decoder for the tree under root.
func newDecoder(root *yaml.Node, lookup func(string) (string, bool), errs *Errors) *decoder {
	limit := nodeBudget(root)
	return &decoder{lookup: lookup, errs: errs, fromEnv: envValues{}, left: limit, limit: limit}
}

// Budget of nodes a decoder visits: what the file holds, aliases not followed, times
// aliasGrowth, and at least minNodeBudget. Repeating a sink's or an intake's settings through
// aliases stays far inside it.
const (
	aliasGrowth   = 16
	minNodeBudget = 100_000
)

// nodeBudget is the number of nodes a decoder may visit for the tree under n.
func nodeBudget(n *yaml.Node) int {
	count := 0
	var walk func(*yaml.Node)
	walk = func(n *yaml.Node) {
		count++
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(n)
	return max(count*aliasGrowth, minNodeBudget)
}

// spend takes one node from the budget, and reports (once) and returns false when none is left.
func (d *decoder) spend(path string, n *yaml.Node) bool {
	if d.left > 0 {
		d.left--
		return true
	}
	if !d.spent {
		d.spent = true
		d.fail(path, n, "the aliases of the file expand to more than %d values: write the repeated settings out, or repeat fewer of them", d.limit)
	}
	return false
}

var (
	durationType = reflect.TypeOf(Duration(0))
	sizeType     = reflect.TypeOf(Size(0))
	patternType  = reflect.TypeOf(Pattern{})
)

func (d *decoder) fail(path string, n *yaml.Node, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if n != nil && n.Line > 0 {
		msg += fmt.Sprintf(" (line %d)", n.Line)
	}
	d.errs.add(path, msg)
}

// scalar returns the expanded text of a scalar node and whether expansion changed it (then the
// text may be a secret and is never echoed in errors). It records the text and the values it took
// from the environment under path, for Errors to keep out of the messages about path.
func (d *decoder) scalar(path string, n *yaml.Node) (string, bool, bool) {
	if n.Kind != yaml.ScalarNode {
		d.fail(path, n, "want a single value, got %s", kindName(n))
		return "", false, false
	}
	out, changed, vals, defaulted, err := expand(n.Value, d.lookup)
	if err != nil {
		d.fail(path, n, "%v", err)
		return "", false, false
	}
	if d.secret && len(defaulted) > 0 {
		// A default is the file's own text: whoever reads the file knows it, and a variable
		// left unset by mistake would quietly make it a working key.
		d.fail(path, n, "a key, secret, token or password may not fall back to the default of ${%s:-...}: set %s, or write the value without ${}", defaulted[0], defaulted[0])
		return "", false, false
	}
	if changed {
		d.fromEnv.record(path, out, vals)
	}
	return out, changed, true
}

// key returns the text of the mapping key k at path, in a mapping whose keys are data (Basic's
// users, topic_by_type, an event pattern). ${...} expands in values only: a key holding a
// reference is refused, rather than taken as written, which would make the reference's text the
// key (a user named "${EB_USER}"). $${ stands for a literal ${, as in values.
func (d *decoder) key(path string, k *yaml.Node) (string, bool) {
	text, err := literalKey(k.Value)
	if err != nil {
		d.fail(path, k, "%v", err)
		return "", false
	}
	return text, true
}

// literalKey returns the key text s with each $${ read as a literal ${, and refuses a ${...}
// reference in it.
func literalKey(s string) (string, error) {
	if !strings.Contains(s, "${") {
		return s, nil
	}
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			return b.String(), nil
		}
		if i == 0 || s[i-1] != '$' {
			return "", errors.New("a key may not hold a ${...} reference: references expand in values only, so write the key out ($${ is a literal ${)")
		}
		b.WriteString(s[:i-1])
		b.WriteString("${")
		s = s[i+2:]
	}
}

// show quotes a value for an error message unless it came from the environment.
func show(text string, expanded bool) string {
	if expanded {
		return fromEnvText
	}
	if len(text) > 64 {
		text = text[:64] + "..."
	}
	return strconv.Quote(text)
}

// isNull reports whether n is null: written plain as nothing, ~ or null, or tagged !!null (which
// badTag holds to those same texts).
func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null" && (n.Style == 0 || n.Style&yaml.TaggedStyle != 0)
}

// readTags are the explicit YAML tags the decoder honours, by kind of node. It reads a value's
// text as its setting's type, so any other tag (!!binary, whose text is base64; !!timestamp; a
// tag of an application's own) would be ignored and the text taken as written: a token tagged
// !!binary would be its base64, not the bytes it encodes.
var readTags = map[yaml.Kind]map[string]bool{
	yaml.ScalarNode:   {"!!str": true, "!!int": true, "!!float": true, "!!bool": true, "!!null": true},
	yaml.MappingNode:  {"!!map": true},
	yaml.SequenceNode: {"!!seq": true},
}

// readTagsText names readTags' tags by kind of node, for errors.
var readTagsText = map[yaml.Kind]string{
	yaml.ScalarNode:   "!!str, !!int, !!float, !!bool and !!null",
	yaml.MappingNode:  "!!map",
	yaml.SequenceNode: "!!seq",
}

// nullTexts are the texts YAML reads as null when written plain.
var nullTexts = map[string]bool{"": true, "~": true, "null": true, "Null": true, "NULL": true}

// badTag reports, once it has reported it under path, that n carries an explicit YAML tag the
// decoder does not honour. Neither the tag nor the value is quoted: either may be a secret's text.
func (d *decoder) badTag(path string, n *yaml.Node) bool {
	if n.Style&yaml.TaggedStyle == 0 {
		return false
	}
	if !readTags[n.Kind][n.Tag] {
		what, ok := readTagsText[n.Kind]
		if !ok {
			what = "none"
		}
		d.fail(path, n, "has a YAML tag fanbridge does not read (it reads %s here): write the value without it", what)
		return true
	}
	if n.Tag == "!!null" && !nullTexts[n.Value] {
		d.fail(path, n, "is tagged !!null but holds a value: remove the tag or the value")
		return true
	}
	return false
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return "a single value"
	}
	return "something else"
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func mapKeyPath(path, key string) string {
	simple := key != ""
	for _, r := range key {
		if !(r == '_' || r == '-' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			simple = false
			break
		}
	}
	if simple {
		return join(path, key)
	}
	return path + "[" + strconv.Quote(key) + "]"
}

func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if !d.spend(path, n) || d.badTag(path, n) {
		return
	}
	if isNull(n) {
		d.decodeNull(n, v, path)
		return
	}
	t := v.Type()
	switch t {
	case durationType:
		text, exp, ok := d.scalar(path, n)
		if !ok {
			return
		}
		dur, err := parseDuration(text)
		if err != nil {
			d.fail(path, n, "want a duration such as 5s or 1m30s, got %s", show(text, exp))
			return
		}
		v.SetInt(int64(dur))
		return
	case sizeType:
		text, exp, ok := d.scalar(path, n)
		if !ok {
			return
		}
		sz, err := parseSize(text)
		if err != nil {
			d.fail(path, n, "want a size such as 262144, 256KiB or 64MiB, got %s", show(text, exp))
			return
		}
		v.SetInt(sz)
		return
	case patternType:
		d.decodePattern(n, v.Addr().Interface().(*Pattern), path)
		return
	}
	switch t.Kind() {
	case reflect.Pointer:
		p := reflect.New(t.Elem())
		d.decode(n, p.Elem(), path)
		v.Set(p)
	case reflect.Struct:
		d.decodeStruct(n, v, path)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.fail(path, n, "want a list, got %s", kindName(n))
			return
		}
		s := reflect.MakeSlice(t, len(n.Content), len(n.Content))
		for i, c := range n.Content {
			d.decode(c, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
		v.Set(s)
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			d.fail(path, n, "want a mapping, got %s", kindName(n))
			return
		}
		ps, ok := d.pairs(n, path)
		if !ok {
			return
		}
		m := reflect.MakeMapWithSize(t, len(ps))
		seen := map[string]bool{}
		for _, p := range ps {
			k, val := p.key, p.val
			if k.Kind != yaml.ScalarNode {
				d.fail(path, k, "keys must be single values")
				continue
			}
			kp := mapKeyPath(path, k.Value)
			if d.badTag(kp, k) {
				continue
			}
			if seen[k.Value] {
				d.fail(kp, k, "key given twice")
				continue
			}
			seen[k.Value] = true
			key, ok := d.key(kp, k)
			if !ok {
				continue
			}
			ev := reflect.New(t.Elem()).Elem()
			d.decode(val, ev, kp)
			m.SetMapIndex(reflect.ValueOf(key).Convert(t.Key()), ev)
		}
		v.Set(m)
	case reflect.String:
		if text, _, ok := d.scalar(path, n); ok {
			v.SetString(text)
		}
	case reflect.Bool:
		text, exp, ok := d.scalar(path, n)
		if !ok {
			return
		}
		switch text {
		case "true":
			v.SetBool(true)
		case "false":
			v.SetBool(false)
		default:
			d.fail(path, n, "want true or false, got %s", show(text, exp))
		}
	case reflect.Int, reflect.Int64, reflect.Int32:
		text, exp, ok := d.scalar(path, n)
		if !ok {
			return
		}
		i, err := strconv.ParseInt(strings.ReplaceAll(text, "_", ""), 10, 64)
		if err != nil {
			d.fail(path, n, "want a whole number, got %s", show(text, exp))
			return
		}
		// On a 32-bit platform an int holds less than the text may say; SetInt would keep the
		// low bits, and 2^32 would become 0, which reads as "the default".
		if v.OverflowInt(i) {
			d.fail(path, n, "want a whole number that fits in %d bits, got %s", t.Bits(), show(text, exp))
			return
		}
		v.SetInt(i)
	case reflect.Float64:
		text, exp, ok := d.scalar(path, n)
		if !ok {
			return
		}
		f, err := strconv.ParseFloat(text, 64)
		if err != nil {
			d.fail(path, n, "want a number, got %s", show(text, exp))
			return
		}
		v.SetFloat(f)
	default:
		d.fail(path, n, "cannot decode into %s", t)
	}
}

// decodeNull decodes an explicit null (a key with nothing after it, ~ or null). For most keys
// it is the same as leaving the key out. A key that turns a feature on by being there, as tls
// does, says it is there all the same: such a key with all its settings commented out must not
// quietly mean off, which for tls is plaintext with SASL passwords on the wire. So a null
// pointer-to-struct key becomes the struct with its defaults, refused by validation where those
// are not enough, and a null pattern is refused here.
func (d *decoder) decodeNull(n *yaml.Node, v reflect.Value, path string) {
	t := v.Type()
	if t.Kind() != reflect.Pointer || t.Elem().Kind() != reflect.Struct {
		return
	}
	if t.Elem() == patternType {
		d.fail(path, n, "want an event pattern, as a mapping or a JSON string, got nothing")
		return
	}
	v.Set(reflect.New(t.Elem()))
}

// fields lists the yaml keys of a struct type, flattening ",inline" members.
func fields(t reflect.Type) map[string][]int {
	out := map[string][]int{}
	var walk func(t reflect.Type, prefix []int)
	walk = func(t reflect.Type, prefix []int) {
		for i := range t.NumField() {
			f := t.Field(i)
			tag := f.Tag.Get("yaml")
			if tag == "" || tag == "-" {
				continue
			}
			idx := append(append([]int(nil), prefix...), i)
			name, opts, _ := strings.Cut(tag, ",")
			if opts == "inline" {
				walk(f.Type, idx)
				continue
			}
			out[name] = idx
		}
	}
	walk(t, nil)
	return out
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.fail(path, n, "want a mapping, got %s", kindName(n))
		return
	}
	ps, ok := d.pairs(n, path)
	if !ok {
		return
	}
	known := fields(v.Type())
	seen := map[string]bool{}
	for _, p := range ps {
		k, val := p.key, p.val
		if k.Kind != yaml.ScalarNode {
			d.fail(path, k, "keys must be single values")
			continue
		}
		kp := join(path, k.Value)
		if d.badTag(kp, k) {
			continue
		}
		idx, ok := known[k.Value]
		if !ok {
			d.fail(kp, k, "unknown key")
			continue
		}
		if seen[k.Value] {
			d.fail(kp, k, "key given twice")
			continue
		}
		seen[k.Value] = true
		was := d.secret
		d.secret = was || v.Type().FieldByIndex(idx).Tag.Get("config") == "secret"
		d.decode(val, v.FieldByIndex(idx), kp)
		d.secret = was
	}
}

// decodePattern accepts a JSON string or a YAML mapping, turned into JSON keeping numbers as
// written (EventBridge compares some numbers by their literal text).
func (d *decoder) decodePattern(n *yaml.Node, p *Pattern, path string) {
	p.node = n
	if n.Kind == yaml.ScalarNode {
		text := strings.TrimSpace(n.Value)
		// Without "${" or an escape that could spell it, no string value holds a reference.
		if !strings.Contains(text, "${") && !strings.Contains(text, `\u`) {
			p.JSON = []byte(text)
			return
		}
		out, err := d.expandJSONStrings(text, path)
		if err != nil {
			d.fail(path, n, "%v", err)
			return
		}
		p.JSON = out
		return
	}
	if js, ok := d.patterns[n]; ok {
		p.JSON = js
		return
	}
	var buf bytes.Buffer
	expanded := len(d.fromEnv)
	if err := d.nodeJSON(&buf, n, path, 0); err != nil {
		if err != errBadPattern { // else reported already
			d.fail(path, n, "%v", err)
		}
		return
	}
	p.JSON = buf.Bytes()
	// A pattern that took values from the environment is written out again where it recurs, so
	// that they are recorded under each route's path, for errors to keep out.
	if len(d.fromEnv) == expanded {
		if d.patterns == nil {
			d.patterns = map[*yaml.Node][]byte{}
		}
		d.patterns[n] = p.JSON
	}
}

// nodeJSON writes the pattern n as JSON, and returns errBadPattern once it has reported a
// problem, or an error saying which limit the pattern exceeds. It stops once the pattern is
// deeper or longer than the filter package accepts: an alias may refer to the mapping or list
// that holds it, which nests without end, or each of several aliases may repeat another several
// times over, which multiplies the text with every level, and yaml.v3 guards against neither in
// the node tree it returns.
func (d *decoder) nodeJSON(buf *bytes.Buffer, n *yaml.Node, path string, depth int) error {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if !d.spend(path, n) || d.badTag(path, n) {
		return errBadPattern
	}
	// depth counts the mappings and lists around n, as the filter counts objects and arrays.
	if depth > filter.MaxPatternDepth && (n.Kind == yaml.MappingNode || n.Kind == yaml.SequenceNode) {
		return fmt.Errorf("the pattern is nested more than %d levels deep (does an alias refer to the mapping or list that holds it?)", filter.MaxPatternDepth)
	}
	if buf.Len() > filter.MaxPatternBytes {
		return fmt.Errorf("the pattern is larger than %d bytes as JSON, its aliases written out", filter.MaxPatternBytes)
	}
	switch n.Kind {
	case yaml.MappingNode:
		ps, ok := d.pairs(n, path)
		if !ok {
			return errBadPattern
		}
		buf.WriteByte('{')
		seen := map[string]bool{}
		for i, p := range ps {
			k := p.key
			if k.Kind != yaml.ScalarNode {
				d.fail(path, k, "pattern keys must be strings")
				return errBadPattern
			}
			kp := mapKeyPath(path, k.Value)
			if d.badTag(kp, k) {
				return errBadPattern
			}
			if seen[k.Value] {
				d.fail(kp, k, "key given twice")
				return errBadPattern
			}
			seen[k.Value] = true
			key, ok := d.key(kp, k)
			if !ok {
				return errBadPattern
			}
			if i > 0 {
				buf.WriteByte(',')
			}
			kb, _ := json.Marshal(key)
			buf.Write(kb)
			buf.WriteByte(':')
			if err := d.nodeJSON(buf, p.val, kp, depth+1); err != nil {
				return err
			}
		}
		buf.WriteByte('}')
	case yaml.SequenceNode:
		buf.WriteByte('[')
		for i, c := range n.Content {
			if i > 0 {
				buf.WriteByte(',')
			}
			if err := d.nodeJSON(buf, c, fmt.Sprintf("%s[%d]", path, i), depth+1); err != nil {
				return err
			}
		}
		buf.WriteByte(']')
	case yaml.ScalarNode:
		// A quoted value is text unless a tag says otherwise.
		if n.Style == 0 || n.Style&yaml.TaggedStyle != 0 {
			switch n.Tag {
			case "!!null":
				buf.WriteString("null")
				return nil
			case "!!bool":
				if n.Value == "true" || n.Value == "false" {
					buf.WriteString(n.Value)
					return nil
				}
				// As everywhere in the file, a boolean is true or false: YAML also reads True,
				// TRUE, False and FALSE as booleans, and a pattern would otherwise hold the
				// string "True", which matches no boolean of an event.
				d.fail(path, n, "want true or false, got %s (quote it for the text)", strconv.Quote(n.Value))
				return errBadPattern
			case "!!int", "!!float":
				if json.Valid([]byte(n.Value)) {
					buf.WriteString(n.Value)
					return nil
				}
				// YAML reads 0x1F, 0o17, +1, 1_000, .5, .inf and .nan as numbers too; written
				// out as the string "0x1F" they would match no number of an event.
				d.fail(path, n, "want a number as JSON writes it, got %s (quote it for the text)", strconv.Quote(n.Value))
				return errBadPattern
			}
		}
		text, _, ok := d.scalar(path, n)
		if !ok {
			return errBadPattern
		}
		b, _ := json.Marshal(text)
		buf.Write(b)
	default:
		d.fail(path, n, "unsupported YAML node")
		return errBadPattern
	}
	return nil
}

var errBadPattern = fmt.Errorf("bad pattern")

// jsonFrame is an object or array expandJSONStrings is inside of.
type jsonFrame struct {
	object  bool
	items   int  // members or elements written so far
	wantKey bool // in an object, the next token is a key
}

// expandJSONStrings expands ${ENV} in the string values of a pattern written as JSON, once the
// JSON is parsed, as the YAML form does: expanding the text before parsing it would let a value
// such as `a"],"detail-type":["x` add keys to the pattern. Keys are not expanded, as in the YAML
// form: a key holding a reference is refused (see literalKey). Numbers keep their text. A
// reference outside a string is refused.
// The strings expanded and the values taken from the environment are recorded under path, the
// pattern's key.
func (d *decoder) expandJSONStrings(text, path string) ([]byte, error) {
	dec := json.NewDecoder(strings.NewReader(text))
	dec.UseNumber()
	var buf bytes.Buffer
	var stack []jsonFrame
	// before writes what separates the next key or value from the one before it.
	before := func() {
		if len(stack) == 0 {
			return
		}
		f := &stack[len(stack)-1]
		switch {
		case f.object && f.wantKey:
			if f.items > 0 {
				buf.WriteByte(',')
			}
		case f.object:
			buf.WriteByte(':')
			f.items++
		default:
			if f.items > 0 {
				buf.WriteByte(',')
			}
			f.items++
		}
		if f.object {
			f.wantKey = !f.wantKey
		}
	}
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			if len(stack) > 0 || buf.Len() == 0 {
				return nil, errors.New("not JSON: the text ends before the pattern does")
			}
			break
		}
		if err != nil {
			// Syntax errors name a character and an offset of the text as written, never an
			// expanded value.
			return nil, fmt.Errorf("not JSON: %v (a ${...} reference may stand only inside a string)", err)
		}
		if len(stack) == 0 && buf.Len() > 0 {
			return nil, errors.New("not JSON: text after the pattern")
		}
		switch tok := tok.(type) {
		case json.Delim:
			if tok == '{' || tok == '[' {
				before()
				stack = append(stack, jsonFrame{object: tok == '{', wantKey: tok == '{'})
			} else {
				stack = stack[:len(stack)-1]
			}
			buf.WriteRune(rune(tok))
		case string:
			key := len(stack) > 0 && stack[len(stack)-1].object && stack[len(stack)-1].wantKey
			before()
			val := tok
			if key {
				if val, err = literalKey(tok); err != nil {
					return nil, fmt.Errorf("the key %s: %w", strconv.Quote(tok), err)
				}
			} else {
				expanded, changed, vals, _, err := expand(tok, d.lookup)
				if err != nil {
					return nil, err
				}
				if changed {
					d.fromEnv.record(path, expanded, vals)
				}
				val = expanded
			}
			writeJSONString(&buf, val)
		case json.Number:
			before()
			buf.WriteString(tok.String())
		case bool:
			before()
			buf.WriteString(strconv.FormatBool(tok))
		case nil:
			before()
			buf.WriteString("null")
		}
	}
	return buf.Bytes(), nil
}

// writeJSONString writes s as a JSON string, leaving <, > and & as they are.
func writeJSONString(buf *bytes.Buffer, s string) {
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)
	buf.Truncate(buf.Len() - 1) // Encode's newline
}

func parseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "0" {
		return 0, nil
	}
	dur, err := time.ParseDuration(s)
	if err != nil {
		return 0, err
	}
	if dur < 0 {
		return 0, fmt.Errorf("negative")
	}
	return dur, nil
}

var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
	{"KB", 1000}, {"MB", 1000 * 1000}, {"GB", 1000 * 1000 * 1000},
	{"B", 1},
}

func parseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(s, u.suffix) {
			mult = u.mult
			s = strings.TrimSpace(strings.TrimSuffix(s, u.suffix))
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("bad size")
	}
	return n * mult, nil
}
