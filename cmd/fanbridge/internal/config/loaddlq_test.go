package config_test

import (
	"os"
	"path/filepath"
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
