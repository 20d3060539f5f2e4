package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// ErrInvalid is wrapped by every error Load and Parse return for a configuration they refuse.
var ErrInvalid = errors.New("config: invalid")

// Errors lists every problem found in a configuration, each naming its key path.
type Errors struct {
	List []string

	fromEnv map[string]string // key path -> value, for the values ${ENV} expansion made
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

// redact replaces, in a message about path, the values from the environment at path or below it,
// which the library functions Validate calls may quote: quoted wherever they appear, and as they
// are when long enough not to be mistaken for a word of the message.
func (e *Errors) redact(path, msg string) string {
	for q, v := range e.fromEnv {
		if v == "" || path != "" && q != path && !strings.HasPrefix(q, path+".") && !strings.HasPrefix(q, path+"[") {
			continue
		}
		msg = strings.ReplaceAll(msg, strconv.Quote(v), fromEnvText)
		if len(v) >= 8 {
			msg = strings.ReplaceAll(msg, v, fromEnvText)
		}
	}
	return msg
}

// fromEnvText stands in an error for a value that came from the environment.
const fromEnvText = "(value from the environment)"

func (e *Errors) add(path, msg string) {
	msg = e.redact(path, msg)
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

// LoadDLQ reads the file at path for its dlq section alone: only that section's variables are
// expanded and only it is validated, so that reading dead letters does not need every secret
// of the service. It returns nil, without error, when the file has no dlq section.
func LoadDLQ(path string, lookup Lookup) (*DLQ, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	root, err := document(b)
	if err != nil {
		return nil, err
	}
	if root.Kind != yaml.MappingNode {
		_, err := Decode(b, lookup) // says what is wrong with the file
		return nil, err
	}
	// The dlq key and value nodes themselves, not a copy of their text: aliases keep pointing
	// at anchors elsewhere in the file, and errors keep the file's line numbers.
	only := &yaml.Node{Kind: yaml.MappingNode, Line: root.Line, Column: root.Column}
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == "dlq" {
			only.Content = append(only.Content, root.Content[i], root.Content[i+1])
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
	return cfg.DLQ, nil
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
			// yaml.v3's syntax errors carry a line number and the offending token only, never a value.
			return nil, &Errors{List: []string{"config: " + strings.TrimPrefix(err.Error(), "yaml: ")}}
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
	d := &decoder{lookup: lookup, errs: errs, fromEnv: map[string]string{}}
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
// whether anything was replaced. A variable that is unset (or empty, with a default given) takes
// the default; unset without a default is an error naming it. A default is literal text without
// "${" in it.
func expand(s string, lookup Lookup) (string, bool, error) {
	if !strings.Contains(s, "${") {
		return s, false, nil
	}
	var b strings.Builder
	changed := false
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
			return "", false, fmt.Errorf("unterminated ${ in value")
		}
		expr := s[i+2 : i+end]
		s = s[i+end+1:]
		name, def, hasDef := strings.Cut(expr, ":-")
		if !validEnvName(name) {
			return "", false, fmt.Errorf("invalid variable name %q in ${...}", name)
		}
		// A reference in a default would end the outer one at its own "}", leaving its text,
		// such as "${FALLBACK_KEY}", as the value: for a key or password, one anybody can guess.
		if strings.Contains(def, "${") {
			return "", false, fmt.Errorf("the default of ${%s:-...} holds a ${...} reference; defaults are literal text, and references do not nest", name)
		}
		val, ok := lookup(name)
		switch {
		case hasDef && (!ok || val == ""):
			val = def
		case !ok:
			return "", false, fmt.Errorf("environment variable %s is not set", name)
		}
		b.WriteString(val)
		changed = true
	}
	return b.String(), changed, nil
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
