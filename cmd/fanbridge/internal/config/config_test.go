package config_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/cmd/fanbridge/internal/config"
	"github.com/fanbridge/fanbridge/eventbridge"
	"github.com/fanbridge/fanbridge/internal/testpki"
	"github.com/fanbridge/fanbridge/retry"
	"github.com/fanbridge/fanbridge/signature"
	"github.com/fanbridge/fanbridge/sink/kafkasink"
)

// hugeQueueSizeError is what a queue size of 10^11 or more gets: a range error where an int holds
// it, and where it does not (32 bits) a refusal to store its low bits (2^60 would read 0, the
// default).
var hugeQueueSizeError = map[bool]string{
	true:  "config: sinks[0].queue_size: want 0 (the default) to 1048576",
	false: "config: sinks[0].queue_size: want a whole number that fits in 32 bits",
}[strconv.IntSize == 64]

// env returns a Lookup over a fixed map, so tests never depend on the process environment.
func env(m map[string]string) config.Lookup {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func exampleEnv(t *testing.T) map[string]string {
	t.Helper()
	whsec, err := signature.NewStandardWebhooksSecret()
	require.NoError(t, err)
	return map[string]string{
		"EVENTBRIDGE_API_KEY":        "example-api-key-0123456789",
		"WEBHOOK_HMAC_SECRET":        "example-hmac-secret",
		"STANDARD_WEBHOOKS_SECRET":   whsec,
		"KAFKA_PASSWORD":             "example-kafka-password",
		"EVENTBRIDGE_BASIC_PASSWORD": "example-basic-password",
		"OPEN_MESSAGING_SECRET":      "example-open-messaging-secret",
		"GITHUB_WEBHOOK_SECRET":      "example-github-secret",
		"WEBHOOK_BEARER_TOKEN":       "example-bearer-token",
	}
}

func TestExampleConfigParsesAndValidates(t *testing.T) {
	cfg, err := config.Load(filepath.Join("..", "..", "fanbridge.example.yaml"), env(exampleEnv(t)))
	require.NoError(t, err)
	assert.Len(t, cfg.Intake, 2)
	assert.Len(t, cfg.Sinks, 4)
	assert.Len(t, cfg.Routes, 4)
	assert.Equal(t, "scram-sha-512", cfg.Sinks[0].Kafka.SASL.Mechanism)
	assert.Equal(t, "example-kafka-password", cfg.Sinks[0].Kafka.SASL.Password)
	assert.Equal(t, []string{"kafka-1:9092"}, cfg.Sinks[0].Kafka.Brokers, "the ${KAFKA_BROKER:-...} default applies")
	assert.Equal(t, "/var/lib/fanbridge/dlq", cfg.DLQ.File.Dir)
	assert.Equal(t, "127.0.0.1:9090", cfg.Listen.AdminAddress)
	assert.JSONEq(t, `{"detail-type":[{"suffix":".customer.end"}],"detail":{"eventBody":{"mediaType":["VOICE","CHAT","CALLBACK"],"interactingDurationMs":[{"numeric":[">",120000]}]}}}`,
		string(cfg.Routes[0].Pattern.JSON))
	assert.Equal(t, `{"detail-type": ["v2.detail.events.conversation.{id}.wrapup"]}`, string(cfg.Routes[1].Pattern.JSON))
	for i := range cfg.Routes {
		_, err := cfg.Routes[i].Build(cfg.CEL)
		require.NoError(t, err, cfg.Routes[i].Name)
	}
	for i := range cfg.Intake {
		v, err := cfg.Intake[i].Verifier()
		require.NoError(t, err)
		require.NotNil(t, v)
	}
}

func TestExampleConfigNeedsItsSecrets(t *testing.T) {
	e := exampleEnv(t)
	delete(e, "KAFKA_PASSWORD")
	_, err := config.Load(filepath.Join("..", "..", "fanbridge.example.yaml"), env(e))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "config: sinks[0].kafka.sasl.password: environment variable KAFKA_PASSWORD is not set")
}

// A comma list of brokers in the example's variable, as the examples' KAFKA_BROKERS holds, is
// refused with what to do instead, without showing the value.
func TestExampleConfigBrokerListVariable(t *testing.T) {
	e := exampleEnv(t)
	e["KAFKA_BROKER"] = "kafka-1.internal:9092,kafka-2.internal:9092"
	_, err := config.Load(filepath.Join("..", "..", "fanbridge.example.yaml"), env(e))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "config: sinks[0].kafka.brokers[0]: one broker per entry, got (value from the environment): list several as separate entries")
	assert.NotContains(t, err.Error(), "kafka-2.internal")
}

// minimal is a valid configuration the bad cases below change one thing in.
const minimal = `
intake:
  - path: /events
    verifiers:
      - api_key: {header: X-Api-Key, keys: ["k-0123456789"]}
sinks:
  - name: k
    kafka: {brokers: ["127.0.0.1:9092"], topic: t}
  - name: g
    grpc: {targets: ["127.0.0.1:5000"], insecure: true}
routes:
  - name: r
    pattern: {source: [{prefix: "aws."}]}
    sinks: [k, g]
`

// edited returns minimal with from replaced by to, or with to appended when from is "".
func edited(t *testing.T, from, to string) string {
	t.Helper()
	if from == "" {
		return minimal + to
	}
	require.Contains(t, minimal, from, "the case must change something")
	return strings.Replace(minimal, from, to, 1)
}

func TestMinimalConfigDefaults(t *testing.T) {
	cfg, err := config.Parse([]byte(minimal), env(nil))
	require.NoError(t, err)
	assert.Equal(t, ":8080", cfg.Listen.Address)
	assert.Equal(t, 5*time.Second, cfg.Listen.ReadHeaderTimeout.D())
	assert.Equal(t, 4*time.Second, cfg.Intake[0].DispatchTimeout.D())
	assert.EqualValues(t, 260<<10, cfg.Intake[0].MaxBody)
	assert.Equal(t, "sync", cfg.Dispatch.Mode)
	assert.Equal(t, "none", cfg.Dispatch.OrderingKey)
	assert.Equal(t, "id", cfg.Sinks[0].Kafka.Key)
	assert.Equal(t, "data", cfg.Sinks[0].Kafka.Value)
	assert.Equal(t, 5*time.Second, cfg.Sinks[1].GRPC.CallTimeout.D())
	assert.Equal(t, "json", cfg.Logging.Format)
	assert.Equal(t, time.Hour, cfg.Dispatch.Dedup.Window.D())
	assert.Equal(t, 100_000, cfg.Dispatch.Dedup.Size)
}

// A file dead-letter queue syncs every write unless told otherwise, and once a second with
// fsync: interval.
func TestFileDLQDefaults(t *testing.T) {
	cfg, err := config.Parse([]byte(minimal+"dlq: {file: {dir: /tmp/x}}\n"), env(nil))
	require.NoError(t, err)
	assert.Equal(t, "always", cfg.DLQ.File.Fsync)
	cfg, err = config.Parse([]byte(minimal+"dlq: {file: {dir: /tmp/x, fsync: interval}}\n"), env(nil))
	require.NoError(t, err)
	assert.Equal(t, time.Second, cfg.DLQ.File.FsyncInterval.D())
}

// Sizes take binary (KiB, MiB, GiB) and decimal (KB, MB, GB) units, or none for bytes.
func TestSizeUnits(t *testing.T) {
	for in, want := range map[string]int64{
		"1KiB": 1 << 10, "2MiB": 2 << 20, "1GiB": 1 << 30,
		"3KB": 3_000, "2MB": 2_000_000, "1GB": 1_000_000_000,
		"7B": 7, "300": 300,
	} {
		cfg, err := config.Parse([]byte(minimal+"dlq: {file: {dir: /tmp/x, max_segment_size: "+in+"}}\n"), env(nil))
		require.NoError(t, err, in)
		assert.EqualValues(t, want, cfg.DLQ.File.MaxSegmentSize, in)
	}
}

func TestBadConfigsNameTheKey(t *testing.T) {
	// Each case replaces text in minimal (or gives its own document) and expects an error line
	// naming the key.
	cases := []struct {
		name      string
		from, to  string
		doc       string
		wantError string
	}{
		{name: "unknown top-level key", from: "intake:", to: "intkae: []\nintake:", wantError: "config: intkae: unknown key (line 2)"},
		{name: "unknown nested key", from: "topic: t}", to: "topic: t, brokerz: []}", wantError: "config: sinks[0].kafka.brokerz: unknown key"},
		{name: "no brokers", from: `brokers: ["127.0.0.1:9092"], `, to: "", wantError: "config: sinks[0].kafka.brokers: at least one broker is required"},
		{name: "bad broker", from: `"127.0.0.1:9092"`, to: `"kafka"`, wantError: `config: sinks[0].kafka.brokers[0]: want host:port (credentials go in sasl), got "kafka"`},
		{name: "brokers as a comma list", from: `"127.0.0.1:9092"`, to: `"kafka-1:9092,kafka-2:9092"`, wantError: `config: sinks[0].kafka.brokers[0]: one broker per entry, got "kafka-1:9092,kafka-2:9092": list several as separate entries`},
		{name: "dlq brokers as a comma list", doc: minimal + "dlq: {kafka: {brokers: [\"a:1\", \"b:1,c:1\"], topic: d}}\n", wantError: `config: dlq.kafka.brokers[1]: one broker per entry, got "b:1,c:1": list several as separate entries`},
		{name: "broker with credentials", from: `"127.0.0.1:9092"`, to: `"svc:hunter2@kafka:9092"`, wantError: `config: sinks[0].kafka.brokers[0]: want host:port (credentials go in sasl), got "…@kafka:9092" (what came before the @ is not shown)`},
		{name: "broker with a token", from: `"127.0.0.1:9092"`, to: `"s3cr3ttoken@kafka:9092"`, wantError: `config: sinks[0].kafka.brokers[0]: want host:port (credentials go in sasl), got "…@kafka:9092" (what came before the @ is not shown)`},
		{name: "broker with credentials, no port", from: `"127.0.0.1:9092"`, to: `"svc:hunter2@kafka"`, wantError: `config: sinks[0].kafka.brokers[0]: want host:port (credentials go in sasl), got "…@kafka" (what came before the @ is not shown)`},
		{name: "broker with a named port", from: `"127.0.0.1:9092"`, to: `"kafka:http"`, wantError: `config: sinks[0].kafka.brokers[0]: want host:port (credentials go in sasl), got "kafka:http"`},
		{name: "broker without a host", from: `"127.0.0.1:9092"`, to: `":9092"`, wantError: `config: sinks[0].kafka.brokers[0]: want host:port (credentials go in sasl), got ":9092"`},
		{name: "grpc target with credentials", from: `"127.0.0.1:5000"`, to: `"svc:hunter2@consumer:5000"`, wantError: `config: sinks[1].grpc.targets[0]: want host:port or a gRPC URI such as dns:///name:443, got "…@consumer:5000"`},
		{name: "listen address with credentials", doc: minimal + "listen: {address: \"a:hunter2@b:c:1\"}\n", wantError: `config: listen.address: want host:port, got "…@b:c:1"`},
		{name: "admin address without a port", doc: minimal + "listen: {admin_address: \"localhost\"}\n", wantError: `config: listen.admin_address: want host:port, got "localhost"`},
		{name: "admin address with credentials", doc: minimal + "listen: {admin_address: \"a:hunter2@b:c:1\"}\n", wantError: `config: listen.admin_address: want host:port, got "…@b:c:1"`},
		{name: "admin address the same as the intake's", doc: minimal + "listen: {address: \"127.0.0.1:8080\", admin_address: \"127.0.0.1:8080\"}\n", wantError: "config: listen.admin_address: must differ from listen.address"},
		{name: "two topic choices", from: "topic: t}", to: "topic: t, topic_template: \"x.{type}\"}", wantError: "config: sinks[0].kafka: want exactly one of topic, topic_by_type or topic_template"},
		{name: "bad topic", from: "topic: t}", to: "topic: \"a b\"}", wantError: "config: sinks[0].kafka.topic:"},
		{name: "bad template placeholder", from: "topic: t}", to: "topic_template: \"x.{typo}\"}", wantError: "config: sinks[0].kafka.topic_template: template \"x.{typo}\" uses unknown placeholder {typo}"},
		{name: "bad topic_by_type topic", from: "topic: t}", to: "topic_by_type: {\"v2.users.{id}.presence\": \"no way\"}}", wantError: `config: sinks[0].kafka.topic_by_type["v2.users.{id}.presence"]:`},
		{name: "reference in a topic_by_type key", from: "topic: t}", to: "topic_by_type: {\"${PRESENCE_TYPE}\": presence}}",
			wantError: `config: sinks[0].kafka.topic_by_type["${PRESENCE_TYPE}"]: a key may not hold a ${...} reference: references expand in values only, so write the key out ($${ is a literal ${) (line 8)`},
		{name: "reference in a Basic user name", from: `- api_key: {header: X-Api-Key, keys: ["k-0123456789"]}`, to: `- basic: {users: {"${EB_USER}": "${EB_PASSWORD}"}}`,
			wantError: `config: intake[0].verifiers[0].basic.users["${EB_USER}"]: a key may not hold a ${...} reference`},
		{name: "reference in a pattern key", from: `pattern: {source: [{prefix: "aws."}]}`, to: `pattern: {detail: {"${FIELD}": [x]}}`,
			wantError: `config: routes[0].pattern.detail["${FIELD}"]: a key may not hold a ${...} reference`},
		{name: "YAML's True in a pattern", from: `pattern: {source: [{prefix: "aws."}]}`, to: `pattern: {detail: {urgent: [True]}}`,
			wantError: `config: routes[0].pattern.detail.urgent[0]: want true or false, got "True" (quote it for the text) (line 13)`},
		{name: "YAML's FALSE in a pattern", from: `pattern: {source: [{prefix: "aws."}]}`, to: `pattern: {detail: {urgent: [FALSE]}}`,
			wantError: `config: routes[0].pattern.detail.urgent[0]: want true or false, got "FALSE"`},
		{name: "YAML's hexadecimal number in a pattern", from: `pattern: {source: [{prefix: "aws."}]}`, to: `pattern: {detail: {code: [0x1F]}}`,
			wantError: `config: routes[0].pattern.detail.code[0]: want a number as JSON writes it, got "0x1F" (quote it for the text) (line 13)`},
		{name: "YAML's .5 in a pattern", from: `pattern: {source: [{prefix: "aws."}]}`, to: `pattern: {detail: {d: [{numeric: [">", .5]}]}}`,
			wantError: `config: routes[0].pattern.detail.d[0].numeric[1]: want a number as JSON writes it, got ".5"`},
		{name: "YAML's .inf in a pattern", from: `pattern: {source: [{prefix: "aws."}]}`, to: `pattern: {detail: {d: [{numeric: ["<", .inf]}]}}`,
			wantError: `config: routes[0].pattern.detail.d[0].numeric[1]: want a number as JSON writes it, got ".inf"`},
		{name: "empty topic_by_type", from: "topic: t}", to: "topic_by_type: {}}",
			wantError: "config: sinks[0].kafka.topic_by_type: is empty: map a type to a topic, or give fallback_topic"},
		{name: "fallback without map", from: "topic: t}", to: "topic: t, fallback_topic: f}", wantError: "config: sinks[0].kafka.fallback_topic: only applies with topic_by_type"},
		{name: "bad key", from: "topic: t}", to: "topic: t, key: partition}", wantError: `config: sinks[0].kafka.key: want id, conversation, user or none, got "partition"`},
		{name: "bad value", from: "topic: t}", to: "topic: t, value: body}", wantError: `config: sinks[0].kafka.value: want data or raw, got "body"`},
		{name: "bad sasl mechanism", from: "topic: t}", to: "topic: t, sasl: {mechanism: md5, username: u, password: p}}", wantError: "config: sinks[0].kafka.sasl.mechanism: want plain, scram-sha-256 or scram-sha-512"},
		{name: "sasl without password", from: "topic: t}", to: "topic: t, sasl: {mechanism: plain, username: u}}", wantError: "config: sinks[0].kafka.sasl.password: is required"},
		{name: "missing ca file", from: "topic: t}", to: "topic: t, tls: {ca_file: /nonexistent/ca.pem}}", wantError: "config: sinks[0].kafka.tls.ca_file:"},
		{name: "missing grpc ca file", from: "insecure: true}", to: "tls: {ca_file: /nonexistent/ca.pem}}", wantError: "config: sinks[1].grpc.tls.ca_file:"},
		{name: "cert without key", from: "topic: t}", to: "topic: t, tls: {cert_file: /x.pem}}", wantError: "config: sinks[0].kafka.tls.key_file: cert_file and key_file go together"},
		{name: "grpc insecure and tls", from: "insecure: true}", to: "insecure: true, tls: {}}", wantError: "config: sinks[1].grpc.insecure: cannot be combined with tls"},
		{name: "grpc no targets", from: `targets: ["127.0.0.1:5000"], `, to: "", wantError: "config: sinks[1].grpc.targets: at least one target is required"},
		{name: "grpc target with comma", from: `"127.0.0.1:5000"`, to: `"a:1,b:2"`, wantError: "config: sinks[1].grpc.targets[0]: one target per entry"},
		{name: "sink with no kind", from: "  - name: g\n    grpc: {targets: [\"127.0.0.1:5000\"], insecure: true}", to: "  - name: g", wantError: "config: sinks[1]: one of kafka or grpc is required"},
		{name: "duplicate sink name", from: "- name: g", to: "- name: k", wantError: `config: sinks[1].name: "k" names another sink too`},
		{name: "bad retry policy", from: "topic: t}", to: "topic: t}\n    retry: {multiplier: 0.5}", wantError: "config: sinks[0].retry:"},
		{name: "no attempt budget without max_age", from: "topic: t}", to: "topic: t}\n    retry: {max_attempts: -1}", wantError: "config: sinks[0].retry.max_age: is required with a negative max_attempts (no attempt budget), to end the retries"},
		{name: "duration not a duration", from: "topic: t}", to: "topic: t}\n    retry: {max_interval: soon}", wantError: `config: sinks[0].retry.max_interval: want a duration such as 5s or 1m30s, got "soon"`},
		{name: "queue size past what a channel can hold", from: "topic: t}", to: "topic: t}\n    queue_size: 1152921504606846976", wantError: hugeQueueSizeError},
		{name: "queue size past memory", from: "topic: t}", to: "topic: t}\n    queue_size: 100000000000", wantError: hugeQueueSizeError},
		{name: "negative queue size", from: "topic: t}", to: "topic: t}\n    queue_size: -1", wantError: "config: sinks[0].queue_size: want 0 (the default) to 1048576"},
		{name: "concurrency past memory", from: "topic: t}", to: "topic: t}\n    concurrency: 50000000", wantError: "config: sinks[0].concurrency: want 0 (the default) to 4096"},
		{name: "breaker failures past what the breaker counts", from: "topic: t}", to: "topic: t}\n    breaker: {failures: 2147483648}", wantError: "config: sinks[0].breaker.failures: want "},
		{name: "breaker failures below off", from: "topic: t}", to: "topic: t}\n    breaker: {failures: -2}", wantError: "config: sinks[0].breaker.failures: want -1 (off), 0 (default) or a positive count"},
		{name: "negative concurrency", from: "topic: t}", to: "topic: t}\n    concurrency: -1", wantError: "config: sinks[0].concurrency: want 0 (the default) to 4096"},
		{name: "number not a number", from: "topic: t}", to: "topic: t}\n    concurrency: many", wantError: `config: sinks[0].concurrency: want a whole number, got "many"`},
		{name: "duplicate route name", from: "routes:\n  - name: r", to: "routes:\n  - name: r\n    pattern: {source: [{prefix: \"aws.\"}]}\n    sinks: [k]\n  - name: r",
			wantError: `config: routes[1].name: "r" names another route too`},
		{name: "bad route name", from: "- name: r\n", to: "- name: \"r 1\"\n", wantError: `config: routes[0].name: want a name of letters, digits, '.', '_' or '-', got "r 1"`},
		{name: "route to unknown sink", from: "sinks: [k, g]", to: "sinks: [k, nope]", wantError: `config: routes[0].sinks[1]: no sink is named "nope"`},
		{name: "bad pattern", from: `pattern: {source: [{prefix: "aws."}]}`, to: `pattern: {source: [{prefix: 5}]}`, wantError: "config: routes[0].pattern: filter:"},
		{name: "bad pattern JSON", from: `pattern: {source: [{prefix: "aws."}]}`, to: `pattern: '{"source": '`, wantError: "config: routes[0].pattern: filter:"},
		{name: "bad CEL", from: `pattern: {source: [{prefix: "aws."}]}`, to: `cel: "data.x ==="`, wantError: "config: routes[0].cel:"},
		{name: "pattern and cel", from: `pattern: {source: [{prefix: "aws."}]}`, to: `pattern: {source: ["a"]}` + "\n    cel: \"true\"", wantError: "config: routes[0]: want exactly one of pattern, cel or all"},
		{name: "route without sinks", from: "sinks: [k, g]", to: "sinks: []", wantError: "config: routes[0].sinks: at least one sink is required"},
		{name: "intake without verifiers", from: "    verifiers:\n      - api_key: {header: X-Api-Key, keys: [\"k-0123456789\"]}\n", to: "", wantError: "config: intake[0].verifiers: at least one verifier is required"},
		{name: "verifier with two kinds", from: `- api_key: {header: X-Api-Key, keys: ["k-0123456789"]}`, to: `- {api_key: {header: X-Api-Key, keys: ["k-0123456789"]}, bearer: {tokens: [t]}}`, wantError: "config: intake[0].verifiers[0]: want exactly one of"},
		{name: "api key without keys", from: `keys: ["k-0123456789"]`, to: `keys: []`, wantError: "config: intake[0].verifiers[0].api_key:"},
		{name: "negative replay cache", from: `- api_key: {header: X-Api-Key, keys: ["k-0123456789"]}`, to: `- standard_webhooks: {keys: ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"], replay_cache: -100000}`, wantError: `config: intake[0].verifiers[0].standard_webhooks: replay_cache must be 0 (off) or the number of ids to remember, got -100000`},
		{name: "hmac bad encoding", from: `- api_key: {header: X-Api-Key, keys: ["k-0123456789"]}`, to: `- hmac: {header: X-Sig, encoding: rot13, secrets: [s]}`, wantError: `config: intake[0].verifiers[0].hmac: encoding must be hex, base64 or base64url, got "rot13"`},
		{name: "short standard webhooks secret", from: `- api_key: {header: X-Api-Key, keys: ["k-0123456789"]}`, to: `- standard_webhooks: {keys: ["whsec_c2hvcnQ="]}`, wantError: "config: intake[0].verifiers[0].standard_webhooks:"},
		{name: "reserved path", from: "path: /events", to: "path: /metrics", wantError: "config: intake[0].path: /metrics is served by fanbridge itself"},
		{name: "star source", from: "path: /events", to: "path: /events\n    allowed_sources: [\"*\"]", wantError: "config: intake[0].allowed_sources[0]: would admit every source; leave allowed_sources out to accept any"},
		{name: "short account", from: "path: /events", to: "path: /events\n    allowed_accounts: [\"123456789012\", \"1234\"]", wantError: `config: intake[0].allowed_accounts[1]: want the 12 digits of an AWS account ID, got "1234"`},
		{name: "root path", from: "path: /events", to: "path: /", wantError: "config: intake[0].path: / answers every unknown path with 404; use a path of its own, such as /events"},
		{name: "path with a tab", from: "path: /events", to: `path: "/a\tb"`, wantError: `config: intake[0].path: must not contain whitespace, control characters or braces, got "/a\tb"`},
		{name: "path with dot segments", from: "path: /events", to: "path: /a/../b", wantError: `config: intake[0].path: want a clean path (net/http redirects requests for "/a/../b" elsewhere)`},
		{name: "path with a query", from: "path: /events", to: "path: /events?x=1", wantError: `config: intake[0].path: want a path without query or fragment, got "/events?x=1"`},
		{name: "relative path", from: "path: /events", to: "path: events", wantError: `config: intake[0].path: want a path starting with /, got "events"`},
		{name: "dispatch timeout too long", from: "path: /events", to: "path: /events\n    dispatch_timeout: 1m", wantError: "config: intake[0].dispatch_timeout: plus listen.read_timeout (10s) and 1.5s of dead-letter writes that may end after it (dispatch.dlq_timeout less dispatch.dlq_reserve, at most half of dispatch_timeout) must be shorter than listen.write_timeout (30s)"},
		{name: "read timeout leaves no time to answer", from: "intake:", to: "listen: {read_timeout: 27s}\nintake:", wantError: "config: intake[0].dispatch_timeout: plus listen.read_timeout (27s) and 1.5s of dead-letter writes"},
		{name: "dead-letter writes leave no time to answer", from: "intake:", to: "listen: {read_timeout: 20s}\ndispatch: {dlq_timeout: 7s}\nintake:", wantError: "config: intake[0].dispatch_timeout: plus listen.read_timeout (20s) and 6.5s of dead-letter writes that may end after it (dispatch.dlq_timeout less dispatch.dlq_reserve, at most half of dispatch_timeout) must be shorter than listen.write_timeout (30s)"},
		{name: "dlq_reserve counts up to half a short dispatch",
			doc:       strings.Replace(minimal, "path: /events", "path: /events\n    dispatch_timeout: 500ms", 1) + "listen: {write_timeout: 12250ms}\n",
			wantError: "config: intake[0].dispatch_timeout: plus listen.read_timeout (10s) and 1.75s of dead-letter writes that may end after it (dispatch.dlq_timeout less dispatch.dlq_reserve, at most half of dispatch_timeout) must be shorter than listen.write_timeout (12.25s)"},
		// Limits of the Kafka client and of grpcsink: a file validate accepts must start.
		{name: "kafka linger over a minute", from: "topic: t}", to: "topic: t, linger: 2m}", wantError: "config: sinks[0].kafka.linger: at most 1m0s, the Kafka client's limit"},
		{name: "kafka delivery timeout under a second", from: "topic: t}", to: "topic: t, delivery_timeout: 500ms}", wantError: "config: sinks[0].kafka.delivery_timeout: 0 (the default) or at least 1s"},
		{name: "kafka client id too long", from: "topic: t}", to: "topic: t, client_id: " + strings.Repeat("c", 257) + "}", wantError: "config: sinks[0].kafka.client_id: at most 256 bytes"},
		{name: "kafka dlq delivery timeout under a second", doc: minimal + "dlq: {kafka: {brokers: [\"a:1\"], topic: d, delivery_timeout: 999ms}}\n", wantError: "config: dlq.kafka.delivery_timeout: 0 (the default) or at least 1s"},
		{name: "grpc list with a path", from: `targets: ["127.0.0.1:5000"]`, to: `targets: ["a/b:443", "c:443"]`, wantError: `config: sinks[1].grpc.targets[0]: several targets are host:port addresses, got "a/b:443"`},
		{name: "admin address on the same port", doc: minimal + "listen: {address: \"0.0.0.0:8080\", admin_address: \":8080\"}\n", wantError: "config: listen.admin_address: must differ from listen.address"},
		{name: "max_body past 16MiB", from: "path: /events", to: "path: /events\n    max_body: 16777217", wantError: "config: intake[0].max_body: want at most 16MiB"},
		{name: "ignored_status not 2xx", from: "path: /events", to: "path: /events\n    ignored_status: 300", wantError: "config: intake[0].ignored_status: want a 2xx status"},
		{name: "max_header_bytes past 16MiB", doc: minimal + "listen: {max_header_bytes: 16777217}\n", wantError: "config: listen.max_header_bytes: want at most 16MiB"},
		{name: "bad max_body", from: "path: /events", to: "path: /events\n    max_body: lots", wantError: "config: intake[0].max_body: want a size"},
		{name: "bad mode", doc: minimal + "dispatch: {mode: fast}\n", wantError: `config: dispatch.mode: want sync or async, got "fast"`},
		{name: "bad ordering key", doc: minimal + "dispatch: {ordering_key: queue}\n", wantError: `config: dispatch.ordering_key: want none, conversation or user, got "queue"`},
		{name: "dlq with both kinds", doc: minimal + "dlq: {file: {dir: /tmp/x}, kafka: {brokers: [\"a:1\"], topic: d}}\n", wantError: "config: dlq: want one of file or kafka, not both"},
		{name: "file dlq without dir", doc: minimal + "dlq: {file: {fsync: always}}\n", wantError: "config: dlq.file.dir: is required"},
		{name: "file dlq bad fsync", doc: minimal + "dlq: {file: {dir: /tmp/x, fsync: sometimes}}\n", wantError: `config: dlq.file.fsync: want always, interval or never, got "sometimes"`},
		{name: "file dlq fsync_interval without interval", doc: minimal + "dlq: {file: {dir: /tmp/x, fsync: always, fsync_interval: 1s}}\n", wantError: "config: dlq.file.fsync_interval: only applies with fsync: interval"},
		{name: "kafka dlq without topic", doc: minimal + "dlq: {kafka: {brokers: [\"a:1\"]}}\n", wantError: "config: dlq.kafka.topic: is required"},
		{name: "bad log level", doc: minimal + "logging: {level: loud}\n", wantError: `config: logging.level: want debug, info, warn or error, got "loud"`},
		{name: "bad bool", doc: minimal + "logging: {events: yes}\n", wantError: `config: logging.events: want true or false, got "yes"`},
		{name: "sample ratio out of range", doc: minimal + "tracing: {sample_ratio: 2}\n", wantError: "config: tracing.sample_ratio: want a number from 0 to 1"},
		{name: "sample ratio nan", doc: minimal + "tracing: {sample_ratio: nan}\n", wantError: "config: tracing.sample_ratio: want a number from 0 to 1"},
		{name: "sample ratio NaN", doc: minimal + "tracing: {sample_ratio: NaN}\n", wantError: "config: tracing.sample_ratio: want a number from 0 to 1"},
		{name: "sample ratio inf", doc: minimal + "tracing: {sample_ratio: inf}\n", wantError: "config: tracing.sample_ratio: want a number from 0 to 1"},
		{name: "sample ratio -inf", doc: minimal + "tracing: {sample_ratio: -inf}\n", wantError: "config: tracing.sample_ratio: want a number from 0 to 1"},
		{name: "sample ratio +Inf", doc: minimal + "tracing: {sample_ratio: +Inf}\n", wantError: "config: tracing.sample_ratio: want a number from 0 to 1"},
		{name: "sample ratio -0.1", doc: minimal + "tracing: {sample_ratio: -0.1}\n", wantError: "config: tracing.sample_ratio: want a number from 0 to 1"},
		{name: "retry multiplier nan", from: "topic: t}", to: "topic: t}\n    retry: {multiplier: nan}", wantError: "config: sinks[0].retry: retry: invalid policy: Multiplier"},
		{name: "retry multiplier inf", from: "topic: t}", to: "topic: t}\n    retry: {multiplier: inf}", wantError: "config: sinks[0].retry: retry: invalid policy: Multiplier"},
		{name: "retry multiplier -inf", from: "topic: t}", to: "topic: t}\n    retry: {multiplier: -inf}", wantError: "config: sinks[0].retry: retry: invalid policy: Multiplier"},
		{name: "max_attempts -2", from: "topic: t}", to: "topic: t}\n    retry: {max_attempts: -2}", wantError: "config: sinks[0].retry.max_attempts: want -1 (no attempt budget), 0 (the default, 5) or a positive count"},
		{name: "max_attempts -2, max_age: 10m", from: "topic: t}", to: "topic: t}\n    retry: {max_attempts: -2, max_age: 10m}", wantError: "config: sinks[0].retry.max_attempts: want -1 (no attempt budget), 0 (the default, 5) or a positive count"},
		{name: "max_attempts -10", from: "topic: t}", to: "topic: t}\n    retry: {max_attempts: -10}", wantError: "config: sinks[0].retry.max_attempts: want -1 (no attempt budget), 0 (the default, 5) or a positive count"},
		{name: "max_attempts -10, max_age: 10m", from: "topic: t}", to: "topic: t}\n    retry: {max_attempts: -10, max_age: 10m}", wantError: "config: sinks[0].retry.max_attempts: want -1 (no attempt budget), 0 (the default, 5) or a positive count"},
		{name: "reload interval too short", doc: minimal + "reload: {watch: true, interval: 1ns}\n", wantError: "config: reload.interval: want at least 100ms (0 for the default, 2s)"},
		{name: "reload interval just too short", doc: minimal + "reload: {interval: 99ms}\n", wantError: "config: reload.interval: want at least 100ms"},
		{name: "ready delay too long", doc: minimal + "shutdown: {ready_delay: 10m}\n", wantError: "config: shutdown.ready_delay: want at most 5m0s"},
		{name: "negative ready delay", doc: minimal + "shutdown: {ready_delay: -1s}\n", wantError: "config: shutdown.ready_delay:"},
		{name: "mapping where a list goes", doc: minimal + "listen: [a]\n", wantError: "config: listen: want a mapping, got a list"},
		{name: "key given twice", doc: minimal + "logging: {level: info, level: debug}\n", wantError: "config: logging.level: key given twice"},
		{name: "not a mapping", doc: "- a\n- b\n", wantError: "config: the file must hold a mapping of settings, got a list"},
		{name: "empty file", doc: "", wantError: "config: the file is empty"},
		{name: "comments only", doc: "# nothing yet\n", wantError: "config: the file is empty"},
		{name: "second document", doc: minimal + "---\ndlq: {file: {dir: /tmp/x}}\n", wantError: "config: the file holds more than one YAML document (a --- line starts another, with settings at line 16); put every setting in one"},
		{name: "second document, invalid", doc: minimal + "---\n[\n", wantError: "config: "},
		{name: "yaml syntax", doc: "intake: [\n", wantError: "config: "},
		{name: "no sinks or routes", doc: "intake:\n  - {path: /e, insecure_no_auth: true}\n", wantError: "config: sinks: at least one sink is required"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			doc := tc.doc
			if doc == "" && tc.from != "" {
				doc = edited(t, tc.from, tc.to)
			}
			_, err := config.Parse([]byte(doc), env(nil))
			require.Error(t, err)
			assert.True(t, errors.Is(err, config.ErrInvalid))
			assert.Contains(t, err.Error(), tc.wantError)
			assert.NotContains(t, err.Error(), "hunter2", "no credential in an error")
			assert.NotContains(t, err.Error(), "s3cr3t", "no credential in an error")
		})
	}
}

// A gRPC target given as host:port needs a port a connection can use, as a Kafka broker does;
// the URI forms gRPC resolves itself are taken as they are.
func TestGRPCTargetPorts(t *testing.T) {
	for _, target := range []string{
		"127.0.0.1:99999", "consumer:", "consumer:http", "consumer:0", "consumer:-1", "[::1]:65536", "consumer: 80",
	} {
		t.Run(target, func(t *testing.T) {
			_, err := config.Parse([]byte(edited(t, `"127.0.0.1:5000"`, strconv.Quote(target))), env(nil))
			require.Error(t, err)
			assert.Contains(t, err.Error(), "config: sinks[1].grpc.targets[0]: want host:port with a port from 1 to 65535, got "+strconv.Quote(target))
		})
	}
	for _, targets := range []string{
		`["consumer:1", "[::1]:65535", ":50051"]`,
		`["dns:///consumer:443"]`,
		`["unix:///run/consumer.sock"]`,
		`["unix:relative.sock"]`,
		`["unix-abstract:consumer"]`,
		`["passthrough:///consumer:443"]`,
	} {
		t.Run(targets, func(t *testing.T) {
			_, err := config.Parse([]byte(edited(t, `["127.0.0.1:5000"]`, targets)), env(nil))
			assert.NoError(t, err)
		})
	}
}

// The largest queue_size and concurrency are accepted; one more is refused.
func TestSinkQueueAndConcurrencyBounds(t *testing.T) {
	doc := func(queue, conc int) string {
		return strings.Replace(minimal, "topic: t}", fmt.Sprintf("topic: t}\n    queue_size: %d\n    concurrency: %d", queue, conc), 1)
	}
	c, err := config.Parse([]byte(doc(config.MaxQueueSize, config.MaxConcurrency)), env(nil))
	require.NoError(t, err)
	assert.Equal(t, config.MaxQueueSize, c.Sinks[0].QueueSize)
	assert.Equal(t, config.MaxConcurrency, c.Sinks[0].Concurrency)

	_, err = config.Parse([]byte(doc(config.MaxQueueSize+1, config.MaxConcurrency+1)), env(nil))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "config: sinks[0].queue_size:")
	assert.Contains(t, err.Error(), "config: sinks[0].concurrency:")
}

// A key written with nothing after it (or ~, or null) is there: for tls that means TLS with the
// system roots, as the README says of its presence, never plaintext, and the other keys that
// stand for a group of settings are checked as that group with nothing set.
func TestNullKeyIsPresent(t *testing.T) {
	const kafkaSASL = "sasl: {mechanism: plain, username: u, password: \"${PW}\"}"
	cases := []struct {
		name      string
		from, to  string // replaced in minimal, or appended when from is ""
		check     func(t *testing.T, c *config.Config)
		wantError string
	}{
		{name: "kafka sink tls left empty", from: "kafka: {brokers: [\"127.0.0.1:9092\"], topic: t}",
			to: "kafka:\n      brokers: [\"127.0.0.1:9092\"]\n      topic: t\n      tls:\n      " + kafkaSASL,
			check: func(t *testing.T, c *config.Config) {
				require.NotNil(t, c.Sinks[0].Kafka.TLS)
				cc, err := c.Sinks[0].Kafka.ClientConfig()
				require.NoError(t, err)
				require.NotNil(t, cc.TLS, "TLS on")
				assert.False(t, cc.TLS.InsecureSkipVerify)
				assert.Nil(t, cc.TLS.RootCAs, "the system roots")
			}},
		{name: "kafka sink tls ~", from: "topic: t}", to: "topic: t, tls: ~, " + kafkaSASL + "}",
			check: func(t *testing.T, c *config.Config) { assert.NotNil(t, c.Sinks[0].Kafka.TLS) }},
		{name: "kafka sink tls null", from: "topic: t}", to: "topic: t, tls: null}",
			check: func(t *testing.T, c *config.Config) { assert.NotNil(t, c.Sinks[0].Kafka.TLS) }},
		{name: "kafka dlq tls left empty", to: "dlq:\n  kafka:\n    brokers: [\"127.0.0.1:9092\"]\n    topic: d\n    tls:\n    " + kafkaSASL + "\n",
			check: func(t *testing.T, c *config.Config) {
				require.NotNil(t, c.DLQ.Kafka.TLS)
				cc, err := c.DLQ.Kafka.ClientConfig()
				require.NoError(t, err)
				assert.NotNil(t, cc.TLS)
			}},
		{name: "grpc tls left empty", from: "grpc: {targets: [\"127.0.0.1:5000\"], insecure: true}", to: "grpc:\n      targets: [\"127.0.0.1:5000\"]\n      tls:",
			check: func(t *testing.T, c *config.Config) { assert.NotNil(t, c.Sinks[1].GRPC.TLS) }},
		{name: "grpc tls left empty beside insecure", from: "insecure: true}", to: "insecure: true, tls: }", wantError: "config: sinks[1].grpc.insecure: cannot be combined with tls"},
		{name: "sasl left empty", from: "topic: t}", to: "topic: t, sasl: }", wantError: "config: sinks[0].kafka.sasl.username: is required"},
		{name: "dlq left empty", to: "dlq:\n", wantError: "config: dlq: one of file or kafka is required"},
		{name: "file dlq left empty", to: "dlq: {file: }\n", wantError: "config: dlq.file.dir: is required"},
		{name: "kafka left empty", from: "kafka: {brokers: [\"127.0.0.1:9092\"], topic: t}", to: "kafka:", wantError: "config: sinks[0].kafka.brokers: at least one broker is required"},
		{name: "verifier left empty", from: `{header: X-Api-Key, keys: ["k-0123456789"]}`, to: "", wantError: "config: intake[0].verifiers[0].api_key:"},
		{name: "pattern left empty", from: `{source: [{prefix: "aws."}]}`, to: "", wantError: "config: routes[0].pattern: want an event pattern, as a mapping or a JSON string, got nothing (line 13)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			doc := edited(t, tc.from, tc.to)
			c, err := config.Parse([]byte(doc), env(map[string]string{"PW": "secret-password"}))
			if tc.wantError != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.wantError)
				return
			}
			require.NoError(t, err)
			tc.check(t, c)
		})
	}
}

// A file may start with "---" and end with "---" or "...": one document, read whole.
func TestOneDocumentWithMarkers(t *testing.T) {
	for _, doc := range []string{"---\n" + minimal, minimal + "---\n", minimal + "...\n", "---\n" + minimal + "---\n# the end\n"} {
		c, err := config.Parse([]byte(doc), env(nil))
		require.NoError(t, err, doc)
		assert.Len(t, c.Sinks, 2)
	}
}

// max_attempts: -1 takes max_age as the budget that ends the retries.
func TestNoAttemptBudgetWithMaxAge(t *testing.T) {
	c, err := config.Parse([]byte(strings.Replace(minimal, "topic: t}", "topic: t}\n    retry: {max_attempts: -1, max_age: 10m}", 1)), env(nil))
	require.NoError(t, err)
	assert.Equal(t, -1, c.Sinks[0].Retry.Policy().MaxAttempts)
	assert.Equal(t, 10*time.Minute, c.Sinks[0].Retry.Policy().MaxAge)
}

func TestSeveralProblemsReportedTogether(t *testing.T) {
	doc := strings.Replace(minimal, "sinks: [k, g]", "sinks: [k, nope]", 1) + "dispatch: {mode: fast}\n"
	_, err := config.Parse([]byte(doc), env(nil))
	require.Error(t, err)
	var list *config.Errors
	require.True(t, errors.As(err, &list))
	assert.Len(t, list.List, 2)
}

func TestEnvExpansion(t *testing.T) {
	base := strings.Replace(minimal, `keys: ["k-0123456789"]`, `keys: ["${API_KEY}"]`, 1)
	cases := []struct {
		name    string
		doc     string
		env     map[string]string
		check   func(t *testing.T, c *config.Config)
		wantErr string
	}{
		{
			name: "set variable", doc: base, env: map[string]string{"API_KEY": "secret-from-env"},
			check: func(t *testing.T, c *config.Config) {
				assert.Equal(t, []string{"secret-from-env"}, c.Intake[0].Verifiers[0].APIKey.Keys)
			},
		},
		{
			name: "missing variable names it", doc: base, env: nil,
			wantErr: "config: intake[0].verifiers[0].api_key.keys[0]: environment variable API_KEY is not set",
		},
		{
			name: "default when unset", doc: minimal + "listen: {address: \"${ADDR:-127.0.0.1:9999}\"}\n",
			check: func(t *testing.T, c *config.Config) { assert.Equal(t, "127.0.0.1:9999", c.Listen.Address) },
		},
		{
			name: "default when empty", doc: minimal + "listen: {address: \"${ADDR:-127.0.0.1:9999}\"}\n", env: map[string]string{"ADDR": ""},
			check: func(t *testing.T, c *config.Config) { assert.Equal(t, "127.0.0.1:9999", c.Listen.Address) },
		},
		{
			name: "empty default", doc: minimal + "listen: {address: \"127.0.0.1:1${X:-}\"}\n",
			check: func(t *testing.T, c *config.Config) { assert.Equal(t, "127.0.0.1:1", c.Listen.Address) },
		},
		{
			name: "inside a longer value and twice", doc: minimal + "listen: {address: \"${HOST}:${PORT}\"}\n", env: map[string]string{"HOST": "0.0.0.0", "PORT": "81"},
			check: func(t *testing.T, c *config.Config) { assert.Equal(t, "0.0.0.0:81", c.Listen.Address) },
		},
		{
			name: "numbers and durations from the environment", doc: minimal + "health: {cache: \"${C}\"}\ndispatch: {dedup: {size: \"${N}\"}}\n", env: map[string]string{"C": "250ms", "N": "42"},
			check: func(t *testing.T, c *config.Config) {
				assert.Equal(t, 250*time.Millisecond, c.Health.Cache.D())
				assert.Equal(t, 42, c.Dispatch.Dedup.Size)
			},
		},
		{
			name: "unknown key after valid ones", doc: minimal + "listen: {address: \"127.0.0.1:80\"}\nlogging: {level: \"info\"}\nintake_x: 1\n",
			wantErr: "config: intake_x: unknown key",
		},
		{
			name: "value cannot inject structure", doc: base,
			env: map[string]string{"API_KEY": "x\"], bearer: {tokens: [\"injected\"]}, k: [\""},
			check: func(t *testing.T, c *config.Config) {
				require.Len(t, c.Intake[0].Verifiers, 1)
				assert.Nil(t, c.Intake[0].Verifiers[0].Bearer)
				assert.Equal(t, "x\"], bearer: {tokens: [\"injected\"]}, k: [\"", c.Intake[0].Verifiers[0].APIKey.Keys[0])
			},
		},
		{
			// The lines stay inside the value, which no HTTP header could then carry.
			name: "value cannot inject lines", doc: base,
			env:     map[string]string{"API_KEY": "x\"]\n      - bearer: {tokens: [\"injected\"]}\n#"},
			wantErr: "config: intake[0].verifiers[0].api_key: signature: API key 0 contains a control character",
		},
		{
			name: "keys are not expanded", doc: minimal + "${KEY}: 1\n", env: map[string]string{"KEY": "logging"},
			wantErr: "config: ${KEY}: unknown key",
		},
		{
			name: "unterminated reference", doc: minimal + "listen: {address: \"${ADDR\"}\n",
			wantErr: "config: listen.address: unterminated ${ in value",
		},
		{
			name: "invalid name", doc: minimal + "listen: {address: \"${1X}\"}\n",
			wantErr: `config: listen.address: invalid variable name "1X"`,
		},
		{
			// Cut at the first "}", the key would be the guessable text "${FALLBACK_KEY}".
			name: "reference in a default", doc: strings.Replace(minimal, `keys: ["k-0123456789"]`, `keys: ["${API_KEY:-${FALLBACK_KEY}}"]`, 1),
			env:     map[string]string{"FALLBACK_KEY": "fallback-key-0123456789"},
			wantErr: "config: intake[0].verifiers[0].api_key.keys[0]: the default of ${API_KEY:-...} holds a ${...} reference",
		},
		{
			name: "reference in a default, variable set", doc: minimal + "listen: {address: \"${ADDR:-127.0.0.1:${PORT}}\"}\n",
			env:     map[string]string{"ADDR": "127.0.0.1:80", "PORT": "81"},
			wantErr: "config: listen.address: the default of ${ADDR:-...} holds a ${...} reference",
		},
		{
			name: "escaped reference in a default", doc: minimal + "listen: {address: \"${ADDR:-$${PORT}}\"}\n",
			wantErr: "config: listen.address: the default of ${ADDR:-...} holds a ${...} reference",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := config.Parse([]byte(tc.doc), env(tc.env))
			if tc.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.wantErr)
				return
			}
			require.NoError(t, err)
			tc.check(t, c)
		})
	}
}

func TestLiteralDollarBrace(t *testing.T) {
	doc := strings.Replace(minimal, `keys: ["k-0123456789"]`, `keys: ["$${NOT_A_VAR}-0123"]`, 1)
	c, err := config.Parse([]byte(doc), env(nil))
	require.NoError(t, err)
	assert.Equal(t, "${NOT_A_VAR}-0123", c.Intake[0].Verifiers[0].APIKey.Keys[0])

	// In a key, which is never expanded, $${ is a literal ${ too.
	doc = strings.Replace(minimal, `- api_key: {header: X-Api-Key, keys: ["k-0123456789"]}`, `- basic: {users: {"$${USER}": "password-0123"}}`, 1)
	doc = strings.Replace(doc, "topic: t}", `topic_by_type: {"$${T}.x": t}}`, 1)
	doc = strings.Replace(doc, `pattern: {source: [{prefix: "aws."}]}`, `pattern: {detail: {"a$${B}": [True1, "True"]}}`, 1)
	c, err = config.Parse([]byte(doc), env(nil))
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"${USER}": "password-0123"}, c.Intake[0].Verifiers[0].Basic.Users)
	assert.Equal(t, map[string]string{"${T}.x": "t"}, c.Sinks[0].Kafka.TopicByType)
	assert.Equal(t, `{"detail":{"a${B}":["True1","True"]}}`, string(c.Routes[0].Pattern.JSON))
}

func TestSecretsNeverInErrors(t *testing.T) {
	const secret = "s3cr3t-value-that-must-not-leak"
	cases := map[string]string{
		// A secret that makes a value invalid: the error names the key, not the value.
		"bad duration from env": minimal + "health: {cache: \"${S}\"}\n",
		"bad number from env":   strings.Replace(minimal, "topic: t}", "topic: t}\n    concurrency: \"${S}\"", 1),
		"bad bool from env":     minimal + "logging: {events: \"${S}\"}\n",
		"bad size from env":     strings.Replace(minimal, "path: /events", "path: /events\n    max_body: \"${S}\"", 1),
		// A secret in a verifier that the library refuses: the library's error must not echo it.
		"short standard webhooks secret": strings.Replace(minimal, `- api_key: {header: X-Api-Key, keys: ["k-0123456789"]}`, `- standard_webhooks: {keys: ["${S}"]}`, 1),
		"repeated hmac secret":           strings.Replace(minimal, `- api_key: {header: X-Api-Key, keys: ["k-0123456789"]}`, `- hmac: {header: X-Sig, encoding: hex, secrets: ["${S}", "${S}"]}`, 1),
		"repeated api key":               strings.Replace(minimal, `keys: ["k-0123456789"]`, `keys: ["${S}", "${S}"]`, 1),
		"sasl password with bad mech":    strings.Replace(minimal, "topic: t}", "topic: t, sasl: {mechanism: nope, username: u, password: \"${S}\"}}", 1),
		// A value under a YAML tag the decoder does not read: neither the value nor the tag is quoted.
		"api key under !!binary":    strings.Replace(minimal, `keys: ["k-0123456789"]`, "keys: [!!binary "+secret+"]", 1),
		"api key under its own tag": strings.Replace(minimal, `keys: ["k-0123456789"]`, "keys: [!app "+secret+"]", 1),
		"a tag that is the secret":  strings.Replace(minimal, `keys: ["k-0123456789"]`, "keys: [!"+secret+" k-0123456789]", 1),
		"env api key under a tag":   strings.Replace(minimal, `keys: ["k-0123456789"]`, `keys: [!app "${S}"]`, 1),
		"sasl password under a tag": strings.Replace(minimal, "topic: t}", "topic: t, sasl: {mechanism: plain, username: u, password: !!binary "+secret+"}}", 1),
		"a secret tagged !!null":    strings.Replace(minimal, `keys: ["k-0123456789"]`, "keys: [!!null "+secret+"]", 1),
	}
	for name, doc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := config.Parse([]byte(doc), env(map[string]string{"S": secret}))
			require.Error(t, err)
			assert.NotContains(t, err.Error(), secret)
			assert.NotContains(t, err.Error(), "s3cr3t")
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := config.Load(filepath.Join(t.TempDir(), "none.yaml"), env(nil))
	require.Error(t, err)
	assert.True(t, errors.Is(err, os.ErrNotExist))
}

func TestPatternKeepsNumbersAsWritten(t *testing.T) {
	doc := strings.Replace(minimal, `pattern: {source: [{prefix: "aws."}]}`,
		"pattern:\n      detail:\n        eventBody:\n          eventTime: [1649237504949]\n          ratio: [0.50]\n          flag: [true]\n          none: [null]\n          word: [\"yes\"]", 1)
	c, err := config.Parse([]byte(doc), env(nil))
	require.NoError(t, err)
	assert.Equal(t, `{"detail":{"eventBody":{"eventTime":[1649237504949],"ratio":[0.50],"flag":[true],"none":[null],"word":["yes"]}}}`, string(c.Routes[0].Pattern.JSON))
}

// ${ENV} in a pattern written as a JSON string expands inside its string values, once the JSON
// is parsed, exactly as in the YAML form: a value never adds keys or structure, and numbers keep
// their text.
func TestPatternJSONStringExpansion(t *testing.T) {
	route := func(pattern string) string {
		return strings.Replace(minimal, `pattern: {source: [{prefix: "aws."}]}`, "pattern: "+pattern, 1)
	}
	cases := []struct {
		name     string
		pattern  string
		env      map[string]string
		wantJSON string
		wantErr  string
	}{
		{name: "a value cannot add a key", pattern: `'{"source": ["${SRC}"]}'`, env: map[string]string{"SRC": `a"],"detail-type":["x`},
			wantJSON: `{"source":["a\"],\"detail-type\":[\"x"]}`},
		{name: "inside a longer string, numbers as written", pattern: `'{"source": ["aws.partner/${BUS}"], "detail": {"n": [{"numeric": [">", 1.50]}], "b": [true, null]}}'`,
			env: map[string]string{"BUS": "genesys.com/<x>&"}, wantJSON: `{"source":["aws.partner/genesys.com/<x>&"],"detail":{"n":[{"numeric":[">",1.50]}],"b":[true,null]}}`},
		{name: "a key is not expanded", pattern: `'{"${K}": ["x"]}'`, env: map[string]string{"K": "source-from-env"},
			wantErr: `config: routes[0].pattern: the key "${K}": a key may not hold a ${...} reference: references expand in values only, so write the key out ($${ is a literal ${)`},
		{name: "a literal dollar brace in a key", pattern: `'{"$${K}": ["v"]}'`, wantJSON: `{"${K}":["v"]}`},
		{name: "reference spelt with an escape", pattern: `'{"source": ["\u0024{SRC}"]}'`, env: map[string]string{"SRC": "v"}, wantJSON: `{"source":["v"]}`},
		{name: "other escapes, read as JSON reads them", pattern: `'{"source": ["\u0061"]}'`, wantJSON: `{"source":["a"]}`},
		{name: "literal dollar brace", pattern: `'{"source": ["$${SRC}"]}'`, wantJSON: `{"source":["${SRC}"]}`},
		{name: "default", pattern: `'{"source": ["${SRC:-aws.events}"]}'`, wantJSON: `{"source":["aws.events"]}`},
		{name: "without references, the text as written", pattern: `'{"source": ["a"]}'`, wantJSON: `{"source": ["a"]}`},
		{name: "unset variable", pattern: `'{"source": ["${SRC}"]}'`, wantErr: "config: routes[0].pattern: environment variable SRC is not set"},
		{name: "reference outside a string", pattern: `'{"source": ${SRC}}'`, env: map[string]string{"SRC": `["a"]`},
			wantErr: "config: routes[0].pattern: not JSON: invalid character '$' looking for beginning of value (a ${...} reference may stand only inside a string)"},
		{name: "cut short", pattern: `'{"source": ["${SRC}"]'`, env: map[string]string{"SRC": "env-value-1"}, wantErr: "config: routes[0].pattern: not JSON: the text ends before the pattern does"},
		{name: "two values", pattern: `'{"source": ["${SRC}"]} {}'`, env: map[string]string{"SRC": "env-value-1"}, wantErr: "config: routes[0].pattern: not JSON: text after the pattern"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := config.Parse([]byte(route(tc.pattern)), env(tc.env))
			if tc.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.wantErr)
				for _, v := range tc.env {
					assert.NotContains(t, err.Error(), v, "no value from the environment in an error")
				}
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.wantJSON, string(c.Routes[0].Pattern.JSON))
		})
	}

	// The JSON form and the YAML form of a pattern agree on what a variable becomes.
	e := env(map[string]string{"SRC": `a"],"detail-type":["x`})
	fromJSON, err := config.Parse([]byte(route(`'{"source": ["${SRC}"]}'`)), e)
	require.NoError(t, err)
	fromYAML, err := config.Parse([]byte(route(`{source: ["${SRC}"]}`)), e)
	require.NoError(t, err)
	assert.Equal(t, string(fromYAML.Routes[0].Pattern.JSON), string(fromJSON.Routes[0].Pattern.JSON))
}

// Two intake paths net/http routes the same requests to (the same path, or two spellings of it)
// are refused by name: the ServeMux would panic on them at start or in a reload.
func TestIntakePathsRoutedAlike(t *testing.T) {
	second := func(a, b string) string {
		return strings.Replace(minimal, "intake:\n  - path: /events\n", "intake:\n  - path: "+a+"\n    insecure_no_auth: true\n  - path: "+b+"\n", 1)
	}
	for _, tc := range []struct{ a, b, want string }{
		{"/events", "/events", `config: intake[1].path: "/events" is also intake[0].path`},
		{"/ab", "/a%62", `config: intake[1].path: net/http cannot route "/a%62" beside the service's own paths and the intake paths before it`},
		{"/a%2fb", "/a%2Fb", `config: intake[1].path: net/http cannot route "/a%2Fb"`},
	} {
		t.Run(tc.a+" "+tc.b, func(t *testing.T) {
			_, err := config.Parse([]byte(second(tc.a, tc.b)), env(nil))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
	for _, ok := range [][2]string{{"/events", "/events/"}, {"/a/b", "/a%2Fb"}, {"/genesys", "/genesys/webhooks"}} {
		_, err := config.Parse([]byte(second(ok[0], ok[1])), env(nil))
		assert.NoError(t, err, "%s and %s", ok[0], ok[1])
	}
}

// An empty topic_by_type with a fallback_topic sends every event to the fallback, as
// kafkasink.WithTopicByType does.
func TestEmptyTopicByTypeWithFallback(t *testing.T) {
	cfg, err := config.Parse([]byte(strings.Replace(minimal, "topic: t}", "topic_by_type: {}, fallback_topic: other}", 1)), env(nil))
	require.NoError(t, err)
	k := cfg.Sinks[0].Kafka
	assert.NotNil(t, k.TopicByType)
	assert.Empty(t, k.TopicByType)
	assert.Equal(t, "other", k.FallbackTopic)
	opts, err := k.Options()
	require.NoError(t, err)
	cl, err := kgo.NewClient(kgo.SeedBrokers("127.0.0.1:1"))
	require.NoError(t, err)
	defer cl.Close()
	s, err := kafkasink.New(cl, opts...)
	require.NoError(t, err, "the sink is built")
	_ = s.Close()
}

// write_timeout must exceed read_timeout, the dispatch_timeout and the dead-letter writes that may
// end after it (dlq_timeout less dlq_reserve, the reserve counting up to half the dispatch): a
// timeout equal to the sum is refused, one a millisecond longer accepted.
func TestWriteTimeoutBoundary(t *testing.T) {
	cases := []struct {
		name     string
		dispatch string // the intake's dispatch_timeout, or "" for the default
		sum      string // what write_timeout must exceed
	}{
		{name: "defaults: 10s + 4s + (2s - 500ms)", sum: "15500ms"},
		{name: "reserve capped at half the dispatch: 10s + 500ms + (2s - 250ms)", dispatch: "500ms", sum: "12250ms"},
		{name: "reserve under half the dispatch: 10s + 1s + (2s - 500ms)", dispatch: "1s", sum: "12500ms"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			doc := minimal
			if tc.dispatch != "" {
				doc = edited(t, "path: /events", "path: /events\n    dispatch_timeout: "+tc.dispatch)
			}
			sum, err := time.ParseDuration(tc.sum)
			require.NoError(t, err)
			_, err = config.Parse([]byte(doc+"listen: {write_timeout: "+tc.sum+"}\n"), env(nil))
			require.Error(t, err, "equal to the sum")
			assert.Contains(t, err.Error(), "config: intake[0].dispatch_timeout:")
			_, err = config.Parse([]byte(doc+"listen: {write_timeout: "+(sum+time.Millisecond).String()+"}\n"), env(nil))
			assert.NoError(t, err, "a millisecond past the sum")
		})
	}
}

// writePEM writes a certificate and its key as PEM files, and returns their paths.
func writePEM(t *testing.T, c tls.Certificate) (certFile, keyFile string) {
	t.Helper()
	key, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	require.NoError(t, err)
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	require.NoError(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]}), 0o600))
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key}), 0o600))
	return certFile, keyFile
}

// Every tls setting of a sink reaches the tls.Config it is built into, and TLS is never older
// than 1.2.
func TestTLSSettingsReachTheConfig(t *testing.T) {
	pki := testpki.New(t)
	caFile, _ := writePEM(t, pki.Server)
	certFile, keyFile := writePEM(t, pki.Client)
	doc := edited(t, `grpc: {targets: ["127.0.0.1:5000"], insecure: true}`, fmt.Sprintf(
		`grpc: {targets: ["127.0.0.1:5000"], tls: {ca_file: %q, cert_file: %q, key_file: %q, server_name: consumer.internal}}`, caFile, certFile, keyFile))
	cfg, err := config.Parse([]byte(doc), env(nil))
	require.NoError(t, err)
	tc, err := cfg.Sinks[1].GRPC.TLS.Config()
	require.NoError(t, err)
	assert.Equal(t, "consumer.internal", tc.ServerName)
	leaf, err := x509.ParseCertificate(pki.Server.Certificate[0])
	require.NoError(t, err)
	roots := x509.NewCertPool()
	roots.AddCert(leaf)
	require.NotNil(t, tc.RootCAs, "ca_file")
	assert.True(t, roots.Equal(tc.RootCAs), "ca_file")
	require.Len(t, tc.Certificates, 1, "cert_file and key_file")
	assert.Equal(t, pki.Client.Certificate[0], tc.Certificates[0].Certificate[0])
	assert.Equal(t, uint16(tls.VersionTLS12), tc.MinVersion)
	assert.False(t, tc.InsecureSkipVerify)
}

// Each SASL mechanism named is the one the Kafka client uses.
func TestSASLMechanisms(t *testing.T) {
	for name, want := range map[string]string{
		"plain":         kafkasink.SASLPlain,
		"scram-sha-256": kafkasink.SASLScramSHA256,
		"scram-sha-512": kafkasink.SASLScramSHA512,
	} {
		t.Run(name, func(t *testing.T) {
			cfg, err := config.Parse([]byte(edited(t, "topic: t}", "topic: t, sasl: {mechanism: "+name+", username: u, password: p}}")), env(nil))
			require.NoError(t, err)
			cc, err := cfg.Sinks[0].Kafka.ClientConfig()
			require.NoError(t, err)
			assert.Equal(t, want, cc.SASL.Mechanism)
		})
	}
}

// Every retry key reaches the sink's retry.Policy.
func TestRetryPolicyFromTheFile(t *testing.T) {
	cfg, err := config.Parse([]byte(edited(t, "topic: t}",
		"topic: t}\n    retry: {initial_interval: 50ms, multiplier: 3, max_interval: 700ms, max_attempts: 7, max_age: 9s, attempt_timeout: 1500ms}")), env(nil))
	require.NoError(t, err)
	assert.Equal(t, retry.Policy{
		InitialInterval: 50 * time.Millisecond,
		Multiplier:      3,
		MaxInterval:     700 * time.Millisecond,
		MaxAttempts:     7,
		MaxAge:          9 * time.Second,
		AttemptTimeout:  1500 * time.Millisecond,
	}, cfg.Sinks[0].Retry.Policy())
}

// verifiers parses minimal with its verifier list replaced by list.
func verifiers(t *testing.T, list string, vars map[string]string) []config.Verifier {
	t.Helper()
	cfg, err := config.Parse([]byte(edited(t, `      - api_key: {header: X-Api-Key, keys: ["k-0123456789"]}`, list)), env(vars))
	require.NoError(t, err)
	return cfg.Intake[0].Verifiers
}

// verify builds v and runs it on a request with header h and body.
func verify(t *testing.T, v config.Verifier, h http.Header, body []byte) error {
	t.Helper()
	sv, err := v.Build()
	require.NoError(t, err)
	_, err = sv.Verify(context.Background(), h, body)
	return err
}

// hmac takes base64url and SHA-256 by default; github checks sha256=<hex> and open_messaging
// sha256=<base64>, each refusing the other's form.
func TestHMACVerifiersAsDocumented(t *testing.T) {
	const secret = "s3cret-0123456789"
	vs := verifiers(t, `      - hmac: {header: X-Sig, encoding: base64url, secrets: ["`+secret+`"]}
      - github: {secrets: ["`+secret+`"]}
      - open_messaging: {secrets: ["`+secret+`"]}`, nil)
	// A body whose base64url signature differs from its standard base64 one.
	scheme := signature.HMACScheme{Name: "x", Header: "X-Sig", Encoding: signature.Base64URL, Hash: signature.SHA256}
	var body []byte
	var sig string
	for i := 0; sig == ""; i++ {
		body = []byte(`{"n":` + strconv.Itoa(i) + `}`)
		s, err := signature.SignHMAC(scheme, secret, body)
		require.NoError(t, err)
		if strings.ContainsAny(s, "-_") {
			sig = s
		}
	}
	assert.NoError(t, verify(t, vs[0], http.Header{"X-Sig": {sig}}, body), "hmac: base64url, sha256")

	gh, err := signature.SignGitHub(secret, body)
	require.NoError(t, err)
	om, err := signature.SignOpenMessaging(secret, body)
	require.NoError(t, err)
	assert.NoError(t, verify(t, vs[1], http.Header{"X-Hub-Signature-256": {gh}}, body), "github takes sha256=<hex>")
	assert.Error(t, verify(t, vs[1], http.Header{"X-Hub-Signature-256": {om}}, body), "github refuses base64")
	assert.NoError(t, verify(t, vs[2], http.Header{"X-Hub-Signature-256": {om}}, body), "open_messaging takes sha256=<base64>")
	assert.Error(t, verify(t, vs[2], http.Header{"X-Hub-Signature-256": {gh}}, body), "open_messaging refuses hex")
}

// standard_webhooks' tolerance and svix_headers reach the verifier.
func TestStandardWebhooksSettings(t *testing.T) {
	key, err := signature.NewStandardWebhooksSecret()
	require.NoError(t, err)
	vs := verifiers(t, `      - standard_webhooks: {keys: ["${K}"], tolerance: 1m, svix_headers: false}`, map[string]string{"K": key})
	body := []byte(`{}`)
	signed := func(prefix string, at time.Time) http.Header {
		s, err := signature.SignStandardWebhooks(key, "msg_1", at, body)
		require.NoError(t, err)
		h := http.Header{}
		h.Set(prefix+"-id", "msg_1")
		h.Set(prefix+"-timestamp", strconv.FormatInt(at.Unix(), 10))
		h.Set(prefix+"-signature", s)
		return h
	}
	assert.NoError(t, verify(t, vs[0], signed("webhook", time.Now()), body))
	assert.Error(t, verify(t, vs[0], signed("webhook", time.Now().Add(-3*time.Minute)), body), "3m old, past a 1m tolerance")
	assert.Error(t, verify(t, vs[0], signed("svix", time.Now()), body), "svix_headers: false")
}

// errBusy is a dispatch failure the handler answers with Retry-After.
type errBusy struct{}

func (errBusy) Error() string { return "busy" }

// An intake's ignored_status, retry_after and formats reach its handler.
func TestIntakeHandlerOptions(t *testing.T) {
	cfg, err := config.Parse([]byte(edited(t, "path: /events", "path: /events\n    ignored_status: 202\n    retry_after: 7s\n    formats: [cloudevents]")), env(nil))
	require.NoError(t, err)
	serve := func(d eventbridge.DispatcherFunc, body string) *httptest.ResponseRecorder {
		h, err := eventbridge.NewHandler(d, cfg.Intake[0].HandlerOptions()...)
		require.NoError(t, err)
		r := httptest.NewRequest(http.MethodPost, "/events", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	const (
		cloudEvent  = `{"specversion":"1.0","id":"1","source":"s","type":"t","data":{}}`
		eventBridge = `{"version":"0","id":"1","detail-type":"t","source":"aws.x","account":"123456789012","time":"2024-01-01T00:00:00Z","region":"us-east-1","resources":[],"detail":{}}`
	)
	noMatch := func(context.Context, *fanbridge.Event) error { return fanbridge.ErrNoMatch }
	busy := func(context.Context, *fanbridge.Event) error { return retry.After(errBusy{}, 0) }
	assert.Equal(t, http.StatusAccepted, serve(noMatch, cloudEvent).Code, "ignored_status")
	assert.GreaterOrEqual(t, serve(noMatch, eventBridge).Code, 400, "formats: [cloudevents] refuses EventBridge")
	w := serve(busy, cloudEvent)
	assert.Equal(t, "7", w.Header().Get("Retry-After"), "retry_after (status %d)", w.Code)
}

// Every format the decoder knows is a valid intake format, and nothing else is.
func TestIntakeFormatsAreTheDecoders(t *testing.T) {
	d, err := eventbridge.NewDecoder()
	require.NoError(t, err)
	all := d.Formats()
	require.Contains(t, all, eventbridge.FormatOpenMessaging)
	require.Contains(t, all, eventbridge.FormatStandardWebhooks)
	for _, f := range all {
		_, err := config.Parse([]byte(edited(t, "path: /events", "path: /events\n    formats: ["+string(f)+"]")), env(nil))
		assert.NoError(t, err, "format %s", f)
	}
	for _, f := range []string{"bogus", "EventBridge", `""`} {
		_, err := config.Parse([]byte(edited(t, "path: /events", "path: /events\n    formats: ["+f+"]")), env(nil))
		assert.ErrorContains(t, err, "config: intake[0].formats[0]: unknown format", "format %s", f)
	}
}

// cloudevents_binary turns the Handler's binary content mode on, and is refused where it could
// not work (the formats leave CloudEvents out) or is not safe (a body signature checks the path).
func TestIntakeCloudEventsBinary(t *testing.T) {
	serve := func(cfg *config.Config) *httptest.ResponseRecorder {
		var got *fanbridge.Event
		h, err := eventbridge.NewHandler(eventbridge.DispatcherFunc(func(_ context.Context, e *fanbridge.Event) error {
			got = e
			return nil
		}), cfg.Intake[0].HandlerOptions()...)
		require.NoError(t, err)
		r := httptest.NewRequest(http.MethodPost, "/events", strings.NewReader(`{"order":7}`))
		r.Header.Set("Content-Type", "application/json")
		for k, v := range map[string]string{"Ce-Specversion": "1.0", "Ce-Id": "b1", "Ce-Source": "/orders", "Ce-Type": "order.created"} {
			r.Header.Set(k, v)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code == http.StatusOK {
			require.NotNil(t, got)
			assert.Equal(t, "b1", got.ID)
		}
		return w
	}
	const path = "path: /events"
	on, err := config.Parse([]byte(edited(t, path, path+"\n    cloudevents_binary: true")), env(nil))
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, serve(on).Code)
	off, err := config.Parse([]byte(edited(t, path, path+"\n    formats: [cloudevents]")), env(nil))
	require.NoError(t, err)
	assert.Equal(t, http.StatusUnsupportedMediaType, serve(off).Code, "off by default")

	_, err = config.Parse([]byte(edited(t, path, path+"\n    cloudevents_binary: true\n    formats: [eventbridge]")), env(nil))
	assert.ErrorContains(t, err, "config: intake[0].cloudevents_binary: needs cloudevents among the formats")
	signed := strings.Replace(minimal, `- api_key: {header: X-Api-Key, keys: ["k-0123456789"]}`,
		`- api_key: {header: X-Api-Key, keys: ["k-0123456789"]}
      - hmac: {header: X-Sig, encoding: hex, secrets: ["s-0123456789"]}`, 1)
	_, err = config.Parse([]byte(strings.Replace(signed, path, path+"\n    cloudevents_binary: true", 1)), env(nil))
	assert.ErrorContains(t, err, "config: intake[0].cloudevents_binary: cannot be combined with the hmac verifier (verifiers[1])")
}
