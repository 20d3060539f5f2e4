package config_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge/cmd/fanbridge/internal/config"
)

// TestSyntaxErrorLines checks that a file that is not YAML is refused with the 1-based line of the
// first character the parser could not take, whichever part of yaml.v3 found the problem: its
// parser (whose own line counts from 0), its scanner (whose own line is where the construct in
// trouble began), or its reader; on the first line too, where yaml.v3 gives none.
func TestSyntaxErrorLines(t *testing.T) {
	for _, tc := range []struct {
		name, text, want string
	}{
		{"parser error", "logging:\n  level: info\n\nlisten: {address: [}\n", "config: line 4: did not find expected node content"},
		{"scanner error: a tab", "logging:\n  level: info\n\tx: 1\n", "config: line 3: found a tab character that violates indentation"},
		{"scanner error: a character that starts no token", "logging:\n  level: info\n  format: @json\n", "config: line 3: found character that cannot start any token"},
		{"scanner error: a value where a key goes on", "logging:\n  level: info\n   format: json\n", "config: line 3: mapping values are not allowed in this context"},
		{"parser error on line 1", "listen: {address: [}\n", "config: line 1: did not find expected node content"},
		{"scanner error on line 1", "\tlisten: {}\n", "config: line 1: found character that cannot start any token"},
		{"reader error", "logging:\n  level: \x01info\n", "config: line 2: control characters are not allowed"},
		{"a flow sequence left open: the line of its bracket", "logging:\n  level: info\nrouting: [a, b\nsinks: []\n", "config: line 3: did not find expected ',' or ']'"},
		{"a key without its colon: the key's line", "logging:\n  level: info\n  format json\n\n\nlisten: {}\n", "config: line 3: could not find expected ':'"},
		{"CR LF line ends", "logging:\r\n  level: info\r\n\r\nlisten: {address: [}\r\n", "config: line 4: did not find expected node content"},
		{"in a second document", "logging: {}\n---\nlisten: {address: [}\n", "config: line 3: did not find expected node content"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.Parse([]byte(tc.text), env(nil))
			require.Error(t, err)
			assert.True(t, errors.Is(err, config.ErrInvalid), "wraps ErrInvalid")
			assert.Equal(t, tc.want, err.Error())
		})
	}
}

// TestSyntaxErrorLineInALargeFile checks that the line is found in a large file with the
// mistake near its end, where the search looks back from.
func TestSyntaxErrorLineInALargeFile(t *testing.T) {
	var b strings.Builder
	b.WriteString("logging:\n")
	for range 1000 {
		b.WriteString("  # a comment line that the parser reads and skips\n")
	}
	b.WriteString("  level: info\n\tformat: json\n")
	_, err := config.Parse([]byte(b.String()), env(nil))
	require.Error(t, err)
	assert.Equal(t, "config: line 1003: found a tab character that violates indentation", err.Error())
}

// TestSyntaxErrorLinesInFlowCollections checks that a mistake inside a flow collection written
// over several lines, as a configuration in JSON is, is put on its own line, not on the line of
// the bracket that opened the collection.
func TestSyntaxErrorLinesInFlowCollections(t *testing.T) {
	for _, tc := range []struct {
		name, text, want string
	}{
		{"a character that starts no token", "routes: [\n  a,\n  b,\n  @c,\n]\n", "config: line 4: found character that cannot start any token"},
		{"JSON: a missing comma", "{\n  \"logging\": {\"level\": \"info\"},\n  \"listen\": {\"address\": \":8080\"}\n  \"sinks\": []\n}\n", "config: line 4: did not find expected ',' or '}'"},
		{"JSON: a value that is no token", "{\n  \"logging\": {\"level\": \"info\"},\n  \"listen\": {\"address\": @x}\n}\n", "config: line 3: found character that cannot start any token"},
		{"a pattern: a missing comma", "routes:\n  - name: r\n    sinks: [a]\n    pattern: {\n      \"source\": [\"genesys\"],\n      \"detail-type\": [\"x\"]\n      \"detail\": {}\n    }\n", "config: line 7: did not find expected ',' or '}'"},
		{"a quoted key holding brackets", "{\n  \"a[{\": 1,\n  \"b\": 2\n  \"c\": 3\n}\n", "config: line 4: did not find expected ',' or '}'"},
		{"a flow mapping left open", "logging: {level: info,\n  format: json\nsinks: []\n", "config: line 1: did not find expected ',' or '}'"},
		{"a bracket inside a plain scalar on the first line, taken for one that opens", "k: a:[b\nc: 1\nd e\nf: 1\n", "config: line 3: could not find expected ':'"},
		{"a character that starts no token, in a collection the file leaves open", "routes: [\n  {name: a, sinks: [x]},\n  {name: b, sinks: [y]},\n  @\n", "config: line 4: found character that cannot start any token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.Parse([]byte(tc.text), env(nil))
			require.Error(t, err)
			assert.Equal(t, tc.want, err.Error())
		})
	}
}

// TestSyntaxErrorLinesAfterBlockScalars checks that a bracket or quote at the start of a line of
// a block scalar, which is text, is not taken for one that opens a collection or a string, and so
// does not move the line of a mistake below the scalar.
func TestSyntaxErrorLinesAfterBlockScalars(t *testing.T) {
	for _, tc := range []struct {
		name, text, want string
	}{
		{"a bracket in a literal scalar", "a: |\n  [\nb: 1\nc d\ne: 1\n", "config: line 4: could not find expected ':'"},
		{"a bracket in a literal scalar, the mistake last", "a: |\n  [\nb: 1\nc d\n", "config: line 4: could not find expected ':'"},
		{"a quote in a literal scalar", "a: |\n  'tis\nb: 1\nc d\ne: 1\n", "config: line 4: could not find expected ':'"},
		{"a brace in a folded scalar with indicators and a comment", "a: >-2 # text\n  {\n\n  \"x\nb: 1\nc d\ne: 1\n", "config: line 6: could not find expected ':'"},
		{"a bracket in a scalar in a sequence", "routes:\n  - |\n    [\n  - name: r\n    sinks [a]\n    match: x\n", "config: line 5: could not find expected ':'"},
		{"a bracket in a scalar under a key in a sequence", "routes:\n  - expr: |\n      [\n    sinks [a]\n    match: x\n", "config: line 4: could not find expected ':'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.Parse([]byte(tc.text), env(nil))
			require.Error(t, err)
			assert.Equal(t, tc.want, err.Error())
		})
	}
}

// jsonConfig returns a configuration in JSON of the given number of routes, with mistake written
// after the list of routes, near the end.
func jsonConfig(routes int, mistake string) string {
	var b strings.Builder
	b.WriteString("{\n  \"logging\": {\"level\": \"info\"},\n  \"routes\": [\n")
	for i := range routes {
		fmt.Fprintf(&b, "    {\n      \"name\": \"route-%d\",\n      \"sinks\": [\"a\"],\n      \"pattern\": {\"detail-type\": [\"x%d\"]}\n    },\n", i, i)
	}
	b.WriteString("    {\"name\": \"last\", \"sinks\": [\"a\"]}\n  ]" + mistake + "\n}\n")
	return b.String()
}

// TestSyntaxErrorInAJSONConfigIsQuick checks that a configuration in JSON with one comma missing
// is refused at once, on the line of the mistake: every prefix of it ends inside the outer "{",
// so a search for the longest one that parses as it stands would parse it hundreds of times.
func TestSyntaxErrorInAJSONConfigIsQuick(t *testing.T) {
	text := jsonConfig(100, "\n  \"sinks\": []") // about 10 KB
	lines := strings.Count(text, "\n")
	start := time.Now()
	_, err := config.Parse([]byte(text), env(nil))
	elapsed := time.Since(start)
	require.Error(t, err)
	assert.Equal(t, fmt.Sprintf("config: line %d: did not find expected ',' or '}'", lines-1), err.Error())
	assert.Less(t, elapsed, time.Second, "refusing a %d-byte file", len(text))
}

// TestSyntaxErrorLineSearchIsBounded checks that a mistake the parser finds only far below it (a
// key without its ':', followed by a megabyte of blank lines) is refused in a few parses of the
// file, on the line the parser had read up to, rather than after a search back through every
// line.
func TestSyntaxErrorLineSearchIsBounded(t *testing.T) {
	text := "logging:\n  level: info\n  format json\n" + strings.Repeat("\n", 1<<20) + "listen: {}\n"
	fixed := strings.Replace(text, "format json", "format: json", 1)

	start := time.Now()
	_, err := config.Parse([]byte(fixed), env(nil))
	whole := time.Since(start)
	require.Error(t, err, "the file without the mistake is refused too, for what it lacks")
	require.NotContains(t, err.Error(), "expected ':'")

	start = time.Now()
	_, err = config.Parse([]byte(text), env(nil))
	elapsed := time.Since(start)
	require.Error(t, err)
	assert.Equal(t, fmt.Sprintf("config: line %d: could not find expected ':'", strings.Count(text, "\n")), err.Error())
	assert.Less(t, elapsed, 30*whole, "refusing took %v, a whole parse %v", elapsed, whole)
}
