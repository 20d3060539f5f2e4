package config_test

import (
	"errors"
	"strings"
	"testing"

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
