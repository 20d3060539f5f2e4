package config_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge/cmd/fanbridge/internal/config"
)

// TestValuesFromTheEnvironmentNeverInErrors gives each setting that Validate or the builders it
// calls would quote a bad value through ${SECRET}: the error names the key and says the value came
// from the environment, and never shows it. The same value written in the file is quoted.
func TestValuesFromTheEnvironmentNeverInErrors(t *testing.T) {
	const secret = "hunter2 secret/value" // invalid wherever it goes
	cases := []struct {
		name      string
		from, to  string // replaced in minimal, or appended when from is ""
		wantError string
	}{
		{name: "logging.level", to: "logging: {level: %s}\n", wantError: "config: logging.level: want debug, info, warn or error, got (value from the environment)"},
		{name: "logging.format", to: "logging: {format: %s}\n", wantError: "config: logging.format: want json or text, got (value from the environment)"},
		{name: "listen.address", to: "listen: {address: %s}\n", wantError: "config: listen.address: want host:port, got (value from the environment)"},
		{name: "listen.admin_address", to: "listen: {admin_address: %s}\n", wantError: "config: listen.admin_address: want host:port, got (value from the environment)"},
		{name: "dispatch.mode", to: "dispatch: {mode: %s}\n", wantError: "config: dispatch.mode: want sync or async, got (value from the environment)"},
		{name: "dispatch.ordering_key", to: "dispatch: {ordering_key: %s}\n", wantError: "config: dispatch.ordering_key:"},
		{name: "dlq.file.fsync", to: "dlq: {file: {dir: /tmp/x, fsync: %s}}\n", wantError: "config: dlq.file.fsync:"},
		{name: "intake path", from: "path: /events", to: "path: %s", wantError: "config: intake[0].path: want a path starting with /, got (value from the environment)"},
		{name: "intake format", from: "path: /events", to: "path: /events\n    formats: [%s]", wantError: "config: intake[0].formats[0]: unknown format (value from the environment)"},
		{name: "hmac encoding", from: `- api_key: {header: X-Api-Key, keys: ["k-0123456789"]}`, to: `- hmac: {header: X-Sig, encoding: %s, secrets: [s]}`, wantError: "config: intake[0].verifiers[0].hmac: encoding must be hex, base64 or base64url, got (value from the environment)"},
		{name: "sink name", from: "- name: k\n", to: "- name: %s\n", wantError: "config: sinks[0].name:"},
		{name: "broker", from: `"127.0.0.1:9092"`, to: "%s", wantError: "config: sinks[0].kafka.brokers[0]: want host:port (credentials go in sasl), got (value from the environment)"},
		{name: "kafka key", from: "topic: t}", to: "topic: t, key: %s}", wantError: "config: sinks[0].kafka.key: want id, conversation, user or none, got (value from the environment)"},
		{name: "kafka value", from: "topic: t}", to: "topic: t, value: %s}", wantError: "config: sinks[0].kafka.value:"},
		{name: "sasl mechanism", from: "topic: t}", to: "topic: t, sasl: {mechanism: %s, username: u, password: p}}", wantError: "config: sinks[0].kafka.sasl.mechanism:"},
		{name: "kafka topic", from: "topic: t}", to: "topic: %s}", wantError: "config: sinks[0].kafka.topic:"},
		{name: "grpc target", from: `"127.0.0.1:5000"`, to: "%s", wantError: "config: sinks[1].grpc.targets[0]:"},
		{name: "route sink", from: "sinks: [k, g]", to: "sinks: [k, %s]", wantError: "config: routes[0].sinks[1]: no sink is named (value from the environment)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			doc := func(value string) string {
				if tc.from == "" {
					return minimal + strings.ReplaceAll(tc.to, "%s", value)
				}
				require.Contains(t, minimal, tc.from)
				return strings.Replace(minimal, tc.from, strings.ReplaceAll(tc.to, "%s", value), 1)
			}
			_, err := config.Parse([]byte(doc(`"${SECRET}"`)), env(map[string]string{"SECRET": secret}))
			require.Error(t, err)
			assert.True(t, errors.Is(err, config.ErrInvalid))
			assert.Contains(t, err.Error(), tc.wantError)
			assert.Contains(t, err.Error(), "(value from the environment)")
			assert.NotContains(t, err.Error(), secret)
			assert.NotContains(t, err.Error(), "hunter2")

			_, err = config.Parse([]byte(doc(`"`+secret+`"`)), env(nil))
			require.Error(t, err)
			assert.Contains(t, err.Error(), "hunter2", "a value written in the file is shown")
		})
	}
}
