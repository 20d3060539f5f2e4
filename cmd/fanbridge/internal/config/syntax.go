package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// syntaxError is the error for text that is not YAML: yaml.v3's description of the problem, on
// the line of the first character the parser could not take.
//
// yaml.v3's own line is not that line, and its error has no other: it counts from 0 for the
// parser's errors and from 1 for the scanner's, it names the line where the construct in trouble
// began when it knows one (the plain scalar before a misplaced tab, say, a line above the tab),
// and it leaves the line out when that number is 0. The line is therefore found from the parser's
// behaviour: the text up to the character named parses, the text up to and including it does not.
// For a flow collection or a quoted string left open, that character is the bracket or quote
// opening it; for a key without its ':' it is the key's first character.
func syntaxError(text []byte, err error) error {
	return &Errors{List: []string{fmt.Sprintf("config: line %d: %s", failingLine(text), yamlProblem(err))}}
}

// yamlLine is the "yaml: " and "line N: " yaml.v3 puts before its description of a problem.
var yamlLine = regexp.MustCompile(`^yaml: (line \d+: )?`)

func yamlProblem(err error) string { return yamlLine.ReplaceAllString(err.Error(), "") }

// lineSearchBudget bounds the bytes failingLine has yaml.v3 parse, over all its attempts, so that
// a large file with a mistake early in a long flow collection is not parsed thousands of times.
const lineSearchBudget = 64 << 20

// failingLine returns the 1-based line of the first character of text that yaml.v3 could not
// take; text does not parse.
//
// It first finds how many bytes the parser had read when it failed (reading further cannot
// change the outcome), then looks back from there for the longest prefix that parses on its own:
// first among the prefixes that end at a line start, then among the longer ones. The character
// after that prefix is the one the parser could not take. When the search would parse more than
// lineSearchBudget bytes, it settles for the line the parser had read up to.
func failingLine(text []byte) int {
	read := bytesRead(text)
	budget := lineSearchBudget
	parses := func(n int) (ok, spent bool) {
		if budget -= n; budget < 0 {
			return false, true
		}
		return decodesAll(bytes.NewReader(text[:n])) == nil, false
	}
	best := 0
	for n := read - 1; n > 0; n-- {
		if !isLineStart(text, n) {
			continue
		}
		ok, spent := parses(n)
		if spent {
			return lineAt(text, read-1)
		}
		if ok {
			best = n
			break
		}
	}
	for n := read - 1; n > best; n-- {
		if isLineStart(text, n) {
			continue // already tried
		}
		ok, spent := parses(n)
		if spent {
			return lineAt(text, read-1)
		}
		if ok {
			best = n
			break
		}
	}
	return lineAt(text, best)
}

// bytesRead returns how many bytes of text yaml.v3 reads before it reports the problem in text:
// the fewest it can be given, the next read failing, and still report that problem.
func bytesRead(text []byte) int {
	lo, hi := 0, len(text) // all of it gives the problem
	for lo < hi {
		n := lo + (hi-lo)/2
		r := &cutReader{text: text, cut: n}
		if err := decodesAll(r); err != nil && !r.hit {
			hi = n
		} else {
			lo = n + 1
		}
	}
	return max(lo, 1)
}

// cutReader reads text up to offset cut, and fails a read that would go past it. yaml.v3 asks
// for more only once it has decoded all it was given and needs more, so a read that fails means
// that it needed a byte at cut or beyond.
type cutReader struct {
	text []byte
	cut  int
	off  int
	hit  bool // a read reached cut
}

func (r *cutReader) Read(p []byte) (int, error) {
	switch {
	case r.off >= len(r.text):
		return 0, io.EOF
	case r.off >= r.cut:
		r.hit = true
		return 0, errors.New("cut off")
	}
	n := copy(p, r.text[r.off:r.cut])
	r.off += n
	return n, nil
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
