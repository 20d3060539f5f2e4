package main_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge/eventbridge"
	"github.com/fanbridge/fanbridge/signature"
)

const (
	e2eAPIKey = "e2e-api-key-0123456789"
	e2eHMAC   = "e2e-hmac-secret"
)

var hmacScheme = signature.HMACScheme{Header: "X-Signature", Encoding: signature.Hex, Prefix: "sha256="}

// e2eConfig routes like the demo: long conversations to gRPC and a Kafka topic, presence and
// activity by type, everything to an archive topic.
const e2eConfig = `
listen:
  address: 127.0.0.1:0
intake:
  - path: /events
    verifiers:
      - api_key: {header: X-Api-Key, keys: ["${E2E_API_KEY}"]}
  - path: /webhooks
    verifiers:
      - standard_webhooks: {keys: ["${E2E_WHSEC}"], replay_cache: 1000}
      - hmac: {header: X-Signature, encoding: hex, prefix: "sha256=", secrets: ["${E2E_HMAC}"]}
sinks:
  - name: analytics
    grpc: {targets: ["%[1]s"], insecure: true, call_timeout: 2s}
  - name: kafka-conversations
    kafka: {brokers: ["%[2]s"], topic: genesys.conversations, key: conversation}
  - name: kafka-people
    kafka:
      brokers: ["%[2]s"]
      topic_by_type:
        "v2.users.{id}.presence": gen-presence-status
        "v2.audits.entitytype.{id}.entityid.{id}": gen-presence-status
        "v2.users.{id}.activity": gen-user-activity
      key: user
  - name: kafka-all
    kafka: {brokers: ["%[2]s"], topic: genesys.all, value: raw}
routes:
  - name: long-conversations
    pattern:
      detail-type: [{suffix: ".customer.end"}]
      detail:
        eventBody:
          mediaType: [CHAT, VOICE]
          interactingDurationMs: [{numeric: [">", 30000]}]
    sinks: [analytics, kafka-conversations]
  - name: people
    cel: >-
      event.type in ['v2.users.{id}.presence', 'v2.users.{id}.activity'] ||
      (event.type == 'v2.audits.entitytype.{id}.entityid.{id}' && data.entityType == 'UserPresence')
    sinks: [kafka-people]
  - name: everything
    all: true
    sinks: [kafka-all]
dlq:
  file: {dir: "%[3]s"}
logging: {level: debug, format: json, events: true}
tracing: {log_spans: true}
health: {cache: 100ms}
`

var allTopics = []string{"genesys.conversations", "gen-presence-status", "gen-user-activity", "genesys.all"}

// assertAttemptTrace checks that got, the traceparent a consumer received, continues sent, the
// sender's: the same trace, under a span of fanbridge's own.
func assertAttemptTrace(t *testing.T, sent, got string, msgAndArgs ...any) {
	t.Helper()
	if !assert.Len(t, got, 55, msgAndArgs...) {
		return
	}
	assert.Equal(t, sent[:36], got[:36], msgAndArgs...)        // version and trace id
	assert.NotEqual(t, sent[36:52], got[36:52], msgAndArgs...) // a span of fanbridge's, not the sender's
}

func newTraceparent() (string, string) {
	tid := make([]byte, 16)
	sid := make([]byte, 8)
	_, _ = rand.Read(tid)
	_, _ = rand.Read(sid)
	return "00-" + hex.EncodeToString(tid) + "-" + hex.EncodeToString(sid) + "-01", hex.EncodeToString(tid)
}

// signedHeaders returns the headers of one of the three ways the e2e service accepts.
func signedHeaders(t *testing.T, way int, whsec string, body []byte, msgID string) map[string]string {
	t.Helper()
	switch way % 3 {
	case 0:
		now := time.Now()
		sig, err := signature.SignStandardWebhooks(whsec, msgID, now, body)
		require.NoError(t, err)
		return map[string]string{"webhook-id": msgID, "webhook-timestamp": strconv.FormatInt(now.Unix(), 10), "webhook-signature": sig}
	case 1:
		sig, err := signature.SignHMAC(hmacScheme, e2eHMAC, body)
		require.NoError(t, err)
		return map[string]string{"X-Signature": sig}
	}
	return map[string]string{"X-Api-Key": e2eAPIKey}
}

func pathFor(way int) string {
	if way%3 == 2 {
		return "/events"
	}
	return "/webhooks"
}

type e2eEnv struct {
	cfgPath string
	brokers []string
	cons    *consumer
	dlqDir  string
	whsec   string
	env     []string
}

func newE2E(t *testing.T, topics ...string) *e2eEnv {
	t.Helper()
	if len(topics) == 0 {
		topics = allTopics
	}
	kc := newKafka(t, topics...)
	e := &e2eEnv{brokers: kc.ListenAddrs(), cons: newConsumer(t), dlqDir: filepath.Join(t.TempDir(), "dlq")}
	var err error
	e.whsec, err = signature.NewStandardWebhooksSecret()
	require.NoError(t, err)
	e.env = []string{"E2E_API_KEY=" + e2eAPIKey, "E2E_HMAC=" + e2eHMAC, "E2E_WHSEC=" + e.whsec}
	e.cfgPath = filepath.Join(t.TempDir(), "fanbridge.yaml")
	writeFile(t, e.cfgPath, fmt.Sprintf(e2eConfig, e.cons.addr, e.brokers[0], e.dlqDir))
	return e
}

// TestEndToEndGenesysSamples posts every Genesys sample, signed three ways, to the built binary
// and checks each event reached exactly the destinations its routes name, with its trace context.
func TestEndToEndGenesysSamples(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	e := newE2E(t)
	p := startService(t, ctx, e.cfgPath, e.env...)

	const (
		conversation = "2f7bf00a-0fc2-4d6a-9b56-92238191433e"
		presenceUser = "278522be-1683-4877-8257-4164a177be89"
		activityUser = "e40f28ea-fa86-493f-a5b8-d559c8533c96"
	)
	type want struct {
		file   string
		status int
		answer string
		topics map[string]string // topic -> record key ("" = any)
		grpc   bool
	}
	// The order matters: the second sample of each pair repeats the first one's id and is
	// acknowledged as a duplicate, delivered nowhere.
	cases := []want{
		{file: "v2.detail.events.conversation.customer.end.json", status: 200, answer: "delivered",
			topics: map[string]string{"genesys.conversations": conversation, "genesys.all": ""}, grpc: true},
		{file: "v2.detail.events.conversation.customer.start.json", status: 200, answer: "delivered",
			topics: map[string]string{"genesys.all": ""}},
		{file: "v2.audits.entitytype.UserPresence.update.json", status: 200, answer: "delivered",
			topics: map[string]string{"gen-presence-status": presenceUser, "genesys.all": ""}},
		{file: "v2.audits.entitytype.OAuthClient.delete.json", status: 200, answer: "delivered",
			topics: map[string]string{"genesys.all": ""}},
		{file: "v2.conversations.transcription.json", status: 200, answer: "delivered",
			topics: map[string]string{"genesys.all": ""}},
		{file: "websocket.v2.users.activity.REPAIRED.json", status: 200, answer: "delivered",
			topics: map[string]string{"gen-user-activity": activityUser, "genesys.all": ""}},
		{file: "v2.detail.events.conversation.customer.end.no-external-contact.json", status: 200, answer: "duplicate"},
		{file: "negative-test.mismatched-detail-type.json", status: 200, answer: "duplicate"},
		{file: "websocket.v2.users.activity.malformed.txt", status: 400},
	}
	entries, err := os.ReadDir(filepath.Join("testdata", "genesys"))
	require.NoError(t, err)
	require.Len(t, cases, len(entries), "every sample in testdata/genesys has a case")

	client := &http.Client{Timeout: 10 * time.Second}
	traces := map[string]string{} // event id -> traceparent sent
	traceIDs := map[string]string{}
	wantTopics := map[string]map[string]string{} // topic -> event id -> key
	var wantGRPC []string
	for i, c := range cases {
		body, err := os.ReadFile(filepath.Join("testdata", "genesys", c.file))
		require.NoError(t, err)
		tp, tid := newTraceparent()
		hdr := signedHeaders(t, i, e.whsec, body, fmt.Sprintf("msg_%d", i))
		hdr["traceparent"] = tp
		status, answer, err := post(ctx, client, p.url(pathFor(i)), body, hdr)
		require.NoError(t, err)
		require.Equal(t, c.status, status, "%s via %s: %s", c.file, pathFor(i), answer)
		if c.answer != "" {
			assert.Contains(t, answer, `"status":"`+c.answer+`"`, c.file)
		}
		if c.answer != "delivered" {
			continue
		}
		ev, err := eventbridge.Decode(body, "application/json")
		require.NoError(t, err)
		traces[ev.ID], traceIDs[ev.ID] = tp, tid
		for topic, key := range c.topics {
			if wantTopics[topic] == nil {
				wantTopics[topic] = map[string]string{}
			}
			wantTopics[topic][ev.ID] = key
		}
		if c.grpc {
			wantGRPC = append(wantGRPC, ev.ID)
		}
	}

	// Refused requests: no credentials, a wrong key, a tampered signature.
	body, _ := os.ReadFile(filepath.Join("testdata", "genesys", cases[0].file))
	for name, tc := range map[string]struct {
		path string
		hdr  map[string]string
	}{
		"no credentials":     {"/events", nil},
		"wrong api key":      {"/events", map[string]string{"X-Api-Key": "not-the-key-0123"}},
		"bad hmac":           {"/webhooks", map[string]string{"X-Signature": "sha256=" + strings.Repeat("0", 64)}},
		"api key on webhook": {"/webhooks", map[string]string{"X-Api-Key": e2eAPIKey}},
	} {
		status, answer, err := post(ctx, client, p.url(tc.path), body, tc.hdr)
		require.NoError(t, err)
		assert.Equal(t, http.StatusUnauthorized, status, name)
		assert.Equal(t, `{"error":"unauthorized"}`, strings.TrimSpace(answer), name)
	}

	// Kafka: each topic holds exactly the events its routes name, once, keyed as configured, with
	// a traceparent in the sender's trace.
	recs := readAll(t, ctx, e.brokers, allTopics...)
	got := map[string]map[string]int{}
	for _, r := range recs {
		if got[r.Topic] == nil {
			got[r.Topic] = map[string]int{}
		}
		got[r.Topic][r.Event.ID]++
		key, ok := wantTopics[r.Topic][r.Event.ID]
		if !assert.True(t, ok, "unexpected event %s in %s", r.Event.ID, r.Topic) {
			continue
		}
		if key != "" {
			assert.Equal(t, key, r.Key, "record key of %s in %s", r.Event.ID, r.Topic)
		}
		assertAttemptTrace(t, traces[r.Event.ID], r.Event.Metadata["traceparent"], "traceparent header of %s in %s", r.Event.ID, r.Topic)
	}
	for topic, ids := range wantTopics {
		for id := range ids {
			assert.Equal(t, 1, got[topic][id], "event %s in %s", id, topic)
		}
	}
	assert.Len(t, recs, func() int {
		n := 0
		for _, ids := range wantTopics {
			n += len(ids)
		}
		return n
	}())
	// The archive topic holds the envelope exactly as posted.
	for _, r := range recs {
		if r.Topic == "genesys.all" && r.Event.ID == "58fb5dac-f077-4eec-a25f-c638dbdd4368" {
			assert.Equal(t, string(body), string(r.Value))
		}
	}

	// gRPC: exactly the long conversation, with its trace context in the call metadata.
	ds := e.cons.deliveries()
	require.Len(t, ds, len(wantGRPC))
	for i, d := range ds {
		assert.Equal(t, wantGRPC[i], d.Event.ID)
		assert.Equal(t, "analytics", d.Sink)
		assertAttemptTrace(t, traces[d.Event.ID], d.Traceparent, "gRPC traceparent of %s", d.Event.ID)
		assert.Equal(t, "v2.detail.events.conversation."+conversation+".customer.end", d.Event.Topic)
	}

	// The traceparent the consumer got is the span of the sink attempt that reached it, in the
	// sender's trace.
	id := wantGRPC[0]
	attemptSpan := ds[0].Traceparent[36:52]
	_, _, err = p.stderr.wait(ctx, 0, func(s string) bool {
		m, ok := logMsg(s, "span")
		return ok && m["trace_id"] == traceIDs[id] && m["span_id"] == attemptSpan && m["name"] == "fanout.send"
	})
	require.NoError(t, err, "no fanout.send span %s logged in trace %s", attemptSpan, traceIDs[id])

	// One log line per event, naming its routes and sinks.
	line, _, err := p.stderr.wait(ctx, 0, func(s string) bool {
		m, ok := logMsg(s, "event")
		return ok && m["id"] == id
	})
	require.NoError(t, err)
	assert.Contains(t, line, `"routes":["long-conversations","everything"]`)
	assert.Contains(t, line, `"analytics=delivered"`)

	p.signal(t, syscall.SIGTERM)
	code, err := p.exit(ctx)
	require.NoError(t, err)
	assert.Equal(t, 0, code)
}
