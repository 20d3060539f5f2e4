package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/dlq"
	"github.com/fanbridge/fanbridge/eventbridge"
	"github.com/fanbridge/fanbridge/examples/internal/demo"
	"github.com/fanbridge/fanbridge/examples/internal/exampletest"
	"github.com/fanbridge/fanbridge/signature"
	"github.com/fanbridge/fanbridge/sink/kafkasink"
)

// Event ids and users of the samples.
const (
	idOnQueue   = "8b1e0c6e-3c9a-4f43-9d6a-0f3f2b7c1a55"
	idActivity  = "19299f96f7e41cb5c67a6b5bb2cdcd2c" // derived from the notification's content
	idAvailable = "f1a3c5e7-2b4d-4f6a-8c0e-1b3d5f7a9c2e"
	idAudit     = "4cbedb0f-4dfd-4c8e-9e57-0acded092527"
	idOAuth     = "e9938ff0-50e2-45f8-950f-ad02d95fee85"

	agentA = "e40f28ea-fa86-493f-a5b8-d559c8533c96"
	agentB = "278522be-1683-4877-8257-4164a177be89"
)

func TestOffline(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out bytes.Buffer
	require.NoError(t, run(ctx, nil, exampletest.Env(nil), &out))
	text := out.String()

	// Each record is on its type's topic, keyed by its agent.
	for _, want := range []struct{ topic, key, id string }{
		{topicPresence, agentA, idOnQueue},
		{topicActivity, agentA, idActivity},
		{topicPresence, agentB, idAvailable},
		{topicAudit, agentB, idAudit},
	} {
		line := findLine(text, "id="+want.id+" ")
		require.NotEmpty(t, line, "no record of %s in\n%s", want.id, text)
		assert.True(t, strings.HasPrefix(strings.TrimSpace(line), want.topic+" "), line)
		assert.Contains(t, line, " key="+want.key+" ")
	}
	assert.Contains(t, text, idOAuth+" -> no route wants v2.audits.entitytype.{id}.entityid.{id}\n")
	assert.Equal(t, 4, strings.Count(text, "answer: 200 delivered"))
	assert.Equal(t, 1, strings.Count(text, "answer: 200 ignored"))
	assert.NotContains(t, text, "id="+idOAuth)
}

func findLine(text, substr string) string {
	for _, line := range strings.Split(text, "\n") {
		if strings.Contains(line, substr) {
			return line
		}
	}
	return ""
}

func TestAgainstCluster(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// The cluster lacks the audit topic: that event cannot be produced and is dead-lettered.
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, topicPresence, topicActivity))
	require.NoError(t, err)
	defer cluster.Close()
	dir := t.TempDir()

	p := exampletest.Start(t, ctx, run, nil, map[string]string{
		"KAFKA_BROKERS":       strings.Join(cluster.ListenAddrs(), ","),
		"EVENTBRIDGE_API_KEY": "test-key",
		"LISTEN_ADDR":         "127.0.0.1:0",
		"DLQ_DIR":             dir,
	})

	onQueue, err := samples.ReadFile("samples/user-presence-on-queue.json")
	require.NoError(t, err)
	assert.Equal(t, http.StatusUnauthorized, exampletest.Post(t, ctx, p.URL, onQueue, http.Header{}))
	key := http.Header{demo.APIKeyHeader: {"test-key"}}
	for _, name := range order {
		body, err := samples.ReadFile("samples/" + name)
		require.NoError(t, err)
		assert.Equal(t, http.StatusOK, exampletest.Post(t, ctx, p.URL, body, key), name)
	}

	// Read the topics back as a consumer service would.
	client, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...),
		kgo.ConsumeTopics(topicPresence, topicActivity), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	require.NoError(t, err)
	defer client.Close()
	type record struct{ topic, key, id string }
	var got []record
	for len(got) < 3 {
		fetches := client.PollFetches(ctx)
		require.NoError(t, ctx.Err())
		require.Empty(t, fetches.Errors())
		for _, r := range fetches.Records() {
			e, err := kafkasink.EventFromRecord(r)
			require.NoError(t, err)
			got = append(got, record{r.Topic, string(r.Key), e.ID})
		}
	}
	assert.ElementsMatch(t, []record{
		{topicPresence, agentA, idOnQueue},
		{topicActivity, agentA, idActivity},
		{topicPresence, agentB, idAvailable},
	}, got)

	// Dead-lettered, not lost: the sender was answered 200 only once the entry was on disk.
	p.Stop(t)
	entries := exampletest.DeadLetters(t, ctx, dir)
	require.Len(t, entries, 1)
	assert.Equal(t, idAudit, entries[0].Event.ID)
	assert.Equal(t, "kafka", entries[0].Sink)
	assert.Equal(t, "presence-audit", entries[0].Route)
	assert.Equal(t, dlq.ConditionPermanent, entries[0].Condition)
}

// TestOrderPerAgent posts one agent's presence changes so that they overlap: the broker refuses
// the first produce of every event with a retryable error the client hands back to the sink
// (CORRUPT_MESSAGE, which the client itself does not retry), so each event waits out a retry
// while the next is posted, and the next is posted as soon as the broker has seen the one before
// it, so the order in which they came in is known. The topic must hold them in that order. Without
// the dispatcher's ordering key an event posted later is produced while an earlier one waits out
// its retry, and overtakes it.
func TestOrderPerAgent(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, cluster := startWithBroker(t, ctx, map[string]string{"GENESYS_WEBHOOK_SECRET": "test-secret"})
	firstTries := failFirstProduce(cluster, topicPresence)

	// Ten presence changes of one agent, signed by a proxy, each posted once the one before it
	// reached the broker, and answered when delivered.
	template, err := samples.ReadFile("samples/user-presence-on-queue.json")
	require.NoError(t, err)
	const n = 10
	answers := make(chan error, n)
	arrived := map[string]bool{}
	var want []string
	for i := range n {
		id := fmt.Sprintf("%s-%02d", idOnQueue, i)
		want = append(want, id)
		body := bytes.Replace(template, []byte(idOnQueue), []byte(id), 1)
		sig, err := signature.SignHMAC(demo.HMACScheme, "test-secret", body)
		require.NoError(t, err)
		go func() {
			resp, answer, err := demo.Do(ctx, http.MethodPost, p.URL, body,
				http.Header{"Content-Type": {"application/json"}, demo.HMACScheme.Header: {sig}})
			if err == nil && resp.StatusCode != http.StatusOK {
				err = fmt.Errorf("%s: answered %d %s", id, resp.StatusCode, answer)
			}
			answers <- err
		}()
		for !arrived[id] {
			select {
			case got := <-firstTries:
				arrived[got] = true
			case <-ctx.Done():
				t.Fatalf("%s never reached the broker", id)
			}
		}
	}
	for range n {
		select {
		case err := <-answers:
			require.NoError(t, err)
		case <-ctx.Done():
			t.Fatal("not every post was answered")
		}
	}

	client, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...),
		kgo.ConsumeTopics(topicPresence), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	require.NoError(t, err)
	defer client.Close()
	var ids []string
	parts := map[int32]bool{}
	for len(ids) < len(want) {
		fetches := client.PollFetches(ctx)
		require.NoError(t, ctx.Err())
		for _, r := range fetches.Records() {
			assert.Equal(t, agentA, string(r.Key))
			parts[r.Partition] = true
			e, err := kafkasink.EventFromRecord(r)
			require.NoError(t, err)
			ids = append(ids, e.ID)
		}
	}
	assert.Len(t, parts, 1, "one agent, one partition")
	assert.Equal(t, want, ids, "in the order they came in")
	// The concurrent posts may have left a connection the client dialed and never used, which
	// the server's Shutdown would wait for.
	http.DefaultClient.CloseIdleConnections()
	p.Stop(t)
}

// failFirstProduce makes the cluster refuse, with CORRUPT_MESSAGE, every produce request to topic
// that carries an event it has not seen before, so that each event's first produce fails and a
// retry of the same event succeeds. The returned channel receives the id of each event when its
// first produce arrives.
func failFirstProduce(cluster *kfake.Cluster, topic string) <-chan string {
	var mu sync.Mutex
	seen := map[string]bool{}
	decided := map[kmsg.Request]bool{} // the fault asks once per partition of a request
	first := make(chan string, 1024)
	cluster.Fault(kfake.Fault{
		Keys:  []kmsg.Key{kmsg.Produce},
		Topic: topic,
		Err:   kerr.CorruptMessage,
		Count: -1,
		When: func(req kmsg.Request) bool {
			mu.Lock()
			defer mu.Unlock()
			if refuse, ok := decided[req]; ok {
				return refuse
			}
			refuse := false
			for _, id := range producedIDs(req) {
				if !seen[id] {
					seen[id], refuse = true, true
					select {
					case first <- id:
					default: // never blocks the cluster; the test posts far fewer
					}
				}
			}
			decided[req] = refuse
			return refuse
		},
	})
	return first
}

// producedIDs returns the event ids (the ce_id header) of the records in a produce request.
func producedIDs(req kmsg.Request) []string {
	pr, ok := req.(*kmsg.ProduceRequest)
	if !ok {
		return nil
	}
	var ids []string
	for _, topic := range pr.Topics {
		for _, part := range topic.Partitions {
			var batch kmsg.RecordBatch
			if batch.ReadFrom(part.Records) != nil {
				continue
			}
			records, err := kfake.BatchRecords(batch)
			if err != nil {
				continue
			}
			for _, r := range records {
				for _, h := range r.Headers {
					if h.Key == kafkasink.HeaderID {
						ids = append(ids, string(h.Value))
					}
				}
			}
		}
	}
	return ids
}

func TestConfigurationErrors(t *testing.T) {
	cases := []struct {
		name string
		args []string
		vars map[string]string
		want string
	}{
		{"no credentials", nil, map[string]string{"KAFKA_BROKERS": "127.0.0.1:1", "DLQ_DIR": t.TempDir()}, "never runs unauthenticated"},
		{"no dead-letter directory", nil, map[string]string{"KAFKA_BROKERS": "127.0.0.1:1", "EVENTBRIDGE_API_KEY": "k"}, "DLQ_DIR"},
		{"organization not a UUID", nil, map[string]string{"KAFKA_BROKERS": "127.0.0.1:1", "EVENTBRIDGE_API_KEY": "k", "DLQ_DIR": t.TempDir(),
			"GENESYS_ORGANIZATION_ID": "bb14bed0-f8f9-445d-b9d1"}, "GENESYS_ORGANIZATION_ID: want the organization's id, a UUID"},
		{"organization with a word", nil, map[string]string{"KAFKA_BROKERS": "127.0.0.1:1", "EVENTBRIDGE_API_KEY": "k", "DLQ_DIR": t.TempDir(),
			"GENESYS_ORGANIZATION_ID": "org bb14bed0-f8f9-445d-b9d1-10cecb8569d6"}, "GENESYS_ORGANIZATION_ID"},
		{"unknown flag", []string{"-topics", "x"}, nil, "topics"},
		{"brokers set to nothing", nil, map[string]string{"KAFKA_BROKERS": " , ", "EVENTBRIDGE_API_KEY": "k"}, "KAFKA_BROKERS is set but names nothing"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := run(ctx, c.args, exampletest.Env(c.vars), io.Discard)
			require.Error(t, err)
			assert.Contains(t, err.Error(), c.want)
		})
	}
}

// The command the offline demo prints to try by hand does what it says when pasted.
func TestServingHint(t *testing.T) { exampletest.CheckServingHint(t, run) }

// supervisor changes agent B's presence in the audit samples the tests rewrite.
const supervisor = "5f1c0a3e-1111-4222-8333-944455556666"

// auditBySupervisor is the presence-audit sample as it reads when a supervisor, not the agent,
// changed agent B's presence: the body's userId is the supervisor's.
func auditBySupervisor(t *testing.T) []byte {
	t.Helper()
	body, err := samples.ReadFile("samples/audit-user-presence.json")
	require.NoError(t, err)
	changed := bytes.Replace(body, []byte(`"userId": "`+agentB+`"`), []byte(`"userId": "`+supervisor+`"`), 1)
	require.NotEqual(t, body, changed)
	return changed
}

func TestAgentKey(t *testing.T) {
	decode := func(t *testing.T, body []byte) *fanbridge.Event {
		t.Helper()
		e, err := eventbridge.Decode(body, "application/json")
		require.NoError(t, err)
		return e
	}
	sample := func(t *testing.T, name string) *fanbridge.Event {
		t.Helper()
		body, err := samples.ReadFile("samples/" + name)
		require.NoError(t, err)
		return decode(t, body)
	}
	cases := []struct {
		name  string
		event func(t *testing.T) *fanbridge.Event
		want  string
	}{
		{"presence", func(t *testing.T) *fanbridge.Event { return sample(t, "user-presence-on-queue.json") }, agentA},
		{"activity notification", func(t *testing.T) *fanbridge.Event { return sample(t, "websocket-user-activity.json") }, agentA},
		{"audit by the agent", func(t *testing.T) *fanbridge.Event { return sample(t, "audit-user-presence.json") }, agentB},
		{"audit by a supervisor", func(t *testing.T) *fanbridge.Event { return decode(t, auditBySupervisor(t)) }, agentB},
		{"audit without a concrete topic", func(t *testing.T) *fanbridge.Event {
			e := decode(t, auditBySupervisor(t))
			e.Topic = auditType
			return e
		}, agentB},
		{"audit without an entity", func(t *testing.T) *fanbridge.Event {
			return &fanbridge.Event{ID: "a-1", Type: auditType, Data: json.RawMessage(`{"userId":"` + supervisor + `"}`)}
		}, supervisor},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			assert.Equal(t, c.want, kafkasink.UserKey(c.event(t)))
		})
	}
}

// A supervisor's change to agent B's presence is keyed by agent B, beside agent B's own presence
// events: one partition, in order.
func TestAuditKeyedByAgent(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p, cluster := startWithBroker(t, ctx, map[string]string{"EVENTBRIDGE_API_KEY": "test-key"})
	key := http.Header{demo.APIKeyHeader: {"test-key"}}
	require.Equal(t, http.StatusOK, exampletest.Post(t, ctx, p.URL, auditBySupervisor(t), key))

	client, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...),
		kgo.ConsumeTopics(topicAudit), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	require.NoError(t, err)
	defer client.Close()
	var keys []string
	for len(keys) == 0 {
		fetches := client.PollFetches(ctx)
		require.NoError(t, ctx.Err())
		require.Empty(t, fetches.Errors())
		for _, r := range fetches.Records() {
			keys = append(keys, string(r.Key))
		}
	}
	assert.Equal(t, []string{agentB}, keys)
	p.Stop(t)
}

// orgB is the organization the presence samples come from; the OAuth client audit comes from
// another.
const orgB = "bb14bed0-f8f9-445d-b9d1-10cecb8569d6"

// With GENESYS_ORGANIZATION_ID set, events whose source names another organization are refused,
// those of the organization are taken, and so are bare notifications, which name none. The id
// is taken without blanks around it and in any case.
func TestOrganization(t *testing.T) {
	for name, org := range map[string]string{
		"as written":         orgB,
		"with blanks around": " " + orgB + " \n",
		"upper case":         strings.ToUpper(orgB),
	} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			p, _ := startWithBroker(t, ctx, map[string]string{"EVENTBRIDGE_API_KEY": "test-key", "GENESYS_ORGANIZATION_ID": org})
			key := http.Header{demo.APIKeyHeader: {"test-key"}}
			for _, c := range []struct {
				sample string
				status int
				answer string
			}{
				{"user-presence-on-queue.json", http.StatusOK, `{"status":"delivered","id":"` + idOnQueue + `"}`},
				{"websocket-user-activity.json", http.StatusOK, `{"status":"delivered","id":"` + idActivity + `"}`},
				{"audit-oauth-client-delete.json", http.StatusForbidden, `{"error":"eventbridge: source not allowed"}`},
			} {
				body, err := samples.ReadFile("samples/" + c.sample)
				require.NoError(t, err)
				resp, answer := exampletest.Do(t, ctx, http.MethodPost, p.URL, body, key)
				assert.Equal(t, c.status, resp.StatusCode, c.sample)
				assert.JSONEq(t, c.answer, answer, c.sample)
			}
			p.Stop(t)
		})
	}
}

// The offline demo, which runs when KAFKA_BROKERS is not set, keeps its dead letters in a
// temporary directory and listens only on loopback: given a directory or an address it refuses
// to start, naming the setting, and touches neither.
func TestOfflineRefusesAServicesSettings(t *testing.T) {
	exampletest.CheckOfflineRefuses(t, run, "KAFKA_BROKERS")
}

// startWithBroker starts the example as a service, with vars, against a broker of its own that
// has all three topics, on a loopback port, its dead letters in a temporary directory.
func startWithBroker(t *testing.T, ctx context.Context, vars map[string]string) (*exampletest.Program, *kfake.Cluster) {
	t.Helper()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, topicPresence, topicActivity, topicAudit))
	require.NoError(t, err)
	t.Cleanup(cluster.Close)
	all := map[string]string{
		"KAFKA_BROKERS": cluster.ListenAddrs()[0],
		"LISTEN_ADDR":   "127.0.0.1:0",
		"DLQ_DIR":       t.TempDir(),
	}
	maps.Copy(all, vars)
	return exampletest.Start(t, ctx, run, nil, all), cluster
}
