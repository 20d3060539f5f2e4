package config_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge/cmd/fanbridge/internal/config"
)

// TestPatternAliasesAreBounded gives event patterns YAML aliases that never end (one refers to
// the mapping holding it) or that multiply the text level by level: each is refused at once,
// naming the pattern's key, rather than written out without end. A pattern nested as deep as
// the filter allows, written out, still validates.
func TestPatternAliasesAreBounded(t *testing.T) {
	// Nine levels of ten aliases each would be a billion values written out.
	var laughs strings.Builder
	fmt.Fprintf(&laughs, "\n        l0: &l0 [%s\"x\"]", strings.Repeat(`"x", `, 9))
	for i := 1; i <= 9; i++ {
		fmt.Fprintf(&laughs, "\n        l%d: &l%[1]d [%s*l%d]", i, strings.Repeat(fmt.Sprintf("*l%d, ", i-1), 9), i-1)
	}
	deepest := strings.Repeat("{a: ", 31) + "[1]" + strings.Repeat("}", 31)
	cases := []struct {
		name, pattern, wantError string
	}{
		{name: "alias to its own mapping", pattern: "&x {a: [*x]}",
			wantError: "config: routes[0].pattern: the pattern is nested more than 32 levels deep (does an alias refer to the mapping or list that holds it?)"},
		{name: "alias to its own list", pattern: "{a: &x [*x]}",
			wantError: "config: routes[0].pattern: the pattern is nested more than 32 levels deep"},
		{name: "aliases multiplying", pattern: "\n      detail:" + laughs.String(),
			wantError: "config: routes[0].pattern: the pattern is larger than 65536 bytes as JSON, its aliases written out"},
		{name: "as deep as the filter allows", pattern: deepest},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			doc := strings.Replace(minimal, `pattern: {source: [{prefix: "aws."}]}`, "pattern: "+tc.pattern, 1)
			done := make(chan error, 1)
			go func() {
				_, err := config.Parse([]byte(doc), env(nil))
				done <- err
			}()
			var err error
			select {
			case err = <-done:
			case <-time.After(30 * time.Second):
				t.Fatal("Parse still writing the pattern out after 30s")
			}
			if tc.wantError == "" {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.wantError)
		})
	}
}

// TestAliasesAreBounded repeats a list of verifiers through aliases in many intakes, each
// verifier itself an alias of one holding many keys: a 26 KB file that, written out, would be
// 64 million keys, which exhausted memory. It is refused quickly, with one error that says why;
// settings repeated through aliases a reasonable number of times still decode.
func TestAliasesAreBounded(t *testing.T) {
	const n = 400
	var y strings.Builder
	y.WriteString("intake:\n  - path: /a0\n    verifiers: &vs\n      - &v {api_key: {header: X-K, keys: [")
	for i := range n {
		if i > 0 {
			y.WriteString(",")
		}
		fmt.Fprintf(&y, "\"key-%04d-abcdefgh\"", i)
	}
	y.WriteString("]}}\n")
	for range n - 1 {
		y.WriteString("      - *v\n")
	}
	for j := 1; j < n; j++ {
		fmt.Fprintf(&y, "  - {path: /a%d, verifiers: *vs}\n", j)
	}
	done := make(chan error, 1)
	go func() {
		_, err := config.Parse([]byte(y.String()), env(nil))
		done <- err
	}()
	var err error
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Parse still expanding the aliases after 30s")
	}
	require.Error(t, err)
	assert.Contains(t, err.Error(), "the aliases of the file expand to more than")
	assert.Equal(t, 1, strings.Count(err.Error(), "aliases of the file"), "one error, not one per value left")

	// Ten sinks sharing one retry policy and one set of client settings, and nine routes sharing a
	// pattern, as a configuration written by hand would repeat them.
	sinks := "sinks:\n  - name: s0\n    kafka: &client {brokers: [\"127.0.0.1:9092\"], topic: t}\n    retry: &policy {max_attempts: 3}\n"
	for i := 1; i < 10; i++ {
		sinks += fmt.Sprintf("  - {name: s%d, kafka: *client, retry: *policy}\n", i)
	}
	doc := edited(t, "sinks:\n", sinks) + "  - {name: r1, pattern: &p {source: [{prefix: \"aws.\"}]}, sinks: [s0]}\n"
	for i := 2; i < 10; i++ {
		doc += fmt.Sprintf("  - {name: r%d, pattern: *p, sinks: [s%d]}\n", i, i)
	}
	_, err = config.Parse([]byte(doc), env(nil))
	require.NoError(t, err)

	// A large pattern shared by many routes is written out once: 120 routes naming one pattern
	// of 900 values are 108,000 values, which the budget would refuse if each counted again.
	var shared strings.Builder
	shared.WriteString("intake: [{path: /e, insecure_no_auth: true}]\nsinks: [{name: s, grpc: {targets: [\"127.0.0.1:1\"], insecure: true}}]\nroutes:\n")
	shared.WriteString("  - name: r0\n    sinks: [s]\n    pattern: &p\n      detail:\n        eventBody:\n          queueId: [")
	for i := range 900 {
		if i > 0 {
			shared.WriteString(", ")
		}
		fmt.Fprintf(&shared, "q%d", i)
	}
	shared.WriteString("]\n")
	for i := 1; i < 120; i++ {
		fmt.Fprintf(&shared, "  - {name: r%d, sinks: [s], pattern: *p}\n", i)
	}
	cfg, err := config.Parse([]byte(shared.String()), env(nil))
	require.NoError(t, err)
	assert.JSONEq(t, string(cfg.Routes[0].Pattern.JSON), string(cfg.Routes[119].Pattern.JSON))
}
