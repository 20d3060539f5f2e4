package main_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/dlq"
	"github.com/fanbridge/fanbridge/dlq/filedlq"
	"github.com/fanbridge/fanbridge/genesys/genesystest"
	"github.com/fanbridge/fanbridge/signature"
)

func TestValidate(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e := newE2E(t)
	whsec, err := signature.NewStandardWebhooksSecret()
	require.NoError(t, err)
	exampleEnv := []string{
		"EVENTBRIDGE_API_KEY=example-api-key-0123456789", "WEBHOOK_HMAC_SECRET=example-hmac-secret",
		"STANDARD_WEBHOOKS_SECRET=" + whsec, "KAFKA_PASSWORD=example-kafka-password",
		"EVENTBRIDGE_BASIC_PASSWORD=example-basic-password", "OPEN_MESSAGING_SECRET=example-open-messaging-secret",
		"GITHUB_WEBHOOK_SECRET=example-github-secret", "WEBHOOK_BEARER_TOKEN=example-bearer-token",
	}
	bad := func(from, to string) string {
		b, err := os.ReadFile(e.cfgPath)
		require.NoError(t, err)
		require.Contains(t, string(b), from)
		p := filepath.Join(t.TempDir(), "bad.yaml")
		writeFile(t, p, strings.Replace(string(b), from, to, 1))
		return p
	}
	oneOfEach := filepath.Join(t.TempDir(), "one.yaml")
	writeFile(t, oneOfEach, `
intake:
  - path: /events
    verifiers: [{api_key: {header: X-Api-Key, keys: ["key-0123456789abcdef"]}}]
sinks:
  - {name: all, kafka: {brokers: ["127.0.0.1:1"], topic: genesys.all}}
routes:
  - {name: everything, all: true, sinks: [all]}
`)
	// The WebSocket source alone, without an intake path; its secret from the environment.
	webSocketOnly := filepath.Join(t.TempDir(), "websocket.yaml")
	writeFile(t, webSocketOnly, `
notifications:
  region: eu-west-1
  client_id: fanbridge-client
  client_secret: "${GENESYS_CLIENT_SECRET}"
  topics: ["v2.users.e40f28ea-fa86-493f-a5b8-d559c8533c96.presence", "v2.users.e40f28ea-fa86-493f-a5b8-d559c8533c96.activity"]
sinks:
  - {name: all, kafka: {brokers: ["127.0.0.1:1"], topic: genesys.all}}
routes:
  - {name: everything, all: true, sinks: [all]}
`)
	badWebSocket := filepath.Join(t.TempDir(), "websocket-bad.yaml")
	writeFile(t, badWebSocket, strings.Replace(strings.Replace(mustRead(t, webSocketOnly),
		"e40f28ea-fa86-493f-a5b8-d559c8533c96.activity", "{id}.activity", 1), "region: eu-west-1", "region: eu-west-1\n  heartbeat_timeout: 5s", 1))
	for _, tc := range []struct {
		name       string
		args       []string
		env        []string
		code       int
		stdout     string // regexp
		stderr     []string
		notInOuput string
	}{
		{name: "valid", args: []string{"-config", e.cfgPath}, env: e.env, code: 0,
			stdout: `^` + regexp.QuoteMeta(e.cfgPath) + `: valid \(2 intake paths, 4 sinks, 3 routes, dlq: file \S+, mode: sync\)\n$`},
		{name: "file as argument", args: []string{e.cfgPath}, env: e.env, code: 0, stdout: `: valid `},
		{name: "one of each", args: []string{"-config", oneOfEach}, code: 0,
			stdout: `^` + regexp.QuoteMeta(oneOfEach) + `: valid \(1 intake path, 1 sink, 1 route, dlq: none, mode: sync\)\n$`},
		{name: "notifications", args: []string{"-config", webSocketOnly}, env: []string{"GENESYS_CLIENT_SECRET=gc-secret-0123456789"}, code: 0,
			stdout: `^` + regexp.QuoteMeta(webSocketOnly) + `: valid \(0 intake paths, 1 sink, 1 route, dlq: none, mode: sync, notifications: 2 topics in eu-west-1\)\n$`},
		{name: "notifications secret not set", args: []string{"-config", webSocketOnly}, code: 1,
			stderr: []string{"config: notifications.client_secret: environment variable GENESYS_CLIENT_SECRET is not set"}},
		{name: "notifications refused, secret not echoed", args: []string{"-config", badWebSocket}, env: []string{"GENESYS_CLIENT_SECRET=gc-secret-0123456789"}, code: 1,
			stderr:     []string{"config: notifications.heartbeat_timeout: want more than 30s", `config: notifications.topics[1]: genesys: WebSocket topics need concrete ids, not {id} templates: "v2.users.{id}.activity"`},
			notInOuput: "gc-secret"},
		{name: "the example configuration", args: []string{"-config", "fanbridge.example.yaml"}, env: exampleEnv, code: 0,
			stdout: `valid \(2 intake paths, 4 sinks, 4 routes, dlq: file /var/lib/fanbridge/dlq, mode: sync\)`},
		{name: "secret not set", args: []string{"-config", e.cfgPath}, env: []string{"E2E_API_KEY=" + e2eAPIKey, "E2E_WHSEC=" + e.whsec}, code: 1,
			stderr: []string{"config: intake[1].verifiers[1].hmac.secrets[0]: environment variable E2E_HMAC is not set"}},
		{name: "misspelt key", args: []string{"-config", bad("topic: genesys.all", "topik: genesys.all")}, env: e.env, code: 1,
			stderr: []string{"config: sinks[3].kafka.topik: unknown key (line "}},
		{name: "route to a missing sink", args: []string{"-config", bad("sinks: [kafka-all]", "sinks: [kafka-everything]")}, env: e.env, code: 1,
			stderr: []string{`config: routes[2].sinks[0]: no sink is named "kafka-everything"`}},
		{name: "bad CEL", args: []string{"-config", bad("event.type in", "event.typo in")}, env: e.env, code: 1,
			stderr: []string{"config: routes[1].cel:", "typo"}},
		{name: "bad pattern", args: []string{"-config", bad(`{suffix: ".customer.end"}`, `{suffix: 5}`)}, env: e.env, code: 1,
			stderr: []string{"config: routes[0].pattern:"}},
		{name: "bad secret, not echoed", args: []string{"-config", e.cfgPath}, env: []string{"E2E_API_KEY=" + e2eAPIKey, "E2E_HMAC=" + e2eHMAC, "E2E_WHSEC=whsec_not-base64-topsecret"}, code: 1,
			stderr: []string{"config: intake[1].verifiers[0].standard_webhooks: signature: StandardWebhooks key 0: secret is not whsec_ followed by base64"}, notInOuput: "topsecret"},
		{name: "empty secret", args: []string{"-config", e.cfgPath}, env: []string{"E2E_API_KEY=", "E2E_HMAC=" + e2eHMAC, "E2E_WHSEC=" + e.whsec}, code: 1,
			stderr: []string{"config: intake[0].verifiers[0].api_key: signature: API key 0 is empty"}},
		{name: "no such file", args: []string{"-config", filepath.Join(t.TempDir(), "nope.yaml")}, code: 1, stderr: []string{"no such file"}},
		{name: "no file given", args: nil, code: 2, stderr: []string{"usage: fanbridge validate -config FILE"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCmd(t, ctx, tc.env, append([]string{"validate"}, tc.args...)...)
			assert.Equal(t, tc.code, code, "stdout: %s\nstderr: %s", out, errOut)
			if tc.stdout != "" {
				assert.Regexp(t, tc.stdout, out)
			}
			for _, s := range tc.stderr {
				assert.Contains(t, errOut, s)
			}
			if tc.notInOuput != "" {
				assert.NotContains(t, out+errOut, tc.notInOuput)
			}
		})
	}
}

func TestPatternTest(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	event := "@" + filepath.Join("testdata", "genesys", "v2.detail.events.conversation.customer.end.json")
	wsEvent := "@" + filepath.Join("testdata", "genesys", "websocket.v2.users.activity.REPAIRED.json")
	// The same events, each repeating a key: the filter refuses to read such an event at a path
	// a pattern reads, and a route matches nothing of it.
	repeatedText := strings.Replace(mustRead(t, event[1:]), `"mediaType": "CHAT",`, `"mediaType": "CHAT", "mediaType": "VOICE",`, 1)
	repeated := "@" + writeTemp(t, repeatedText)
	secondKey := strconv.Itoa(strings.Index(repeatedText, `"mediaType": "VOICE"`))
	wsRepeated := "@" + writeTemp(t, strings.Replace(mustRead(t, wsEvent[1:]), `"status": "OFF_QUEUE",`, `"status": "OFF_QUEUE", "status": "IDLE",`, 1))
	for _, tc := range []struct {
		name   string
		args   []string
		stdin  string
		code   int
		stdout string
		stderr string
	}{
		{name: "match", args: []string{`{"detail-type":[{"suffix":".customer.end"}],"detail":{"eventBody":{"mediaType":["CHAT"]}}}`, event}, code: 0, stdout: "match\n"},
		{name: "numeric match", args: []string{`{"detail":{"eventBody":{"interactingDurationMs":[{"numeric":[">",30000]}]}}}`, event}, code: 0, stdout: "match\n"},
		{name: "no match", args: []string{`{"detail-type":[{"suffix":".customer.start"}]}`, event}, code: 1, stdout: "no match\n"},
		{name: "pattern from a file, event from stdin", args: []string{"@" + writeTemp(t, `{"source":[{"prefix":"aws.partner/genesys.com"}]}`), "@-"},
			stdin: mustRead(t, event[1:]), code: 0, stdout: "match\n"},
		{name: "bad pattern", args: []string{`{"detail-type":[{"suffix":5}]}`, event}, code: 2, stderr: `pattern at "detail-type": "suffix" wants a string`},
		{name: "pattern not JSON", args: []string{`{detail-type`, event}, code: 2, stderr: "fanbridge pattern: filter:"},
		{name: "event not JSON", args: []string{`{"source":["x"]}`, "not json"}, code: 2, stderr: "fanbridge pattern: EVENT:"},
		{name: "not an event", args: []string{`{"source":["x"]}`, `{"not":"an event"}`}, code: 2, stderr: "fanbridge pattern: EVENT:"},
		// A WebSocket notification is matched in the shape a route sees: its topic as detail-type.
		{name: "notification as a route sees it", args: []string{`{"detail-type":["v2.users.{id}.activity"]}`, wsEvent}, code: 0, stdout: "match\n"},
		{name: "notification's own field names", args: []string{`{"topicName":[{"prefix":"v2.users."}]}`, wsEvent}, code: 1, stdout: "no match\n"},
		{name: "missing file", args: []string{`{"source":["x"]}`, "@/nonexistent/event.json"}, code: 2, stderr: "fanbridge pattern: EVENT:"},
		{name: "event repeating a key the pattern reads", args: []string{`{"detail":{"eventBody":{"mediaType":["VOICE"]}}}`, repeated}, code: 2,
			stderr: `fanbridge pattern: EVENT: filter: invalid event: ambiguous event: the key at offset ` + secondKey + ` repeats a key, or spells a path two ways, at "detail.eventBody.mediaType", which a rule reads`},
		{name: "event repeating a key the pattern does not read", args: []string{`{"detail-type":[{"suffix":".customer.end"}]}`, repeated}, code: 0, stdout: "match\n"},
		{name: "event repeating a key, no match elsewhere", args: []string{`{"detail-type":[{"suffix":".customer.start"}]}`, repeated}, code: 1, stdout: "no match\n"},
		{name: "notification repeating a key the pattern reads", args: []string{`{"detail":{"eventBody":{"routingStatus":{"status":["IDLE"]}}}}`, wsRepeated}, code: 2,
			stderr: "repeats a key, or spells a path two ways, at \"detail.eventBody.routingStatus.status\", which a rule reads (offsets count in the EventBridge shape a pattern sees the event in)"},
		{name: "cel match", args: []string{"-cel", "data.mediaType == 'CHAT' && data.interactingDurationMs > 30000 && event.type.endsWith('.customer.end')", event}, code: 0, stdout: "match\n"},
		{name: "cel no match", args: []string{"-cel", "data.mediaType == 'VOICE'", event}, code: 1, stdout: "no match\n"},
		{name: "cel fails on the event", args: []string{"-cel", "data.wrapup.code == 'x'", event}, code: 1, stdout: "no match\n", stderr: "no such key: wrapup"},
		{name: "cel bad expression", args: []string{"-cel", "data.mediaType ==", event}, code: 2, stderr: "fanbridge pattern: filter: invalid CEL expression"},
		{name: "cel event not an event", args: []string{"-cel", "true", `{"a":1}`}, code: 2, stderr: "fanbridge pattern: EVENT:"},
		{name: "too few arguments", args: []string{`{}`}, code: 2, stderr: "usage: fanbridge pattern test PATTERN EVENT"},
		{name: "both from stdin", args: []string{"@-", "@-"}, stdin: mustRead(t, event[1:]), code: 2,
			stderr: "fanbridge pattern: PATTERN and EVENT cannot both be @-: standard input is read once"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.CommandContext(ctx, binary, append([]string{"pattern", "test"}, tc.args...)...)
			cmd.Stdin = strings.NewReader(tc.stdin)
			var so, se strings.Builder
			cmd.Stdout, cmd.Stderr = &so, &se
			err := cmd.Run()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else {
				require.NoError(t, err)
			}
			assert.Equal(t, tc.code, code, "stdout: %s\nstderr: %s", so.String(), se.String())
			if tc.stdout != "" || tc.code != 2 {
				assert.Equal(t, tc.stdout, so.String())
			}
			if tc.stderr != "" {
				assert.Contains(t, se.String(), tc.stderr)
			}
		})
	}
}

func writeTemp(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "f.json")
	require.NoError(t, os.WriteFile(p, []byte(text), 0o600))
	return p
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return string(b)
}

// dlqConfig sends every event to an archive topic and to a sink that maps only presence types
// to a topic: without a fallback topic, every other type fails there permanently and is
// dead-lettered. The fix for redrive adds the fallback.
const dlqConfig = `
listen: {address: "127.0.0.1:0"}
intake:
  - path: /events
    verifiers:
      - api_key: {header: X-Api-Key, keys: ["${E2E_API_KEY}"]}
sinks:
  - name: people
    kafka:
      brokers: ["%[1]s"]
      topic_by_type: {"v2.users.{id}.presence": gen-presence-status}
      %[3]s
  - name: archive
    kafka: {brokers: ["%[1]s"], topic: genesys.all}
routes:
  - {name: everything, all: true, sinks: [people, archive]}
dlq: {file: {dir: "%[2]s"}}
logging: {format: json}
`

// TestKafkaDLQ dead-letters an event to a Kafka topic instead of a directory, then lists, shows
// and redrives it from that topic with the dlq subcommands.
func TestKafkaDLQ(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	kc := newKafka(t, "gen-presence-status", "genesys.all", "genesys-other", "genesys-dlq")
	broker := kc.ListenAddrs()[0]
	kafkaDLQ := strings.Replace(dlqConfig, `dlq: {file: {dir: "%[2]s"}}`, `dlq: {kafka: {brokers: ["%[1]s"], topic: genesys-dlq}}`, 1)
	require.NotEqual(t, dlqConfig, kafkaDLQ)
	cfgPath := filepath.Join(t.TempDir(), "fanbridge.yaml")
	writeFile(t, cfgPath, fmt.Sprintf(kafkaDLQ, broker, "", ""))
	fixed := filepath.Join(t.TempDir(), "fixed.yaml")
	writeFile(t, fixed, fmt.Sprintf(kafkaDLQ, broker, "", "fallback_topic: genesys-other"))
	env := []string{"E2E_API_KEY=" + e2eAPIKey}
	p := startService(t, ctx, cfgPath, env...)

	body := mustRead(t, filepath.Join("testdata", "genesys", "v2.detail.events.conversation.customer.end.json"))
	var ev struct{ ID string }
	require.NoError(t, json.Unmarshal([]byte(body), &ev))
	status, answer, err := post(ctx, http.DefaultClient, p.url("/events"), []byte(body), map[string]string{"X-Api-Key": e2eAPIKey})
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, status, answer)
	assert.Contains(t, answer, `"status":"delivered"`, "dead-lettered counts as delivered")
	p.signal(t, syscall.SIGTERM)
	code, err := p.exit(ctx)
	require.NoError(t, err)
	require.Equal(t, 0, code)

	code, out, errOut := runCmd(t, ctx, env, "dlq", "list", "-config", cfgPath, "-json")
	require.Equal(t, 0, code, errOut)
	var e dlq.Entry
	require.NoError(t, json.Unmarshal([]byte(strings.TrimSpace(out)), &e), out)
	assert.Equal(t, "people", e.Sink)
	assert.Equal(t, dlq.ConditionPermanent, e.Condition)
	assert.Equal(t, ev.ID, e.Event.ID)
	code, out, errOut = runCmd(t, ctx, env, "dlq", "show", "-config", cfgPath, e.ID)
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, ev.ID)

	code, out, errOut = runCmd(t, ctx, env, "dlq", "redrive", "-config", fixed)
	require.Equal(t, 0, code, "%s\n%s", out, errOut)
	assert.Contains(t, out, "selected 1, redriven 1, removed 1, failed 0, skipped 0")
	got := readAll(t, ctx, []string{broker}, "genesys-other")
	require.Len(t, got, 1)
	assert.Equal(t, ev.ID, got[0].Event.ID)
	code, _, errOut = runCmd(t, ctx, env, "dlq", "list", "-config", fixed)
	require.Equal(t, 0, code, errOut)
	assert.Equal(t, "0 entries\n", errOut, "the redriven entry is removed from the topic")
}

// TestDLQCommands dead-letters events with a sink that fails permanently, then lists, shows and
// redrives them with the dlq subcommands: beside the running service (list works, redrive is
// refused), after it stopped (redrive with the broken sink keeps the entries; with the sink fixed
// it delivers and removes them).
func TestDLQCommands(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	kc := newKafka(t, "gen-presence-status", "genesys.all", "genesys-other")
	broker := kc.ListenAddrs()[0]
	dir := filepath.Join(t.TempDir(), "dlq")
	cfgPath := filepath.Join(t.TempDir(), "fanbridge.yaml")
	writeFile(t, cfgPath, fmt.Sprintf(dlqConfig, broker, dir, ""))
	fixed := filepath.Join(t.TempDir(), "fixed.yaml")
	writeFile(t, fixed, fmt.Sprintf(dlqConfig, broker, dir, "fallback_topic: genesys-other"))
	env := []string{"E2E_API_KEY=" + e2eAPIKey}
	p := startService(t, ctx, cfgPath, env...)

	samples := []string{
		"v2.detail.events.conversation.customer.end.json",
		"v2.detail.events.conversation.customer.start.json",
		"v2.audits.entitytype.OAuthClient.delete.json",
	}
	ids := map[string]bool{}
	for _, s := range samples {
		body := mustRead(t, filepath.Join("testdata", "genesys", s))
		status, answer, err := post(ctx, http.DefaultClient, p.url("/events"), []byte(body), map[string]string{"X-Api-Key": e2eAPIKey})
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, status, answer)
		assert.Contains(t, answer, `"status":"delivered"`, "dead-lettered counts as delivered")
		var ev struct{ ID string }
		require.NoError(t, json.Unmarshal([]byte(body), &ev))
		ids[ev.ID] = true
	}

	dlqCmd := func(args ...string) (int, string, string) {
		t.Helper()
		return runCmd(t, ctx, env, append([]string{"dlq"}, args...)...)
	}

	// Beside the running service: list reads, redrive is refused.
	code, out, errOut := dlqCmd("list", "-config", cfgPath)
	require.Equal(t, 0, code, errOut)
	rows := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, rows, 1+len(samples), out)
	assert.Regexp(t, `^ID\s+LAST ATTEMPT\s+SINK\s+ROUTE\s+CONDITION\s+ATTEMPTS\s+EVENT ID\s+TYPE\s+ERROR`, rows[0])
	for _, r := range rows[1:] {
		assert.Regexp(t, `\speople\s+everything\s+permanent\s+1\s`, r)
		assert.Contains(t, r, "kafkasink: choosing a topic for event")
	}
	assert.Equal(t, fmt.Sprintf("%d entries\n", len(samples)), errOut)
	code, _, errOut = dlqCmd("redrive", "-config", cfgPath)
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "a running fanbridge holds this directory")

	p.signal(t, syscall.SIGTERM)
	code, err := p.exit(ctx)
	require.NoError(t, err)
	require.Equal(t, 0, code)

	// list -json: one entry per line, each naming the sink, route, condition and event.
	code, out, errOut = dlqCmd("list", "-file", dir, "-json")
	require.Equal(t, 0, code, errOut)
	var entries []dlq.Entry
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var e dlq.Entry
		require.NoError(t, json.Unmarshal([]byte(l), &e), l)
		entries = append(entries, e)
		assert.Equal(t, "people", e.Sink)
		assert.Equal(t, "everything", e.Route)
		assert.Equal(t, dlq.ConditionPermanent, e.Condition)
		assert.Equal(t, 1, e.Attempts)
		assert.Contains(t, e.Error, "kafkasink: no topic for event type")
		assert.True(t, ids[e.Event.ID], "entry for %s", e.Event.ID)
	}
	require.Len(t, entries, len(samples))

	// Output that cannot be written (a full disk: /dev/full) is a failure, not a success that
	// shows nothing.
	if full, err := os.OpenFile("/dev/full", os.O_WRONLY, 0); err == nil {
		defer full.Close()
		for _, args := range [][]string{{"list", "-file", dir}, {"list", "-file", dir, "-json"}, {"show", "-file", dir, entries[0].ID}} {
			cmd := exec.CommandContext(ctx, binary, append([]string{"dlq"}, args...)...)
			cmd.Stdout = full
			var stderr strings.Builder
			cmd.Stderr = &stderr
			var ee *exec.ExitError
			require.ErrorAs(t, cmd.Run(), &ee, "dlq %v to a full disk", args)
			assert.Equal(t, 1, ee.ExitCode(), "dlq %v: %s", args, stderr.String())
			assert.Contains(t, stderr.String(), "no space left on device", "dlq %v", args)
		}
	}

	// show: one entry in full, by id.
	code, out, errOut = dlqCmd("show", "-file", dir, entries[1].ID)
	require.Equal(t, 0, code, errOut)
	var shown dlq.Entry
	require.NoError(t, json.Unmarshal([]byte(out), &shown), out)
	assert.Equal(t, entries[1].ID, shown.ID)
	assert.Equal(t, entries[1].Event.ID, shown.Event.ID)
	assert.NotEmpty(t, shown.Event.Raw, "the envelope as received")
	assert.Contains(t, out, "\n  \"", "indented")
	code, _, errOut = dlqCmd("show", "-file", dir, "01NOSUCHENTRY")
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "fanbridge dlq:")
	code, _, _ = dlqCmd("show", "-file", dir)
	assert.Equal(t, 2, code, "show needs an id")
	code, _, errOut = dlqCmd("show", "-file", dir, "-sink", "people", entries[1].ID)
	assert.Equal(t, 2, code, "show takes no selection")
	assert.Contains(t, errOut, "-sink and -id select entries for list and redrive")

	// list selects with -sink and -id as redrive does.
	code, out, errOut = dlqCmd("list", "-file", dir, "-json", "-id", entries[2].ID+","+entries[0].ID)
	require.Equal(t, 0, code, errOut)
	assert.Equal(t, 2, strings.Count(out, "\n"), out)
	assert.Contains(t, out, entries[0].ID)
	assert.Contains(t, out, entries[2].ID)
	assert.NotContains(t, out, entries[1].ID)
	code, out, errOut = dlqCmd("list", "-file", dir, "-sink", "nobody")
	require.Equal(t, 0, code, errOut)
	assert.Equal(t, 1, strings.Count(out, "\n"), "the header only: %s", out)
	assert.Equal(t, "0 entries\n", errOut)

	// Redrive with the sink still broken: every entry fails again and stays.
	code, out, _ = dlqCmd("redrive", "-config", cfgPath, "-attempts", "1")
	assert.Equal(t, 1, code, out)
	assert.Contains(t, out, fmt.Sprintf("selected %d, redriven 0, removed 0, failed %d, skipped 0", len(samples), len(samples)))

	// Redrive one entry, then the rest, with the sink fixed.
	code, out, errOut = dlqCmd("redrive", "-config", fixed, "-id", entries[0].ID)
	require.Equal(t, 0, code, "%s\n%s", out, errOut)
	assert.Contains(t, out, "selected 1, redriven 1, removed 1, failed 0, skipped 0")
	code, out, errOut = dlqCmd("redrive", "-config", fixed, "-sink", "people")
	require.Equal(t, 0, code, "%s\n%s", out, errOut)
	assert.Contains(t, out, fmt.Sprintf("selected %d, redriven %d, removed %d", len(samples)-1, len(samples)-1, len(samples)-1))
	code, out, errOut = dlqCmd("list", "-config", fixed)
	require.Equal(t, 0, code, errOut)
	assert.Equal(t, "0 entries\n", errOut)
	assert.Equal(t, 1, len(strings.Split(strings.TrimSpace(out), "\n")), "only the header")

	// The redriven events are in the fallback topic, once each.
	got := map[string]int{}
	for _, r := range readAll(t, ctx, []string{broker}, "genesys-other") {
		got[r.Event.ID]++
	}
	want := map[string]int{}
	for id := range ids {
		want[id] = 1
	}
	assert.Equal(t, want, got)

	// Mistakes in the command line.
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{nil, 2, "usage: fanbridge dlq list"},
		{[]string{"list"}, 2, "give -config FILE or -file DIR"},
		{[]string{"frob", "-file", dir}, 2, `unknown command "frob"`},
		{[]string{"redrive", "-file", dir}, 2, "-config is required"},
		{[]string{"redrive", "-config", fixed, "-sink", "nope"}, 2, "-sink nope: no sink of that name"},
	} {
		code, _, errOut := dlqCmd(tc.args...)
		assert.Equal(t, tc.code, code, "%v: %s", tc.args, errOut)
		assert.Contains(t, errOut, tc.msg, "%v", tc.args)
	}
}

func TestVersionHelpAndUnknownCommands(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code, out, _ := runCmd(t, ctx, nil, "version")
	assert.Equal(t, 0, code)
	assert.Regexp(t, `^fanbridge \S+ `+regexp.QuoteMeta(runtime.Version())+` `+runtime.GOOS+`/`+runtime.GOARCH+"\n$", out)

	code, out, _ = runCmd(t, ctx, nil, "help")
	assert.Equal(t, 0, code)
	for _, c := range []string{"validate", "dlq", "pattern", "provision", "demo", "version"} {
		assert.Regexp(t, `(?m)^  `+c+`\s`, out)
	}

	code, _, errOut := runCmd(t, ctx, nil, "frobnicate")
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, `unknown command "frobnicate"`)

	for _, c := range []string{"version", "help"} {
		code, out, errOut = runCmd(t, ctx, nil, c, "x")
		assert.Equal(t, 2, code, c)
		assert.Empty(t, out, c)
		assert.Contains(t, errOut, `fanbridge `+c+`: unexpected argument "x"`)
		// -h asks for help, as it does of every command.
		code, out, _ = runCmd(t, ctx, nil, c, "-h")
		assert.Equal(t, 0, code, c)
		assert.Contains(t, out, "usage", c)
	}

	code, _, errOut = runCmd(t, ctx, nil, "-config", filepath.Join(t.TempDir(), "nope.yaml"))
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "no such file")

	code, _, errOut = runCmd(t, ctx, nil, "-no-such-flag")
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, "flag provided but not defined: -no-such-flag")

	// The demo helpers that need no running service.
	code, out, _ = runCmd(t, ctx, nil, "demo", "sample")
	assert.Equal(t, 0, code)
	assert.Contains(t, out, "v2.detail.events.conversation.customer.end\n")
	code, out, _ = runCmd(t, ctx, nil, "demo", "sample", "customer.end")
	assert.Equal(t, 0, code)
	assert.JSONEq(t, mustRead(t, filepath.Join("testdata", "genesys", "v2.detail.events.conversation.customer.end.json")), out)
	code, out, _ = runCmd(t, ctx, nil, "demo", "config")
	assert.Equal(t, 0, code)
	assert.Contains(t, out, "${DEMO_API_KEY}")
}

// TestProvision runs `provision` against a fake Genesys Cloud: it creates the EventBridge
// integration once, a second run changes nothing, and a wrong secret or missing flags fail with
// the matching exit codes.
func TestProvision(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv := genesystest.NewServer()
	defer srv.Close()
	// The process environment must not fill in what the test leaves out.
	clean := []string{"GENESYS_REGION=", "GENESYS_CLIENT_ID=", "GENESYS_API_URL=", "GENESYS_TOKEN_URL=", "AWS_ACCOUNT_ID=", "AWS_REGION="}
	env := append(clean, "GENESYS_CLIENT_SECRET="+genesystest.DefaultClientSecret)
	args := []string{"provision", "-api-url", srv.URL, "-token-url", srv.TokenURL(), "-client-id", genesystest.DefaultClientID,
		"-region", "us-east-1", "-aws-account", "123456789012", "-aws-region", "us-east-1", "-suffix", "fanbridge-test",
		"-topics", "v2.users.{id}.presence,v2.detail.events.conversation.{id}.customer.end"}
	source := "aws.partner/genesys.com/cloud/" + genesystest.DefaultOrganizationID + "/fanbridge-test"

	code, out, errOut := runCmd(t, ctx, env, args...)
	require.Equal(t, 0, code, "%s\n%s", out, errOut)
	assert.Contains(t, out, `"fanbridge": created, configured, enabled`)
	assert.Contains(t, out, "partner event source: "+source)
	writes := len(srv.Writes())
	assert.Positive(t, writes)

	code, out, errOut = runCmd(t, ctx, env, args...)
	require.Equal(t, 0, code, "%s\n%s", out, errOut)
	assert.Contains(t, out, `"fanbridge": unchanged`)
	assert.Len(t, srv.Writes(), writes, "a second run writes nothing")
	assert.NotContains(t, out+errOut, genesystest.DefaultClientSecret)

	code, out, errOut = runCmd(t, ctx, append(clean, "GENESYS_CLIENT_SECRET=not-the-secret"), args...)
	assert.Equal(t, 1, code, "%s\n%s", out, errOut)
	assert.Contains(t, errOut, "fanbridge provision:")
	assert.NotContains(t, out+errOut, "not-the-secret")

	code, _, errOut = runCmd(t, ctx, env, "provision")
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, "missing -region or GENESYS_REGION")
}

// TestHelp asks every command for -h: it exits 0 and prints its usage on standard error,
// followed by its flags, except pattern's, whose usage explains its one flag itself.
func TestHelp(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, tc := range []struct {
		args  []string
		usage string
		flag  string // a flag the listing must show; "" when none is listed
	}{
		{[]string{"-h"}, "service flags:", "-config"},
		{[]string{"validate", "-h"}, "usage: fanbridge validate -config FILE", "-config"},
		{[]string{"dlq", "-h"}, "usage: fanbridge dlq list", "-attempts"},
		{[]string{"demo", "-h"}, "config  prints the demo's configuration file", "-key"},
		{[]string{"pattern", "-h"}, "usage: fanbridge pattern test PATTERN EVENT", ""},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, out, errOut := runCmd(t, ctx, nil, tc.args...)
			assert.Equal(t, 0, code, "stderr: %s", errOut)
			assert.Empty(t, out)
			assert.Contains(t, errOut, tc.usage)
			if tc.flag != "" {
				assert.Contains(t, errOut, "  "+tc.flag+" ")
			} else {
				assert.NotContains(t, errOut, "\n  -")
			}
		})
	}
}

// TestHelpNeverShowsSecrets asks every command for -h, and gives each a flag it does not know,
// with secrets in the environment: no usage text may echo them (as a flag's default would).
func TestHelpNeverShowsSecrets(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const secret = "s3cr3t-from-the-environment"
	env := []string{"FANBRIDGE_API_KEY=" + secret, "GENESYS_CLIENT_SECRET=" + secret, "GENESYS_CLIENT_ID=" + secret + "-id"}
	for _, cmd := range [][]string{nil, {"validate"}, {"dlq"}, {"demo"}, {"pattern"}, {"provision"}} {
		for _, flag := range []string{"-h", "-no-such-flag"} {
			args := append(append([]string(nil), cmd...), flag)
			t.Run(strings.Join(args, " "), func(t *testing.T) {
				_, out, errOut := runCmd(t, ctx, env, args...)
				assert.NotContains(t, out+errOut, secret)
			})
		}
	}
	t.Run("demo send takes the key from the environment", func(t *testing.T) {
		code, out, errOut := runCmd(t, ctx, env, "demo", "send", "-url", "http://127.0.0.1:1/events")
		assert.Equal(t, 1, code, "the post fails: nothing listens")
		assert.NotContains(t, errOut, "-key is required")
		assert.NotContains(t, out+errOut, secret)
	})
}

// A demo flag beside -config is refused rather than silently ignored, and -kafka-port's help
// shows no default of its own beside the one its text explains.
func TestDemoFlagsWithConfig(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := writeTemp(t, "listen: {address: \"127.0.0.1:0\"}\n")
	for _, args := range [][]string{
		{"-config", cfg, "-api-key", "zzz"},
		{"-config", cfg, "-send-samples"},
		{"-config", cfg, "-kafka-port", "0"},
		{"-dlq-dir", "/tmp/x", "-config", cfg},
	} {
		t.Run(strings.Join(args[2:], " "), func(t *testing.T) {
			code, _, errOut := runCmd(t, ctx, nil, args...)
			assert.Equal(t, 2, code, "stderr: %s", errOut)
			assert.Contains(t, errOut, "is for the demo only")
		})
	}
	code, _, errOut := runCmd(t, ctx, nil, "-kafka-port", "70000")
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, "want a port from 0 to 65535")
	assert.Contains(t, errOut, "-kafka-port port\n")
	assert.NotContains(t, errOut, "(default -1)")
}

// A service flag given an empty value (-config "$CFG" with CFG unset) is a usage error: an empty
// -config must not start the demo, with its generated key, on the address meant for the service.
func TestServeRefusesEmptyFlags(t *testing.T) {
	cfg := writeTemp(t, "listen: {address: \"127.0.0.1:0\"}\n")
	for _, args := range [][]string{
		{"-config", "", "-listen", "127.0.0.1:0"},
		{"-config=", "-listen", "127.0.0.1:0"},
		{"-listen", "127.0.0.1:0", "-config", ""},
		{"serve", "-config", ""},
		{"-config", cfg, "-listen", ""},
		{"-listen", "", "-kafka-port", "0"},
		{"-api-key", "", "-listen", "127.0.0.1:0", "-kafka-port", "0"},
		{"-dlq-dir", "", "-listen", "127.0.0.1:0", "-kafka-port", "0"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			// Without the check the demo or the service starts, and runs until the deadline.
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			code, out, errOut := runCmd(t, ctx, nil, args...)
			assert.Equal(t, 2, code, "stderr: %s", errOut)
			assert.Regexp(t, `^fanbridge: -[a-z-]+ is empty; leave the flag out for `, errOut)
			assert.NotContains(t, out, "demo is running")
		})
	}
}

// dlq list and show read the dlq section alone: a secret the rest of the file needs may be
// missing; redrive, which builds the sinks, still needs the whole file.
func TestDLQListNeedsOnlyTheDLQSection(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir := filepath.Join(t.TempDir(), "dlq")
	q, err := filedlq.Open(dir)
	require.NoError(t, err)
	require.NoError(t, q.Close())
	cfg := writeTemp(t, fmt.Sprintf(dlqConfig, "127.0.0.1:1", dir, ""))
	code, _, errOut := runCmd(t, ctx, nil, "dlq", "list", "-config", cfg)
	assert.Equal(t, 0, code, errOut)
	assert.Equal(t, "0 entries\n", errOut)
	code, _, errOut = runCmd(t, ctx, nil, "dlq", "show", "-config", cfg, "no-such-entry")
	assert.Equal(t, 1, code)
	assert.NotContains(t, errOut, "E2E_API_KEY")
	code, _, errOut = runCmd(t, ctx, nil, "dlq", "redrive", "-config", cfg)
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "E2E_API_KEY", "redrive needs the sinks, so the whole file")

	bad := writeTemp(t, strings.Replace(fmt.Sprintf(dlqConfig, "127.0.0.1:1", dir, ""), `dlq: {file: {dir:`, `dlq: {file: {fsync: sometimes, dir:`, 1))
	code, _, errOut = runCmd(t, ctx, nil, "dlq", "list", "-config", bad)
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "dlq.file.fsync: want always, interval or never")

	none := writeTemp(t, "listen: {address: \"127.0.0.1:0\"}\n")
	code, _, errOut = runCmd(t, ctx, nil, "dlq", "list", "-config", none)
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "the configuration has no dlq")
}

// redrive opens a file queue for writing, which would create a missing directory: a mistyped
// -file (or a dlq.file.dir no service has written yet) must fail, create nothing, and not report
// an empty redrive as a success.
func TestDLQRedriveMissingDirectory(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	env := []string{"E2E_API_KEY=" + e2eAPIKey}
	base := t.TempDir()
	never := filepath.Join(base, "never", "written")
	cfg := writeTemp(t, fmt.Sprintf(dlqConfig, "127.0.0.1:1", never, ""))
	typo := filepath.Join(base, "typo", "dlq")
	aFile := filepath.Join(base, "a-file")
	writeFile(t, aFile, "not a queue\n")
	for _, tc := range []struct {
		name    string
		args    []string
		missing string // a path that must still not exist
		msg     string
	}{
		{"mistyped-file", []string{"-file", typo}, filepath.Join(base, "typo"), typo + ": no such directory"},
		{"config-dir", nil, filepath.Join(base, "never"), "config: dlq.file.dir: " + never + ": no such directory"},
		{"not-a-directory", []string{"-file", aFile}, "", aFile + ": not a directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCmd(t, ctx, env, append([]string{"dlq", "redrive", "-config", cfg}, tc.args...)...)
			assert.Equal(t, 1, code, "%s%s", out, errOut)
			assert.Contains(t, errOut, "fanbridge dlq redrive: "+tc.msg)
			assert.NotContains(t, out, "selected")
			if tc.missing != "" {
				assert.NoFileExists(t, tc.missing)
				assert.NoDirExists(t, tc.missing)
			}
		})
	}
	// list fails on such a path too.
	code, _, errOut := runCmd(t, ctx, env, "dlq", "list", "-file", typo)
	assert.Equal(t, 1, code, errOut)
	assert.NoDirExists(t, filepath.Join(base, "typo"))

	// A directory that comes from the environment is not quoted: its setting is named instead.
	secret := filepath.Join(base, "tenant-7f3a9c", "dlq")
	fromEnv := writeTemp(t, fmt.Sprintf(dlqConfig, "127.0.0.1:1", "${DLQ_DIR}", ""))
	code, out, errOut := runCmd(t, ctx, append(env, "DLQ_DIR="+secret), "dlq", "redrive", "-config", fromEnv)
	assert.Equal(t, 1, code, "%s%s", out, errOut)
	assert.Contains(t, errOut, "fanbridge dlq redrive: config: dlq.file.dir: ")
	assert.NotContains(t, out+errOut, "tenant-7f3a9c")
	assert.NoDirExists(t, filepath.Join(base, "tenant-7f3a9c"))
}

// Entry text comes from senders (event id and type) and sinks (the error, which may quote a
// remote server): its tabs, carriage returns and escape sequences must neither shift the
// columns of dlq list nor reach the terminal, in list, show or redrive's progress lines.
func TestDLQTextIsEscaped(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	env := []string{"E2E_API_KEY=" + e2eAPIKey}
	dir := filepath.Join(t.TempDir(), "dlq")
	const (
		errText = "refused\t\r\x1b[31mred\u202e"
		evID    = "ev\x1b[2J"
		evType  = "v2.type\u009b31m\x7f"
	)
	// Raw and Data must come back byte for byte from the JSON, terminal controls or not.
	raw := []byte("{\"detail-type\":\"t\",\"detail\":{\"name\":\"Ann\u00a0Lee\",\"x\":\"a\x7fb\u009b\u202e\"}}")
	data := []byte("{\"name\":\"Ann\u00a0Lee\",\"emoji\":\"\U0001F468\u200d\U0001F469\"}")
	q, err := filedlq.Open(dir)
	require.NoError(t, err)
	// Sink "gone" is not in the configuration: redrive skips the entry and prints it.
	require.NoError(t, q.Put(ctx, dlq.Entry{Sink: "gone", Route: "r\tx", Error: errText, Attempts: 1, Condition: dlq.ConditionPermanent,
		Event: fanbridge.Event{ID: evID, Type: evType, Raw: raw, Data: data}}))
	require.NoError(t, q.Close())
	cfg := writeTemp(t, fmt.Sprintf(dlqConfig, "127.0.0.1:1", dir, ""))

	noControls := func(t *testing.T, what, out string) {
		t.Helper()
		for _, c := range []string{"\x1b", "\r", "\u009b", "\x7f", "\u202e"} {
			assert.NotContains(t, out, c, "%s prints %q raw", what, c)
		}
	}
	code, out, errOut := runCmd(t, ctx, env, "dlq", "list", "-file", dir)
	require.Equal(t, 0, code, errOut)
	assert.Equal(t, "1 entry\n", errOut)
	noControls(t, "list", out)
	rows := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	require.Len(t, rows, 2, out)
	assert.Len(t, regexp.MustCompile(`\s{2,}`).Split(rows[1], -1), 9, "nine columns: %q", rows[1])
	assert.Contains(t, rows[1], strconv.Quote(errText))
	assert.Contains(t, rows[1], strconv.Quote(evID))
	assert.Contains(t, rows[1], strconv.Quote(evType))
	assert.Contains(t, rows[1], strconv.Quote("r\tx"))

	// The JSON of list -json and show holds the text, Raw and Data unchanged, with those
	// characters escaped.
	id := strings.Fields(rows[1])[0]
	for _, args := range [][]string{{"list", "-file", dir, "-json"}, {"show", "-file", dir, id}} {
		code, out, errOut = runCmd(t, ctx, env, append([]string{"dlq"}, args...)...)
		require.Equal(t, 0, code, errOut)
		noControls(t, args[0], out)
		var e dlq.Entry
		require.NoError(t, json.Unmarshal([]byte(out), &e), out)
		assert.Equal(t, id, e.ID)
		assert.Equal(t, errText, e.Error, args[0])
		assert.Equal(t, evType, e.Event.Type, args[0])
		assert.Equal(t, evID, e.Event.ID, args[0])
		assert.Equal(t, raw, e.Event.Raw, args[0])
		assert.Equal(t, data, []byte(e.Event.Data), args[0])
		assert.Contains(t, out, "Ann\u00a0Lee", "%s escapes a no-break space", args[0])
	}

	code, out, errOut = runCmd(t, ctx, env, "dlq", "redrive", "-config", cfg, "-attempts", "1")
	assert.Equal(t, 1, code, "%s%s", out, errOut)
	noControls(t, "redrive", out)
	assert.Contains(t, out, "event="+strconv.Quote(evID))
	assert.Contains(t, out, "selected 1, redriven 0, removed 0, failed 0, skipped 1")
}

// Entries of different sinks that share an ID (a program that set IDs itself) are neither sent
// nor removed by redrive, which says so and exits 1.
func TestDLQRedriveSharedIDs(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir := filepath.Join(t.TempDir(), "dlq")
	q, err := filedlq.Open(dir)
	require.NoError(t, err)
	for _, s := range []string{"people", "archive"} {
		require.NoError(t, q.Put(ctx, dlq.Entry{ID: "shared-id", Sink: s, Event: fanbridge.Event{ID: "ev-1", Raw: []byte(`{}`)}}))
	}
	require.NoError(t, q.Close())
	cfg := writeTemp(t, fmt.Sprintf(dlqConfig, "127.0.0.1:1", dir, ""))
	env := []string{"E2E_API_KEY=" + e2eAPIKey}
	code, out, errOut := runCmd(t, ctx, env, "dlq", "redrive", "-config", cfg, "-attempts", "1")
	assert.Equal(t, 1, code, "%s%s", out, errOut)
	assert.Equal(t, 2, strings.Count(out, "shared-id  conflict "), out)
	assert.Contains(t, out, "selected 2, redriven 0, removed 0, failed 0, skipped 0, conflicts 2")
	code, out, errOut = runCmd(t, ctx, env, "dlq", "list", "-file", dir, "-json")
	require.Equal(t, 0, code, errOut)
	assert.Equal(t, 2, strings.Count(out, `"id":"shared-id"`), "both entries stay: %s", out)
}

// A redrive stops once a sink has failed -max-failures entries in a row with retryable errors, as
// a sink that is down does (counted for each sink on its own: another sink's deliveries in
// between do not reset it, nor do the entries a sink refuses), says which sink and why, and
// leaves in the queue every entry it did not deliver. Entries a sink refuses (permanently, as a
// type with no topic) do not count: any number of them at the head of the queue do not keep the
// redrive from the entries behind them.
func TestDLQRedriveStopsWhenASinkKeepsFailing(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	kc := newKafka(t, "gen-presence-status", "genesys.all")
	// "down" is a gRPC consumer nobody listens for: every call fails at once, Unavailable,
	// which a retry may cure.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	downAddr := ln.Addr().String()
	require.NoError(t, ln.Close())
	dir := filepath.Join(t.TempDir(), "dlq")
	q, err := filedlq.Open(dir)
	require.NoError(t, err)
	put := func(s string, i int) {
		t.Helper()
		require.NoError(t, q.Put(ctx, dlq.Entry{Sink: s, Route: "everything", Attempts: 1, Condition: dlq.ConditionAttempts,
			Event: fanbridge.Event{ID: fmt.Sprintf("%s-%d", s, i), Type: "v2.detail.events.conversation.{id}.customer.end",
				Raw: []byte(`{}`), Data: []byte(`{}`)}}))
	}
	// Entries of "people", which has no topic for their type and refuses each at once, come
	// first; then entries of "down", "people" and "archive" (which takes them) in turn. There are
	// enough of them that a redrive that stops leaves some unsent, however many it sends at once.
	const head, each = 8, 12
	for i := range head {
		put("people", i)
	}
	for i := range each {
		for _, s := range []string{"down", "people", "archive"} {
			if s == "people" {
				put(s, head+i)
			} else {
				put(s, i)
			}
		}
	}
	require.NoError(t, q.Close())
	text := fmt.Sprintf(dlqConfig, kc.ListenAddrs()[0], dir, "")
	text = strings.Replace(text, "  - name: archive\n", fmt.Sprintf("  - name: down\n    grpc: {targets: [%q], insecure: true}\n  - name: archive\n", downAddr), 1)
	text = strings.Replace(text, "sinks: [people, archive]}", "sinks: [people, archive, down]}", 1)
	cfg := writeTemp(t, text)
	env := []string{"E2E_API_KEY=" + e2eAPIKey}
	left := func() map[string]int {
		t.Helper()
		code, out, errOut := runCmd(t, ctx, env, "dlq", "list", "-file", dir, "-json")
		require.Equal(t, 0, code, errOut)
		bySink := map[string]int{}
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			var e dlq.Entry
			require.NoError(t, json.Unmarshal([]byte(l), &e), l)
			bySink[e.Sink]++
		}
		return bySink
	}

	// The eight refusals of people at the head do not stop it. Then down-0 fails, people-8 is
	// refused, archive-0 is delivered, down-1 fails, people-9, archive-1, down-2 fails: three in
	// a row for down, and the redrive stops there.
	code, out, errOut := runCmd(t, ctx, env, "dlq", "redrive", "-config", cfg, "-attempts", "1", "-max-failures", "3")
	assert.Equal(t, 1, code, "%s%s", out, errOut)
	assert.Contains(t, errOut, "fanbridge dlq redrive: 1 attempt per entry, each up to 10s; 1 entry at a time; stops once a sink fails 3 entries in a row with retryable errors (-max-failures)\n")
	assert.Contains(t, errOut, "fanbridge dlq redrive: stopped: sink down failed 3 entries in a row with retryable errors (it looks down), the last with: ")
	assert.Contains(t, errOut, "Unavailable", "the sink's error")
	assert.Contains(t, errOut, "Every entry not redriven stays in the queue")
	assert.NotContains(t, errOut, "context canceled")
	for i := range 3 {
		assert.Regexp(t, fmt.Sprintf(`(?m)^\S+  failed     sink=down event=down-%d  in a row: %d of 3  error: .*Unavailable`, i, i+1), out)
	}
	for i := range head + 2 {
		assert.Regexp(t, fmt.Sprintf(`(?m)^\S+  failed     sink=people event=people-%d  error: .*kafkasink: `, i), out, "a refusal is not counted")
	}
	assert.Equal(t, head+2+3, strings.Count(out, "  failed     sink="), out)
	assert.Equal(t, 2, strings.Count(out, "redriven   sink=archive"), out)
	assert.NotContains(t, out, "event=people-10", "nothing is sent after the stop")
	assert.Contains(t, out, fmt.Sprintf("redriven 2, removed 2, failed %d,", head+2+3))
	assert.Equal(t, map[string]int{"people": head + each, "down": each, "archive": each - 2}, left(), "only the delivered entries are removed")

	// -max-failures 0 never stops: every entry of down is tried, and stays.
	code, out, errOut = runCmd(t, ctx, env, "dlq", "redrive", "-config", cfg, "-attempts", "1", "-max-failures", "0", "-sink", "down")
	assert.Equal(t, 1, code, "%s%s", out, errOut)
	assert.Contains(t, errOut, "never stops early (-max-failures 0)")
	assert.NotContains(t, errOut, "stopped")
	assert.Contains(t, out, fmt.Sprintf("selected %d, redriven 0, removed 0, failed %d, skipped 0", each, each))
	assert.NotContains(t, out, "in a row")

	// The default stops at 5, with several entries sent at once too.
	code, out, errOut = runCmd(t, ctx, env, "dlq", "redrive", "-config", cfg, "-attempts", "1", "-sink", "down", "-concurrency", "4")
	assert.Equal(t, 1, code, "%s%s", out, errOut)
	assert.Contains(t, errOut, "; 4 entries at a time; stops once a sink fails 5 entries in a row with retryable errors")
	assert.Contains(t, errOut, "stopped: sink down failed 5 entries in a row")
	assert.Equal(t, map[string]int{"people": head + each, "down": each, "archive": each - 2}, left())

	// At the default, the refusals of people, twice as many as -max-failures, never stop it:
	// every entry of people and archive is tried, those of archive delivered.
	code, out, errOut = runCmd(t, ctx, env, "dlq", "redrive", "-config", cfg, "-attempts", "1", "-sink", "people,archive", "-concurrency", "4")
	assert.Equal(t, 1, code, "%s%s", out, errOut)
	assert.NotContains(t, errOut, "stopped")
	assert.NotContains(t, out, "in a row")
	assert.Contains(t, out, fmt.Sprintf("selected %d, redriven %d, removed %d, failed %d, skipped 0", head+each+each-2, each-2, each-2, head+each))
	assert.Equal(t, map[string]int{"people": head + each, "down": each}, left())

	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"-concurrency", "0"}, `invalid value "0" for flag -concurrency: want 1 to 64`},
		{[]string{"-concurrency", "65"}, `invalid value "65" for flag -concurrency: want 1 to 64`},
		{[]string{"-max-failures", "-1"}, `invalid value "-1" for flag -max-failures: want 0 or more`},
		{[]string{"-max-failures", "x"}, `invalid value "x" for flag -max-failures: not a whole number`},
	} {
		code, out, errOut := runCmd(t, ctx, env, append([]string{"dlq", "redrive", "-config", cfg}, tc.args...)...)
		assert.Equal(t, 2, code, "%v: %s%s", tc.args, out, errOut)
		assert.Contains(t, errOut, tc.msg, "%v", tc.args)
		assert.Empty(t, out, "%v: nothing is redriven", tc.args)
	}
	assert.Equal(t, map[string]int{"people": head + each, "down": each}, left())
}

// validate prints where the dead-letter queue is, unless ${ENV} expansion put it there: it is
// quoted no more than the configuration's errors quote it.
func TestValidateDoesNotPrintValuesFromTheEnvironment(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const hidden = "tenant-7f3a9c"
	env := []string{"E2E_API_KEY=" + e2eAPIKey, "VALIDATE_DLQ_DIR=/srv/" + hidden + "/dlq", "VALIDATE_DLQ_TOPIC=dlq-" + hidden}
	kafkaDLQ := strings.Replace(dlqConfig, `dlq: {file: {dir: "%[2]s"}}`, `dlq: {kafka: {brokers: ["%[1]s"], topic: "%[2]s"}}`, 1)
	require.NotEqual(t, dlqConfig, kafkaDLQ)
	for _, tc := range []struct {
		name, text, want string
	}{
		{"file dir from the environment", fmt.Sprintf(dlqConfig, "127.0.0.1:1", "${VALIDATE_DLQ_DIR}", ""), "dlq: file (value from the environment),"},
		{"part of the dir from the environment", fmt.Sprintf(dlqConfig, "127.0.0.1:1", "${VALIDATE_DLQ_DIR}/more", ""), "dlq: file (value from the environment),"},
		{"kafka topic from the environment", fmt.Sprintf(kafkaDLQ, "127.0.0.1:1", "${VALIDATE_DLQ_TOPIC}", ""), "dlq: kafka topic (value from the environment),"},
		{"the file's own default", fmt.Sprintf(dlqConfig, "127.0.0.1:1", "${VALIDATE_UNSET_DIR:-/var/lib/dlq}", ""), "dlq: file /var/lib/dlq,"},
		{"the file's own topic", fmt.Sprintf(kafkaDLQ, "127.0.0.1:1", "genesys-dlq", ""), "dlq: kafka topic genesys-dlq,"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCmd(t, ctx, env, "validate", writeTemp(t, tc.text))
			require.Equal(t, 0, code, "%s%s", out, errOut)
			assert.Contains(t, out, tc.want)
			assert.NotContains(t, out+errOut, hidden)
		})
	}
}

// pattern test reads at most 16 MiB of a file or standard input, the most an intake takes: a
// longer one is refused as such, neither cut short (standard input was, and the event then
// reported as malformed JSON somewhere in the middle) nor read without end (a file was).
func TestPatternTestArgumentLimit(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const limit = 16 << 20
	event := func(size int) string {
		head := `{"version":"0","id":"x1","detail-type":"a.customer.end","source":"s","account":"123456789012","time":"2022-06-14T16:12:11Z","region":"us-east-1","resources":[],"detail":{"pad":"`
		tail := `"}}`
		return head + strings.Repeat("x", size-len(head)-len(tail)) + tail
	}
	atLimit, overLimit := writeTemp(t, event(limit)), writeTemp(t, event(limit+1))
	const pattern = `{"detail-type":[{"suffix":".customer.end"}]}`
	for _, tc := range []struct {
		name   string
		args   []string
		stdin  string // a file to read standard input from
		code   int
		stdout string
		stderr string
	}{
		{"event file at the limit", []string{pattern, "@" + atLimit}, "", 0, "match\n", ""},
		{"event on stdin at the limit", []string{pattern, "@-"}, atLimit, 0, "match\n", ""},
		{"event file over the limit", []string{pattern, "@" + overLimit}, "", 2, "", "fanbridge pattern: EVENT: larger than 16 MiB\n"},
		{"event on stdin over the limit", []string{pattern, "@-"}, overLimit, 2, "", "fanbridge pattern: EVENT: larger than 16 MiB\n"},
		{"pattern on stdin over the limit", []string{"@-", "@" + atLimit}, overLimit, 2, "", "fanbridge pattern: PATTERN: larger than 16 MiB\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.CommandContext(ctx, binary, append([]string{"pattern", "test"}, tc.args...)...)
			if tc.stdin != "" {
				f, err := os.Open(tc.stdin)
				require.NoError(t, err)
				defer f.Close()
				cmd.Stdin = f
			}
			var so, se strings.Builder
			cmd.Stdout, cmd.Stderr = &so, &se
			err := cmd.Run()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else {
				require.NoError(t, err)
			}
			assert.Equal(t, tc.code, code, "stderr: %s", se.String())
			assert.Equal(t, tc.stdout, so.String())
			assert.Equal(t, tc.stderr, se.String())
		})
	}
}

// A dlq command refuses a directory that holds no queue (neither the LOCK file nor a segment
// that filedlq writes), such as the parent of the queue's: it reads nothing, creates nothing in
// it, and exits 1 naming it, where list and show took it for an empty queue and redrive made one
// there and reported an empty redrive as a success. A queue with no entries is still a queue.
func TestDLQRefusesADirectoryHoldingNoQueue(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	env := []string{"E2E_API_KEY=" + e2eAPIKey}
	base := t.TempDir()
	parent := filepath.Join(base, "parent")
	queue := filepath.Join(parent, "dlq")
	q, err := filedlq.Open(queue)
	require.NoError(t, err)
	require.NoError(t, q.Put(ctx, dlq.Entry{ID: "entry-1", Sink: "gone", Event: fanbridge.Event{ID: "ev-1", Raw: []byte(`{}`)}}))
	require.NoError(t, q.Close())
	emptyDir := filepath.Join(base, "empty")
	require.NoError(t, os.Mkdir(emptyDir, 0o700))
	cfg := writeTemp(t, fmt.Sprintf(dlqConfig, "127.0.0.1:1", queue, ""))
	parentCfg := writeTemp(t, fmt.Sprintf(dlqConfig, "127.0.0.1:1", parent, ""))

	ls := func(dir string) []string {
		t.Helper()
		ents, err := os.ReadDir(dir)
		require.NoError(t, err)
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		return names
	}
	for _, tc := range []struct {
		name string
		dir  string
		args []string
		msg  string
	}{
		{"list -file parent", parent, []string{"list", "-file", parent}, "fanbridge dlq: " + parent + ": not a file dlq"},
		{"list -json -file parent", parent, []string{"list", "-json", "-file", parent}, "fanbridge dlq: " + parent + ": not a file dlq"},
		{"show -file parent", parent, []string{"show", "-file", parent, "entry-1"}, "fanbridge dlq: " + parent + ": not a file dlq"},
		{"redrive -file parent", parent, []string{"redrive", "-config", cfg, "-file", parent}, "fanbridge dlq redrive: " + parent + ": not a file dlq"},
		{"list, the configuration's parent", parent, []string{"list", "-config", parentCfg}, "fanbridge dlq: config: dlq.file.dir: " + parent + ": not a file dlq"},
		{"redrive, the configuration's parent", parent, []string{"redrive", "-config", parentCfg}, "fanbridge dlq redrive: config: dlq.file.dir: " + parent + ": not a file dlq"},
		{"redrive -file empty", emptyDir, []string{"redrive", "-config", cfg, "-file", emptyDir}, "fanbridge dlq redrive: " + emptyDir + ": not a file dlq"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := ls(tc.dir)
			code, out, errOut := runCmd(t, ctx, env, append([]string{"dlq"}, tc.args...)...)
			assert.Equal(t, 1, code, "%s%s", out, errOut)
			assert.Contains(t, errOut, tc.msg)
			assert.NotContains(t, out+errOut, "entries", "nothing is listed")
			assert.NotContains(t, out, "selected", "nothing is redriven")
			assert.Equal(t, before, ls(tc.dir), "the command created something in %s", tc.dir)
		})
	}

	// A directory from the environment is named by its setting, not quoted.
	fromEnv := writeTemp(t, fmt.Sprintf(dlqConfig, "127.0.0.1:1", "${DLQ_PARENT}", ""))
	hidden := filepath.Join(base, "tenant-7f3a9c")
	require.NoError(t, os.Mkdir(hidden, 0o700))
	for _, sub := range []string{"list", "redrive"} {
		code, out, errOut := runCmd(t, ctx, append(env, "DLQ_PARENT="+hidden), "dlq", sub, "-config", fromEnv)
		assert.Equal(t, 1, code, "%s%s", out, errOut)
		assert.Contains(t, errOut, "config: dlq.file.dir: ")
		assert.NotContains(t, out+errOut, "tenant-7f3a9c")
		assert.Empty(t, ls(hidden))
	}

	// The queue itself, with its entry; a queue with no entries; one that holds only its
	// segment (copied without its LOCK file); one that holds only its LOCK file.
	code, out, errOut := runCmd(t, ctx, env, "dlq", "list", "-file", queue, "-json")
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, `"id":"entry-1"`)
	fresh := filepath.Join(base, "fresh")
	q, err = filedlq.Open(fresh)
	require.NoError(t, err)
	require.NoError(t, q.Close())
	segOnly := filepath.Join(base, "segment-only")
	require.NoError(t, os.Mkdir(segOnly, 0o700))
	for _, name := range ls(queue) {
		if name != "LOCK" {
			writeFile(t, filepath.Join(segOnly, name), mustRead(t, filepath.Join(queue, name)))
		}
	}
	lockOnly := filepath.Join(base, "lock-only")
	require.NoError(t, os.Mkdir(lockOnly, 0o700))
	writeFile(t, filepath.Join(lockOnly, "LOCK"), "")
	for dir, want := range map[string]string{fresh: "0 entries\n", segOnly: "1 entry\n", lockOnly: "0 entries\n"} {
		code, _, errOut := runCmd(t, ctx, env, "dlq", "list", "-file", dir)
		assert.Equal(t, 0, code, "%s: %s", dir, errOut)
		assert.Equal(t, want, errOut, dir)
	}
	code, out, errOut = runCmd(t, ctx, env, "dlq", "redrive", "-config", cfg, "-file", fresh)
	assert.Equal(t, 0, code, "%s%s", out, errOut)
	assert.Contains(t, out, "selected 0, redriven 0, removed 0, failed 0, skipped 0")
}

// An export of the entries saved beside the queue (dlq list -json > parent/dlq-export.jsonl) is
// no segment: the parent stays a directory that holds no queue, which list refuses and in which
// redrive makes no queue.
func TestDLQTakesNoExportForASegment(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	env := []string{"E2E_API_KEY=" + e2eAPIKey}
	parent := filepath.Join(t.TempDir(), "fanbridge")
	queue := filepath.Join(parent, "dlq")
	q, err := filedlq.Open(queue)
	require.NoError(t, err)
	require.NoError(t, q.Put(ctx, dlq.Entry{ID: "entry-1", Sink: "gone", Event: fanbridge.Event{ID: "ev-1", Raw: []byte(`{}`)}}))
	require.NoError(t, q.Close())
	code, out, errOut := runCmd(t, ctx, env, "dlq", "list", "-json", "-file", queue)
	require.Equal(t, 0, code, errOut)
	writeFile(t, filepath.Join(parent, "dlq-export.jsonl"), out)

	code, out, errOut = runCmd(t, ctx, env, "dlq", "list", "-file", parent)
	assert.Equal(t, 1, code, "%s%s", out, errOut)
	assert.Contains(t, errOut, "fanbridge dlq: "+parent+": not a file dlq")
	cfg := writeTemp(t, fmt.Sprintf(dlqConfig, "127.0.0.1:1", queue, ""))
	code, out, errOut = runCmd(t, ctx, env, "dlq", "redrive", "-config", cfg, "-file", parent)
	assert.Equal(t, 1, code, "%s%s", out, errOut)
	assert.Contains(t, errOut, "fanbridge dlq redrive: "+parent+": not a file dlq")
	ents, err := os.ReadDir(parent)
	require.NoError(t, err)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	assert.Equal(t, []string{"dlq", "dlq-export.jsonl"}, names, "redrive made a queue in the parent")
}

// A queue directory or topic that came from the environment is not quoted by the warnings the
// queue logs on stderr (a damaged line in a segment, a record that is no entry), as it is not by
// the commands' errors: the warning is printed with the value replaced.
func TestDLQLogsHideTheQueueFromTheEnvironment(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const hidden = "tenant-7f3a9c"
	t.Run("file", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), hidden, "dlq")
		q, err := filedlq.Open(dir)
		require.NoError(t, err)
		require.NoError(t, q.Put(ctx, dlq.Entry{ID: "entry-1", Sink: "gone", Event: fanbridge.Event{ID: "ev-1", Raw: []byte(`{}`)}}))
		require.NoError(t, q.Close())
		segs, err := filepath.Glob(filepath.Join(dir, "dlq-*.jsonl"))
		require.NoError(t, err)
		require.Len(t, segs, 1)
		f, err := os.OpenFile(segs[0], os.O_APPEND|os.O_WRONLY, 0)
		require.NoError(t, err)
		_, err = f.WriteString("garbage\n")
		require.NoError(t, err)
		require.NoError(t, f.Close())

		cfg := writeTemp(t, fmt.Sprintf(dlqConfig, "127.0.0.1:1", "${DLQ_DIR}", ""))
		env := []string{"E2E_API_KEY=" + e2eAPIKey, "DLQ_DIR=" + dir}
		for _, args := range [][]string{
			{"list", "-config", cfg},
			{"show", "-config", cfg, "entry-2"},
			{"redrive", "-config", cfg},
		} {
			code, out, errOut := runCmd(t, ctx, env, append([]string{"dlq"}, args...)...)
			assert.NotContains(t, out+errOut, hidden, "%v", args)
			assert.Contains(t, errOut, `msg="filedlq: damaged bytes in a segment" dir="(value from the environment)"`, "%v", args)
			if args[0] == "show" {
				assert.Equal(t, 1, code)
				assert.Contains(t, errOut, `fanbridge dlq: filedlq: get "entry-2": dlq: entry not found`)
			}
		}
	})
	t.Run("kafka", func(t *testing.T) {
		topic := "dlq-" + hidden
		kc := newKafka(t, topic)
		broker := kc.ListenAddrs()[0]
		cl, err := kgo.NewClient(kgo.SeedBrokers(broker))
		require.NoError(t, err)
		require.NoError(t, cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("not an entry")}).FirstErr())
		cl.Close()
		kafkaDLQ := strings.Replace(dlqConfig, `dlq: {file: {dir: "%[2]s"}}`, `dlq: {kafka: {brokers: ["%[1]s"], topic: "${DLQ_TOPIC}"}}`, 1)
		cfg := writeTemp(t, fmt.Sprintf(kafkaDLQ, broker, "", ""))
		code, out, errOut := runCmd(t, ctx, []string{"DLQ_TOPIC=" + topic}, "dlq", "list", "-config", cfg)
		assert.Equal(t, 0, code, "%s%s", out, errOut)
		assert.NotContains(t, out+errOut, hidden)
		assert.Contains(t, errOut, `msg="kafkadlq: record is not a readable entry" topic="(value from the environment)"`)
	})
}

// The dlq command line is checked before the configuration is read; -file replaces the
// configuration's dlq section, whose variables then need not be set; an -id of redrive that
// names no entry is an error, as it is for show.
func TestDLQCommandLine(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	env := []string{"E2E_API_KEY=" + e2eAPIKey}
	base := t.TempDir()
	queue := filepath.Join(base, "dlq")
	q, err := filedlq.Open(queue)
	require.NoError(t, err)
	require.NoError(t, q.Close())
	missing := filepath.Join(base, "no-such.yaml")
	cfg := writeTemp(t, fmt.Sprintf(dlqConfig, "127.0.0.1:1", queue, ""))

	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"bogus"}, `fanbridge dlq: unknown command "bogus"`},
		{[]string{"bogus", "-config", missing}, `fanbridge dlq: unknown command "bogus"`},
		{[]string{"bogus", "-file", queue}, `fanbridge dlq: unknown command "bogus"`},
		{[]string{"show", "-config", missing}, "usage: fanbridge dlq list"},
		{[]string{"show", "-config", missing, "a", "b"}, "usage: fanbridge dlq list"},
		{[]string{"show", "-config", missing, "-id", "a", "a"}, "-sink and -id select entries for list and redrive"},
		{[]string{"list", "extra", "-config", missing}, "usage: fanbridge dlq list"},
		{[]string{"redrive", "extra", "-config", missing}, "usage: fanbridge dlq list"},
		{[]string{"redrive", "-file", queue}, "-config is required"},
		{[]string{"list"}, "give -config FILE or -file DIR"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, out, errOut := runCmd(t, ctx, env, append([]string{"dlq"}, tc.args...)...)
			assert.Equal(t, 2, code, "%s%s", out, errOut)
			assert.Contains(t, errOut, tc.msg)
			assert.NotContains(t, errOut, "no such file", "the configuration was read before the command line was checked")
		})
	}

	// -file replaces the dlq section: its variable need not be set, for list, show or redrive.
	// The rest of the file is still read and checked by redrive, and its errors keep their lines.
	unsetDLQ := fmt.Sprintf(dlqConfig, "127.0.0.1:1", "${DLQ_NEVER_SET}", "")
	withVar := writeTemp(t, unsetDLQ)
	code, _, errOut := runCmd(t, ctx, env, "dlq", "list", "-config", withVar, "-file", queue)
	assert.Equal(t, 0, code, errOut)
	assert.Equal(t, "0 entries\n", errOut)
	code, _, errOut = runCmd(t, ctx, env, "dlq", "show", "-config", withVar, "-file", queue, "some-id")
	assert.Equal(t, 1, code, errOut)
	assert.Contains(t, errOut, "not found")
	assert.NotContains(t, errOut, "DLQ_NEVER_SET")
	code, out, errOut := runCmd(t, ctx, env, "dlq", "redrive", "-config", withVar, "-file", queue)
	assert.Equal(t, 0, code, "%s%s", out, errOut)
	assert.Contains(t, out, "selected 0, redriven 0")
	code, _, errOut = runCmd(t, ctx, nil, "dlq", "redrive", "-config", withVar, "-file", queue)
	assert.Equal(t, 1, code, errOut)
	assert.Contains(t, errOut, "E2E_API_KEY is not set", "the other sections are still checked")
	assert.NotContains(t, errOut, "DLQ_NEVER_SET")
	misspelt := strings.Replace(unsetDLQ, "logging: {format: json}", "logging: {formt: json}", 1)
	require.NotEqual(t, unsetDLQ, misspelt)
	line := strings.Count(misspelt[:strings.Index(misspelt, "formt")], "\n") + 1
	code, _, errOut = runCmd(t, ctx, env, "dlq", "redrive", "-config", writeTemp(t, misspelt), "-file", queue)
	assert.Equal(t, 1, code, errOut)
	assert.Contains(t, errOut, fmt.Sprintf("config: logging.formt: unknown key (line %d)", line))
	// However the file spells the section: after a "---" that ends the document, with an anchor
	// another section uses, brought in by a merge key, in a file with CR line ends or a line
	// separator (U+2028) in a comment, after a block scalar that keeps its final line breaks.
	const intake = "intake:\n  - {path: /events, verifiers: [{api_key: {header: X-Api-Key, keys: [\"${E2E_API_KEY}\"]}}]}\n"
	anchored := "listen: {address: \"127.0.0.1:0\"}\n" +
		"dlq:\n  kafka: {brokers: &brokers [\"127.0.0.1:1\"], topic: \"${DLQ_NEVER_SET}\"}\n" + intake +
		"sinks:\n  - {name: archive, kafka: {brokers: *brokers, topic: genesys.all}}\n" +
		"routes:\n  - {name: everything, all: true, sinks: [archive]}\n"
	keep := "listen: {address: \"127.0.0.1:0\"}\n" + intake +
		"sinks:\n  - name: archive\n    kafka:\n      brokers: [\"127.0.0.1:1\"]\n      topic: genesys.all\n" +
		"      sasl:\n        mechanism: PLAIN\n        username: u\n        password: |+\n          pw\n" +
		"dlq:\n  file: {dir: \"${DLQ_NEVER_SET}\"}\n" +
		"routes:\n  - {name: everything, all: true, sinks: [archive]}\n"
	for name, text := range map[string]string{
		"a trailing document end":  unsetDLQ + "---\n",
		"an anchor in the section": anchored,
		"a merge key":              strings.Replace(unsetDLQ, `dlq: {file: {dir: "${DLQ_NEVER_SET}"}}`, `<<: {dlq: {file: {dir: "${DLQ_NEVER_SET}"}}}`, 1),
		"CR line ends":             strings.ReplaceAll(unsetDLQ, "\n", "\r"),
		"a line separator":         strings.Replace(unsetDLQ, `dlq: {file: {dir: "${DLQ_NEVER_SET}"}}`, "dlq: # copied\u2028\n  {file: {dir: \"${DLQ_NEVER_SET}\"}}", 1),
		"a kept block scalar":      keep,
	} {
		t.Run(name, func(t *testing.T) {
			code, out, errOut := runCmd(t, ctx, env, "dlq", "redrive", "-config", writeTemp(t, text), "-file", queue)
			assert.Equal(t, 0, code, "%s%s", out, errOut)
			assert.Contains(t, out, "selected 0, redriven 0")
		})
	}
	// A mistake after such a section is still found.
	code, _, errOut = runCmd(t, ctx, env, "dlq", "redrive", "-config",
		writeTemp(t, strings.Replace(misspelt, `dlq: {file: {dir: "${DLQ_NEVER_SET}"}}`, "dlq: # copied\u2028\n  {file: {dir: \"${DLQ_NEVER_SET}\"}}", 1)), "-file", queue)
	assert.Equal(t, 1, code, errOut)
	assert.Contains(t, errOut, "config: logging.formt: unknown key")
	// Without -file the section is the queue, and its variable is needed.
	code, _, errOut = runCmd(t, ctx, env, "dlq", "list", "-config", withVar)
	assert.Equal(t, 1, code, errOut)
	assert.Contains(t, errOut, "DLQ_NEVER_SET is not set")

	// redrive -id that names no entry.
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"-id", "NOPE"}, "fanbridge dlq redrive: no entry NOPE\n"},
		{[]string{"-id", "NOPE", "-sink", "people"}, "fanbridge dlq redrive: no entry NOPE of sink people\n"},
	} {
		code, out, errOut = runCmd(t, ctx, env, append([]string{"dlq", "redrive", "-config", cfg}, tc.args...)...)
		assert.Equal(t, 1, code, "%v: %s%s", tc.args, out, errOut)
		assert.Contains(t, out, "selected 0, redriven 0")
		_, last, _ := strings.Cut(errOut, " (-max-failures)\n") // the policy line comes first
		assert.Equal(t, tc.msg, last, tc.args)
	}
}

// The demo helpers take their arguments and no more.
func TestDemoCommandLine(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, args := range [][]string{
		{"demo", "sample", ""},
		{"demo", "sample", "customer.end", "extra"},
		{"demo", "config", "extra"},
		{"demo", "send", "extra", "-key", "k", "-url", "http://127.0.0.1:1/events"},
	} {
		t.Run(fmt.Sprintf("%q", args), func(t *testing.T) {
			code, out, errOut := runCmd(t, ctx, nil, args...)
			assert.Equal(t, 2, code, "%s%s", out, errOut)
			assert.Empty(t, out)
			assert.Contains(t, errOut, "usage: fanbridge demo send")
		})
	}
}
