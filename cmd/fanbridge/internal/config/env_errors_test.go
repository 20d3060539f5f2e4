package config_test

import (
	"encoding/pem"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge/cmd/fanbridge/internal/config"
	"github.com/fanbridge/fanbridge/signature"
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
			doc := func(value string) string { return edited(t, tc.from, strings.ReplaceAll(tc.to, "%s", value)) }
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

// TestNoPartOfAnEnvironmentValueInLibraryMessages gives CEL expressions and event patterns values
// from the environment that make them fail: a CEL compiler quotes the line it fails on, or a
// token, so cutting out the whole expanded text is not enough. No part of a value may remain; a
// value too short to cut out without garbling the message withholds the compiler's detail instead.
func TestNoPartOfAnEnvironmentValueInLibraryMessages(t *testing.T) {
	const (
		secret   = "TOPSECRETVALUE"
		withheld = "(the detail is not shown, as it could quote a value from the environment"
	)
	cases := []struct {
		name  string
		route string // the route's filter key, with ${S} in it
		value string // of S
		// wantError is in the error; wantDetail too when not empty (the compiler's detail is
		// shown), else the detail is withheld and wantError is all of the error but its end.
		wantError, wantDetail string
	}{
		{name: "cel one line", route: `cel: "event.source == '${S}' && nosuchvar"`, value: secret,
			wantError: "config: routes[0].cel: filter: invalid CEL expression", wantDetail: "undeclared reference to 'nosuchvar'"},
		{name: "cel failing line holds the value", route: `cel: "event.source == '${S}' && nosuchvar &&\n true"`, value: secret,
			wantError: "config: routes[0].cel: filter: invalid CEL expression", wantDetail: "event.source == '(value from the environment)' && nosuchvar"},
		{name: "cel value in double quotes", route: `cel: "event.source == \"${S}\" &&\n nosuchvar"`, value: secret,
			wantError: "config: routes[0].cel: filter: invalid CEL expression", wantDetail: "undeclared reference to 'nosuchvar'"},
		{name: "cel value beside other text", route: `cel: "event.source == 'aws.${S}.x' && nosuchvar &&\n true"`, value: secret,
			wantError: "config: routes[0].cel: filter: invalid CEL expression", wantDetail: "'aws.(value from the environment).x'"},
		{name: "cel value of several lines", route: `cel: "event.source == '${S}' && nosuchvar"`, value: "first line of it\nsecond line of it",
			wantError: "config: routes[0].cel: filter: invalid CEL expression " + withheld},
		{name: "cel tokens of the value", route: `cel: "event.source == ${S}"`, value: "TOPSECRET VALUE",
			wantError: "config: routes[0].cel: filter: invalid CEL expression " + withheld},
		{name: "cel short value", route: `cel: "event.source == '${S}' && nosuchvar &&\n true"`, value: "abc12",
			wantError: "config: routes[0].cel: filter: invalid CEL expression " + withheld},
		{name: "cel one character", route: `cel: "event.source == '${S}' && nosuchvar &&\n true"`, value: "x",
			wantError: "config: routes[0].cel: refused " + withheld},
		{name: "cel value on a line that compiles", route: `cel: "event.source == '${S}' &&\n nosuchvar"`, value: "abc12",
			wantError: "config: routes[0].cel: filter: invalid CEL expression", wantDetail: "<input>:2:2: undeclared reference to 'nosuchvar'"},
		{name: "pattern comparison", route: `pattern: {detail: {n: [{numeric: ["${S}", 5]}]}}`, value: secret,
			wantError: `config: routes[0].pattern: filter: pattern at "detail.n": "numeric" has an unknown comparison (value from the environment)`, wantDetail: "unknown comparison"},
		{name: "pattern as JSON", route: `pattern: '{"detail": {"n": [{"numeric": ["${S}", 5]}]}}'`, value: secret,
			wantError: `config: routes[0].pattern: filter: pattern at "detail.n": "numeric" has an unknown comparison (value from the environment)`, wantDetail: "unknown comparison"},
		// Quoted, a short value is cut out without garbling the rest.
		{name: "pattern short value", route: `pattern: {detail: {n: [{numeric: ["${S}", 5]}]}}`, value: "=<",
			wantError: `config: routes[0].pattern: filter: pattern at "detail.n": "numeric" has an unknown comparison (value from the environment)`, wantDetail: "unknown comparison"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			text := `
intake: [{path: /e, insecure_no_auth: true}]
sinks: [{name: s, grpc: {targets: ["h:1"], insecure: true}}]
routes: [{name: r, sinks: [s], ` + tc.route + `}]
`
			_, err := config.Parse([]byte(text), env(map[string]string{"S": tc.value}))
			require.Error(t, err)
			assert.True(t, errors.Is(err, config.ErrInvalid))
			msg := err.Error()
			assert.Contains(t, msg, tc.wantError)
			if tc.wantDetail == "" {
				assert.Equal(t, tc.wantError+"; write the value in the file to see it)", msg)
				return
			}
			assert.Contains(t, msg, tc.wantDetail)
			assert.NotContains(t, msg, "not shown")
			assert.NotContains(t, msg, tc.value)
			if len(tc.value) >= 8 {
				assert.NotContains(t, msg, tc.value[:8])
				assert.NotContains(t, msg, tc.value[len(tc.value)-8:])
			}
		})
	}
}

// TestNoPartOfAShortEnvironmentValueInsideALongerSetting puts a short value from the environment
// inside a longer setting that a message quotes whole, or in part, or changed (a header name in
// its canonical form), or beside another key's value: no run of four of its characters may show,
// in any case, and the message names the key.
func TestNoPartOfAShortEnvironmentValueInsideALongerSetting(t *testing.T) {
	const withheld = "(the detail is not shown, as it could quote a value from the environment"
	dir := t.TempDir()
	cert := filepath.Join(dir, "cert.pem")
	require.NoError(t, os.WriteFile(cert, nil, 0o600))
	cases := []struct {
		name     string
		from, to string // replaced in minimal, or appended when from is ""
		value    string // of S
		want     string
	}{
		{name: "kafka key", from: "topic: t}", to: `topic: t, key: "by-${S}"}`, value: "hunter2",
			want: "config: sinks[0].kafka.key: want id, conversation, user or none, got (value from the environment)"},
		{name: "api_key header", from: "header: X-Api-Key", to: `header: "X Api ${S}"`, value: "hunter2",
			want: "config: intake[0].verifiers[0].api_key: signature: header name (value from the environment) is not a valid HTTP field name"},
		{name: "hmac header, canonical and unquoted", from: `- api_key: {header: X-Api-Key, keys: ["k-0123456789"]}`,
			to: `- hmac: {header: "x-sig-${S}", encoding: hex, prefix: "v 1", secrets: ["s-0123456789"]}`, value: "hunter2",
			want: "config: intake[0].verifiers[0].hmac: refused " + withheld},
		{name: "hmac prefix", from: `- api_key: {header: X-Api-Key, keys: ["k-0123456789"]}`,
			to: `- hmac: {header: X-Sig, encoding: hex, prefix: "v1 ${S}", secrets: ["s-0123456789"]}`, value: "hunter2",
			want: "config: intake[0].verifiers[0].hmac: signature: HMAC scheme X-Sig: prefix (value from the environment) must be visible ASCII"},
		{name: "reserved intake path", from: "path: /events", to: `path: "/${S}"`, value: "readyz",
			want: "config: intake[0].path: (value from the environment) is served by fanbridge itself"},
		{name: "retry multiplier", from: "insecure: true}", to: "insecure: true}\n    retry: {multiplier: \"${S}\"}", value: "0.5",
			want: "config: sinks[1].retry: retry: invalid policy " + withheld},
		{name: "write timeout in a message about another key", to: "listen: {write_timeout: \"${S}\"}\n", value: "2s",
			want: "config: intake[0].dispatch_timeout: plus listen.read_timeout and the dead-letter writes that may end after it must be shorter than listen.write_timeout: a body may take read_timeout to arrive, and its answer must be written before write_timeout\n"},
		{name: "key file in a message about the pair", from: "topic: t}", to: `topic: t, tls: {cert_file: "` + cert + `", key_file: "/nowhere/${S}/key.pem"}}`, value: "abc12",
			want: "config: sinks[0].kafka.tls: open (value from the environment): no such file or directory"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			doc := edited(t, tc.from, tc.to)
			_, err := config.Parse([]byte(doc), env(map[string]string{"S": tc.value}))
			require.Error(t, err)
			assert.True(t, errors.Is(err, config.ErrInvalid))
			msg := err.Error()
			assert.Contains(t, msg+"\n", tc.want)
			lower := strings.ToLower(msg)
			v := strings.ToLower(tc.value)
			for i, w := 0, min(len(v), 4); i+w <= len(v); i++ {
				assert.NotContains(t, lower, v[i:i+w], "a part of the value from the environment shows")
			}
		})
	}
}

// TestAValueFromTheEnvironmentIsCutOnlyFromMessagesAboutItsKey gives one key a value from the
// environment that is also a word of a message about another key: that message is not garbled.
func TestAValueFromTheEnvironmentIsCutOnlyFromMessagesAboutItsKey(t *testing.T) {
	doc := strings.Replace(minimal, "topic: t}", "topic: t, key: bogus}", 1) + "dispatch: {ordering_key: \"${ORDER}\"}\n"
	_, err := config.Parse([]byte(doc), env(map[string]string{"ORDER": "conversation"}))
	require.Error(t, err)
	assert.Equal(t, `config: sinks[0].kafka.key: want id, conversation, user or none, got "bogus"`, err.Error())
}

// TestSinkBuildErrorsAfterValidationAreRedacted changes a sink's TLS file between validation and
// building, as an operator may while the service reloads: the builder's error quotes the file's
// path, which came from the environment, and SinkError cuts it out as validation would. The same
// path written in the file is shown.
func TestSinkBuildErrorsAfterValidationAreRedacted(t *testing.T) {
	srv := httptest.NewTLSServer(nil)
	defer srv.Close()
	dir := filepath.Join(t.TempDir(), "tenant-7f3a9c-token")
	require.NoError(t, os.Mkdir(dir, 0o700))
	ca := filepath.Join(dir, "ca.pem")
	for _, fromEnv := range []bool{true, false} {
		require.NoError(t, os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600))
		value := strconv.Quote(ca)
		if fromEnv {
			value = `"${CA_FILE}"`
		}
		doc := strings.Replace(minimal, "topic: t}", "topic: t, tls: {ca_file: "+value+"}}", 1)
		cfg, err := config.Parse([]byte(doc), env(map[string]string{"CA_FILE": ca}))
		require.NoError(t, err)

		require.NoError(t, os.WriteFile(ca, []byte("not a certificate"), 0o600))
		_, berr := cfg.Sinks[0].Kafka.ClientConfig()
		require.Error(t, berr)
		require.Contains(t, berr.Error(), "tenant-7f3a9c-token", "the builder quotes the path")

		err = cfg.SinkError(0, berr)
		assert.Contains(t, err.Error(), `config: sinks[0] ("k"): `)
		if fromEnv {
			assert.NotContains(t, err.Error(), "tenant-7f3a9c-token")
			assert.NotContains(t, err.Error(), "ca.pem")
		} else {
			assert.Contains(t, err.Error(), ca, "a value written in the file is shown")
		}
	}
}

// TestSecretsTakeNoDefault gives each secret setting ${VAR:-default}: with VAR unset or empty the
// file is refused, naming the key and the variable and never the default, which would otherwise
// be a working key anyone who reads the file knows. With VAR set, it loads; settings that are
// not secret keep their defaults.
func TestSecretsTakeNoDefault(t *testing.T) {
	whsec, err := signature.NewStandardWebhooksSecret()
	require.NoError(t, err)
	const apiKey = `- api_key: {header: X-Api-Key, keys: ["k-0123456789"]}`
	cases := []struct {
		name, from, to, path, value string
	}{
		{"api key", `keys: ["k-0123456789"]`, `keys: ["${V:-fallback-key-123}"]`, "intake[0].verifiers[0].api_key.keys[0]", "k-0123456789"},
		{"basic password", apiKey, `- basic: {users: {ops: "${V:-fallback-key-123}"}}`, "intake[0].verifiers[0].basic.users.ops", "a-password"},
		{"bearer token", apiKey, `- bearer: {tokens: ["${V:-fallback-key-123}"]}`, "intake[0].verifiers[0].bearer.tokens[0]", "a-token"},
		{"hmac secret", apiKey, `- hmac: {header: X-Sig, encoding: hex, secrets: ["${V:-fallback-key-123}"]}`, "intake[0].verifiers[0].hmac.secrets[0]", "a-secret"},
		{"github secret", apiKey, `- github: {secrets: ["${V:-fallback-key-123}"]}`, "intake[0].verifiers[0].github.secrets[0]", "a-secret"},
		{"open messaging secret", apiKey, `- open_messaging: {secrets: ["x${V:-fallback-key-123}"]}`, "intake[0].verifiers[0].open_messaging.secrets[0]", "a-secret"},
		{"standard webhooks key", apiKey, `- standard_webhooks: {keys: ["${V:-fallback-key-123}"]}`, "intake[0].verifiers[0].standard_webhooks.keys[0]", whsec},
		{"sasl password", "topic: t}", `topic: t, sasl: {mechanism: plain, username: u, password: "${V:-fallback-key-123}"}}`, "sinks[0].kafka.sasl.password", "a-password"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			doc := edited(t, tc.from, tc.to)
			for _, vars := range []map[string]string{nil, {"V": ""}} {
				_, err := config.Parse([]byte(doc), env(vars))
				require.Error(t, err)
				assert.Contains(t, err.Error(), "config: "+tc.path+": a key, secret, token or password may not fall back to the default of ${V:-...}: set V")
				assert.NotContains(t, err.Error(), "fallback-key-123")
			}
			_, err := config.Parse([]byte(doc), env(map[string]string{"V": tc.value}))
			require.NoError(t, err)
		})
	}
	t.Run("other settings keep their defaults", func(t *testing.T) {
		doc := strings.Replace(minimal, `"127.0.0.1:9092"`, `"${BROKER:-127.0.0.1:9092}"`, 1)
		doc = strings.Replace(doc, "topic: t}", `topic: t, sasl: {mechanism: plain, username: "${USER_NAME:-fanbridge}", password: "${P}"}}`, 1)
		cfg, err := config.Parse([]byte(doc), env(map[string]string{"P": "a-password"}))
		require.NoError(t, err)
		assert.Equal(t, []string{"127.0.0.1:9092"}, cfg.Sinks[0].Kafka.Brokers)
		assert.Equal(t, "fanbridge", cfg.Sinks[0].Kafka.SASL.Username)
	})
}
