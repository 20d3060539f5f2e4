package config_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fanbridge/fanbridge/cmd/fanbridge/internal/config"
)

// FuzzParse feeds configuration text to the decoder and validator: no input may panic, every
// refusal wraps ErrInvalid, no part of a value that came from the environment appears in an
// error, and a configuration that validated validates again unchanged.
func FuzzParse(f *testing.F) {
	example, err := os.ReadFile(filepath.Join("..", "..", "fanbridge.example.yaml"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(string(example))
	f.Add(minimal)
	f.Add(strings.Replace(minimal, `"k-0123456789"`, `"${API_KEY}"`, 1))
	f.Add(strings.Replace(minimal, `127.0.0.1:9092`, `${BROKER:-127.0.0.1:9092}`, 1))
	f.Add(minimal + "dlq: {file: {dir: \"$${HOME}/dlq\", fsync: interval}}\ndispatch: {mode: async, budget: 1m30s}\n")
	f.Add(minimal + "listen: {max_header_bytes: 1GiB}\nlogging: {level: info, level: debug}\n")
	f.Add("intake: [\n")
	f.Add("- a\n- b\n")
	f.Add("a: &x [*x]\n")
	f.Add(strings.Replace(minimal, `pattern: {source: [{prefix: "aws."}]}`, `pattern: '{"source": ["${SRC}", "$${X}", "${UNSET:-d}"], "n": [{"numeric": [">", 1.50]}]}'`, 1))
	f.Add(strings.Replace(minimal, `pattern: {source: [{prefix: "aws."}]}`, `pattern: '{"${K}": [${V}]'`, 1))
	f.Add(strings.Replace(minimal, `pattern: {source: [{prefix: "aws."}]}`, `cel: "event.source == '${S}' && nosuchvar &&\n true"`, 1))
	f.Add(strings.Replace(minimal, `pattern: {source: [{prefix: "aws."}]}`, `pattern: {n: [{numeric: ["${OP}", 1]}]}`, 1))
	f.Add(strings.Replace(minimal, "topic: t}", `topic: t, key: "by-${S}"}`, 1))
	f.Add(strings.Replace(minimal, `pattern: {source: [{prefix: "aws."}]}`, `pattern: &p {<<: [{a: [True]}, &q {<<: *p}], "${K}": [1]}`, 1))
	f.Add(strings.Replace(minimal, "topic: t}", "topic: t, <<: &c {sasl: {<<: *c}}}", 1) + "<<: {dlq: {file: {dir: /tmp/x}}}\n")
	f.Add(strings.Replace(minimal, "header: X-Api-Key", `header: "X Api ${S}"`, 1))
	f.Add(strings.Replace(minimal, "topic: t}", "topic: t, key: bogus}", 1) + "dispatch: {ordering_key: \"${ORDER}\"}\n")
	const secret = "fuzz-secret-7Qz"
	// A variable named by one letter holds a short value, which cannot be cut out of a message
	// wherever it stands without garbling it.
	lookup := func(name string) (string, bool) {
		switch {
		case name == "UNSET":
			return "", false
		case len(name) == 1:
			return "7Qz" + name, true
		}
		return secret + name, true
	}
	f.Fuzz(func(t *testing.T, doc string) {
		if _, err := config.Decode([]byte(doc), lookup); err != nil {
			if !errors.Is(err, config.ErrInvalid) {
				t.Fatalf("decode error does not wrap ErrInvalid: %v", err)
			}
			if showsPart(doc, err) {
				t.Fatalf("decode error shows a part of a value from the environment: %v", err)
			}
		}
		cfg, err := config.Parse([]byte(doc), lookup)
		if err != nil {
			if !errors.Is(err, config.ErrInvalid) {
				t.Fatalf("parse error does not wrap ErrInvalid: %v", err)
			}
			if showsPart(doc, err) {
				t.Fatalf("parse error shows a part of a value from the environment: %v", err)
			}
			return
		}
		before, _ := json.Marshal(cfg)
		if err := cfg.Validate(); err != nil {
			t.Fatalf("a valid configuration fails its second validation: %v", err)
		}
		if after, _ := json.Marshal(cfg); string(after) != string(before) {
			t.Fatalf("a second validation changed the configuration:\n%s\n%s", before, after)
		}
	})
}

// showsPart reports whether err shows the part every value from the environment has (in any
// case: a header name is shown in its canonical form), unless the file itself spells it.
func showsPart(doc string, err error) bool {
	return !strings.Contains(strings.ToLower(doc), "7qz") && strings.Contains(strings.ToLower(err.Error()), "7qz")
}
