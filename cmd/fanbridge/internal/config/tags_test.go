package config_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge/cmd/fanbridge/internal/config"
)

// A value, key or group of settings under an explicit YAML tag the decoder does not read is
// refused with its key named: taken as written, "!!binary c2VjcmV0" would make the API key the
// base64 text rather than the bytes it encodes, and "!app x" the text x.
func TestUnreadYAMLTagsAreRefused(t *testing.T) {
	const apiKey = `keys: ["k-0123456789"]`
	for _, tc := range []struct {
		name, from, to, wantError string
	}{
		{"!!binary api key", apiKey, "keys: [!!binary c2VjcmV0]", "config: intake[0].verifiers[0].api_key.keys[0]: has a YAML tag fanbridge does not read"},
		{"application tag on an api key", apiKey, "keys: [!foo x]", "config: intake[0].verifiers[0].api_key.keys[0]: has a YAML tag fanbridge does not read"},
		{"verbatim tag", apiKey, "keys: [!<tag:example.com,2024:key> x]", "config: intake[0].verifiers[0].api_key.keys[0]: has a YAML tag fanbridge does not read"},
		{"!!timestamp topic", "topic: t}", "topic: !!timestamp 2024-01-01}", "config: sinks[0].kafka.topic: has a YAML tag fanbridge does not read"},
		{"!!null with a value", apiKey, "keys: [k-0123456789, !!null x]", "config: intake[0].verifiers[0].api_key.keys[1]: is tagged !!null but holds a value"},
		{"!!set for a list", apiKey, "keys: !!set {k-0123456789}", "config: intake[0].verifiers[0].api_key.keys: has a YAML tag fanbridge does not read (it reads !!map here)"},
		{"tagged list of a mapping's kind", apiKey, "keys: !!omap [k-0123456789]", "config: intake[0].verifiers[0].api_key.keys: has a YAML tag fanbridge does not read (it reads !!seq here)"},
		{"tagged mapping", "kafka: {", "kafka: !app {", "config: sinks[0].kafka: has a YAML tag fanbridge does not read (it reads !!map here)"},
		{"tagged key", "topic: t}", "!app topic: t}", "config: sinks[0].kafka.topic: has a YAML tag fanbridge does not read"},
		{"tagged map key", "topic: t}", "topic_by_type: {!app a.b: t}}", `config: sinks[0].kafka.topic_by_type["a.b"]: has a YAML tag fanbridge does not read`},
		{"tagged pattern", `pattern: {source: [{prefix: "aws."}]}`, `pattern: !app '{"source": ["aws.x"]}'`, "config: routes[0].pattern: has a YAML tag fanbridge does not read"},
		{"tagged pattern value", `pattern: {source: [{prefix: "aws."}]}`, "pattern: {source: [!!binary YXdzLng=]}", "config: routes[0].pattern.source[0]: has a YAML tag fanbridge does not read"},
		{"tagged pattern key", `pattern: {source: [{prefix: "aws."}]}`, `pattern: {!app source: ["aws.x"]}`, "config: routes[0].pattern.source: has a YAML tag fanbridge does not read"},
		{"tagged merge source", "  - name: g\n    grpc:", "  - <<: !app {name: g}\n    grpc:", `config: sinks[1]["<<"]: has a YAML tag fanbridge does not read`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := edited(t, tc.from, tc.to)
			_, err := config.Parse([]byte(doc), env(nil))
			require.Error(t, err)
			assert.True(t, errors.Is(err, config.ErrInvalid))
			assert.Contains(t, err.Error(), tc.wantError)
			for _, text := range []string{"c2VjcmV0", "!foo", "!app", "example.com", "YXdzLng"} {
				assert.NotContains(t, err.Error(), text, "the error quotes the value or its tag")
			}
		})
	}
}

// The tags YAML gives values of its own kinds are read as they say.
func TestReadYAMLTags(t *testing.T) {
	doc := strings.NewReplacer(
		`keys: ["k-0123456789"]`, `keys: !!seq [!!str k-0123456789, !!str 12345678901]`,
		"topic: t}", "topic: !!str t, linger: !!null }\n    concurrency: !!int 4",
		"insecure: true", "insecure: !!bool true",
		"kafka: {", "kafka: !!map {",
		`pattern: {source: [{prefix: "aws."}]}`, `pattern: {detail: {n: [!!int 5, !!str 6, !!float "0.5", !!bool true, !!null ~]}}`,
	).Replace(minimal) + "tracing: {sample_ratio: !!float 0.25}\n"
	c, err := config.Parse([]byte(doc), env(nil))
	require.NoError(t, err)
	assert.Equal(t, []string{"k-0123456789", "12345678901"}, c.Intake[0].Verifiers[0].APIKey.Keys)
	assert.Equal(t, "t", c.Sinks[0].Kafka.Topic)
	assert.Equal(t, 4, c.Sinks[0].Concurrency)
	assert.True(t, c.Sinks[1].GRPC.Insecure)
	require.NotNil(t, c.Tracing.SampleRatio)
	assert.Equal(t, 0.25, *c.Tracing.SampleRatio)
	assert.Equal(t, `{"detail":{"n":[5,"6",0.5,true,null]}}`, string(c.Routes[0].Pattern.JSON))
}
