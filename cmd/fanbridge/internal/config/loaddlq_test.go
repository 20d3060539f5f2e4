package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge/cmd/fanbridge/internal/config"
)

// LoadDLQ reads the dlq section where it stands in the file: anchors defined elsewhere resolve,
// line numbers are the file's, and variables outside the section need not be set.
func TestLoadDLQ(t *testing.T) {
	write := func(t *testing.T, text string) string {
		t.Helper()
		path := filepath.Join(t.TempDir(), "fanbridge.yaml")
		require.NoError(t, os.WriteFile(path, []byte(text), 0o600))
		return path
	}
	const shared = `intake:
  - path: /events
    verifiers:
      - api_key: {header: X-Api-Key, keys: ["${API_KEY}"]}
sinks:
  - name: k
    kafka:
      brokers: &brokers ["kafka-1:9092", "kafka-2:9092"]
      sasl: &sasl {mechanism: SCRAM-SHA-512, username: svc, password: "${KAFKA_PASSWORD}"}
      topic: t
routes:
  - {name: r, all: true, sinks: [k]}
dlq:
  kafka:
    brokers: *brokers
    sasl: *sasl
    topic: genesys-dlq
`
	only := env(map[string]string{"KAFKA_PASSWORD": "pw-0123456789"})
	c, err := config.LoadDLQ(write(t, shared), only)
	require.NoError(t, err, "API_KEY is not needed to read dead letters")
	d := c.DLQ
	require.NotNil(t, d.Kafka)
	assert.Equal(t, []string{"kafka-1:9092", "kafka-2:9092"}, d.Kafka.Brokers)
	assert.Equal(t, "svc", d.Kafka.SASL.Username)

	_, err = config.LoadDLQ(write(t, shared), env(nil))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "KAFKA_PASSWORD", "the section's own variables are needed")

	bad := "listen: {address: \"127.0.0.1:0\"}\n\n\ndlq:\n  file:\n    dir: /tmp/x\n    fsync: always\n    fsync_interval: nope\n"
	_, lerr := config.Load(write(t, bad), env(nil))
	_, derr := config.LoadDLQ(write(t, bad), env(nil))
	require.Error(t, lerr)
	require.Error(t, derr)
	assert.Contains(t, derr.Error(), "line 8", "the file's line numbers")
	assert.Contains(t, lerr.Error(), "line 8")

	// A dlq section in a second document is not quietly left out.
	_, derr = config.LoadDLQ(write(t, "listen: {address: \"127.0.0.1:0\"}\n---\ndlq: {file: {dir: /tmp/x}}\n"), env(nil))
	require.Error(t, derr)
	assert.Contains(t, derr.Error(), "config: the file holds more than one YAML document")

	// A dlq section, or settings in it, that merge keys (<<) bring in are read as Load reads them.
	for _, text := range []string{
		"<<: {dlq: {file: {dir: /tmp/x}}}\n",
		"listen: {address: &dir /tmp/x}\ndlq: {file: {<<: {dir: *dir}}}\n",
	} {
		c, err = config.LoadDLQ(write(t, text), env(nil))
		require.NoError(t, err, text)
		require.NotNil(t, c, text)
		require.NotNil(t, c.DLQ.File, text)
		assert.Equal(t, "/tmp/x", c.DLQ.File.Dir, text)
	}

	c, err = config.LoadDLQ(write(t, "listen: {address: \"127.0.0.1:0\"}\n"), env(nil))
	require.NoError(t, err)
	assert.Nil(t, c, "no dlq section")
}

// LoadWithoutDLQ reads a file as Load does, less the dlq section: with the section's variable
// set, Load and LoadWithoutDLQ agree on everything else, errors and their lines included,
// whatever line breaks, block scalars, anchors, merge keys or document markers the file holds;
// with it unset, LoadWithoutDLQ still loads the file.
func TestLoadWithoutDLQ(t *testing.T) {
	write := func(t *testing.T, text string) string {
		t.Helper()
		path := filepath.Join(t.TempDir(), "fanbridge.yaml")
		require.NoError(t, os.WriteFile(path, []byte(text), 0o600))
		return path
	}
	const (
		rest = "intake:\n  - {path: /events, verifiers: [{api_key: {header: X-Api-Key, keys: [\"${FB_TEST_KEY}\"]}}]}\n" +
			"sinks:\n  - {name: a, grpc: {targets: [\"127.0.0.1:1\"], insecure: true}}\n" +
			"routes:\n  - {name: all, all: true, sinks: [a]}\n"
		section = "dlq:\n  file: {dir: \"${FB_TEST_DLQ}\"}\n"
	)
	keyOnly := env(map[string]string{"FB_TEST_KEY": "key-0123456789abcdef"})
	both := env(map[string]string{"FB_TEST_KEY": "key-0123456789abcdef", "FB_TEST_DLQ": "dlq-tenant-7f3a9c"})
	for _, tc := range []struct {
		name, text string
		err        string // what both report, "" for none
	}{
		{"the section in the middle", rest + section + "logging: {level: warn}\n", ""},
		{"the section first, CRLF", strings.ReplaceAll(section+rest, "\n", "\r\n"), ""},
		{"CR line ends", strings.ReplaceAll(section+rest, "\n", "\r"), ""},
		{"a line separator in the section", rest + "dlq:\n  # copied from the wiki\u2028\n  file: {dir: \"${FB_TEST_DLQ}\"}\nlogging: {level: verbose}\n",
			"logging.level"},
		{"a next line character in the section", rest + "dlq:\n  # a\u0085\n  file: {dir: \"${FB_TEST_DLQ}\"}\nlogging: {formt: json}\n",
			"logging.formt: unknown key"},
		{"a block scalar keeping its line breaks before the section",
			"intake:\n  - {path: /events, insecure_no_auth: true}\n" +
				"sinks:\n  - name: a\n    kafka:\n      brokers: [\"127.0.0.1:1\"]\n      topic: t\n      sasl:\n        mechanism: PLAIN\n        username: u\n        password: |+\n          pw\n" +
				section + "routes:\n  - {name: all, all: true, sinks: [a]}\n", ""},
		{"a trailing document end", rest + section + "---\n", ""},
		{"an anchor in the section",
			"dlq:\n  kafka: {brokers: &brokers [\"127.0.0.1:1\"], topic: \"${FB_TEST_DLQ}\"}\n" +
				"intake:\n  - {path: /events, insecure_no_auth: true}\n" +
				"sinks:\n  - {name: a, kafka: {brokers: *brokers, topic: t}}\n" +
				"routes:\n  - {name: all, all: true, sinks: [a]}\n", ""},
		{"the section from a merge key", "<<: {dlq: {file: {dir: \"${FB_TEST_DLQ}\"}}}\n" + rest, ""},
		{"the rest from a merge key", "<<: {logging: {level: warn}, shutdown: {drain_timeout: 3s}}\n" + rest + section, ""},
		{"a flow mapping", "{intake: [{path: /events, insecure_no_auth: true}], sinks: [{name: a, grpc: {targets: [\"127.0.0.1:1\"], insecure: true}}], " +
			"routes: [{name: all, all: true, sinks: [a]}], dlq: {file: {dir: \"${FB_TEST_DLQ}\"}}}\n", ""},
		{"a mistake after the section", rest + section + "\n\nlogging: {formt: json}\n", "logging.formt: unknown key (line 11)"},
		{"the section twice", rest + section + section, "dlq: key given twice (line 9)"},
		{"a second document", rest + "---\n" + section, "more than one YAML document"},
		{"not YAML", rest + section + "logging: {level: [}\n", "line 9"},
		{"not a mapping", "- " + section, "must hold a mapping"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := write(t, tc.text)
			want, werr := config.Load(path, both)
			got, gerr := config.LoadWithoutDLQ(path, keyOnly)
			if tc.err != "" {
				require.Error(t, werr)
				require.Error(t, gerr)
				assert.Contains(t, werr.Error(), tc.err)
				assert.Equal(t, werr.Error(), gerr.Error())
				return
			}
			require.NoError(t, werr)
			require.NoError(t, gerr, "the section's variable is not needed")
			require.NotNil(t, want.DLQ)
			assert.Nil(t, got.DLQ)
			assert.Equal(t, []any{want.Listen, want.Intake, want.Sinks, want.Routes, want.Dispatch, want.Logging, want.Tracing, want.Health, want.Shutdown, want.Reload},
				[]any{got.Listen, got.Intake, got.Sinks, got.Routes, got.Dispatch, got.Logging, got.Tracing, got.Health, got.Shutdown, got.Reload})
		})
	}

	// The section's values are not checked; the rest's variables are still needed.
	_, err := config.LoadWithoutDLQ(write(t, rest+"dlq: {file: {fsync: sometimes}}\n"), keyOnly)
	assert.NoError(t, err)
	_, err = config.LoadWithoutDLQ(write(t, rest+section), env(nil))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "FB_TEST_KEY is not set")
	assert.NotContains(t, err.Error(), "FB_TEST_DLQ")
	_, err = config.LoadWithoutDLQ(filepath.Join(t.TempDir(), "missing.yaml"), keyOnly)
	assert.ErrorIs(t, err, os.ErrNotExist)
}
