package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// syntaxError is the error for text that is not YAML: yaml.v3's description of the problem, on
// the line of the first character the parser could not take.
//
// yaml.v3's own line is not that line, and its error has no other: it counts from 0 for the
// parser's errors and from 1 for the scanner's, it names the line where the construct in trouble
// began when it knows one (the plain scalar before a misplaced tab, say, a line above the tab),
// and it leaves the line out when that number is 0 (and for a parser error inside a flow
// collection, names the line of the collection's opening bracket). The line is therefore found
// from the parser's behaviour: the text up to that line parses, once whatever it leaves open is
// closed, and the text up to the point where the parser gave up does not. For a flow collection
// or a quoted string left open, it is the line of the bracket or quote opening it; for a key
// without its ':', the key's line.
func syntaxError(text []byte, err error) error {
	return &Errors{List: []string{fmt.Sprintf("config: line %d: %s", failingLine(text, leftOpen(err)), yamlProblem(err))}}
}

// leftOpen reports whether yaml.v3's err says that the text ended inside a flow collection or a
// quoted string. yaml.v3 has no error types to tell its problems apart, so its description is the
// only witness: at the end of the text in a collection its parser "did not find expected" the
// next token, and its scanner found the "unexpected end of stream" in a quoted string.
func leftOpen(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "did not find expected") || strings.Contains(msg, "found unexpected end of stream")
}

// yamlLine is the "yaml: " and "line N: " yaml.v3 puts before its description of a problem.
var yamlLine = regexp.MustCompile(`^yaml: (line \d+: )?`)

func yamlProblem(err error) string { return yamlLine.ReplaceAllString(err.Error(), "") }

// failingLine returns the 1-based line of the first character of text that yaml.v3 could not
// take; text does not parse.
//
// One decode, fed a byte at a time, shows how far the parser read before it gave up; the
// character it could not take lies before that point, on the line of the longest prefix that
// parses, among the prefixes that end at a line start. The parser reads a little ahead (to the
// ':' that makes a key a key, say), so that line may be one or a few above the last line read.
//
// A prefix that ends inside a flow collection or a quoted string cannot parse as it stands, and
// is tried with the brackets and quote open at its end closed; otherwise a mistake in the middle
// of a multi-line "{...}" would be put on the line of its "{". When no prefix parses so (openAt
// took a bracket or quote for open that was not), they are tried again as they stand. Only when
// the parser read to the end of a text that leaves a bracket or quote open, and unclosed says
// that it complained of that, is the mistake that it was left open, and then the line is that
// of the bracket or quote, which is where the longest prefix that parses ends.
//
// Every prefix parsed is charged to a budget of a few times the size of text; when the budget
// runs out, the line is the one the parser had read up to.
func failingLine(text []byte, unclosed bool) int {
	read := bytesRead(text)
	s := &lineSearch{text: text, budget: max(lineSearchFactor*len(text), lineSearchFloor)}
	if _, opener := openAt(text, len(text)); unclosed && read >= len(text) && opener >= 0 {
		if s.parses(opener, nil) {
			return lineAt(text, opener)
		}
		return max(s.search(read, false), 1)
	}
	if line := s.search(read, true); line > 0 {
		return line
	}
	return max(s.search(read, false), 1)
}

// lineSearchFactor and lineSearchFloor bound the bytes failingLine has yaml.v3 parse, over all
// its attempts: lineSearchFactor times the size of the file, and never less than lineSearchFloor,
// so that a small file is never cut short and a large one costs a few parses of it.
const (
	lineSearchFactor = 6
	lineSearchFloor  = 64 << 10
)

// lineSearch parses prefixes of text, within a budget of bytes.
type lineSearch struct {
	text   []byte
	budget int
}

// search returns the line of the longest prefix of text, ending at a line start before offset
// read, that parses; with closing, once the quote and brackets open at its end are closed. It
// returns 0 when none does, and the line of offset read once the budget has run out.
func (s *lineSearch) search(read int, closing bool) int {
	for n := read - 1; n > 0; n-- {
		if !isLineStart(s.text, n) {
			continue
		}
		var closers []byte
		if closing {
			closers, _ = openAt(s.text, n)
		}
		if s.budget < n+len(closers) {
			return lineAt(s.text, read-1)
		}
		if s.parses(n, closers) {
			return lineAt(s.text, n)
		}
	}
	return 0
}

// parses reports whether the first n bytes of text, followed by closers, parse, and charges
// them to the budget.
func (s *lineSearch) parses(n int, closers []byte) bool {
	s.budget -= n + len(closers)
	return decodesAll(io.MultiReader(bytes.NewReader(s.text[:n]), bytes.NewReader(closers))) == nil
}

// bytesRead returns how many bytes of text yaml.v3 reads before it reports the problem in text.
// The parser is handed one byte per read, so that it reads no further than it needs to.
func bytesRead(text []byte) int {
	r := &tricklingReader{text: text}
	_ = decodesAll(r)
	return max(r.off, 1)
}

// tricklingReader reads text one byte at a time.
type tricklingReader struct {
	text []byte
	off  int
}

func (r *tricklingReader) Read(p []byte) (int, error) {
	if r.off >= len(r.text) {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	p[0] = r.text[r.off]
	r.off++
	return 1, nil
}

// openAt returns the characters that close the quoted scalar and the flow collections open at
// offset n of text, innermost first, and the offset of the outermost of them (-1 when none is).
//
// It reads text closely enough for that, not as a parser: a quote opens a scalar, and a bracket
// a collection, only where a value can start (at a line start or after ':', '-' or '?'; inside a
// flow collection after '[', '{', ',', ':' or '?', and a bracket anywhere); quotes end as YAML
// ends them (” inside single quotes, a backslash escape inside double ones); a '#' at a line
// start or after a space or tab starts a comment; the lines of a block scalar ('|' or '>' where
// a value can start, outside flow collections) are skipped, for a quote or bracket at the start
// of one of them is text.
func openAt(text []byte, n int) (closers []byte, outermost int) {
	var (
		quote   byte         // the quote open, or 0
		quoteAt int          // where it opened
		stack   []byte       // the closers of the open flow collections, outermost first
		openers []int        // where those collections opened
		prev    = byte('\n') // the last byte outside comments that is not a space or a tab
		comment bool
	)
	for i := 0; i < n && i < len(text); i++ {
		c := text[i]
		switch {
		case comment:
			if c == '\n' || c == '\r' {
				comment, prev = false, c
			}
			continue
		case quote == '"':
			switch c {
			case '\\':
				i++
			case '"':
				quote, prev = 0, c
			}
			continue
		case quote == '\'':
			switch {
			case c != '\'':
			case i+1 < n && i+1 < len(text) && text[i+1] == '\'':
				i++
			default:
				quote, prev = 0, c
			}
			continue
		}
		inFlow := len(stack) > 0
		valueStart := prev == ':' || prev == '?' ||
			!inFlow && (prev == '-' || prev == '\n' || prev == '\r') ||
			inFlow && (prev == '[' || prev == '{' || prev == ',')
		switch c {
		case ' ', '\t':
			if i+1 < n && i+1 < len(text) && text[i+1] == '#' {
				comment = true
				i++
			}
			continue
		case '#':
			if prev == '\n' || prev == '\r' {
				comment = true
				continue
			}
		case '"', '\'':
			if valueStart {
				quote, quoteAt = c, i
				continue
			}
		case '|', '>':
			if !valueStart || inFlow {
				break
			}
			if end := blockScalarEnd(text[:min(n, len(text))], i); end >= 0 {
				i, prev = end-1, '\n' // the loop goes on at end, a line start
				continue
			}
		case '[', '{':
			if valueStart || inFlow {
				stack = append(stack, c+2) // ']' and '}' follow '[' and '{' by two
				openers = append(openers, i)
			}
		case ']', '}':
			if inFlow {
				stack, openers = stack[:len(stack)-1], openers[:len(openers)-1]
			}
		case '\n', '\r':
			if inFlow {
				continue // a collection goes on across lines, and what may follow with it
			}
		}
		prev = c
	}
	outermost = -1
	if quote != 0 {
		closers = append(closers, quote)
		outermost = quoteAt
	}
	for i := len(stack) - 1; i >= 0; i-- {
		closers = append(closers, stack[i])
	}
	if len(openers) > 0 {
		outermost = openers[0]
	}
	return closers, outermost
}

// blockScalarEnd returns, when the '|' or '>' at offset i of text begins the header of a block
// scalar, the offset of the first line after the scalar's lines, and otherwise -1.
//
// The header is the indicator, at most two chomping and indentation indicators, and a comment
// or nothing. The scalar's lines are the blank ones and those indented at least as far as its
// first line that is not blank, or as its indentation indicator says, which must be further
// than the node holding the scalar: the key before its ':' (after any "- " on the line), or the
// '-' or '?' before it; one that begins a line is taken to be held by nothing.
func blockScalarEnd(text []byte, i int) int {
	lineStart := i
	for lineStart > 0 && text[lineStart-1] != '\n' && text[lineStart-1] != '\r' {
		lineStart--
	}
	parent := -1
	j := i - 1
	for j >= lineStart && (text[j] == ' ' || text[j] == '\t') {
		j--
	}
	switch {
	case j < lineStart:
	case text[j] == ':':
		k := lineStart
		for k < j {
			if text[k] == ' ' {
				k++
			} else if text[k] == '-' && k+1 < j && (text[k+1] == ' ' || text[k+1] == '\t') {
				k += 2
			} else {
				break
			}
		}
		parent = k - lineStart
	case text[j] == '-' || text[j] == '?':
		parent = j - lineStart
	}

	k, increment := i+1, 0
	for range 2 {
		if k < len(text) && (text[k] == '+' || text[k] == '-') {
			k++
		} else if k < len(text) && text[k] >= '1' && text[k] <= '9' {
			increment = int(text[k] - '0')
			k++
		}
	}
	spaced := false
	for k < len(text) && (text[k] == ' ' || text[k] == '\t') {
		k, spaced = k+1, true
	}
	if k < len(text) && text[k] == '#' && spaced {
		for k < len(text) && text[k] != '\n' && text[k] != '\r' {
			k++
		}
	}
	if k < len(text) && text[k] != '\n' && text[k] != '\r' {
		return -1
	}

	indent := -1
	if increment > 0 {
		indent = max(parent, 0) + increment
	}
	pos := nextLine(text, k)
	for pos < len(text) {
		e := pos
		for e < len(text) && text[e] == ' ' {
			e++
		}
		blank := e == len(text) || text[e] == '\n' || text[e] == '\r'
		if !blank {
			if indent < 0 {
				indent = e - pos
			}
			if indent <= parent || e-pos < indent || e == pos && isDocumentMarker(text[pos:]) {
				return pos
			}
		}
		pos = nextLine(text, e)
	}
	return len(text)
}

// nextLine returns the offset after the line break at or after offset k of text, or the
// length of text when there is none.
func nextLine(text []byte, k int) int {
	for k < len(text) && text[k] != '\n' && text[k] != '\r' {
		k++
	}
	if k+1 < len(text) && text[k] == '\r' && text[k+1] == '\n' {
		k++
	}
	return min(k+1, len(text))
}

// isDocumentMarker reports whether line begins with "---" or "...", alone or before a space.
func isDocumentMarker(line []byte) bool {
	if !bytes.HasPrefix(line, []byte("---")) && !bytes.HasPrefix(line, []byte("...")) {
		return false
	}
	return len(line) == 3 || line[3] == ' ' || line[3] == '\t' || line[3] == '\n' || line[3] == '\r'
}

// decodesAll decodes every YAML document r holds, and returns the first error.
func decodesAll(r io.Reader) error {
	dec := yaml.NewDecoder(r)
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// isLineStart reports whether offset n of text begins a line: it follows a line break, and does
// not split a CR LF.
func isLineStart(text []byte, n int) bool {
	switch {
	case n == 0 || n > len(text):
		return n == 0
	case text[n-1] == '\n':
		return true
	case text[n-1] == '\r':
		return n == len(text) || text[n] != '\n'
	}
	r, size := utf8.DecodeLastRune(text[:n])
	return size > 1 && isYAMLBreak(r)
}

// lineAt returns the 1-based line of offset n of text, counting line breaks as YAML does: LF, CR,
// CR LF, and NEL, LS and PS.
func lineAt(text []byte, n int) int {
	line := 1
	for i := 0; i < n && i < len(text); {
		r, size := utf8.DecodeRune(text[i:])
		switch {
		case r == '\r':
			if i+1 < len(text) && text[i+1] == '\n' {
				size = 2
			}
			if i+size <= n {
				line++
			}
		case r == '\n' || isYAMLBreak(r):
			line++
		}
		i += size
	}
	return line
}

func isYAMLBreak(r rune) bool { return r == '\u0085' || r == '\u2028' || r == '\u2029' }
