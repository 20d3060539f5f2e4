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

// customerEnd is a Genesys conversation-end event as EventBridge delivers it.
const customerEnd = `{"version":"0","id":"1","detail-type":"v2.detail.events.conversation.{id}.customer.end","source":"aws.partner/genesys.com/cloud/x/y","account":"123456789012","time":"2022-06-14T16:12:11Z","region":"us-east-1","resources":[],"detail":{"eventBody":{"mediaType":"CHAT"}}}`

// A YAML merge key (<<) in a pattern brings in the keys of the mappings it names, as YAML 1.1
// defines it: where the << stands, keys written beside it winning, an earlier mapping of a list
// winning over a later one, a merged mapping's own merge keys carried out first. A quoted "<<"
// is an ordinary field name.
func TestMergeKeysInPatterns(t *testing.T) {
	doc := func(patterns string) string {
		return `
intake: [{path: /events, insecure_no_auth: true}]
sinks: [{name: a, kafka: {brokers: ["127.0.0.1:9092"], topic: x}}]
routes:
  - name: base
    pattern: &genesys {source: [{prefix: "aws.partner/genesys.com"}]}
    sinks: [a]
  - name: chat
    pattern: &chat {detail: {eventBody: {mediaType: [CHAT]}}}
    sinks: [a]
  - name: voice
    pattern: &voice {detail: {eventBody: {mediaType: [VOICE]}}, detail-type: [{suffix: ".customer.end"}]}
    sinks: [a]
  - name: merged
    pattern:` + patterns + `
    sinks: [a]
`
	}
	cases := []struct {
		name, pattern, wantJSON string
		matches                 bool
	}{
		{name: "one mapping, in block style", pattern: "\n      <<: *genesys\n      detail-type: [{suffix: \".customer.end\"}]",
			wantJSON: `{"source":[{"prefix":"aws.partner/genesys.com"}],"detail-type":[{"suffix":".customer.end"}]}`, matches: true},
		{name: "one mapping, after the other keys", pattern: ` {detail-type: [{suffix: ".customer.end"}], <<: *genesys}`,
			wantJSON: `{"detail-type":[{"suffix":".customer.end"}],"source":[{"prefix":"aws.partner/genesys.com"}]}`, matches: true},
		{name: "a key written beside it wins", pattern: ` {<<: *voice, detail: {eventBody: {mediaType: [CHAT]}}}`,
			wantJSON: `{"detail-type":[{"suffix":".customer.end"}],"detail":{"eventBody":{"mediaType":["CHAT"]}}}`, matches: true},
		{name: "an earlier mapping of a list wins", pattern: ` {<<: [*chat, *voice, *genesys]}`,
			wantJSON: `{"detail":{"eventBody":{"mediaType":["CHAT"]}},"detail-type":[{"suffix":".customer.end"}],"source":[{"prefix":"aws.partner/genesys.com"}]}`, matches: true},
		{name: "a later mapping of a list loses", pattern: ` {<<: [*voice, *chat]}`,
			wantJSON: `{"detail":{"eventBody":{"mediaType":["VOICE"]}},"detail-type":[{"suffix":".customer.end"}]}`, matches: false},
		{name: "a mapping written in place", pattern: ` {<<: {source: [{prefix: "aws.partner/genesys.com"}]}}`,
			wantJSON: `{"source":[{"prefix":"aws.partner/genesys.com"}]}`, matches: true},
		{name: "a merged mapping's own merge key", pattern: ` {<<: &both {<<: *genesys, detail-type: [{suffix: ".customer.end"}]}, detail-type: [{suffix: ".start"}]}`,
			wantJSON: `{"source":[{"prefix":"aws.partner/genesys.com"}],"detail-type":[{"suffix":".start"}]}`, matches: false},
		{name: "nested below the top", pattern: ` {detail: {eventBody: {<<: {mediaType: [CHAT]}, direction: [INBOUND]}}}`,
			wantJSON: `{"detail":{"eventBody":{"mediaType":["CHAT"],"direction":["INBOUND"]}}}`, matches: false},
		{name: "an empty list merges nothing", pattern: ` {<<: [], source: [{prefix: "aws."}]}`,
			wantJSON: `{"source":[{"prefix":"aws."}]}`, matches: true},
		{name: "a quoted << is a field", pattern: ` {"<<": [x], source: [{prefix: "aws."}]}`,
			wantJSON: `{"\u003c\u003c":["x"],"source":[{"prefix":"aws."}]}`, matches: false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := config.Parse([]byte(doc(tc.pattern)), env(nil))
			require.NoError(t, err)
			p := cfg.Routes[3].Pattern
			assert.Equal(t, tc.wantJSON, string(p.JSON))
			r, err := cfg.Routes[3].Build(cfg.CEL)
			require.NoError(t, err)
			ok, err := r.Filter.(interface{ MatchRaw([]byte) (bool, error) }).MatchRaw([]byte(customerEnd))
			require.NoError(t, err)
			assert.Equal(t, tc.matches, ok, "the route as built, on a customer.end chat event")
		})
	}
}

// Merge keys work in every mapping of the file: the settings of a sink, a retry policy, a map
// of topics, Basic's users, the dlq section, the file itself.
func TestMergeKeysInSettings(t *testing.T) {
	cfg, err := config.Parse([]byte(`
<<: {dispatch: {mode: async}, logging: {level: debug}}
logging: {level: warn}
intake:
  - path: /events
    verifiers:
      - basic: {users: {<<: &users {ops: "${OPS_PASSWORD}", audit: "audit-password-1"}, audit: "audit-password-2"}}
sinks:
  - name: a
    kafka: &client {brokers: ["127.0.0.1:9092"], topic: a, sasl: {mechanism: plain, username: u, password: "${KAFKA_PASSWORD}"}}
    retry: &policy {max_attempts: 3, initial_interval: 200ms}
  - name: b
    kafka:
      <<: *client
      topic_by_type: {<<: {"v2.users.{id}.presence": presence}, "v2.users.{id}.activity": activity}
      topic: ~
      fallback_topic: other
    retry: {<<: *policy, max_attempts: 7}
routes: [{name: r, all: true, sinks: [a, b]}]
dlq:
  kafka: {<<: *client, topic: genesys-dlq}
`), env(map[string]string{"OPS_PASSWORD": "ops-password-1", "KAFKA_PASSWORD": "kafka-password-1"}))
	require.NoError(t, err)
	assert.Equal(t, "async", cfg.Dispatch.Mode, "merged at the top")
	assert.Equal(t, "warn", cfg.Logging.Level, "written beside the merge key")
	assert.Equal(t, map[string]string{"ops": "ops-password-1", "audit": "audit-password-2"}, cfg.Intake[0].Verifiers[0].Basic.Users)
	b := cfg.Sinks[1]
	assert.Equal(t, []string{"127.0.0.1:9092"}, b.Kafka.Brokers)
	assert.Equal(t, "kafka-password-1", b.Kafka.SASL.Password)
	assert.Empty(t, b.Kafka.Topic, "a null written beside the merge key wins")
	assert.Equal(t, map[string]string{"v2.users.{id}.presence": "presence", "v2.users.{id}.activity": "activity"}, b.Kafka.TopicByType)
	assert.Equal(t, 7, b.Retry.MaxAttempts)
	assert.Equal(t, 200*time.Millisecond, b.Retry.InitialInterval.D())
	assert.Equal(t, "genesys-dlq", cfg.DLQ.Kafka.Topic)
	assert.Equal(t, "kafka-password-1", cfg.DLQ.Kafka.SASL.Password)
}

// A merge key that names something other than mappings, or repeats, or merges a mapping into
// itself is refused, naming its key path; so is a key a merged mapping brings in where it does
// not belong, at the merged mapping's line.
func TestBadMergeKeys(t *testing.T) {
	route := func(pattern string) string {
		return strings.Replace(minimal, `pattern: {source: [{prefix: "aws."}]}`, "pattern: "+pattern, 1)
	}
	cases := []struct{ name, doc, wantError string }{
		{name: "a single value", doc: route(`{<<: aws, source: [x]}`),
			wantError: `config: routes[0].pattern["<<"]: only a mapping, or a list of mappings, may be merged, got a single value (line 13)`},
		{name: "nothing", doc: route(`{<<: ~, source: [x]}`),
			wantError: `config: routes[0].pattern["<<"]: only a mapping, or a list of mappings, may be merged, got a single value`},
		{name: "a list of lists", doc: route(`{<<: [{a: [1]}, [b]], source: [x]}`),
			wantError: `config: routes[0].pattern["<<"][1]: only a mapping may be merged, got a list`},
		{name: "an alias of a list of values", doc: route(`{a: &l [1], <<: *l}`),
			wantError: `config: routes[0].pattern["<<"][0]: only a mapping may be merged, got a single value`},
		{name: "twice", doc: route(`{<<: {a: [1]}, <<: {b: [2]}}`),
			wantError: `config: routes[0].pattern["<<"]: key given twice (merge several mappings with one: <<: [*a, *b])`},
		{name: "into itself", doc: route(`&p {<<: *p, a: [1]}`),
			wantError: `config: routes[0].pattern["<<"]: merges a mapping that holds this merge key: a mapping may not be merged into itself`},
		{name: "into itself, through another", doc: route(`&a {<<: {<<: *a, x: [1]}}`),
			wantError: `merges a mapping that holds this merge key: a mapping may not be merged into itself`},
		{name: "into a mapping inside itself", doc: route(`&p {a: {<<: *p}}`),
			wantError: "config: routes[0].pattern: the pattern is nested more than 32 levels deep"},
		{name: "a key repeated in a merged mapping", doc: route(`{<<: {a: [1], a: [2]}}`),
			wantError: `config: routes[0].pattern["<<"].a: key given twice`},
		{name: "a key where it does not belong", doc: "dlq: {file: &other {dir: /tmp/x}}\n" + strings.Replace(minimal, "sinks:\n", "sinks:\n  - {name: x, kafka: {<<: *other, topic: y}}\n", 1),
			wantError: "config: sinks[0].kafka.dir: unknown key (line 1)"},
		{name: "a setting's own check", doc: strings.Replace(minimal, "topic: t}", "topic: t}\n    retry: {<<: {max_attempts: many}}", 1),
			wantError: `config: sinks[0].retry.max_attempts: want a whole number, got "many"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			done := make(chan error, 1)
			go func() {
				_, err := config.Parse([]byte(tc.doc), env(nil))
				done <- err
			}()
			var err error
			select {
			case err = <-done:
			case <-time.After(30 * time.Second):
				t.Fatal("Parse still merging after 30s")
			}
			require.Error(t, err)
			assert.ErrorIs(t, err, config.ErrInvalid)
			assert.Contains(t, err.Error(), tc.wantError)
		})
	}
}

// Each mapping is merged once, and what merging costs counts against the budget of values the
// aliases of a file may expand to: mappings that merge the one before ten times over, nine levels
// deep (a billion merges written out), with keys or empty, and long chains of merges, are
// decoded or refused at once.
func TestMergingIsBounded(t *testing.T) {
	// The mappings are defined in the list a merge key of the pattern names, each merging the
	// one before.
	laughs := func(base string) string {
		var b strings.Builder
		b.WriteString("[&l0 " + base)
		for i := 1; i <= 9; i++ {
			fmt.Fprintf(&b, ", &l%d {<<: [%s*l%d]}", i, strings.Repeat(fmt.Sprintf("*l%d, ", i-1), 9), i-1)
		}
		return b.String() + "]"
	}
	chain := func(n int, keys bool) string {
		var b strings.Builder
		b.WriteString("[&l0 {}")
		for i := 1; i <= n; i++ {
			if keys {
				fmt.Fprintf(&b, ", &l%d {<<: *l%d, k%d: [v]}", i, i-1, i)
			} else {
				fmt.Fprintf(&b, ", &l%d {<<: *l%d}", i, i-1)
			}
		}
		return b.String() + "]"
	}
	pattern := func(p string) string {
		return strings.Replace(minimal, `pattern: {source: [{prefix: "aws."}]}`, "pattern: "+p, 1)
	}
	cases := []struct{ name, doc, wantJSON, wantError string }{
		{name: "a billion merges of a mapping with a key", doc: pattern("{<<: " + laughs("{detail: {n: [1]}}") + "}"), wantJSON: `{"detail":{"n":[1]}}`},
		{name: "a billion merges of an empty mapping", doc: pattern("{source: [a], <<: " + laughs("{}") + "}"), wantJSON: `{"source":["a"]}`},
		{name: "a chain of 40000 empty merges", doc: pattern("{source: [a], <<: " + chain(40000, false) + "}"), wantJSON: `{"source":["a"]}`},
		{name: "a chain of 40000 merges that each add a key", doc: pattern("{source: [a], <<: " + chain(40000, true) + "}"),
			wantError: "the aliases of the file expand to more than"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			done := make(chan error, 1)
			var cfg *config.Config
			go func() {
				var err error
				cfg, err = config.Parse([]byte(tc.doc), env(nil))
				done <- err
			}()
			var err error
			select {
			case err = <-done:
			case <-time.After(20 * time.Second):
				t.Fatal("Parse still merging after 20s")
			}
			if tc.wantError != "" {
				require.ErrorIs(t, err, config.ErrInvalid)
				assert.Contains(t, err.Error(), tc.wantError)
				assert.Equal(t, 1, strings.Count(err.Error(), "aliases of the file"), "one error, not one per value left")
				return
			}
			require.NoError(t, err)
			assert.JSONEq(t, tc.wantJSON, string(cfg.Routes[0].Pattern.JSON))
		})
	}
}
