package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// ErrInvalid is wrapped by every error Load and Parse return for a configuration they refuse.
var ErrInvalid = errors.New("config: invalid")

// Errors lists every problem found in a configuration, each naming its key path.
type Errors struct {
	List []string

	fromEnv envValues
}

// envValues holds, by key path, what ${ENV} expansion put in a setting. A path is there, with
// nothing recorded, when every reference in it took its default.
type envValues map[string]envSetting

// envSetting is what ${ENV} expansion put in one setting: the expanded text as a whole, which a
// message may quote as it quotes any value, and each variable's value on its own, since a
// message may also quote a part of the text (a CEL compiler quotes the one line it fails on).
type envSetting struct {
	texts  []string // one per expanded string: a JSON-string pattern holds several
	values []string
}

// record notes the text that expansion made of a string at path and the values it took from
// the environment; vals is empty when every reference took its default, and then the text is
// the file's own.
func (v envValues) record(path, text string, vals []string) {
	s := v[path]
	if len(vals) > 0 {
		s.texts = append(s.texts, text)
		s.values = append(s.values, vals...)
	}
	v[path] = s
}

// show quotes the value at path for an error message, unless it came from the environment, where
// it may be a secret: then it says so instead.
func (e *Errors) show(path, v string) string {
	if _, ok := e.fromEnv[path]; ok {
		return fromEnvText
	}
	return strconv.Quote(v)
}

// showAddress is show for an address, which quoteAddress shows without its user information.
func (e *Errors) showAddress(path, a string) string {
	if _, ok := e.fromEnv[path]; ok {
		return fromEnvText
	}
	return quoteAddress(a)
}

// fromEnvText stands in an error for a value that came from the environment.
const fromEnvText = "(value from the environment)"

// redactMark stands in a message for a value while it is being redacted, so that a shorter value
// found inside fromEnvText, or inside the stand-in of a longer value, is not replaced in turn.
const redactMark = "\x00"

// minShownAround is the length from which a value from the environment is cut out of a message
// wherever it appears. A shorter one may be part of the message's own words ("in" of "invalid"),
// which cutting it out would garble; it is cut out only where it stands quoted.
const minShownAround = 8

// under reports whether key path q is path or a key below it; every path is under "".
func under(q, path string) bool {
	return path == "" || q == path || strings.HasPrefix(q, path+".") || strings.HasPrefix(q, path+"[")
}

// related reports whether a message about path may quote a value at key path q: one at path,
// below it (a pattern's checker quotes its values) or above it (the setting holding path). A
// message about one key does not quote another key's value, and cutting every value out of
// every message would garble messages that hold no secret: a value "conversation" from the
// environment would be cut out of the list of choices a message about another key gives.
func related(q, path string) bool { return under(q, path) || under(path, q) }

// forms lists the ways a message may spell v: as it is, escaped as Go and JSON quote it, and,
// with lines, each of its lines (a compiler quotes the line it fails on).
func forms(v string, lines bool) []string {
	out := []string{v}
	if lines && strings.ContainsAny(v, "\r\n") {
		out = append(out, strings.FieldsFunc(v, func(r rune) bool { return r == '\n' || r == '\r' })...)
	}
	if q := strconv.Quote(v); q[1:len(q)-1] != v {
		out = append(out, q[1:len(q)-1])
	}
	var b bytes.Buffer
	writeJSONString(&b, v)
	if j := b.String(); j[1:len(j)-1] != v {
		out = append(out, j[1:len(j)-1])
	}
	return out
}

// redact replaces, in a message about path, what ${ENV} expansion put in the settings related
// to path: each expanded text as a whole, and each variable's value and each line of one,
// wherever they stand quoted, and as they are when long enough not to be mistaken for a word of
// the message (see minShownAround). The lines of an expanded text are the file's own text
// around the values, and are left as they are.
func (e *Errors) redact(path, msg string) string {
	var cuts []string
	add := func(v string, lines bool) {
		for _, f := range forms(v, lines) {
			if f == "" {
				continue
			}
			cuts = append(cuts, strconv.Quote(f))
			if len(f) >= minShownAround {
				cuts = append(cuts, f)
			}
		}
	}
	for q, s := range e.fromEnv {
		if !related(q, path) {
			continue
		}
		for _, t := range s.texts {
			add(t, false)
		}
		for _, v := range s.values {
			add(v, true)
		}
	}
	if len(cuts) == 0 {
		return msg
	}
	// Longest first: a text holds its values, and a value, or a line of one, may hold another.
	slices.SortFunc(cuts, func(a, b string) int { return len(b) - len(a) })
	for _, c := range cuts {
		msg = strings.ReplaceAll(msg, c, redactMark)
	}
	return strings.ReplaceAll(msg, redactMark, fromEnvText)
}

// mayQuote reports whether msg, redacted, may still hold a part of a value from the environment
// in a setting related to path, other than those for which named reports true (nil names
// none): any run of four characters of one (all of a shorter one), in any of its forms, or any
// of its words (runs of letters, digits and _) standing as a word of its own. The file's own
// text around the values is no secret, and is not looked for.
func (e *Errors) mayQuote(path, msg string, named func(q string) bool) bool {
	msg = strings.ReplaceAll(msg, fromEnvText, redactMark)
	for q, s := range e.fromEnv {
		if !related(q, path) || named != nil && named(q) {
			continue
		}
		for _, v := range s.values {
			for _, f := range forms(v, true) {
				w := min(len(f), 4)
				for i := 0; w > 0 && i+w <= len(f); i++ {
					if strings.Contains(msg, f[i:i+w]) {
						return true
					}
				}
			}
			for _, word := range strings.FieldsFunc(v, notWordRune) {
				if containsWord(msg, word) {
					return true
				}
			}
		}
	}
	return false
}

func notWordRune(r rune) bool {
	return !(r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r))
}

// containsWord reports whether word stands in s with no letter, digit or _ on either side.
func containsWord(s, word string) bool {
	for i := 0; ; {
		j := strings.Index(s[i:], word)
		if j < 0 {
			return false
		}
		j += i
		end := j + len(word)
		before, _ := utf8.DecodeLastRuneInString(s[:j])
		after, _ := utf8.DecodeRuneInString(s[end:])
		if (j == 0 || notWordRune(before)) && (end == len(s) || notWordRune(after)) {
			return true
		}
		i = j + 1
	}
}

func (e *Errors) add(path, msg string) { e.put(path, e.redact(path, msg)) }

// addDetail reports msg, the text of err (or a part of it), which a library returned about the
// value at path. A library may quote any part of that value, not only the whole of it (a CEL
// compiler shows the line it fails on, or a token), so its message is shown only when no part
// of a value from the environment may remain in it once redacted. Otherwise the message is
// withheld, and only what err wraps innermost, such as "filter: invalid CEL expression", is
// shown: a short value cannot be cut out of a message without garbling it, and a message
// missing its detail is better than one showing a secret.
func (e *Errors) addDetail(path, msg string, err error) { e.addDetailExcept(path, msg, err, nil) }

// addDetailExcept is addDetail for a library that never quotes the settings for which unquoted
// reports true, not even in part (the signature package quotes names, never keys or secrets):
// their values are cut out of its message like any other, but a word or a few characters of
// one, which the message may hold by chance ("base64" in a secret and in "not whsec_ followed
// by base64"), do not withhold it.
func (e *Errors) addDetailExcept(path, msg string, err error, unquoted func(q string) bool) {
	msg = e.redact(path, msg)
	if !e.mayQuote(path, msg, unquoted) {
		e.put(path, msg)
		return
	}
	inner := err
	for u := errors.Unwrap(inner); u != nil; u = errors.Unwrap(inner) {
		inner = u
	}
	const withheld = "the detail is not shown, as it could quote a value from the environment; write the value in the file to see it"
	if s := inner.Error(); inner != err && !e.mayQuote(path, s, unquoted) && !strings.Contains(s, "\n") {
		e.put(path, s+" ("+withheld+")")
		return
	}
	e.put(path, "refused ("+withheld+")")
}

// IntakeLabel is the intake label of intake i's metrics: its path, or "intake[i]" when the path
// came from the environment. /metrics needs no credentials, and a path kept out of the file may
// be meant to stay unknown (a hard-to-guess webhook path).
func (c *Config) IntakeLabel(i int) string {
	path := fmt.Sprintf("intake[%d]", i)
	if _, ok := c.fromEnv[path+".path"]; ok {
		return path
	}
	return c.Intake[i].Path
}

// SinkError reports err, which building the sink at index i returned after validation (a TLS
// file that changed since, a broker list the client refuses), as validation errors are
// reported: the values ${ENV} expansion put in the sink's settings are cut out of it, or the
// detail is withheld when a part of one may remain.
func (c *Config) SinkError(i int, err error) error {
	e := &Errors{fromEnv: c.fromEnv}
	path := fmt.Sprintf("sinks[%d]", i)
	e.addDetail(path, err.Error(), err)
	return errors.New(strings.Replace(e.List[0], path+": ", path+" ("+e.show(path+".name", c.Sinks[i].Name)+"): ", 1))
}

// SettingError reports err, which opening what the settings under path describe returned after
// validation (the dead-letter queue at "dlq.kafka", a listener at "listen.address"), as SinkError
// reports a sink's: the values ${ENV} expansion put there are cut out of it, or the detail is
// withheld when a part of one may remain.
// The error it returns wraps err, for errors.Is, but its text is only the redacted one.
func (c *Config) SettingError(path string, err error) error {
	e := &Errors{fromEnv: c.fromEnv}
	e.addDetail(path, err.Error(), err)
	return &settingError{msg: e.List[0], err: err}
}

// Redact returns s, text about the settings under path that is no error of theirs (a line a
// library logs about what they describe), with the values ${ENV} expansion put there cut out as
// SettingError cuts them: each expanded text and each variable's value wherever it stands
// quoted, and as it is when long enough not to be taken for a word of the text. Unlike
// SettingError it withholds nothing: a caller that knows how the text may spell a value cuts
// the shorter ones itself.
func (c *Config) Redact(path, s string) string {
	e := &Errors{fromEnv: c.fromEnv}
	return e.redact(path, s)
}

type settingError struct {
	msg string
	err error
}

func (e *settingError) Error() string { return e.msg }
func (e *settingError) Unwrap() error { return e.err }

// fromEnvAt reports whether the value at path came from the environment, for a message about
// another key that would quote it.
func (e *Errors) fromEnvAt(path string) bool {
	_, ok := e.fromEnv[path]
	return ok
}

func (e *Errors) put(path, msg string) {
	if path == "" {
		e.List = append(e.List, "config: "+msg)
		return
	}
	e.List = append(e.List, "config: "+path+": "+msg)
}

func (e *Errors) addf(path, format string, args ...any) { e.add(path, fmt.Sprintf(format, args...)) }

// Error joins the problems, one per line.
func (e *Errors) Error() string { return strings.Join(e.List, "\n") }

// Unwrap makes errors.Is(err, ErrInvalid) hold.
func (e *Errors) Unwrap() error { return ErrInvalid }

func (e *Errors) err() error {
	if len(e.List) == 0 {
		return nil
	}
	return e
}

// Lookup finds an environment variable, as os.LookupEnv does.
type Lookup func(name string) (string, bool)

// Load reads, expands, decodes and validates the file at path, looking variables up with lookup
// (os.LookupEnv when nil).
func Load(path string, lookup Lookup) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(b, lookup)
}

// topPairs reads the file at path and returns its top-level mapping with the key and value
// pairs it holds, merge keys (<<) carried out as Parse does, and the decoder that read them.
func topPairs(path string, lookup Lookup) (*yaml.Node, []pair, *decoder, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("config: %w", err)
	}
	root, err := document(b)
	if err != nil {
		return nil, nil, nil, err
	}
	if root.Kind != yaml.MappingNode {
		_, err := Decode(b, lookup) // says what is wrong with the file
		return nil, nil, nil, err
	}
	errs := &Errors{}
	d := newDecoder(root, lookup, errs)
	ps, ok := d.pairs(root, "")
	if !ok {
		return nil, nil, nil, errs
	}
	return root, ps, d, nil
}

// LoadDLQ reads the file at path for its dlq section alone: only that section's variables are
// expanded and only it is validated, so that reading dead letters does not need every secret
// of the service. It returns a Config holding that section alone (for SettingError), or nil,
// without error, when the file has no dlq section.
func LoadDLQ(path string, lookup Lookup) (*Config, error) {
	// The dlq key and value nodes themselves, not a copy of their text: aliases keep pointing
	// at anchors elsewhere in the file, and errors keep the file's line numbers. A dlq key that a
	// merge key (<<) brings in counts, as in Parse.
	root, ps, _, err := topPairs(path, lookup)
	if err != nil {
		return nil, err
	}
	only := &yaml.Node{Kind: yaml.MappingNode, Line: root.Line, Column: root.Column}
	for _, p := range ps {
		if p.key.Kind == yaml.ScalarNode && p.key.Value == "dlq" {
			only.Content = append(only.Content, p.key, p.val)
		}
	}
	if len(only.Content) == 0 {
		return nil, nil
	}
	cfg, err := decodeRoot(only, lookup)
	if err != nil {
		return nil, err
	}
	cfg.defaults()
	e := &Errors{fromEnv: cfg.fromEnv}
	cfg.validateDLQ(e)
	if err := e.err(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// LoadWithoutDLQ reads the file at path as Load does, less its dlq section, which a caller
// replaces with a queue of its own: the section's variables are not expanded, so they need not
// be set, and its values are not checked. Everything else is decoded and validated as Load does
// it, from the file's own node tree: errors name the lines the file has, an alias elsewhere still
// reads an anchor inside the section, and a dlq key that a merge key (<<) brings in is left out
// too. The returned Config has no DLQ.
func LoadWithoutDLQ(path string, lookup Lookup) (*Config, error) {
	root, ps, d, err := topPairs(path, lookup)
	if err != nil {
		return nil, err
	}
	rest := &yaml.Node{Kind: yaml.MappingNode, Tag: root.Tag, Line: root.Line, Column: root.Column}
	found := false
	for _, p := range ps {
		if p.key.Kind != yaml.ScalarNode || p.key.Value != "dlq" {
			rest.Content = append(rest.Content, p.key, p.val)
			continue
		}
		// Load refuses a file that gives the section twice, and so does this.
		if found {
			d.fail("dlq", p.key, "key given twice")
			return nil, d.errs
		}
		found = true
	}
	cfg, err := decodeRoot(rest, lookup)
	if err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// Parse decodes and validates YAML text. Errors name each bad key by its path; several problems
// are reported together.
func Parse(text []byte, lookup Lookup) (*Config, error) {
	cfg, err := Decode(text, lookup)
	if err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// Decode decodes YAML text without validating it (defaults are not applied either).
func Decode(text []byte, lookup Lookup) (*Config, error) {
	root, err := document(text)
	if err != nil {
		return nil, err
	}
	return decodeRoot(root, lookup)
}

// document parses text as one YAML document and returns its top node. A file of several
// documents is refused: reading only the first would quietly drop every setting after a "---"
// (a dead-letter queue, say); an empty document after one, as a trailing "---" makes, is allowed.
func document(text []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(text))
	var root *yaml.Node
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			// yaml.v3's syntax errors name the offending token only, never a value.
			return nil, syntaxError(text, err)
		}
		if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
			continue
		}
		n := doc.Content[0]
		if root == nil {
			root = n
			continue
		}
		if !isNull(n) {
			return nil, &Errors{List: []string{fmt.Sprintf("config: the file holds more than one YAML document (a --- line starts another, with settings at line %d); put every setting in one", n.Line)}}
		}
	}
	if root == nil {
		return nil, &Errors{List: []string{"config: the file is empty"}}
	}
	return root, nil
}

// decodeRoot decodes the file's top-level mapping, or a part of it.
func decodeRoot(root *yaml.Node, lookup Lookup) (*Config, error) {
	if lookup == nil {
		lookup = os.LookupEnv
	}
	errs := &Errors{}
	d := newDecoder(root, lookup, errs)
	cfg := &Config{fromEnv: d.fromEnv}
	if root.Kind != yaml.MappingNode {
		d.fail("", root, "the file must hold a mapping of settings, got %s", kindName(root))
		return nil, errs
	}
	d.decode(root, reflect.ValueOf(cfg).Elem(), "")
	if err := errs.err(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// expand replaces ${NAME} and ${NAME:-default} in s. "$${" stands for a literal "${". It reports
// whether anything was replaced, the values it took from the environment (not the defaults,
// which are the file's own text) and the names of the variables that took their default. A variable that is unset (or empty, with a default given) takes
// the default; unset without a default is an error naming it. A default is literal text without
// "${" in it.
func expand(s string, lookup Lookup) (string, bool, []string, []string, error) {
	if !strings.Contains(s, "${") {
		return s, false, nil, nil, nil
	}
	var b strings.Builder
	changed := false
	var vals, defaulted []string
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			break
		}
		if i > 0 && s[i-1] == '$' {
			b.WriteString(s[:i-1])
			b.WriteString("${")
			s = s[i+2:]
			continue
		}
		b.WriteString(s[:i])
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			return "", false, nil, nil, fmt.Errorf("unterminated ${ in value")
		}
		expr := s[i+2 : i+end]
		s = s[i+end+1:]
		name, def, hasDef := strings.Cut(expr, ":-")
		if !validEnvName(name) {
			return "", false, nil, nil, fmt.Errorf("invalid variable name %q in ${...}", name)
		}
		// A reference in a default would end the outer one at its own "}", leaving its text,
		// such as "${FALLBACK_KEY}", as the value: for a key or password, one anybody can guess.
		if strings.Contains(def, "${") {
			return "", false, nil, nil, fmt.Errorf("the default of ${%s:-...} holds a ${...} reference; defaults are literal text, and references do not nest", name)
		}
		val, ok := lookup(name)
		switch {
		case hasDef && (!ok || val == ""):
			val = def
			defaulted = append(defaulted, name)
		case !ok:
			return "", false, nil, nil, fmt.Errorf("environment variable %s is not set", name)
		default:
			vals = append(vals, val)
		}
		b.WriteString(val)
		changed = true
	}
	return b.String(), changed, vals, defaulted, nil
}

func validEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		if r == '_' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || i > 0 && r >= '0' && r <= '9' {
			continue
		}
		return false
	}
	return true
}
